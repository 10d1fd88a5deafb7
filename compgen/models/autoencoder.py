"""The model a workdir trains: `Autoencoder` (an encoder and a decoder whose params live in
{"encoder", "decoder"}, with static input checks) and `model_input` (which array of a batch it
encodes and reconstructs).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from compgen.errors import DataError


def model_input(batch: dict) -> jax.Array:
  """The array a model encodes and reconstructs: batch["image"] or batch["x"]."""
  return batch["image"] if "image" in batch else batch["x"]


def per_example_mse(reconstruction: jax.Array, x: jax.Array) -> jax.Array:
  """Mean squared reconstruction error of each example: [B, ...] and [B, ...] -> [B]."""
  return ((reconstruction - x) ** 2).reshape(x.shape[0], -1).mean(-1)

def _shape(shape) -> str:
  """(5, 32, 32, 3) -> '(B, 32, 32, 3)'."""
  return "(" + ", ".join(["B"] + [str(d) for d in shape[1:]]) + ")"


@dataclasses.dataclass(frozen=True)
class Autoencoder:
  """An encoder and a decoder (Flax modules) whose params live in {"encoder", "decoder"}.

  `encode(params, x [B, *decoder.output_shape])` and `decode(params, z [B, K, m])` check
  shapes and dtypes statically (at trace time, free under jit) and raise `DataError`
  saying what the model takes; values (NaN, range) are checked on the host by
  `compgen.data.checks.check_batch` where users hand data in.
  """
  encoder: object
  decoder: object

  def encode(self, params, x):
    self.check_inputs(x)
    return self.encoder.apply({"params": params["encoder"]}, x)

  def decode(self, params, z):
    self.check_latents(z)
    return self.decoder.apply({"params": params["decoder"]}, z)

  def check_inputs(self, x) -> None:
    """x must be floating point [B >= 1, *decoder.output_shape] (static checks)."""
    expected = tuple(getattr(self.decoder, "output_shape", None) or ())
    what = "images" if len(expected) == 3 else "inputs"
    shape, dtype = tuple(x.shape), jnp.dtype(x.dtype)
    if expected and shape == expected:
      raise DataError(f"A single example of shape {shape} without a batch axis: this model "
                      f"takes a batch {_shape((0,) + expected)}; use x[None].")
    if expected and shape[1:] != expected:
      size = ("x".join(map(str, expected)) + " images" if what == "images"
              else f"vectors of {expected[0]} dims")
      raise DataError(f"{what} of shape {_shape(shape)}, but this model was trained on "
                      f"{expected} {what}: give {size} (resize or re-encode them), or train a "
                      "model on data of this shape.")
    if shape[0] == 0:
      raise DataError(f"Empty batch: {what} of shape {shape}; give at least one example.")
    if not jnp.issubdtype(dtype, jnp.floating):
      how = ("convert uint8 pixels to float32 in [0, 1] with "
             "compgen.data.pipeline.to_model_inputs(batch) or x / 255" if dtype == jnp.uint8
             else "give float32 values")
      raise DataError(f"{what} of dtype {dtype}, but this model takes floating point {what}: "
                      f"{how}.")

  def check_latents(self, z) -> None:
    """z must be floating point [B >= 1, K, m] with the encoder's K slots of m dims."""
    k = getattr(self.encoder, "num_slots", None)
    m = getattr(self.encoder, "slot_dim", None)
    shape = tuple(z.shape)
    if len(shape) != 3 or (k is not None and shape[1] != k) or (m is not None and
                                                                  shape[2] != m):
      raise DataError(f"latents of shape {_shape(shape) if shape else shape}, but this model "
                      f"has K={k} slots of m={m} dims: give z as [B, {k}, {m}] (e.g. from "
                      "its encoder, or a prior fitted on its latents).")
    if shape[0] == 0:
      raise DataError(f"Empty batch: latents of shape {shape}; give at least one example.")
    if not jnp.issubdtype(jnp.dtype(z.dtype), jnp.floating):
      raise DataError(f"latents of dtype {z.dtype}, but this model takes float32 latents.")

  def init(self, rng, x):
    self.check_inputs(x)
    k_enc, k_dec = jax.random.split(rng)
    enc_params = self.encoder.init(k_enc, x)["params"]
    z = self.encoder.apply({"params": enc_params}, x)["mean"]
    return {"encoder": enc_params, "decoder": self.decoder.init(k_dec, z)["params"]}
