"""How far a decoder is from the interaction-restricted class F_int, measured at latents z.

With f̂: z [K, m] -> x [d] (flattened), J_k = ∂f̂/∂z_k [d, m] and a_ik = ‖(J_k)_i‖ the
influence of slot k on output i:

  jacobian_overlap = Σ_i Σ_{k<l} a_ik a_il  /  Σ_i Σ_{k<l} (a_ik² + a_il²) / 2   ∈ [0, 1]

is 0 when every output depends on at most one slot (locally: objects that do not touch) and
1 when every slot moves every output equally;

  hessian_cross = Σ_{k≠l} ‖∂²(v·f̂)/∂z_k∂z_l‖²_F  /  Σ_{k,l} ‖∂²(v·f̂)/∂z_k∂z_l‖²_F   ∈ [0, 1]

(v a random unit projection of the output, averaged over a few) is 0 for additive decoders
f̂ = Σ_k φ_k(z_k) (F_int with n = 0) and grows with cross-slot interactions. For images,
the Jacobian interaction score of Brady et al. (2025):

  JIS = (mean over foreground pixels p of max_k s_pk − 1/K) / (1 − 1/K),
  s_pk = Σ_{c,j} |∂x_pc/∂z_kj| / Σ_l Σ_{c,j} |∂x_pc/∂z_lj|   ∈ [0, 1]

is 1 when every foreground pixel is drawn by one slot and 0 when every slot moves it equally.
For attention decoders, where the objects' attention goes:

  top_slot_share = mean over images of max_k Σ_{p ∈ fg} ā_pk / Σ_{p ∈ fg} Σ_l ā_pl

(ā the attention averaged over layers and heads, fg the true objects' pixels) is 1 when one
slot takes all the objects' pixels — the collapse that also zeroes the interaction penalty —
and about 1/K when the objects (of similar size) share them out; and whether they share them
out by object:

  object_purity = mean over images of max_π (1/K) Σ_o s_{o,π(o)},
  s_ok = mean over the pixels p of object o alone of ā_pk / Σ_l ā_pl

is 1 when the pixels of each object attend to a slot of their own, 1/K when one slot takes
every object or every slot the same share of each. With a background token (a learned key
beside the slots):

  background_share = mean over images of Σ_{p ∈ fg} ā_p,bg / Σ_{p ∈ fg} Σ_l ā_pl

the share of the objects' attention that the token takes, though it carries no object.
"""
from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np



def slot_shares(decode_fn: Callable, z) -> jax.Array:
  """The decoder Jacobian's slot shares s_pk = Σ_{c,j} |∂x̂_pc/∂z_kj| / Σ_l Σ_{c,j} |∂x̂_pc/∂z_lj|
  (pixel p, slot k): decode_fn: z [B, K, m] -> images [B, H, W, C]; z [N, K, m] -> s
  [N, H, W, K] (zeros where no slot moves a pixel)."""
  z = jnp.asarray(z, jnp.float32)
  if z.ndim != 3:
    raise ValueError(f"latents must be [N, K, m], got shape {z.shape}.")

  def one(zi):
    jac = jax.jacfwd(lambda y: decode_fn(y[None])[0])(zi)  # [H, W, C, K, m]
    if jac.ndim != 5:
      raise ValueError(f"slot shares are defined for images [H, W, C]: the decoder gives "
                       f"{jac.shape[:-2]}.")
    a = jnp.abs(jac).sum((2, 4))  # [H, W, K]
    return a / jnp.maximum(a.sum(-1, keepdims=True), 1e-30)
  return jax.lax.map(one, z)


def interaction_statistics(decode_fn, z: jax.Array, *, num_projections: int = 4,
                           seed: int = 0) -> dict[str, float]:
  """decode_fn: z [B, K, m] -> output [B, ...]; z [N, K, m] -> the two statistics above,
  averaged over the N latents."""
  if np.ndim(z) != 3:
    raise ValueError(f"latents must be [N, K, m], got shape {np.shape(z)}.")
  z = jnp.asarray(z, jnp.float32)
  k = z.shape[1]
  f = lambda zi: decode_fn(zi[None])[0].reshape(-1)  # [K, m] -> [d]
  off_diag = ~jnp.eye(k, dtype=bool)

  def one(zi, vs):
    jac = jax.jacfwd(f)(zi)  # [d, K, m]
    a = jnp.linalg.norm(jac, axis=-1)  # [d, K]
    cross = (a.sum(-1) ** 2 - (a ** 2).sum(-1)) / 2  # Σ_{k<l} a_k a_l
    bound = (k - 1) * (a ** 2).sum(-1) / 2           # Σ_{k<l} (a_k² + a_l²) / 2
    hess = jax.vmap(lambda v: jax.hessian(lambda y: v @ f(y))(zi))(vs)  # [V, K, m, K, m]
    blocks = (hess ** 2).sum((2, 4))  # [V, K, K]
    return cross.sum(), bound.sum(), (blocks * off_diag).sum(), blocks.sum()

  d = jax.eval_shape(f, z[0]).shape[0]
  vs = jax.random.normal(jax.random.PRNGKey(seed), (num_projections, d))
  vs = vs / jnp.linalg.norm(vs, axis=-1, keepdims=True)
  cross, bound, h_cross, h_all = jax.lax.map(lambda zi: one(zi, vs), z)
  return {"jacobian_overlap": float(cross.sum() / jnp.maximum(bound.sum(), 1e-30)),
          "hessian_cross": float(h_cross.sum() / jnp.maximum(h_all.sum(), 1e-30))}



def jacobian_interaction_score(decode_fn, z: jax.Array, foreground=None) -> float:
  """JIS above. decode_fn: z [B, K, m] -> images [B, H, W, C]; z [N, K, m]; foreground
  [N, H, W] bool, the pixels to score (e.g. where the true scene has an object); without
  it, every pixel that some slot moves."""
  if np.ndim(z) != 3:
    raise ValueError(f"latents must be [N, K, m], got shape {np.shape(z)}.")
  if np.shape(z)[1] < 2:
    raise ValueError(f"JIS compares slots: the latents have K = {np.shape(z)[1]}, it needs "
                     "K >= 2.")
  return jis_of_shares(slot_shares(decode_fn, z), foreground)


def jis_of_shares(shares, foreground=None) -> float:
  """JIS above from the slot shares s [N, H, W, K] (`slot_shares`); foreground [N, H, W]."""
  shares = np.asarray(shares)
  k = shares.shape[-1]
  mask = shares.sum(-1) > 0
  if foreground is not None:
    mask &= np.asarray(foreground, bool)
  if not mask.any():
    raise ValueError("JIS has no pixel to score: no foreground pixel is moved by any slot.")
  return float((shares.max(-1)[mask].mean() - 1 / k) / (1 - 1 / k))


def _foreground_mass(attention, foreground, what: str, keys: str) -> np.ndarray:
  """Σ over foreground pixels of the attention averaged over layers and heads: attention
  [N, L, heads, P, keys], foreground [N, P] bool -> [N, keys]."""
  attention, foreground = np.asarray(attention), np.asarray(foreground, bool)
  if attention.ndim != 5 or foreground.shape != attention.shape[:1] + attention.shape[3:4]:
    raise ValueError(f"attention must be [N, L, heads, P, {keys}] and foreground [N, P]; got "
                     f"{attention.shape} and {foreground.shape}.")
  if not foreground.any(axis=1).all():
    raise ValueError(f"{what} needs foreground pixels in every image.")
  return (attention.mean(axis=(1, 2)) * foreground[..., None]).sum(axis=1)


def top_slot_share(attention, foreground) -> float:
  """top_slot_share above. attention: [N, L, heads, P, K], the weights on the K slots (a
  background token's column left out); foreground: [N, P] bool."""
  mass = _foreground_mass(attention, foreground, "top_slot_share", "K")
  return float((mass.max(-1) / mass.sum(-1)).mean())


def background_share(attention, foreground) -> float:
  """background_share above. attention: [N, L, heads, P, K + 1], the background token last;
  foreground: [N, P] bool."""
  mass = _foreground_mass(attention, foreground, "background_share", "K + 1")
  return float((mass[:, -1] / mass.sum(-1)).mean())


def object_purity(attention, object_masks) -> float:
  """object_purity above. attention: [N, L, heads, P, K], the weights on the K slots (a
  background token's column left out); object_masks: [N, K, P] bool, where each true object
  is; images in which some object has no pixel of its own are left out."""
  attention, object_masks = np.asarray(attention), np.asarray(object_masks, bool)
  n, k = object_masks.shape[:2]
  if attention.ndim != 5 or attention.shape[-1] != k or attention.shape[3] != object_masks.shape[2]:
    raise ValueError(f"attention must be [N, L, heads, P, K] and object_masks [N, K, P] with "
                     f"the same P and K; got {attention.shape} and {object_masks.shape}.")
  a = attention.mean(axis=(1, 2))
  a = a / a.sum(-1, keepdims=True)  # [N, P, K]
  alone = object_masks & (object_masks.sum(1, keepdims=True) == 1)  # [N, K objects, P]
  pixels = alone.sum(-1)  # [N, objects]
  scored = (pixels > 0).all(-1)
  if not scored.any():
    raise ValueError("object_purity needs images in which every object has pixels of its own.")
  share = np.einsum("nop,npk->nok", alone.astype(a.dtype), a) / np.maximum(pixels, 1)[..., None]
  matched = np.max([share[:, np.arange(k), list(perm)].mean(-1)
                    for perm in itertools.permutations(range(k))], axis=0)  # [N]
  return float(matched[scored].mean())
