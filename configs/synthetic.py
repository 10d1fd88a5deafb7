r"""Synthetic F_int vectors: K=2 slots, m=2 latents each, d_x=16, diagonal ID/OOD split.

Command (prints the dataset statistics and plots the ID/OOD latent split):
  python -m compgen.data --config=configs/synthetic.py:n1 --workdir=/tmp/compgen/synthetic

Variants (`--config=configs/synthetic.py:VARIANT[,VARIANT]`):
  n0, n1, n2 cross-slot interactions of per-slot degree n (n0 = additive, the default).
  mlp        negative control: slots mixed by an unrestricted MLP (outside F_int).
  iid        no split (sanity checks).
  smoke      512/256/256 examples: the tests.
  tfds       read the TFDS builder `compgen_synthetic/diagonal_<n>_small`.

Measured on a 2-core CPU (jax 0.10.2): every variant generates in about a second.
"""
from compgen import config_lib


def get_config(arg=None):
  variants = config_lib.parse_variants(arg, ("n0", "n1", "n2", "mlp", "iid", "smoke", "tfds"))
  config = config_lib.base_config("synthetic")
  data = config.data
  interaction = "n0"
  for n in (0, 1, 2):
    if f"n{n}" in variants:
      data.synthetic.degree, interaction = n, f"n{n}"
  if "mlp" in variants:
    data.synthetic.interaction, interaction = "mlp", "mlp"
  if "iid" in variants:
    data.split.scheme = "iid"
  data.tfds_config = f"{data.split.scheme}_{interaction}_small"
  if "tfds" in variants:
    data.source = "tfds"
  if "smoke" in variants:
    data.num_train, data.num_test_id, data.num_test_ood = 512, 256, 256
    data.tfds_config = data.tfds_config.replace("_small", "_tiny")
  return config
