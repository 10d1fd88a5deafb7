"""The stopping rule (`training/stopping.py`) on known error curves, and in a training run:
it stops there, records the step, and a rerun neither trains on nor logs again."""
import json
import os

import ml_collections
import numpy as np
import pytest

from compgen import errors
from compgen.training import stopping, train_lib, trained


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
