r"""Sprites: K=2 soft-edged objects (x, y, scale, hue, shape), diagonal ID/OOD split.

Command (renders ID and OOD sample grids and prints the dataset statistics):
  python -m compgen.data --config=configs/sprites.py --workdir=/tmp/compgen/sprites

Variants (`--config=configs/sprites.py:VARIANT[,VARIANT]`):
  smoke      32x32, 512/256/256 examples: the README quickstart and the tests.
  held_out   held-out shape combinations instead of the diagonal split.
  iid        no split (sanity checks).
  tfds       read the TFDS builder `compgen_sprites/diagonal_small` (built on first use).

Measured on a 2-core CPU (jax 0.10.2): the default (64x64, 10k/1k/1k) renders in about
3 s (plus compilation), the smoke variant in under 1 s.
"""
from compgen import config_lib


def get_config(arg=None):
  variants = config_lib.parse_variants(arg, ("smoke", "held_out", "iid", "tfds"))
  config = config_lib.base_config("sprites")
  data = config.data
  if "held_out" in variants:
    data.split.scheme = "held_out_combinations"
    data.tfds_config = "held_out_combinations_small"
  if "iid" in variants:
    data.split.scheme = "iid"
    data.tfds_config = "iid_small"
  if "tfds" in variants:
    data.source = "tfds"
  if "smoke" in variants:
    data.sprites.resolution = 32
    data.num_train, data.num_test_id, data.num_test_ood = 512, 256, 256
    data.tfds_config = data.tfds_config.replace("_small", "_tiny")
  return config
