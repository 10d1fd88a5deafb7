"""Trains a config up to a step and stops there with a checkpoint (the schedule stays that of
`train.num_steps`), so that the health check can be read early in a long run.

  python results/health/train_until.py --config=configs/sprites.py:bench64 --workdir=W \
    --stop=4000 --set=seed=1 --set=train.eval_every=500 --set=train.checkpoint_every=500
"""
import argparse
import json

import compgen
from compgen.training import train_lib


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--stop", type=int, required=True, help="the step to stop at")
  parser.add_argument("--set", action="append", default=[], help="key=value overrides")
  args = parser.parse_args()
  overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
  train_lib.train_and_evaluate(compgen.get_config(args.config, overrides), args.workdir,
                               stop_at_step=args.stop)


if __name__ == "__main__":
  main()
