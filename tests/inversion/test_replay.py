"""Generative replay (Eq. 4.4): priors and the oracle: replay through the true
generator generalises OOD where supervised training on ID pairs does not."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen.data import scenes, synthetic
from compgen.inversion import priors, replay


@pytest.fixture(scope="module")
def diagonal_latents():
  spec = scenes.DatasetSpec(synthetic.SyntheticSpec(latent_dim=3, output_dim=16),
                            num_train=2000, num_test_ood=500)
  return scenes.generate(spec, "train")["latents"], spec


@pytest.mark.parametrize("name", priors.PRIORS)
def test_priors_are_factorised_and_keep_each_slots_marginal(diagonal_latents, name):
  id_latents, _ = diagonal_latents
  prior = priors.fit_prior(name, id_latents)
  samples = np.asarray(jax.jit(lambda r: prior.sample(r, 20_000))(jax.random.PRNGKey(0)))
  assert samples.shape == (20_000, 2, 3)
  # ID slots are strongly correlated (the diagonal); samples are not: new combinations.
  corr_id = np.corrcoef(id_latents[:, 0, 0], id_latents[:, 1, 0])[0, 1]
  corr_prior = np.corrcoef(samples[:, 0, 0], samples[:, 1, 0])[0, 1]
  assert corr_id > 0.9 and abs(corr_prior) < 0.03
  np.testing.assert_allclose(samples.mean(0), id_latents.mean(0), atol=0.02)
  np.testing.assert_allclose(samples.std(0), id_latents.std(0), rtol=0.15)


def test_gaussian_log_prob_is_the_product_of_slot_densities(diagonal_latents):
  from scipy import stats  # pylint: disable=g-import-not-at-top
  id_latents, _ = diagonal_latents
  prior = priors.fit_prior("gaussian", id_latents)
  z = id_latents[7]
  expected = sum(stats.multivariate_normal(id_latents[:, k].mean(0), np.cov(id_latents[:, k].T)
                                           + 1e-6 * np.eye(3)).logpdf(z[k]) for k in range(2))
  np.testing.assert_allclose(float(prior.log_prob(jnp.asarray(z))), expected, rtol=1e-4)
  kde = priors.fit_prior("kde", id_latents)
  assert float(kde.log_prob(jnp.asarray(z))) > float(kde.log_prob(jnp.asarray(z) + 3.0))
  with pytest.raises(ValueError, match="no density"):
    priors.negative_log_prob(priors.fit_prior("empirical", id_latents))
  with pytest.raises(ValueError, match="Unknown prior 'flow'"):
    priors.fit_prior("flow", id_latents)
  with pytest.raises(ValueError, match="NaN"):
    priors.fit_prior("gaussian", np.full((4, 2, 3), np.nan))


def test_replay_through_the_true_generator_generalises_ood(diagonal_latents, train_encoder):
  id_latents, spec = diagonal_latents
  gen_params, generate = synthetic.make_generator(spec.generator)
  ood = scenes.generate(spec, "test_ood")
  prior = priors.fit_prior("empirical", id_latents)  # fitted on ID latents only
  replayed = train_encoder(replay.replay_sampler(generate, 128), (gen_params, prior))
  id_x = generate(gen_params, jnp.asarray(id_latents))
  supervised = train_encoder(replay.dataset_sampler(128), (id_x, jnp.asarray(id_latents)))

  def ood_r2(encode):
    pred = np.asarray(encode(jnp.asarray(ood["x"])))
    return 1 - ((pred - ood["latents"]) ** 2).mean(0) / ood["latents"].var(0)

  r2_replay, r2_supervised = ood_r2(replayed), ood_r2(supervised)
  assert r2_replay.mean() > 0.9, r2_replay
  assert r2_replay.mean() > r2_supervised.mean() + 0.1, (r2_replay, r2_supervised)
