"""What made a result, and whether a kept one is still current.

Every result a job keeps for reuse — search latents, a replay run, the experiment's latents
and scores, the supervised reference — has a record beside it, `record_file(result)`: the
config settings it depends on (`record`) plus the steps it was made from. A job reuses the
result when `stale(result, record)` is '' and makes it again otherwise; a JSON result is kept
with its record by `cached_json` (or `read_json` / `write_json`). A workdir's trained model is
recorded by its `config.json`, checked by `check_workdir_config`.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import jax
import ml_collections
from etils import epath

from compgen import errors
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


# Settings added after workdirs existed (dotted within their section), with the value that
# does what compgen did before: a saved config without one matches a current config that has
# this value.
_ADDED_LATER = {"model": {"candidates": 1, "keep_candidate_at": 0,
                          "candidate_score": "train_recon_mse",
                          "decoders.transformer.background_token": False,
                          "decoders.transformer.softmax_scale": "head",
                          "encoders.query_transformer.query_init": "uniform",
                          "encoders.query_transformer.query_init_std": 3.0},
                "data": {"sprites.strip_overlap": 0.0},
                "loss": {"jacobian_overlap_weight": 0.0, "jacobian_overlap_warmup_steps": 0,
                         "jacobian_overlap_examples": 8, "consistency_start_step": 0},
                "optim": {"hold_steps": 0, "hold_drop": 0.2, "decay_rate": 0.1,
                          "cooldown_steps": 1000},
                "replay": {"optim.hold_steps": 0, "optim.hold_drop": 0.2,
                           "optim.decay_rate": 0.1, "optim.cooldown_steps": 1000}}


def _without(value: dict, dotted: str, old) -> dict:
  """`value` less its setting at the dotted key when that holds `old`."""
  head, _, rest = dotted.partition(".")
  if head not in value:
    return value
  if rest:
    inner = value[head]
    return {**value, head: _without(inner, rest, old)} if isinstance(inner, dict) else value
  return {k: v for k, v in value.items() if k != head or v != old}


def _used(section: str, value):
  """What of a saved or current config section a result depends on: the model section keeps
  its decoder's and encoder's settings only (settings of other decoders, or decoders added
  later, do not make a workdir another run's); replay and search drop their pacing; settings
  of `_ADDED_LATER` at their old behaviour's value are dropped."""
  if isinstance(value, dict):
    for dotted, old in _ADDED_LATER.get(section, {}).items():
      value = _without(value, dotted, old)
  if section in _PACING and isinstance(value, dict):
    return {k: v for k, v in value.items() if k not in _PACING[section]}
  if section != "model" or not isinstance(value, dict):
    return value
  kept = {k: v for k, v in value.items() if k not in ("decoders", "encoders")}
  for group, name in (("decoders", value.get("decoder")), ("encoders", value.get("encoder"))):
    kept[group] = {name: (value.get(group) or {}).get(name)}
  return kept


def _select(config: dict, sections: tuple[str, ...]) -> dict:
  """{key: the used settings of that section or dotted key} of a config as a JSON dict."""
  out = {}
  for key in sections:
    value = config
    for part in key.split("."):
      value = value.get(part) if isinstance(value, dict) else None
    out[key] = _used(key, value)
  return out


def _diff(saved, current, prefix=""):
  if isinstance(saved, dict) and isinstance(current, dict):
    parts = [_diff(saved.get(k), current.get(k), f"{prefix}{k}.")
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    return ", ".join(parts)
  return f"{prefix.rstrip('.')} was {saved!r}, now {current!r}"


def record(config: ml_collections.ConfigDict, sections: tuple[str, ...], **extra) -> dict:
  """What a result is made from: {key: used settings} for each config section or dotted key
  in `sections` (e.g. "search", "experiment.fit_examples"), plus `extra` (e.g. the trained
  checkpoint step)."""
  out = _select(json.loads(config.to_json_best_effort()), sections)
  out.update(extra)
  return json.loads(json.dumps(out))  # tuples as lists, as they come back from JSON


def record_file(result) -> epath.Path:
  """Where the record of `result` lives: `{name}.provenance.json` beside a file
  (`search/test_ood.npz` → `search/test_ood.provenance.json`), `provenance.json` inside a
  folder (a name without a suffix, e.g. `replay`)."""
  result = files.path(result)
  if not result.suffix:
    return result / "provenance.json"
  return result.with_name(result.name[:-len(result.suffix)] + ".provenance.json")


def stale(result, current: dict) -> str:
  """'' when `result` exists and was made by the settings `current` (a `record`), else why
  not: 'missing', 'no record of the settings it was made with', or what differs."""
  result = files.path(result)
  if not result.exists():
    return "missing"
  path = record_file(result)
  if not path.exists():
    return "no record of the settings it was made with"
  saved = files.read_json(path)
  return "" if saved == current else _diff(saved, current)


def write_record(result, current: dict) -> None:
  """Records that `result` was made by the settings `current` (process 0 only)."""
  if jax.process_index() == 0:
    files.write_json(record_file(result), current)


def read_json(result, current: dict):
  """The JSON value kept at `result` when it was made by the settings `current`, else None."""
  return None if stale(result, current) else files.read_json(files.path(result))


def write_json(result, current: dict, value) -> None:
  """Keeps `value` at `result` with its record (process 0 only)."""
  if jax.process_index() == 0:
    files.write_json(files.path(result), value)
  write_record(result, current)


def cached_json(result, current: dict, make: Callable[[], Any]):
  """The JSON value kept at `result` when the settings `current` made it; else `make()`,
  kept there with its record."""
  value = read_json(result, current)
  if value is None:
    value = make()
    write_json(result, current, value)
  return value


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
      raise errors.CheckpointError(
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
