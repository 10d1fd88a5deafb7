"""Generative replay (Eq. 4.4): min_ĝ E_{ẑ ~ Π_k p_k} ‖ẑ − ĝ(f̂(ẑ))‖².

Slot latents are drawn from a factorised prior fitted on ID latents, decoded by the frozen
decoder on the device and used to train an encoder — all inside one jitted optax step.
`replay_and_evaluate(config, workdir)` runs it on a trained workdir (`compgen.train`), writing
`{workdir}/replay/` (checkpoints, metrics.jsonl, summary.json).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from compgen import config_checks
from compgen import files
from compgen import models
from compgen import parallel
from compgen import provenance
from compgen.data import pipeline
from compgen.evaluation import probe
from compgen.inversion import priors
from compgen.training import checkpoints, objectives, optimizers, resumable, trained


def replay_sampler(decode_fn, batch_size: int, mesh=None, micro_batch: int | None = None):
  """(rng, decoder_params, prior) -> (x̂ = f̂(ẑ), ẑ) with ẑ ~ prior: [B, ...], [B, K, m];
  decoded in chunks of `micro_batch` samples (`parallel.map_in_chunks`) when given."""
  def sample(rng, decoder_params, prior):
    z = prior.sample(rng, batch_size)
    if mesh is not None:
      z = jax.lax.with_sharding_constraint(z, parallel.data_sharded(mesh))
    x = parallel.map_in_chunks(lambda zc: decode_fn(decoder_params, zc), micro_batch, z)
    return jax.lax.stop_gradient(x), z
  return sample


def dataset_sampler(batch_size: int):
  """(rng, x_all, z_all) -> a random batch of pre-decoded pairs (the non-generative baseline:
  an encoder trained supervised on in-domain data)."""
  def sample(rng, x_all, z_all):
    idx = jax.random.randint(rng, (batch_size,), 0, x_all.shape[0])
    return x_all[idx], z_all[idx]
  return sample


def make_encoder_step(encode_fn, sampler, optimizer, loss: str = "mse"):
  """(state, rng, *sampler_args) -> (state, metrics): one optax step of min ‖z − ĝ(x)‖² on
  pairs (x, z) = sampler(rng, *sampler_args); state.params are the encoder's."""
  def step(state: resumable.TrainState, rng, *sampler_args):
    x, z = sampler(rng, *sampler_args)
    value, grads = jax.value_and_grad(
        lambda p: objectives.latent_loss(encode_fn(p, x), z, loss))(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return (resumable.TrainState(state.step + 1, optax.apply_updates(state.params, updates),
                                 opt_state), {"latent_mse": value})
  return step


def _encode_all(infer, params, x, mesh, batch_size):
  """`trained.evaluate` on one array: (z, per-example MSE, reconstruction)."""
  return trained.evaluate(infer, params, {"s": {"x": x}}, mesh, batch_size)["s"]


@files.holds_workdir("replay")
def replay_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        stop_at_step: int | None = None) -> dict:
  """Trains a replay encoder on the trained model of `workdir`; returns the summary dict."""
  rc = config_checks.check_values(config).replay
  mesh = parallel.make_mesh(config.mesh)
  parallel.check_batch_size(rc.batch_size, mesh)
  model, params, trained_step = trained.restore_trained(config, workdir, mesh)
  out_dir = files.path(workdir, "replay")

  n_eval = config.train.eval_examples
  arrays = {s: trained.first_examples(pipeline.load_split(config.data, s), n)
            for s, n in (("train", max(rc.prior_examples, n_eval)), ("test_id", n_eval),
                         ("test_ood", n_eval))}
  infer = jax.jit(trained.make_infer(model))
  id_latents, _, _ = _encode_all(infer, params, models.model_input(arrays["train"]), mesh,
                                 config.train.batch_size)
  prior = priors.fit_prior(rc.prior, id_latents[:rc.prior_examples], seed=config.seed)

  optimizer = optimizers.make_optimizer(rc.optim, rc.num_steps)
  root = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)

  def init_state():
    if rc.init == "id_encoder":
      enc = params["encoder"]
    else:
      x0 = models.model_input(arrays["train"])[:1]
      enc = model.encoder.init(jax.random.fold_in(root, 0), x0)["params"]
    return resumable.TrainState(jnp.zeros((), jnp.int32), enc, optimizer.init(enc))

  repl = parallel.replicated(mesh)
  state_shape = jax.eval_shape(init_state)
  state_sharding = parallel.state_sharding(state_shape, mesh, config.mesh.fsdp_min_size)
  encode = lambda enc_params, x: model.encode({"encoder": enc_params}, x)["mean"]
  decode = lambda dec_params, z: model.decode({"decoder": dec_params}, z)["output"]
  step_fn = jax.jit(make_encoder_step(encode, replay_sampler(
                                          decode, rc.batch_size, mesh,
                                          parallel.resolve_micro_batch(rc.micro_batch)),
                                      optimizer, rc.loss),
                    out_shardings=(state_sharding, repl), donate_argnums=0)
  run = resumable.ResumableRun(
      out_dir, config.train.keep_checkpoints,
      provenance.record(config, provenance.REPLAY_SECTIONS, trained_step=trained_step),
      what="a replay run", redo="replay with the new ones (the trained model stays)")
  _, state, _ = run.restore_or_init(init_state, state_shape, state_sharding)
  prior = jax.device_put(prior, repl)
  decoder_params = params["decoder"]
  writer = run.writer
  step_key = jax.random.fold_in(root, 1)
  stop = rc.num_steps if stop_at_step is None else min(stop_at_step, rc.num_steps)
  state, step = run.run(
      lambda state, step: step_fn(state, jax.random.fold_in(step_key, step), decoder_params,
                                  prior),
      state, stop=stop, num_steps=rc.num_steps, batch_size=rc.batch_size,
      log_every=rc.log_every, checkpoint_every=rc.checkpoint_every, desc="replay")
  if step < rc.num_steps:
    return {"stopped_at": step}
  summary = compare_encoders(infer, params, state.params, arrays, mesh, config.train.batch_size)
  summary.update(prior=rc.prior, init=rc.init, loss=rc.loss, steps=rc.num_steps)
  writer.write(step, {f"{enc}/{k}": v for enc, d in summary["encoders"].items()
                      for k, v in d.items()})
  writer.flush()
  if jax.process_index() == 0:
    files.write_json(out_dir / "summary.json", summary)
  return summary


def replay_encoder_params(config, workdir, params, mesh):
  """Params with the encoder of the replay run in `workdir` (for search.init=replay_encoder)."""
  ckpt = checkpoints.Checkpointer(files.path(workdir, "replay"), 1, create=False)
  step = ckpt.latest_step()
  if step is None:
    raise checkpoints.CheckpointError(
        f"search.init='replay_encoder' needs a replay run in {workdir}/replay: run `python -m "
        f"compgen.replay --config=... --workdir={workdir}` first.")
  shape = jax.eval_shape(lambda: params["encoder"])
  try:  # the encoder's parameters only: any replay optimizer settings restore it
    _, encoder, _ = ckpt.restore_latest(checkpoints.abstract_state(
        shape, parallel.state_sharding(shape, mesh)), params_only=True)
  finally:
    ckpt.close()
  return {"encoder": encoder, "decoder": params["decoder"]}


def compare_encoders(infer, params, replay_encoder_params, arrays, mesh, batch_size) -> dict:
  """Reconstruction MSE (decode ∘ encode) and matched R² per split, ID vs replay encoder."""
  out = {}
  for name, enc in (("id_encoder", params["encoder"]), ("replay_encoder", replay_encoder_params)):
    p = {"encoder": enc, "decoder": params["decoder"]}
    res = {s: _encode_all(infer, p, models.model_input(a), mesh, batch_size)
           for s, a in arrays.items()}
    row = {}
    for split in ("test_id", "test_ood"):
      row[f"{split}/recon_mse"] = float(res[split][1].mean())
      row[f"{split}/matched_r2"] = probe.matched_r2(
          res["train"][0], arrays["train"]["latents"], res[split][0],
          arrays[split]["latents"])["mean"]
    out[name] = row
  return {"encoders": out}
