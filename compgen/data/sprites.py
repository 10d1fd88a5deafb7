"""Differentiable sprites: K soft-edged objects alpha-composited on a background.

The true generator of the sprites datasets. Every function here is pure JAX: it runs
under `jit` and `vmap` on CPU, GPU and TPU, and the image is differentiable in every
continuous latent (soft signed-distance edges), so searching through it recovers latents.

Latents live in the normalised cube: `z: [K, 4]` in [0, 1] with columns
`LATENT_NAMES = ("x", "y", "scale", "hue")`; `shape: [K]` int indexes `spec.shapes`.
`SpritesSpec.physical` maps z to pixel-space parameters (PAPER.md section 4 ranges).
Object k = 0 is drawn first (at the back), object K - 1 last (in front).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import chex
import jax
import jax.numpy as jnp

from compgen import errors

LATENT_NAMES = ("x", "y", "scale", "hue")
FACTOR_NAMES = ("shape",)
SHAPES = ("circle", "square", "triangle")

# Physical ranges of each normalised latent (Wiedemer et al.'s sprites).
RANGES = {"x": (0.1, 0.9), "y": (0.2, 0.8), "scale": (0.09, 0.22), "hue": (0.05, 0.95)}


@dataclasses.dataclass(frozen=True)
class SpritesSpec:
  """What the renderer draws.

  Attributes:
    resolution: image height and width in pixels (8 to 512).
    num_slots: number of objects K (>= 1).
    shapes: names of the categorical shape values, a subset of `SHAPES`.
    x_strips: give object k the k-th of K vertical strips of the x range, so that
      near-equal slot latents (the diagonal ID split) do not stack objects on top of
      each other.
    strip_overlap: fraction of a strip that neighbouring strips share, in [0, 1): 0 keeps
      the strips apart; above 0 an object reaches into its neighbour's strip, so that
      scenes overlap — by a little ID, where the slots' x are near-equal, and by up to
      whole objects OOD, where object k sits left in its strip and object k - 1 right.
    edge_width: width of the soft edge in pixels (sigmoid temperature of the SDF).
    background: RGB of the background in [0, 1].
  """
  resolution: int = 64
  num_slots: int = 2
  shapes: tuple[str, ...] = SHAPES
  x_strips: bool = True
  strip_overlap: float = 0.0
  edge_width: float = 0.75
  background: tuple[float, float, float] = (0.1, 0.1, 0.1)

  def __post_init__(self):
    if not isinstance(self.resolution, int) or not 8 <= self.resolution <= 512:
      raise ValueError(f"resolution={self.resolution!r}: must be an int in [8, 512].")
    if not isinstance(self.num_slots, int) or self.num_slots < 1:
      raise ValueError(f"num_slots={self.num_slots!r}: must be an int >= 1 (K objects).")
    unknown = [s for s in self.shapes if s not in SHAPES]
    if unknown or not self.shapes:
      raise ValueError(f"shapes={self.shapes!r}: choose one or more of {SHAPES}.")
    if not 0.0 <= self.strip_overlap < 1.0:
      raise ValueError(f"strip_overlap={self.strip_overlap!r}: must be in [0, 1) (the "
                       "fraction of a strip its neighbour shares).")
    if self.edge_width <= 0:
      raise ValueError(f"edge_width={self.edge_width!r}: must be > 0 pixels.")
    if len(self.background) != 3 or not all(0 <= c <= 1 for c in self.background):
      raise ValueError(f"background={self.background!r}: must be 3 values in [0, 1].")

  @property
  def latent_dim(self) -> int:
    return len(LATENT_NAMES)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.resolution, self.resolution, 3)

  @property
  def num_categories(self) -> tuple[int, ...]:
    """Number of values of each categorical factor."""
    return (len(self.shapes),)

  def physical(self, z: jax.Array) -> dict[str, jax.Array]:
    """Maps normalised latents z: [..., K, 4] to physical parameters, each [..., K].

    x, y are centre coordinates as fractions of the canvas (y grows downwards), scale is
    the object's radius as a fraction of the canvas width, hue is in [0, 1).
    """
    out = {}
    for i, name in enumerate(LATENT_NAMES):
      lo, hi = RANGES[name]
      out[name] = lo + (hi - lo) * z[..., i]
    if self.x_strips:  # K strips of width w, each shifted by w (1 - o) from the last
      lo, hi = RANGES["x"]
      o = self.strip_overlap
      width = (hi - lo) / (self.num_slots - (self.num_slots - 1) * o)
      k = jnp.arange(self.num_slots, dtype=z.dtype)
      out["x"] = lo + width * (k * (1 - o) + z[..., 0])
    return out


def _norm(v):
  """‖v‖ over the last axis with a finite gradient at 0 (every SDF is differentiated)."""
  return jnp.sqrt(jnp.sum(v**2, axis=-1) + 1e-12)


def _sdf_circle(p):
  return _norm(p) - 1.0


def _sdf_square(p, half_side=0.8):
  q = jnp.abs(p) - half_side
  outside = _norm(jnp.maximum(q, 0.0))
  inside = jnp.minimum(jnp.max(q, axis=-1), 0.0)
  return outside + inside


def _sdf_triangle(p, r=0.9):
  """Signed distance to an upright equilateral triangle (apex up, y grows downwards)."""
  k = jnp.sqrt(3.0)
  px = jnp.abs(p[..., 0]) - r
  py = -p[..., 1] + r / k
  fold = px + k * py > 0
  px, py = (jnp.where(fold, (px - k * py) / 2, px), jnp.where(fold, (-k * px - py) / 2, py))
  px = px - jnp.clip(px, -2 * r, 0.0)
  return -_norm(jnp.stack([px, py], axis=-1)) * jnp.sign(py)


_SDFS = {"circle": _sdf_circle, "square": _sdf_square, "triangle": _sdf_triangle}


def hue_to_rgb(hue: jax.Array) -> jax.Array:
  """Smooth hue wheel: [...] -> [..., 3] in [0, 1] (cosine palette, differentiable)."""
  phase = jnp.array([0.0, 1.0 / 3.0, 2.0 / 3.0], dtype=hue.dtype)
  return 0.5 + 0.5 * jnp.cos(2 * jnp.pi * (hue[..., None] - phase))


def object_alphas(spec: SpritesSpec, z: jax.Array, shape: jax.Array) -> jax.Array:
  """Coverage of each object before occlusion.

  Args:
    spec: what to draw.
    z: [K, 4] normalised latents of one scene.
    shape: [K] int shape index into `spec.shapes`.
  Returns:
    alpha: [K, H, W] in (0, 1).
  """
  chex.assert_shape(z, (spec.num_slots, spec.latent_dim))
  chex.assert_shape(shape, (spec.num_slots,))
  phys = spec.physical(z)
  res = spec.resolution
  coords = (jnp.arange(res, dtype=z.dtype) + 0.5) / res
  grid = jnp.stack(jnp.meshgrid(coords, coords, indexing="xy"), axis=-1)  # [H, W, 2]=(u, v)
  centre = jnp.stack([phys["x"], phys["y"]], axis=-1)  # [K, 2]
  scale = phys["scale"][:, None, None]  # [K, 1, 1]
  local = (grid[None] - centre[:, None, None, :]) / scale[..., None]  # [K, H, W, 2]
  sdfs = jnp.stack([_SDFS[name](local) for name in spec.shapes], axis=0)  # [S, K, H, W]
  onehot = jax.nn.one_hot(shape, len(spec.shapes), dtype=z.dtype)  # [K, S]
  sdf = jnp.einsum("skhw,ks->khw", sdfs, onehot)
  sdf_pixels = sdf * scale * res
  return jax.nn.sigmoid(-sdf_pixels / spec.edge_width)


def composite(spec: SpritesSpec, z: jax.Array, alpha: jax.Array) -> jax.Array:
  """Alpha-composites objects back (k=0) to front (k=K-1): -> image [H, W, 3]."""
  colours = hue_to_rgb(spec.physical(z)["hue"])  # [K, 3]
  image = jnp.broadcast_to(jnp.asarray(spec.background, z.dtype), spec.image_shape)
  for k in range(spec.num_slots):
    a = alpha[k][..., None]
    image = a * colours[k] + (1.0 - a) * image
  return image


def render(spec: SpritesSpec, z: jax.Array, shape: jax.Array) -> jax.Array:
  """The true generator f(z): one scene z: [K, 4], shape: [K] -> image [H, W, 3]."""
  return composite(spec, z, object_alphas(spec, z, shape))


def visibility(alpha: jax.Array) -> jax.Array:
  """Visible fraction of each object after occlusion by those in front: [K, H, W] -> [K]."""
  num_slots = alpha.shape[0]
  in_front = [jnp.prod(1.0 - alpha[k + 1:], axis=0) for k in range(num_slots)]
  visible = jnp.stack([alpha[k] * in_front[k] for k in range(num_slots)])
  return visible.sum((-2, -1)) / jnp.maximum(alpha.sum((-2, -1)), 1e-6)


def object_masks(spec: SpritesSpec, z: jax.Array, shape: jax.Array) -> jax.Array:
  """Where each object covers a pixel (coverage > 1/2, hidden parts included):
  z [N, K, 4], shape [N, K] -> [N, K, H, W] bool. Their union is the foreground; pixels of
  two or more are where objects overlap."""
  return jax.vmap(lambda zi, si: object_alphas(spec, zi, si) > 0.5)(z, shape)


def render_batch_with_stats(spec: SpritesSpec, z: jax.Array, shape: jax.Array):
  """Renders a batch z: [B, K, 4], shape: [B, K] -> (images [B, H, W, 3], visibility [B, K])."""
  def one(zi, si):
    alpha = object_alphas(spec, zi, si)
    return composite(spec, zi, alpha), visibility(alpha)
  return jax.vmap(one)(z, shape)


def make_renderer(spec: SpritesSpec):
  """Returns jitted `render_batch(z: [B, K, 4], shape: [B, K]) -> (images, visibility)`."""
  return jax.jit(lambda z, shape: render_batch_with_stats(spec, z, shape))


def shape_index(spec: SpritesSpec, names: Sequence[str]) -> list[int]:
  """Shape names -> indices into `spec.shapes`, with a clear error for unknown names."""
  out = []
  for name in names:
    if name not in spec.shapes:
      raise errors.ConfigError(f"Unknown shape {name!r}: this spec draws {spec.shapes}.")
    out.append(spec.shapes.index(name))
  return out
