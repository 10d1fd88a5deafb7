r"""Inverts the trained decoder of a workdir on test_id and test_ood by gradient search.

  python -m compgen.search --config=configs/sprites.py:smoke --workdir=/tmp/compgen/train
"""
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from compgen.inversion import run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The workdir of a `compgen.train` run.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Redo splits that already have results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  print(run.format_summary(run.search_and_save(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value)))


if __name__ == "__main__":
  app.run(main)
