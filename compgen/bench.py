r"""Benchmarks: search throughput (image-steps/s) of compiled batched search.

  python -m compgen.bench --decoders=alpha,transformer --batch_sizes=1,16,256 --out=bench.json

Times `Searcher` (jit + vmap + lax.scan of Adam steps) through freshly initialised default
sprites decoders (64x64 unless --resolution), after one compiling call, best of --repeats.
Writes JSON and prints a table.
"""
from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import optax
from absl import app
from absl import flags

from compgen import config_lib, models
from compgen.inversion import search

_DECODERS = flags.DEFINE_list("decoders", ["alpha"], "Decoders to time.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "16", "256"], "Batch sizes to time.")
_RESOLUTION = flags.DEFINE_integer("resolution", 64, "Image height and width.")
_STEPS = flags.DEFINE_integer("steps", 10, "Search steps per timed call.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls; the fastest counts.")
_OUT = flags.DEFINE_string("out", "bench.json", "Where the JSON results go.")


def search_throughput(decoder: str, batch_size: int, resolution: int, steps: int,
                      repeats: int) -> dict:
  """Image-steps/s of `Searcher` through a default `decoder` at one batch size."""
  cfg = config_lib.base_config("sprites").model
  cfg.decoder = decoder
  dec = models.make_decoder(cfg, (resolution, resolution, 3))
  z = jax.random.normal(jax.random.PRNGKey(0), (batch_size, 2, cfg.slot_dim))
  params = dec.init(jax.random.PRNGKey(1), z[:1])
  x = jax.random.uniform(jax.random.PRNGKey(2), (batch_size, resolution, resolution, 3))
  searcher = search.Searcher(lambda p, zz: dec.apply(p, zz)["output"],
                             optimizer=optax.adam(0.03), num_steps=steps)
  start = time.perf_counter()
  jax.block_until_ready(searcher(params, x, z).z)
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(searcher(params, x, z).z)
    times.append(time.perf_counter() - start)
  best = min(times)
  return {"decoder": decoder, "batch_size": batch_size, "resolution": resolution,
          "steps": steps, "seconds": best, "image_steps_per_s": batch_size * steps / best,
          "first_call_s": compile_s, "device": jax.devices()[0].device_kind}


def main(argv):
  del argv
  rows = [search_throughput(d, int(b), _RESOLUTION.value, _STEPS.value, _REPEATS.value)
          for d in _DECODERS.value for b in _BATCH_SIZES.value]
  with open(_OUT.value, "w") as f:
    json.dump({"search": rows, "jax": jax.__version__,
               "devices": [str(d) for d in jax.devices()]}, f, indent=2)
  print(f"{'decoder':<14}{'batch':>6}{'image-steps/s':>15}{'first call s':>14}")
  for r in rows:
    print(f"{r['decoder']:<14}{r['batch_size']:>6}{r['image_steps_per_s']:>15.1f}"
          f"{r['first_call_s']:>14.1f}")
  print(f"results: {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
