r"""Trains an encoder by generative replay through the trained decoder of a workdir.

  python -m compgen.replay --config=configs/sprites.py:smoke --workdir=/tmp/compgen/train
"""
import json

from compgen import cli
from compgen.inversion import replay

_CONFIG, _WORKDIR = cli.define_flags("The workdir of a `compgen.train` run.")

if __name__ == "__main__":
  cli.run(lambda: cli.report(json.dumps(
      replay.replay_and_evaluate(_CONFIG.value, _WORKDIR.value), indent=2)))
