r"""Trains a slot autoencoder on in-domain data (Eq. 4.2), resuming from the workdir.

  python -m compgen.train --config=configs/sprites.py:smoke --workdir=/tmp/compgen/train
"""
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from compgen.training import train_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics and figures go here.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # keep the progress bar readable
  train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
