"""Search (Eq. 4.3): oracle recovery through true generators, restarts, NaN isolation,
compilation once per shape, 1 vs 8 devices, streaming."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from compgen import parallel
from compgen.data import scenes, splits, sprites, synthetic
from compgen.inversion import priors, search

SPRITES = sprites.SpritesSpec(resolution=16)
SHAPES = jnp.array([0, 1])  # circle in slot 0, square in slot 1, for every image


def render(params, z):
  del params
  return jax.vmap(lambda zi: sprites.render(SPRITES, zi, SHAPES))(z)


def _r2(z, z_true):
  return 1 - ((z - z_true) ** 2).mean(0) / z_true.var(0)


def _ood_latents(n, num_slots=2, latent_dim=4, seed=0):
  z, _ = splits.sample(splits.SplitSpec("diagonal"), "ood", n, np.random.default_rng(seed),
                       num_slots=num_slots, latent_dim=latent_dim)
  return z


@pytest.fixture(scope="module")
def sprite_searcher():
  return search.Searcher(render, optimizer=optax.adam(0.01), num_steps=300, tol=1e-5)


def test_search_through_the_true_renderer_recovers_ood_latents(sprite_searcher):
  z_true = jnp.asarray(np.clip(_ood_latents(32), 0.1, 0.9))  # keep objects on the canvas
  x = render(None, z_true)
  noise = np.random.default_rng(1).uniform(-0.08, 0.08, z_true.shape).astype(np.float32)
  result = sprite_searcher(None, x, z_true + noise)
  r2 = np.asarray(_r2(result.z, z_true))
  assert r2.min() >= 0.99, r2
  assert bool(result.finite.all())
  assert float(result.mse.max()) < 1e-4
  assert result.trace.shape == (32, 300)
  assert float(result.trace[:, -1].mean()) < float(result.trace[:, 0].mean())


def test_search_compiles_once_per_shape(sprite_searcher):
  before = sprite_searcher.num_traces
  z = jnp.asarray(_ood_latents(32, seed=2))
  x = render(None, z)
  for _ in range(3):
    sprite_searcher(None, x, z)
  assert sprite_searcher.num_traces - before <= 1  # one shape seen already or once now
  sprite_searcher(None, x[:8], z[:8])
  assert sprite_searcher.num_traces - before <= 2


@pytest.fixture(scope="module")
def synthetic_problem():
  spec = synthetic.SyntheticSpec(degree=1, output_dim=16)
  params, generate = synthetic.make_generator(spec)
  ds = scenes.DatasetSpec(spec, num_train=512)
  id_latents = scenes.generate(ds, "train")["latents"]
  return params, (lambda p, z: generate(p, z)), id_latents


def test_search_from_prior_restarts_recovers_true_ood_latents(synthetic_problem):
  params, decode, id_latents = synthetic_problem
  z_true = jnp.asarray(_ood_latents(64, latent_dim=2, seed=3))
  x = decode(params, z_true)
  prior = priors.fit_prior("gaussian", id_latents)
  z0 = prior.sample(jax.random.PRNGKey(0), 64 * 8).reshape(64, 8, 2, 2)  # 8 restarts
  searcher = search.Searcher(decode, optimizer=optax.adam(0.02), num_steps=400, tol=1e-6)
  result = searcher(params, x, z0)
  recovered = np.asarray(result.mse) < 1e-5
  assert recovered.mean() >= 0.95
  assert np.asarray(_r2(result.z[recovered], z_true[recovered])).min() >= 0.99
  # The winning restart is the one with the lowest objective.
  single = search.Searcher(decode, optimizer=optax.adam(0.02), num_steps=400, tol=1e-6)
  losses = np.stack([np.asarray(single(params, x, z0[:, r]).loss) for r in range(8)], 1)
  chosen = losses[np.arange(64), np.asarray(result.restart)]
  np.testing.assert_allclose(chosen, losses.min(1), rtol=1e-4, atol=1e-9)
  np.testing.assert_allclose(np.asarray(result.loss), losses.min(1), rtol=1e-4, atol=1e-9)


def test_one_device_and_eight_devices_agree(synthetic_problem):
  params, decode, _ = synthetic_problem
  assert jax.device_count() == 8  # tests/conftest.py forces 8 CPU devices
  z_true = jnp.asarray(_ood_latents(16, latent_dim=2, seed=4))
  x = decode(params, z_true)
  z0 = z_true + 0.05
  one = search.Searcher(decode, num_steps=50)(params, x, z0)
  mesh = parallel.make_mesh(None)
  eight = search.Searcher(decode, num_steps=50, mesh=mesh)(params, x, z0)
  assert len(eight.z.sharding.device_set) == 8
  np.testing.assert_allclose(np.asarray(one.z), np.asarray(eight.z), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(one.trace), np.asarray(eight.trace), rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    search.Searcher(decode, num_steps=5, mesh=mesh)(params, x[:6], z0[:6])


def test_micro_batches_give_the_same_search(synthetic_problem):
  """Micro-batching (a lax.map over padded chunks inside the jit) changes only the schedule."""
  params, decode, _ = synthetic_problem
  z_true = jnp.asarray(_ood_latents(10, latent_dim=2, seed=5))
  x = decode(params, z_true)
  z0 = jnp.stack([z_true + 0.05, z_true - 0.05], axis=1)  # 2 restarts: 20 searches
  whole = search.Searcher(decode, num_steps=30)(params, x, z0)
  for micro_batch in (1, 3, 20):  # 3 does not divide 20: padded
    chunked = search.Searcher(decode, num_steps=30, micro_batch=micro_batch)(params, x, z0)
    for field in ("z", "mse", "trace", "converged_step", "restart"):
      np.testing.assert_allclose(np.asarray(getattr(whole, field)),
                                 np.asarray(getattr(chunked, field)), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="micro_batch"):
    parallel.resolve_micro_batch(-3)
  assert parallel.resolve_micro_batch(0) is None
  assert parallel.resolve_micro_batch(-1) == 1  # auto on a CPU backend


def test_a_non_finite_image_is_flagged_and_the_rest_unaffected(synthetic_problem):
  params, decode, _ = synthetic_problem
  z_true = jnp.asarray(_ood_latents(8, latent_dim=2, seed=5))
  x = decode(params, z_true)
  z0 = z_true + 0.05
  searcher = search.Searcher(decode, num_steps=30, check_inputs=False)  # NaN input on purpose
  clean = searcher(params, x, z0)
  bad_x = x.at[3, 0].set(jnp.nan)
  result = searcher(params, bad_x, z0)
  finite = np.asarray(result.finite)
  assert not finite[3] and finite[np.arange(8) != 3].all()
  np.testing.assert_array_equal(np.asarray(result.z[3]), np.asarray(z0[3]))  # last finite iterate
  keep = np.arange(8) != 3
  np.testing.assert_allclose(np.asarray(result.z)[keep], np.asarray(clean.z)[keep], rtol=1e-6)


def test_regulariser_pulls_towards_zero(synthetic_problem):
  params, decode, _ = synthetic_problem
  z_true = jnp.asarray(_ood_latents(8, latent_dim=2, seed=6))
  x = decode(params, z_true)
  plain = search.Searcher(decode, num_steps=100)(params, x, z_true)
  shrunk = search.Searcher(decode, num_steps=100, regularizer=search.latent_l2,
                           reg_weight=10.0)(params, x, z_true)
  assert float((shrunk.z ** 2).mean()) < float((plain.z ** 2).mean())


def test_streaming_search_retires_converged_images_and_matches_fixed_search(synthetic_problem):
  params, decode, _ = synthetic_problem
  z_true = jnp.asarray(_ood_latents(24, latent_dim=2, seed=7))
  x = np.asarray(decode(params, z_true))
  rng = np.random.default_rng(8)
  # Easy (start near the truth) and hard (start far away) images, interleaved.
  offset = np.where(np.arange(24)[:, None, None] % 2 == 0, 0.01, 0.3).astype(np.float32)
  z0 = np.asarray(z_true) + offset * rng.choice([-1, 1], size=z_true.shape)
  searcher = search.Searcher(decode, optimizer=optax.adam(0.01), num_steps=400, tol=1e-6)
  streamed = search.stream_search(searcher, params, x, z0, batch_size=8, chunk_steps=25,
                                  max_steps=400)
  fixed = searcher(params, x, z0)
  assert streamed["converged"].mean() >= 0.9
  easy = np.arange(24) % 2 == 0
  assert streamed["steps"][easy].mean() < streamed["steps"][~easy].mean()
  assert (streamed["steps"] <= 400).all()
  both = streamed["converged"] & np.asarray(fixed.converged)
  np.testing.assert_array_equal(streamed["converged_step"][both],
                                np.asarray(fixed.converged_step)[both])
  np.testing.assert_allclose(streamed["z"][both], np.asarray(z_true)[both], atol=5e-3)


def test_bad_arguments_are_refused(synthetic_problem):
  params, decode, _ = synthetic_problem
  searcher = search.Searcher(decode, num_steps=2)
  with pytest.raises(ValueError, match="z0 must be"):
    searcher(params, jnp.zeros((4, 16)), jnp.zeros((3, 2, 2)))
  with pytest.raises(ValueError, match="Empty batch"):
    searcher(params, jnp.zeros((0, 16)), jnp.zeros((0, 2, 2)))
  with pytest.raises(ValueError, match="num_steps"):
    search.Searcher(decode, num_steps=0)
