"""The data report: sample grids, a picture of the split, and statistics of every split.

`write_report(config, workdir)` is what `python -m compgen.data` runs.
"""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from compgen import files
from compgen import plots
from compgen import tables
from compgen.data import pipeline
from compgen.data import scenes
from compgen.data import splits as splits_lib
from compgen.data import sprites as sprites_lib


def split_statistics(arrays: dict[str, np.ndarray],
                     spec: scenes.DatasetSpec | None = None) -> dict:
  """Summary of one split's arrays: sizes, latent ranges, distance to the diagonal (measured
  as `spec`'s split band, joint without a spec), ..."""
  lat = arrays["latents"]
  band = spec.split.band if spec is not None else "joint"
  dist = (splits_lib.distance_to_diagonal(lat, band) if lat.shape[1] > 1
          else np.zeros(len(lat)))
  stats = {
      "num_examples": int(len(lat)),
      "latent_shape": list(lat.shape[1:]),
      "latent_min": lat.min(axis=0).round(4).tolist() if len(lat) else [],
      "latent_max": lat.max(axis=0).round(4).tolist() if len(lat) else [],
      "diagonal_distance": {"min": float(dist.min()), "mean": float(dist.mean()),
                            "max": float(dist.max())} if len(lat) else {},
  }
  if "image" in arrays:
    stats["image_shape"] = list(arrays["image"].shape[1:])
    stats["pixel_mean"] = float(np.mean(arrays["image"]) / (255 if arrays["image"].dtype == np.uint8 else 1))
  if "x" in arrays:
    stats["x_dim"] = int(arrays["x"].shape[1])
    stats["x_std"] = float(arrays["x"].std())
  if "visibility" in arrays:
    stats["min_visibility_mean"] = float(arrays["visibility"].min(axis=1).mean())
    stats["overlap_rate"] = float(arrays["overlap"].mean())
  if "factors" in arrays and arrays["factors"].shape[-1]:
    combos, counts = np.unique(arrays["factors"][..., 0], axis=0, return_counts=True)
    stats["factor0_combinations"] = {",".join(map(str, c)): int(n) for c, n in zip(combos, counts)}
  if spec is not None:
    inside = splits_lib.in_domain(spec.split, lat, arrays.get("factors"), spec.num_categories)
    stats["fraction_in_id_region"] = float(inside.mean()) if len(lat) else 0.0
  return stats


def render_throughput(spec: sprites_lib.SpritesSpec, batch: int = 1024, repeats: int = 5) -> dict:
  """Images/s of the jitted renderer on a batch of random scenes (best of `repeats`)."""
  render = sprites_lib.make_renderer(spec)
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.uniform(size=(batch, spec.num_slots, spec.latent_dim)), jnp.float32)
  shape = jnp.asarray(rng.integers(0, len(spec.shapes), (batch, spec.num_slots)), jnp.int32)
  start = time.perf_counter()
  jax.block_until_ready(render(z, shape))
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(render(z, shape))
    times.append(time.perf_counter() - start)
  return {"batch": batch, "resolution": spec.resolution, "seconds": min(times),
          "images_per_s": batch / min(times), "first_call_s": compile_s,
          "device": str(jax.devices()[0].platform)}


def _spec_of(data: ml_collections.ConfigDict) -> scenes.DatasetSpec | None:
  if data.dataset in ("npz", "pug"):
    return None
  if data.source == "tfds":
    from compgen.data import tfds_builders  # pylint: disable=g-import-not-at-top
    return tfds_builders.builder_spec(data.dataset, data.tfds_config)
  return pipeline.dataset_spec(data)


def format_table(stats: dict) -> str:
  """A short human table of the per-split statistics."""
  rows = []
  for split in scenes.SPLITS:
    s = stats["splits"][split]
    d = s["diagonal_distance"]
    rows.append((split, str(s["num_examples"]),
                 f"{d['min']:.3f} / {d['mean']:.3f} / {d['max']:.3f}" if d else "-",
                 f"{s['fraction_in_id_region']:.1%}" if "fraction_in_id_region" in s else "-",
                 f"{s['overlap_rate']:.1%}" if "overlap_rate" in s else "-",
                 f"{s['min_visibility_mean']:.3f}" if "min_visibility_mean" in s else "-"))
  return tables.aligned(
      ("split", "n", "dist-to-diag min/mean/max", "in ID region", "overlap", "min vis"), rows)


@files.holds_workdir("data")
def write_report(config: ml_collections.ConfigDict, workdir: str, num_samples: int = 32) -> dict:
  """Loads every split, writes sample grids, the split picture and stats.json to `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  files.write_text(files.path(workdir, "config.json"), config.to_json_best_effort(indent=2))
  data = config.data
  spec = _spec_of(data)
  start = time.perf_counter()
  sources = pipeline.load_splits(data)
  load_s = time.perf_counter() - start
  arrays = {split: src[np.arange(len(src))] for split, src in sources.items()}
  stats = {"dataset": data.dataset, "load_seconds": load_s,
           "splits": {s: split_statistics(a, spec) for s, a in arrays.items()}, "files": {}}
  for split, name in (("train", "id"), ("test_ood", "ood")):
    if "image" in arrays[split] and len(arrays[split]["image"]):
      path = os.path.join(workdir, f"{name}_samples.png")
      plots.image_grid(arrays[split]["image"][:num_samples], path,
                       f"{data.dataset} {split} ({'in-domain' if name == 'id' else 'out-of-domain'})")
      stats["files"][f"{name}_samples"] = path
  if arrays["train"]["latents"].shape[1] >= 2:
    names = (sprites_lib.LATENT_NAMES if data.dataset == "sprites" else
             tuple(pipeline.npz_names(data.npz_path)[0] or ()) if data.dataset == "npz" else ())
    path = os.path.join(workdir, "latent_split.png")
    plots.latent_split(arrays["train"]["latents"], arrays["test_ood"]["latents"], path, names)
    stats["files"]["latent_split"] = path
  if spec is not None and spec.kind == "sprites":
    stats["render_throughput"] = render_throughput(spec.generator)
  with open(os.path.join(workdir, "stats.json"), "w") as f:
    json.dump(stats, f, indent=2)
  return stats
