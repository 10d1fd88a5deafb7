"""The health check along training: every checkpoint of a population run (`model.candidates`
C, trained to the end), each candidate's ID training error, its slot purity on the images' own
objects (`compgen.training.health`, no labels) and the same purity on the renderer's true
object masks (labels, the reference it must match).

  python results/health/trajectories.py --workdir=W --out=results/health/seed0.json \
    --config=configs/sprites.py:quickstart --set=seed=0 --set=model.candidates=4 ...
"""
import argparse
import json

import jax
import numpy as np

import compgen
from compgen import models, parallel
from compgen.data import pipeline
from compgen.data import sprites as sprites_lib
from compgen.evaluation import interaction
from compgen.training import candidates, checkpoints, health, trained


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--config", required=True)
  parser.add_argument("--set", action="append", default=[], help="key=value overrides")
  parser.add_argument("--examples", type=int, default=64)
  args = parser.parse_args()
  overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
  config = compgen.get_config(args.config, overrides)
  num = candidates.count(config)
  ex = trained.first_examples(pipeline.load_split(config.data, "train"), args.examples)
  x = models.model_input(ex)
  k = ex["latents"].shape[1]
  true_masks = np.asarray(sprites_lib.object_masks(
      pipeline.dataset_spec(config.data).generator, ex["latents"], ex["factors"][..., 0]))
  found, scored = health.image_objects(x, k)
  model = trained.build_model(config, ex)
  shares = jax.jit(lambda p: interaction.slot_shares(lambda z: model.decode(p, z)["output"],
                                                model.encode(p, x[scored])["mean"]))
  mse = jax.jit(lambda p: models.per_example_mse(
      model.decode(p, model.encode(p, x)["mean"])["output"], x).mean())
  shape = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))
  if num > 1:
    shape = jax.tree.map(lambda s: jax.ShapeDtypeStruct((num,) + s.shape, s.dtype), shape)
  mesh = parallel.make_mesh(config.mesh)
  abstract = checkpoints.abstract_state(shape, parallel.state_sharding(shape, mesh, 0))
  ckpt = checkpoints.Checkpointer(args.workdir, 1000, create=False)
  rows = []
  for step in sorted(ckpt.manager.all_steps()):
    params, _ = ckpt.restore_params(step, abstract)
    for c in range(num):
      p = candidates.take(params, c) if num > 1 else params
      s = np.asarray(shares(p))
      rows.append({"step": int(step), "candidate": c, "train_recon_mse": float(mse(p)),
                   "slot_purity": health.purity_from_shares(s, found[scored]),
                   "true_mask_purity": health.purity_from_shares(s, true_masks[scored])})
      print(json.dumps(rows[-1]), flush=True)
  with open(args.out, "w") as f:
    json.dump({"config": args.config, "overrides": overrides, "images": int(scored.sum()),
               "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
