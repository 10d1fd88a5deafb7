"""What every `python -m compgen.<job>` shares: the --config/--workdir flags and start-up."""
from __future__ import annotations

import signal
import sys
from typing import Callable

import jax
from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from compgen import config_lib
from compgen import errors
from compgen import parallel

PREEMPTED_EXIT_CODE = 143


def define_flags(workdir_help: str):
  """Defines --config (configs/*.py[:variant], with --config.key=value overrides, a misspelt
  key being an error) and --workdir; returns the two flag holders."""
  config = config_flags.DEFINE_config_file("config", None,
                                           "Config file (configs/*.py[:variant]).")
  workdir = flags.DEFINE_string("workdir", None, workdir_help + " A local path, a shared "
                                "filesystem or gs://bucket/path (needs compgen[gcs]).")
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir


_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", parallel.distributed_requested(),
    "Start JAX's multi-process runtime (jax.distributed.initialize) before the job; "
    "default: the COMPGEN_DISTRIBUTED environment variable. See compgen/parallel.py.")


def report(text: str) -> None:
  """Prints a job's result once (on process 0 of a multi-process run)."""
  if jax.process_index() == 0:
    print(text)


def _stop_now(signum, frame):
  """A stop signal outside the step loops (which save their step first): the job ends where
  it is; what it wrote is whole (every write is atomic) and its finished stages are reused."""
  del frame
  raise errors.Preempted(
      f"stopped by {signal.Signals(signum).name} before the job finished; what it saved is "
      "whole and its finished stages are kept: run the same command again to go on.")


def run(main: Callable[[], None]) -> None:
  """Runs `main()` under absl with library logging quietened (progress bars stay readable),
  after starting the multi-process runtime when --distributed is given, and the config's
  values checked (`config_lib.check_values`). A stopped job (SIGTERM or Ctrl-C, at any stage:
  `errors.Preempted`, it saved what it had finished) prints one line and exits with status
  143 = 128 + SIGTERM; a user's mistake (`errors.UserError`: bad data, a config value, a
  workdir held by another job or not writable, a missing checkpoint) ends it with one message
  and status 1, its traceback shown only with COMPGEN_TRACEBACK=1; any other exception is a
  bug and shows its traceback."""
  def _main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if _DISTRIBUTED.value:
      parallel.initialize_distributed()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the loops finish their step instead
      signal.signal(sig, _stop_now)
    try:
      config = flags.FLAGS["config"].value if "config" in flags.FLAGS else None
      if isinstance(config, ml_collections.ConfigDict):  # the sweep's is a spec string
        config_lib.check_values(config)
      main()
    except errors.Preempted as e:
      report(str(e))
      sys.exit(PREEMPTED_EXIT_CODE)
    except errors.UserError as e:
      if errors.show_traceback():
        raise
      sys.exit(f"compgen: {type(e).__name__}: {e}")  # one message, exit status 1
  app.run(_main, flags_parser=config_lib.parse_flags)
