"""Synthetic slot-structured vectors with controlled cross-slot interactions (F_int).

    x = Σ_k φ_k(z_k) + γ Σ_{i<j} Σ_{a,b ≥ 1, a+b ≤ n+1} W_ij^{ab} (u_i(z_i)^a ⊙ u_j(z_j)^b)

φ_k: R^m → R^{d_x} and u_k: R^m → R^r are random slot-wise tanh MLPs, W_ij^{ab}: R^r → R^{d_x}
random linear maps. Each cross-slot term is a polynomial of degree ≤ n in each slot's
features: n = 0 gives an additive generator (no cross terms), n = 1 bilinear interactions,
n = 2 adds quadratic ones (PAPER.md section 2). `interaction="mlp"` is the negative control
outside F_int: x = MLP(concat_k z_k), every slot interacting with every other without limit.

Latents z: [K, m] live in [0, 1] like the sprites latents; the generator is pure JAX.
"""
from __future__ import annotations

import dataclasses
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np

INTERACTIONS = ("polynomial", "mlp")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """A random generator in (or, for the control, outside) F_int.

  Attributes:
    num_slots: K >= 1.
    latent_dim: m >= 1, continuous latents per slot.
    output_dim: d_x >= K * m, so that the generator can be injective.
    degree: n in {0, 1, 2}: maximum per-slot polynomial degree of cross-slot terms.
    interaction: "polynomial" (F_int with the degree above) or "mlp" (negative control).
    interaction_scale: γ, the weight of the cross-slot terms relative to the slot terms.
    hidden_dim: width of the random MLPs.
    feature_dim: r, width of the slot features u_k entering the interactions.
    input_scale: s, the random MLPs read s · (2z − 1): larger s bends the slot functions
      more (more tanh units saturate and turn within [0, 1]), so the data manifold curves more.
    seed: seed of the random generator's weights (not of the latents).
  """
  num_slots: int = 2
  latent_dim: int = 2
  output_dim: int = 16
  degree: int = 0
  interaction: str = "polynomial"
  interaction_scale: float = 0.5
  hidden_dim: int = 32
  feature_dim: int = 8
  input_scale: float = 1.0
  seed: int = 0

  def __post_init__(self):
    for name in ("num_slots", "latent_dim", "hidden_dim", "feature_dim"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: must be an int >= 1.")
    if self.output_dim < self.num_slots * self.latent_dim:
      raise ValueError(
          f"output_dim={self.output_dim} < num_slots * latent_dim = "
          f"{self.num_slots * self.latent_dim}: the generator could not be injective; "
          "raise output_dim.")
    if not self.input_scale > 0:
      raise ValueError(f"input_scale={self.input_scale!r}: must be > 0.")
    if self.degree not in (0, 1, 2):
      raise ValueError(f"degree={self.degree!r}: must be 0 (additive), 1 or 2.")
    if self.interaction not in INTERACTIONS:
      raise ValueError(f"interaction={self.interaction!r}: choose one of {INTERACTIONS}.")

  @property
  def pair_degrees(self) -> tuple[tuple[int, int], ...]:
    """The (a, b) exponents of the cross-slot terms: a, b >= 1, a + b <= n + 1."""
    n = self.degree
    return tuple((a, b) for a in range(1, n + 1) for b in range(1, n + 1) if a + b <= n + 1)


def _mlp_init(key, sizes):
  """Random [(w, b), ...] for layer sizes [d_in, ..., d_out] (He-scaled weights)."""
  params = []
  for key_i, d_in, d_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
    k_w, k_b = jax.random.split(key_i)
    w = jax.random.normal(k_w, (d_in, d_out)) * np.sqrt(2.0 / d_in)
    params.append((w, 0.1 * jax.random.normal(k_b, (d_out,))))
  return params


def _mlp_apply(params, x):
  for i, (w, b) in enumerate(params):
    x = x @ w + b
    if i < len(params) - 1:
      x = jnp.tanh(x)
  return x


def init_params(spec: SyntheticSpec) -> dict:
  """Random weights of the generator, a pytree determined by `spec.seed`."""
  key = jax.random.PRNGKey(spec.seed)
  k_slot, k_feat, k_pair, k_mlp = jax.random.split(key, 4)
  m, h, r, dx = spec.latent_dim, spec.hidden_dim, spec.feature_dim, spec.output_dim
  if spec.interaction == "mlp":
    return {"mlp": _mlp_init(k_mlp, [spec.num_slots * m, h, h, dx])}
  params = {
      "slot": [_mlp_init(k, [m, h, dx]) for k in jax.random.split(k_slot, spec.num_slots)],
      "features": [_mlp_init(k, [m, h, r]) for k in jax.random.split(k_feat, spec.num_slots)],
  }
  # One [r, d_x] map per slot pair (i < j) and per exponent pair (a, b).
  num_pairs = spec.num_slots * (spec.num_slots - 1) // 2
  params["pairs"] = [
      [jax.random.normal(jax.random.fold_in(jax.random.fold_in(k_pair, p), t), (r, dx)) / np.sqrt(r)
       for t in range(len(spec.pair_degrees))]
      for p in range(num_pairs)
  ]
  return params


def generate(spec: SyntheticSpec, params: dict, z: jax.Array) -> jax.Array:
  """The true generator f(z): one sample z: [K, m] -> x: [d_x]."""
  chex.assert_shape(z, (spec.num_slots, spec.latent_dim))
  centred = spec.input_scale * (2.0 * z - 1.0)  # [0, 1] -> [-s, s]
  if spec.interaction == "mlp":
    return _mlp_apply(params["mlp"], centred.reshape(-1))
  x = sum(_mlp_apply(params["slot"][k], centred[k]) for k in range(spec.num_slots))
  if spec.pair_degrees:
    feats = [jnp.tanh(_mlp_apply(params["features"][k], centred[k]))
             for k in range(spec.num_slots)]
    pairs = itertools.combinations(range(spec.num_slots), 2)
    for (i, j), weights in zip(pairs, params["pairs"]):
      for (a, b), w in zip(spec.pair_degrees, weights):
        x = x + spec.interaction_scale * ((feats[i]**a * feats[j]**b) @ w)
  return x


def make_generator(spec: SyntheticSpec):
  """Returns (params, jitted `generate_batch(params, z: [B, K, m]) -> x: [B, d_x]`)."""
  params = init_params(spec)
  return params, jax.jit(jax.vmap(lambda p, z: generate(spec, p, z), in_axes=(None, 0)))
