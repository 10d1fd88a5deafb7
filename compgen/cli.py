"""What every `python -m compgen.<job>` shares: the --config/--workdir flags and start-up."""
from __future__ import annotations

from typing import Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags


def define_flags(workdir_help: str):
  """Defines --config (configs/*.py[:variant], with --config.key=value overrides, a misspelt
  key being an error) and --workdir; returns the two flag holders."""
  config = config_flags.DEFINE_config_file("config", None,
                                           "Config file (configs/*.py[:variant]).")
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


def run(main: Callable[[], None]) -> None:
  """Runs `main()` under absl with library logging quietened (progress bars stay readable)."""
  def _main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    main()
  app.run(_main)
