"""The ID training objective (Eq. 4.2) and its terms.

  loss = E_x ‖x − f̂(z)‖²  +  β · KL(q(z|x) ‖ N(0, I))  +  α(t) · Ω(attention)

with z = ĝ(x) (autoencoder) or z ~ q(z|x) = N(μ, σ²) by reparametrisation (VAE), the squared
error summed over pixels (or vector dims) and averaged over the batch, KL summed over slots
and dims, Ω the interaction penalty of attention decoders and α(t) = α · min(1, t / warm-up).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from compgen.models import interaction_penalty


def model_input(batch: dict) -> jax.Array:
  """The array a model encodes and reconstructs: batch["image"] or batch["x"]."""
  return batch["image"] if "image" in batch else batch["x"]


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


@dataclasses.dataclass(frozen=True)
class Autoencoder:
  """An encoder and a decoder (Flax modules) whose params live in {"encoder", "decoder"}."""
  encoder: object
  decoder: object

  def encode(self, params, x):
    return self.encoder.apply({"params": params["encoder"]}, x)

  def decode(self, params, z):
    return self.decoder.apply({"params": params["decoder"]}, z)

  def init(self, rng, x):
    k_enc, k_dec = jax.random.split(rng)
    enc_params = self.encoder.init(k_enc, x)["params"]
    z = self.encoder.apply({"params": enc_params}, x)["mean"]
    return {"encoder": enc_params, "decoder": self.decoder.init(k_dec, z)["params"]}


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
    warmup = max(loss_config.interaction_warmup_steps, 1)
    alpha = loss_config.interaction_weight * jnp.minimum(1.0, step / warmup)
    terms["interaction"] = interaction_penalty(decoded["attention"])
    terms["interaction_weight"] = alpha
    loss = loss + alpha * terms["interaction"]
  terms["loss"] = loss
  return loss, terms
