r"""Trains a slot autoencoder on in-domain data (Eq. 4.2), resuming from the workdir.

  python -m compgen.train --config=configs/sprites.py:smoke --workdir=/tmp/compgen/train
"""
from compgen import cli
from compgen.training import train_lib

_CONFIG, _WORKDIR = cli.define_flags("Checkpoints, metrics and figures go here.")

if __name__ == "__main__":
  cli.run(lambda: train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value))
