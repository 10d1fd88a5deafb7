r"""Sprites: K=2 soft-edged objects (x, y, scale, hue, shape), diagonal ID/OOD split.

Commands:
  python -m compgen.data   --config=configs/sprites.py --workdir=/tmp/cg/sprites_data
  python -m compgen.train  --config=configs/sprites.py:alpha,fast32 --workdir=/tmp/cg/alpha
  python -m compgen.search --config=configs/sprites.py:alpha,fast32 --workdir=/tmp/cg/alpha
  python -m compgen.replay --config=configs/sprites.py:alpha,fast32 --workdir=/tmp/cg/alpha

Variants (`--config=configs/sprites.py:VARIANT[,VARIANT]`):
  data:    held_out (held-out shape combinations), iid (no split), tfds (read the TFDS
           builder `compgen_sprites/<scheme>_small`, or `_tiny` with smoke, built on first
           use; sizes no builder config renders, e.g. fast32, are refused)
  decoder: alpha (default), additive, transformer (with the interaction penalty), unconstrained
  encoder: transformer_encoder, slot_attention (default: cnn);  vae: β-VAE instead of an
           autoencoder
  size:    quickstart (16x16, 1500 steps: the experiment of launch/quickstart.sh),
           fast32 (32x32 images, 2500 steps: the CPU run below), smoke (16x16, 256/128/128
           examples, 4 steps: the tests)

Measured on the 2-core CPU development machine (jax 0.10.2), seed 0, batch 64:
  :alpha,fast32     2500 steps, 20.7 min wall (the CPU partly shared with other jobs);
                    reconstruction MSE test_id 0.00266, test_ood 0.0160; matched R² test_id 0.80
  :additive,fast32  2500 steps, 25.4 min wall (CPU shared); MSE test_id 0.00275, test_ood 0.0127
  :alpha,fast32,vae 2500 steps, 13.6 min wall (CPU idle); MSE test_id 0.00203, test_ood 0.0131
  train-step throughput (examples/s) at 32x32 / 64x64: alpha 200 / 43, additive 205 / 42,
  transformer 90 / 18, unconstrained 345 / 69.
Rendering the default data (64x64, 10k/1k/1k) takes about 3 s after compilation.
"""
from compgen import config_lib


def get_config(arg=None):
  variants = config_lib.parse_variants(
      arg, ("smoke", "quickstart", "fast32", "held_out", "iid", "tfds") + config_lib.MODEL_VARIANTS)
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
    config.train.update(num_steps=2500, eval_every=500)
    config.search.num_steps = 100
    config.experiment.update(fit_examples=500, eval_examples=250)
  if "quickstart" in variants:  # the CPU-sized experiment of launch/quickstart.sh
    data.sprites.resolution = 16
    config.train.update(num_steps=1500, batch_size=32, eval_every=500, checkpoint_every=500)
    config.replay.update(num_steps=800, batch_size=32)
    config.search.num_steps = 50
    config.experiment.update(fit_examples=256, eval_examples=128, readout_steps=500)
  if "smoke" in variants:
    data.sprites.resolution = 16
    config_lib.apply_smoke(config)
  return config
