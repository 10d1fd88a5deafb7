r"""Trains an encoder by generative replay through the trained decoder of a workdir.

  python -m compgen.replay --config=configs/sprites.py:smoke --workdir=/tmp/compgen/train
"""
import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from compgen.inversion import replay

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The workdir of a `compgen.train` run.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  print(json.dumps(replay.replay_and_evaluate(_CONFIG.value, _WORKDIR.value), indent=2))


if __name__ == "__main__":
  app.run(main)
