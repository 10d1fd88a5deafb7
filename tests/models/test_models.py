"""Decoders and encoders: pinned shapes and parameter counts, F_int structure, penalty."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen import config_lib, models

IMAGE, VECTOR = (16, 16, 3), (12,)

DECODER_PARAMS = {("additive", IMAGE): 11651, ("additive", VECTOR): 9816,
                  ("alpha", IMAGE): 10952, ("conv", IMAGE): 218403,
                  ("transformer", IMAGE): 82307, ("transformer", VECTOR): 77057,
                  ("unconstrained", IMAGE): 11267, ("unconstrained", VECTOR): 10188,
                  ("unconstrained_conv", IMAGE): 220451}
ENCODER_PARAMS = {("cnn", False, IMAGE): 252144, ("cnn", False, VECTOR): 73232,
                  ("conv", False, IMAGE): 129168, ("conv", True, IMAGE): 133280,
                  ("cnn", True, IMAGE): 256256, ("cnn", True, VECTOR): 77344,
                  ("transformer", False, IMAGE): 105352, ("transformer", False, VECTOR): 102088,
                  ("transformer", True, IMAGE): 105872, ("transformer", True, VECTOR): 102608,
                  ("slot_attention", False, IMAGE): 114984,
                  ("slot_attention", True, IMAGE): 115504,
                  ("query_transformer", False, IMAGE): 64920,
                  ("query_transformer", True, IMAGE): 84080}


def _decoder(name, shape, **settings):
  """(jitted apply, params) of a decoder of K = 2 slots of 8 dims: one compile each, rather
  than one per operation."""
  cfg = config_lib.model_config(slot_dim=8)
  cfg.decoder = name
  cfg.decoders[name].update(settings)
  dec = models.make_decoder(cfg, shape)
  return jax.jit(dec.apply), jax.jit(dec.init)(jax.random.PRNGKey(0), jnp.zeros((1, 2, 8)))


def _count(params):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@pytest.mark.parametrize("name, shape", sorted(DECODER_PARAMS))
def test_decoder_output_shapes_and_parameter_counts_are_pinned(name, shape):
  dec, params = _decoder(name, shape)
  out = dec(params, jnp.zeros((3, 2, 8)))
  chex.assert_shape(out["output"], (3,) + shape)
  assert _count(params) == DECODER_PARAMS[name, shape]
  if name == "transformer":
    chex.assert_shape(out["attention"], (3, 2, 4, int(np.prod(shape[:-1])) if len(shape) == 3
                                         else shape[0], 2))
    np.testing.assert_allclose(np.asarray(out["attention"].sum(-1)), 1.0, atol=1e-5)
  if name == "alpha":
    chex.assert_shape(out["masks"], (3, 3, 16, 16))  # K slots + background
    np.testing.assert_allclose(np.asarray(out["masks"].sum(1)), 1.0, atol=1e-5)


@pytest.mark.parametrize("name, variational, shape", sorted(ENCODER_PARAMS))
def test_encoder_output_shapes_and_parameter_counts_are_pinned(name, variational, shape):
  cfg = config_lib.model_config(slot_dim=8)
  cfg.encoder, cfg.variational = name, variational
  enc = models.make_encoder(cfg, num_slots=2)  # shapes only: nothing compiled
  params = jax.eval_shape(enc.init, jax.random.PRNGKey(0), jnp.zeros((1,) + shape))
  out = jax.eval_shape(enc.apply, params, jnp.zeros((3,) + shape))
  chex.assert_shape(out["mean"], (3, 2, 8))
  assert ("logvar" in out) == variational
  assert _count(params) == ENCODER_PARAMS[name, variational, shape]


def _mixed_difference(name, shape):
  """f(a, b) + f(a', b') − f(a, b') − f(a', b): zero for every additive f."""
  dec, params = _decoder(name, shape)
  rng = np.random.default_rng(0)
  a, a2, b, b2 = (jnp.asarray(rng.normal(size=(1, 1, 8)), jnp.float32) for _ in range(4))
  f = lambda s0, s1: dec(params, jnp.concatenate([s0, s1], axis=1))["output"]
  return float(jnp.abs(f(a, b) + f(a2, b2) - f(a, b2) - f(a2, b)).max())


@pytest.mark.parametrize("name, shape", [("additive", IMAGE), ("additive", VECTOR),
                                         ("conv", IMAGE)])
def test_additive_decoders_have_no_cross_slot_interaction(name, shape):
  assert _mixed_difference(name, shape) < 1e-5


def test_conv_decoder_moves_only_the_changed_slots_term_at_every_resolution():
  """f̂(z) = b + Σ_k φ(z_k), one φ: slot terms are φ of that slot alone; images 2^n ≥ 8."""
  z = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 8)), jnp.float32)
  moved = z.at[:, 0].add(1.0)
  for side in (8, 16, 32, 64):
    dec, params = _decoder("conv", (side, side, 3))
    out, out_moved = dec(params, z), dec(params, moved)
    chex.assert_shape(out["output"], (3, side, side, 3))
    chex.assert_shape(out["slots"], (3, 2, side, side, 3))
    np.testing.assert_allclose(out_moved["slots"][:, 1], out["slots"][:, 1], atol=1e-6)
    assert float(jnp.abs(out_moved["slots"][:, 0] - out["slots"][:, 0]).max()) > 1e-3
    np.testing.assert_allclose(out["output"] - out["slots"].sum(1), out_moved["output"]
                               - out_moved["slots"].sum(1), atol=1e-5)  # the same bias b
    # one φ for exchangeable slots: slot 1's term is φ applied to z_1 in slot 0's place
    np.testing.assert_allclose(dec(params, z[:, ::-1])["slots"][:, 0], out["slots"][:, 1],
                               atol=1e-5)
    np.testing.assert_allclose(dec(params, z[:, ::-1])["output"], out["output"], atol=1e-5)
  for name in ("conv", "unconstrained_conv"):
    for bad in ((12, 12, 3), (4, 4, 3), (16, 32, 3), (12,)):
      with pytest.raises(ValueError, match=f"The {name} decoder"):
        _decoder(name, bad)


@pytest.mark.parametrize("name, shape", [("unconstrained", IMAGE), ("unconstrained", VECTOR),
                                         ("unconstrained_conv", IMAGE), ("alpha", IMAGE),
                                         ("transformer", VECTOR)])
def test_other_decoders_let_slots_interact(name, shape):
  assert _mixed_difference(name, shape) > 1e-4


@pytest.mark.parametrize("name, shape", [("additive", IMAGE), ("additive", VECTOR),
                                         ("alpha", IMAGE)])
def test_shared_slot_decoder_treats_slots_as_exchangeable(name, shape):
  """slot_index=False: f̂(z_π) = f̂(z) for every slot order π; with the index tag it differs."""
  z = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 8)), jnp.float32)
  swapped = z[:, ::-1]
  for slot_index in (False, True):
    dec, params = _decoder(name, shape, slot_index=slot_index)
    out, out_swapped = (dec(params, v)["output"] for v in (z, swapped))
    if slot_index:
      assert float(jnp.abs(out - out_swapped).max()) > 1e-4
    else:
      np.testing.assert_allclose(out, out_swapped, atol=1e-5)
      assert _count(params) < DECODER_PARAMS[name, shape]  # no slot-index weights


def test_transformer_background_token_is_a_learned_key_beside_exchangeable_slots():
  """K slots + one learned token to attend to: attention [B, L, heads, P, K+1], the token
  last; swapping the slots swaps their attention and leaves the token's share and the image."""
  z = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 8)), jnp.float32)
  dec, params = _decoder("transformer", IMAGE, background_token=True)
  out, out_swapped = dec(params, z), dec(params, z[:, ::-1])
  chex.assert_shape(out["attention"], (3, 2, 4, 256, 3))
  np.testing.assert_allclose(np.asarray(out["attention"].sum(-1)), 1.0, atol=1e-5)
  assert float(out["attention"][..., -1].min()) > 0  # the token takes a share
  np.testing.assert_allclose(out_swapped["attention"], out["attention"][..., [1, 0, 2]],
                             atol=1e-5)
  np.testing.assert_allclose(out_swapped["output"], out["output"], atol=1e-5)
  assert _count(params) == DECODER_PARAMS["transformer", IMAGE] + 64  # one token of width 64


def test_interaction_penalty_known_answers():
  disjoint = jax.nn.one_hot(jnp.array([[0, 1, 1, 0]]), 2)[:, None, None]  # [B=1, L, H, P=4, K=2]
  assert float(models.interaction_penalty(disjoint)) == 0.0
  uniform2 = jnp.full((2, 2, 3, 5, 2), 0.5)  # 3 heads: H² (K − 1) / (2K) = 9 / 4
  np.testing.assert_allclose(float(models.interaction_penalty(uniform2)), 2.25)
  uniform3 = jnp.full((1, 1, 1, 4, 3), 1 / 3)
  np.testing.assert_allclose(float(models.interaction_penalty(uniform3)), 1 / 3, rtol=1e-6)
  # Averaged over layers first: two layers attending to different slots overlap after averaging.
  split = jnp.stack([jax.nn.one_hot(jnp.zeros((4,), int), 2),
                     jax.nn.one_hot(jnp.ones((4,), int), 2)])[None, :, None]
  np.testing.assert_allclose(float(models.interaction_penalty(split)), 0.25)
  # Summed over heads: two heads that each give a pixel to one slot, but not the same one,
  # overlap fully (1 · 1); two that agree do not, whichever slot that pixel has.
  one_hot = lambda slots: jax.nn.one_hot(jnp.array(slots), 2)  # [P=2, K]
  disagree = jnp.stack([one_hot([0, 1]), one_hot([1, 0])])[None, None]  # [1, 1, H=2, 2, 2]
  np.testing.assert_allclose(float(models.interaction_penalty(disagree)), 1.0)
  agree = jnp.stack([one_hot([0, 1]), one_hot([0, 1])])[None, None]
  assert float(models.interaction_penalty(agree)) == 0.0


def test_unknown_names_and_impossible_shapes_are_refused():
  cfg = config_lib.model_config(slot_dim=8)
  cfg.decoder = "diffusion"
  with pytest.raises(ValueError, match="Unknown decoder 'diffusion'.*additive"):
    models.make_decoder(cfg, IMAGE)
  cfg.encoder = "resnet"
  with pytest.raises(ValueError, match="Unknown encoder 'resnet'.*cnn"):
    models.make_encoder(cfg, 2)
  cfg.decoder = "alpha"
  with pytest.raises(ValueError, match="draws images"):
    _decoder("alpha", VECTOR)
  cfg.encoder = "conv"
  with pytest.raises(ValueError, match="reads images"):
    models.make_encoder(cfg, 2).init(jax.random.PRNGKey(0), jnp.zeros((1, 12)))
  cfg.encoder = "slot_attention"
  with pytest.raises(ValueError, match="reads images"):
    models.make_encoder(cfg, 2).init(jax.random.PRNGKey(0), jnp.zeros((1, 12)))
  cfg.encoder = "transformer"
  enc = models.make_encoder(cfg, 2)
  with pytest.raises(ValueError, match="patch_size"):
    enc.init(jax.random.PRNGKey(0), jnp.zeros((1, 18, 18, 3)))
