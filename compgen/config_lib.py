"""Building blocks of `configs/*.py`: the default data config and variant parsing.

A config file defines `get_config(arg=None) -> ml_collections.ConfigDict`; `arg` is a
comma-separated list of variants (e.g. `configs/sprites.py:smoke`), each known to the file.

Overrides (`--config.<key>=<value>` on the command line, `compgen.get_config(spec, {key:
value})` in Python) of a key the config does not have, or with a value of the wrong type, are
errors that name the key, the keys there are and the closest ones: `unknown_key`,
`override` (and `cli.parse_flags` on the command line); the values are checked in
`config_checks.py`.
"""
from __future__ import annotations

import difflib
import functools
import importlib.util
import os
from typing import Any

import ml_collections

from compgen import config_checks
from compgen import errors
from compgen.data import splits as splits_lib
from compgen.data import sprites as sprites_lib


def data_config(dataset: str) -> ml_collections.ConfigDict:
  """Defaults of `config.data` (fields documented in `compgen.data.pipeline`)."""
  split = splits_lib.default_split(dataset)
  return ml_collections.ConfigDict({
      "dataset": dataset,            # "sprites" | "synthetic" | "npz" | "pug" (tfds only)
      "source": "generate",          # "generate" (in memory) | "tfds" (array_record on disk)
      "tfds_config": "diagonal_small",
      "tfds_data_dir": "~/tensorflow_datasets",
      "npz_path": "",
      "num_train": 10_000,
      "num_test_id": 1_000,
      "num_test_ood": 1_000,
      "filter_overlap": True,        # sprites: drop scenes in which some object is less
      "min_visibility": 0.95,        # than this visible (0.95: objects apart)
      "seed": 0,
      "split": {"scheme": split.scheme,   # "diagonal" | "l_shaped" | "held_out_combinations" | "iid"
                "delta": split.delta, "held_out": (), "factor": 0,
                "band": split.band},       # "joint" | "per_latent"
      "sprites": {"resolution": 64, "num_slots": 2, "shapes": sprites_lib.SHAPES,
                  "x_strips": True, "strip_overlap": 0.0, "edge_width": 0.75,
                  "background": (0.1, 0.1, 0.1)},
      "synthetic": {"num_slots": 2, "latent_dim": 2, "output_dim": 16, "degree": 0,
                    "interaction": "polynomial", "interaction_scale": 0.5,
                    "hidden_dim": 32, "feature_dim": 8, "input_scale": 1.0, "seed": 0},
  })


def model_config(slot_dim: int) -> ml_collections.ConfigDict:
  """Defaults of `config.model`: which decoder/encoder, and each one's own settings."""
  return ml_collections.ConfigDict({
      "decoder": "alpha",            # a name in `decoders` below
      "encoder": "cnn",              # "cnn" | "conv" | "transformer" | "slot_attention" |
                                     # "query_transformer"
      "slot_dim": slot_dim,          # m̂, latent dims per slot
      "variational": False,          # VAE (β-KL, reparametrised sampling) instead of AE
      "candidates": 1,               # autoencoders trained side by side from independent
                                     # inits; the lowest ID training reconstruction is kept
      "keep_candidate_at": 0,        # > 0: keep it at this step, train on only that one
      "candidate_score": "train_recon_mse",  # what the kept one is chosen by, or
                                     # "slot_purity" (training/health.py)
      "decoders": {
          # slot_index: slot k decoded by φ(z_k, k); False: one φ shared by exchangeable slots
          # upsampling: "subpixel" (transposed convolutions as matmuls) | "xla" (XLA's
          # transposed convolution: the same function and parameters, slower on CPU)
          "additive": {"hidden": (64, 64, 64), "num_frequencies": 6, "slot_index": True},
          "alpha": {"hidden": (64, 64, 64), "num_frequencies": 6, "slot_index": True},
          "conv": {"hidden": (256, 256), "channels": 32, "upsampling": "subpixel"},
          # background_token: a learned key/value beside the slots for background pixels
          # softmax_scale: "head" (1/√head width) | "query_width" (1/√width, the released)
          "transformer": {"width": 64, "num_layers": 2, "num_heads": 4, "num_frequencies": 6,
                          "background_token": False, "softmax_scale": "head"},
          "unconstrained": {"hidden": (64, 64, 64), "num_frequencies": 6},
          "unconstrained_conv": {"hidden": (256, 256), "channels": 32,  # conv's control
                                 "upsampling": "subpixel"},
      },
      "encoders": {
          "cnn": {"channels": (32, 64, 64, 64), "hidden": 256},
          # first_layer: "patches" (the image's convolution as a patch matmul) | "xla"
          "conv": {"channels": (32, 32, 32, 32), "hidden": (256, 256), "first_layer": "patches"},
          "transformer": {"width": 64, "depth": 2, "num_heads": 4, "patch_size": 4},
          "slot_attention": {"channels": (32, 32, 32), "width": 64, "iterations": 3},
          # Brady et al.'s released encoder: width 2m (VAE) or m, 5 layers of 4 heads
          # query_init: "uniform" (the released U[0, 1)) | "normal" (N(0, query_init_std²))
          "query_transformer": {"channels": (32, 32, 32), "depth": 5, "num_heads": 4,
                                "softmax_scale": "query_width", "query_init": "uniform",
                                "query_init_std": 3.0},
      },
  })


def training_config() -> ml_collections.ConfigDict:
  """Defaults of `config.loss`, `config.optim`, `config.train` and `config.mesh`."""
  return ml_collections.ConfigDict({
      "loss": {"beta": 0.05,                       # KL weight (variational models)
               "interaction_weight": 0.05,         # α of the attention-overlap penalty
               "interaction_warmup_steps": 1000,   # α ramps linearly from 0
               "jacobian_overlap_weight": 0.0,     # γ of the Jacobian-overlap penalty
               "jacobian_overlap_warmup_steps": 0,  # γ ramps linearly from 0
               "jacobian_overlap_examples": 8,     # of the batch, where Ω_J is computed
               "consistency_weight": 0.0,          # λ of the compositional-consistency loss
               "consistency_start_step": 0,        # λ = 0 before this step
               "consistency_warmup_steps": 1000,   # then ramps linearly from 0
               "consistency_matching": "permutation_invariant"},  # or "mse" (slots in order)
      "optim": {"name": "adam",                    # "adam" | "adamw"
                "learning_rate": 5e-4, "warmup_steps": 200,
                # "cosine" | "constant" | "warmup_hold_decay" | "warmup_stable_decay"
                "decay": "cosine",
                "end_learning_rate_fraction": 0.1,  # cosine, cool-down: the last rate, of the peak
                # warmup_hold_decay: the peak held to hold_steps, then times hold_drop, then
                # times decay_rate per num_steps (training/optimizers.py)
                "hold_steps": 0, "hold_drop": 0.2, "decay_rate": 0.1,
                # warmup_stable_decay: the peak until the stopping rule fires (or num_steps −
                # cooldown_steps), then a linear cool-down over cooldown_steps
                "cooldown_steps": 1000,
                "weight_decay": 1e-4, "grad_clip_norm": 1.0},
      "train": {"batch_size": 64, "num_steps": 5_000, "log_every": 50, "eval_every": 1_000,
                "checkpoint_every": 1_000, "keep_checkpoints": 3, "eval_examples": 1000,
                "health_examples": 64,     # ID training images of the slot health check
                # stop once the best held-out ID error of the last stop_window steps is less
                # than stop_improvement better than the best before (0: train to num_steps,
                # the cap; training/stopping.py);
                # under optim.decay="warmup_stable_decay" the cool-down starts there instead
                "stop_window": 0, "stop_improvement": 0.02, "min_steps": 0},
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
                           "hold_steps": 0, "hold_drop": 0.2, "decay_rate": 0.1,
                           "cooldown_steps": 1000,
                           "weight_decay": 1e-4, "grad_clip_norm": 1.0}},
  })


def experiment_config() -> ml_collections.ConfigDict:
  """Defaults of `config.experiment` (`compgen.study.experiment`)."""
  return ml_collections.ConfigDict({"experiment": {
      "seeds": 1,                    # models trained per decoder: seed, seed + 1, ... (the
                                     # config's `seed`, 0 by default)
      "control": "unconstrained",    # decoder of the negative control; "" for none
      "control_seeds": -1,           # the first n of those the control runs; -1 = all
      "fit_examples": 1000,          # ID training images the readouts are fitted on
      "eval_examples": 1000,         # test_id / test_ood images scored
      "readout_fit": "own",          # "own" (each method's ID latents) | "encoder" (ĝ's)
      "readout": "mlp",              # "linear" | "mlp"
      "matching": "global",          # "global" | "per_example"
      "readout_steps": 1000,         # full-batch Adam steps per readout
      "interaction_examples": 16,    # latents the decoder interaction statistics use
      "score_candidates": False,     # also score every candidate of a population run
      "composed_pool": 0,            # > 0: the recombined-ID-slots diagnostic
                                     # (study/composition.py) with a pool this big
      "supervised_steps": 0,         # > 0: the supervised reference encoder per seed
                                     # (study/supervised.py) trained this many steps
      "supervised_decoder": False}})  # and the supervised reference decoder too


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """The config every `configs/*.py` starts from: seed, data, model and training sections."""
  config = ml_collections.ConfigDict({"seed": 0, "data": data_config(dataset)})
  config.model = model_config(slot_dim=8 if dataset == "sprites" else 2)
  config.update(training_config())
  config.update(inversion_config())
  config.update(experiment_config())
  return config


DECODER_VARIANTS = ("additive", "alpha", "conv", "transformer", "unconstrained",
                    "unconstrained_conv")
MODEL_VARIANTS = DECODER_VARIANTS + ("vae",
                  "conv_encoder", "transformer_encoder", "slot_attention", "query_transformer")
ENCODER_VARIANTS = ("conv_encoder", "transformer_encoder", "slot_attention", "query_transformer")
# Variants that set the same setting: a spec may name one of each group (`parse_variants`).
MODEL_VARIANT_GROUPS = {"model.decoder": DECODER_VARIANTS, "model.encoder": ENCODER_VARIANTS}


def apply_model_variants(config: ml_collections.ConfigDict, variants: set[str]) -> None:
  """Decoder / encoder / VAE variants shared by every config file."""
  for name in DECODER_VARIANTS:
    if name in variants:
      config.model.decoder = name
  if "conv_encoder" in variants:
    config.model.encoder = "conv"
  if "transformer_encoder" in variants:
    config.model.encoder = "transformer"
  if "slot_attention" in variants:
    config.model.encoder = "slot_attention"
  if "query_transformer" in variants:
    config.model.encoder = "query_transformer"
  if "vae" in variants:
    config.model.variational = True


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Tiny shapes and a few steps: every config's `:smoke` variant, run by the tests."""
  data = config.data
  data.num_train, data.num_test_id, data.num_test_ood = 256, 128, 128
  data.tfds_config = data.tfds_config.replace("_small", "_tiny")
  m = config.model
  m.candidates, m.keep_candidate_at = 1, 0
  for name in ("additive", "alpha", "unconstrained"):
    m.decoders[name].hidden = (32, 32)
    m.decoders[name].num_frequencies = 3
  m.decoders.transformer.update(width=32, num_layers=2, num_heads=2, num_frequencies=3)
  m.encoders.cnn.update(channels=(16, 16), hidden=64)
  m.decoders.conv.update(hidden=(32,), channels=8)
  m.decoders.unconstrained_conv.update(hidden=(32,), channels=8)
  m.encoders.conv.update(channels=(8, 8), hidden=(32,))
  m.encoders.transformer.update(width=32, depth=1, num_heads=2)
  m.encoders.slot_attention.update(channels=(16, 16), width=32, iterations=2)
  m.encoders.query_transformer.update(channels=(8,), depth=1, num_heads=2)
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


def parse_variants(arg: str | None, allowed: tuple[str, ...],
                   exclusive: dict[str, tuple[str, ...]] | None = None) -> set[str]:
  """'smoke,mlp' -> {'smoke', 'mlp'}, refusing names not in `allowed` and two variants of one
  group of `exclusive` ({what they set: variant names}; default `MODEL_VARIANT_GROUPS`), so
  that no variant silently undoes another and their order never matters."""
  variants = {v.strip() for v in (arg or "").split(",") if v.strip()}
  unknown = variants - set(allowed)
  if unknown:
    raise errors.ConfigError(f"Unknown config variant(s) {sorted(unknown)}: choose from {allowed}.")
  for what, group in (MODEL_VARIANT_GROUPS if exclusive is None else exclusive).items():
    clash = sorted(variants & set(group))
    if len(clash) > 1:
      raise errors.ConfigError(
          f"Config variants {' and '.join(clash)} both set {what}: keep one of them.")
  return variants


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file `path/to/config.py[:arg]`."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No config file {path!r} (from {spec!r}); give the path of a "
                            "configs/*.py file, e.g. 'configs/sprites.py:quickstart'.")
  module_spec = importlib.util.spec_from_file_location("compgen_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def _sections(node, prefix: str = ""):
  """Every dotted key of a config, sections and leaves."""
  for name, value in node.items():
    yield prefix + name
    if isinstance(value, ml_collections.ConfigDict):
      yield from _sections(value, f"{prefix}{name}.")


def type_name(value) -> str:
  return {bool: "a bool", int: "an int", float: "a float", str: "a string",
          tuple: "a tuple", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def unknown_key(config: ml_collections.ConfigDict, key: str) -> str | None:
  """None when the dotted `key` (e.g. "train.num_steps") is in `config`; else the error: the
  part that is missing, the keys there are and the closest keys of the whole config."""
  node, parents = config, []
  for name in key.split("."):
    where = "config." + ".".join(parents) if parents else "the config"
    if not isinstance(node, ml_collections.ConfigDict):
      return (f"Unknown config key {key!r}: {where} is {type_name(node)} ({node!r}), not a "
              f"section with a key {name!r}.")
    if name not in node:
      keys = list(_sections(config))
      leaf = key.rsplit(".", 1)[-1]
      close = difflib.get_close_matches(key, keys, 3, 0.75) + sorted(
          (k for k in keys if difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], 1, 0.75)),
          key=lambda k: (k.count("."), k))
      close = list(dict.fromkeys(close))[:3]
      hint = (f" Did you mean {', '.join(close[:-1])}{' or ' if len(close) > 1 else ''}"
              f"{close[-1]}?" if close else "")
      return f"Unknown config key {key!r}: {where} has no {name!r} (it has {sorted(node)}).{hint}"
    node, parents = node[name], parents + [name]
  return None


def override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """config[key] = value for a dotted key (`ConfigDict.update_from_flattened_dict`); an
  unknown key is a KeyError and a value of the wrong type a TypeError, each naming the key and
  what it takes."""
  problem = unknown_key(config, key)
  if problem:
    raise KeyError(problem)
  try:
    config.update_from_flattened_dict({key: value})
  except TypeError as e:
    old = functools.reduce(lambda node, name: node[name], key.split("."), config)
    raise TypeError(f"Config key {key!r} takes {type_name(old)} (it is {old!r}), not "
                    f"{value!r} ({type(value).__name__}).") from e


ConfigError = errors.ConfigError
check_values = config_checks.check_values  # the checks live in config_checks.py
