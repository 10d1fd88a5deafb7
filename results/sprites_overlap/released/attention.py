"""Where a Transformer VAE's pixels look, along training. At the run's init (step 0, its own
key) and every checkpoint of a workdir, on the same ID training images: the health check's
numbers (`compgen.training.health.scores_fn`: slot purity, JIS, the top slot's share of the
objects' attention, its object purity and the background token's share), how alike the two
slots are (`slot_cosine`: mean cosine of the encoder's μ_0 and μ_1; `pixel_asymmetry`: mean
over pixels, heads and layers of |a_0 − a_1| / (a_0 + a_1), 0 when every pixel attends to both
slots alike), joined with the run's logged held-out ID error and interaction penalty ->
`trajectory.json` and `trajectory.png`; for each step of --steps, the images, their
reconstructions and each slot's share of them (attention averaged over layers and heads) ->
`attention_step{S}.png`.

  python results/sprites_overlap/released/attention.py --workdir=W \
    --config=configs/sprites.py:long16,transformer_vae_released --steps=2500,15000,30000 \
    --out=results/sprites_overlap/released/diagonal [--set=KEY=VALUE ...]
"""
import argparse
import json
import os

import jax
import numpy as np

import compgen
from compgen import files, models, parallel, plots
from compgen.data import pipeline
from compgen.training import checkpoints, health, loop, trained

HEALTH = ("slot_purity", "jis", "top_slot_share", "attention_purity", "background_share",
          "slot_cosine", "pixel_asymmetry")
LOGGED = ("test_id/recon_mse", "test_id/matched_r2", "interaction")


def run_parser(doc: str, examples: int) -> argparse.ArgumentParser:
  """The flags that name a run: --workdir, --config, --set KEY=VALUE (its config overrides)
  and --examples (how many ID training images)."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", required=True)
  parser.add_argument("--examples", type=int, default=examples)
  parser.add_argument("--set", action="append", default=[], help="KEY=VALUE (the run's flags)")
  return parser


def _value(text: str):
  """A flag's value: JSON (numbers, true/false, lists) or else the string itself."""
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def run_config(args):
  """(the run's config, its overrides {key: value}, its first --examples ID training images)."""
  overrides = {k: _value(v) for k, v in (a.split("=", 1) for a in args.set)}
  config = compgen.get_config(args.config, overrides or None)
  return config, overrides, trained.first_examples(pipeline.load_split(config.data, "train"),
                                                   args.examples)


def checkpoint_params(config, workdir: str, example: dict):
  """The workdir's model, its checkpointer and `restore(step) -> params` of any kept step."""
  model = trained.build_model(config, example)
  x = models.model_input(example)
  shape = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))
  mesh = parallel.make_mesh(config.mesh)
  abstract = checkpoints.abstract_state(shape, parallel.state_sharding(shape, mesh, 0))
  ckpt = checkpoints.Checkpointer(workdir, config.train.checkpoint_every, create=False)
  return model, ckpt, lambda step: ckpt.restore_params(step, abstract)[0]


def _symmetry(z, decoded) -> dict:
  """slot_cosine and pixel_asymmetry above, of z [N, 2, m] and attention [N, L, H, P, ≥ 2]."""
  mu = np.asarray(z) / np.linalg.norm(np.asarray(z), axis=-1, keepdims=True)
  a = np.asarray(decoded["attention"])
  a0, a1 = a[..., 0], a[..., 1]
  return {"slot_cosine": float((mu[:, 0] * mu[:, 1]).sum(-1).mean()),
          "pixel_asymmetry": float((np.abs(a0 - a1) / (a0 + a1 + 1e-12)).mean())}


def main():
  parser = run_parser(__doc__, examples=64)
  parser.add_argument("--steps", default="", help="comma-separated checkpoint steps to draw")
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  config, overrides, ex = run_config(args)
  x = models.model_input(ex)
  k = ex["latents"].shape[1]
  model, ckpt, restore = checkpoint_params(config, args.workdir, ex)
  kept = sorted(ckpt.manager.all_steps())
  draw = {int(s) for s in args.steps.split(",") if s}
  if draw - {0, *kept}:
    raise SystemExit(f"No checkpoint at steps {sorted(draw - {0, *kept})} in {args.workdir} "
                     f"(kept: {kept}).")
  encode = jax.jit(lambda p: model.encode(p, x)["mean"])
  decode = jax.jit(model.decode)
  scores = health.scores_fn(model.decode, x, k)
  logged = {}
  for row in loop.MetricWriter(args.workdir).rows():  # the run's held-out error and penalty
    logged.setdefault(row["step"], {}).update({key: row[key] for key in LOGGED if key in row})
  rows = []
  init = model.init(jax.random.fold_in(jax.random.PRNGKey(config.seed), 0), x[:1])
  for step in [0] + kept:
    params = init if step == 0 else restore(step)
    z = encode(params)
    decoded = jax.tree.map(np.asarray, decode(params, z))
    rows.append({"step": int(step), **scores(params, z), **_symmetry(z, decoded),
                 **logged.get(step, {})})
    print(json.dumps(rows[-1]), flush=True)
    if step in draw:
      plots.slot_decomposition(np.asarray(x), decoded,
                               os.path.join(args.out, f"attention_step{step}.png"), n=8,
                               num_slots=k)
  files.write_json(files.path(os.path.join(args.out, "trajectory.json")),
                   {"workdir": args.workdir, "config": args.config, "images": args.examples,
                    "overrides": overrides, "rows": rows})
  plots.metrics_along_training(rows, HEALTH, ("test_id/recon_mse", "interaction"),
                               os.path.join(args.out, "trajectory.png"))


if __name__ == "__main__":
  main()
