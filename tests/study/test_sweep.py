"""The sweep: every cell of the grid runs the experiment (resuming is the experiment's own,
tests/study/test_experiment.py); sweep.json, the table and the map."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from compgen import errors
from compgen import plots
from compgen.study import experiment, sweep

# two candidates per model, each scored: the sweep's cells also test population runs
SETTINGS = {"experiment.readout_steps": 20, "mesh.data": 1, "model.candidates": 2,
            "experiment.score_candidates": True}


@pytest.fixture(scope="module")
def sweep_spec(repo_root):
  return os.path.join(repo_root, "configs", "synthetic.py:smoke")


@pytest.fixture(scope="module")
def swept(tmp_path_factory, sweep_spec):
  workdir = str(tmp_path_factory.mktemp("sweep"))
  axes = [sweep.Axis.parse("data.split.delta=0.1,0.3"), sweep.Axis.parse("variant=n1")]
  return workdir, axes, sweep.run_sweep(sweep_spec, axes, workdir, SETTINGS)


def test_every_cell_is_an_experiment_of_its_own_settings(swept):
  workdir, _, out = swept
  assert [c["values"] for c in out["cells"]] == [
      {"data.split.delta": d, "variant": "n1"} for d in (0.1, 0.3)]
  for cell in out["cells"]:
    folder = os.path.join(workdir, sweep.cell_name(cell["values"]))
    with open(os.path.join(folder, "results.json")) as f:
      results = json.load(f)
    config = results["config"]
    assert config["data"]["split"]["delta"] == cell["values"]["data.split.delta"]
    assert config["data"]["synthetic"]["degree"] == int(cell["values"]["variant"][1])
    assert config["experiment"]["readout_steps"] == 20 and config["experiment"]["control"] == ""
    assert set(results["interaction"]) == {"additive"}  # no control: the grid holds it
    assert set(cell["methods"]) == set(experiment.METHODS)
    (measures,) = results["interaction"]["additive"]
    assert {k: v["values"] for k, v in cell["interaction"].items()} == {
        k: [pytest.approx(v)] for k, v in measures.items()} and "jacobian_overlap" in measures
    # vectors have no objects: no error on overlapping pixels to carry
    assert set(cell["methods"]["search"]["ood"]) == {"identifiability", "recon_mse"}
    for method in experiment.METHODS:
      ood = cell["methods"][method]["ood"]["identifiability"]
      summary = results["summary"][f"additive: {method}"]["ood"]["identifiability"]
      assert ood["values"] == [pytest.approx(summary["mean"])] and ood["std"] == 0.0
    kept = results["candidates"]["seed0/additive"]
    assert kept["selected"] == int(np.argmin(kept["train_recon_mse"]))
    assert {k: len(v) for k, v in kept["scores"].items()} == {
        "encoder/id": 2, "encoder/ood": 2, "search/ood": 2}
    # the kept candidate, scored on its own, is the model the main table scored
    for split in ("id", "ood"):
      assert kept["scores"][f"encoder/{split}"][kept["selected"]] == pytest.approx(
          results["summary"]["additive: encoder"][split]["identifiability"]["mean"], abs=1e-4)
    assert os.path.getsize(os.path.join(folder, "candidates.png")) > 5000
  with open(os.path.join(workdir, "sweep.json")) as f:
    assert json.load(f)["cells"] == json.loads(json.dumps(out["cells"]))
  assert os.path.getsize(os.path.join(workdir, "sweep.png")) > 5000
  table = sweep.format_table(out)
  assert table.count("\n") == 1 + len(out["cells"]) and "| 0.3 | n1 |" in table


def test_a_rerun_reads_finished_cells_back_and_a_changed_config_runs_again(
    swept, monkeypatch, sweep_spec):
  workdir, axes, out = swept
  calls = []
  monkeypatch.setattr(experiment, "run_experiment", lambda config, wd: calls.append(wd))
  again = sweep.run_sweep(sweep_spec, axes, workdir, SETTINGS)
  assert again["cells"] == out["cells"] and not calls
  with pytest.raises(TypeError):  # the stand-in returns None: it was called
    sweep.run_sweep(sweep_spec, axes, workdir, {**SETTINGS, "experiment.readout_steps": 21})
  assert calls == [os.path.join(workdir, sweep.cell_name(out["cells"][0]["values"]))]


def test_bad_grids_are_refused_before_anything_runs(tmp_path, sweep_spec):
  with pytest.raises(ValueError, match="KEY=V1,V2"):
    sweep.Axis.parse("data.split.delta")
  with pytest.raises(KeyError, match="data.split.delta"):
    sweep.run_sweep(sweep_spec, [sweep.Axis.parse("data.split.detla=0.1")], str(tmp_path))
  with pytest.raises(ValueError, match="Unknown config variant"):
    sweep.run_sweep(sweep_spec, [sweep.Axis.parse("variant=n7")], str(tmp_path))
  with pytest.raises(ValueError, match="twice"):
    sweep.run_sweep(sweep_spec, [sweep.Axis.parse("seed=0"), sweep.Axis.parse("seed=1")],
                    str(tmp_path))
  with pytest.raises(errors.ConfigError, match="experiment.control is set by the sweep itself"):
    sweep.run_sweep(sweep_spec, [sweep.Axis.parse("experiment.control=mlp")], str(tmp_path))
  with pytest.raises(errors.ConfigError, match="experiment.control is set by the sweep itself"):
    sweep.run_sweep(sweep_spec, [sweep.Axis.parse("seed=0")], str(tmp_path),
                    {"experiment.control": "mlp"})
  assert not os.listdir(tmp_path)
  with pytest.raises(ValueError, match="1 to 3 grid axes"):
    plots.sweep_map({"axes": [{"key": k, "values": [0]} for k in "abcd"], "cells": []})


def test_the_sweep_cli_refuses_a_misspelt_key_in_one_line(tmp_path, repo_root, sweep_spec):
  out = subprocess.run([sys.executable, "-m", "compgen.sweep", f"--config={sweep_spec}",
                        f"--workdir={tmp_path / 'w'}", "--grid=data.split.detla=0.1"],
                       cwd=repo_root, capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1].startswith(
      "compgen.sweep: Unknown config key 'data.split.detla'"), out.stderr[-2000:]
  assert "Did you mean data.split.delta" in out.stderr and not (tmp_path / "w").exists()


def test_a_seed_axis_trains_that_seed(tmp_path, sweep_spec):
  # the experiment's seeds start at the config's seed: the cell seed=1 trains seed 1 (not 0)
  out = sweep.run_sweep(sweep_spec, [sweep.Axis.parse("seed=1")], str(tmp_path),
                        {**SETTINGS, "model.candidates": 1, "experiment.score_candidates": False})
  (cell,) = out["cells"]
  assert cell["seeds"] == [1]
  folder = tmp_path / sweep.cell_name(cell["values"])
  assert sorted(os.listdir(folder / "seed1")) == ["additive"] and not (folder / "seed0").exists()
  with open(folder / "seed1" / "additive" / "config.json") as f:
    assert json.load(f)["seed"] == 1
