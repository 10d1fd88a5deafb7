"""Where a Transformer VAE's pixels look, along training. For every checkpoint of a workdir,
the health check's numbers on the same ID training images (`compgen.training.health.
scores_fn`: slot purity, JIS, the top slot's share of the objects' attention, its object
purity and the background token's share) joined with the run's logged held-out ID error and
interaction penalty -> `trajectory.json` and `trajectory.png`; for each step of --steps, the
images, their reconstructions and each slot's share of them (attention averaged over layers
and heads) -> `attention_step{S}.png`.

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
from compgen import files, models, parallel, plots
from compgen.data import pipeline
from compgen.training import checkpoints, health, trained

HEALTH = ("slot_purity", "jis", "top_slot_share", "attention_purity", "background_share")
LOGGED = ("test_id/recon_mse", "test_id/matched_r2", "interaction")


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
  k = ex["latents"].shape[1]
  model = trained.build_model(config, ex)
  decode = jax.jit(lambda p: model.decode(p, model.encode(p, x)["mean"]))
  scores = health.scores_fn(model.decode, x, k)
  shape = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))
  mesh = parallel.make_mesh(config.mesh)
  abstract = checkpoints.abstract_state(shape, parallel.state_sharding(shape, mesh, 0))
  ckpt = checkpoints.Checkpointer(args.workdir, config.train.checkpoint_every, create=False)
  logged = {}
  with open(os.path.join(args.workdir, "metrics.jsonl")) as f:
    metric_rows = [json.loads(line) for line in f if line.strip()]
  for row in metric_rows:
    logged.setdefault(row["step"], {}).update({key: row[key] for key in LOGGED if key in row})
  draw = {int(s) for s in args.steps.split(",") if s}
  rows = []
  for step in sorted(ckpt.manager.all_steps()):
    params, _ = ckpt.restore_params(step, abstract)
    z = model.encode(params, x)["mean"]
    rows.append({"step": int(step), **scores(params, z), **logged.get(step, {})})
    print(json.dumps(rows[-1]), flush=True)
    if step in draw:
      decoded = jax.tree.map(np.asarray, decode(params))
      plots.slot_decomposition(np.asarray(x), decoded,
                               os.path.join(args.out, f"attention_step{step}.png"), n=8,
                               num_slots=k)
  missing = draw - {r["step"] for r in rows}
  if missing:
    raise SystemExit(f"No checkpoint at steps {sorted(missing)} in {args.workdir}.")
  files.write_json(files.path(os.path.join(args.out, "trajectory.json")),
                   {"workdir": args.workdir, "config": args.config, "images": args.examples,
                    "rows": rows})
  plots.metrics_along_training(rows, HEALTH, ("test_id/recon_mse", "interaction"),
                               os.path.join(args.out, "trajectory.png"))


if __name__ == "__main__":
  main()
