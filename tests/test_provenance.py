"""Kept results and their records: served only when made by the current settings."""
import json

import pytest

from compgen import config_lib
from compgen import provenance

from compgen.training.checkpoints import CheckpointError


def test_record_files_sit_beside_files_and_inside_folders(tmp_path):
  assert provenance.record_file(tmp_path / "search" / "test_ood.npz") == (
      tmp_path / "search" / "test_ood.provenance.json")
  assert provenance.record_file(tmp_path / "replay") == tmp_path / "replay" / "provenance.json"


def test_a_json_result_is_served_only_for_the_settings_that_made_it(tmp_path):
  config = config_lib.load_config("configs/sprites.py:smoke")
  made = provenance.record(config, ("search", "experiment.fit_examples"), trained_step=4)
  path = tmp_path / "scores.json"
  assert provenance.read_json(path, made) is None
  assert provenance.stale(path, made) == "missing"
  provenance.write_json(path, made, {"score": [0.5, 0.25]})
  assert json.loads(path.read_text()) == {"score": [0.5, 0.25]}
  assert provenance.read_json(path, made) == {"score": [0.5, 0.25]}
  config.search.num_steps += 1
  changed = provenance.record(config, ("search", "experiment.fit_examples"), trained_step=4)
  assert provenance.read_json(path, changed) is None
  assert provenance.stale(path, changed) == (
      f"search.num_steps was {config.search.num_steps - 1}, now {config.search.num_steps}")
  assert provenance.stale(path, dict(made, trained_step=8)) == "trained_step was 4, now 8"


def test_pacing_settings_do_not_make_a_result_stale(tmp_path):
  config = config_lib.load_config("configs/sprites.py:smoke")
  path = tmp_path / "latents.npz"
  path.write_bytes(b"kept")
  provenance.write_record(path, provenance.record(config, ("search", "replay")))
  config.search.micro_batch, config.replay.num_steps = 3, 99
  assert provenance.stale(path, provenance.record(config, ("search", "replay"))) == ""
  config.search.learning_rate *= 2
  assert "search.learning_rate" in provenance.stale(
      path, provenance.record(config, ("search", "replay")))


def test_a_result_without_its_record_is_made_again(tmp_path):
  path = tmp_path / "supervised.json"
  path.write_text(json.dumps({"provenance": {}, "result": 1}))
  assert provenance.stale(path, {}) == "no record of the settings it was made with"
  assert provenance.read_json(path, {}) is None


def test_a_workdir_of_another_model_is_refused_with_the_difference(tmp_path):
  config = config_lib.load_config("configs/sprites.py:smoke")
  provenance.check_workdir_config(str(tmp_path), config)
  config.train.num_steps += 1  # pacing of training: the same run
  provenance.check_workdir_config(str(tmp_path), config)
  config.optim.learning_rate *= 2  # a reader of the parameters does not care
  provenance.check_workdir_config(str(tmp_path), config, write=False,
                                  sections=provenance.MODEL_SECTIONS)
  with pytest.raises(CheckpointError, match="optim: learning_rate was"):
    provenance.check_workdir_config(str(tmp_path), config)


def test_a_workdir_from_before_a_data_setting_existed_is_a_run_at_its_old_value(tmp_path):
  config = config_lib.load_config("configs/sprites.py:smoke")
  provenance.check_workdir_config(str(tmp_path), config)
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["data"]["sprites"]["strip_overlap"]  # what an older compgen wrote
  (tmp_path / "config.json").write_text(json.dumps(saved))
  provenance.check_workdir_config(str(tmp_path), config, write=False)
  config.data.sprites.strip_overlap = 0.5
  with pytest.raises(CheckpointError, match="data: sprites.strip_overlap was None, now 0.5"):
    provenance.check_workdir_config(str(tmp_path), config, write=False)
