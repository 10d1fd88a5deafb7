"""Workdir files on a local disk, a shared filesystem or a bucket (`gs://...`), via etils.epath.

Every job reads and writes its workdir through these helpers, so the same command works with
`--workdir=/tmp/run` and `--workdir=gs://bucket/run` (the latter needs the `gcs` extra:
`pip install compgen[gcs]`). Writers are called by process 0 only (multi-host runs); orbax
writes the checkpoints from every process itself.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import inspect
import io
import json
import os
import socket
import sys
import zipfile
from typing import Any, Callable, Iterator

import jax
import numpy as np
from etils import epath

from compgen import errors

LOCK_FILE = ".compgen.lock"  # in a workdir: who holds it (the lock itself is flock's)
_held: dict[str, Any] = {}  # the workdirs this process holds: their open lock files


# Also importable from here.
WorkdirBusyError = errors.WorkdirBusyError
WorkdirNotWritableError = errors.WorkdirNotWritableError
ForeignWorkdirError = errors.ForeignWorkdirError


MARKER_FILE = ".compgen"  # in a workdir: compgen made it (or adopted it as its own)
# What a workdir of a compgen version before the marker holds: a file that parses as JSON with
# these keys (a run's config.json, an experiment's results.json, a sweep's sweep.json).
_LEGACY_FILES = {"config.json": {"data", "model"}, "results.json": {"summary", "config"},
                 "sweep.json": {"cells", "axes"}}


def _is_compgen_workdir(root: epath.Path) -> bool:
  if (root / MARKER_FILE).exists():
    return True
  for name, keys in _LEGACY_FILES.items():
    try:
      value = json.loads((root / name).read_text())
    except (OSError, ValueError):
      continue
    if isinstance(value, dict) and keys <= set(value):
      return True
  return False


def _claim(root: epath.Path, key: str, job: str) -> bool:
  """Marks `root` as compgen's when it is new, empty (but for the lock) or an older compgen
  workdir; refuses any other folder with `ForeignWorkdirError`, writing nothing there.
  Returns whether it marked an empty folder."""
  if _is_compgen_workdir(root):
    if not (root / MARKER_FILE).exists():
      write_text(root / MARKER_FILE, f"a compgen workdir (adopted by {job})\n")
    return False
  others = sorted(n.name for n in root.iterdir() if n.name != LOCK_FILE)
  if others:
    raise ForeignWorkdirError(
        f"The workdir {key} is a folder compgen did not make: it holds "
        f"{', '.join(others[:5])}{', ...' if len(others) > 5 else ''}. compgen writes only "
        "into workdirs it made, so that it never deletes or overwrites another program's "
        "files; nothing was written. Give a new or empty --workdir; if this is a compgen "
        f"workdir copied from elsewhere, add an empty file {key}/{MARKER_FILE}.")
  write_text(root / MARKER_FILE, f"a compgen workdir (made by {job})\n")
  return True


@contextlib.contextmanager
def hold(workdir: str | epath.Path, job: str) -> Iterator[None]:
  """Holds a local `workdir` for this process while the block runs: one writer per workdir,
  and only a workdir that is compgen's (`_claim`: new, empty, marked by `.compgen`, or of an
  older compgen, which gets the mark); another program's non-empty folder is refused.

  An exclusive `flock` on `{workdir}/.compgen.lock`, a file that names the holder (job,
  process, host, since, command) and exists while it is held. A second job on the same workdir
  is refused at once with `WorkdirBusyError` naming the holder; the kernel drops the lock of
  a process that ends in any way (`kill -9` too), so a dead holder never blocks the next run.
  A workdir this call made and nothing wrote into is removed again, so a job refused for bad
  settings leaves nothing behind. Re-entrant within one process (the experiment's jobs run in
  its own workdirs). Only process 0 of a multi-process run holds it; workdirs in buckets
  (gs://) cannot be locked and are not.
  """
  root = path(workdir)
  key = str(root)
  if is_remote(root) or jax.process_index() != 0 or key in _held:
    yield  # nothing to lock, or held further up this process's stack, which releases it
    return
  made = not root.exists()
  handle = _lock(root, key)
  try:
    marked = _claim(root, key, job)
  except BaseException:
    handle.close()
    with contextlib.suppress(OSError):
      os.unlink(root / LOCK_FILE)
      if made:
        root.rmdir()
    raise
  handle.seek(0)
  handle.truncate()
  handle.write(json.dumps({
      "job": job, "pid": os.getpid(), "host": socket.gethostname(),
      "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "command": " ".join(sys.argv)}))
  handle.flush()
  _held[key] = handle
  try:
    yield
  finally:
    del _held[key]
    with contextlib.suppress(FileNotFoundError):  # the job may have removed its workdir
      os.unlink(root / LOCK_FILE)  # while still held: a later opener makes a new file
    handle.close()
    if marked and root.exists() and {n.name for n in root.iterdir()} <= {MARKER_FILE}:
      with contextlib.suppress(FileNotFoundError):  # nothing written: as it was before
        os.unlink(root / MARKER_FILE)
      if made:
        root.rmdir()


def _lock(root: epath.Path, key: str):
  """The open, exclusively locked lock file of `root` (made if need be)."""
  while True:
    try:
      root.mkdir(parents=True, exist_ok=True)
      handle = open(root / LOCK_FILE, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    except OSError as e:
      raise WorkdirNotWritableError(
          f"Cannot write the workdir {key}: {e.strerror or e}. Give a --workdir in a folder "
          "you can write, with free space, where no file has the same name.") from e
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      try:
        holder = json.loads(handle.read() or "{}")
      except json.JSONDecodeError:
        holder = {}
      handle.close()
      raise WorkdirBusyError(
          f"The workdir {key} is in use by another job: {holder.get('job', 'a compgen job')} "
          f"(process {holder.get('pid', '?')} on {holder.get('host', '?')}, since "
          f"{holder.get('since', '?')}: {holder.get('command', '?')}). Two jobs writing one "
          "workdir would corrupt it. Wait for that job to finish (or stop it), or give this "
          "one another --workdir.") from None
    try:  # the file locked is still the one at the path (not unlinked by a releasing holder)
      if os.fstat(handle.fileno()).st_ino == os.stat(root / LOCK_FILE).st_ino:
        return handle
    except FileNotFoundError:
      pass
    handle.close()


def holds_workdir(job: str) -> Callable:
  """Decorator: a function with a `workdir` argument runs holding that workdir (`hold`)."""
  def decorate(fn):
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def held(*args, **kwargs):
      with hold(signature.bind(*args, **kwargs).arguments["workdir"], job):
        return fn(*args, **kwargs)
    return held
  return decorate


def path(root: str | epath.Path, *parts: str) -> epath.Path:
  """`root/parts...` as an epath.Path (local paths made absolute, buckets as they are)."""
  p = epath.Path(root)
  if not is_remote(p):
    p = p.expanduser().resolve()
  return p.joinpath(*parts)


def is_remote(p: str | epath.Path) -> bool:
  """True for object-store paths (gs://, s3://, ...), which have no local directory."""
  return "://" in str(p)


def _damaged(p, what: str, e: Exception) -> errors.DamagedFileError:
  return errors.DamagedFileError(
      f"{p} is damaged ({what}: {str(e)[:200]}): it was cut short or changed after compgen "
      "wrote it. Move it away: a compgen job writes it again (a run's results or cache), or "
      "export the model again (params.npz, config.json of an exported model).")


def read_json(p: epath.Path) -> Any:
  """The JSON value of `p`; a file that does not parse is a `DamagedFileError`."""
  text = p.read_text()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise _damaged(p, "not valid JSON", e) from None


def refuse_link(p: epath.Path) -> None:
  """Raises `WorkdirNotWritableError` when `p` is a symbolic link: compgen writes its files
  itself, never through a link to somewhere else."""
  if os.path.islink(p):
    raise WorkdirNotWritableError(
        f"{p} is a link (to {os.readlink(p)}): compgen does not write through links out of "
        "its workdir. Remove the link, or give another --workdir.")


def write_bytes(p: epath.Path, data: bytes) -> None:
  """Writes `data` to `p` atomically: into a temporary file in the same folder, flushed to
  disk, then renamed over `p`, so a reader sees the old file or the whole new one, never a
  part (an interrupted write or a full disk leaves `p` as it was). Object stores write whole
  objects themselves."""
  p.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(p):
    p.write_bytes(data)
    return
  refuse_link(p)
  tmp = p.parent / f".{p.name}.{os.getpid()}.tmp"
  try:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, p)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    if errors.is_disk_full(e):
      raise errors.DiskFullError(
          f"No space left on the device of {p.parent} while writing {p.name}; "
          f"{'the old file is kept whole' if p.exists() else 'nothing of it was written'}. "
          "Free space and run the same command again.") from None
    raise


def write_text(p: epath.Path, text: str) -> None:
  """`write_bytes` of UTF-8 text (an object store writes the text as one object)."""
  if is_remote(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return
  write_bytes(p, text.encode("utf-8"))


def write_json(p: epath.Path, value: Any, **kwargs) -> None:
  write_text(p, json.dumps(value, indent=2, **kwargs))


def append_line(p: epath.Path, line: str) -> None:
  """Appends one line; object stores cannot append, so there the file is rewritten."""
  p.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(p):
    p.write_text((p.read_text() if p.exists() else "") + line + "\n")
  else:
    refuse_link(p)
    try:
      with p.open("a") as f:
        f.write(line + "\n")
    except OSError as e:
      if errors.is_disk_full(e):
        raise errors.DiskFullError(
            f"No space left on the device of {p.parent} while appending to {p.name} (a last "
            "line cut short is dropped by the next run). Free space and run the same command "
            "again.") from None
      raise


def save_npz(p: epath.Path, **arrays: np.ndarray) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_bytes(p, buffer.getvalue())


def load_npz(p: epath.Path) -> dict[str, np.ndarray]:
  """The arrays of `p`; a file that does not read is a `DamagedFileError`."""
  try:
    with np.load(io.BytesIO(p.read_bytes())) as f:
      return dict(f)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise _damaged(p, "not a readable .npz", e) from None
