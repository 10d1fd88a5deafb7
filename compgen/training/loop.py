"""The step loop shared by training and replay: progress bar, logging (`MetricWriter`), NaN
guard, checkpoints, preemption."""
from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from typing import Callable

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils

from compgen import errors
from compgen import files


class MetricWriter:
  """One JSON object per line in `{workdir}/metrics.jsonl`, written by process 0 only.

  Locally each row is appended. An object store (gs://) cannot append, so there rows are
  kept and the file is rewritten at most every `remote_flush_s` seconds and at `flush()`
  (which the loops call at every checkpoint and at the end), not at every log.
  """

  def __init__(self, workdir: str, remote_flush_s: float = 60.0):
    self.path = files.path(workdir, "metrics.jsonl")
    self.remote, self.remote_flush_s = files.is_remote(self.path), remote_flush_s
    if not self.remote:
      files.refuse_link(self.path)
    self._pending, self._flushed_at = [], time.monotonic()

  def write(self, step: int, metrics: dict) -> None:
    if jax.process_index() != 0:
      return
    line = json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}})
    if not self.remote:
      files.append_line(self.path, line)
      return
    self._pending.append(line)
    if time.monotonic() - self._flushed_at >= self.remote_flush_s:
      self.flush()

  def flush(self) -> None:
    """Writes the rows kept for an object store (a no-op locally, where rows are appended)."""
    if self._pending and jax.process_index() == 0:
      old = self.path.read_text() if self.path.exists() else ""
      files.write_text(self.path, old + "".join(line + "\n" for line in self._pending))
    self._pending, self._flushed_at = [], time.monotonic()

  def rows(self) -> list[dict]:
    """The rows written so far; a last line cut short (a write interrupted, a full disk) is
    left out with a warning."""
    if not self.path.exists():
      return []
    lines = self.path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        if i < len(lines) - 1:
          raise errors.DamagedFileError(
              f"{self.path}, line {i + 1}, is not a JSON row: this file was not written by "
              "compgen, or was damaged; move it away.") from None
        print(f"WARNING: the last line of {self.path} was cut short (an interrupted write); "
              "it is dropped.")
    return rows

  def drop_after(self, step: int) -> None:
    """Forgets rows logged after `step` (a resumed run logs those steps again) and a torn
    last line."""
    self.flush()
    if jax.process_index() != 0 or not self.path.exists():
      return
    lines = self.path.read_text().splitlines()
    kept = [json.dumps(r) for r in self.rows() if r["step"] <= step]
    if len(kept) < len(lines):
      files.write_text(self.path, "".join(r + "\n" for r in kept))


_warned_off_main_thread = False  # the note below is printed once per process


@contextlib.contextmanager
def preemption_notice():
  """Yields `requested(step) -> bool`, True once the job should save and stop.

  One process: SIGTERM or SIGINT (Ctrl-C) sets a flag (the handlers are installed for the
  duration, in the main thread). Several processes: JAX's preemption sync point, which every
  process reaches at the same step, so all of them save that step.
  """
  if jax.process_count() > 1:
    yield multihost_utils.reached_preemption_sync_point
    return
  received = []
  if threading.current_thread() is not threading.main_thread():
    global _warned_off_main_thread
    if not _warned_off_main_thread:
      _warned_off_main_thread = True
      print(f"NOTE: running outside the main thread ({threading.current_thread().name}), where "
            "Python cannot install a SIGTERM handler: a SIGTERM here ends the job without the "
            "preemption checkpoint (the last periodic checkpoint is kept).")
    yield lambda step: False
    return
  previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
              for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield lambda step: bool(received)
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def _check_finite(desc: str, history: list, last_saved: int) -> dict:
  """Fetches `history` ([(step, metrics)]) to the host and returns the last metrics; raises
  FloatingPointError naming the first step with a non-finite metric and the terms that were."""
  host = jax.device_get(history)
  for step, metrics in host:
    bad = {k: float(v) for k, v in metrics.items() if not np.all(np.isfinite(v))}
    if bad:
      raise FloatingPointError(
          f"Non-finite {desc} loss at step {step}: {', '.join(f'{k}={v}' for k, v in bad.items())}. "
          f"Nothing after step {last_saved} was saved (the newest checkpoint is finite). "
          "Lower the learning rate, raise the gradient clipping, or check the data.")
  return host[-1][1]


def run_loop(step_fn: Callable, state, *, stop: int, num_steps: int, batch_size: int,
             log_every: int, checkpoint_every: int, checkpointer, writer, desc: str,
             data_state: Callable[[], dict] = dict, eval_every: int = 0,
             on_eval: Callable | None = None, converged: Callable[[int], bool] | None = None):
  """Runs `state, metrics = step_fn(state, step)` from `state.step` up to `stop`.

  Every `log_every` steps the metrics (plus examples/s) go to `writer`; checkpoints are saved
  every `checkpoint_every` steps, at `stop` and at `num_steps`. Before any log or save, every
  step's metrics since the previous check are checked to be finite (they stay on the device
  until then), so a diverged state is never saved and the error names the first bad step.
  On SIGTERM or Ctrl-C the loop saves the current step and raises `errors.Preempted`.
  `on_eval(step, state)` runs every `eval_every` steps before the last; the dict it returns
  (or None) is shown in the progress line until the next one. After it, `converged(step)` True ends the run there, with
  a checkpoint. Returns (state, step reached).
  """
  step = int(state.step)
  last_saved = step
  window_start, window_steps = time.perf_counter(), 0
  unchecked, shown = [], {}
  with preemption_notice() as preempt_requested, tqdm.tqdm(
      total=num_steps, initial=step, desc=desc, unit="step",
      disable=jax.process_index() != 0, dynamic_ncols=True) as bar:
    while step < stop:
      state, metrics = step_fn(state, step)
      step += 1
      window_steps += 1
      bar.update(1)
      unchecked.append((step, metrics))
      preempted = preempt_requested(step)
      will_save = step % checkpoint_every == 0 or step in (num_steps, stop) or preempted
      will_log = step % log_every == 0 or step == stop
      if will_log or will_save:
        metrics = _check_finite(desc, unchecked, last_saved)
        unchecked = []
      if will_log:
        metrics["examples_per_s"] = window_steps * batch_size / (time.perf_counter() - window_start)
        writer.write(step, metrics)
        bar.set_postfix({**{k: f"{v:.4g}" for k, v in metrics.items()
                            if k in ("loss", "mse", "best_mse", "latent_mse")}, **shown})
        window_start, window_steps = time.perf_counter(), 0
      done = False
      if on_eval is not None and eval_every and step % eval_every == 0 and step < num_steps:
        shown = {k: f"{v:.3g}" for k, v in (on_eval(step, state) or {}).items()}
        done = converged is not None and converged(step)
        if done and not will_save:
          if unchecked:
            _check_finite(desc, unchecked, last_saved)
          unchecked, will_save = [], True
      if will_save:
        checkpointer.save(step, state, data_state())
        writer.flush()  # the rows up to a checkpoint are on disk with it
        last_saved = step
      if preempted and step < stop:
        checkpointer.close()
        raise errors.Preempted(f"{desc} preempted: saved a checkpoint at step {step} in "
                               f"{checkpointer.directory}; run the same command again to "
                               "resume.")
      if done:
        break
  checkpointer.close()
  return state, step
