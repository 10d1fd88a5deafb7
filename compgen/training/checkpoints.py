"""Checkpoints with orbax: `{workdir}/checkpoints/<step>/{state, data}`, resumed automatically.

`state` is the train state pytree, `data` the batch iterator's position, so a resumed run sees
exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import json

import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from compgen import files

# Config sections that must match to restore a workdir (others, e.g. train.num_steps, may change).
_COMPATIBLE_SECTIONS = ("data", "model")


def _used(section: str, value):
  """What of a saved or current config section the run depends on: the model section keeps
  its decoder's and encoder's settings only (settings of other decoders, or decoders added
  later, do not make a workdir another run's)."""
  if section != "model" or not isinstance(value, dict):
    return value
  kept = {k: v for k, v in value.items() if k not in ("decoders", "encoders")}
  for group, name in (("decoders", value.get("decoder")), ("encoders", value.get("encoder"))):
    kept[group] = {name: (value.get(group) or {}).get(name)}
  return kept


class CheckpointError(RuntimeError):
  """A checkpoint or workdir that cannot be used; the message says why and what to do."""


def check_workdir_config(workdir: str, config: ml_collections.ConfigDict,
                         write: bool = True) -> None:
  """Refuses a workdir whose saved config.json differs in data or in the model it trains (its
  decoder's and encoder's settings); else (if `write`) saves the config there."""
  path = files.path(workdir, "config.json")
  current = json.loads(config.to_json_best_effort())
  if path.exists():
    saved = files.read_json(path)
    pairs = {section: (_used(section, saved.get(section)), _used(section, current.get(section)))
             for section in _COMPATIBLE_SECTIONS}
    diffs = [f"{section}: {_diff(old, new)}" for section, (old, new) in pairs.items()
             if old != new]
    if diffs:
      raise CheckpointError(
          f"{workdir} holds a run of a different config ({'; '.join(diffs)}). Use a new "
          "--workdir, or delete this one to start over.")
  if not write:
    return
  if jax.process_index() == 0:
    files.write_json(path, current)


def _diff(saved, current, prefix=""):
  if isinstance(saved, dict) and isinstance(current, dict):
    parts = [_diff(saved.get(k), current.get(k), f"{prefix}{k}.")
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    return ", ".join(parts)
  return f"{prefix.rstrip('.')} was {saved!r}, now {current!r}"


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

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_state: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)

  def restore(self, step: int, abstract_state):
    """Restores (state, data_state) at `step` onto the shardings of `abstract_state`."""
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"]

  def restore_latest(self, abstract_state):
    """(step, state, data_state) of the newest step that restores, or None without steps.

    Raises CheckpointError when no step restores (e.g. checkpoints of other code), listing
    why, and leaves them in place.
    """
    failures = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state, data = self.restore(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except  (tensorstore raises Exception)
        failures.append((step, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"))
        continue
      for bad, why in failures:
        self._set_aside(bad, why, step)
      return step, state, data
    if failures:
      raise CheckpointError(
          f"No checkpoint in {self.directory} could be restored: "
          + "; ".join(f"step {s}: {why}" for s, why in failures)
          + ". If they come from another version of the model code, use a new --workdir; "
          "if they are damaged, move them away to start over.")
    return None

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
    self.manager.wait_until_finished()
    self.manager.close()
