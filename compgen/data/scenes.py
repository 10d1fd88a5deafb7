"""Datasets of scenes with known latents: a true generator, an ID/OOD split, sizes, a seed.

`DatasetSpec` fully determines a dataset; `generate(spec, split)` renders one split into numpy
arrays, in fixed-size chunks so that the result does not depend on how it is consumed.
Splits: "train" and "test_id" are drawn from the ID region (independent streams),
"test_ood" from the OOD region.

Fields of an example (all numpy):
  sprites:   image uint8 [H, W, 3], latents float32 [K, 4], factors int32 [K, 1],
             visibility float32 [K] (visible fraction of each object), overlap bool
             (some object less than `OVERLAP_VISIBILITY` visible)
  synthetic: x float32 [d_x], latents float32 [K, m]
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Union

import jax.numpy as jnp
import numpy as np

from compgen.data import splits as splits_lib
from compgen.data import sprites as sprites_lib
from compgen.data import synthetic as synthetic_lib

SPLITS = ("train", "test_id", "test_ood")
_DOMAIN = {"train": "id", "test_id": "id", "test_ood": "ood"}
_CHUNK = 512
OVERLAP_VISIBILITY = 0.95  # a scene overlaps when some object is less visible than this

GeneratorSpec = Union[sprites_lib.SpritesSpec, synthetic_lib.SyntheticSpec]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Everything that determines a generated dataset.

  Attributes:
    generator: a `SpritesSpec` (images) or `SyntheticSpec` (vectors).
    split: which slot combinations are ID.
    num_train, num_test_id, num_test_ood: examples per split.
    filter_overlap: sprites only: drop scenes in which some object is less than
      `min_visibility` visible, in every split.
    min_visibility: the visible fraction every kept object has: 0.95 (the default) keeps
      objects apart; lower keeps overlapping scenes but drops those in which an object is
      mostly hidden (and its latents with it).
    seed: seed of the latents (the synthetic generator's weights have their own seed).
  """
  generator: GeneratorSpec
  split: splits_lib.SplitSpec = splits_lib.SplitSpec()
  num_train: int = 10_000
  num_test_id: int = 1_000
  num_test_ood: int = 1_000
  filter_overlap: bool = True
  min_visibility: float = 0.95
  seed: int = 0

  def __post_init__(self):
    for name in ("num_train", "num_test_id", "num_test_ood"):
      if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
        raise ValueError(f"{name}={getattr(self, name)!r}: must be an int >= 0.")
    if not 0.0 < self.min_visibility <= 1.0:
      raise ValueError(f"min_visibility={self.min_visibility!r}: must be in (0, 1].")
    if not isinstance(self.generator, (sprites_lib.SpritesSpec, synthetic_lib.SyntheticSpec)):
      raise TypeError(f"generator must be a SpritesSpec or SyntheticSpec, got "
                      f"{type(self.generator).__name__}.")

  @property
  def kind(self) -> str:
    return "sprites" if isinstance(self.generator, sprites_lib.SpritesSpec) else "synthetic"

  @property
  def num_categories(self) -> tuple[int, ...]:
    return self.generator.num_categories if self.kind == "sprites" else ()

  def size(self, split: str) -> int:
    check_split(split)
    return getattr(self, "num_" + split)


def check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}: choose one of {SPLITS}.")


class _Renderer:
  """Jitted true generator for a spec; compiled once per spec and chunk shape."""
  _cache: dict = {}

  @classmethod
  def get(cls, generator: GeneratorSpec):
    if generator not in cls._cache:
      if isinstance(generator, sprites_lib.SpritesSpec):
        cls._cache[generator] = sprites_lib.make_renderer(generator)
      else:
        params, fn = synthetic_lib.make_generator(generator)
        cls._cache[generator] = lambda z, _: (fn(params, z), None)
    return cls._cache[generator]


def _render_chunk(spec: DatasetSpec, z: np.ndarray, factors: np.ndarray) -> dict[str, np.ndarray]:
  render = _Renderer.get(spec.generator)
  n = len(z)
  pad = _CHUNK - n  # fixed chunk shape: one compilation
  zp = np.concatenate([z, np.repeat(z[:1], pad, 0)]) if pad > 0 else z
  fp = np.concatenate([factors, np.repeat(factors[:1], pad, 0)]) if pad > 0 else factors
  out, vis = render(jnp.asarray(zp), jnp.asarray(fp[..., 0] if spec.kind == "sprites" else fp))
  example = {"latents": z}
  if spec.kind == "sprites":
    image = np.asarray(out)[:n]
    vis = np.asarray(vis)[:n]
    example.update(image=np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8),
                   factors=factors, visibility=vis.astype(np.float32),
                   overlap=vis.min(axis=1) < OVERLAP_VISIBILITY)
  else:
    example["x"] = np.asarray(out, np.float32)[:n]
  return example


def iter_chunks(spec: DatasetSpec, split: str) -> Iterator[dict[str, np.ndarray]]:
  """Yields the split as dicts of arrays of at most 512 examples, deterministically."""
  check_split(split)
  rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
  remaining = spec.size(split)
  rounds = 0
  while remaining > 0:
    z, factors = splits_lib.sample(
        spec.split, _DOMAIN[split], _CHUNK, rng, num_slots=spec.generator.num_slots,
        latent_dim=spec.generator.latent_dim, num_categories=spec.num_categories)
    chunk = _render_chunk(spec, z, factors)
    if spec.kind == "sprites" and spec.filter_overlap:
      keep = chunk["visibility"].min(axis=1) >= spec.min_visibility
      chunk = {k: v[keep] for k, v in chunk.items()}
    chunk = {k: v[:remaining] for k, v in chunk.items()}
    remaining -= len(chunk["latents"])
    rounds += 1
    if rounds > 20 and remaining > 0 and len(chunk["latents"]) == 0:
      raise RuntimeError(f"The overlap filter rejected every {split} scene in 20 rounds: "
                         "use smaller objects, more pixels, or filter_overlap=False.")
    if len(chunk["latents"]):
      yield chunk


def generate(spec: DatasetSpec, split: str) -> dict[str, np.ndarray]:
  """Renders a whole split: dict of arrays with a leading [N] axis (see module doc)."""
  chunks = list(iter_chunks(spec, split))
  if not chunks:
    return {k: v[:0] for k, v in _render_chunk(spec, *splits_lib.sample(
        spec.split, _DOMAIN[split], 1, np.random.default_rng(0),
        num_slots=spec.generator.num_slots, latent_dim=spec.generator.latent_dim,
        num_categories=spec.num_categories)).items()}
  return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def true_generator(spec: DatasetSpec):
  """The ground-truth f for oracle checks: `f(z: [K, m], factors: [K, c]) -> image or x`.

  Pure JAX (jit/vmap/grad-able). For sprites `factors[:, 0]` is the shape; the synthetic
  generator ignores `factors`.
  """
  gen = spec.generator
  if spec.kind == "sprites":
    return lambda z, factors: sprites_lib.render(gen, z, factors[..., 0])
  params = synthetic_lib.init_params(gen)
  return lambda z, factors=None: synthetic_lib.generate(gen, params, z)
