#!/usr/bin/env bash
# The wheels launch/gpu_bench.sh installs on a lent GPU machine, whose image (Python 3.12,
# jax, flax, optax, chex, orbax-checkpoint, absl-py, etils, protobuf, pyarrow, psutil, ...)
# lacks these: ml-collections, tensorflow-datasets and what tensorflow-datasets needs beyond
# the image (promise, which tensorflow-datasets lists, has no wheel and is left out: nothing
# the bench runs imports it). Downloaded here (PyPI) into .whl/ (git-ignored; name it in the device call's
# `carry`), about 10 MiB.
# Usage: bash launch/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/python.sh
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  ml-collections==1.1.0 tensorflow-datasets==4.9.10 array-record dm-tree immutabledict \
  simple-parsing tensorflow-metadata termcolor toml docstring-parser \
  googleapis-common-protos importlib-resources
du -sh .whl
