r"""Inverts the trained decoder of a workdir on test_id and test_ood by gradient search.

  python -m compgen.search --config=configs/sprites.py:smoke --workdir=/tmp/compgen/train
"""
from absl import flags

from compgen import cli
from compgen.inversion import search_job

_CONFIG, _WORKDIR = cli.define_flags("The workdir of a `compgen.train` run.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Redo splits that already have results.")

if __name__ == "__main__":
  cli.run(lambda: cli.report(search_job.format_summary(
      search_job.search_and_save(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value))))
