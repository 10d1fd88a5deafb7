"""Does the decoder compose? Test scenes drawn from recombined ID slots (a diagnostic).

For a test scene with true slots s_1..s_K, take for every true slot j the ID training scene
(of a pool of `experiment.composed_pool`) whose slot j is nearest to s_j — squared distance of
the continuous factors standardised with the pool's statistics, categorical factors equal
where the pool has such a slot — and from it the encoder's latent of the inferred slot matched
to j (the global Hungarian matching of the encoder's readouts). These recombined ID slots are
what an identified slot model perceives in an OOD scene: every slot value was seen ID, only
the combination is new. The diagnostic reads the test scenes' true latents, so it is not a
method; it locates a failure:

  f̂(recombined) on OOD vs on ID test scenes  the decoder composes when its OOD error is about
                                              its ID error (the ID value is the floor that
                                              the nearest-neighbour mismatch alone gives)
  search from recombined vs from ĝ(x)         when search from recombined slots ends lower
                                              and scores higher than search from the encoder,
                                              the decoder holds the right scene and search's
                                              starts miss it

Identifiability here uses readouts fitted on the encoder's ID latents for every row (the
main table fits each method's own when `experiment.readout_fit` is "own").
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from compgen import files
from compgen import models
from compgen import parallel
from compgen import provenance
from compgen import tables
from compgen.data import pipeline
from compgen.evaluation import identifiability as ident_lib
from compgen.inversion import perception as perception_lib
from compgen.study import perceived as perceived_lib
from compgen.training import checkpoints, trained

ROWS = ("encoder", "search", "recombined", "recombined_search")
CACHE = "composition.json"  # in {model workdir}/experiment/


def recombine_slots(pool_z: np.ndarray, pool_latents: np.ndarray, pool_factors, latents,
                    factors, assignment) -> tuple[np.ndarray, np.ndarray]:
  """Inferred slots for scenes with true `latents` [N, K, m] (`factors` [N, K, n_c] or None)
  recombined from a pool's inferred slots pool_z [P, K, m̂] (truths pool_latents [P, K, m],
  pool_factors): slot assignment[j] of the result is pool_z[p_j, assignment[j]] with p_j the
  pool scene whose true slot j is nearest. Returns (z [N, K, m̂], distance [N, K]: the
  standardised squared distance to each nearest slot, plus 1e6 per categorical factor that
  differs, i.e. where the pool has no slot j of that category)."""
  n, k, _ = latents.shape
  mean, std = pool_latents.mean(0), pool_latents.std(0) + 1e-6  # [K, m]
  standardise = lambda v: (v - mean) / std
  pool, query = standardise(pool_latents), standardise(latents)
  z = np.empty((n, k, pool_z.shape[-1]), pool_z.dtype)
  distance = np.empty((n, k))
  for j in range(k):
    cost = ((query[:, None, j] - pool[None, :, j]) ** 2).sum(-1)  # [N, P]
    if factors is not None and factors.shape[-1]:
      cost = cost + 1e6 * (factors[:, None, j] != pool_factors[None, :, j]).sum(-1)
    nearest = cost.argmin(1)
    z[:, assignment[j]] = pool_z[nearest, assignment[j]]
    distance[:, j] = cost[np.arange(n), nearest]
  return z, distance


def diagnose(config: ml_collections.ConfigDict, workdir: str, bench: perceived_lib.Benchmark,
             perceived: perceived_lib.Perceived, mesh, latent_sections: tuple[str, ...]) -> dict:
  """The diagnostic of the module doc for the trained model of `workdir`, given what the
  experiment `perceived` (its "encoder" and "search" views): {"recon_mse", "identifiability":
  {f"{row}/{split}": mean}, "per_factor": {f"{row}/ood": {factor: score}},
  "neighbour_distance": {split: mean}, "assignment", "pool"}; cached in
  `{workdir}/experiment/composition.json` with the provenance of the settings the latents
  depend on (`latent_sections`) and this diagnostic's own."""
  path = files.path(workdir, "experiment", CACHE)
  record = provenance.record(
      config, tuple(latent_sections) + ("experiment.composed_pool", "experiment.readout",
                                            "experiment.readout_steps"),
      trained_step=checkpoints.latest_step(workdir))
  return provenance.cached_json(path, record, lambda: _diagnose(
      config, workdir, bench, perceived, mesh))


def _diagnose(config, workdir, bench: perceived_lib.Benchmark, perceived: perceived_lib.Perceived,
              mesh) -> dict:
  ec, sc = config.experiment, config.search
  model, params, _ = trained.restore_trained(config, workdir, mesh)
  infer = jax.jit(trained.make_infer(model))
  pool = trained.first_examples(pipeline.load_split(config.data, "train"), ec.composed_pool)
  pool_z = trained.evaluate(infer, params, {"pool": pool}, mesh, sc.batch_size)["pool"][0]
  pool_truth = (pool["latents"], pool.get("factors"))
  readouts = ident_lib.fit_readouts(
      (perceived["encoder", "fit"]["z"], *bench.truth("fit")), readout=ec.readout,
      matching="global", num_categories=bench.num_categories, factor_names=bench.names,
      steps=ec.readout_steps, seed=config.seed)
  assignment = readouts.assignment
  perception = perception_lib.Perception.of(  # it searches from the recombined slots only
      config, model, mesh, lambda: perception_lib.prior_latents(config, infer, params, mesh),
      restarts=False)
  decode_mse = jax.jit(lambda p, x, z: models.per_example_mse(model.decode(p, z)["output"], x))
  rows, mse, distance = {}, {}, {}
  for split in ("id", "ood"):
    x = bench.x(split)
    z, d = recombine_slots(pool_z, *pool_truth, *bench.truth(split), assignment)
    distance[split] = float(d.mean())
    mse[f"recombined/{split}"] = parallel.call_in_batches(
        lambda x, z: decode_mse(params, x, z), {"x": x, "z": z}, mesh, sc.batch_size)
    searched = perception(params, x, z, restarts=False,
                          desc=f"search from recombined slots {split}")
    rows.update({f"encoder/{split}": perceived["encoder", split]["z"],
                 f"search/{split}": perceived["search", split]["z"],
                 f"recombined/{split}": z, f"recombined_search/{split}": searched["z"]})
    mse.update({f"encoder/{split}": perceived["encoder", split]["mse"],
                f"search/{split}": perceived["search", split]["mse"],
                f"recombined_search/{split}": searched["mse"]})
  scores = readouts.score({key: (z, *bench.truth(key.split("/")[1]))
                           for key, z in rows.items()})
  result = {"recon_mse": {key: float(np.mean(v)) for key, v in mse.items()},
            "identifiability": {key: s["score"] for key, s in scores.items()},
            "per_factor": {key: s["per_factor"] for key, s in scores.items()
                           if key.endswith("/ood")},
            "neighbour_distance": distance, "assignment": list(assignment),
            "pool": len(pool_z)}
  return result


def format_table(composition: dict) -> str:
  """Markdown: per run, recon MSE and identifiability of each row, ID and OOD."""
  return tables.markdown(
      ["run", "row", "ID recon MSE", "OOD recon MSE", "ID identifiability",
       "OOD identifiability"],
      [[run, row, f"{r['recon_mse'][f'{row}/id']:.5f}", f"{r['recon_mse'][f'{row}/ood']:.5f}",
        f"{r['identifiability'][f'{row}/id']:.3f}", f"{r['identifiability'][f'{row}/ood']:.3f}"]
       for run, r in composition.items() for row in ROWS])
