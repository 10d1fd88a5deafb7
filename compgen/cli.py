"""What every `python -m compgen.<job>` shares: the --config/--workdir flags and start-up."""
from __future__ import annotations

import re
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
  app.run(_main, flags_parser=parse_flags)


def parse_flags(argv: list[str], flag_values=None) -> list[str]:
  """A `flags_parser` for `absl.app.run`: parses the command line like absl's default, and
  makes a `--config.<key>` override of a key the config does not have (ml_collections
  raises a bare AttributeError traceback for it) or of the wrong type a one-line error that
  names the key and the fix; exits with status 1 before the job starts."""
  flag_values = flags.FLAGS if flag_values is None else flag_values
  try:
    return flag_values(argv)
  except (flags.Error, AttributeError, KeyError) as e:
    message = _override_error(argv, flag_values, e)
    if message is None and not isinstance(e, flags.Error):
      raise
    sys.stderr.write(f"FATAL Flags parsing error: {message or e}\n"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)


def _override_error(argv, flag_values, error) -> str | None:
  """The message for a bad `--<flag>.<key>[=value]` override in argv, or None."""
  argv = flag_values.read_flags_from_files(argv, force_gnu=False)  # expand --flagfile
  for arg in argv[1:]:
    match = re.match(r"^--?(?:no)?([A-Za-z_][\w-]*)\.([^=]+)", arg)
    if not match or match.group(1) not in flag_values:
      continue
    name, key = match.groups()
    spec = _flag_argument(argv, name)
    try:
      config = config_lib.load_config(spec)
    except Exception:  # pylint: disable=broad-except  # no or a broken config: absl says why
      continue
    problem = config_lib.unknown_key(config, key)
    if problem:
      return f"{problem} (from {arg}; the config is {spec})"
    if isinstance(error, flags.Error) and f"--{name}.{key}=" in str(error):
      value = config
      for part in key.split("."):
        value = value[part]
      return f"{error}. --{name}.{key} takes {config_lib.type_name(value)} (it is {value!r} in {spec})."
  return None


def _flag_argument(argv, name: str) -> str | None:
  """The value of --name=VALUE or --name VALUE in argv (the last one), or None."""
  value = None
  for i, arg in enumerate(argv):
    match = re.match(rf"^--?{re.escape(name)}(=(.*))?$", arg)
    if match:
      value = match.group(2) if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else None)
  return value
