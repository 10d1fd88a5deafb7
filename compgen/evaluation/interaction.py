"""How far a decoder is from the interaction-restricted class F_int, measured at latents z.

With f̂: z [K, m] -> x [d] (flattened), J_k = ∂f̂/∂z_k [d, m] and a_ik = ‖(J_k)_i‖ the
influence of slot k on output i:

  jacobian_overlap = Σ_i Σ_{k<l} a_ik a_il  /  Σ_i Σ_{k<l} (a_ik² + a_il²) / 2   ∈ [0, 1]

is 0 when every output depends on at most one slot (locally: objects that do not touch) and
1 when every slot moves every output equally;

  hessian_cross = Σ_{k≠l} ‖∂²(v·f̂)/∂z_k∂z_l‖²_F  /  Σ_{k,l} ‖∂²(v·f̂)/∂z_k∂z_l‖²_F   ∈ [0, 1]

(v a random unit projection of the output, averaged over a few) is 0 for additive decoders
f̂ = Σ_k φ_k(z_k) (F_int with n = 0) and grows with cross-slot interactions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


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

