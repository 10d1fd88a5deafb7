"""The ID objective's terms: latent losses (slot-order invariance), the compositional-consistency
loss (slot recombination, gradient only into the encoder) and the Jacobian-overlap penalty
(known answers on linear decoders and trained models; gradient only into the decoder)."""
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import compgen
from compgen import config_lib, models
from compgen.training import objectives

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def test_permutation_invariant_loss_ignores_slot_order():
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(5, 3, 2)), jnp.float32)
  permuted = z[:, jnp.array([2, 0, 1])]
  assert float(objectives.latent_loss(permuted, z, "permutation_invariant")) == 0.0
  assert float(objectives.latent_loss(permuted, z, "mse")) > 0.1
  # equals the best of all orders, per example
  pred = jnp.asarray(rng.normal(size=(5, 3, 2)), jnp.float32)
  best = np.mean([min(float(jnp.mean((pred[b, list(p)] - z[b]) ** 2))
                      for p in itertools.permutations(range(3))) for b in range(5)])
  np.testing.assert_allclose(float(objectives.latent_loss(pred, z, "permutation_invariant")), best,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="Unknown latent loss"):
    objectives.latent_loss(pred, z, "huber")


def test_recombined_slots_come_from_the_batch_slot_by_slot():
  z = jnp.arange(6 * 3 * 2, dtype=jnp.float32).reshape(6, 3, 2)
  mixed = np.asarray(objectives.recombine_slots(jax.random.PRNGKey(0), z))
  assert mixed.shape == z.shape
  for i, k in itertools.product(range(6), range(3)):  # slot k of some example, still slot k
    assert any(np.array_equal(mixed[i, k], np.asarray(z[j, k])) for j in range(6))
  # examples are recombined: some output mixes slots of different inputs
  donors = (mixed[:, :, 0] - np.arange(3) * 2) // 6
  assert np.any(donors[:, 0] != donors[:, 1])


@pytest.fixture(scope="module")
def vector_model():
  cfg = config_lib.model_config(slot_dim=2)
  cfg.decoder = "additive"
  cfg.decoders.additive.hidden = (16,)
  cfg.encoders.cnn.hidden = 16
  model = models.Autoencoder(models.make_encoder(cfg, num_slots=2),
                                 models.make_decoder(cfg, (8,)))
  x = jax.random.normal(jax.random.PRNGKey(1), (16, 8))
  return model, model.init(jax.random.PRNGKey(0), x), {"x": x}


def test_consistency_loss_trains_the_encoder_through_a_frozen_decoder(vector_model):
  model, params, batch = vector_model
  loss_cfg = config_lib.training_config().loss
  loss_cfg.update(consistency_weight=0.5, consistency_warmup_steps=10)

  def grads(weight, step=10):
    cfg = loss_cfg.copy_and_resolve_references()
    cfg.consistency_weight = weight
    return jax.grad(lambda p: objectives.loss_fn(model, cfg, p, batch, jax.random.PRNGKey(2),
                                                 jnp.asarray(step))[0])(params)

  _, terms = objectives.loss_fn(model, loss_cfg, params, batch, jax.random.PRNGKey(2),
                                jnp.asarray(5))
  assert float(terms["consistency"]) > 0
  assert float(terms["consistency_weight"]) == pytest.approx(0.25)  # half-way through warm-up
  assert float(terms["loss"]) == pytest.approx(
      float(terms["recon"]) + 0.25 * float(terms["consistency"]), rel=1e-5)
  with_cons, without = grads(0.5), grads(0.0)
  # the decoder's gradient is the reconstruction's alone; the encoder's changes
  for a, b in zip(jax.tree.leaves(with_cons["decoder"]), jax.tree.leaves(without["decoder"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(with_cons["encoder"]),
                                                   jax.tree.leaves(without["encoder"])))
  late = loss_cfg.copy_and_resolve_references()
  late.update(consistency_start_step=100, consistency_warmup_steps=0)  # on at step 100, at once
  weight = lambda step: float(objectives.loss_fn(model, late, params, batch, jax.random.PRNGKey(2),
                                                 jnp.asarray(step))[1]["consistency_weight"])
  assert [weight(s) for s in (0, 99, 100, 5000)] == [0.0, 0.0, 0.5, 0.5]
  off = objectives.loss_fn(model, config_lib.training_config().loss, params, batch,
                           jax.random.PRNGKey(2), jnp.asarray(5))[1]
  assert "consistency" not in off  # off by default


def test_unknown_consistency_matching_is_refused(vector_model):
  model, params, batch = vector_model
  loss_cfg = config_lib.training_config().loss
  loss_cfg.update(consistency_weight=0.5, consistency_matching="hungarian_soft")
  with pytest.raises(ValueError, match="loss.consistency_matching='hungarian_soft'"):
    objectives.loss_fn(model, loss_cfg, params, batch, jax.random.PRNGKey(0), jnp.asarray(1))


def _linear_slots(supports):
  """f(z)_p = Σ_k supports[k, p] · z_k (one latent dim per slot): slot k moves pixels [k]."""
  a = jnp.asarray(supports, jnp.float32)  # [K, P]
  return lambda z: jnp.einsum("kp,bk->bp", a, z[..., 0])[..., None]  # [B, P, 1]


def test_jacobian_overlap_is_zero_for_disjoint_slots_and_known_when_shared():
  z = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 1))
  rng = jax.random.PRNGKey(1)
  disjoint = _linear_slots([[1, 2, 0, 0], [0, 0, 3, 1]])
  assert float(objectives.jacobian_overlap(disjoint, z, rng)) == pytest.approx(0, abs=1e-7)
  # both slots move the same pixels: e_k(p) = u_p² v_k², so per example v1²v2² / (v1² + v2²)²
  shared = _linear_slots([[1, 2, 3, 0], [1, 2, 3, 0]])
  v2 = np.asarray(jax.random.normal(rng, z.shape))[..., 0] ** 2  # [B, K]
  expected = np.mean(v2[:, 0] * v2[:, 1] / v2.sum(1) ** 2)
  assert float(objectives.jacobian_overlap(shared, z, rng)) == pytest.approx(expected, rel=1e-5)
  assert 0 < expected <= 0.25
  half = _linear_slots([[1, 1, 0, 0], [0, 1, 1, 0]])  # one pixel of three shared
  assert 0 < float(objectives.jacobian_overlap(half, z, rng)) < expected


@pytest.mark.parametrize("name", ["quickstart_objects", "quickstart_mixed"])
def test_jacobian_overlap_is_low_for_object_slots_and_high_for_mixed_ones(name):
  model = compgen.load(os.path.join(FIXTURES, name))
  z = model.encode(model.data("train", 32)["image"])
  omega = float(objectives.jacobian_overlap(
      lambda y: model.autoencoder.decode(model.params, y)["output"], z, jax.random.PRNGKey(0)))
  assert (omega < 0.07) if name == "quickstart_objects" else (omega > 0.09), omega


def test_jacobian_overlap_penalty_shapes_the_decoder_only(vector_model):
  model, params, batch = vector_model
  loss_cfg = config_lib.training_config().loss
  loss_cfg.update(jacobian_overlap_weight=2.0, jacobian_overlap_warmup_steps=10,
                  jacobian_overlap_examples=4)
  _, terms = objectives.loss_fn(model, loss_cfg, params, batch, jax.random.PRNGKey(2),
                                jnp.asarray(5))
  assert 0 < float(terms["jacobian_overlap"]) <= 0.25
  assert float(terms["jacobian_overlap_weight"]) == pytest.approx(1.0)  # half-way
  assert float(terms["loss"]) == pytest.approx(
      float(terms["recon"]) + float(terms["jacobian_overlap"]), rel=1e-5)

  def grads(weight):
    cfg = loss_cfg.copy_and_resolve_references()
    cfg.jacobian_overlap_weight = weight
    return jax.grad(lambda p: objectives.loss_fn(model, cfg, p, batch, jax.random.PRNGKey(2),
                                                 jnp.asarray(10))[0])(params)
  on, off = grads(2.0), grads(0.0)
  for a, b in zip(jax.tree.leaves(on["encoder"]), jax.tree.leaves(off["encoder"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # z under stop-gradient
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(on["decoder"]),
                                                   jax.tree.leaves(off["decoder"])))
  assert "jacobian_overlap" not in objectives.loss_fn(
      model, config_lib.training_config().loss, params, batch, jax.random.PRNGKey(2),
      jnp.asarray(5))[1]  # off by default
