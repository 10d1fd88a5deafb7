"""When ID training has converged: the held-out ID reconstruction error has levelled off.

At each evaluation step t (every `train.eval_every` steps) with the errors e(s) of the
held-out ID images (`test_id`, the first `train.eval_examples`) at the evaluations so far,
training stops once t ≥ `train.min_steps` and, with w = `train.stop_window`,

  min_{t − w < s ≤ t} e(s) > (1 − `train.stop_improvement`) · min_{s ≤ t − w} e(s),

i.e. the best error of the last w steps is less than that fraction better than the best
before them. The window's best, not e(t) alone: one noisy evaluation above a still-falling
curve does not end training. `train.num_steps` is the cap; `train.stop_window` = 0 trains
to it.

Under a schedule tied to the cap (a cosine decay to `num_steps`) the error's late fall is partly
the schedule's annealing, and training ends where the rule fires. Under
`optim.decay="warmup_stable_decay"` the rate is constant while the rule watches, and where it
fires the cool-down starts: training ends `optim.cooldown_steps` later (the cap's own
cool-down, which starts at num_steps − cooldown_steps, ends the rule's watch).

Where it fired and where training ends are kept in `{workdir}/stopped.json`, which later runs
of the same training read instead of watching again.
"""
from __future__ import annotations

import ml_collections

from compgen import errors
from compgen import files

FILE = "stopped.json"  # in a workdir: {"step" it fired at, "end", "test_id/recon_mse", "reason"}


def check(train: ml_collections.ConfigDict) -> None:
  """Refuses a rule that cannot fire as set (window not a multiple of eval_every)."""
  window = train.get("stop_window", 0)
  if window and window % train.eval_every:
    raise errors.ConfigError(
        f"train.stop_window={window} is not a multiple of train.eval_every={train.eval_every}: "
        "the rule compares evaluations, so give a multiple (or 0 to train to train.num_steps).")


def levelled_off(history: dict[int, float], step: int, window: int, improvement: float,
                 min_steps: int = 0) -> bool:
  """history {evaluation step: held-out ID error}; whether the rule above fires at `step`."""
  if not window or step < max(min_steps, window) or step not in history:
    return False
  earlier = [e for s, e in history.items() if s <= step - window]
  recent = [e for s, e in history.items() if step - window < s <= step]
  return bool(earlier) and min(recent) > (1 - improvement) * min(earlier)


def rule(train: ml_collections.ConfigDict, not_before: int = 0):
  """(history, step) -> bool: `levelled_off` with the config's settings, never before step
  `not_before` (a population's cut)."""
  return lambda history, step: levelled_off(
      history, step, train.get("stop_window", 0), train.get("stop_improvement", 0.0),
      max(train.get("min_steps", 0), not_before))


def read(workdir: str) -> dict | None:
  path = files.path(workdir, FILE)
  return files.read_json(path) if path.exists() else None


def end_step(stopped: dict | None, num_steps: int) -> int:
  """The step a training ends at, from its `read` record: the cap, or where the rule ended it."""
  return num_steps if stopped is None else min(stopped.get("end", stopped["step"]), num_steps)


def fell_over(history: dict[int, float], step: int, window: int) -> float | None:
  """1 − e(step) / e(step − window): how much the error fell over the last `window` steps
  (None without an evaluation there)."""
  earlier = history.get(step - window)
  return None if earlier is None else 1 - history[step] / earlier


def record(workdir: str, step: int, error: float, window: int, improvement: float,
           cooldown: int = 0) -> dict:
  """Keeps that the rule fired at `step`; training ends `cooldown` steps later."""
  reason = (f"the best held-out ID error of the last {window} steps is less than "
            f"{improvement:.0%} below the best before them")
  if cooldown:
    reason += f"; the learning rate cools down until step {step + cooldown}"
  value = {"step": int(step), "end": int(step + cooldown), "test_id/recon_mse": float(error),
           "reason": reason}
  files.write_json(files.path(workdir, FILE), value)
  return value
