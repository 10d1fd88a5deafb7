"""Synthetic F_int generators: interaction structure, determinism, oracle search."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from compgen.data import synthetic


def _cross_hessian(spec, z):
  params = synthetic.init_params(spec)
  hess = jax.jit(jax.hessian(lambda zz: synthetic.generate(spec, params, zz)))(z)  # [dx,K,m,K,m]
  return np.abs(np.asarray(hess[:, 0, :, 1, :])).max()


@pytest.fixture(scope="module")
def z():
  return jnp.asarray(np.random.default_rng(0).uniform(size=(2, 2)), jnp.float32)


def test_additive_generator_has_no_cross_slot_second_derivatives(z):
  assert _cross_hessian(synthetic.SyntheticSpec(degree=0), z) < 1e-6


@pytest.mark.parametrize("kwargs", [dict(degree=1), dict(degree=2), dict(interaction="mlp")])
def test_interacting_generators_have_cross_slot_second_derivatives(z, kwargs):
  assert _cross_hessian(synthetic.SyntheticSpec(**kwargs), z) > 1e-2


def test_degree_n_terms_are_polynomials_of_degree_n_in_each_slot_feature():
  assert synthetic.SyntheticSpec(degree=0).pair_degrees == ()
  assert synthetic.SyntheticSpec(degree=1).pair_degrees == ((1, 1),)
  assert synthetic.SyntheticSpec(degree=2).pair_degrees == ((1, 1), (1, 2), (2, 1))


def test_weights_are_deterministic_per_seed_and_differ_across_seeds(z):
  spec = synthetic.SyntheticSpec(degree=1, num_slots=3, output_dim=12)
  z3 = jnp.concatenate([z, z[:1]])
  x1 = synthetic.generate(spec, synthetic.init_params(spec), z3)
  x2 = synthetic.generate(spec, synthetic.init_params(spec), z3)
  other = synthetic.SyntheticSpec(degree=1, num_slots=3, output_dim=12, seed=1)
  x3 = synthetic.generate(other, synthetic.init_params(other), z3)
  assert x1.shape == (12,)
  np.testing.assert_array_equal(np.asarray(x1), np.asarray(x2))
  assert np.abs(np.asarray(x1 - x3)).max() > 1e-2


def test_oracle_search_through_the_additive_generator_recovers_the_latents():
  spec = synthetic.SyntheticSpec(degree=0, output_dim=16)
  params, generate_batch = synthetic.make_generator(spec)
  rng = np.random.default_rng(3)
  z_true = jnp.asarray(rng.uniform(0.2, 0.8, size=(16, 2, 2)), jnp.float32)
  x = generate_batch(params, z_true)
  z0 = z_true + jnp.asarray(rng.uniform(-0.1, 0.1, size=z_true.shape), jnp.float32)
  opt = optax.adam(0.01)

  @jax.jit
  def search(z):
    loss = lambda zz: jnp.sum((generate_batch(params, zz) - x) ** 2)
    def step(carry, _):
      z, state = carry
      updates, state = opt.update(jax.grad(loss)(z), state)
      return (optax.apply_updates(z, updates), state), None
    return jax.lax.scan(step, (z, opt.init(z)), None, length=600)[0][0]

  np.testing.assert_allclose(np.asarray(search(z0)), np.asarray(z_true), atol=5e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_slots=0), "num_slots"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(output_dim=3), "output_dim"),
    (dict(degree=3), "degree"),
    (dict(interaction="transformer"), "interaction"),
])
def test_bad_spec_is_refused_with_the_argument_named(kwargs, match):
  with pytest.raises(ValueError, match=match):
    synthetic.SyntheticSpec(**kwargs)
