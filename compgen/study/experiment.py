"""The generative-vs-non-generative experiment: `run_experiment(config, workdir)`.

For each of `experiment.seeds` seeds s = `seed`, `seed` + 1, ... (from 0 by default) and each
model — the configured decoder and, unless it is already one, the `experiment.control` decoder
(the unconstrained negative control; only for the first `experiment.control_seeds` seeds when
that is ≥ 0) — in the workdir `{workdir}/seed{s}/{decoder}` it runs (reusing whatever is
already there):

  ID training (Eq. 4.2, `compgen.train`) → replay (Eq. 4.4, `compgen.replay`) → perception of
  ID and OOD test images by four methods:
    encoder         ĝ(x), the non-generative baseline (one forward pass)
    search          Eq. 4.3 from ĝ(x) (and `search.restarts` − 1 starts drawn from a
                    factorised prior fitted on the encoder's ID latents; the best
                    reconstruction is kept)
    replay_encoder  ĝ_replay(x)
    replay_search   Eq. 4.3 from ĝ_replay(x) (and as many prior starts)
  cached in `{model workdir}/experiment/latents.npz`, recomputed when the settings that made
  them (`LATENT_SECTIONS`, the trained and replay steps; `latents.provenance.json`) change.

Each method's latents are scored with `identifiability` (readouts fitted on ID latents only:
the encoder's on `experiment.fit_examples` training images when `experiment.readout_fit` is
"encoder", or each method's own when "own", which also searches those images) and by
reconstruction. Writes `{workdir}/results.json`, `results.md` (mean ± std over seeds) and
figures: `identifiability.png`, `reconstructions_ood.png`, `search_loss.png`. A population
run (`model.candidates` > 1) records which candidate it kept and each one's ID training error;
with `experiment.score_candidates` every candidate is also scored (`score_candidates`) and
`candidates.png` plots its OOD identifiability against its ID error. With
`experiment.composed_pool` > 0 each model also gets the recombined-ID-slots diagnostic
(`composition.diagnose`: does the decoder draw OOD scenes from recombined ID slots, and does
search from there end lower than search from the encoder), under `results["composition"]`.
With `experiment.supervised_steps` > 0 each seed also gets the supervised reference
(`supervised.train_and_score`: the encoder trained on ID pairs with their true latents),
under `results["supervised"]`.
"""
from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np

from compgen import config_lib
from compgen import files
from compgen import parallel
from compgen import plots
from compgen import provenance
from compgen import tables
from compgen.data import pipeline
from compgen.data import sprites as sprites_lib
from compgen.evaluation import identifiability as ident_lib
from compgen.evaluation import interaction as interaction_lib
from compgen.evaluation import segmentation
from compgen.inversion import perception as perception_lib
from compgen.inversion import replay as replay_lib
from compgen.study import composition as composition_lib
from compgen.study import perceived as perceived_lib
from compgen.study import supervised as supervised_lib
from compgen.training import candidates, checkpoints, train_lib, trained

METHODS = perceived_lib.METHODS
# What the cached latents depend on (with the trained and replay steps): a change recomputes them.
LATENT_SECTIONS = ("data", "model", "search", "replay", "seed", "experiment.fit_examples",
                   "experiment.eval_examples", "experiment.interaction_examples")
NUM_PICTURES = 8


def model_configs(config: ml_collections.ConfigDict,
                  seed: int) -> dict[str, ml_collections.ConfigDict]:
  """{decoder name: a copy of config with `seed`} for the configured decoder and the control
  (if different)."""
  decoders = [config.model.decoder]
  if config.experiment.control and config.experiment.control != config.model.decoder:
    decoders.append(config.experiment.control)
  out = {}
  for decoder in decoders:
    out[decoder] = ml_collections.ConfigDict(config.to_dict())
    out[decoder].update(seed=seed)
    out[decoder].model.decoder = decoder
  return out


def true_object_masks(config, arrays: dict) -> dict[str, np.ndarray] | None:
  """{"id", "ood": [N, K, H, W] bool, where each true object covers a pixel} of sprites
  (`sprites.object_masks` of the true latents), None for other data."""
  if config.data.dataset != "sprites":
    return None
  spec = pipeline.dataset_spec(config.data).generator
  return {s: np.asarray(sprites_lib.object_masks(spec, arrays[s]["latents"],
                                                  arrays[s]["factors"][..., 0]))
          for s in ("id", "ood")}


def attention_statistics(attention, object_masks) -> dict[str, float]:
  """Where an attention decoder's attention on the objects goes (`evaluation.interaction`):
  attention [N, L, heads, P, K (+ a background token)], object_masks [N, K, H, W] ->
  {"top_slot_share", "object_purity"}."""
  n, k = object_masks.shape[:2]
  on_slots, masks = np.asarray(attention)[..., :k], np.asarray(object_masks).reshape(n, k, -1)
  return {"top_slot_share": interaction_lib.top_slot_share(on_slots, masks.any(1)),
          "object_purity": interaction_lib.object_purity(on_slots, masks)}


def infer_latents(config, workdir: str, bench: perceived_lib.Benchmark, mesh,
                  overwrite: bool = False) -> perceived_lib.Perceived:
  """Every method's perception of every set by the trained + replayed model of `workdir`,
  and the decoder's interaction statistics (`perceived.Perceived`; cached), on sprites with
  `score_against_objects`."""
  path = files.path(workdir, "experiment", "latents.npz")
  record = provenance.record(
      config, LATENT_SECTIONS, trained_step=checkpoints.latest_step(workdir),
      replay_step=checkpoints.latest_step(files.path(workdir, "replay")))
  masks = true_object_masks(config, bench.arrays)
  if path.exists() and not overwrite:
    stale = provenance.stale(path, record)
    if not stale:
      out = perceived_lib.load(path)
      if masks is None or "j_ari" in out.interaction:
        return out
      print(f"{path} has no segmentation scores; adding them (the latents are kept).")
      model, params, _ = trained.restore_trained(config, workdir, mesh)
      score_against_objects(config, model, params, out, bench, masks)
      if jax.process_index() == 0:
        perceived_lib.save(path, out)
      return out
    print(f"{path} was made with other settings ({stale}); inferring the latents again.")
  model, params, _ = trained.restore_trained(config, workdir, mesh)
  replay_params = replay_lib.replay_encoder_params(config, workdir, params, mesh)
  infer = jax.jit(trained.make_infer(model))
  sc = config.search
  out = perceived_lib.Perceived()
  for name, p in (("encoder", params), ("replay_encoder", replay_params)):
    for s, (z, mse, _) in trained.evaluate(infer, p, bench.arrays, mesh, sc.batch_size).items():
      out.add(name, s, z=z, mse=mse)
  perception = perception_lib.Perception.of(
      config, model, mesh, lambda: perception_lib.prior_latents(config, infer, params, mesh))
  searched = ("fit", "id", "ood") if config.experiment.readout_fit == "own" else ("id", "ood")
  for method, start in (("search", "encoder"), ("replay_search", "replay_encoder")):
    for s in searched:  # from the start plus restarts − 1 prior samples; the best is kept
      res = perception(params, bench.x(s), out[start, s]["z"], desc=f"{method} {s}")
      out.add(method, s, z=res["z"], mse=res["mse"], trace_mean=res["trace"].mean(0),
              converged=res["converged"], finite=res["finite"])
  decode = jax.jit(lambda p, z: model.decode(p, z)["output"])
  for method in METHODS:
    out.add(method, "ood",
            pictures=np.asarray(decode(params, out[method, "ood"]["z"][:NUM_PICTURES])))
  z_int = out["encoder", "id"]["z"][:config.experiment.interaction_examples]
  out.interaction = {name: np.asarray(v) for name, v in interaction_lib.interaction_statistics(
      lambda z: decode(params, z), z_int).items()}
  if masks is not None:
    score_against_objects(config, model, params, out, bench, masks)
  if jax.process_index() == 0:
    perceived_lib.save(path, out)
  provenance.write_record(path, record)
  return out


def score_against_objects(config, model, params, out: perceived_lib.Perceived,
                          bench: perceived_lib.Benchmark, masks: dict) -> None:
  """Adds to `out` what the true objects' masks ([N, K, H, W] per set) score: at the first
  `experiment.interaction_examples` ID encoder latents JIS ("jis", on the true foreground),
  J-ARI ("j_ari", `evaluation.segmentation`) and, for attention decoders,
  `attention_statistics`; per method and image, the reconstruction error on the pixels two or
  more true objects cover ("mse_overlap") and on those one covers ("mse_single"), and the FG-ARI
  of the decoder's slot masks ("fg_ari", not for decoders without slots)."""
  decode = jax.jit(lambda p, z: model.decode(p, z)["output"])
  z_int = out["encoder", "id"]["z"][:config.experiment.interaction_examples]
  shares = interaction_lib.slot_shares(lambda z: decode(params, z), z_int)  # [n, H, W, K]
  id_masks = masks["id"][:len(z_int)]
  stats = {"jis": interaction_lib.jis_of_shares(shares, id_masks.any(1)),
           "j_ari": segmentation.mean_foreground_ari(segmentation.visible_objects(id_masks),
                                                     shares)}
  if "attention" in jax.eval_shape(model.decode, params, z_int):  # compiles nothing
    stats.update(attention_statistics(jax.jit(model.decode)(params, z_int)["attention"],
                                      id_masks))
  out.interaction.update({name: np.asarray(v) for name, v in stats.items()})

  @jax.jit
  def draw(p, z):  # -> (images [B, H, W, C], slot masks [B, H, W, K'] or None)
    decoded = model.decode(p, z)
    return decoded["output"], segmentation.slot_masks(decoded)
  batch = config.search.batch_size
  for method in METHODS:
    for s in ("id", "ood"):
      z = out[method, s]["z"]
      drawn = [draw(params, z[i:i + batch]) for i in range(0, len(z), batch)]
      x_hat = np.concatenate([np.asarray(d[0]) for d in drawn])
      x, covered = bench.x(s), masks[s].sum(1)
      out.add(method, s, mse_overlap=ident_lib.region_mse(x, x_hat, covered >= 2),
              mse_single=ident_lib.region_mse(x, x_hat, covered == 1))
      if drawn[0][1] is not None:
        out.add(method, s, fg_ari=segmentation.foreground_ari(
            segmentation.visible_objects(masks[s]), np.concatenate([np.asarray(d[1])
                                                                    for d in drawn])))


def score_candidates(config, workdir: str, bench: perceived_lib.Benchmark, mesh) -> dict:
  """Every candidate of a population run (`model.candidates` > 1) scored on its own, kept or
  not: identifiability of its encoder (ID, OOD) and of search from it (OOD; with the configured
  restarts from the prior of its own latents), readouts fitted on its encoder's latents of the
  fit images — the same protocol for every candidate (cheaper than the main table's when
  `readout_fit` is "own"). Returns {"encoder/id", "encoder/ood", "search/ood": [C] scores};
  cached in `{workdir}/experiment/candidate_scores.json` with the latents' provenance."""
  path = files.path(workdir, "experiment", "candidate_scores.json")
  record = provenance.record(
      config, LATENT_SECTIONS + ("experiment.readout", "experiment.readout_steps"),
      trained_step=checkpoints.latest_step(workdir))
  return provenance.cached_json(path, record,
                                lambda: _score_candidates(config, workdir, bench, mesh))


def _score_candidates(config, workdir, bench: perceived_lib.Benchmark, mesh) -> dict:
  model, stacked, _ = trained.restore_candidates(config, workdir, mesh)
  infer = jax.jit(trained.make_infer(model))
  sc, ec = config.search, config.experiment
  scores = {"encoder/id": [], "encoder/ood": [], "search/ood": []}
  perception = None
  for i in range(candidates.count(config)):
    params = candidates.take(stacked, i)
    z = {s: r[0] for s, r in
         trained.evaluate(infer, params, bench.arrays, mesh, sc.batch_size).items()}
    perception = perception_lib.Perception.of(  # each candidate's prior on its own latents
        config, model, mesh, lambda: perception_lib.prior_latents(config, infer, params, mesh),
        reuse=perception)
    searched = perception(params, bench.x("ood"), z["ood"], desc=f"candidate {i} search ood")
    result = ident_lib.identifiability(
        (z["fit"], *bench.truth("fit")),
        {"encoder/id": (z["id"], *bench.truth("id")),
         "encoder/ood": (z["ood"], *bench.truth("ood")),
         "search/ood": (searched["z"], *bench.truth("ood"))},
        readout=ec.readout, matching=ec.matching, num_categories=bench.num_categories,
        factor_names=bench.names, steps=ec.readout_steps, seed=config.seed)
    for key in scores:
      scores[key].append(float(result[key]["score"]))
  return scores


def score_methods(config, perceived: perceived_lib.Perceived, bench: perceived_lib.Benchmark,
                  seed) -> dict:
  """{method: {"id" | "ood": {"identifiability", "per_factor", "recon_mse", "recon_r2", ...}}}."""
  ec = config.experiment
  readouts, out = {}, {}
  for method in METHODS:
    fit_method = method if ec.readout_fit == "own" else "encoder"
    if fit_method not in readouts:  # with readout_fit "encoder", one fit serves all methods
      readouts[fit_method] = ident_lib.fit_readouts(
          (perceived[fit_method, "fit"]["z"], *bench.truth("fit")), readout=ec.readout,
          matching=ec.matching, num_categories=bench.num_categories, factor_names=bench.names,
          steps=ec.readout_steps, seed=seed)
    scores = readouts[fit_method].score(
        {s: (perceived[method, s]["z"], *bench.truth(s)) for s in ("id", "ood")})
    out[method] = {}
    for s in ("id", "ood"):
      view = perceived[method, s]
      out[method][s] = {
          "identifiability": scores[s]["score"], "per_factor": scores[s]["per_factor"],
          **ident_lib.reconstruction_metrics(bench.x(s), view["mse"])}
      if "converged" in view:
        out[method][s]["search_converged"] = float(view["converged"].mean())
      for name, per_image in (("recon_mse_overlap", view.get("mse_overlap")),
                              ("recon_mse_single", view.get("mse_single")),
                              ("fg_ari", view.get("fg_ari"))):
        if per_image is not None and np.isfinite(per_image).any():  # some image has one
          out[method][s][name] = float(np.nanmean(per_image))
  return out


def _aggregate(runs: list[dict]) -> dict:
  """[{"seed", "model", "method", "split", metrics...}] -> {row: {split: {metric: (mean, std)}}}."""
  table = {}
  for r in runs:
    cell = table.setdefault(f"{r['model']}: {r['method']}", {}).setdefault(r["split"], {})
    values = {"identifiability": r["identifiability"], "recon_mse": r["recon_mse"],
              "recon_r2": r["recon_r2"], **{f"factor/{k}": v for k, v in r["per_factor"].items()},
              **{k: r[k] for k in ("recon_mse_overlap", "recon_mse_single", "fg_ari")
                 if k in r}}
    for k, v in values.items():
      cell.setdefault(k, []).append(v)
  return {row: {s: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                    for k, v in cell.items()} for s, cell in splits.items()}
          for row, splits in table.items()}


def format_table(summary: dict, names: list[str]) -> str:
  """Markdown: identifiability and reconstruction per method, ID vs OOD; per-factor scores."""
  pm = lambda c: f"{c['mean']:.3f} ± {c['std']:.3f}" if c["n"] > 1 else f"{c['mean']:.3f}"
  pm5 = lambda c: f"{c['mean']:.5f} ± {c['std']:.5f}" if c["n"] > 1 else f"{c['mean']:.5f}"
  scores = tables.markdown(
      ["method", "ID identifiability", "OOD identifiability", "ID recon MSE", "OOD recon MSE",
       "ID recon R²", "OOD recon R²"],
      [[row, pm(s["id"]["identifiability"]), pm(s["ood"]["identifiability"]),
        pm5(s["id"]["recon_mse"]), pm5(s["ood"]["recon_mse"]), pm(s["id"]["recon_r2"]),
        pm(s["ood"]["recon_r2"])] for row, s in summary.items()])
  factors = tables.markdown(
      ["method", "split"] + list(names),
      [[row, split.upper()] + [f"{s[split][f'factor/{n}']['mean']:.3f}" for n in names]
       for row, s in summary.items() for split in ("id", "ood")])
  regions = [[row] + [pm5(s[split][f"recon_mse_{region}"]) for split in ("id", "ood")
                      for region in ("overlap", "single")]
             for row, s in summary.items()
             if all(f"recon_mse_{r}" in s[split] for r in ("overlap", "single")
                    for split in ("id", "ood"))]
  regions = ("\n\nReconstruction MSE on the pixels two or more true objects cover (overlap) "
             "and on those one covers (single):\n\n" + tables.markdown(
                 ["method", "ID overlap", "ID single", "OOD overlap", "OOD single"], regions)
             if regions else "")
  segments = [[row, pm(s["id"]["fg_ari"]), pm(s["ood"]["fg_ari"])]
              for row, s in summary.items() if "fg_ari" in s["id"] and "fg_ari" in s["ood"]]
  segments = ("\n\nFG-ARI of the decoder's slot masks at each method's latents (foreground "
              "pixels, the true object in front; `evaluation.segmentation`):\n\n"
              + tables.markdown(["method", "ID FG-ARI", "OOD FG-ARI"], segments)
              if segments else "")
  return (scores + "\n\nPer-factor scores (R² for continuous factors, accuracy for categorical "
          "ones):\n\n" + factors + regions + segments)


@files.holds_workdir("experiment")
def run_experiment(config: ml_collections.ConfigDict, workdir: str,
                   overwrite: bool = False) -> dict:
  """Runs the experiment of the module doc; returns the results dict (also results.json)."""
  config_lib.check_values(config)
  ec = config.experiment
  if ec.score_candidates and candidates.keep_step(config) > 0:
    raise ValueError(
        "experiment.score_candidates scores every candidate of a population trained to the "
        f"end, but model.keep_candidate_at={config.model.keep_candidate_at} keeps one at that "
        "step: set model.keep_candidate_at=0 to score them all.")
  start = time.perf_counter()
  mesh = parallel.make_mesh(config.mesh)
  bench = perceived_lib.load_benchmark(config)
  runs, stage_seconds, interaction, pictures, traces, populations = [], {}, {}, {}, {}, {}
  composition, supervised, training = {}, {}, {}
  num_control = ec.seeds if ec.control_seeds < 0 else min(ec.control_seeds, ec.seeds)
  seeds = list(range(config.seed, config.seed + ec.seeds))
  for seed in seeds:
    configs = model_configs(config, seed)
    if ec.supervised_steps > 0:
      supervised[f"seed{seed}"] = supervised_lib.train_and_score(
          configs[config.model.decoder], str(files.path(workdir, f"seed{seed}")), bench, mesh)
    for label, cfg in configs.items():
      if label != config.model.decoder and seed >= seeds[0] + num_control:
        continue
      wd = str(files.path(workdir, f"seed{seed}", label))
      timer = {}
      t = time.perf_counter()
      train_lib.train_and_evaluate(cfg, wd)
      timer["train"], t = time.perf_counter() - t, time.perf_counter()
      replay_lib.replay_and_evaluate(cfg, wd)
      timer["replay"], t = time.perf_counter() - t, time.perf_counter()
      perceived = infer_latents(cfg, wd, bench, mesh, overwrite)
      timer["inference"], t = time.perf_counter() - t, time.perf_counter()
      scores = score_methods(cfg, perceived, bench, seed)
      timer["scoring"] = time.perf_counter() - t
      stage_seconds[f"seed{seed}/{label}"] = timer
      training[f"seed{seed}/{label}"] = trained.training_record(wd)
      kept = files.path(wd, candidates.FILE)
      if kept.exists():
        populations[f"seed{seed}/{label}"] = files.read_json(kept)
        if ec.score_candidates:
          populations[f"seed{seed}/{label}"]["scores"] = score_candidates(cfg, wd, bench, mesh)
      if ec.composed_pool > 0:
        composition[f"seed{seed}/{label}"] = composition_lib.diagnose(
            cfg, wd, bench, perceived, mesh, LATENT_SECTIONS)
      for method, splits in scores.items():
        for split, metrics in splits.items():
          runs.append({"seed": seed, "model": label, "method": method, "split": split,
                       **metrics})
      interaction.setdefault(label, []).append(
          {name: float(v) for name, v in perceived.interaction.items()})
      if seed == seeds[0]:
        pictures.update({f"{label}: {m}": perceived[m, "ood"]["pictures"] for m in METHODS})
        traces.update({f"{label}: {m} ({s.upper()})": perceived[m, s]["trace_mean"]
                       for m in ("search", "replay_search") for s in ("id", "ood")})
  summary = _aggregate(runs)
  results = {"summary": summary, "runs": runs, "interaction": interaction,
             "seeds": seeds, "control_seeds": seeds[:num_control],
             "stage_seconds": stage_seconds, "candidates": populations, "training": training,
             "composition": composition, "supervised": supervised,
             "wall_seconds": time.perf_counter() - start, "factor_names": bench.names,
             "config": config.to_dict()}
  if jax.process_index() == 0:
    _write_outputs(results, bench.arrays, pictures, traces, workdir)
  return results


def _write_outputs(results, arrays, pictures, traces, workdir) -> None:
  out = files.path(workdir)
  files.write_json(out / "results.json", results, default=lambda o: np.asarray(o).tolist())
  table = format_table(results["summary"], results["factor_names"])
  interaction = "\n".join(
      f"- {label}: Jacobian overlap {np.mean([r['jacobian_overlap'] for r in rows]):.3f}, "
      f"cross-slot Hessian share {np.mean([r['hessian_cross'] for r in rows]):.3f}"
      + (f", JIS {np.mean([r['jis'] for r in rows]):.3f}"
         if all("jis" in r for r in rows) else "")
      + (f", J-ARI {np.mean([r['j_ari'] for r in rows]):.3f}"
         if all("j_ari" in r for r in rows) else "")
      + (f", top slot's share of the objects' attention "
         f"{np.mean([r['top_slot_share'] for r in rows]):.3f}, object purity of the attention "
         f"{np.mean([r['object_purity'] for r in rows]):.3f}"
         if all("object_purity" in r for r in rows) else "")
      for label, rows in results["interaction"].items())
  control = ("" if results["control_seeds"] == results["seeds"]
             else f", control seeds {results['control_seeds']}")
  kept = "".join(
      f"- {run}: candidate {r['selected']} of {len(r['train_recon_mse'])} at step {r['step']} "
      f"(by {r.get('score', 'train_recon_mse')}), ID train recon MSE "
      + ", ".join(f"{m:.2g}" for m in r["train_recon_mse"])
      + (", slot purity " + ", ".join(f"{m:.2f}" for m in r["slot_purity"])
         if "slot_purity" in r else "") + "\n"
      for run, r in results["candidates"].items())
  trained = "".join(
      f"- {run}: {r['step']} steps" + (" (converged: the stopping rule)" if r["stopped_early"]
                                      else "")
      + ("" if r["slot_purity"] is None else
         f", slot purity {r['slot_purity']:.2f}: "
         + ("objects" if r["healthy"] else "NOT objects (fails the health check)")) + "\n"
      for run, r in results["training"].items())
  files.write_text(out / "results.md", (
      f"# Experiment results (seeds {results['seeds']}{control}, "
      f"{results['wall_seconds'] / 60:.1f} min)\n\n{table}\n\n"
      f"Decoder interaction statistics (at ID encoder latents):\n{interaction}\n"
      f"\nTraining and the health check (ID images only, `compgen.training.health`):\n"
      f"{trained}"
      + (f"\nKept candidates (`model.candidates`):\n{kept}" if kept else "")
      + (f"\nRecombined ID slots (`experiment.composed_pool`, a diagnostic that reads the "
         f"test scenes' true latents; readouts fitted on the encoder's ID latents):\n\n"
         f"{composition_lib.format_table(results['composition'])}\n"
         if results["composition"] else "")
      + (f"\nSupervised references (`experiment.supervised_steps`: trained on ID pairs with "
         f"their true latents; references, not methods):\n\n"
         f"{supervised_lib.format_table(results['supervised'], results['factor_names'])}\n"
         if results["supervised"] else "")))
  summary = results["summary"]
  plots.results_bars({row: {s: (c["identifiability"]["mean"], c["identifiability"]["std"])
                            for s, c in splits.items()} for row, splits in summary.items()},
                     out / "identifiability.png")
  if "image" in arrays["ood"]:
    plots.labelled_rows({"OOD input": arrays["ood"]["image"][:NUM_PICTURES], **pictures},
                        out / "reconstructions_ood.png")
  plots.loss_curves(traces, out / "search_loss.png")
  scored = {run: r for run, r in results["candidates"].items() if "scores" in r}
  if scored:
    plots.candidate_fits(scored, out / "candidates.png")
