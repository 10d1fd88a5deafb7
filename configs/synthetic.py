r"""Synthetic F_int vectors: K=2 slots, m=2 latents each, d_x=64, L-shaped ID/OOD split.

The default benchmark is the one where the conditions of the theory of additive decoders hold
(Lachapelle et al., NeurIPS 2023): ID = some slot in the corner box [0, δ]^2 with δ = 0.3, the
other anywhere (`data.split.scheme=l_shaped`; 17% of the cube, every slot value seen ID, a
path-connected full-dimensional support), OOD = no slot in the box; vectors of d_x = 64 on the
4-dim manifold (the encoder's OOD task is hard where d_x ≫ K·m); an additive decoder with one
φ_k per slot (F_int, n = 0) wide and trained long enough to fit the ID data to ~1e-5 MSE
(128-wide, 10,000 steps, Adam 1e-3), as 8 candidates from independent inits of which the one
that fits the ID training vectors best is kept (`model.candidates`: whether a run fits ID
exactly, and so identifies the slots, is a lottery over inits; `--config.model.candidates=1`
is the single-model run: 1.6 min per seed against 4.3–5.8); search from ĝ(x) plus 3 restarts
from the empirical slot prior. docs/findings.md, "The experiment on synthetic vectors", gives the
measured table, the diagnosis of the diagonal split and the map over δ and generators.

Commands:
  python -m compgen.experiment --config=configs/synthetic.py --workdir=/tmp/cg/syn
  python -m compgen.sweep --config=configs/synthetic.py --workdir=/tmp/cg/map --grid=...
  python -m compgen.data  --config=configs/synthetic.py:n1 --workdir=/tmp/cg/synthetic_data

Variants (`--config=configs/synthetic.py:VARIANT[,VARIANT]`):
  data:    n0, n1, n2 (cross-slot interactions of per-slot degree n; n0 = additive, the
           default), mlp (negative control outside F_int), iid (no split), diagonal (the
           paper's diagonal band, joint, δ = 0.125: no method identifies the slots OOD here),
           tfds (read the TFDS builder `compgen_synthetic/<scheme>_<n>_small`)
  decoder: additive (default), transformer, unconstrained
  encoder: transformer_encoder (default: cnn, an MLP on vectors);  vae
  size:    smoke (256/128/128 examples, 4 steps: the tests)
"""
from compgen import config_lib


def get_config(arg=None):
  variants = config_lib.parse_variants(
      arg, ("n0", "n1", "n2", "mlp", "iid", "diagonal", "smoke", "tfds")
      + config_lib.MODEL_VARIANTS,
      exclusive={**config_lib.MODEL_VARIANT_GROUPS, "the interaction": ("n0", "n1", "n2", "mlp"),
                 "data.split.scheme": ("iid", "diagonal")})
  config = config_lib.base_config("synthetic")
  data = config.data
  interaction = "n0"
  for n in (0, 1, 2):
    if f"n{n}" in variants:
      data.synthetic.degree, interaction = n, f"n{n}"
  if "mlp" in variants:
    data.synthetic.interaction, interaction = "mlp", "mlp"
  if "diagonal" in variants:
    data.split.update(scheme="diagonal", delta=0.125)
  if "iid" in variants:
    data.split.scheme = "iid"
  data.tfds_config = f"{data.split.scheme}_{interaction}_small"
  data.synthetic.output_dim = 64  # d_x ≫ K·m = 4: the encoder's task is hard OOD
  if "tfds" in variants:
    data.source = "tfds"
    data.synthetic.output_dim = 32  # what the `_small` builder configs render (smoke: 16)
  config.model.decoder = "additive"
  for name in ("additive", "unconstrained"):  # the control as wide as the additive decoder
    config.model.decoders[name].hidden = (128, 128, 128)
  config.model.candidates = 8  # the control too: both keep their best ID fit
  config.optim.learning_rate = 1e-3
  config.train.update(batch_size=128, num_steps=10_000, eval_every=5000, checkpoint_every=5000)
  config.replay.num_steps = 1000
  config.search.update(num_steps=100, restarts=4, prior="empirical")
  config.experiment.update(fit_examples=500, eval_examples=500, readout_steps=500)
  config_lib.apply_model_variants(config, variants)
  if "smoke" in variants:
    data.synthetic.output_dim = 16
    config_lib.apply_smoke(config)
  return config
