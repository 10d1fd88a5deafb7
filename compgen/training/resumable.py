"""One run that resumes where it stopped — the training, the replay encoder's and the
supervised reference's — its `TrainState` and `ResumableRun`: the checkpoints of its folder,
the refusal of a run there made with other settings, resume-or-init, the metrics trimmed to
the restored step, and the step loop (`loop.run_loop`) over them."""
from __future__ import annotations

from typing import Any, Callable

import flax
import jax

from compgen import provenance
from compgen.training import checkpoints, loop


@flax.struct.dataclass
class TrainState:
  """What a run checkpoints: the step, the parameters it trains and their optimizer state."""
  step: jax.Array
  params: Any
  opt_state: Any


class ResumableRun:
  """The run whose checkpoints and `metrics.jsonl` live in `directory`.

  With `record` (`provenance.record` of the settings that make the run), a folder holding
  checkpoints of a run made with other settings is refused before anything is written: the
  error names what differs, the fix ("set them back to resume it") and, in `redo`, what
  deleting the folder does; otherwise the record is written beside the checkpoints.
  """

  def __init__(self, directory, keep: int, record: dict | None = None, *, what: str = "a run",
               redo: str = "run it with the new ones"):
    self.directory, self.keep = directory, keep
    if record is not None:
      if checkpoints.latest_step(directory) is not None:
        stale = provenance.stale(directory, record)
        if stale:
          raise checkpoints.CheckpointError(
              f"{directory} holds {what} made with other settings ({stale}). Set them back "
              f"to resume it, or delete {directory} to {redo}.")
      provenance.write_record(directory, record)
    self._checkpointer = None
    self.writer = loop.MetricWriter(directory)

  @property
  def checkpointer(self) -> checkpoints.Checkpointer:
    """The folder's checkpointer (a new one after `run` closed the last)."""
    if self._checkpointer is None:
      self._checkpointer = checkpoints.Checkpointer(self.directory, self.keep)
    return self._checkpointer

  def saved_step(self) -> int | None:
    """The newest checkpoint step, or None before the first."""
    return self.checkpointer.latest_step()

  def restore_or_init(self, init: Callable, shape, sharding, batches=None):
    """(step, state, resumed): the newest checkpoint's state (and `batches`' position, a
    `pipeline.BatchIterator`'s) or `init()` at step 0; the metrics logged after that step (by
    a run stopped before its next checkpoint) are dropped, to be logged again."""
    step, state, data_state = self.checkpointer.restore_or_init(init, shape, sharding)
    if data_state is not None and batches is not None:
      batches.restore(data_state)
    self.writer.drop_after(step)
    return step, state, data_state is not None

  def run(self, step_fn: Callable, state, **loop_args):
    """`loop.run_loop` with the run's checkpointer and metric writer: (state, step reached)."""
    try:
      return loop.run_loop(step_fn, state, checkpointer=self.checkpointer, writer=self.writer,
                           **loop_args)
    finally:
      self._checkpointer = None  # run_loop closed it
