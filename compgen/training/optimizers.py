"""The optax optimiser of a config's `optim` section (training, replay, the references)."""
from __future__ import annotations

import ml_collections
import optax

from compgen import config_checks


def learning_rate_schedule(optim: ml_collections.ConfigDict, num_steps: int,
                           cooldown_start: int | None = None) -> optax.Schedule:
  """step t -> learning rate, from 0 linearly to the peak η over w = `warmup_steps`, then

    cosine              cosine decay to η · `end_learning_rate_fraction` at `num_steps` T
    constant            η
    warmup_hold_decay   η until h = `hold_steps`, then η · d · r^((t − h) / T) with
                        d = `hold_drop`, r = `decay_rate`: Brady et al.'s released schedule
                        (`train_model.py`, `utilities/setup_utils.LrScheduler` of
                        JackBrady/interaction-asymmetry: w = 10k, h = 30k, d = 1e-4 / 5e-4,
                        r = 0.1 per T = 500k steps)
    warmup_stable_decay η until s, then linearly to η · `end_learning_rate_fraction` over
                        c = `cooldown_steps`, ending at s + c: s = `cooldown_start` (the
                        step the stopping rule fired at, training/stopping.py), T − c
                        by default; Hägele et al. 2024, "Scaling laws and compute-optimal
                        training beyond fixed training durations", whose cool-down needs no
                        length known in advance
  """
  config_checks.check_choice("optim.decay", optim.decay)
  peak = optim.learning_rate
  warmup = min(optim.warmup_steps, max(num_steps - 1, 0))
  if optim.decay == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup_steps=warmup, decay_steps=max(num_steps, warmup + 1),
        end_value=peak * optim.end_learning_rate_fraction)
  if optim.decay == "warmup_stable_decay":
    cooldown = cooldown_steps(optim, num_steps)
    start = num_steps - cooldown if cooldown_start is None else cooldown_start
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak),
         optax.linear_schedule(peak, peak * optim.end_learning_rate_fraction, cooldown)],
        boundaries=[warmup, max(start, warmup)])
  if optim.decay == "constant":
    return optax.warmup_constant_schedule(0.0, peak, warmup_steps=max(warmup, 1))
  hold = max(optim.hold_steps, warmup)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak),
       optax.exponential_decay(peak * optim.hold_drop, transition_steps=max(num_steps, 1),
                               decay_rate=optim.decay_rate)],
      boundaries=[warmup, hold])


def cooldown_steps(optim: ml_collections.ConfigDict, num_steps: int) -> int:
  """c of `warmup_stable_decay`: `cooldown_steps`, at most what the warm-up leaves of T."""
  return max(1, min(optim.cooldown_steps, num_steps - min(optim.warmup_steps, num_steps)))


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int,
                   cooldown_start: int | None = None) -> optax.GradientTransformation:
  """Adam/AdamW on `learning_rate_schedule`, with global-norm clipping. The optimizer state's
  structure does not depend on `cooldown_start`: an optimizer made again with it goes on from
  the same state."""
  config_checks.check_choice("optim.name", optim.name)
  schedule = learning_rate_schedule(optim, num_steps, cooldown_start)
  if optim.name == "adam":
    opt = optax.adam(schedule)
  else:
    opt = optax.adamw(schedule, weight_decay=optim.weight_decay)
  if optim.grad_clip_norm:
    opt = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), opt)
  return opt
