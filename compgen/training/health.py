"""Are a slot autoencoder's slots objects? A health check from ID images alone (no labels).

At the encoder's latents z = ĝ(x) of ID images x [N, H, W, C], the decoder Jacobian's slot
shares

  s_pk = Σ_{c,j} |∂x̂_pc/∂z_kj| / Σ_l Σ_{c,j} |∂x̂_pc/∂z_lj|          (pixel p, slot k)

say which slot draws each pixel. The objects are found in the image itself: its foreground
(pixels farther than `OBJECT_DISTANCE` in RGB from the image's median colour, the background
of a scene of a few objects) split into connected components; images whose foreground is
exactly K components (K objects apart) are scored:

  slot_purity = ( mean over those images of max_π (1/K) Σ_o s̄_{o,π(o)} − 1/K ) / (1 − 1/K),
  s̄_ok = mean over the pixels of component o of s_pk                        ∈ [0, 1]

— 1 when each object is drawn by a slot of its own, 0 when every slot draws the same share of
each (or one slot draws every object). On sprites it matches the same measure on the
renderer's true object masks to within 0.01 (results/health/). A model is healthy when
slot_purity ≥ `HEALTHY_PURITY`: below it, slots draw parts of several objects, and neither
search nor replay perceive OOD scenes.
"""
from __future__ import annotations

import itertools
from typing import Callable

import jax
import numpy as np
import scipy.ndimage

from compgen.evaluation import interaction

OBJECT_DISTANCE = 0.35  # RGB distance from the median colour that makes a pixel an object's
# Between the measured runs' object slots (≥ 0.44 at 16×16) and mixed ones (≤ 0.22):
# results/health/README.md.
HEALTHY_PURITY = 0.3


def image_objects(x, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
  """x [N, H, W, C] in [0, 1] -> (masks [N, num_objects, H, W] bool, scored [N] bool): the
  connected components of each image's foreground, for the images that have exactly
  `num_objects` of them (`scored`; the others' masks are all False)."""
  x = np.asarray(x, np.float32)
  if x.ndim != 4:
    raise ValueError(f"image_objects takes images [N, H, W, C], got shape {x.shape}.")
  background = np.median(x.reshape(x.shape[0], -1, x.shape[-1]), axis=1)
  foreground = np.linalg.norm(x - background[:, None, None], axis=-1) > OBJECT_DISTANCE
  masks = np.zeros((x.shape[0], num_objects) + x.shape[1:3], bool)
  scored = np.zeros(x.shape[0], bool)
  for i, fg in enumerate(foreground):
    labels, count = scipy.ndimage.label(fg)
    if count == num_objects:
      scored[i] = True
      masks[i] = labels[None] == np.arange(1, num_objects + 1)[:, None, None]
  return masks, scored


def purity_from_shares(shares, object_masks) -> float:
  """shares [N, H, W, K], object_masks [N, K, H, W] bool (one mask per object, every one
  non-empty) -> slot_purity above."""
  shares, object_masks = np.asarray(shares), np.asarray(object_masks, bool)
  n, k = object_masks.shape[:2]
  if shares.shape != (n,) + object_masks.shape[2:] + (k,):
    raise ValueError(f"shares {shares.shape} and object masks {object_masks.shape} must be "
                     "[N, H, W, K] and [N, K, H, W].")
  if k < 2:
    raise ValueError(f"slot purity compares slots: K = {k}, it needs K >= 2.")
  pixels = object_masks.sum((2, 3))  # [N, objects]
  if n == 0 or not (pixels > 0).all():
    raise ValueError("slot purity needs at least one image, every object with pixels.")
  mean_share = np.einsum("nohw,nhwk->nok", object_masks.astype(shares.dtype), shares) / pixels[..., None]
  matched = np.max([mean_share[:, np.arange(k), list(perm)].mean(-1)
                    for perm in itertools.permutations(range(k))], axis=0)  # [N]
  return float((matched.mean() - 1 / k) / (1 - 1 / k))


def scores_fn(decode_fn: Callable, x, num_slots: int) -> Callable | None:
  """The health check of images x [N, H, W, C] (ID training images): (decoder params, z =
  ĝ(x) [N, K, m]) -> {"slot_purity", "jis" (`interaction.jis_of_shares` on the objects'
  pixels)} and, for decoders that return "attention" [N, L, heads, P, K (+1)], where it
  goes on the objects: {"top_slot_share", "attention_purity"} (`interaction.top_slot_share`,
  `object_purity`) and, with a background token, "background_share"; with
  `decode_fn(params, z) -> {"output": images, ...}`. None when no image of x has `num_slots`
  objects apart, where none is defined."""
  masks, scored = image_objects(x, num_slots)
  if not scored.any():
    return None
  masks = masks[scored]
  shares = jax.jit(lambda p, z: interaction.slot_shares(lambda y: decode_fn(p, y)["output"], z))
  attention = jax.jit(lambda p, z: decode_fn(p, z).get("attention"))

  def scores(params, z):
    z = np.asarray(z)[scored]
    s = shares(params, z)
    out = {"slot_purity": purity_from_shares(s, masks),
           "jis": interaction.jis_of_shares(s, masks.any(1))}
    weights = attention(params, z)
    if weights is not None:
      weights, flat = np.asarray(weights), masks.reshape(len(z), num_slots, -1)
      on_slots = weights[..., :num_slots]
      out.update(top_slot_share=interaction.top_slot_share(on_slots, flat.any(1)),
                 attention_purity=interaction.object_purity(on_slots, flat))
      if weights.shape[-1] > num_slots:  # a background token, last
        out["background_share"] = interaction.background_share(weights, flat.any(1))
    return out
  return scores


def is_healthy(purity: float) -> bool:
  return purity >= HEALTHY_PURITY


def verdict(purity: float) -> str:
  """The line a finished model prints: the check passed, or a warning that it failed."""
  if is_healthy(purity):
    return (f"Health check passed: slot purity {purity:.2f} >= {HEALTHY_PURITY} on ID images "
            "(the slots are objects).")
  return (f"WARNING: this model's slots are not objects (slot purity {purity:.2f} < "
          f"{HEALTHY_PURITY} on ID images: its slots draw parts of several objects), so "
          "search and replay will not perceive new combinations. Train it with another seed, "
          "or as a population (--config.model.candidates=2 "
          "--config.model.keep_candidate_at=STEP).")
