"""Slot encoders ĝ: image [B, H, W, C] or vector [B, d_x] -> slots [B, K, m].

Each returns {"mean": [B, K, m]} and, when `variational`, {"logvar": [B, K, m]} too.
  cnn          strided convolutions (images) or an MLP (vectors), then a slot head that maps
               the pooled features to K slots of m dims.
  conv         the encoder of Wiedemer et al.'s released code: 4×4 stride-2 convolutions with
               ELU (the first as a patch matmul, `layers.PatchConv`), flattened, an ELU MLP,
               the slot head. Images only.
  transformer  patch (or per-dimension) tokens with learned positions, self-attention
               blocks, then K learned slot queries that cross-attend to the tokens.
  query_transformer  Brady et al.'s released encoder (`models/encoders.SlotEncoder`,
               enc_type "transformer"): a stride-1 conv backbone with a soft position
               embedding, then K learned slot queries through `depth` layers of
               cross-attention to the features, self-attention among the slots and a
               feed-forward block; the last LayerNorm's output is the slot. Images only.
  slot_attention  a stride-1 conv backbone with a positional embedding, then slot attention
               (Locatello et al. 2020): K slots compete for the feature-map positions (softmax
               over slots), each updated by a GRU from the mean of the values it won, for
               `iterations` rounds. Images only.
Slot k always comes from head/query k (slot attention: from its own learned initial slot), so
slots have a fixed order and the encoder is deterministic.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from compgen import errors
from compgen.models import layers


def _slot_head(features, num_slots, slot_dim, variational, name="slot_head"):
  """[B, d] -> slots: a Dense to K * m (or K * 2m for mean and log-variance)."""
  per_slot = slot_dim * (2 if variational else 1)
  out = nn.Dense(num_slots * per_slot, name=name)(features)
  return _split(out.reshape(out.shape[0], num_slots, per_slot), slot_dim, variational)


def _split(out, slot_dim, variational):
  if variational:
    return {"mean": out[..., :slot_dim], "logvar": out[..., slot_dim:]}
  return {"mean": out}


class CNNEncoder(nn.Module):
  """Conv stack (stride 2 each) -> flatten -> MLP -> slot head."""
  num_slots: int
  slot_dim: int
  variational: bool = False
  channels: Sequence[int] = (32, 64, 64, 64)
  hidden: int = 256

  @nn.compact
  def __call__(self, x):
    if x.ndim == 4:
      for ch in self.channels:
        x = nn.gelu(nn.Conv(ch, (4, 4), strides=(2, 2), padding="SAME")(x))
      x = x.reshape(x.shape[0], -1)
    x = layers.MLP((self.hidden, self.hidden))(x)
    return _slot_head(nn.gelu(x), self.num_slots, self.slot_dim, self.variational)


class ConvEncoder(nn.Module):
  """Conv stack (4×4, stride 2, ELU) -> flatten -> ELU MLP -> slot head (images only).

  `first_layer="patches"` computes the first convolution as `layers.PatchConv` (the same
  function and parameters; faster on CPU), "xla" as XLA's convolution like the others.
  """
  num_slots: int
  slot_dim: int
  variational: bool = False
  channels: Sequence[int] = (32, 32, 32, 32)
  hidden: Sequence[int] = (256, 256)
  first_layer: str = "patches"

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise ValueError("The conv encoder reads images [B, H, W, C]; for vectors use 'cnn' or "
                       "'transformer'.")
    if self.first_layer not in ("patches", "xla"):
      raise errors.ConfigError(
          f"Unknown first_layer {self.first_layer!r} for the conv encoder: choose "
                       "'patches' or 'xla'.")
    for i, ch in enumerate(self.channels):
      if i == 0 and self.first_layer == "patches":  # the image: few channels, no gradient
        x = nn.elu(layers.PatchConv(ch, name="Conv_0")(x))
      else:
        x = nn.elu(nn.Conv(ch, (4, 4), strides=(2, 2), padding="SAME", name=f"Conv_{i}")(x))
    x = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      x = nn.elu(nn.Dense(width)(x))
    return _slot_head(x, self.num_slots, self.slot_dim, self.variational)


class _Block(nn.Module):
  num_heads: int

  @nn.compact
  def __call__(self, x):
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(nn.LayerNorm()(x))
    return x + layers.MLP((2 * x.shape[-1], x.shape[-1]))(nn.LayerNorm()(x))


class TransformerEncoder(nn.Module):
  """Tokens + learned positions -> self-attention -> K learned slot queries cross-attend."""
  num_slots: int
  slot_dim: int
  variational: bool = False
  width: int = 64
  depth: int = 2
  num_heads: int = 4
  patch_size: int = 4

  @nn.compact
  def __call__(self, x):
    if x.ndim == 4:
      if x.shape[1] % self.patch_size or x.shape[2] % self.patch_size:
        raise ValueError(f"Image size {x.shape[1:3]} is not divisible by patch_size="
                         f"{self.patch_size}; choose a patch size that divides it.")
      tokens = nn.Conv(self.width, (self.patch_size,) * 2, strides=(self.patch_size,) * 2,
                       padding="VALID")(x)
      tokens = tokens.reshape(tokens.shape[0], -1, self.width)
    else:
      tokens = nn.Dense(self.width)(x[..., None])  # one token per input dimension
    positions = self.param("positions", nn.initializers.normal(0.02), tokens.shape[1:])
    tokens = tokens + positions
    for _ in range(self.depth):
      tokens = _Block(self.num_heads)(tokens)
    tokens = nn.LayerNorm()(tokens)
    queries = self.param("slot_queries", nn.initializers.normal(1.0),
                         (self.num_slots, self.width))
    queries = jnp.broadcast_to(queries, (x.shape[0],) + queries.shape)
    slots = queries + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(
        queries, tokens)
    slots = slots + layers.MLP((2 * self.width, self.width))(nn.LayerNorm()(slots))
    per_slot = self.slot_dim * (2 if self.variational else 1)
    return _split(nn.Dense(per_slot, name="slot_head")(nn.LayerNorm()(slots)), self.slot_dim,
                  self.variational)


QUERY_INITS = {"uniform": lambda _: nn.initializers.uniform(1.0),
               "normal": nn.initializers.normal}


class QueryTransformerEncoder(nn.Module):
  """Learned slot queries that cross-attend to conv features (Brady et al. 2025's encoder).

  The released `SlotEncoder` (JackBrady/interaction-asymmetry, `models/encoders.py`,
  `models/transformer.py`, `models/positional_encodings.py`), at width D = m (2m for a VAE):
    F = GELU(conv5×5(...)) over `channels`, then one to D; F += Dense([y, x, 1−y, 1−x])
    F = MLP_GELU(LN_{N×D}(F))          (a LayerNorm over all N positions and D channels
                                         jointly, without parameters: built anew each call)
    s = learned queries [K, D] ~ U[0, 1) (`query_init` "uniform"; "normal": N(0, std²), distinct
        slots from the start: the released init gives slots of cosine 0.98–0.99 at step 0)
    `depth` times:  s += MHA(LN(s), LN(F));  s += MHA(LN(s), LN(s));
                    s += W₂ GELU(W₁ LN(s))  (W₁: D -> 2D)
    slots = LN(s), each MHA with `num_heads` heads at temperature 1/√D ("query_width").
  (GELU in its tanh form, torch's default is the erf form; the learned LayerNorms' ε is Flax's.)
  A VAE reads the slot as (μ, s) halves with σ = exp(s) / 2 (the released `sample_zh`),
  returned as logvar = 2 s − 2 ln 2.
  """
  num_slots: int
  slot_dim: int
  variational: bool = False
  channels: Sequence[int] = (32, 32, 32)
  depth: int = 5
  num_heads: int = 4
  softmax_scale: str = "query_width"
  query_init: str = "uniform"
  query_init_std: float = 3.0

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise ValueError("The query-transformer encoder reads images [B, H, W, C]; for vectors "
                       "use 'cnn' or 'transformer'.")
    b, h, w, _ = x.shape
    width = self.slot_dim * (2 if self.variational else 1)
    for ch in tuple(self.channels) + (width,):
      x = nn.gelu(nn.Conv(ch, (5, 5), padding="SAME")(x))
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(0, 1, h), jnp.linspace(0, 1, w), indexing="ij"),
                     -1)
    x = x + nn.Dense(width, name="position")(jnp.concatenate([grid, 1 - grid], -1))
    features = nn.LayerNorm(reduction_axes=(-2, -1), use_scale=False, use_bias=False,
                            epsilon=1e-5)(x.reshape(b, h * w, width))
    features = layers.MLP((width, width), name="feature_mlp")(features)
    slots = jnp.broadcast_to(
        self.param("slot_queries", QUERY_INITS[self.query_init](self.query_init_std),
                   (self.num_slots, width)),
        (b, self.num_slots, width))
    for i in range(self.depth):
      attend = lambda name: layers.CrossAttention(self.num_heads, self.softmax_scale,
                                                  name=f"{name}_{i}")
      slots = slots + attend("cross_attention")(nn.LayerNorm(name=f"norm_q_{i}")(slots),
                                                nn.LayerNorm(name=f"norm_kv_{i}")(features))[0]
      normed = nn.LayerNorm(name=f"norm_self_{i}")(slots)
      slots = slots + attend("self_attention")(normed, normed)[0]
      slots = slots + layers.MLP((2 * width, width), name=f"mlp_{i}")(
          nn.LayerNorm(name=f"norm_mlp_{i}")(slots))
    slots = nn.LayerNorm(name="norm_out")(slots)
    if not self.variational:
      return {"mean": slots}
    return {"mean": slots[..., :self.slot_dim],
            "logvar": 2 * slots[..., self.slot_dim:] - 2 * jnp.log(2.0)}


class SlotAttentionEncoder(nn.Module):
  """Conv features + position embedding -> slot attention with learned initial slots.

  Attention a = softmax over slots of q(slots) · k(inputs) / √d  [B, N, K]; each slot takes
  the a-weighted mean of v(inputs) over positions (weights renormalised per slot), then
  slots = GRU(slots, update) + MLP, `iterations` times; a Dense head maps each slot to m dims.
  """
  num_slots: int
  slot_dim: int
  variational: bool = False
  channels: Sequence[int] = (32, 32, 32)
  width: int = 64
  iterations: int = 3

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise ValueError("The slot-attention encoder reads images [B, H, W, C]; for vectors "
                       "use 'cnn' or 'transformer'.")
    b, h, w, _ = x.shape
    for ch in self.channels:
      x = nn.gelu(nn.Conv(ch, (5, 5), padding="SAME")(x))
    x = x + nn.Dense(x.shape[-1], name="position")(
        layers.pixel_coordinates(h, w).reshape(h, w, 2))
    inputs = layers.MLP((self.width, self.width))(nn.LayerNorm()(x.reshape(b, h * w, -1)))
    inputs = nn.LayerNorm(name="norm_inputs")(inputs)
    keys = nn.Dense(self.width, use_bias=False, name="key")(inputs)    # [B, N, d]
    values = nn.Dense(self.width, use_bias=False, name="value")(inputs)
    slots = jnp.broadcast_to(
        self.param("initial_slots", nn.initializers.normal(1.0), (self.num_slots, self.width)),
        (b, self.num_slots, self.width))
    query = nn.Dense(self.width, use_bias=False, name="query")
    gru = nn.GRUCell(self.width, name="gru")
    norm_slots, norm_mlp = nn.LayerNorm(name="norm_slots"), nn.LayerNorm(name="norm_mlp")
    mlp = layers.MLP((2 * self.width, self.width), name="slot_mlp")
    for _ in range(self.iterations):
      logits = jnp.einsum("bnd,bkd->bnk", keys, query(norm_slots(slots))) / jnp.sqrt(self.width)
      attention = jax.nn.softmax(logits, axis=-1) + 1e-8  # slots compete for each position
      weights = attention / attention.sum(axis=1, keepdims=True)
      updates = jnp.einsum("bnk,bnd->bkd", weights, values)
      slots, _ = gru(slots.reshape(-1, self.width), updates.reshape(-1, self.width))
      slots = slots.reshape(b, self.num_slots, self.width)
      slots = slots + mlp(norm_mlp(slots))
    per_slot = self.slot_dim * (2 if self.variational else 1)
    return _split(nn.Dense(per_slot, name="slot_head")(nn.LayerNorm()(slots)), self.slot_dim,
                  self.variational)
