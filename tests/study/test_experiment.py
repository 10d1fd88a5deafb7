"""The experiment job end to end on the smoke config: every method scored ID and OOD."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import compgen
from compgen.study import composition
from compgen.study import experiment
from compgen.study import perceived
from compgen.study import supervised
from compgen import parallel


@pytest.fixture(scope="module")
def ran(tmp_path_factory, config_of):
  workdir = str(tmp_path_factory.mktemp("experiment"))
  config = config_of("sprites", "smoke")
  return config, workdir, experiment.run_experiment(config, workdir)


def test_experiment_scores_every_method_and_the_control(ran):
  config, workdir, results = ran
  method_rows = {f"{model}: {method}" for model in ("additive", "unconstrained")
                 for method in experiment.METHODS}
  assert set(results["summary"]) == method_rows
  for row in method_rows:
    for split in ("id", "ood"):
      cell = results["summary"][row][split]
      for key in ("identifiability", "recon_mse", "recon_r2", "factor/x", "factor/shape"):
        assert cell[key]["n"] == 1 and cell[key]["mean"] == cell[key]["mean"]  # not NaN
      assert cell["recon_mse"]["mean"] > 0
  # search moves from the encoder's guess to a markedly better explanation of the images
  # ("no worse" would hold by construction: the start is one of its iterates); measured on
  # this smoke model: 0.75-0.80 of the encoder's error
  for model in ("additive", "unconstrained"):
    for split in ("id", "ood"):
      s = results["summary"]
      assert (s[f"{model}: search"][split]["recon_mse"]["mean"]
              < 0.95 * s[f"{model}: encoder"][split]["recon_mse"]["mean"])
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert saved["seeds"] == [0] and len(saved["runs"]) == 2 * 4 * 2
  table = open(os.path.join(workdir, "results.md")).read()
  for row in method_rows:
    assert f"| {row} |" in table
  for name in ("identifiability.png", "reconstructions_ood.png", "search_loss.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 1000
  assert set(results["interaction"]) == {"additive", "unconstrained"}
  for stats in results["interaction"].values():  # JIS on the true foreground of the ID images
    assert 0 <= stats[0]["jis"] <= 1
  assert "JIS" in table
  # reconstruction error on the pixels one true object covers (no scene overlaps here)
  for row in method_rows:
    for split in ("id", "ood"):
      assert results["summary"][row][split]["recon_mse_single"]["mean"] > 0
  # segmentation: FG-ARI of the additive decoder's slot masks at every method's latents (the
  # control draws no slots), J-ARI of both decoders' Jacobians
  for method in experiment.METHODS:
    for split in ("id", "ood"):
      assert -1 <= results["summary"][f"additive: {method}"][split]["fg_ari"]["mean"] <= 1
      assert "fg_ari" not in results["summary"][f"unconstrained: {method}"][split]
  for stats in results["interaction"].values():
    assert -1 <= stats[0]["j_ari"] <= 1
  assert "J-ARI" in table and "| additive: search |" in table.split("FG-ARI")[-1]


def test_rerun_reuses_the_cached_latents_and_the_cli_prints_the_table(ran, repo_root):
  config, workdir, _ = ran
  cache = os.path.join(workdir, "seed0", "additive", "experiment", "latents.npz")
  written = os.path.getmtime(cache)
  out = subprocess.run(
      [sys.executable, "-m", "compgen.experiment", "--config=configs/sprites.py:smoke",
       f"--workdir={workdir}"], cwd=repo_root, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "| additive: replay_search |" in out.stdout
  assert os.path.getmtime(cache) == written


def test_more_seeds_and_other_search_settings_reuse_the_models_and_redo_the_latents(
    ran, capsys, config_of):
  _, workdir, _ = ran
  cache = os.path.join(workdir, "seed0", "additive", "experiment", "latents.npz")
  written = os.path.getmtime(cache)
  config = config_of("sprites", "smoke")
  config.experiment.update(seeds=2, control_seeds=1, composed_pool=64, supervised_steps=20)
  config.search.num_steps += 1
  results = experiment.run_experiment(config, workdir)
  # the supervised reference, once per seed
  assert set(results["supervised"]) == {"seed0", "seed1"}
  for run in results["supervised"].values():
    assert run["steps"] == 20 and set(run["per_factor"]["ood"]) == set(results["factor_names"])
  assert "| seed1 | OOD |" in open(os.path.join(workdir, "results.md")).read()
  # the recombined-ID-slots diagnostic, for every model run
  assert set(results["composition"]) == {"seed0/additive", "seed1/additive",
                                         "seed0/unconstrained"}
  for run in results["composition"].values():
    assert set(run["recon_mse"]) == set(run["identifiability"]) == {
        f"{row}/{split}" for row in composition.ROWS for split in ("id", "ood")}
    assert run["pool"] == 64 and sorted(run["assignment"]) == [0, 1]
    assert all(v > 0 for v in run["recon_mse"].values())
    assert run["recon_mse"]["recombined_search/ood"] < run["recon_mse"]["recombined/ood"]
  assert "| seed1/additive | recombined_search |" in open(
      os.path.join(workdir, "results.md")).read()
  assert results["seeds"] == [0, 1] and results["control_seeds"] == [0]
  assert {(r["seed"], r["model"]) for r in results["runs"]} == {
      (0, "additive"), (1, "additive"), (0, "unconstrained")}
  assert results["summary"]["additive: search"]["ood"]["identifiability"]["n"] == 2
  assert results["summary"]["unconstrained: search"]["ood"]["identifiability"]["n"] == 1
  assert "control seeds [0]" in open(os.path.join(workdir, "results.md")).read()
  assert not os.path.exists(os.path.join(workdir, "seed1", "unconstrained"))
  # seed 0's trained models are reused; its latents, made with 5 search steps, are redone
  out = capsys.readouterr().out
  assert out.count("(search.num_steps was 5, now 6); inferring the latents again") == 2
  assert os.path.getmtime(cache) > written
  record = json.load(open(cache.replace(".npz", ".provenance.json")))
  assert record["search"]["num_steps"] == 6 and record["trained_step"] == 4


def test_bad_experiment_settings_are_refused(ran, tmp_path, config_of):
  config = config_of("sprites", "smoke")
  config.experiment.readout_fit = "decoder"
  with pytest.raises(ValueError, match="readout_fit"):
    experiment.run_experiment(config, str(tmp_path))


def test_readouts_are_fitted_on_id_latents_only(config_of):
  """Poisoned latents: every method's fit and ID latents are noise, its OOD latents the truth.
  Readouts fitted on ID learn nothing and score ≈ 0 OOD; fitted on OOD they would score ≈ 1,
  as they do once the fit latents are the truth too."""
  rng = np.random.default_rng(0)
  n, k, m = 300, 2, 2
  arrays = {s: {"latents": rng.uniform(size=(n, k, m)).astype(np.float32),
                "x": rng.normal(size=(n, 8)).astype(np.float32)} for s in ("fit", "id", "ood")}
  seen = perceived.Perceived()
  for method in experiment.METHODS:
    for split in ("fit", "id", "ood"):
      seen.add(method, split, mse=np.ones(n), z=(arrays["ood"]["latents"] if split == "ood"
                                                else rng.normal(size=(n, k, m))))
  config = config_of("synthetic", "smoke")
  config.experiment.readout_steps = 200
  bench = perceived.Benchmark(arrays, ["z0", "z1"], None)
  score = lambda: experiment.score_methods(config, seen, bench, 0)
  for readout_fit in ("own", "encoder"):
    config.experiment.readout_fit = readout_fit
    for method, scores in score().items():
      assert scores["ood"]["identifiability"] < 0.15, (readout_fit, method, scores["ood"])
  for method in experiment.METHODS:
    seen.add(method, "fit", z=arrays["fit"]["latents"])
  assert min(s["ood"]["identifiability"] for s in score().values()) > 0.9


def test_recombined_slots_are_the_inferred_slots_of_the_nearest_id_objects():
  """Oracle: a pool whose inferred slot 1 encodes true slot 0 and slot 0 true slot 1 (h below);
  test scenes pair objects of different pool scenes, so every slot value was seen but not the
  combination: recombination returns h of each test object, with the shape matched even where
  an object of another shape lies nearer."""
  rng = np.random.default_rng(0)
  p, k = 200, 2
  lat = rng.uniform(size=(p, k, 2))
  fac = rng.integers(0, 3, size=(p, k, 1))
  h = lambda l, f: np.concatenate([np.sin(3 * l), l**2, f], -1)  # [.., 5]: invertible per slot
  pool_z = np.stack([h(lat[:, 1], fac[:, 1]), h(lat[:, 0], fac[:, 0])], axis=1)
  a, b = rng.permutation(p)[:50], rng.permutation(p)[:50]
  test_lat = np.stack([lat[a, 0], lat[b, 1]], axis=1)
  test_fac = np.stack([fac[a, 0], fac[b, 1]], axis=1)
  z, distance = composition.recombine_slots(pool_z, lat, fac, test_lat, test_fac, [1, 0])
  np.testing.assert_allclose(z[:, 1], h(test_lat[:, 0], test_fac[:, 0]))
  np.testing.assert_allclose(z[:, 0], h(test_lat[:, 1], test_fac[:, 1]))
  assert distance.max() < 1e-12
  # a test object with a pool object of another shape right on it takes one of its own shape
  query = test_lat[:1] + np.array([0.01, 0.0])
  lat2, fac2 = np.concatenate([lat, lat[:1]]), np.concatenate([fac, fac[:1]])
  lat2[-1, 0], fac2[-1, 0] = query[0, 0], (test_fac[0, 0] + 1) % 3
  pool2 = np.concatenate([pool_z, h(lat2[-1:, ::-1], fac2[-1:, ::-1])])
  z, distance = composition.recombine_slots(pool2, lat2, fac2, query, test_fac[:1], [1, 0])
  assert z[0, 1, -1] == test_fac[0, 0, 0] and 0 < distance[0, 0] < 1


def test_the_supervised_reference_reads_the_slots_it_is_trained_on(
    tmp_path, monkeypatch, config_of):
  """On the synthetic smoke data an encoder trained on (x, true latents) pairs identifies the
  slots ID (its targets: standardised latents, one-hot categories) and a decoder trained on
  them reconstructs; a rerun reads the cache."""
  t = supervised.slot_targets(np.array([[[1.0, 3.0]]]), np.array([[[2]]]), (3,),
                              np.array([[1.0, 1.0]]), np.array([[1.0, 2.0]]))
  np.testing.assert_array_equal(t, [[[0.0, 1.0, 0.0, 0.0, 1.0]]])
  config = config_of("synthetic", "smoke")
  config.experiment.update(supervised_steps=300, supervised_decoder=True, readout_steps=200)
  config.train.update(checkpoint_every=100, log_every=10)  # the smoke config saves every 2
  bench = perceived.load_benchmark(config)
  arrays = bench.arrays
  run = lambda: supervised.train_and_score(config, str(tmp_path), bench,
                                           parallel.make_mesh(config.mesh))
  result = run()
  assert result["identifiability"]["id"] > 0.9, result  # measured 0.98
  # the decoder given the true latents explains most of the inputs' variance (measured 11%)
  assert result["decoder_mse"]["id"] < 0.25 * arrays["id"]["x"].var(0).mean(), result
  assert set(result["fit_loss"]) == {"encoder", "decoder"}
  # trained on the shared step loop: its metrics kept, its checkpoints gone once scored
  rows = (tmp_path / "supervised" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == 300 // config.train.log_every == 30
  assert not (tmp_path / "supervised" / "checkpoints").exists()
  monkeypatch.setattr(supervised, "_fit", None)  # no training now
  assert run() == result


def test_the_experiment_perceives_what_compgen_invert_returns(ran, tmp_path):
  """One perception path: with restarts drawn from the prior, the experiment's search latents
  are those `compgen.invert` returns for the same images and settings."""
  _, workdir, _ = ran
  run = str(shutil.copytree(os.path.join(workdir, "seed0", "additive"), tmp_path / "run"))
  config = compgen.load(run).config
  config.search.restarts = 3
  bench = perceived.load_benchmark(config)
  seen = experiment.infer_latents(config, run, bench, parallel.make_mesh(config.mesh))
  model = compgen.load(run, config)
  for split in ("id", "ood"):
    x = bench.x(split)
    found = compgen.invert(model, x)
    np.testing.assert_allclose(found["z"], seen["search", split]["z"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(found["mse"], seen["search", split]["mse"], rtol=1e-6)
    single = compgen.invert(model, x, restarts=1)  # the restarts are searched, and help
    assert (found["mse"] <= single["mse"] + 1e-7).all()
    assert (found["mse"] < single["mse"] - 1e-7).any()


def test_a_cache_without_segmentation_scores_gets_them_and_keeps_its_latents(ran, tmp_path):
  _, workdir, _ = ran
  run = str(shutil.copytree(os.path.join(workdir, "seed0", "additive"), tmp_path / "run"))
  config = compgen.load(run).config
  path = tmp_path / "run" / "experiment" / "latents.npz"
  full = perceived.load(path)
  old = perceived.load(path)
  del old.interaction["j_ari"]
  for view in old.views.values():
    view.pop("fg_ari", None)
  perceived.save(path, old)
  bench = perceived.load_benchmark(config)
  seen = experiment.infer_latents(config, run, bench, parallel.make_mesh(config.mesh))
  assert seen.interaction["j_ari"] == pytest.approx(full.interaction["j_ari"])
  for key, view in full.views.items():
    np.testing.assert_array_equal(seen[key]["z"], view["z"])
    if "fg_ari" in view:
      np.testing.assert_allclose(seen[key]["fg_ari"], view["fg_ari"], rtol=1e-6)
  assert "j_ari" in perceived.load(path).interaction  # written back


def test_what_was_perceived_is_read_back_as_written(tmp_path):
  rng = np.random.default_rng(0)
  seen = perceived.Perceived(interaction={"jis": np.float64(0.3)})
  seen.add("search", "ood", z=rng.normal(size=(4, 2, 3)), mse=rng.uniform(size=4),
           trace_mean=rng.uniform(size=5))
  seen.add("encoder", "fit", z=rng.normal(size=(4, 2, 3)))
  perceived.save(tmp_path / "latents.npz", seen)
  back = perceived.load(tmp_path / "latents.npz")
  assert set(back.views) == {("search", "ood"), ("encoder", "fit")}
  for key, view in seen.views.items():
    assert set(back[key]) == set(view)
    for field, value in view.items():
      np.testing.assert_array_equal(back[key][field], value)
  assert back.interaction == {"jis": 0.3}
