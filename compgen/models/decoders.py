"""Slot decoders f̂: z [B, K, m] -> output [B, H, W, C] (images) or [B, d_x] (vectors).

Every decoder returns a dict with "output" and decoder-specific extras:
  additive       (F_int, n = 0) f̂(z) = b + Σ_k φ(z_k, k): each slot decoded alone (shared
                 weights with a slot index), outputs summed. "slots": [B, K, ...] per-slot terms.
  alpha          per-slot RGB and mask logits, masks softmax-normalised over the slots (and a
                 learned background): x̂ = Σ_k m_k ⊙ rgb_k. Images only. "masks": [B, K+1, H, W].
  transformer    the paper's cross-attention decoder: pixel queries from Fourier features of the
                 coordinates (learned queries per output dimension for vectors), slots as
                 keys/values, `num_layers` cross-attention blocks, an output MLP.
                 "attention": [B, layers, heads, P, K] for the interaction penalty
                 ([.., K+1] with `background_token`: a learned key/value, last, that
                 background pixels can attend to instead of an object's slot).
  unconstrained  negative control outside F_int: all slots concatenated and decoded jointly.
  conv           (F_int, n = 0) f̂(z) = b + Σ_k φ(z_k) with one φ shared by the slots: an MLP
                 to a 4×4 feature map, then stride-2 transposed convolutions up to the image
                 (the slot decoder of Wiedemer et al.'s released code), computed as sub-pixel
                 matmuls (`layers.SubpixelConvTranspose`; `upsampling="xla"`: XLA's transposed
                 convolution, the same function and parameters, for reference). Images 2^n ≥ 8
                 only. "slots": [B, K, H, W, C].
  unconstrained_conv  its negative control: the same network drawing concat_k z_k at once.
For images the per-pixel networks of the other decoders are spatial-broadcast MLPs on Fourier
features of the pixel coordinates.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from compgen import errors
from compgen.models import layers


def _pixel_features(shape, num_frequencies):
  height, width, _ = shape
  return layers.fourier_features(layers.pixel_coordinates(height, width), num_frequencies)


class _SlotPixelMLP(nn.Module):
  """Spatial broadcast: per (slot, pixel) MLP of [slot input, pixel features] -> [B, S, P, out].

  The first layer is split into a slot part and a pixel part that are added (the same as a
  Dense on their concatenation, without materialising it).
  """
  hidden: Sequence[int]
  out: int
  pixel_features: jax.Array

  @nn.compact
  def __call__(self, slot_inputs):  # [B, S, d]
    h = (nn.Dense(self.hidden[0], name="slot_in")(slot_inputs)[:, :, None, :]
         + nn.Dense(self.hidden[0], use_bias=False, name="pixel_in")(self.pixel_features))
    h = nn.gelu(h)
    return layers.MLP(tuple(self.hidden[1:]) + (self.out,))(h)


def _slot_inputs(z, slot_index: bool):
  """[B, K, m] -> [B, K, m + K] with each slot tagged by its one-hot index (slot k decoded by
  φ(·, k)), or z unchanged (one φ shared by exchangeable slots)."""
  if not slot_index:
    return z
  b, k, _ = z.shape
  return jnp.concatenate([z, jnp.broadcast_to(jnp.eye(k, dtype=z.dtype), (b, k, k))], axis=-1)


class AdditiveDecoder(nn.Module):
  """f̂(z) = b + Σ_k φ(z_k, k): additive over slots (F_int with n = 0); with
  `slot_index=False`, f̂(z) = b + Σ_k φ(z_k), one φ for exchangeable slots."""
  output_shape: tuple[int, ...]
  hidden: Sequence[int] = (64, 64, 64)
  num_frequencies: int = 6
  slot_index: bool = True

  @nn.compact
  def __call__(self, z):
    inputs = _slot_inputs(z, self.slot_index)
    bias = self.param("bias", nn.initializers.zeros, self.output_shape)
    if len(self.output_shape) == 1:
      slots = layers.MLP(tuple(self.hidden) + self.output_shape)(inputs)  # [B, K, d_x]
    else:
      feats = _pixel_features(self.output_shape, self.num_frequencies)
      slots = _SlotPixelMLP(self.hidden, self.output_shape[-1], feats)(inputs)
      slots = slots.reshape(slots.shape[:2] + self.output_shape)  # [B, K, H, W, C]
    return {"output": bias + slots.sum(axis=1), "slots": slots}


class AlphaDecoder(nn.Module):
  """x̂ = Σ_k m_k ⊙ rgb_k with masks m = softmax over slots (+ a learned background); slot k's
  RGB and mask logit come from φ(z_k, k), or from one shared φ(z_k) with `slot_index=False`."""
  output_shape: tuple[int, ...]
  hidden: Sequence[int] = (64, 64, 64)
  num_frequencies: int = 6
  slot_index: bool = True

  @nn.compact
  def __call__(self, z):
    if len(self.output_shape) != 3:
      raise ValueError("The alpha-compositing decoder draws images; for vectors use "
                       "'additive', 'transformer' or 'unconstrained'.")
    h, w, c = self.output_shape
    feats = _pixel_features(self.output_shape, self.num_frequencies)
    out = _SlotPixelMLP(self.hidden, c + 1, feats)(_slot_inputs(z, self.slot_index))
    rgb = nn.sigmoid(out[..., :c])
    bg_rgb = nn.sigmoid(self.param("background_rgb", nn.initializers.zeros, (c,)))
    bg_logit = self.param("background_logit", nn.initializers.zeros, ())
    logits = jnp.concatenate(
        [out[..., c], jnp.broadcast_to(bg_logit, out.shape[:1] + (1,) + out.shape[2:3])], axis=1)
    masks = jax.nn.softmax(logits, axis=1)  # [B, K+1, P]
    colours = jnp.concatenate([rgb, jnp.broadcast_to(bg_rgb, rgb[:, :1].shape)], axis=1)
    image = jnp.einsum("bkp,bkpc->bpc", masks, colours).reshape((-1, h, w, c))
    return {"output": image, "masks": masks.reshape(masks.shape[:2] + (h, w)),
            "slots": colours[:, :-1].reshape(rgb.shape[:2] + (h, w, c))}


class TransformerDecoder(nn.Module):
  """Cross-attention decoder: output queries attend to the slots (Brady et al. 2025).

  background_token: attend to a learned token beside the K slots, the analogue of the released
  code's extra slot for the background (5 slots for ≤ 4 sprites): without it, the penalty asks
  every background pixel to pick an object's slot.
  """
  output_shape: tuple[int, ...]
  width: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_frequencies: int = 6
  background_token: bool = False
  softmax_scale: str = "head"  # or "query_width": the released temperature (layers.CrossAttention)

  @nn.compact
  def __call__(self, z):
    if len(self.output_shape) == 1:
      queries = self.param("queries", nn.initializers.normal(1.0),
                           (self.output_shape[0], self.width))
      out_dim = 1
    else:
      queries = layers.MLP((self.width, self.width))(
          _pixel_features(self.output_shape, self.num_frequencies))
      out_dim = self.output_shape[-1]
    kv = layers.MLP((self.width, self.width))(z)  # [B, K, d]
    if self.background_token:
      token = self.param("background_token", nn.initializers.normal(1.0), (1, self.width))
      kv = jnp.concatenate([kv, jnp.broadcast_to(token, kv.shape[:-2] + token.shape)], axis=-2)
    q = queries
    maps = []
    for i in range(self.num_layers):
      update, attention = layers.CrossAttention(self.num_heads, self.softmax_scale,
                                                name=f"cross_attention_{i}")(
          nn.LayerNorm(name=f"norm_q_{i}")(q), nn.LayerNorm(name=f"norm_kv_{i}")(kv))
      q = q + update  # [B, P, d] once the batch enters
      q = q + layers.MLP((2 * self.width, self.width), name=f"mlp_{i}")(
          nn.LayerNorm(name=f"norm_mlp_{i}")(q))
      maps.append(attention)
    out = layers.MLP((self.width, out_dim), name="readout")(nn.LayerNorm()(q))  # [B, P, C]
    return {"output": out.reshape((-1,) + self.output_shape),
            "attention": jnp.stack(maps, axis=1)}  # [B, L, heads, P, K (+ 1)]


class UnconstrainedDecoder(nn.Module):
  """Negative control: f̂(z) = g(concat_k z_k), every slot free to interact with every other."""
  output_shape: tuple[int, ...]
  hidden: Sequence[int] = (64, 64, 64)
  num_frequencies: int = 6

  @nn.compact
  def __call__(self, z):
    flat = z.reshape(z.shape[0], 1, -1)
    if len(self.output_shape) == 1:
      out = layers.MLP(tuple(self.hidden) + self.output_shape)(flat[:, 0])
    else:
      feats = _pixel_features(self.output_shape, self.num_frequencies)
      out = _SlotPixelMLP(self.hidden, self.output_shape[-1], feats)(flat)[:, 0]
    return {"output": out.reshape((-1,) + self.output_shape)}


UPSAMPLING = ("subpixel", "xla")


def _conv_trunk(x, hidden, channels, output_shape, name, upsampling):
  """φ up to its last layer: [N, d] -> ([N, H/2, W/2, `channels`], the last layer). An MLP
  (`hidden`, then 4·4·`channels`, ELU between) to a 4×4×`channels` map, log2(H/4) − 1
  transposed convolutions (4×4, stride 2, "SAME", ELU), and the last one to C channels (no
  activation: linear), as `layers.SubpixelConvTranspose` ("subpixel") or `nn.ConvTranspose`
  ("xla"), the same parameters under the same names. Called inside a compact module: the
  layers are its own."""
  if upsampling not in UPSAMPLING:
    raise errors.ConfigError(
        f"Unknown upsampling {upsampling!r} for the {name} decoder: choose one of "
                     f"{UPSAMPLING}.")
  if len(output_shape) != 3:
    raise ValueError(f"The {name} decoder draws images; for vectors use 'additive', "
                     "'transformer' or 'unconstrained'.")
  h, w, c = output_shape
  ups = int(round(math.log2(h / 4))) if h >= 8 else 0
  if h != w or h < 8 or h != 4 * 2**ups:
    raise ValueError(f"The {name} decoder draws square images of 2^n >= 8 pixels a side, not "
                     f"{h}x{w}: use a resolution of 8, 16, 32, 64, ...")
  def upsample(features, i):
    if upsampling == "subpixel":
      return layers.SubpixelConvTranspose(features, name=f"ConvTranspose_{i}")
    return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME",
                            name=f"ConvTranspose_{i}")
  for width in tuple(hidden) + (4 * 4 * channels,):
    x = nn.elu(nn.Dense(width)(x))
  x = x.reshape(x.shape[0], 4, 4, channels)
  for i in range(ups - 1):
    x = nn.elu(upsample(channels, i)(x))
  return x, upsample(c, ups - 1)


class ConvDecoder(nn.Module):
  """f̂(z) = b + Σ_k φ(z_k): φ (`_conv_trunk`, then its last layer) draws each slot alone,
  the slots' images are summed. One φ for exchangeable slots. φ's last layer L is linear, so
  the output is computed as b + L(Σ_k h_k) + (K − 1)·b_L from the slots' feature maps h_k —
  the same function with one last layer instead of K; "slots" [B, K, H, W, C] = L(h_k)
  (under jit, computed only where used)."""
  output_shape: tuple[int, ...]
  hidden: Sequence[int] = (256, 256)
  channels: int = 32
  upsampling: str = "subpixel"

  @nn.compact
  def __call__(self, z):
    b, k, _ = z.shape
    maps, last = _conv_trunk(z.reshape(b * k, -1), self.hidden, self.channels,
                             self.output_shape, "conv", self.upsampling)
    slots = last(maps).reshape((b, k) + tuple(self.output_shape))
    summed = last(maps.reshape((b, k) + maps.shape[1:]).sum(axis=1))
    bias = self.param("bias", nn.initializers.zeros, self.output_shape)
    output = bias + summed + (k - 1) * last.variables["params"]["bias"]
    return {"output": output, "slots": slots}


class UnconstrainedConvDecoder(nn.Module):
  """Negative control for the conv decoder: f̂(z) = b + g(concat_k z_k), the same network as
  `ConvDecoder`'s φ drawing all slots at once, so every slot may interact with every other."""
  output_shape: tuple[int, ...]
  hidden: Sequence[int] = (256, 256)
  channels: int = 32
  upsampling: str = "subpixel"

  @nn.compact
  def __call__(self, z):
    maps, last = _conv_trunk(z.reshape(z.shape[0], -1), self.hidden, self.channels,
                             self.output_shape, "unconstrained_conv", self.upsampling)
    bias = self.param("bias", nn.initializers.zeros, self.output_shape)
    return {"output": bias + last(maps)}


def interaction_penalty(attention: jax.Array) -> jax.Array:
  """Σ_{i<j} a_i a_j per output position, a = attention averaged over layers and summed over
  heads (the penalty of Brady et al.'s released code: H² times the overlap of head-averaged
  attention, so every head must give a pixel to the same slot).

  attention: [B, L, heads, P, K] (softmax over K) -> scalar, averaged over pixels and batch.
  0 when every head and layer gives each pixel to one slot; H²(K-1)/(2K) when all attend
  uniformly. Uses Σ_{i<j} a_i a_j = ((Σ a)² − Σ a²) / 2.
  """
  a = attention.mean(axis=1).sum(axis=1)  # [B, P, K], Σ_k a_k = heads
  pairwise = 0.5 * (a.sum(-1) ** 2 - (a**2).sum(-1))
  return pairwise.mean()
