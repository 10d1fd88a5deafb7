"""ID training: every config's smoke run, workdir checks, optimiser errors (resume after a
stop, a kill or a damaged checkpoint: tests/test_faults.py)."""
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from compgen.data import pipeline
from compgen.training import candidates, checkpoints, optimizers, train_lib, trained

def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


SMOKE_RUNS = [("sprites", "smoke"), ("sprites", "alpha,smoke"),
              ("sprites", "transformer,smoke"), ("sprites", "unconstrained,smoke"),
              ("sprites", "transformer_encoder,vae,smoke"), ("sprites", "slot_attention,smoke"),
              ("sprites", "conv,conv_encoder,smoke"), ("sprites", "smoke,transformer_vae_released"),
              ("synthetic", "smoke"),
              ("synthetic", "transformer,smoke"), ("synthetic", "unconstrained,vae,smoke")]


@pytest.mark.parametrize("name, arg", SMOKE_RUNS)
def test_smoke_variant_trains_logs_checkpoints_and_evaluates(tmp_path, name, arg, config_of):
  config = config_of(name, arg)
  state = train_lib.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  rows = _metrics(tmp_path)
  train_rows = [r for r in rows if "loss" in r]
  assert [r["step"] for r in train_rows] == [2, 4]
  assert all(np.isfinite(r["loss"]) and r["examples_per_s"] > 0 for r in train_rows)
  final = rows[-1]
  for split in ("train", "test_id", "test_ood"):
    assert np.isfinite(final[f"{split}/recon_mse"])
  assert {"test_id/matched_r2", "test_ood/matched_r2"} <= set(final)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  assert json.loads((tmp_path / "config.json").read_text())["model"]["decoder"] == config.model.decoder
  assert (tmp_path / "reconstructions.png").exists() == (name == "sprites")
  if "vae" in arg:
    assert all("kl" in r for r in train_rows)
  if "transformer" in arg and "encoder" not in arg:
    # α warms up linearly (over 2 steps in the smoke: half at the step from state.step = 1,
    # full after; the released recipe's 5% of 4 steps is none)
    warmup = config.loss.interaction_warmup_steps
    assert [r["interaction_weight"] for r in train_rows] == pytest.approx(
        [0.05 * min(1, s / max(warmup, 1)) for s in (1, 3)])
    # at most H² (K − 1) / (2K), K = 2 slots (+ 1 background key, where there is one)
    heads, k = (config.model.decoders.transformer.num_heads,
                2 + config.model.decoders.transformer.background_token)
    assert all(0.0 <= r["interaction"] <= heads**2 * (k - 1) / (2 * k) for r in train_rows)


def test_finished_run_is_not_retrained(tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  train_lib.train_and_evaluate(config, str(tmp_path))
  n_rows = len(_metrics(tmp_path))
  state = train_lib.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  assert len([r for r in _metrics(tmp_path)[n_rows:] if "loss" in r]) == 0


def test_workdir_of_another_config_is_refused(tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  train_lib.train_and_evaluate(config, str(tmp_path))
  other = config_of("synthetic", "transformer,smoke")
  with pytest.raises(checkpoints.CheckpointError, match="model: decoder was 'additive', now 'transformer'"):
    train_lib.train_and_evaluate(other, str(tmp_path))
  wider = config_of("synthetic", "smoke")
  wider.model.decoders.additive.hidden = (48, 48)
  with pytest.raises(checkpoints.CheckpointError, match="decoders.additive.hidden"):
    train_lib.train_and_evaluate(wider, str(tmp_path))
  longer = config_of("synthetic", "smoke")
  longer.train.num_steps = 6  # training longer is the same run
  longer.model.decoders.transformer.width = 48  # a decoder this run does not use
  assert int(train_lib.train_and_evaluate(longer, str(tmp_path)).step) == 6


def test_other_optimizer_settings_restore_the_model_but_do_not_resume_its_training(
    tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  state = train_lib.train_and_evaluate(config, str(tmp_path))
  other = config_of("synthetic", "smoke")  # another optimizer state tree: no clipping, AdamW
  other.optim.update(grad_clip_norm=0.0, name="adamw", learning_rate=1e-2)
  other.loss.consistency_weight = 0.5
  _, params, step = trained.restore_trained(other, str(tmp_path))  # search, replay, experiment
  assert step == 4
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  other.train.num_steps = 6
  with pytest.raises(checkpoints.CheckpointError, match=r"optim: grad_clip_norm was 1\.0, now 0\.0.*"
                     r"Set these back to resume it"):
    train_lib.train_and_evaluate(other, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]  # nothing lost
  changed = config_of("synthetic", "smoke")
  changed.data.synthetic.output_dim = 12
  with pytest.raises(checkpoints.CheckpointError, match="model trained with a different config"):
    trained.restore_trained(changed, str(tmp_path))


def test_training_reduces_the_loss(tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  config.train.update(num_steps=150, log_every=10, eval_every=1000, checkpoint_every=1000)
  config.optim.learning_rate = 3e-3
  train_lib.train_and_evaluate(config, str(tmp_path))
  losses = [r["mse"] for r in _metrics(tmp_path) if "loss" in r]
  assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("key, value, match", [
    ("name", "sgdr", "Unknown optim.name"), ("decay", "step", "Unknown optim.decay")])
def test_bad_optimiser_settings_are_refused(key, value, match, config_of):
  config = config_of("synthetic", "smoke")
  config.optim[key] = value
  with pytest.raises(ValueError, match=match):
    optimizers.make_optimizer(config.optim, 10)


def test_batch_size_must_fit_the_devices(tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  config.train.batch_size = 12  # the tests run with 8 virtual devices
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    train_lib.train_and_evaluate(config, str(tmp_path))


def test_candidates_train_side_by_side_and_the_best_fit_of_the_training_data_is_kept(
    tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  single = train_lib.train_and_evaluate(config, str(tmp_path / "single"))
  config.model.candidates = 3
  population = train_lib.train_and_evaluate(config, str(tmp_path / "population"))
  assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(population.params))
  first = candidates.take(population.params, 0)  # candidate 0 is the single model's run
  for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(first), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  # the kept one is the lowest reconstruction error on the first eval_examples training vectors
  model, kept, step = trained.restore_trained(config, str(tmp_path / "population"))
  train = trained.first_examples(
      pipeline.load_split(config.data, "train"), config.train.eval_examples)
  x = np.asarray(train["x"])
  errors = []
  for i in range(3):
    p = candidates.take(population.params, i)
    out = model.decode(p, model.encode(p, x)["mean"])["output"]
    errors.append(float(np.mean((np.asarray(out) - x) ** 2)))
  assert len(set(errors)) == 3  # independent inits
  record = json.loads((tmp_path / "population" / "candidates.json").read_text())
  assert record["selected"] == int(np.argmin(errors)) and record["step"] == step == 4
  np.testing.assert_allclose(record["train_recon_mse"], errors, rtol=1e-4)
  best = candidates.take(population.params, record["selected"])
  for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(kept), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  config.model.candidates = 0
  with pytest.raises(ValueError, match="model.candidates=0"):
    train_lib.train_and_evaluate(config, str(tmp_path / "none"))
  assert not (tmp_path / "none").exists()  # refused before anything is written


def test_a_workdir_from_before_candidates_existed_is_the_single_model_run(tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  train_lib.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["model"]["candidates"]  # what an older compgen wrote
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert trained.restore_trained(config, str(tmp_path))[2] == 4
  config.model.candidates = 2
  with pytest.raises(checkpoints.CheckpointError, match="model: candidates was None, now 2"):
    trained.restore_trained(config, str(tmp_path))


def test_a_population_cut_at_a_step_keeps_its_best_fit_there_and_resumes_across_the_cut(
    tmp_path, config_of):
  config = config_of("synthetic", "smoke")
  config.model.candidates = 3
  config.train.checkpoint_every = 1
  population = train_lib.train_and_evaluate(config, str(tmp_path / "whole"), stop_at_step=2)
  model = trained.build_model(config, trained.first_examples(
      pipeline.load_split(config.data, "train"), 1))
  x = np.asarray(trained.first_examples(pipeline.load_split(config.data, "train"),
                                          config.train.eval_examples)["x"])
  errors = [float(np.mean((np.asarray(model.decode(p, model.encode(p, x)["mean"])["output"])
                           - x) ** 2))
            for p in (candidates.take(population.params, i) for i in range(3))]
  config.model.keep_candidate_at = 2
  cut = train_lib.train_and_evaluate(config, str(tmp_path / "cut"))
  record = json.loads((tmp_path / "cut" / "candidates.json").read_text())
  assert record["step"] == 2 and record["selected"] == int(np.argmin(errors))
  np.testing.assert_allclose(record["train_recon_mse"], errors, rtol=1e-4)
  assert int(cut.step) == config.train.num_steps
  assert all(leaf.shape == single.shape for leaf, single in zip(
      jax.tree.leaves(cut.params), jax.tree.leaves(candidates.take(population.params, 0)),
      strict=True))  # one model trained on from the cut
  _, kept, _ = trained.restore_trained(config, str(tmp_path / "cut"))
  for a, b in zip(jax.tree.leaves(cut.params), jax.tree.leaves(kept), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # stopped at the cut, then after it: each resume gives the uninterrupted run's parameters
  for stop in (2, 3, None):
    resumed = train_lib.train_and_evaluate(config, str(tmp_path / "resumed"), stop_at_step=stop)
  for a, b in zip(jax.tree.leaves(cut.params), jax.tree.leaves(resumed.params), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  config.model.keep_candidate_at = config.train.num_steps
  with pytest.raises(ValueError, match="model.keep_candidate_at=4"):
    train_lib.train_and_evaluate(config, str(tmp_path / "late"))


def test_the_parameter_summary_counts_one_model_of_a_population():
  shapes = {"encoder": {"w": jax.ShapeDtypeStruct((2, 3, 4), np.float32)},
            "decoder": {"b": jax.ShapeDtypeStruct((2, 5), np.float32),
                        "w": jax.ShapeDtypeStruct((2, 5, 2), np.float32)}}
  model = ml_collections.ConfigDict({"encoder": "cnn", "decoder": "additive"})
  assert trained.parameter_summary(shapes, 2, model) == (
      "Model: cnn encoder, additive decoder: 27 parameters (2 side by side) "
      "(decoder 15, encoder 12).")
