"""Small building blocks shared by the decoders and encoders."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


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


# Kernel tap of a 4×4 stride-2 "SAME" transposed convolution along one axis, by the input
# window offset d ∈ {0, 1} and output phase a ∈ {0, 1}: tap 2d + 1 − a.
_SUBPIXEL_TAPS = np.array([[1, 0], [3, 2]])


class SubpixelConvTranspose(nn.Module):
  """`nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")` as dense matmuls.

  [N, H, W, C] -> [N, 2H, 2W, F]. Along each axis, output pixels 2p + 1 and 2p + 2 read only
  input pixels p and p + 1 (the input zero-padded by one): output 2p + 1 + a takes kernel
  tap 2d + 1 − a from input p + d, d, a ∈ {0, 1}. So every 2×2 window of the padded input
  yields a 2×2 block of output pixels, laid out as pixels (depth to space) with the one-pixel
  border cropped. Two orders of the same sums, whichever moves less memory:
    windows first (4F ≥ C): each window's [4C] values times one [4C, 4F] matrix of taps;
    taps first (4F < C, e.g. the last layer to RGB): each pixel's [C] values times all 16
      taps, [C, 16F], then each block sums its four windows' taps (shifted slices).
  The same parameters (kernel [4, 4, C, F], bias [F]) and initialisation as
  `nn.ConvTranspose` and the same function to float rounding, as matmuls, which XLA runs
  several times faster on CPU than its transposed convolution (results/bench_train/).
  """
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):  # [N, H, W, C]
    n, h, w, c = x.shape
    f = self.features
    kernel = self.param("kernel", self.kernel_init, (4, 4, c, f))
    bias = self.param("bias", nn.initializers.zeros, (f,))
    if 4 * f >= c:
      padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
      windows = jnp.concatenate([padded[:, dy:dy + h + 1, dx:dx + w + 1]
                                 for dy in (0, 1) for dx in (0, 1)], axis=-1)  # [N, H+1, W+1, 4C]
      taps = kernel[_SUBPIXEL_TAPS][:, :, _SUBPIXEL_TAPS]  # [dy, a, dx, b, C, F]
      matrix = taps.transpose(0, 2, 4, 1, 3, 5).reshape(4 * c, 4 * f)
      blocks = (windows.reshape(-1, 4 * c) @ matrix).reshape(n, h + 1, w + 1, 2, 2, f)
      blocks = blocks.transpose(0, 1, 3, 2, 4, 5)
    else:
      per_tap = x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, 16 * f)
      per_tap = per_tap.reshape(n, h, w, 4, 4, f)
      per_tap = jnp.pad(per_tap, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
      phase = lambda a, b: sum(
          per_tap[:, dy:dy + h + 1, dx:dx + w + 1, _SUBPIXEL_TAPS[dy, a], _SUBPIXEL_TAPS[dx, b]]
          for dy in (0, 1) for dx in (0, 1))  # [N, H+1, W+1, F]
      blocks = jnp.stack([jnp.stack([phase(a, b) for b in (0, 1)], axis=3) for a in (0, 1)],
                         axis=2)  # [N, H+1, a, W+1, b, F]
    image = blocks.reshape(n, 2 * h + 2, 2 * w + 2, f)
    return image[:, 1:-1, 1:-1] + bias


class PatchConv(nn.Module):
  """`nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME")` as one matmul of patches.

  [N, H, W, C] -> [N, H/2, W/2, F], H and W even. The input zero-padded by one is cut into
  2×2 blocks (space to depth, [N, H/2 + 1, W/2 + 1, 4C]); output pixel (p, q) reads the 4×4
  input patch at rows 2p − 1 … 2p + 2, which is blocks p, p + 1 × q, q + 1: their [16C]
  values times the kernel as a [16C, F] matrix. The same parameters, initialisation and
  function as `nn.Conv`. Faster on CPU where the patch matrix is small (an image's few
  channels: the first layer of an encoder, whose input needs no gradient); XLA's own strided
  convolution is as fast or faster on wide feature maps (results/bench_train/).
  """
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):  # [N, H, W, C]
    n, h, w, c = x.shape
    if h % 2 or w % 2:
      raise ValueError(f"PatchConv halves even image sizes, not {h}x{w}.")
    kernel = self.param("kernel", self.kernel_init, (4, 4, c, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    blocks = padded.reshape(n, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
    blocks = blocks.reshape(n, h // 2 + 1, w // 2 + 1, 4 * c)
    patches = jnp.concatenate([blocks[:, dy:dy + h // 2, dx:dx + w // 2]
                               for dy in (0, 1) for dx in (0, 1)], axis=-1)  # [.., (dy,dx,py,px,C)]
    matrix = kernel.reshape(2, 2, 2, 2, c, self.features).transpose(0, 2, 1, 3, 4, 5)
    out = patches.reshape(-1, 16 * c) @ matrix.reshape(16 * c, self.features)
    return out.reshape(n, h // 2, w // 2, self.features) + bias


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


SOFTMAX_SCALES = ("head", "query_width")


class CrossAttention(nn.Module):
  """Multi-head attention of queries over a small set of keys, returning the weights.

  q: [B, P, d_q] (or [P, d_q], shared over the batch), kv: [B, K, d] ->
  (out [B, P, d], attention [B, heads, P, K], softmax over K) with
  attention = softmax(q W_q (kv W_k)ᵀ · s) per head and s = 1/√(d / heads) for `scale` "head"
  (Vaswani et al.) or s = 1/√d_q for "query_width", the temperature of Brady et al.'s released
  `models/transformer.MultiHeadAttention` (`self.scale = d_q ** -0.5`).
  """
  num_heads: int
  scale: str = "head"

  @nn.compact
  def __call__(self, q, kv):
    d = kv.shape[-1]
    if d % self.num_heads:
      raise ValueError(f"model width {d} is not divisible by num_heads={self.num_heads}.")
    if self.scale not in SOFTMAX_SCALES:
      raise ValueError(f"Unknown softmax scale {self.scale!r}: choose one of {SOFTMAX_SCALES}.")
    head = d // self.num_heads
    split = lambda t: t.reshape(t.shape[:-1] + (self.num_heads, head))
    queries = split(nn.Dense(d, name="query")(q))
    keys = split(nn.Dense(d, name="key")(kv))
    values = split(nn.Dense(d, name="value")(kv))
    if queries.ndim == 3:  # [P, heads, head]: shared over the batch
      logits = jnp.einsum("phc,bkhc->bhpk", queries, keys)
    else:
      logits = jnp.einsum("bphc,bkhc->bhpk", queries, keys)
    width = head if self.scale == "head" else q.shape[-1]
    attention = jax.nn.softmax(logits / jnp.sqrt(width), axis=-1)
    out = jnp.einsum("bhpk,bkhc->bphc", attention, values)
    out = nn.Dense(d, name="out")(out.reshape(out.shape[:-2] + (d,)))
    return out, attention
