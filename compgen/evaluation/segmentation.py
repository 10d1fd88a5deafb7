"""Segmentation scores of slots: FG-ARI of the decoder's slot masks and J-ARI of its Jacobian.

The object-centric field compares models by the adjusted Rand index of the pixels' slot
assignment against the true objects, on the foreground only (FG-ARI; Kabra et al. 2019's
multi-object datasets): per image, pixel p goes to slot argmax_k M_pk of a model's slot masks
M [H, W, K'], the true label of p is the object in front there, and

  ARI = 2 (tp·tn − fn·fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn))

over the pairs of foreground pixels (tp: same object and same slot, tn: different and
different, fn: same object, different slots, fp: different objects, same slot) — 1 for the
true partition under any relabelling, 0 in expectation for a random one, 0 when one slot takes
every object; 1 when no pair disagrees (a single foreground pixel, or one object drawn by one
slot), as in scikit-learn's `adjusted_rand_score`. The score is the mean over images with a
foreground.

J-ARI (Brady et al. 2025, `eval_metrics.get_ari` of their released code) is the same score with
the decoder Jacobian's slot shares s_pk (`interaction.slot_shares`) as the masks.

Slot masks of a decoder's output (`slot_masks`): the alpha decoder's masks (its background
column a cluster of its own), an attention decoder's attention averaged over layers and heads
(a background token's column likewise), and for additive decoders slot k's contribution
Σ_c |x̂_k(p, c) − median_p' x̂_k(p', c)| — how far slot k's image departs at p from its own
level elsewhere (an additive slot may carry a constant share of the background).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def adjusted_rand_index(true_labels, pred_labels) -> float:
  """ARI above of two labelings [P] (any integers)."""
  true_labels, pred_labels = np.ravel(true_labels), np.ravel(pred_labels)
  if true_labels.shape != pred_labels.shape:
    raise ValueError(f"ARI compares two labelings of the same points: got {true_labels.shape} "
                     f"and {pred_labels.shape}.")
  n = true_labels.size
  _, t = np.unique(true_labels, return_inverse=True)
  _, q = np.unique(pred_labels, return_inverse=True)
  table = np.zeros((t.max(initial=-1) + 1, q.max(initial=-1) + 1), np.int64)
  np.add.at(table, (t, q), 1)
  pairs = lambda c: (c * (c - 1)).sum() / 2  # pairs within each cell / row / column
  same_both = pairs(table)
  same_true, same_pred = pairs(table.sum(1)), pairs(table.sum(0))
  tp, fn, fp = same_both, same_true - same_both, same_pred - same_both
  tn = n * (n - 1) / 2 - tp - fn - fp
  if fn == 0 and fp == 0:
    return 1.0
  return float(2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def visible_objects(object_masks) -> np.ndarray:
  """The object in front at each pixel: object_masks [N, K, H, W] bool, objects composited back
  (k = 0) to front (k = K − 1) -> labels [N, H, W] int, −1 where no object is."""
  masks = np.asarray(object_masks, bool)
  if masks.ndim != 4:
    raise ValueError(f"object masks must be [N, K, H, W], got shape {masks.shape}.")
  k = masks.shape[1]
  front = k - 1 - np.argmax(masks[:, ::-1], axis=1)
  return np.where(masks.any(1), front, -1)


def foreground_ari(labels, masks) -> np.ndarray:
  """FG-ARI per image: labels [N, H, W] (−1 background, `visible_objects`), masks
  [N, H, W, K'] (any scores; the largest wins) -> [N], NaN for an image with no foreground."""
  labels, masks = np.asarray(labels), np.asarray(masks)
  if masks.ndim != 4 or masks.shape[:3] != labels.shape:
    raise ValueError(f"slot masks must be [N, H, W, K'] over the labels' [N, H, W] pixels; got "
                     f"{masks.shape} and {labels.shape}.")
  assigned = masks.argmax(-1)
  fg = labels >= 0
  return np.array([adjusted_rand_index(labels[i][fg[i]], assigned[i][fg[i]]) if fg[i].any()
                   else np.nan for i in range(len(labels))])


def mean_foreground_ari(labels, masks) -> float:
  """The mean of `foreground_ari` over the images with a foreground."""
  per_image = foreground_ari(labels, masks)
  if not np.isfinite(per_image).any():
    raise ValueError("FG-ARI has no image to score: no image has a foreground pixel.")
  return float(np.nanmean(per_image))


def slot_masks(decoded: dict) -> np.ndarray | None:
  """A decoder's output dict for B images -> slot masks [B, H, W, K'] (module doc; jax arrays,
  so it runs under jit), None for a decoder without slots of its own (the unconstrained
  controls)."""
  if "masks" in decoded:  # alpha: [B, K + 1, H, W]
    return jnp.moveaxis(decoded["masks"], 1, -1)
  b, h, w = decoded["output"].shape[:3]
  if "attention" in decoded:  # [B, L, heads, P, K (+ 1)]
    return decoded["attention"].mean(axis=(1, 2)).reshape(b, h, w, -1)
  if "slots" in decoded:  # additive: [B, K, H, W, C]
    slots = decoded["slots"]
    level = jnp.median(slots, axis=(2, 3), keepdims=True)
    return jnp.moveaxis(jnp.abs(slots - level).sum(-1), 1, -1)
  return None
