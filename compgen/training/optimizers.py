"""The optax optimiser of a config's `optim` section (training, replay, the references)."""
from __future__ import annotations

import ml_collections
import optax

from compgen import config_checks


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """Adam/AdamW with linear warm-up, cosine (or constant) decay, global-norm clipping."""
  config_checks.check_choice("optim.name", optim.name)
  config_checks.check_choice("optim.decay", optim.decay)
  peak = optim.learning_rate
  warmup = min(optim.warmup_steps, max(num_steps - 1, 0))
  if optim.decay == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup_steps=warmup, decay_steps=max(num_steps, warmup + 1),
        end_value=peak * optim.end_learning_rate_fraction)
  else:
    schedule = optax.warmup_constant_schedule(0.0, peak, warmup_steps=max(warmup, 1))
  if optim.name == "adam":
    opt = optax.adam(schedule)
  else:
    opt = optax.adamw(schedule, weight_decay=optim.weight_decay)
  if optim.grad_clip_norm:
    opt = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), opt)
  return opt
