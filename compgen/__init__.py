"""compgen: perceive new combinations of known things by inverting a compositional decoder.

From Python (see `compgen.api` and the README's "Use from Python / Colab"):
  get_config, fit, load, invert, replay_encoder, evaluate, run_experiment, Model;
  compgen.data (datasets), compgen.plots (figures).
"""
from compgen import data
from compgen import plots
from compgen.api import (Model, evaluate, fit, get_config, invert, load, replay_encoder,
                         run_experiment)
from compgen.training.checkpoints import CheckpointError

__version__ = "0.1.0"
