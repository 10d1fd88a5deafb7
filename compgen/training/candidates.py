"""Candidates: C autoencoders trained side by side from independent inits, and the one kept.

With `model.candidates` C > 1 a train state carries a leading candidate axis [C, ...]:
candidate 0 starts from the single model's init, candidate i from `fold_in(key, i)`, and
every candidate takes its update on the same batch (one vmapped step, `train_lib`). The
candidate that reconstructs the ID training data best (or, with `model.candidate_score`
"slot_purity", whose slots are most clearly objects: `health`) is kept, recorded with its step in
`{workdir}/candidates.json`; every later job reads that one. With `model.keep_candidate_at`
S > 0 the choice is made at step S and the kept candidate alone trains on from there:
C·S + (N − S) model-steps for N training steps instead of C·N. Only training data decide: by the
theory of additive decoders an exact fit of the ID data identifies the slots, and the runs
that perceive OOD are those that fit ID best (docs/findings.md).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from compgen import config_checks
from compgen import errors
from compgen import files

FILE = "candidates.json"  # in a workdir: which candidate was kept, every one's error


def count(config: ml_collections.ConfigDict) -> int:
  """`model.candidates`, checked: how many autoencoders train side by side."""
  c = config.model.get("candidates", 1)
  if isinstance(c, bool) or not isinstance(c, int) or c < 1:
    raise errors.ConfigError(f"model.candidates={c!r}: give a whole number >= 1 (1 = one model).")
  return c


def keep_step(config: ml_collections.ConfigDict) -> int:
  """`model.keep_candidate_at`, checked: the step at which a population is cut to its best
  candidate (0: every candidate trains to the end)."""
  s = config.model.get("keep_candidate_at", 0)
  if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < config.train.num_steps:
    raise errors.ConfigError(
        f"model.keep_candidate_at={s!r}: give a step from 1 to train.num_steps "
                     f"- 1 = {config.train.num_steps - 1} to keep the best candidate there, or "
                     "0 to train every candidate to the end.")
  return s


def stacked_to_the_end(config: ml_collections.ConfigDict) -> bool:
  """Whether a finished run's checkpoint holds the whole population [C, ...] (else one
  model: C = 1, or the candidate kept at `model.keep_candidate_at`)."""
  return count(config) > 1 and keep_step(config) == 0


def init_keys(key: jax.Array, num: int) -> jax.Array:
  """[num, 2] init keys: `key` for candidate 0 (the single model's init), `fold_in(key, i)`
  for candidate i."""
  return jnp.stack([key] + [jax.random.fold_in(key, i) for i in range(1, num)])


def take(params, index: int):
  """Candidate `index`'s params from a population's stacked params [C, ...]."""
  return jax.tree.map(lambda p: p[index], params)


def take_state(state, index: int):
  """A train state (params, opt_state stacked [C, ...]) of candidate `index` alone."""
  return state.replace(params=take(state.params, index), opt_state=take(state.opt_state, index))


SCORES = {"train_recon_mse": min, "slot_purity": max}  # model.candidate_score -> which wins


def score_name(config: ml_collections.ConfigDict) -> str:
  """`model.candidate_score`, checked: what a population's kept candidate is chosen by."""
  name = config.model.get("candidate_score", "train_recon_mse")
  config_checks.check_choice("model.candidate_score", name)
  return name


def select(params, num: int, score: Callable, by: str = "train_recon_mse") -> tuple:
  """The candidate to keep: (its params, record) where `score(candidate params)` gives
  {"train_recon_mse": mean reconstruction MSE on ID training examples, "slot_purity":
  `health` separation on ID training images (where defined)}, the record holds every
  candidate's (as lists) and "selected", the one with the lowest error or the highest
  separation, by `by`. A single model (`num` = 1) comes back as it is, with record None."""
  if num == 1:
    return params, None
  scores = [score(take(params, i)) for i in range(num)]
  record = {key: [float(s[key]) for s in scores] for key in scores[0]}
  if by not in record:
    raise errors.ConfigError(f"model.candidate_score={by!r} is not defined for this model "
                             f"(it has {', '.join(record)}); choose 'train_recon_mse'.")
  values = record[by]
  best = values.index(SCORES[by](values))
  return take(params, best), {"selected": best, "score": by, **record}


def kept(workdir: str, params, step: int, num: int, score: Callable,
         by: str = "train_recon_mse") -> tuple:
  """`select`, recorded with `step` in `{workdir}/candidates.json` (read back from there when
  it holds this step)."""
  path = files.path(workdir, FILE)
  if path.exists():
    record = files.read_json(path)
    if record.get("step") == step:
      return take(params, record["selected"]), record
  params, record = select(params, num, score, by)
  record["step"] = int(step)
  if jax.process_index() == 0:
    files.write_json(path, record)
  return params, record
