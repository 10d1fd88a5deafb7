"""compgen: perceive new combinations of known things by inverting a compositional decoder.

From Python (see `compgen.api` and the README's "Use from Python / Colab"):
  get_config, fit, load, export, pretrained, invert, replay_encoder, evaluate,
  run_experiment, Model;
  compgen.data (datasets), compgen.plots (figures).

Names load on first use, so `import compgen.models` (say) does not pull in TFDS, orbax or
matplotlib.
"""
import importlib

__version__ = "0.1.0"

_NAMES = {"Model": "compgen.api", "evaluate": "compgen.api", "fit": "compgen.api",
          "export": "compgen.api", "pretrained": "compgen.api",
          "get_config": "compgen.api", "invert": "compgen.api", "load": "compgen.api",
          "replay_encoder": "compgen.api", "run_experiment": "compgen.api",
          "CheckpointError": "compgen.training.checkpoints", "DataError": "compgen.data.checks",
          "DamagedFileError": "compgen.errors"}
__all__ = sorted(_NAMES) + ["data", "plots"]


def __getattr__(name):
  if name in _NAMES:
    return getattr(importlib.import_module(_NAMES[name]), name)
  if name in ("data", "plots"):
    return importlib.import_module(f"compgen.{name}")
  raise AttributeError(f"module 'compgen' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(__all__))
