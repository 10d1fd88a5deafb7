"""The supervised references: the configured encoder and decoder trained on ID pairs of an
input and its true latents.

  ĝ_sup = argmin_ĝ E_{(x, z) ~ ID} min_π ‖ĝ(x)_π − t(z)‖²      f̂_sup = argmin_f̂ E ‖f̂(t(z)) − x‖²

with t(z) per slot the continuous factors (standardised with the fit set's statistics) and a
one-hot per categorical factor, π the best slot order of each example
(`objectives.latent_loss` "permutation_invariant"), each trained with its own `config.optim`
optimiser for `experiment.supervised_steps` steps of `config.train.batch_size` pairs (f̂_sup
only with `experiment.supervised_decoder`: on images it costs about what training the
autoencoder does, ĝ_sup a tenth of that). ĝ_sup is scored like every method
(`identifiability`, readouts fitted on its ID latents), f̂_sup by its reconstruction error of
the ID and OOD test inputs from their true latents. They read the labels, so they are
references, not methods. ĝ_sup's ID score is what an encoder of this architecture reads from
these inputs (an autoencoder far below it fails through its unsupervised objective, not
through the images); its OOD score is the non-generative baseline given labels. f̂_sup asks
whether the decoder class, handed the true slots, draws one object per slot: an ID error
above the autoencoder's, or an OOD error far above its ID error, says that supervision with
the true latents does not make it compose on this support (where the ID slots are
correlated, a shared φ can draw part of every object from each slot) — it is not a floor of
the architecture.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from compgen import files
from compgen import models
from compgen import parallel
from compgen import plots
from compgen import provenance
from compgen import tables
from compgen.data import pipeline
from compgen.evaluation import identifiability as ident_lib
from compgen.study import perceived
from compgen.training import objectives, optimizers, resumable, trained

NUM_PICTURES = 8
CACHE = "supervised.json"  # in {workdir}/seed{s}/: one per seed, whatever the decoder
SECTIONS = ("data", "model.encoder", "model.encoders", "model.decoder", "model.decoders",
            "optim", "train.batch_size", "seed",
            "experiment.supervised_steps", "experiment.supervised_decoder",
            "experiment.fit_examples",
            "experiment.eval_examples", "experiment.readout", "experiment.matching",
            "experiment.readout_steps")


def slot_targets(latents: np.ndarray, factors: np.ndarray | None, num_categories, mean,
                 std) -> np.ndarray:
  """[N, K, m] continuous and [N, K, n_c] categorical factors -> [N, K, m + Σ C_i] float32:
  (latents − mean) / std, then one one-hot of C_i classes per categorical factor."""
  parts = [(latents - mean) / std]
  if factors is not None:
    parts += [np.eye(c)[factors[..., i]] for i, c in enumerate(num_categories)]
  return np.concatenate(parts, -1).astype(np.float32)


def train_and_score(config: ml_collections.ConfigDict, workdir: str,
                    bench: perceived.Benchmark, mesh) -> dict:
  """The references of the module doc for `config.seed`, on the experiment's image sets: {"identifiability": {split: ĝ_sup's score}, "per_factor": {split:
  {factor: score}}, "decoder_mse": {split: f̂_sup's mean reconstruction MSE} (with
  `experiment.supervised_decoder`, which also draws `{workdir}/supervised_decoder.png`: ID
  and OOD inputs over f̂_sup's reconstructions), "fit_loss": {part: its loss on the fit
  images after training}, "steps"}; cached in `{workdir}/supervised.json` with the
  provenance of `SECTIONS`. While it trains, its checkpoints are in `{workdir}/supervised/`
  (a preempted reference resumes there); once it is scored they are removed."""
  return provenance.cached_json(
      files.path(workdir, CACHE), provenance.record(config, SECTIONS),
      lambda: _train_and_score(config, workdir, bench, mesh))


def _train_and_score(config, workdir, bench: perceived.Benchmark, mesh) -> dict:
  ec, tc = config.experiment, config.train
  arrays, num_categories = bench.arrays, bench.num_categories
  fit_factors = arrays["fit"].get("factors")
  if fit_factors is not None and num_categories is None:
    num_categories = tuple(int(fit_factors[..., i].max()) + 1
                           for i in range(fit_factors.shape[-1]))
  mean, std = arrays["fit"]["latents"].mean(0), arrays["fit"]["latents"].std(0) + 1e-6
  targets = lambda batch: slot_targets(batch["latents"], batch.get("factors"), num_categories,
                                       mean, std)
  labelled = ml_collections.ConfigDict(config.to_dict())
  labelled.model.update(slot_dim=targets(arrays["fit"]).shape[-1], variational=False)
  model = trained.build_model(labelled, arrays["fit"])
  params = model.init(jax.random.fold_in(jax.random.PRNGKey(config.seed), 11),
                      models.model_input(arrays["fit"])[:1])
  batches = pipeline.BatchIterator(
      pipeline.load_split(config.data, "train"), tc.batch_size, seed=config.seed + 1000,
      process_index=jax.process_index(), process_count=jax.process_count())
  parts = ("encoder", "decoder") if ec.supervised_decoder else ("encoder",)
  out_dir = files.path(workdir, "supervised")  # the run's checkpoints, while it runs
  run = resumable.ResumableRun(out_dir, config.train.keep_checkpoints,
                               provenance.record(config, SECTIONS),
                               what="an unfinished supervised reference",
                               redo="train the reference with the new ones")
  fit_pair = {"x": models.model_input(arrays["fit"]), "t": targets(arrays["fit"])}
  params, fit_loss = _fit(model, params, parts, config, ec.supervised_steps, batches,
                          targets, mesh, run, fit_pair)
  if jax.process_index() == 0:  # finished: the result below is what is kept
    (out_dir / "checkpoints").rmtree()

  encode = jax.jit(lambda x: model.encode(params, x)["mean"])
  decode_mse = jax.jit(lambda x, t: models.per_example_mse(model.decode(params, t)["output"], x))
  bs = config.search.batch_size
  latents = {split: parallel.call_in_batches(encode, {"x": models.model_input(a)}, mesh, bs)
             for split, a in arrays.items()}
  decoder_mse = {split: float(parallel.call_in_batches(
                     decode_mse, {"x": models.model_input(arrays[split]),
                                  "t": targets(arrays[split])}, mesh, bs).mean())
                 for split in ("id", "ood")} if ec.supervised_decoder else None
  if ec.supervised_decoder and "image" in arrays["id"] and jax.process_index() == 0:
    n = NUM_PICTURES
    drawn = lambda split: np.clip(np.asarray(model.decode(
        params, targets(arrays[split])[:n])["output"]), 0, 1)
    plots.labelled_rows({"ID input": arrays["id"]["image"][:n], "ID: f̂_sup(z)": drawn("id"),
                         "OOD input": arrays["ood"]["image"][:n],
                         "OOD: f̂_sup(z)": drawn("ood")},
                        files.path(workdir, "supervised_decoder.png"))
  scores = ident_lib.identifiability(
      (latents["fit"], *bench.truth("fit")),
      {s: (latents[s], *bench.truth(s)) for s in ("id", "ood")},
      readout=ec.readout, matching=ec.matching, num_categories=num_categories,
      factor_names=bench.names, steps=ec.readout_steps, seed=config.seed)
  result = {**({"decoder_mse": decoder_mse} if ec.supervised_decoder else {}),
            "identifiability": {s: scores[s]["score"] for s in ("id", "ood")},
            "per_factor": {s: scores[s]["per_factor"] for s in ("id", "ood")},
            "fit_loss": fit_loss, "steps": ec.supervised_steps}
  return result


def _fit(model, params, parts, config, steps: int, batches, targets, mesh,
         run: resumable.ResumableRun, fit_pair: dict):
  """`steps` updates of the encoder (latent loss) and, if in `parts`, the decoder
  (reconstruction loss) on the pairs (x, t(z)) of `batches`, each part with its own optimiser
  state (global-norm clipping does not couple them), on the shared step loop
  (`run`: progress, NaN guard, checkpoints resumed after a preemption, metrics in its
  `metrics.jsonl`). Returns (params, {part: its loss on `fit_pair`, the
  fit images and their targets}).

  A step is dispatched only once the one before the last has finished: on a mesh of virtual
  CPU devices, hundreds of queued steps deadlocked XLA's in-process all-reduce (7 of 8
  participants at the rendezvous, then an abort; 5 of 5 runs of the test without a bound on
  the queue, 0 of 3 with it)."""
  optimizer = optimizers.make_optimizer(config.optim, steps)
  loss_of = {"encoder": lambda p, x, t: objectives.latent_loss(
                 model.encode(p, x)["mean"], t, "permutation_invariant"),
             "decoder": lambda p, x, t: jnp.mean((model.decode(p, t)["output"] - x) ** 2)}
  losses = lambda p, x, t: {part: loss_of[part](p, x, t) for part in parts}

  def init_state():
    return resumable.TrainState(jnp.zeros((), jnp.int32), params,
                                {part: optimizer.init(params[part]) for part in parts})
  repl = parallel.replicated(mesh)
  state_shape = jax.eval_shape(init_state)
  sharding = jax.tree.map(lambda _: repl, state_shape)

  @functools.partial(jax.jit, out_shardings=(sharding, repl), donate_argnums=0)
  def update(state, x, t):
    def total(p):
      values = losses(p, x, t)
      return sum(values.values()), values
    (_, values), grads = jax.value_and_grad(total, has_aux=True)(state.params)
    new_p, new_opt = dict(state.params), {}
    for part in parts:  # the encoder's loss does not reach the decoder, nor the reverse
      updates, new_opt[part] = optimizer.update(grads[part], state.opt_state[part],
                                                state.params[part])
      new_p[part] = optax.apply_updates(state.params[part], updates)
    return resumable.TrainState(state.step + 1, new_p, new_opt), values

  _, state, _ = run.restore_or_init(init_state, state_shape, sharding, batches)
  in_flight = []

  def step_fn(state, _):
    batch = next(batches)
    pair = parallel.put_batch({"x": models.model_input(batch), "t": targets(batch)}, mesh)
    state, values = update(state, pair["x"], pair["t"])
    if in_flight:  # at most two steps in flight (see above)
      jax.block_until_ready(in_flight.pop())
    in_flight.append(values)
    return state, values
  tc = config.train
  state, _ = run.run(
      step_fn, state, stop=steps, num_steps=steps, batch_size=tc.batch_size,
      log_every=tc.log_every, checkpoint_every=tc.checkpoint_every,
      desc="supervised references", data_state=lambda: batches.state)
  run.writer.flush()
  fit_loss = jax.device_get(jax.jit(losses)(state.params, *fit_pair.values()))
  return state.params, {part: float(v) for part, v in fit_loss.items()}


def format_table(supervised: dict, names) -> str:
  """Markdown: per seed and split, ĝ_sup's identifiability and per-factor scores and f̂_sup's
  reconstruction MSE."""
  decoder = any("decoder_mse" in r for r in supervised.values())
  def row(seed, r, split):
    cells = [seed, split.upper(), f"{r['identifiability'][split]:.3f}"] + [
        f"{r['per_factor'][split][n]:.3f}" for n in names]
    if decoder:
      mse = r.get("decoder_mse", {}).get(split)
      cells.append("–" if mse is None else f"{mse:.5f}")
    return cells
  return tables.markdown(
      ["seed", "split", "encoder: identifiability"] + list(names)
      + (["decoder: recon MSE"] if decoder else []),
      [row(seed, r, split) for seed, r in supervised.items() for split in ("id", "ood")])
