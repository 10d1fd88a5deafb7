"""Every config and variant builds and loads its data; the data job runs end to end."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from compgen import config_lib
from compgen.data import pipeline, report, scenes
from compgen.training import optimizers

VARIANTS = {"sprites": ["", "smoke", "held_out,smoke", "iid,smoke", "rule,smoke"],
            "synthetic": ["", "smoke", "n1,smoke", "n2,smoke", "mlp,smoke", "iid,smoke",
                          "diagonal,smoke"]}


def test_every_config_file_is_covered(repo_root):
  configs = glob.glob(os.path.join(repo_root, "configs", "*.py"))
  assert {os.path.basename(p)[:-3] for p in configs} == set(VARIANTS)


@pytest.mark.parametrize("name, arg", [(n, a) for n, args in VARIANTS.items() for a in args])
def test_tfds_variant_describes_the_builder_config_it_reads(name, arg, config_of):
  config = config_of(name, ",".join(filter(None, [arg, "tfds"])))
  pipeline._check_config_matches_builder(  # pylint: disable=protected-access
      config.data, f"compgen_{name}/{config.data.tfds_config}")


@pytest.mark.parametrize("name, arg", [(n, a) for n, args in VARIANTS.items() for a in args])
def test_config_variant_builds_and_its_smoke_data_loads(name, arg, config_of):
  config = config_of(name, arg)
  assert config.data.dataset == name
  if "smoke" in arg:
    for split in scenes.SPLITS:
      source = pipeline.load_split(config.data, split)
      assert len(source) == config.data["num_" + split]


@pytest.mark.parametrize("size, side", [("smoke", 16), ("quickstart", 16), ("fast32", 32),
                                        ("bench64", 64)])
def test_transformer_vae_weighs_the_kl_as_the_released_recipe_does(size, side, config_of):
  """Brady et al.: β = 0.05 beside 5 × a squared error summed over 64×64×3 terms; the same
  ratio of KL weight to reconstruction terms at every size."""
  config = config_of("sprites", f"overlap,{size},transformer_vae")
  assert config.data.sprites.resolution == side
  assert (config.model.decoder, config.model.encoder, config.model.variational) == (
      "transformer", "slot_attention", True)
  assert config.loss.beta / (side * side * 3) == pytest.approx(0.05 / (5 * 64 * 64 * 3))
  assert config.loss.interaction_weight == 0.05


def test_unknown_variant_is_refused(config_of):
  with pytest.raises(ValueError, match="Unknown config variant"):
    config_of("sprites", "smokey")


def test_data_report_in_process_for_vectors(tmp_path, config_of):
  config = config_of("synthetic", "n1,smoke")
  stats = report.write_report(config, str(tmp_path))
  assert stats["splits"]["train"]["fraction_in_id_region"] == 1.0
  assert stats["splits"]["test_ood"]["fraction_in_id_region"] == 0.0
  assert os.path.getsize(stats["files"]["latent_split"]) > 10_000
  assert "train" in report.format_table(stats)


@pytest.fixture(scope="module")
def data_job(repo_root):
  """(*args) -> the finished `python -m compgen.data *args`, run in the repository."""
  return lambda *args: subprocess.run([sys.executable, "-m", "compgen.data", *args],
                                      cwd=repo_root, capture_output=True, text=True,
                                      timeout=600, check=False)


def test_data_job_writes_grids_and_statistics(tmp_path, data_job):
  proc = data_job("--config=configs/sprites.py:smoke", f"--workdir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "test_ood" in proc.stdout and "images/s" in proc.stdout
  for name in ("id_samples.png", "ood_samples.png", "latent_split.png"):
    assert (tmp_path / name).stat().st_size > 1000, name
  assert json.loads((tmp_path / "config.json").read_text())["data"]["sprites"]["resolution"] == 16
  stats = json.loads((tmp_path / "stats.json").read_text())
  assert stats["splits"]["test_ood"]["diagonal_distance"]["min"] > 0.125
  assert stats["render_throughput"]["images_per_s"] > 0
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  grid = matplotlib.image.imread(tmp_path / "ood_samples.png")
  assert np.std(grid) > 0.05  # a picture, not a blank canvas


def test_config_key_typo_is_refused_with_the_key_named(tmp_path, data_job):
  proc = data_job("--config=configs/sprites.py:smoke", f"--workdir={tmp_path}",
                  "--config.data.lerning_rate=0.1")
  assert proc.returncode != 0
  assert "lerning_rate" in proc.stderr
  assert not (tmp_path / "stats.json").exists()


@pytest.mark.parametrize("variants, cut", [("bench64", 2000), ("bench64,population", 2000),
                                           ("population,bench64", 2000),
                                           ("population,quickstart", 500),
                                           ("smoke,population", 1)])
def test_the_population_cuts_three_inits_by_slot_purity_at_an_eighth_in_any_order(
    variants, cut, config_of):
  config = config_of("sprites", variants)
  assert (config.model.candidates, config.model.keep_candidate_at,
          config.model.candidate_score) == (3, cut, "slot_purity")


@pytest.mark.parametrize("size, steps", [("bench64", 16_000), ("quickstart", 4000)])
def test_the_consistency_variant_switches_the_loss_on_at_a_third_of_training(size, steps,
                                                                             config_of):
  """Wiedemer et al.'s released autoencoder: consistency at weight 1, Hungarian-matched, from
  epoch 100 of 300."""
  loss = config_of("sprites", f"consistency,{size}").loss
  assert (loss.consistency_weight, loss.consistency_matching) == (1.0, "permutation_invariant")
  assert loss.consistency_start_step == steps // 3 and loss.consistency_warmup_steps == 0


@pytest.mark.parametrize("size, cap, cooldown", [("quickstart", 8000, 1000),
                                                 ("bench32", 36_000, 2000),
                                                 ("bench64", 24_000, 2000)])
def test_the_rule_variant_holds_the_rate_to_its_cap_and_cools_down_once_it_fires(
    size, cap, cooldown, config_of):
  config = config_of("sprites", f"rule,{size}")
  assert (config.train.num_steps, config.train.stop_window,
          config.train.stop_improvement) == (cap, 2000, 0.02)
  peak, warmup = config.optim.learning_rate, config.optim.warmup_steps
  held = optimizers.learning_rate_schedule(config.optim, cap)
  assert float(held(warmup)) == pytest.approx(peak)  # the peak from the warm-up on,
  assert float(held(cap - cooldown)) == pytest.approx(peak)  # to the cap's cool-down
  assert float(held(cap)) == pytest.approx(peak * config.optim.end_learning_rate_fraction)
  fired = optimizers.learning_rate_schedule(config.optim, cap, cooldown_start=5000)
  fraction = config.optim.end_learning_rate_fraction
  assert float(fired(5000 + cooldown // 2)) == pytest.approx(peak * (1 + fraction) / 2, rel=1e-3)


def test_the_rule_variant_keeps_a_capless_size_s_steps_and_refuses_the_released_schedule(
    config_of):
  steps = config_of("sprites", "fast32").train.num_steps
  assert config_of("sprites", "rule,fast32").train.num_steps == steps
  with pytest.raises(config_lib.ConfigError, match="both set the learning-rate schedule"):
    config_of("sprites", "rule,quickstart,transformer_vae_released")
