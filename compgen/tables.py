"""Tables as text, the one renderer of every job's tables: Markdown for files, aligned
columns for the terminal. Cells are strings (format numbers before)."""
from __future__ import annotations

from typing import Iterable, Sequence


def markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
  """| a | b |, a separator row, then one line per row."""
  line = lambda cells: "| " + " | ".join(cells) + " |"
  return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows])


def aligned(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
  """Columns padded to their widest cell, dashes under the header."""
  rows = [list(header)] + [list(r) for r in rows]
  widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)
