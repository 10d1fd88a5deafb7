"""Workdir files on a local disk, a shared filesystem or a bucket (`gs://...`), via etils.epath.

Every job reads and writes its workdir through these helpers, so the same command works with
`--workdir=/tmp/run` and `--workdir=gs://bucket/run` (the latter needs the `gcs` extra:
`pip install compgen[gcs]`). Writers are called by process 0 only (multi-host runs); orbax
writes the checkpoints from every process itself.
"""
from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from etils import epath


def path(root: str | epath.Path, *parts: str) -> epath.Path:
  """`root/parts...` as an epath.Path (local paths made absolute, buckets as they are)."""
  p = epath.Path(root)
  if not is_remote(p):
    p = p.expanduser().resolve()
  return p.joinpath(*parts)


def is_remote(p: str | epath.Path) -> bool:
  """True for object-store paths (gs://, s3://, ...), which have no local directory."""
  return "://" in str(p)


def read_json(p: epath.Path) -> Any:
  return json.loads(p.read_text())


def write_json(p: epath.Path, value: Any, **kwargs) -> None:
  p.parent.mkdir(parents=True, exist_ok=True)
  p.write_text(json.dumps(value, indent=2, **kwargs))


def append_line(p: epath.Path, line: str) -> None:
  """Appends one line; object stores cannot append, so there the file is rewritten."""
  p.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(p):
    p.write_text((p.read_text() if p.exists() else "") + line + "\n")
  else:
    with p.open("a") as f:
      f.write(line + "\n")


def save_npz(p: epath.Path, **arrays: np.ndarray) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  p.parent.mkdir(parents=True, exist_ok=True)
  p.write_bytes(buffer.getvalue())


def load_npz(p: epath.Path) -> dict[str, np.ndarray]:
  with np.load(io.BytesIO(p.read_bytes())) as f:
    return dict(f)
