"""The data layer: true generators, ID/OOD splits, TFDS builders, your own data, batching.

Names load on first use (`compgen.data.load_split`, ...), so that importing a light module
of this package (e.g. `compgen.data.checks`) does not pull in TFDS. The TFDS builders
`compgen_sprites`, `compgen_synthetic` and `compgen_pug` register when compgen first reads
TFDS data, or on `import compgen.data.tfds_builders` / `import compgen.data.pug` (what to do
before calling `tfds.data_source("compgen_sprites/...")` yourself).
"""
import importlib

_NAMES = {"BatchIterator": "pipeline", "dataset_spec": "pipeline", "load_split": "pipeline",
          "load_splits": "pipeline",
          "DataError": "checks", "SPLITS": "scenes", "DatasetSpec": "scenes",
          "generate": "scenes", "true_generator": "scenes", "SplitSpec": "splits",
          "SpritesSpec": "sprites", "SyntheticSpec": "synthetic"}
__all__ = sorted(_NAMES)


def __getattr__(name):
  if name in _NAMES:
    return getattr(importlib.import_module(f"compgen.data.{_NAMES[name]}"), name)
  try:
    return importlib.import_module(f"compgen.data.{name}")  # a submodule, e.g. pipeline
  except ModuleNotFoundError as e:
    if e.name != f"compgen.data.{name}":
      raise
    raise AttributeError(f"module 'compgen.data' has no attribute {name!r}") from None


def __dir__():
  return sorted(set(globals()) | set(__all__))
