"""Checkpoints with orbax: `{workdir}/checkpoints/<step>/{state, data}`, resumed automatically.

`state` is the train state pytree, `data` the batch iterator's position, so a resumed run sees
exactly the batches an uninterrupted run would have seen. What a workdir's results were made from
is `provenance`'s job.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from typing import Callable

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from compgen import errors
from compgen import files


CheckpointError = errors.CheckpointError  # also importable from here


def abstract_state(shape_tree, sharding_tree):
  """The arrays of `shape_tree` (from `jax.eval_shape`) placed with `sharding_tree`: what
  `Checkpointer.restore_latest` restores onto."""
  return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                      shape_tree, sharding_tree)


def latest_step(directory) -> int | None:
  """The newest checkpoint step under `directory` (a workdir or its replay/), or None."""
  ckpt = Checkpointer(directory, keep=1, create=False)
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


_TRANSIENT_STATUS = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "PERMISSION_DENIED", "UNAUTHENTICATED",
                     "RESOURCE_EXHAUSTED", "ABORTED")


def _is_transient(error: Exception) -> bool:
  """Whether a failed read is the storage's (permissions, time-outs, outages), not the files'.
  tensorstore raises plain Exceptions whose text carries the status."""
  return isinstance(error, (PermissionError, TimeoutError, ConnectionError, InterruptedError)) \
      or any(s in str(error) for s in _TRANSIENT_STATUS)


class Checkpointer:
  """Saves (keeping the newest `keep`) and restores the newest readable step.

  Orbax writes each step into a temporary folder and renames it when complete, so a write
  cut short (a kill during save) never appears as a step. A complete step whose files were
  damaged later fails to restore: `restore_latest` then moves it to
  `{workdir}/checkpoints_unreadable/` (nothing is deleted), says so, and takes the previous one.
  """

  def __init__(self, workdir: str, keep: int, create: bool = True):
    self.directory = files.path(workdir, "checkpoints")
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=create))
    self._writing = None  # the step being saved in the background

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_state: dict) -> None:
    """Starts saving `step` (orbax writes in the background; a failed write of the previous
    step surfaces here or at `close`)."""
    with self._naming_a_full_disk(step):
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)
    self._writing = step

  @contextlib.contextmanager
  def _naming_a_full_disk(self, starting: int | None = None):
    """A checkpoint write that failed for lack of space becomes `errors.DiskFullError`,
    naming the step being written (the one in the background, else `starting`) and the
    complete step the rerun resumes from (an incomplete one is never restored)."""
    try:
      yield
    except Exception as e:  # pylint: disable=broad-except  (tensorstore raises Exception)
      writing = starting if self._writing is None else self._writing
      complete = [s for s in self.manager.all_steps() if s != writing]
      if not (errors.is_disk_full(e) or self._out_of_room(complete)):
        raise
      resume = (f"resumes from step {max(complete)}, the newest complete checkpoint"
                if complete else "starts from step 0 (no checkpoint is complete)")
      raise errors.DiskFullError(
          f"No space left on the device of {self.directory} while saving checkpoint step "
          f"{writing}. Free space and run the same command again: it {resume}.") from None

  def _out_of_room(self, complete: list[int]) -> bool:
    """Whether the device has less free space than the newest of the `complete` steps takes
    (1 MiB without one): orbax's background writers can end on a full disk with an error of their
    own teardown ("Event loop is closed") that no longer carries the ENOSPC."""
    if files.is_remote(self.directory):
      return False
    step_dir = str(self.directory / str(max(complete))) if complete else None
    need = (sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(step_dir)
                for f in names) if step_dir else 2**20)
    try:
      return shutil.disk_usage(str(self.directory)).free < need
    except OSError:
      return False

  def restore(self, step: int, abstract_state):
    """Restores (state, data_state) at `step` onto the shardings of `abstract_state`."""
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"]

  def restore_params(self, step: int, abstract_params):
    """Restores only the parameters at `step` (not the optimizer state, whatever optimizer
    made it) onto the shardings of `abstract_params`; (params, None)."""
    item = {"params": abstract_params}
    restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True)))
    return restored["state"]["params"], None

  def tree_difference(self, step: int, abstract_state, params_only: bool = False) -> str | None:
    """What differs between the arrays saved at `step` (from its metadata, without reading
    them) and those of `abstract_state` (only the parameters with `params_only`, where
    `abstract_state` is theirs): arrays missing, extra or of other shapes, by path; None
    when they match. Raises when the step's metadata cannot be read."""
    shapes = lambda tree: {"/".join(map(str, k)): tuple(v.shape)
                           for k, v in ocp.tree.to_flat_dict(tree).items() if hasattr(v, "shape")}
    handler = ocp.PyTreeCheckpointHandler()
    try:
      saved = shapes(handler.metadata(self.directory / str(step) / "state").tree)
    finally:
      handler.close()
    built = shapes(ocp.tree.serialize_tree({"params": abstract_state} if params_only
                                           else abstract_state, keep_empty_nodes=False))
    if params_only:
      saved = {k: v for k, v in saved.items() if k.startswith("params/")}
    problems = ([f"{k} {built[k]} is not in the checkpoint" for k in built if k not in saved]
                + [f"{k} {saved[k]} was saved but is not built" for k in saved if k not in built]
                + [f"{k} was saved {saved[k]}, is built {built[k]}" for k in built
                   if k in saved and saved[k] != built[k]])
    if not problems:
      return None
    return (f"{len(problems)} array(s) differ: " + "; ".join(problems[:4])
            + ("; ..." if len(problems) > 4 else ""))

  def restore_latest(self, abstract_state, params_only: bool = False):
    """(step, state, data_state) of the newest step that restores, or None without steps;
    with `params_only`, `abstract_state` is the parameters' and (step, params, None) comes
    back.

    A damaged step (files cut short or missing) is set aside and the previous one tried.
    Raises CheckpointError, setting nothing aside, when a step holds another tree than
    `abstract_state` (it says what differs), when reading fails in a way that is not damage
    (permissions, a storage outage: retry), or when no step restores (they stay in place).
    """
    failures = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:  # before reading: a partial (params-only) restore does not check shapes itself
        difference = self.tree_difference(step, abstract_state, params_only)
      except Exception:  # pylint: disable=broad-except  (unreadable: the restore says how)
        difference = None
      if difference:
        raise CheckpointError(
            f"Checkpoint step {step} in {self.directory} holds other "
            f"{'parameters' if params_only else 'train state'} than this config builds "
            f"({difference}). Its data and model sections (and, to resume training, its "
            "loss and optimizer) must be those it was trained with; nothing was moved.")
      try:
        state, data = (self.restore_params(step, abstract_state) if params_only
                       else self.restore(step, abstract_state))
      except Exception as e:  # pylint: disable=broad-except  (tensorstore raises Exception)
        why = f"{type(e).__name__}: {str(e)[:1500]}"
        if _is_transient(e):
          raise CheckpointError(
              f"Could not read checkpoint step {step} in {self.directory} ({why}). This is "
              "a storage error, not a damaged checkpoint: nothing was set aside; retry once "
              "the storage is readable.") from e
        failures.append((step, why.splitlines()[0][:300]))
        continue
      for bad, why in failures:
        self._set_aside(bad, why, step)
      return step, state, data
    if failures:
      raise CheckpointError(
          f"No checkpoint in {self.directory} could be restored; every step is damaged: "
          + "; ".join(f"step {s}: {why}" for s, why in failures)
          + ". They were left in place: train again in a new --workdir, or move them away "
          "to start over in this one.")
    return None

  def restore_or_init(self, init_state: Callable, state_shape, sharding) -> tuple:
    """(step, state, data_state): the newest readable step restored onto `sharding` (the
    shardings of `state_shape`, the `jax.eval_shape` of `init_state`), or else
    (0, `init_state()` placed with `sharding`, None) — how training and replay start or
    resume."""
    restored = self.restore_latest(abstract_state(state_shape, sharding))
    if restored is not None:
      return restored
    return 0, jax.jit(init_state, out_shardings=sharding)(), None

  def _set_aside(self, step: int, why: str, fallback: int) -> None:
    target = self.directory.parent / "checkpoints_unreadable" / str(step)
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      (self.directory / str(step)).rename(target)
      print(f"WARNING: checkpoint step {step} in {self.directory} is unreadable ({why}); "
            f"moved it to {target} and resuming from step {fallback}.")
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"compgen_set_aside_{step}")
    self.manager.reload()

  def close(self) -> None:
    with self._naming_a_full_disk():
      self.manager.wait_until_finished()
      self.manager.close()
