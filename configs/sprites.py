r"""Sprites: K=2 soft-edged objects (x, y, scale, hue, shape), diagonal ID/OOD split.

Defaults: the diagonal split with the per-latent band (`data.split.band`), an additive
decoder with one φ shared by the slots (`model.decoders.additive.slot_index=False`), 6 dims
per slot, a CNN encoder.

Commands:
  python -m compgen.experiment --config=configs/sprites.py:quickstart,rule --workdir=/tmp/cg/exp
  python -m compgen.data   --config=configs/sprites.py --workdir=/tmp/cg/sprites_data
  python -m compgen.train  --config=configs/sprites.py:fast32 --workdir=/tmp/cg/additive
  python -m compgen.search --config=configs/sprites.py:fast32 --workdir=/tmp/cg/additive
  python -m compgen.replay --config=configs/sprites.py:fast32 --workdir=/tmp/cg/additive

Variants (`--config=configs/sprites.py:VARIANT[,VARIANT]`):
  data:    held_out (held-out shape combinations), iid (no split), overlap (neighbouring x
           strips share half their width, so objects overlap — at 32x32 in 50% of the ID
           scenes and 28% of the OOD ones, 16x16: 85% / 44%; scenes in which an object is
           less than half visible are dropped), tfds (read the TFDS
           builder `compgen_sprites/<scheme>_small`, or `_tiny` with smoke, built on first
           use; sizes no builder config renders, e.g. fast32, are refused)
  decoder: additive (default), alpha, conv (additive, transposed convolutions), transformer
           (with the interaction penalty), unconstrained, unconstrained_conv (conv's control)
  encoder: conv_encoder, transformer_encoder, slot_attention, query_transformer (Brady et
           al.'s released encoder; default: cnn);  vae: β-VAE instead of an autoencoder
  model:   transformer_vae (the paper's model: the transformer decoder with its interaction
           penalty as a VAE, a slot-attention encoder, Brady et al.'s sprites weights with β
           rescaled to the image size; results/sprites_overlap/),
           transformer_vae_released (the same with every part of the released recipe:
           its encoder, softmax temperature, learning-rate schedule and α warm-up as shares
           of the run's steps — set by the size variant, not rescaled by a later
           --config.train.num_steps —, 32 latents per slot; results/sprites_overlap/released/)
  size:    quickstart (16x16, 4000 steps; with rule the experiment of launch/quickstart.sh),
           long16 (the quickstart at 30,000 steps, batch 64, evaluated and checkpointed
           every 2,500: the long Transformer VAE run),
           fast32 (32x32 images, 2500 steps), bench32 (the 32x32 benchmark: conv decoder
           and encoder, AdamW 4e-4, 12,000 steps, 3 seeds, control `unconstrained_conv`),
           bench64 (the 64x64 benchmark: bench32 at the released generator's resolution
           and shapes, square and triangle, `BENCH64_STEPS` steps, trained as a population:
           --config.model.candidates=1 trains one model),
           smoke (16x16, 256/128/128 examples, 4 steps: the tests)
  anchor:  consistency (Wiedemer et al.'s model: the compositional-consistency loss at weight 1,
           Hungarian-matched, switched on at a third of training, as their released
           SlotMLPAdditive run: brendel-group/objects-compositional-generalization, README
           and src/train.py, --consistency_ignite_epoch 100 of --epochs 300)
  length:  rule (the length from the ID data: the learning rate held at its peak after the
           warm-up until the best held-out ID error of the last 2,000 steps is < 2% below the
           best before them, then cooled down to a tenth and stopped; the size's step count
           becomes `RULE_CAPS`' cap, or is the cap for a size without one;
           results/sprites32/stopping_rule/, results/health/)
  remedy:  population (3 inits side by side, the one whose slots are most clearly objects
           kept at an eighth of training: 1.25x one model's steps; measured at 64x64, where
           slot purity parts object slots from mixed ones by then, not at 16x16:
           results/health/; bench64's default)

Two variants that set the same thing (two sizes, decoders, encoders or splits) are refused,
so no variant undoes another and their order never matters.

Measured results and commands: results/README.md.
"""
from compgen import config_lib

# Training steps of the 64×64 benchmark (results/sprites64/README.md says how they were chosen).
BENCH64_STEPS = 16_000
TRANSFORMER_VAES = ("transformer_vae", "transformer_vae_released")
# Brady et al.'s released sprites run (JackBrady/interaction-asymmetry, train_model.py and
# utilities/setup_utils.py): 500k steps; learning rate 5e-4 warmed up over 10k, held to 30k,
# then 1e-4 decayed by 0.1 per 500k; α warmed up over 25k. As shares of the run's steps:
RELEASED_STEPS = 500_000
RELEASED_SHARES = {"warmup": 10_000 / RELEASED_STEPS, "hold": 30_000 / RELEASED_STEPS,
                   "alpha_warmup": 25_000 / RELEASED_STEPS}

# The `rule` variant's cap and cool-down per size (steps). At 32×32 the rule fired at 19,000
# (soft edges) and 22,000 (hard) with a 2,000-step cool-down; at 16×16 the held-out ID error
# still falls by > 2% per 2,000 steps at 16,000, so the cap sets the quickstart's length.
RULE_CAPS = {"quickstart": (8000, 1000), "bench32": (36_000, 2000), "bench64": (24_000, 2000)}


def get_config(arg=None):
  model_groups = config_lib.MODEL_VARIANT_GROUPS
  variants = config_lib.parse_variants(
      arg, ("smoke", "quickstart", "long16", "fast32", "bench32", "bench64", "held_out", "iid", "overlap",
            "tfds", "transformer_vae", "transformer_vae_released", "population", "consistency",
            "rule")
      + config_lib.MODEL_VARIANTS,
      exclusive={"the image size and training length": ("quickstart", "long16", "fast32",
                                                          "bench32", "bench64"),
                 "data.split.scheme": ("held_out", "iid"),
                 "the learning-rate schedule and length": ("rule", "transformer_vae_released"),
                 "model.decoder": model_groups["model.decoder"] + TRANSFORMER_VAES,
                 "model.encoder": model_groups["model.encoder"] + TRANSFORMER_VAES})
  config = config_lib.base_config("sprites")
  data = config.data
  # The benchmark's defaults: the per-latent diagonal band (config_lib.data_config) and an
  # additive decoder whose one φ is shared by the slots, with slots of 6 dims (4 continuous
  # latents + shape). With the joint band, or a decoder that tags slots with their index (or
  # alpha masks), one slot learns to draw both objects and OOD identifiability stays near 0
  # (docs/findings.md).
  config.model.update(decoder="additive", slot_dim=6)
  config.model.decoders.additive.slot_index = False
  if "held_out" in variants:
    data.split.scheme = "held_out_combinations"
  if "iid" in variants:
    data.split.scheme = "iid"
  if "overlap" in variants:  # objects may overlap, each at least half visible
    data.sprites.strip_overlap = 0.5
    data.min_visibility = 0.5
  data.tfds_config = f"{data.split.scheme}_small"
  if "tfds" in variants:
    data.source = "tfds"
  config_lib.apply_model_variants(config, variants)
  if "fast32" in variants:
    data.sprites.resolution = 32
    config.train.update(num_steps=2500, eval_every=500)
    config.search.num_steps = 100
    config.experiment.update(fit_examples=500, eval_examples=250)
  if "bench32" in variants or "bench64" in variants:  # conv slot decoder, released recipe
    data.sprites.resolution = 32
    config.model.update(decoder="conv", encoder="conv")
    # 3 seeds of the conv model, the control for seed 0; with the recombined-ID-slots
    # diagnostic and the supervised reference encoder (results/sprites32/)
    config.experiment.update(seeds=3, control="unconstrained_conv", control_seeds=1,
                             composed_pool=5000, supervised_steps=6000)
    config.optim.update(name="adamw", learning_rate=4e-4, weight_decay=1e-3, warmup_steps=200)
    # 12,000 steps: at 6,000 the ID error was still falling (results/sprites32/steps6k/)
    config.train.update(num_steps=12_000, batch_size=64, eval_every=1000, eval_examples=500)
    config.search.update(num_steps=100, restarts=2, prior="empirical")
    config.replay.update(num_steps=1000, batch_size=64, eval_every=500)
    config.experiment.update(fit_examples=500, eval_examples=250, readout_steps=500)
  if "bench64" in variants:  # the anchor's resolution and shapes (square and triangle)
    data.sprites.update(resolution=64, shapes=("square", "triangle"))
    config.train.num_steps = BENCH64_STEPS
  if "quickstart" in variants or "long16" in variants:  # with rule, launch/quickstart.sh's job
    data.sprites.resolution = 16
    # One model per seed. Under this cosine to 4,000 steps 2 of 5 seeds learn object slots
    # (also with two inits: results/health/); under rule's constant rate 5 of 5 do, their
    # slots parting at steps 2,000-4,000 (results/quickstart/rule/).
    config.train.update(num_steps=4000, batch_size=32, eval_every=1000, checkpoint_every=1000)
    config.replay.update(num_steps=800, batch_size=32)
    config.search.num_steps = 50
    config.experiment.update(fit_examples=256, eval_examples=128, readout_steps=500)
  if "long16" in variants:
    config.train.update(num_steps=30_000, batch_size=64, eval_every=2500, checkpoint_every=2500,
                        keep_checkpoints=13)
  if "rule" in variants:  # after the sizes, before smoke and the shares of their steps below
    size = next((size for size in RULE_CAPS if size in variants), None)
    # a size without a cap here keeps its own step count as the cap and the default cool-down
    cap, cooldown = RULE_CAPS.get(size, (config.train.num_steps, config.optim.cooldown_steps))
    config.optim.update(decay="warmup_stable_decay", cooldown_steps=cooldown)
    config.train.update(num_steps=cap, stop_window=2000, stop_improvement=0.02)
  if "smoke" in variants:
    data.sprites.resolution = 16
    config_lib.apply_smoke(config)
  if "population" in variants or "bench64" in variants:  # after the sizes: the cut is a share
    # bench64: at step 2,000 of 16,000 slot purity is 0.41-0.72 for object-slot inits and
    # 0.05 for the mixed one, whose ID error is no higher; so cut, seeds 0-2 each kept an
    # object-slot init (purity 0.46, 0.75, 0.73 at the cut; results/health/).
    config.model.update(candidates=3, keep_candidate_at=max(1, config.train.num_steps // 8),
                        candidate_score="slot_purity")
  if "consistency" in variants:  # after the sizes: it starts at a third of their steps
    # weight 1 (the released `total_loss += consistency_loss`), on at once at the third; the
    # released standardises each latent tensor by one mean and std, compgen per latent dim
    config.loss.update(consistency_weight=1.0, consistency_matching="permutation_invariant",
                       consistency_start_step=config.train.num_steps // 3,
                       consistency_warmup_steps=0)
  if variants & set(TRANSFORMER_VAES):
    config.model.update(decoder="transformer", encoder="slot_attention", variational=True)
    # Brady et al.'s β = 0.05 weighs the KL against a squared error summed over 64×64×3
    # terms and weighted 5; the same balance at this size (0.000625 at 16×16). Their α = 0.05
    # is the default: with the head-summed penalty it binds here (results/sprites_overlap/).
    side = data.sprites.resolution
    config.loss.beta = 0.05 * side * side / (5 * 64 * 64)
  if "transformer_vae_released" in variants:  # after the sizes: the schedule is shares of them
    steps = config.train.num_steps
    # 32 latents per slot, the query-transformer encoder at width 64 (slot_dim=32, VAE), the
    # released 1/√(query width) temperature and a learned background key (its extra slot)
    config.model.update(encoder="query_transformer", slot_dim=32)
    config.model.decoders.transformer.update(softmax_scale="query_width", background_token=True)
    config.optim.update(name="adam", learning_rate=5e-4, decay="warmup_hold_decay",
                        warmup_steps=round(RELEASED_SHARES["warmup"] * steps),
                        hold_steps=round(RELEASED_SHARES["hold"] * steps),
                        hold_drop=1e-4 / 5e-4, decay_rate=0.1, grad_clip_norm=0.0)
    config.loss.interaction_warmup_steps = round(RELEASED_SHARES["alpha_warmup"] * steps)
    config.train.batch_size = 64
  return config
