"""The search job: invert a trained decoder on test_id and test_ood, save latents and errors.

`search_and_save(config, workdir)` restores the model trained in `workdir`, initialises z from
the encoder (or the replay encoder, a prior, zeros; plus restarts from prior samples),
perceives each split batch by batch (`perception.Perception`: the same draws as perceiving it
at once) and writes `{workdir}/search/{split}.npz` with
  z, z0 [N, K, m]; mse, mse0 [N] (after / before search); converged, converged_step [N];
  finite [N] (False: the objective went NaN/Inf, also printed); latents (true) [N, K, m];
  seconds (the split's search time)
and `{workdir}/search/summary.json`, rewritten after each split. A split already written is
skipped unless `overwrite`, or unless it was made with other settings (its
`{split}.provenance.json` differs). SIGTERM or Ctrl-C stops the job between batches with the
finished splits saved; the same command then searches the rest.
"""
from __future__ import annotations

import itertools
import time

import jax
import ml_collections
import numpy as np
import tqdm

from compgen import config_checks
from compgen import errors
from compgen import files
from compgen import models
from compgen import parallel
from compgen import provenance
from compgen import tables
from compgen.data import pipeline
from compgen.evaluation import probe
from compgen.inversion import perception as perception_lib
from compgen.inversion import replay as replay_lib
from compgen.training import checkpoints, loop, trained

# What a split's search results depend on (with the trained step, and the replay section and
# step for search.init="replay_encoder"): a change makes the job search that split again.
SEARCH_SECTIONS = ("data", "model", "search", "train.eval_examples", "replay.prior_examples",
                   "seed")


@files.holds_workdir("search")
def search_and_save(config: ml_collections.ConfigDict, workdir: str,
                    overwrite: bool = False) -> dict:
  """Runs the search job (module doc); returns the summary {split: metrics}."""
  sc = config_checks.check_values(config).search
  mesh = parallel.make_mesh(config.mesh)
  model, params, trained_step = trained.restore_trained(config, workdir, mesh)
  init_params = (replay_lib.replay_encoder_params(config, workdir, params, mesh)
                 if sc.init == "replay_encoder" else params)
  replay = sc.init == "replay_encoder"
  record = provenance.record(
      config, SEARCH_SECTIONS + (("replay",) if replay else ()), trained_step=trained_step,
      **({"replay_step": checkpoints.latest_step(files.path(workdir, "replay"))} if replay
         else {}))
  out_dir = files.path(workdir, "search")
  infer = jax.jit(trained.make_infer(model))

  fit = trained.first_examples(pipeline.load_split(config.data, "train"),
                                 config.train.eval_examples)
  id_latents = trained.evaluate(infer, params, {"train": fit}, mesh,
                                  config.train.batch_size)["train"][0]
  perception = perception_lib.Perception.of(
      config, model, mesh, lambda: perception_lib.prior_latents(config, infer, params, mesh))
  summary_path = out_dir / "summary.json"
  summary = files.read_json(summary_path) if summary_path.exists() else {}

  def search_split(split: str, stop_requested) -> dict:
    """The arrays of `{split}.npz` plus `seconds`, searched batch by batch; a stop signal
    ends the job between batches (`errors.Preempted`, naming the splits saved)."""
    source = pipeline.load_split(config.data, split)
    total = len(source) if sc.num_examples < 0 else min(sc.num_examples, len(source))
    results = {k: [] for k in ("z", "z0", "mse", "mse0", "converged", "converged_step",
                               "finite")}
    start = time.perf_counter()
    for lo in tqdm.trange(0, total, sc.batch_size, desc=f"search {split}",
                          disable=jax.process_index() != 0):
      if stop_requested(next(batches_started)):
        raise errors.Preempted(
            f"search preempted in {split} (its batches so far are not kept); splits saved in "
            f"{out_dir}: {', '.join(summary) or 'none'}. Run the same command again to search "
            "the rest.")
      batch = pipeline.to_model_inputs(source[np.arange(lo, min(lo + sc.batch_size, total))])
      x = models.model_input(batch)
      z_enc, mse0 = parallel.call_padded(lambda x: infer(init_params, x)[:2], {"x": x}, mesh)
      z0 = (perception.prior_starts(len(x), lo) if sc.init == "prior" else
            np.zeros_like(z_enc) if sc.init == "zeros" else z_enc)
      res = perception(params, x, z0, first_index=lo, report=False)
      res["z0"], res["mse0"] = z0, mse0
      for key in results:
        results[key].append(res[key])
    arrays = {k: np.concatenate(v) for k, v in results.items()}
    arrays["latents"] = source[np.arange(total)]["latents"]
    arrays["seconds"] = np.float64(time.perf_counter() - start)
    perception_lib.report_diverged(arrays["finite"], f"search {split}")
    return arrays

  def save_summary():
    if jax.process_index() == 0:
      files.write_json(summary_path, summary)

  batches_started = itertools.count()  # across splits: every process counts the same
  with loop.preemption_notice() as stop_requested:
    for split in sc.splits:
      path = out_dir / f"{split}.npz"
      if path.exists() and not overwrite:
        stale = provenance.stale(path, record)
        if not stale and split not in summary:  # stopped between the two writes below
          saved = files.load_npz(path)
          stale = "" if "seconds" in saved else "no search time recorded"
          if not stale:
            summary[split] = split_summary(saved, sc, id_latents, fit["latents"])
            save_summary()
        if not stale:
          print(f"{path} exists; skipping {split} (pass --overwrite to redo it).")
          continue
        print(f"{path} was made with other settings ({stale}); searching {split} again.")
      arrays = search_split(split, stop_requested)
      if jax.process_index() == 0:
        files.save_npz(path, **arrays)
      provenance.write_record(path, record)
      summary[split] = split_summary(arrays, sc, id_latents, fit["latents"])
      save_summary()
  return summary


def split_summary(arrays: dict, sc, id_latents, id_true) -> dict:
  """One split's entry of summary.json from its `.npz` arrays; the probe is fitted on the
  encoder's ID latents `id_latents` against their true latents `id_true`."""
  seconds = float(arrays["seconds"])
  return {
      "num_images": int(len(arrays["z"])), "seconds": seconds,
      "image_steps_per_s": len(arrays["z"]) * sc.restarts * sc.num_steps / seconds,
      "mse_init": float(arrays["mse0"].mean()), "mse_search": float(arrays["mse"].mean()),
      "converged": float(arrays["converged"].mean()),
      "diverged": int((~arrays["finite"]).sum()),
      "matched_r2_init": probe.matched_r2(id_latents, id_true, arrays["z0"],
                                          arrays["latents"])["mean"],
      "matched_r2_search": probe.matched_r2(id_latents, id_true, arrays["z"],
                                            arrays["latents"])["mean"]}


def format_summary(summary: dict) -> str:
  return tables.aligned(
      ["split", "MSE init", "MSE search", "converged", "R² init", "R² search"],
      [[split, f"{s['mse_init']:.5f}", f"{s['mse_search']:.5f}", f"{s['converged']:.1%}",
        f"{s['matched_r2_init']:.3f}", f"{s['matched_r2_search']:.3f}"]
       for split, s in summary.items()])
