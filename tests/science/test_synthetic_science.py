"""Regression tests of the science on learned models (synthetic F_int vectors).

Each trains real models briefly and checks a claim of the README with margins well inside
what the full runs give (README.md, "The experiment on synthetic vectors"): an additive decoder
identifies the slots of iid data and the unconstrained control does not; on the default
L-shaped split, search and replay through the learned additive decoder perceive OOD what its
encoder gets wrong, while the readouts only ever see ID latents.
"""
import json
import os

import pytest

from compgen.evaluation import experiment
from compgen.training import train_lib
from tests.training.test_train import get_config


def _iid_config(decoder):
  config = get_config("synthetic", f"iid,{decoder}")
  config.data.update(num_train=2000, num_test_id=500, num_test_ood=500)
  config.data.synthetic.output_dim = 16
  config.train.update(num_steps=1000, eval_every=1000, checkpoint_every=1000, log_every=500,
                      eval_examples=500)
  return config


def test_additive_decoder_identifies_slots_on_iid_data_and_the_control_does_not(tmp_path):
  scores = {}
  for decoder in ("additive", "unconstrained"):
    workdir = str(tmp_path / decoder)
    train_lib.train_and_evaluate(_iid_config(decoder), workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      scores[decoder] = [json.loads(r) for r in f][-1]["test_id/matched_r2"]
  assert scores["additive"] > 0.9, scores
  assert scores["additive"] > scores["unconstrained"] + 0.2, scores


@pytest.fixture(scope="module")
def l_shaped(tmp_path_factory):
  """The default benchmark at a test's budget: fewer steps, examples and restarts."""
  config = get_config("synthetic", "")
  config.data.update(num_train=5000, num_test_id=300, num_test_ood=300)
  config.train.update(num_steps=4000, eval_every=4000, checkpoint_every=4000, log_every=1000,
                      eval_examples=300)
  config.replay.update(num_steps=500, eval_every=500, checkpoint_every=500)
  config.search.update(num_steps=50, restarts=2)
  config.experiment.update(control="", fit_examples=300, eval_examples=300, readout_steps=300)
  workdir = str(tmp_path_factory.mktemp("l_shaped"))
  results = experiment.run_experiment(config, workdir)
  return {m: results["summary"][f"additive: {m}"] for m in experiment.METHODS}


def test_search_and_replay_through_the_learned_decoder_beat_its_encoder_ood(l_shaped):
  ood = {m: s["ood"]["identifiability"]["mean"] for m, s in l_shaped.items()}
  assert min(s["id"]["identifiability"]["mean"] for s in l_shaped.values()) > 0.9, l_shaped
  assert ood["search"] > ood["encoder"] + 0.3, ood
  assert ood["replay_encoder"] > ood["encoder"] + 0.3, ood
  assert ood["replay_search"] > 0.8, ood
  # search lowers the OOD reconstruction error by a real factor, not merely "no worse"
  mse = {m: s["ood"]["recon_mse"]["mean"] for m, s in l_shaped.items()}
  assert mse["search"] < 0.5 * mse["encoder"], mse
