"""A map of where generation is required: the experiment over a grid of settings.

`run_sweep(config_spec, axes, workdir)` runs `run_experiment` (`compgen.study.experiment`)
for every cell of the Cartesian product of `axes`, each in `{workdir}/{cell}/`, with the
control switched off — a decoder axis (`model.decoder=additive,transformer,unconstrained`)
puts the controls in the grid itself. An interrupted sweep resumes: a cell whose results.json
was written for the same config is read back, others reuse the experiment's own checkpoints
and latents.

An axis is "key=v1,v2,...": a dotted config key (`data.split.delta=0.1,0.25`), values parsed as
Python literals, or "variant=a,b" for config-file variants added to the spec's own
(`variant=n0,n1,n2,mlp` on `configs/synthetic.py`). Writes, after each cell,
`{workdir}/sweep.json`: the axes, and per cell its values, the mean ± std over seeds and the
per-seed values of ID and OOD identifiability and reconstruction MSE of every method (for
sprites also the error on pixels two true objects cover and on those one covers, and the
FG-ARI of the slot masks), and of the model's interaction measures (Jacobian overlap, JIS,
J-ARI, ...); at the end
`{workdir}/sweep.png` (`plots.sweep_map`): OOD identifiability per method against the first
axis, one panel per value of the second (columns) and third (rows) axes.
"""
from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import time

import jax
import ml_collections
import numpy as np
import tqdm

from compgen import config_lib
from compgen import errors
from compgen import files
from compgen import plots
from compgen import tables
from compgen.study import experiment as experiment_lib

VARIANT_AXIS = "variant"
METRICS = ("identifiability", "recon_mse", "recon_mse_overlap", "recon_mse_single", "fg_ari")


@dataclasses.dataclass(frozen=True)
class Axis:
  """One grid axis: a dotted config key (or "variant") and its values."""
  key: str
  values: tuple

  @classmethod
  def parse(cls, text: str) -> "Axis":
    """'data.split.delta=0.1,0.25' -> Axis('data.split.delta', (0.1, 0.25))."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
      raise ValueError(f"Grid axis {text!r}: write KEY=V1,V2,... (e.g. "
                       "'data.split.delta=0.1,0.25' or 'variant=n0,mlp').")
    return cls(key, tuple(parse_value(v.strip()) for v in values.split(",") if v.strip()))


def parse_value(text: str):
  """'0.25' -> 0.25, 'True' -> True, 'additive' -> 'additive'."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def cell_name(values: dict) -> str:
  """{'data.split.delta': 0.1, 'variant': 'n0'} -> 'delta=0.1,variant=n0' (a folder name)."""
  return ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items())


# The keys a cell's config gets from the sweep whatever the grid says, and why.
CELL_SETS = {"experiment.control": "every cell trains without the unconstrained control"}


def cell_config(config_spec: str, values: dict,
                overrides: dict | None = None) -> ml_collections.ConfigDict:
  """The config of one cell: `config_spec` plus the cell's variant, then `overrides` (the
  whole sweep's), then the cell's keys; the experiment's control switched off."""
  path, _, variants = config_spec.partition(":")
  if VARIANT_AXIS in values:
    variants = ",".join(v for v in (variants, str(values[VARIANT_AXIS])) if v)
  config = config_lib.load_config(f"{path}:{variants}" if variants else path)
  for key, value in {**(overrides or {}), **values}.items():
    if key != VARIANT_AXIS:
      config_lib.override(config, key, value)
  config.experiment.control = ""
  return config


def _stats(values: list) -> dict:
  return {"values": values, "mean": float(np.mean(values)), "std": float(np.std(values))}


def _cell_summary(results: dict) -> dict:
  """{method: {split: {metric: {"mean", "std", "values"}}}} of one experiment's results (the
  metrics of METRICS it has)."""
  values = {}
  for run in results["runs"]:
    cell = values.setdefault(run["method"], {}).setdefault(run["split"], {})
    for metric in METRICS:
      if metric in run:
        cell.setdefault(metric, []).append(float(run[metric]))
  return {method: {split: {metric: _stats(v) for metric, v in metrics.items()}
                   for split, metrics in splits.items()} for method, splits in values.items()}


def _interaction_summary(results: dict) -> dict:
  """{measure: {"mean", "std", "values"}} over seeds of the cell's one model (the control is
  off), e.g. jacobian_overlap and jis."""
  (rows,) = results["interaction"].values()
  return {measure: _stats([float(row[measure]) for row in rows]) for measure in rows[0]}


def _cell_results(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The cell's results.json when it was written for exactly this config (a finished cell of
  a resumed sweep), else the experiment run now (which reuses its checkpoints and latents)."""
  path = files.path(workdir, "results.json")
  if path.exists():
    saved = files.read_json(path)
    if saved.get("config") == json.loads(json.dumps(config.to_dict())):
      return saved
  return experiment_lib.run_experiment(config, workdir)


def check_grid(config_spec: str, axes: list[Axis], overrides: dict | None = None) -> None:
  """Refuses an empty or repeated axis, and a misspelt key, variant or value of the wrong
  type (KeyError / TypeError / ValueError), before hours of running, not at its first cell."""
  if not axes:
    raise ValueError("A sweep needs at least one grid axis (e.g. 'data.split.delta=0.1,0.25').")
  keys = [a.key for a in axes]
  if len(set(keys)) < len(keys):
    raise ValueError(f"Grid axes {keys} name a key twice; give each key one axis.")
  replaced = [k for k in keys + list(overrides or {}) if k in CELL_SETS]
  if replaced:
    raise errors.ConfigError(
        f"{replaced[0]} is set by the sweep itself ({CELL_SETS[replaced[0]]}), so a grid or "
        "override of it would be ignored: drop it (run the experiment for the control).")
  for axis in axes:
    if not axis.values:
      raise ValueError(f"Grid axis {axis.key!r} has no values.")
    for value in axis.values:
      cell_config(config_spec, {axis.key: value}, overrides)


@files.holds_workdir("sweep")
def run_sweep(config_spec: str, axes: list[Axis], workdir: str,
              overrides: dict | None = None) -> dict:
  """Runs the grid (see the module doc); returns the contents of sweep.json."""
  check_grid(config_spec, axes, overrides)
  keys = [a.key for a in axes]
  cells = [dict(zip(keys, combo)) for combo in itertools.product(*(a.values for a in axes))]
  out = {"config": config_spec, "overrides": dict(overrides or {}),
         "axes": [{"key": a.key, "values": list(a.values)} for a in axes], "cells": []}
  start = time.perf_counter()
  for values in tqdm.tqdm(cells, desc="sweep", unit="cell"):
    config = cell_config(config_spec, values, overrides)
    results = _cell_results(config, str(files.path(workdir, cell_name(values))))
    out["cells"].append({"values": values, "seeds": results["seeds"],
                         "wall_seconds": results["wall_seconds"],
                         "methods": _cell_summary(results),
                         "interaction": _interaction_summary(results)})
    out["wall_seconds"] = time.perf_counter() - start
    if jax.process_index() == 0:
      files.write_json(files.path(workdir, "sweep.json"), out)
  if jax.process_index() == 0:
    plots.sweep_map(out, files.path(workdir, "sweep.png"))
  return out


def format_table(sweep: dict, split: str = "ood") -> str:
  """Markdown: one row per cell, the mean ± std identifiability of each method on `split`."""
  methods = experiment_lib.METHODS
  keys = [a["key"] for a in sweep["axes"]]
  score = lambda cell, m: cell["methods"][m][split]["identifiability"]
  return tables.markdown(
      [k.rsplit(".", 1)[-1] for k in keys] + list(methods),
      [[str(cell["values"][k]) for k in keys]
       + [f"{score(cell, m)['mean']:.3f} ± {score(cell, m)['std']:.3f}" for m in methods]
       for cell in sweep["cells"]])
