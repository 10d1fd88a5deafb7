"""Bring your own data: a folder of rendered scenes with known latents and their names ->
the experiment's table (the README's "Your own data" walk-through, on the smoke config)."""
import json
import os

import numpy as np

from compgen.data import pipeline
from compgen.study import experiment

LATENT_NAMES, FACTOR_NAMES = ["left", "top", "size", "colour"], ["form"]


def test_a_folder_of_scenes_with_named_factors_runs_the_experiment(tmp_path, config_of):
  scenes, workdir = tmp_path / "scenes", tmp_path / "experiment"
  scenes.mkdir()
  rendered = config_of("sprites", "smoke")  # stands in for your renderer
  for split in ("train", "test_id", "test_ood"):
    arrays = pipeline.load_split(rendered.data, split)[:]
    np.savez(scenes / f"{split}.npz", image=np.round(arrays["image"] * 255).astype(np.uint8),
             latents=arrays["latents"], factors=arrays["factors"],
             latent_names=np.array(LATENT_NAMES), factor_names=np.array(FACTOR_NAMES))
  config = config_of("sprites", "smoke")
  config.data.update(dataset="npz", npz_path=str(scenes))
  config.experiment.control = ""
  results = experiment.run_experiment(config, str(workdir))
  assert results["factor_names"] == LATENT_NAMES + FACTOR_NAMES
  with open(workdir / "results.json") as f:
    saved = json.load(f)
  assert set(saved["runs"][0]["per_factor"]) == set(LATENT_NAMES + FACTOR_NAMES)
  table = (workdir / "results.md").read_text()
  assert "| method | split | left | top | size | colour | form |" in table
  assert "z0" not in table and "factor0" not in table
  assert os.path.getsize(workdir / "identifiability.png") > 1000
