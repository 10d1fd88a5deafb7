"""The stopping rule (`training/stopping.py`) on known error curves, and in a training run:
it stops there, records the step, and a rerun neither trains on nor logs again; under
warmup_stable_decay it starts the cool-down there instead."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from compgen import errors
from compgen.training import optimizers, stopping, train_lib, trained


def _first_stop(curve, every, window, improvement, min_steps=0):
  history = {}
  for step in range(every, len(curve) * every + 1, every):
    history[step] = curve[step // every - 1]
    if stopping.levelled_off(history, step, window, improvement, min_steps):
      return step
  return None


def test_an_exponential_approach_stops_where_the_window_gain_falls_under_the_fraction():
  # e(t) = 1e-3 + 1e-2 exp(-t / 2000): over a window W the error falls by
  # (1 - exp(-W/τ)) b e^{-t/τ} / (a + b e^{-(t-W)/τ}); the first multiple of 500 where
  # that is under 2% is the answer, worked out here independently of the rule.
  steps = np.arange(500, 40_001, 500)
  curve = 1e-3 + 1e-2 * np.exp(-steps / 2000)
  gain = 1 - curve[2:] / curve[:-2]  # over 1,000 steps
  expected = int(steps[2:][np.argmax(gain < 0.02)])
  assert _first_stop(curve, 500, 1000, 0.02) == expected
  assert 9000 < expected < 12_000


def test_a_curve_still_falling_runs_to_the_cap_and_min_steps_hold():
  steps = np.arange(1000, 20_001, 1000)
  assert _first_stop(1.0 / steps, 1000, 2000, 0.02) is None  # a power law never levels off
  flat = np.full(len(steps), 1e-3)
  assert _first_stop(flat, 1000, 2000, 0.02) == 3000  # the first with an error 2,000 before
  assert _first_stop(flat, 1000, 2000, 0.02, min_steps=5000) == 5000
  assert _first_stop(flat, 1000, 0, 0.02) is None  # window 0: the rule is off


def test_noise_below_the_best_earlier_error_is_progress():
  # a new best anywhere in the window keeps training: only the newest error is compared
  history = {1000: 1.0, 2000: 0.9, 3000: 0.95}
  assert stopping.levelled_off(history, 3000, 1000, 0.02)  # 0.95 > 0.98 * 0.9
  history[4000] = 0.85
  assert not stopping.levelled_off(history, 4000, 1000, 0.02)


def test_one_noisy_evaluation_above_a_falling_curve_does_not_stop_it():
  # the held-out errors of bench32,rule seed 1 at 10k-12k (results/sprites32/stopping_rule/seed1/):
  # 12k is 45% above 11k, but 11k is 6% below 10k, so the window's best still improved
  history = {8000: 0.000720, 9000: 0.000690, 10_000: 0.000668, 11_000: 0.000626,
             12_000: 0.000908}
  assert not stopping.levelled_off(history, 12_000, 2000, 0.02)
  for step in (13_000, 14_000, 15_000):  # then a plateau 4% below 11k's error
    history[step] = 0.000600
  assert not stopping.levelled_off(history, 13_000, 2000, 0.02)
  assert not stopping.levelled_off(history, 14_000, 2000, 0.02)  # 4% below the best to 12k
  assert stopping.levelled_off(history, 15_000, 2000, 0.02)  # the window (13k, 15k] is level


def test_on_the_committed_curves_only_a_level_error_stops():
  # the hard-edged 32x32 run's error had levelled off where the rule fired (22,000); the soft
  # seeds' runs, which fired on e(t) alone at an evaluation above the window's best (seed 0
  # at 19,000, seed 1 at 12,000), do not fire on these curves
  root = os.path.join(os.path.dirname(__file__), "..", "..", "results", "sprites32")

  def curve(folder):
    with open(os.path.join(root, folder, "train_metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
    return [r["test_id/recon_mse"] for r in rows if "test_id/recon_mse" in r]

  assert _first_stop(curve("hard_edges/stopping_rule"), 1000, 2000, 0.02) == 22_000
  assert _first_stop(curve("stopping_rule"), 1000, 2000, 0.02) is None
  assert _first_stop(curve("stopping_rule/seed1"), 1000, 2000, 0.02) is None


def test_a_window_the_evaluations_cannot_measure_is_refused():
  train = ml_collections.ConfigDict({"eval_every": 500, "stop_window": 750})
  with pytest.raises(errors.ConfigError, match="multiple of train.eval_every"):
    stopping.check(train)


def test_training_stops_when_levelled_records_it_and_a_rerun_changes_nothing(tmp_path,
                                                                            config_of):
  config = config_of("sprites", "smoke")
  config.train.update(num_steps=40, eval_every=10, checkpoint_every=40, stop_window=20,
                      stop_improvement=0.95)
  state = train_lib.train_and_evaluate(config, str(tmp_path))
  record = json.loads((tmp_path / stopping.FILE).read_text())
  assert int(state.step) == record["step"] == 30  # the first step with an error 20 before
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["30"]
  rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert trained.training_record(str(tmp_path))["stopped_early"]
  again = train_lib.train_and_evaluate(config, str(tmp_path))
  assert int(again.step) == 30
  assert (tmp_path / "metrics.jsonl").read_text().splitlines() == rows


def _wsd(**kwargs):
  return ml_collections.ConfigDict(dict(
      learning_rate=1e-3, decay="warmup_stable_decay", warmup_steps=100, cooldown_steps=400,
      end_learning_rate_fraction=0.1, **kwargs))


@pytest.mark.parametrize("start", [None, 2000])
def test_warmup_stable_decay_holds_the_peak_until_its_start_then_cools_down_linearly(start):
  schedule = optimizers.learning_rate_schedule(_wsd(), 10_000, cooldown_start=start)
  s = 10_000 - 400 if start is None else start  # the cap's own cool-down by default
  expected = {0: 0.0, 50: 5e-4, 100: 1e-3, s - 1: 1e-3, s: 1e-3, s + 100: 1e-3 - 0.25 * 9e-4,
              s + 200: 5.5e-4, s + 400: 1e-4, s + 401: 1e-4}
  for t, lr in expected.items():
    assert float(schedule(t)) == pytest.approx(lr, rel=1e-5), t


def test_an_optimizer_made_again_with_a_start_goes_on_from_the_same_state():
  params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
  before = optimizers.make_optimizer(_wsd(name="adam", grad_clip_norm=1.0), 1000)
  after = optimizers.make_optimizer(_wsd(name="adam", grad_clip_norm=1.0), 1000, 300)
  state = before.init(params)
  assert jax.tree.structure(state) == jax.tree.structure(after.init(params))
  grads = jax.tree.map(jnp.ones_like, params)
  for _ in range(3):
    _, state = before.update(grads, state, params)
  update, _ = after.update(grads, state, params)  # step 3, in the warm-up: rate 3e-5
  np.testing.assert_allclose(update["w"], -3e-5 * np.ones((3, 2)), rtol=1e-4)


@pytest.fixture(scope="module")
def cooled_down(tmp_path_factory, config_of):
  """Under warmup_stable_decay a rule that fires at step 30 (as above) with a cool-down of 10
  steps: (config, workdir, final state) of the uninterrupted run."""
  config = config_of("sprites", "smoke")
  config.optim.update(decay="warmup_stable_decay", cooldown_steps=10)
  config.train.update(num_steps=80, eval_every=10, checkpoint_every=20, stop_window=20,
                      stop_improvement=0.95)
  workdir = str(tmp_path_factory.mktemp("cooled_down"))
  return config, workdir, train_lib.train_and_evaluate(config, workdir)


def test_the_rule_starts_the_cool_down_and_training_ends_after_it(cooled_down, tmp_path):
  config, workdir, state = cooled_down
  record = stopping.read(workdir)
  assert (record["step"], record["end"], int(state.step)) == (30, 40, 40)
  assert "cools down until step 40" in record["reason"]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["20", "30", "40"]
  assert trained.training_record(workdir)["step"] == 40
  # the same as a run whose cap puts its own cool-down there: 40 steps, cool-down from 30
  fixed = config.copy_and_resolve_references()
  fixed.train.update(num_steps=40, stop_window=0)
  capped = train_lib.train_and_evaluate(fixed, str(tmp_path))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               state.params, capped.params)


def test_a_run_stopped_in_the_cool_down_resumes_into_it(cooled_down, tmp_path):
  config, _, state = cooled_down
  first = train_lib.train_and_evaluate(config, str(tmp_path), stop_at_step=35)
  assert int(first.step) == 35 and stopping.read(str(tmp_path))["end"] == 40
  resumed = train_lib.train_and_evaluate(config, str(tmp_path))
  assert int(resumed.step) == 40
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               state.params, resumed.params)
