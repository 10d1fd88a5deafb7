"""The trained autoencoder, the room training writes and every later stage reads: building
it for the data (`build_model`), restoring it from a workdir (`restore_trained`, a population's
kept candidate included), inferring (`make_infer`: z = ĝ(x), the MSE of f̂(z)), evaluating in
sharded batches (`evaluate`), scoring candidates (`candidate_scorer`) and reading a finished
run's record (`training_record`)."""
from __future__ import annotations

from typing import Callable

import jax
import ml_collections
import numpy as np

from compgen import models
from compgen import parallel
from compgen import provenance
from compgen.data import pipeline
from compgen.training import candidates, checkpoints, health, loop, stopping


def build_model(config: ml_collections.ConfigDict, example: dict) -> models.Autoencoder:
  """The encoder/decoder pair for data whose examples look like `example` (one batch)."""
  x = models.model_input(example)
  num_slots = example["latents"].shape[1]
  return models.Autoencoder(models.make_encoder(config.model, num_slots),
                                models.make_decoder(config.model, x.shape[1:]))


def make_infer(model):
  """(params, x) -> (z = mean of ĝ(x) [B, K, m], per-example MSE of f̂(z) [B], f̂(z))."""
  def infer(params, x):
    z = model.encode(params, x)["mean"]
    out = model.decode(params, z)["output"]
    return z, models.per_example_mse(out, x), out
  return infer


def first_examples(source, n):
  return pipeline.to_model_inputs(source[np.arange(min(n, len(source)))])


def evaluate(infer_fn, params, arrays: dict[str, dict], mesh, batch_size: int) -> dict:
  """Encodes/decodes each split's arrays in sharded batches: {split: (z, mse, recon)}."""
  return {split: tuple(parallel.call_in_batches(lambda x: infer_fn(params, x),
                                                {"x": models.model_input(batch)}, mesh,
                                                batch_size))
          for split, batch in arrays.items()}


def restore_trained(config: ml_collections.ConfigDict, workdir: str, mesh=None):
  """The trained autoencoder of `workdir`: (model, params replicated on `mesh`, step); of a
  population (`model.candidates` > 1) the kept candidate's params (`keep_candidate`).

  Reads the parameters only, so `config.optim` and `config.loss` may differ from training's.
  Raises CheckpointError when the workdir holds no checkpoint or another model or data.
  """
  mesh = mesh or parallel.make_mesh(config.mesh)
  model, params, step = restore_candidates(config, workdir, mesh)
  if step < stopping.end_step(stopping.read(workdir), config.train.num_steps) and jax.process_index() == 0:
    print(f"NOTE: the model in {workdir} is unfinished: its training stopped at step {step} of "
          f"{config.train.num_steps} (interrupted, or run with a stop step). Run the training "
          "again to finish it; until then this is the model used.")
  if candidates.stacked_to_the_end(config):
    params, _ = keep_candidate(config, workdir, model, jax.jit(make_infer(model)), params,
                               step, mesh)
  return model, params, step


def restore_candidates(config: ml_collections.ConfigDict, workdir: str, mesh=None):
  """As `restore_trained`, but a population trained to the end comes back stacked [C, ...]."""
  provenance.check_workdir_config(workdir, config, write=False,
                                  sections=provenance.MODEL_SECTIONS)
  mesh = mesh or parallel.make_mesh(config.mesh)
  ckpt = checkpoints.Checkpointer(workdir, config.train.keep_checkpoints, create=False)
  if ckpt.latest_step() is None:
    raise checkpoints.CheckpointError(
        f"No trained model in {ckpt.directory}: train one first with `python -m compgen.train "
        f"--config=... --workdir={workdir}`.")
  example = first_examples(pipeline.load_split(config.data, "test_id"), 1)
  model = build_model(config, example)
  params_shape = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), models.model_input(example)[:1]))
  if candidates.stacked_to_the_end(config):
    params_shape = jax.tree.map(lambda s: jax.ShapeDtypeStruct(
        (candidates.count(config),) + s.shape, s.dtype), params_shape)
  try:
    sharding = parallel.state_sharding(params_shape, mesh, config.mesh.fsdp_min_size)
    step, params, _ = ckpt.restore_latest(checkpoints.abstract_state(params_shape, sharding),
                                          params_only=True)
  finally:
    ckpt.close()
  return model, params, step


def health_scores_fn(model, train_arrays: dict, num_examples: int) -> Callable | None:
  """params -> `health.scores_fn`'s scores (slot purity, JIS, ...) of the decoder at the
  encoder's latents of the first `num_examples` of `train_arrays` (ID training images); None
  for data that are not images of several objects, where they are not defined."""
  x = models.model_input(train_arrays)[:num_examples]
  k = train_arrays["latents"].shape[1]
  if x.ndim != 4 or k < 2:
    return None
  scores = health.scores_fn(model.decode, x, k)
  if scores is None:
    return None
  encode = jax.jit(lambda p: model.encode(p, x)["mean"])
  return lambda params: scores(params, encode(params))


def candidate_scorer(config, model, infer_fn, train_arrays: dict, mesh) -> Callable:
  """params -> {"train_recon_mse": mean reconstruction MSE on `train_arrays` (ID training
  examples), "slot_purity" and the other `health` scores (images only)}: what
  `candidates.select` chooses by."""
  health_scores = health_scores_fn(model, train_arrays, config.train.health_examples)

  def score(params):
    mse = evaluate(infer_fn, params, {"train": train_arrays}, mesh,
                   config.train.batch_size)["train"][1].mean()
    out = {"train_recon_mse": float(mse)}
    if health_scores is not None:
      out.update(health_scores(params))
    return out
  return score


def keep_candidate(config, workdir: str, model, infer_fn, params, step: int, mesh,
                   train_arrays: dict | None = None):
  """`candidates.kept` of a population's stacked `params` at `step`, scored on `train_arrays`
  (by default the first `train.eval_examples` training examples, loaded only when needed)."""
  def score(p):
    nonlocal train_arrays
    if train_arrays is None:
      train_arrays = first_examples(pipeline.load_split(config.data, "train"),
                                    config.train.eval_examples)
    return candidate_scorer(config, model, infer_fn, train_arrays, mesh)(p)
  return candidates.kept(workdir, params, step, candidates.count(config), score,
                         candidates.score_name(config))


def parameter_summary(params, num_candidates: int, model_config) -> str:
  """One line: the parameter count of one model of `params` (arrays or their shapes, with a
  leading candidate axis when `num_candidates` > 1) and of each of its top-level parts."""
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree)) // num_candidates
  parts = ", ".join(f"{name} {count(part):,}" for name, part in sorted(params.items()))
  population = f" ({num_candidates} side by side)" if num_candidates > 1 else ""
  return (f"Model: {model_config.encoder} encoder, {model_config.decoder} decoder: "
          f"{count(params):,} parameters{population} ({parts}).")


def training_record(workdir: str) -> dict:
  """What a finished training run of `workdir` reports: {"step" it ended at, "stopped_early"
  (whether the stopping rule ended it before train.num_steps), "train_recon_mse",
  "slot_purity" and "healthy" (the health check; None where it is not defined)}."""
  rows = [r for r in loop.MetricWriter(workdir).rows() if "train/recon_mse" in r]
  if not rows:
    raise checkpoints.CheckpointError(f"{workdir} holds no evaluated training run.")
  last = rows[-1]
  purity = last.get("train/slot_purity")
  return {"step": last["step"], "stopped_early": stopping.read(workdir) is not None,
          "train_recon_mse": last["train/recon_mse"], "slot_purity": purity,
          "healthy": None if purity is None else health.is_healthy(purity)}
