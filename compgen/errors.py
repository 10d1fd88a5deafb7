"""Every error a user's input causes, and how the jobs show them (one home for them all; the
modules that raise them re-export their names).

`UserError`: compgen was handed something it cannot use — data (`DataError`), a config value
(`ConfigError`), a damaged file (`DamagedFileError`), a full disk (`DiskFullError`), a workdir
(`WorkdirBusyError`, `WorkdirNotWritableError`, `ForeignWorkdirError`) or a checkpoint
(`CheckpointError`); its message names the problem and the fix. The jobs
(`python -m compgen.<job>`) print it as one message and exit with status 1; every other
exception is a bug and keeps its traceback. `COMPGEN_TRACEBACK=1` in the environment shows the
traceback of user errors too. `Preempted` is not a mistake: a job stopped by a signal.
"""
from __future__ import annotations

import errno
import os

TRACEBACK_VARIABLE = "COMPGEN_TRACEBACK"


class UserError(Exception):
  """Input compgen cannot use; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
  """A config value that cannot mean anything; the message names the key and what it takes."""


class DataError(UserError, ValueError):
  """Input data that compgen cannot use; the message names the problem and the fix."""


class CheckpointError(UserError, RuntimeError):
  """A checkpoint or workdir that cannot be used; the message says why and what to do."""


class WorkdirBusyError(UserError, RuntimeError):
  """Another live job holds the workdir."""


class WorkdirNotWritableError(UserError, RuntimeError):
  """The workdir cannot be created or written."""


class ForeignWorkdirError(UserError, RuntimeError):
  """The workdir is a non-empty folder compgen did not make: nothing is written into it."""


class DamagedFileError(UserError, ValueError):
  """A file compgen reads (a summary, a cache, an exported model) is cut short or altered;
  the message names the file and how to recover."""


class DiskFullError(UserError, OSError):
  """The disk filled while a job wrote; what was written before is whole and the message says
  where the rerun resumes."""


NO_SPACE = ("No space left on device", "os_error_code='28'")  # ENOSPC as tensorstore words it


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, an error it was raised from or during, or one of an exception group's,
  is a write that failed for lack of space (ENOSPC from Python, or the text of tensorstore's
  error under orbax)."""
  seen, pending = set(), [error]
  while pending:
    e = pending.pop()
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if getattr(e, "errno", None) == errno.ENOSPC or any(s in str(e) for s in NO_SPACE):
      return True
    pending += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
  return False


class Preempted(Exception):
  """A job was asked to stop (SIGTERM, Ctrl-C, or a multi-host preemption notice) and saved
  what it had finished; the message says what, and that the same command goes on from there.
  The jobs print it and exit with status 143 (= 128 + SIGTERM)."""


def show_traceback() -> bool:
  """Whether the jobs show the traceback of a `UserError` (COMPGEN_TRACEBACK=1)."""
  return os.environ.get(TRACEBACK_VARIABLE, "").strip().lower() in ("1", "true", "yes")
