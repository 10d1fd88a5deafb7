"""The in-domain training job (Eq. 4.2): `train_and_evaluate(config, workdir)`; the trained
model it leaves is built, restored and evaluated by `trained`.

One jitted train step over an explicit `TrainState` (donated), batches sharded over the mesh's
data axis, optax optimiser from the config, orbax checkpoints with automatic resume,
metrics as JSON lines in `{workdir}/metrics.jsonl`, reconstructions in `{workdir}/reconstructions.png`.
With `model.candidates` C > 1, C autoencoders from independent inits train side by side (one
vmapped step) and the one that reconstructs the ID training data best is kept (`candidates`).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from compgen import config_checks
from compgen import files
from compgen import models
from compgen import parallel
from compgen import plots
from compgen import provenance
from compgen import tables
from compgen.data import pipeline
from compgen.evaluation import probe
from compgen.training import (candidates, health, objectives, optimizers, resumable, stopping,
                              trained)


def make_train_step(model, config, optimizer, num: int | None = None):
  """(state, batch, rng) -> (state, metrics): one optax update of Eq. 4.2.

  With C = `num` (default `model.candidates`) > 1 the state's params and optimizer state
  carry a leading candidate axis [C, ...] and every candidate takes its update on the same
  batch (vmapped); the metrics are then the candidates' means, plus `best_mse`, the lowest
  training MSE, and each one's as `candidate{i}/mse`.
  """
  def update(params, opt_state, batch, rng, step):
    grad_fn = jax.value_and_grad(
        lambda p: objectives.loss_fn(model, config.loss, p, batch, rng, step), has_aux=True)
    (_, terms), grads = grad_fn(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    terms["grad_norm"] = optax.global_norm(grads)
    return optax.apply_updates(params, updates), opt_state, terms

  num = candidates.count(config) if num is None else num

  def train_step(state: resumable.TrainState, batch: dict, rng: jax.Array):
    if num == 1:
      params, opt_state, terms = update(state.params, state.opt_state, batch, rng, state.step)
    else:
      params, opt_state, terms = jax.vmap(update, in_axes=(0, 0, None, 0, None))(
          state.params, state.opt_state, batch, jax.random.split(rng, num), state.step)
      terms = {**{k: v.mean() for k, v in terms.items()}, "best_mse": terms["mse"].min(),
               **{f"candidate{i}/mse": terms["mse"][i] for i in range(num)}}
    return resumable.TrainState(state.step + 1, params, opt_state), terms
  return train_step


def _eval_metrics(results: dict, arrays: dict, step: int) -> dict:
  for split, (z, err, _) in results.items():
    if not (np.isfinite(z).all() and np.isfinite(err).all()):
      raise FloatingPointError(
          f"Non-finite latents or reconstructions of {split} at evaluation step {step}: the "
          "parameters diverged, and this state was not saved. Lower the learning rate, raise "
          "the gradient clipping, or check the data.")
  metrics = {f"{split}/recon_mse": float(err.mean()) for split, (_, err, _) in results.items()}
  fit = results["train"][0], arrays["train"]["latents"]
  for split in ("test_id", "test_ood"):
    scores = probe.matched_r2(*fit, results[split][0], arrays[split]["latents"])
    metrics[f"{split}/matched_r2"] = scores["mean"]
  return metrics


def _save_reconstructions(results, arrays, path, dataset: str, n: int = 8) -> str | None:
  if "image" not in arrays["test_id"]:
    return None
  rows = []
  for split in ("test_id", "test_ood"):
    rows += [arrays[split]["image"][:n], np.clip(results[split][2][:n], 0, 1)]
  return plots.image_grid(np.concatenate(rows), path, columns=n,
                          title=f"{dataset}: rows = ID input, ID reconstruction, OOD input, "
                                "OOD reconstruction")


def state_initializer(config, model, optimizer, example_batch: dict):
  """() -> the initial TrainState: params from `key = fold_in(PRNGKey(config.seed), 0)`; with
  C = `model.candidates` > 1, stacked [C, ...], candidate 0 from `key` (the single model's
  init) and candidate i from `fold_in(key, i)`."""
  example = models.model_input(example_batch)[:1]
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
  num = candidates.count(config)

  def init_one(rng):
    params = model.init(rng, example)
    return params, optimizer.init(params)

  def init_state():
    if num == 1:
      params, opt_state = init_one(key)
    else:
      params, opt_state = jax.vmap(init_one)(candidates.init_keys(key, num))
    return resumable.TrainState(jnp.zeros((), jnp.int32), params, opt_state)
  return init_state


@files.holds_workdir("train")
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at_step: int | None = None) -> resumable.TrainState:
  """Trains the configured autoencoder on ID data, resuming from `workdir` if it holds a run.

  `stop_at_step` ends this call early, with a checkpoint, at that step (the learning-rate
  schedule still follows `train.num_steps`); calling again continues the same run. With
  `train.stop_window` > 0 the stopping rule may end it sooner (`stopping`).
  """
  config_checks.check_values(config)
  num, keep_at = candidates.count(config), candidates.keep_step(config)  # checked first
  candidates.score_name(config)
  stopping.check(config.train)
  cut = num > 1 and keep_at > 0  # the population is cut to its best candidate at keep_at
  sources = pipeline.load_splits(config.data)  # checked to agree before anything is written
  provenance.check_workdir_config(workdir, config)
  mesh = parallel.make_mesh(config.mesh)
  tc = config.train
  parallel.check_batch_size(tc.batch_size, mesh)
  train_iter = pipeline.BatchIterator(
      sources["train"], tc.batch_size, seed=config.seed, process_index=jax.process_index(),
      process_count=jax.process_count())
  eval_arrays = {split: trained.first_examples(source, tc.eval_examples)
                 for split, source in sources.items()}

  model = trained.build_model(config, eval_arrays["train"])
  stopped = stopping.read(workdir)
  cooldown = (optimizers.cooldown_steps(config.optim, tc.num_steps)
              if config.optim.decay == "warmup_stable_decay" else 0)
  optimizer = optimizers.make_optimizer(
      config.optim, tc.num_steps, stopped["step"] if cooldown and stopped else None)
  root = jax.random.PRNGKey(config.seed)
  init_state = state_initializer(config, model, optimizer, eval_arrays["train"])
  repl = parallel.replicated(mesh)
  batch_sharding = parallel.data_sharded(mesh)
  infer = jax.jit(trained.make_infer(model))

  def phase(size: int):
    """(init, its shape, sharding, jitted step) of a state of `size` candidates (1: one
    model)."""
    init = init_state if size == num else (lambda: candidates.take_state(init_state(), 0))
    shape = jax.eval_shape(init)
    sharding = parallel.state_sharding(shape, mesh, config.mesh.fsdp_min_size)
    step = jax.jit(make_train_step(model, config, optimizer, size),
                   in_shardings=(sharding, batch_sharding, repl),
                   out_shardings=(sharding, repl), donate_argnums=0)
    return init, shape, sharding, step

  resumed_run = resumable.ResumableRun(workdir, tc.keep_checkpoints)
  saved = resumed_run.saved_step()
  size = 1 if cut and saved is not None and saved > keep_at else num
  init, shape, sharding, train_step = phase(size)
  if jax.process_index() == 0:
    print(trained.parameter_summary(shape.params, size, config.model))
  latest, state, resumed = resumed_run.restore_or_init(init, shape, sharding, train_iter)
  if resumed:
    print(f"Resumed from {resumed_run.checkpointer.directory}/{latest} "
          f"(step {int(state.step)}).")
  writer = resumed_run.writer
  step_key = jax.random.fold_in(root, 1)
  scorer = trained.candidate_scorer(config, model, infer, eval_arrays["train"], mesh)
  score_by = candidates.score_name(config)
  end = stopping.end_step(stopped, tc.num_steps)
  stop = end if stop_at_step is None else min(stop_at_step, end)
  history = {row["step"]: row[HELD_OUT] for row in writer.rows() if HELD_OUT in row}
  levelled_off = stopping.rule(tc, not_before=keep_at + 1 if cut else 0)

  def run(state, until):
    def step_fn(state, step):
      batch = parallel.put_batch(next(train_iter), mesh)
      return train_step(state, batch, jax.random.fold_in(step_key, step))

    def on_eval(step, state):
      params, record = candidates.select(state.params, size, scorer, score_by)
      results = trained.evaluate(infer, params, eval_arrays, mesh, tc.batch_size)
      metrics = _eval_metrics(results, eval_arrays, step)
      metrics.update(_health_metrics(record, scorer, params))
      writer.write(step, metrics)
      history[step] = metrics[HELD_OUT]
      return {k: metrics[k] for k in ("train/slot_purity", "train/top_slot_share")
              if k in metrics}

    def converged(step):
      nonlocal stopped
      watching = stopped is None and step < tc.num_steps - cooldown  # (until the cap's cool-down)
      if not (watching and levelled_off(history, step)):
        return False
      stopped = stopping.record(workdir, step, history[step], tc.stop_window,
                                tc.stop_improvement, cooldown)
      print(f"\nConverged at step {step}: {stopped['reason']}.")
      return True
    return resumed_run.run(
        step_fn, state, stop=until, num_steps=tc.num_steps, batch_size=tc.batch_size,
        log_every=tc.log_every, checkpoint_every=tc.checkpoint_every, desc="train",
        data_state=lambda: train_iter.state, eval_every=tc.eval_every, on_eval=on_eval,
        converged=converged)

  step = latest
  if size > 1 and cut:
    state, step = run(state, min(stop, keep_at))
    if step == keep_at:  # keep the best candidate; it alone trains on
      _, record = candidates.kept(workdir, state.params, step, num, scorer, score_by)
      state = candidates.take_state(state, record["selected"])
      size = 1
      _, _, sharding, train_step = phase(size)
      state = jax.device_put(state, sharding)
  while step < stop:
    state, step = run(state, stop)
    if step < stop:  # the rule fired: training ends there, or after the cool-down from there
      stop = min(stop, stopping.end_step(stopped, tc.num_steps))
      if step < stop:
        optimizer = optimizers.make_optimizer(config.optim, tc.num_steps, stopped["step"])
        train_step = phase(size)[3]
  if step < stopping.end_step(stopped, tc.num_steps):
    print(f"Stopped at step {step} of {tc.num_steps}; run again to continue.")
    return state
  params, record = state.params, None
  if size > 1:
    params, record = trained.keep_candidate(config, workdir, model, infer, state.params, step,
                                            mesh, eval_arrays["train"])
  elif cut:
    record = files.read_json(files.path(workdir, candidates.FILE))
  results = trained.evaluate(infer, params, eval_arrays, mesh, tc.batch_size)
  final = _eval_metrics(results, eval_arrays, step)
  final.update(_health_metrics(None, scorer, params))
  if not any(row["step"] == step and row.keys() >= final.keys() for row in writer.rows()):
    writer.write(step, final)  # (a finished training run again logs nothing new)
  writer.flush()
  if jax.process_index() == 0:
    _save_reconstructions(results, eval_arrays, files.path(workdir, "reconstructions.png"),
                          config.data.dataset)
    if record is not None:
      print(f"Kept candidate {record['selected']} of {len(record['train_recon_mse'])} at step "
            f"{record['step']} (train recon MSE "
            + ", ".join(f"{m:.3g}" for m in record["train_recon_mse"]) + ")")
    print(format_summary(final))
    if "train/slot_purity" in final:
      print(health.verdict(final["train/slot_purity"]))
  return state


HELD_OUT = "test_id/recon_mse"  # the error the stopping rule watches


def _health_metrics(record: dict | None, scorer: Callable, params) -> dict:
  """{"train/slot_purity", "train/jis", ...: the `health` scores} of `params` (from a
  population's `record` when there is one), and each candidate's scores and error as
  "candidate{i}/..."."""
  if record is None:
    return {f"train/{k}": v for k, v in scorer(params).items() if k != "train_recon_mse"}
  scored = [k for k, v in record.items() if isinstance(v, list)]
  out = {f"candidate{i}/{key}": v for key in scored for i, v in enumerate(record[key])}
  out.update({f"train/{key}": record[key][record["selected"]] for key in scored
              if key != "train_recon_mse"})
  return out


def format_summary(metrics: dict) -> str:
  """A short table: reconstruction MSE and matched R² per split, and the health check's slot
  purity (of the training images) where it is defined."""
  r2 = lambda split: metrics.get(f"{split}/matched_r2")
  purity = metrics.get("train/slot_purity")
  rows = [[split, f"{metrics[f'{split}/recon_mse']:.5f}",
           "-" if r2(split) is None else f"{r2(split):.3f}"]
          for split in ("train", "test_id", "test_ood")]
  if purity is None:
    return tables.aligned(["split", "recon MSE", "matched R²"], rows)
  verdict = "objects" if health.is_healthy(purity) else "NOT objects"
  rows = [row + [f"{purity:.2f} ({verdict})" if row[0] == "train" else "-"] for row in rows]
  return tables.aligned(["split", "recon MSE", "matched R²", "slot purity"], rows)
