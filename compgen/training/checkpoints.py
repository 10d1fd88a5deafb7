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

# Config sections a workdir's trained model depends on: they must match to restore its
# parameters (for search, replay, the experiment). Resuming the training itself also needs the
# same loss and optimizer (a changed one would silently go on with the old optimizer state).
# Others (e.g. train.num_steps, search, replay) may change.
MODEL_SECTIONS = ("data", "model")
TRAINING_SECTIONS = MODEL_SECTIONS + ("loss", "optim")
REPLAY_SECTIONS = MODEL_SECTIONS + ("replay", "seed")  # a replay run, less its pacing


# Settings that only pace or chunk a run, or pick what to run: changing them keeps its results.
_PACING = {"replay": ("num_steps", "log_every", "eval_every", "checkpoint_every", "micro_batch"),
           "search": ("splits", "micro_batch")}


# Settings added after workdirs existed, with the value that does what compgen did before: a
# saved config without one matches a current config that has this value.
_ADDED_LATER = {"model": {"candidates": 1}}


def _used(section: str, value):
  """What of a saved or current config section a result depends on: the model section keeps
  its decoder's and encoder's settings only (settings of other decoders, or decoders added
  later, do not make a workdir another run's); replay and search drop their pacing; settings
  of `_ADDED_LATER` at their old behaviour's value are dropped."""
  if isinstance(value, dict) and section in _ADDED_LATER:
    value = {k: v for k, v in value.items() if _ADDED_LATER[section].get(k, object()) != v}
  if section in _PACING and isinstance(value, dict):
    return {k: v for k, v in value.items() if k not in _PACING[section]}
  if section != "model" or not isinstance(value, dict):
    return value
  kept = {k: v for k, v in value.items() if k not in ("decoders", "encoders")}
  for group, name in (("decoders", value.get("decoder")), ("encoders", value.get("encoder"))):
    kept[group] = {name: (value.get(group) or {}).get(name)}
  return kept


def provenance(config: ml_collections.ConfigDict, sections: tuple[str, ...], **extra) -> dict:
  """What produced a cached result: {key: used settings} for each config section or dotted
  key in `sections` (e.g. "search", "experiment.fit_examples"), plus `extra` (e.g. the
  trained checkpoint step). Compare two with `differences`."""
  out = _select(json.loads(config.to_json_best_effort()), sections)
  out.update(extra)
  return json.loads(json.dumps(out))  # tuples as lists, as they come back from JSON


def _select(config: dict, sections: tuple[str, ...]) -> dict:
  """{key: the used settings of that section or dotted key} of a config as a JSON dict."""
  out = {}
  for key in sections:
    value = config
    for part in key.split("."):
      value = value.get(part) if isinstance(value, dict) else None
    out[key] = _used(key, value)
  return out


def differences(saved: dict | None, current: dict) -> str:
  """'' when `saved` (a `provenance` read back) equals `current`, else what differs."""
  if saved is None:
    return "no record of the settings it was made with"
  return _diff(saved, current)


class CheckpointError(RuntimeError):
  """A checkpoint or workdir that cannot be used; the message says why and what to do."""


def stale_reason(record_path, current: dict, what: str) -> str:
  """'' when the cached result whose `provenance` is saved at `record_path` was made by the
  `current` settings, else what differs. A result without a record (written by an older
  compgen) counts as current, with a printed warning, and gets one."""
  if not record_path.exists():
    print(f"WARNING: {what} has no record of the settings it was made with (an older compgen "
          f"wrote it); taking it as made with the current ones and recording them in "
          f"{record_path}.")
    if jax.process_index() == 0:
      files.write_json(record_path, current)
    return ""
  return differences(files.read_json(record_path), current)


def read_cached(path, record: dict, key: str):
  """A JSON cache {"provenance": record, key: value} at `path`: its value when it was made by
  the settings `record` (see `provenance`), else None (missing or stale)."""
  if path.exists():
    saved = files.read_json(path)
    if saved.get("provenance") == record:
      return saved[key]
  return None


def write_cached(path, record: dict, key: str, value) -> None:
  """Writes the cache `read_cached` reads back (process 0 only)."""
  if jax.process_index() == 0:
    files.write_json(path, {"provenance": record, key: value})


def latest_step(directory) -> int | None:
  """The newest checkpoint step under `directory` (a workdir or its replay/), or None."""
  ckpt = Checkpointer(directory, keep=1, create=False)
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


def check_workdir_config(workdir: str, config: ml_collections.ConfigDict,
                         write: bool = True, sections: tuple[str, ...] = TRAINING_SECTIONS) -> None:
  """Refuses a workdir whose saved config.json differs in `sections` (of the model, only its
  decoder's and encoder's settings count); else (if `write`) saves the config there.

  Training passes TRAINING_SECTIONS; jobs that only read the trained parameters pass
  MODEL_SECTIONS (they may use other loss and optimizer settings)."""
  path = files.path(workdir, "config.json")
  current = json.loads(config.to_json_best_effort())
  if path.exists():
    old, new = _select(files.read_json(path), sections), _select(current, sections)
    diffs = [f"{section}: {_diff(old[section], new[section])}" for section in sections
             if old[section] != new[section]]
    if diffs:
      reading = sections == MODEL_SECTIONS
      raise CheckpointError(
          f"{workdir} holds a {'model trained with' if reading else 'run of'} a different "
          f"config ({'; '.join(diffs)}). "
          + ("Use the config it was trained with for these sections, or train a new model "
             "in a new --workdir." if reading else
             "Set these back to resume it, or use a new --workdir to train with the new "
             "settings (its trained model stays usable by search and replay as it is)."))
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
