"""Small building blocks shared by the decoders and encoders."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """Dense layers with GELU between them: [..., d_in] -> [..., features[-1]]."""
  features: Sequence[int]

  @nn.compact
  def __call__(self, x):
    for i, width in enumerate(self.features):
      x = nn.Dense(width)(x)
      if i < len(self.features) - 1:
        x = nn.gelu(x)
    return x


def pixel_coordinates(height: int, width: int) -> jax.Array:
  """Pixel centres in [-1, 1]²: [H * W, 2] as (x, y), row-major."""
  ys = (jnp.arange(height) + 0.5) / height * 2 - 1
  xs = (jnp.arange(width) + 0.5) / width * 2 - 1
  grid = jnp.stack(jnp.meshgrid(xs, ys, indexing="xy"), axis=-1)
  return grid.reshape(-1, 2)


def fourier_features(coords: jax.Array, num_frequencies: int) -> jax.Array:
  """[P, 2] -> [P, 2 + 4 F]: coords, sin and cos of 2^f π coords for f < F."""
  freqs = 2.0 ** jnp.arange(num_frequencies) * jnp.pi
  angles = coords[:, :, None] * freqs  # [P, 2, F]
  return jnp.concatenate([coords, jnp.sin(angles).reshape(len(coords), -1),
                          jnp.cos(angles).reshape(len(coords), -1)], axis=-1)


class CrossAttention(nn.Module):
  """Multi-head attention of queries over a small set of keys, returning the weights.

  q: [B, P, d] (or [P, d], shared over the batch), kv: [B, K, d] ->
  (out [B, P, d], attention [B, heads, P, K], softmax over K).
  """
  num_heads: int

  @nn.compact
  def __call__(self, q, kv):
    d = kv.shape[-1]
    if d % self.num_heads:
      raise ValueError(f"model width {d} is not divisible by num_heads={self.num_heads}.")
    head = d // self.num_heads
    split = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, head))
    queries = split(nn.Dense(d, name="query")(q))
    keys = split(nn.Dense(d, name="key")(kv))
    values = split(nn.Dense(d, name="value")(kv))
    if queries.ndim == 3:  # [P, heads, head]: shared over the batch
      logits = jnp.einsum("phc,bkhc->bhpk", queries, keys)
    else:
      logits = jnp.einsum("bphc,bkhc->bhpk", queries, keys)
    attention = jax.nn.softmax(logits / jnp.sqrt(head), axis=-1)
    out = jnp.einsum("bhpk,bkhc->bphc", attention, values)
    out = nn.Dense(d, name="out")(out.reshape(out.shape[:-2] + (d,)))
    return out, attention
