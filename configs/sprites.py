r"""Sprites: K=2 soft-edged objects (x, y, scale, hue, shape), diagonal ID/OOD split.

Commands:
  python -m compgen.data  --config=configs/sprites.py --workdir=/tmp/compgen/sprites_data
  python -m compgen.train --config=configs/sprites.py:alpha --workdir=/tmp/compgen/sprites_alpha

Variants (`--config=configs/sprites.py:VARIANT[,VARIANT]`):
  data:    held_out (held-out shape combinations), iid (no split), tfds (read the TFDS
           builder `compgen_sprites/<scheme>_small`, built on first use)
  decoder: alpha (default), additive, transformer (with the interaction penalty), unconstrained
  encoder: transformer_encoder (default: cnn);  vae: β-VAE instead of an autoencoder
  size:    smoke (16x16 images, 256/128/128 examples, 4 steps: the tests), fast32 (32x32)

Measured on the 2-core CPU (jax 0.10.2), seed 0 — see the README's "Measured" table for
the training runs; rendering the default data (64x64, 10k/1k/1k) takes about 3 s.
"""
from compgen import config_lib


def get_config(arg=None):
  variants = config_lib.parse_variants(
      arg, ("smoke", "fast32", "held_out", "iid", "tfds") + config_lib.MODEL_VARIANTS)
  config = config_lib.base_config("sprites")
  data = config.data
  if "held_out" in variants:
    data.split.scheme = "held_out_combinations"
  if "iid" in variants:
    data.split.scheme = "iid"
  data.tfds_config = f"{data.split.scheme}_small"
  if "tfds" in variants:
    data.source = "tfds"
  config_lib.apply_model_variants(config, variants)
  if "fast32" in variants:
    data.sprites.resolution = 32
  if "smoke" in variants:
    data.sprites.resolution = 16
    config_lib.apply_smoke(config)
  return config
