"""The supervised reference: the configured encoder trained on ID (input, true latent) pairs.

  ĝ_sup = argmin_ĝ E_{(x, z) ~ ID} min_π ‖ĝ(x)_π − t(z)‖²

with t(z) per slot the continuous factors (standardised with the fit set's statistics) and a
one-hot per categorical factor, π the best slot order of each example
(`objectives.latent_loss` "permutation_invariant"), trained with `config.optim` for
`experiment.supervised_steps` steps of `config.train.batch_size` examples, then scored like
every method (`identifiability`, readouts fitted on its ID latents). It reads the true
latents, so it is a reference, not a method: its ID score bounds what an encoder of this
architecture reads from these inputs (an autoencoder far below it fails through its
unsupervised objective, not through the images), and its OOD score is the non-generative
baseline given labels.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from compgen import files
from compgen import models
from compgen import parallel
from compgen.data import pipeline
from compgen.evaluation import identifiability as ident_lib
from compgen.inversion import replay as replay_lib
from compgen.training import checkpoints, train_lib

CACHE = "supervised.json"  # in {workdir}/seed{s}/: one per seed, whatever the decoder
SECTIONS = ("data", "model.encoder", "model.encoders", "optim", "train.batch_size", "seed",
            "experiment.supervised_steps", "experiment.fit_examples",
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


def train_and_score(config: ml_collections.ConfigDict, workdir: str, arrays: dict, mesh,
                    names, num_categories) -> dict:
  """The reference of the module doc for `config.seed`, given the experiment's `arrays`
  ({"fit", "id", "ood"}): {"identifiability": {split: score}, "per_factor": {split: {factor:
  score}}, "train_loss": the last 100 steps' mean, "steps"}; cached in `{workdir}/
  supervised.json` with the provenance of `SECTIONS`."""
  ec, tc = config.experiment, config.train
  path = files.path(workdir, CACHE)
  record = checkpoints.provenance(config, SECTIONS)
  saved = checkpoints.read_cached(path, record, "result")
  if saved is not None:
    return saved
  fit_factors = arrays["fit"].get("factors")
  if fit_factors is not None and num_categories is None:
    num_categories = tuple(int(fit_factors[..., i].max()) + 1
                           for i in range(fit_factors.shape[-1]))
  mean, std = arrays["fit"]["latents"].mean(0), arrays["fit"]["latents"].std(0) + 1e-6
  targets = lambda batch: slot_targets(batch["latents"], batch.get("factors"), num_categories,
                                       mean, std)
  target_dim = targets(arrays["fit"]).shape[-1]
  model_config = ml_collections.ConfigDict(config.model.to_dict())
  model_config.update(slot_dim=target_dim, variational=False)
  encoder = models.make_encoder(model_config, num_slots=arrays["fit"]["latents"].shape[1])
  encode = lambda p, x: encoder.apply({"params": p}, x)["mean"]
  optimizer = train_lib.make_optimizer(config.optim, ec.supervised_steps)
  step_fn = jax.jit(replay_lib.make_encoder_step(encode, lambda rng, x, t: (x, t), optimizer,
                                                 "permutation_invariant"), donate_argnums=0)
  params = encoder.init(jax.random.fold_in(jax.random.PRNGKey(config.seed), 11),
                        models.model_input(arrays["fit"])[:1])["params"]
  state = train_lib.TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))
  batches = pipeline.BatchIterator(
      pipeline.load_split(config.data, "train"), tc.batch_size, seed=config.seed + 1000,
      process_index=jax.process_index(), process_count=jax.process_count())
  losses = []
  rng = jax.random.PRNGKey(0)  # unused: the pairs are the batch itself
  for _ in tqdm.trange(ec.supervised_steps, desc="supervised reference", unit="step",
                       disable=jax.process_index() != 0, dynamic_ncols=True):
    batch = next(batches)
    pair = parallel.put_batch({"x": models.model_input(batch), "t": targets(batch)}, mesh)
    state, metrics = step_fn(state, rng, pair["x"], pair["t"])
    losses.append(metrics["latent_mse"])
  train_loss = float(np.mean(jax.device_get(losses[-100:])))
  if not np.isfinite(train_loss):
    raise FloatingPointError(
        f"The supervised reference's loss is {train_loss} after {ec.supervised_steps} steps: "
        "its training diverged. Lower optim.learning_rate or experiment.supervised_steps.")
  encode_jit = jax.jit(encode)
  latents = {}
  for split, a in arrays.items():
    x = models.model_input(a)
    latents[split] = np.concatenate([
        parallel.call_padded(lambda x: encode_jit(state.params, x),
                             {"x": x[lo:lo + config.search.batch_size]}, mesh)
        for lo in range(0, len(x), config.search.batch_size)])
  truth = lambda split: (arrays[split]["latents"], arrays[split].get("factors"))
  scores = ident_lib.identifiability(
      (latents["fit"], *truth("fit")), {s: (latents[s], *truth(s)) for s in ("id", "ood")},
      readout=ec.readout, matching=ec.matching, num_categories=num_categories,
      factor_names=names, steps=ec.readout_steps, seed=config.seed)
  result = {"identifiability": {s: scores[s]["score"] for s in ("id", "ood")},
            "per_factor": {s: scores[s]["per_factor"] for s in ("id", "ood")},
            "train_loss": train_loss, "steps": ec.supervised_steps}
  checkpoints.write_cached(path, record, "result", result)
  return result


def format_table(supervised: dict, names) -> str:
  """Markdown: per seed, identifiability and per-factor scores ID and OOD."""
  lines = ["| seed | split | identifiability | " + " | ".join(names) + " |",
           "|---|---|---|" + "---|" * len(names)]
  for seed, r in supervised.items():
    for split in ("id", "ood"):
      lines.append(f"| {seed} | {split.upper()} | {r['identifiability'][split]:.3f} | "
                   + " | ".join(f"{r['per_factor'][split][n]:.3f}" for n in names) + " |")
  return "\n".join(lines)
