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


def model_config(slot_dim: int) -> ml_collections.ConfigDict:
  """Defaults of `config.model`: which decoder/encoder, and each one's own settings."""
  return ml_collections.ConfigDict({
      "decoder": "alpha",            # "additive" | "alpha" | "transformer" | "unconstrained"
      "encoder": "cnn",              # "cnn" | "transformer"
      "slot_dim": slot_dim,          # m̂, latent dims per slot
      "variational": False,          # VAE (β-KL, reparametrised sampling) instead of AE
      "decoders": {
          "additive": {"hidden": (64, 64, 64), "num_frequencies": 6},
          "alpha": {"hidden": (64, 64, 64), "num_frequencies": 6},
          "transformer": {"width": 64, "num_layers": 2, "num_heads": 4, "num_frequencies": 6},
          "unconstrained": {"hidden": (64, 64, 64), "num_frequencies": 6},
      },
      "encoders": {
          "cnn": {"channels": (32, 64, 64, 64), "hidden": 256},
          "transformer": {"width": 64, "depth": 2, "num_heads": 4, "patch_size": 4},
      },
  })


def training_config() -> ml_collections.ConfigDict:
  """Defaults of `config.loss`, `config.optim`, `config.train` and `config.mesh`."""
  return ml_collections.ConfigDict({
      "loss": {"beta": 0.05,                       # KL weight (variational models)
               "interaction_weight": 0.05,         # α of the attention-overlap penalty
               "interaction_warmup_steps": 1000},  # α ramps linearly from 0
      "optim": {"name": "adam",                    # "adam" | "adamw"
                "learning_rate": 5e-4, "warmup_steps": 200,
                "decay": "cosine",                 # "cosine" | "constant"
                "end_learning_rate_fraction": 0.1, "weight_decay": 1e-4, "grad_clip_norm": 1.0},
      "train": {"batch_size": 64, "num_steps": 5_000, "log_every": 50, "eval_every": 1_000,
                "checkpoint_every": 1_000, "keep_checkpoints": 3, "eval_examples": 1000},
      "mesh": {"data": -1,                         # devices on the data axis; -1 = all
               "fsdp_min_size": 0},                # shard arrays this big over it; 0 = off
  })


def inversion_config() -> ml_collections.ConfigDict:
  """Defaults of `config.search` (Eq. 4.3) and `config.replay` (Eq. 4.4)."""
  return ml_collections.ConfigDict({
      "search": {"init": "encoder",          # "encoder" | "replay_encoder" | "prior" | "zeros"
                 "restarts": 1,              # extra restarts start from prior samples
                 "num_steps": 200, "learning_rate": 0.03, "tol": 1e-4,
                 "regularizer": "none",      # "none" | "latent_l2" | "prior"
                 "reg_weight": 0.0, "prior": "gaussian",
                 "batch_size": 256, "splits": ("test_id", "test_ood"),
                 "micro_batch": -1,          # -1 auto (1 on CPU), 0 whole batch, or a size
                 "num_examples": -1},        # images per split; -1 = all
      "replay": {"prior": "empirical",       # "empirical" | "gaussian" | "kde"
                 "prior_examples": 5000,     # ID latents the prior is fitted on
                 "init": "id_encoder",       # "id_encoder" | "scratch"
                 "loss": "mse",              # "mse" | "permutation_invariant"
                 "batch_size": 64, "num_steps": 2000, "log_every": 50,
                 "micro_batch": -1,          # decode in chunks: -1 auto, 0 whole batch
                 "eval_every": 500, "checkpoint_every": 500,
                 "optim": {"name": "adam", "learning_rate": 3e-4, "warmup_steps": 100,
                           "decay": "cosine", "end_learning_rate_fraction": 0.1,
                           "weight_decay": 1e-4, "grad_clip_norm": 1.0}},
  })


def experiment_config() -> ml_collections.ConfigDict:
  """Defaults of `config.experiment` (`compgen.evaluation.experiment`)."""
  return ml_collections.ConfigDict({"experiment": {
      "seeds": 1,                    # models trained per decoder, seeds 0..seeds-1
      "control": "unconstrained",    # decoder of the negative control; "" for none
      "fit_examples": 1000,          # ID training images the readouts are fitted on
      "eval_examples": 1000,         # test_id / test_ood images scored
      "readout_fit": "own",          # "own" (each method's ID latents) | "encoder" (ĝ's)
      "readout": "mlp",              # "linear" | "mlp"
      "matching": "global",          # "global" | "per_example"
      "readout_steps": 1000,         # full-batch Adam steps per readout
      "interaction_examples": 16}})  # latents the decoder interaction statistics use


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """The config every `configs/*.py` starts from: seed, data, model and training sections."""
  config = ml_collections.ConfigDict({"seed": 0, "data": data_config(dataset)})
  config.model = model_config(slot_dim=8 if dataset == "sprites" else 2)
  config.update(training_config())
  config.update(inversion_config())
  config.update(experiment_config())
  return config


MODEL_VARIANTS = ("additive", "alpha", "transformer", "unconstrained", "vae",
                  "transformer_encoder")


def apply_model_variants(config: ml_collections.ConfigDict, variants: set[str]) -> None:
  """Decoder / encoder / VAE variants shared by every config file."""
  for name in ("additive", "alpha", "transformer", "unconstrained"):
    if name in variants:
      config.model.decoder = name
  if "transformer_encoder" in variants:
    config.model.encoder = "transformer"
  if "vae" in variants:
    config.model.variational = True


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Tiny shapes and a few steps: every config's `:smoke` variant, run by the tests."""
  data = config.data
  data.num_train, data.num_test_id, data.num_test_ood = 256, 128, 128
  data.tfds_config = data.tfds_config.replace("_small", "_tiny")
  m = config.model
  for name in ("additive", "alpha", "unconstrained"):
    m.decoders[name].hidden = (32, 32)
    m.decoders[name].num_frequencies = 3
  m.decoders.transformer.update(width=32, num_layers=2, num_heads=2, num_frequencies=3)
  m.encoders.cnn.update(channels=(16, 16), hidden=64)
  m.encoders.transformer.update(width=32, depth=1, num_heads=2)
  config.loss.interaction_warmup_steps = 2
  config.optim.warmup_steps = 1
  config.train.update(batch_size=16, num_steps=4, log_every=2, eval_every=2,
                      checkpoint_every=2, eval_examples=64)
  config.search.update(num_steps=5, batch_size=32)
  config.replay.update(batch_size=16, num_steps=4, log_every=2, eval_every=2,
                       checkpoint_every=2, prior_examples=64)
  config.replay.optim.warmup_steps = 1
  config.experiment.update(fit_examples=64, eval_examples=32, readout_steps=50,
                           interaction_examples=2)


def parse_variants(arg: str | None, allowed: tuple[str, ...]) -> set[str]:
  """'smoke,mlp' -> {'smoke', 'mlp'}, refusing names not in `allowed`."""
  variants = {v.strip() for v in (arg or "").split(",") if v.strip()}
  unknown = variants - set(allowed)
  if unknown:
    raise ValueError(f"Unknown config variant(s) {sorted(unknown)}: choose from {allowed}.")
  return variants
