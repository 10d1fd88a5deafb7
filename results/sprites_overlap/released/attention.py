"""Where a Transformer VAE's pixels look, along training: for each checkpoint step given, the
same ID training images, their reconstructions and each slot's share of them (attention
averaged over layers and heads, the background key last), one figure per step; and for every
checkpoint the health check's numbers (`compgen.training.health.scores_fn`) as JSON lines.

  python results/sprites_overlap/released/attention.py --workdir=W \
    --config=configs/sprites.py:long16,transformer_vae_released --steps=2500,15000,30000 \
    --out=results/sprites_overlap/released
"""
import argparse
import json
import os

import jax
import numpy as np

import compgen
from compgen import models, parallel, plots
from compgen.data import pipeline
from compgen.training import checkpoints, health, trained


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", required=True)
  parser.add_argument("--steps", default="", help="comma-separated checkpoint steps to draw")
  parser.add_argument("--out", required=True)
  parser.add_argument("--examples", type=int, default=64)
  args = parser.parse_args()
  config = compgen.get_config(args.config)
  ex = trained.first_examples(pipeline.load_split(config.data, "train"), args.examples)
  x = models.model_input(ex)
  model = trained.build_model(config, ex)
  decode = jax.jit(lambda p: model.decode(p, model.encode(p, x)["mean"]))
  scores = health.scores_fn(model.decode, x, ex["latents"].shape[1])
  shape = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))
  mesh = parallel.make_mesh(config.mesh)
  abstract = checkpoints.abstract_state(shape, parallel.state_sharding(shape, mesh, 0))
  ckpt = checkpoints.Checkpointer(args.workdir, config.train.checkpoint_every, create=False)
  draw = {int(s) for s in args.steps.split(",") if s}
  rows = []
  for step in sorted(ckpt.manager.all_steps()):
    params, _ = ckpt.restore_params(step, abstract)
    z = model.encode(params, x)["mean"]
    rows.append({"step": int(step), **scores(params, z)})
    print(json.dumps(rows[-1]), flush=True)
    if step in draw:
      decoded = jax.tree.map(np.asarray, decode(params))
      plots.slot_decomposition(np.asarray(x), decoded,
                               os.path.join(args.out, f"attention_step{step}.png"), n=8,
                               num_slots=ex["latents"].shape[1])
  missing = draw - {r["step"] for r in rows}
  if missing:
    raise SystemExit(f"No checkpoint at steps {sorted(missing)} in {args.workdir}.")


if __name__ == "__main__":
  main()
