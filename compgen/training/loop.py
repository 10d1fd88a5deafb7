"""The step loop shared by training and replay: progress bar, logging, NaN guard, checkpoints."""
from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np
import tqdm


def run_loop(step_fn: Callable, state, *, stop: int, num_steps: int, batch_size: int,
             log_every: int, checkpoint_every: int, checkpointer, writer, desc: str,
             data_state: Callable[[], dict] = dict, eval_every: int = 0,
             on_eval: Callable | None = None):
  """Runs `state, metrics = step_fn(state, step)` from `state.step` up to `stop`.

  Every `log_every` steps the metrics (plus examples/s) go to `writer`; before each
  checkpoint (every `checkpoint_every` steps, at `stop` and at `num_steps`) the metrics are
  checked to be finite, so a diverged state is never saved. `on_eval(step, state)` runs every
  `eval_every` steps before the last. Returns (state, step reached).
  """
  step = int(state.step)
  window_start, window_steps = time.perf_counter(), 0
  with tqdm.tqdm(total=num_steps, initial=step, desc=desc, unit="step",
                 disable=jax.process_index() != 0, dynamic_ncols=True) as bar:
    while step < stop:
      state, metrics = step_fn(state, step)
      step += 1
      window_steps += 1
      bar.update(1)
      will_save = step % checkpoint_every == 0 or step in (num_steps, stop)
      will_log = step % log_every == 0 or step == stop
      if will_log or will_save:
        metrics = jax.device_get(metrics)
        if not all(np.isfinite(v) for v in metrics.values()):
          raise FloatingPointError(
              f"Non-finite {desc} metrics at step {step}: {metrics}. Lower the learning rate "
              "or check the data; no checkpoint was written for this step.")
      if will_log:
        metrics["examples_per_s"] = window_steps * batch_size / (time.perf_counter() - window_start)
        writer.write(step, metrics)
        bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()
                         if k in ("loss", "mse", "latent_mse")})
        window_start, window_steps = time.perf_counter(), 0
      if on_eval is not None and eval_every and step % eval_every == 0 and step < num_steps:
        on_eval(step, state)
      if will_save:
        checkpointer.save(step, state, data_state())
  checkpointer.close()
  return state, step
