"""The values a config may hold, in one place: the range of every numeric setting and the
allowed values of every named one. `check_values` refuses a config that breaks either before
any compute (the command line, the API and every job call it); `check_choice` checks one named
setting where it is read on its own. A new setting is its default (`config_lib.py`) plus its
line here.
"""
from __future__ import annotations

import ml_collections

from compgen import errors

LATENT_LOSSES = ("mse", "permutation_invariant")
# The named settings and what each may be (the modules that read them dispatch on these).
CHOICES = {
    "search.init": ("encoder", "replay_encoder", "prior", "zeros"),
    "search.regularizer": ("none", "latent_l2", "prior"),
    "replay.loss": LATENT_LOSSES,
    "replay.init": ("id_encoder", "scratch"),
    "loss.consistency_matching": LATENT_LOSSES,
    "model.candidate_score": ("train_recon_mse", "slot_purity"),
    **{f"model.{part}.softmax_scale": ("head", "query_width")
       for part in ("decoders.transformer", "encoders.query_transformer")},
    "model.encoders.query_transformer.query_init": ("uniform", "normal"),
    "experiment.readout_fit": ("encoder", "own"),
    **{f"{optim}.{key}": values for optim in ("optim", "replay.optim")
       for key, values in (("name", ("adam", "adamw")),
                           ("decay", ("cosine", "constant", "warmup_hold_decay",
                                      "warmup_stable_decay")))},
}


def check_choice(key: str, value) -> None:
  """Refuses `value` for the named setting `key` unless `CHOICES[key]` holds it."""
  if value not in CHOICES[key]:
    raise errors.ConfigError(f"Unknown {key}={value!r}: choose one of {CHOICES[key]}.")


def _leaves(node, prefix: str = ""):
  """(dotted key, value) of every setting of a config."""
  for name, value in node.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{name}.")
    else:
      yield prefix + name, value


# The numeric settings a run is handed, and the values that mean something: (lowest, highest)
# with None for no bound; a sentinel that means "auto" / "all" is listed beside them.
_COUNT, _AT_LEAST_0, _RATE, _WEIGHT, _FRACTION = (1, None), (0, None), (0, None), (0, None), (0, 1)
_RANGES = {
    "data.num_train": _COUNT, "data.num_test_id": _COUNT, "data.num_test_ood": _COUNT,
    "data.min_visibility": _FRACTION, "data.sprites.resolution": (4, None),
    "data.sprites.num_slots": _COUNT, "data.sprites.strip_overlap": (0, 0.99),
    "data.synthetic.num_slots": _COUNT, "data.synthetic.latent_dim": _COUNT,
    "data.synthetic.output_dim": _COUNT, "data.synthetic.hidden_dim": _COUNT,
    "data.synthetic.feature_dim": _COUNT, "data.synthetic.degree": _AT_LEAST_0,
    "model.slot_dim": _COUNT, "model.candidates": _COUNT, "model.keep_candidate_at": _AT_LEAST_0,
    "model.encoders.query_transformer.query_init_std": _AT_LEAST_0,
    "loss.beta": _WEIGHT, "loss.interaction_weight": _WEIGHT,
    "loss.interaction_warmup_steps": _AT_LEAST_0, "loss.jacobian_overlap_weight": _WEIGHT,
    "loss.jacobian_overlap_warmup_steps": _AT_LEAST_0, "loss.jacobian_overlap_examples": _COUNT,
    "loss.consistency_weight": _WEIGHT,
    "loss.consistency_warmup_steps": _AT_LEAST_0, "loss.consistency_start_step": _AT_LEAST_0,
    "train.batch_size": _COUNT, "train.num_steps": _COUNT, "train.log_every": _COUNT,
    "train.eval_every": _COUNT, "train.checkpoint_every": _COUNT,
    "train.keep_checkpoints": _COUNT, "train.eval_examples": _COUNT,
    "train.health_examples": _COUNT, "train.stop_window": _AT_LEAST_0,
    "train.stop_improvement": _FRACTION, "train.min_steps": _AT_LEAST_0,
    "mesh.data": _COUNT, "mesh.fsdp_min_size": _AT_LEAST_0,
    "search.restarts": _AT_LEAST_0, "search.num_steps": _COUNT, "search.tol": _AT_LEAST_0,
    "search.reg_weight": _WEIGHT, "search.batch_size": _COUNT, "search.micro_batch": _AT_LEAST_0,
    "search.num_examples": _COUNT,
    "replay.prior_examples": _COUNT, "replay.batch_size": _COUNT, "replay.num_steps": _COUNT,
    "replay.log_every": _COUNT, "replay.micro_batch": _AT_LEAST_0, "replay.eval_every": _COUNT,
    "replay.checkpoint_every": _COUNT,
    "experiment.seeds": _COUNT, "experiment.control_seeds": _AT_LEAST_0,
    "experiment.fit_examples": _COUNT, "experiment.eval_examples": _COUNT,
    "experiment.readout_steps": _COUNT, "experiment.interaction_examples": _COUNT,
    "experiment.composed_pool": _AT_LEAST_0, "experiment.supervised_steps": _AT_LEAST_0,
}
for _optim in ("optim", "replay.optim"):
  _RANGES.update({f"{_optim}.learning_rate": _RATE, f"{_optim}.warmup_steps": _AT_LEAST_0,
                  f"{_optim}.end_learning_rate_fraction": _FRACTION,
                  f"{_optim}.hold_steps": _AT_LEAST_0, f"{_optim}.hold_drop": _FRACTION,
                  f"{_optim}.decay_rate": _FRACTION, f"{_optim}.cooldown_steps": _COUNT,
                  f"{_optim}.weight_decay": _WEIGHT, f"{_optim}.grad_clip_norm": _AT_LEAST_0})
_SENTINELS = {"mesh.data": -1, "search.micro_batch": -1, "search.num_examples": -1,
              "replay.micro_batch": -1, "experiment.control_seeds": -1}
_POSITIVE = {"data.min_visibility", "optim.learning_rate", "replay.optim.learning_rate"}
_LAYER_SIZES_AT_LEAST_0 = {"num_frequencies"}  # sizes inside model.decoders / model.encoders


def check_values(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Refuses named settings outside `CHOICES` and numeric settings that cannot mean anything
  (a negative step count, a zero batch, a learning rate ≤ 0, a fraction outside [0, 1], a
  layer of no units) with one `ConfigError` naming each key, its value and what it takes;
  keys a config does not have are skipped. Returns the config."""
  flat = dict(_leaves(config))
  problems = [f"config.{key}={flat[key]!r}: must be one of {values}"
              for key, values in CHOICES.items() if key in flat and flat[key] not in values]
  for key, (low, high) in _RANGES.items():
    value = flat.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      continue
    if value == _SENTINELS.get(key, None):
      continue
    bad = (value < low or (high is not None and value > high)
           or (key in _POSITIVE and value <= 0))
    if bad:
      opening = "(" if key in _POSITIVE else "["
      what = (f"in {opening}{low}, {high}]" if high is not None else
              f"> {low}" if key in _POSITIVE else f">= {low}")
      extra = (f", or {_SENTINELS[key]} for " + ("auto" if "micro_batch" in key else "all")
               if key in _SENTINELS else "")
      problems.append(f"config.{key}={value!r}: must be {what}{extra}")
  for key, value in flat.items():
    parts = key.split(".")
    if parts[0] != "model" or len(parts) != 4 or parts[1] not in ("decoders", "encoders"):
      continue
    sizes = value if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
      continue
    low = 0 if parts[-1] in _LAYER_SIZES_AT_LEAST_0 else 1
    if any(v < low for v in sizes):
      problems.append(f"config.{key}={value!r}: sizes must be >= {low}")
  if problems:
    raise errors.ConfigError("; ".join(problems) + ". Set " + ("it" if len(problems) == 1 else "them")
                      + " to a value that means something (defaults: compgen/config_lib.py).")
  return config
