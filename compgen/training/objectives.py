"""The ID training objective (Eq. 4.2) and its terms.

  loss = E_x ‖x − f̂(z)‖²  +  β · KL(q(z|x) ‖ N(0, I))  +  α(t) · Ω(attention)
         + γ(t) · Ω_J(f̂, sg z)  +  λ(t) · E_ẑ ‖ĝ(sg f̂(ẑ)) − ẑ‖²

with z = ĝ(x) (autoencoder) or z ~ q(z|x) = N(μ, σ²) by reparametrisation (VAE), the squared
error summed over pixels (or vector dims) and averaged over the batch, KL summed over slots
and dims, Ω the interaction penalty of attention decoders and α(t) = α · min(1, t / warm-up).
Ω_J is the Jacobian-overlap penalty (`jacobian_overlap`): the interaction penalty's
Σ_{i<j} a_i a_j per pixel with a_k the share of pixel p's sensitivity that slot k holds, so any
decoder (additive ones too) is pushed to let each pixel depend on one slot; it shapes the
decoder only (z under stop-gradient) and is computed on the batch's first
`loss.jacobian_overlap_examples` examples. Off by default (γ = 0).
The last term is the compositional-consistency loss (Wiedemer et al., ICLR 2024), replay run
during training: ẑ recombines the batch's inferred slots (slot k of ẑ_i from a random example
j_k, μ under stop-gradient), decoded without gradient (sg) and re-encoded; its squared error
is standardised per latent dim by the batch's std (no gradient) and summed over slots and dims,
with slots Hungarian-matched or in order; λ(t) is 0 before t₀ = `consistency_start_step`,
then ramps likewise from t₀ (Wiedemer et al. switch it on at a third of training).
Off by default (λ = 0); it costs one more decode and encode per step.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import ml_collections

from compgen import config_checks
from compgen import errors
from compgen.models import Autoencoder, interaction_penalty, model_input


def sample_latents(encoded: dict, rng: jax.Array | None) -> jax.Array:
  """z = μ (autoencoder, or a VAE at eval with rng=None) or μ + σ ε (VAE in training)."""
  if "logvar" not in encoded or rng is None:
    return encoded["mean"]
  eps = jax.random.normal(rng, encoded["mean"].shape, encoded["mean"].dtype)
  return encoded["mean"] + jnp.exp(0.5 * encoded["logvar"]) * eps


def kl_to_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(μ, σ²) ‖ N(0, I)) summed over all but the batch axis: -> [B]."""
  kl = 0.5 * (mean**2 + jnp.exp(logvar) - 1.0 - logvar)
  return kl.reshape(kl.shape[0], -1).sum(-1)


LATENT_LOSSES = config_checks.LATENT_LOSSES


def latent_loss(pred: jax.Array, target: jax.Array, kind: str = "mse") -> jax.Array:
  """Mean squared latent error [B, K, m] x2 -> scalar; "permutation_invariant" takes, per
  example, the best slot permutation (exact Hungarian matching for K <= 6)."""
  if kind == "mse":
    return jnp.mean((pred - target) ** 2)
  if kind != "permutation_invariant":
    raise errors.ConfigError(f"Unknown latent loss {kind!r}: choose one of {LATENT_LOSSES}.")
  k = pred.shape[1]
  if k > 6:
    raise ValueError(f"permutation_invariant enumerates all {k}! slot orders; use K <= 6.")
  perms = jnp.asarray(list(itertools.permutations(range(k))))  # [P, K]
  per_order = jnp.mean((pred[:, perms] - target[:, None]) ** 2, axis=(2, 3))  # [B, P]
  return jnp.mean(jnp.min(per_order, axis=1))


def recombine_slots(rng: jax.Array, z: jax.Array) -> jax.Array:
  """Slot k of example i from example j_ik ~ U{0..B-1}, independently per slot: [B, K, m] ->
  [B, K, m], a draw from the batch's factorised (empirical) slot prior."""
  b, k = z.shape[:2]
  donors = jax.random.randint(rng, (b, k), 0, b)
  return z[donors, jnp.arange(k)[None, :]]


def jacobian_overlap(decode_fn, z: jax.Array, rng: jax.Array) -> jax.Array:
  """Ω_J = mean_x [Σ_p E_p Σ_{i<j} a_i(p) a_j(p) / Σ_p E_p], a_k = e_k / E_p, E_p = Σ_k e_k,
  e_k(p) = ‖∂f̂(z)_p/∂z_k · v_k‖² (summed over channels) for one v ~ N(0, I) per slot (a random
  projection of slot k's Jacobian; E_v e_k = ‖∂f̂_p/∂z_k‖²_F).

  decode_fn: z [B, K, m] -> output [B, ...]; z [B, K, m] -> scalar. 0 when no pixel depends
  on two slots; at most (K − 1) / (2K) (every pixel shared evenly). Pixels that no slot
  moves weigh nothing.
  """
  k = z.shape[1]
  v = jax.random.normal(rng, z.shape, z.dtype)
  onehot = jnp.eye(k, dtype=z.dtype)[:, None, :, None]  # [K, 1, K, 1]: slot k's tangent alone
  tangents = jax.vmap(lambda t: jax.jvp(decode_fn, (z,), (t,))[1])(onehot * v)  # [K, B, ...]
  e = (tangents**2).reshape(k, z.shape[0], -1, tangents.shape[-1]).sum(-1)  # [K, B, P]
  total = e.sum(0)  # [B, P]
  pairwise = 0.5 * (total**2 - (e**2).sum(0)) / jnp.maximum(total, 1e-30)
  return jnp.mean(pairwise.sum(-1) / jnp.maximum(total.sum(-1), 1e-30))


def _ramp(weight: float, warmup_steps: int, step: jax.Array) -> jax.Array:
  """weight · min(1, t / warm-up): a loss weight that ramps linearly from 0 (none: weight)."""
  if not warmup_steps:
    return weight * jnp.ones_like(step, jnp.float32)
  return weight * jnp.minimum(1.0, step / warmup_steps)


def loss_fn(model: Autoencoder, loss_config: ml_collections.ConfigDict, params, batch: dict,
            rng: jax.Array | None, step: jax.Array):
  """Returns (loss, terms): the objective above and its parts for logging."""
  x = model_input(batch)
  encoded = model.encode(params, x)
  z = sample_latents(encoded, rng)
  decoded = model.decode(params, z)
  error = (decoded["output"] - x) ** 2
  recon = error.reshape(error.shape[0], -1).sum(-1).mean()
  terms = {"recon": recon, "mse": error.mean()}
  loss = recon
  if "logvar" in encoded:
    terms["kl"] = kl_to_standard_normal(encoded["mean"], encoded["logvar"]).mean()
    loss = loss + loss_config.beta * terms["kl"]
  if "attention" in decoded:
    alpha = _ramp(loss_config.interaction_weight, loss_config.interaction_warmup_steps, step)
    terms["interaction"] = interaction_penalty(decoded["attention"])
    terms["interaction_weight"] = alpha
    loss = loss + alpha * terms["interaction"]
  if loss_config.jacobian_overlap_weight:
    if rng is None:
      raise ValueError("The Jacobian-overlap penalty draws random projections: pass an rng.")
    gamma = _ramp(loss_config.jacobian_overlap_weight,
                  loss_config.jacobian_overlap_warmup_steps, step)
    sub = jax.lax.stop_gradient(z[:loss_config.jacobian_overlap_examples])
    terms["jacobian_overlap"] = jacobian_overlap(
        lambda y: model.decode(params, y)["output"], sub, jax.random.fold_in(rng, 2))
    terms["jacobian_overlap_weight"] = gamma
    loss = loss + gamma * terms["jacobian_overlap"]
  if loss_config.consistency_weight:
    config_checks.check_choice("loss.consistency_matching", loss_config.consistency_matching)
    if rng is None:
      raise ValueError("The consistency loss draws slot recombinations: pass an rng.")
    z_hat = recombine_slots(jax.random.fold_in(rng, 1), jax.lax.stop_gradient(encoded["mean"]))
    x_hat = jax.lax.stop_gradient(model.decode(params, z_hat)["output"])
    z_back = model.encode(params, x_hat)["mean"]
    # standardised by the batch's latent std (no gradient), so that growing the latents'
    # scale cannot inflate or shrink it; summed over slots and dims like KL
    scale = jax.lax.stop_gradient(jnp.std(z_hat, axis=(0, 1)) + 1e-3)  # [m]
    per_example = z_hat.shape[1] * z_hat.shape[2]
    terms["consistency"] = per_example * latent_loss(z_back / scale, z_hat / scale,
                                                     loss_config.consistency_matching)
    start = loss_config.consistency_start_step
    lam = jnp.where(step >= start, _ramp(loss_config.consistency_weight,
                                         loss_config.consistency_warmup_steps, step - start), 0.0)
    terms["consistency_weight"] = lam
    loss = loss + lam * terms["consistency"]
  terms["loss"] = loss
  return loss, terms
