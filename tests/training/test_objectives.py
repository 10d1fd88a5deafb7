"""The ID objective's terms: latent losses (slot-order invariance) and the
compositional-consistency loss (slot recombination, gradient only into the encoder)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen import config_lib, models
from compgen.training import objectives


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
  off = objectives.loss_fn(model, config_lib.training_config().loss, params, batch,
                           jax.random.PRNGKey(2), jnp.asarray(5))[1]
  assert "consistency" not in off  # off by default


def test_unknown_consistency_matching_is_refused(vector_model):
  model, params, batch = vector_model
  loss_cfg = config_lib.training_config().loss
  loss_cfg.update(consistency_weight=0.5, consistency_matching="hungarian_soft")
  with pytest.raises(ValueError, match="loss.consistency_matching='hungarian_soft'"):
    objectives.loss_fn(model, loss_cfg, params, batch, jax.random.PRNGKey(0), jnp.asarray(1))
