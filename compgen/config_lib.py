"""Building blocks of `configs/*.py`: the default data config and variant parsing.

A config file defines `get_config(arg=None) -> ml_collections.ConfigDict`; `arg` is a
comma-separated list of variants (e.g. `configs/sprites.py:smoke`), each known to the file.
"""
from __future__ import annotations

import ml_collections

from compgen.data import sprites as sprites_lib


def data_config(dataset: str) -> ml_collections.ConfigDict:
  """Defaults of `config.data` (fields documented in `compgen.data.pipeline`)."""
  return ml_collections.ConfigDict({
      "dataset": dataset,            # "sprites" | "synthetic" | "npz"
      "source": "generate",          # "generate" (in memory) | "tfds" (array_record on disk)
      "tfds_config": "diagonal_small",
      "tfds_data_dir": "~/tensorflow_datasets",
      "npz_path": "",
      "num_train": 10_000,
      "num_test_id": 1_000,
      "num_test_ood": 1_000,
      "filter_overlap": True,        # sprites: drop scenes with overlapping objects
      "min_visibility": 0.95,
      "seed": 0,
      "split": {"scheme": "diagonal", "delta": 0.125, "held_out": (), "factor": 0},
      "sprites": {"resolution": 64, "num_slots": 2, "shapes": sprites_lib.SHAPES,
                  "x_strips": True, "edge_width": 0.75, "background": (0.1, 0.1, 0.1)},
      "synthetic": {"num_slots": 2, "latent_dim": 2, "output_dim": 16, "degree": 0,
                    "interaction": "polynomial", "interaction_scale": 0.5,
                    "hidden_dim": 32, "feature_dim": 8, "seed": 0},
  })


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """The config every `configs/*.py` starts from: a root seed and the data section."""
  return ml_collections.ConfigDict({"seed": 0, "data": data_config(dataset)})


def parse_variants(arg: str | None, allowed: tuple[str, ...]) -> set[str]:
  """'smoke,mlp' -> {'smoke', 'mlp'}, refusing names not in `allowed`."""
  variants = {v.strip() for v in (arg or "").split(",") if v.strip()}
  unknown = variants - set(allowed)
  if unknown:
    raise ValueError(f"Unknown config variant(s) {sorted(unknown)}: choose from {allowed}.")
  return variants
