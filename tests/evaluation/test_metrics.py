"""Identifiability, reconstruction and interaction metrics on inversions with known answers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen.data import splits, synthetic
from compgen.evaluation import identifiability as ident
from compgen.evaluation import interaction

N, K, M = 400, 2, 3
STEPS = 300


def _one_hot_slots(z, c):
  return np.concatenate([z, np.eye(3)[c[..., 0]]], -1)


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  make = lambda n: (rng.uniform(-1, 1, (n, K, M)), rng.integers(0, 3, (n, K, 1)))
  return make(N), make(200), rng


def _score(data, invert, **kw):
  (z, c), (zt, ct), _ = data
  out = ident.identifiability((invert(z, c), z, c), {"test": (invert(zt, ct), zt, ct)},
                              steps=STEPS, **kw)
  return out["test"]


@pytest.mark.parametrize("readout", ["linear", "mlp"])
@pytest.mark.parametrize("matching", ["global", "per_example"])
def test_perfect_permuted_and_reparametrised_inversions_score_one(data, readout, matching):
  perfect = _score(data, _one_hot_slots, readout=readout, matching=matching)
  assert perfect["score"] > 0.99
  permuted = _score(data, lambda z, c: _one_hot_slots(z, c)[:, ::-1], readout=readout,
                    matching=matching)
  assert permuted["score"] > 0.99
  if matching == "global":
    assert permuted["assignment"] == [1, 0]
  # slot-wise monotone reparametrisation (and a permutation); a linear readout cannot undo it
  warped = lambda z, c: _one_hot_slots(np.tanh(2 * z) ** 3 + z, c)[:, ::-1]
  assert _score(data, warped, readout=readout, matching=matching)["score"] > (
      0.99 if readout == "mlp" else 0.95)


@pytest.mark.parametrize("readout,matching", [("linear", "global"), ("mlp", "global"),
                                              ("mlp", "per_example")])
def test_random_and_slot_mixed_inversions_score_near_zero(data, readout, matching):
  rng = data[2]
  random = _score(data, lambda z, c: rng.normal(size=(len(z), K, 5)), readout=readout,
                  matching=matching)
  # each inferred slot holds only products of both true slots: E[z_1 | z_1 z_2] = 0
  mixed = _score(data, lambda z, c: np.stack([z[:, 0] * z[:, 1], z[:, 0] * z[:, 1] ** 3], 1),
                 readout=readout, matching=matching)
  for result in (random, mixed):
    r2 = np.asarray(result["r2"])
    if matching == "global":
      assert np.all(r2 < 0.15), r2
    else:  # the better of the 2 slot orders per example, chosen with the truth: a small bias
      assert r2.mean() < 0.12 and np.all(r2 < 0.25), r2
    assert np.all(np.asarray(result["accuracy"]) < 0.45)  # chance: 1/3
    assert result["score"] < 0.15  # chance: (3 · 0 + 1/3) / 4 ≈ 0.08


def test_readouts_fitted_once_score_later_splits_as_one_call_does(data):
  """fit_readouts(...).score(split) per split == identifiability(fit, all splits): the readouts
  are fitted on the fit set only, whatever is scored, and the matching is exposed."""
  (z, c), (zt, ct), _ = data
  inferred = lambda z, c: _one_hot_slots(z, c)[:, ::-1] + 0.3 * np.tanh(z[:, :, :1])
  fit = (inferred(z, c), z, c)
  splits = {"a": (inferred(zt, ct), zt, ct), "b": (inferred(zt[:50], ct[:50]), z[:50], c[:50])}
  together = ident.identifiability(fit, splits, readout="linear", steps=STEPS)
  fitted = ident.fit_readouts(fit, readout="linear", steps=STEPS, num_categories=(3,))
  assert fitted.assignment == [1, 0]
  for name, split in splits.items():
    alone = fitted.score({name: split})[name]
    assert alone["score"] == pytest.approx(together[name]["score"], abs=1e-6)
    assert alone["per_factor"] == pytest.approx(together[name]["per_factor"], abs=1e-6)
  assert together["b"]["score"] < together["a"]["score"] - 0.3  # b's truths are other scenes'


def test_diagonal_slot_mixing_is_identifiable_in_domain_only():
  """ẑ = (z1, z1), slot 2 a copy of slot 1: right where z2 ≈ z1 (ID), wrong off the diagonal."""
  spec = splits.SplitSpec("diagonal", delta=0.125)
  draw = lambda domain, n, seed: splits.sample(spec, domain, n, np.random.default_rng(seed),
                                               num_slots=2, latent_dim=2)[0]
  z_id, z_ood = draw("id", 600, 0), draw("ood", 300, 1)
  mix = lambda z: np.stack([z[:, 0], z[:, 0]], 1)
  out = ident.identifiability((mix(z_id), z_id, None),
                              {"id": (mix(z_id[:300]), z_id[:300], None),
                               "ood": (mix(z_ood), z_ood, None)}, readout="linear",
                              steps=STEPS)
  assert out["id"]["score"] > 0.9
  assert out["ood"]["score"] < out["id"]["score"] - 0.3


def test_categorical_accuracy_matches_a_hand_computed_case():
  """Readouts learn shape from a one-hot; a test set with 1 of 4 one-hots wrong scores 0.75."""
  rng = np.random.default_rng(0)
  c = rng.integers(0, 3, (300, 1, 1))
  z = rng.uniform(0, 1, (300, 1, 1))
  inferred = lambda z, c: np.concatenate([z, 3 * np.eye(3)[c[..., 0]]], -1)
  ct = np.asarray([0, 1, 2, 1]).reshape(4, 1, 1)
  zt = np.full((4, 1, 1), 0.5)
  shown = ct.copy()
  shown[3] = 0  # the fourth test example's inferred slot says "class 0", truth is 1
  out = ident.identifiability((inferred(z, c), z, c), {"test": (inferred(zt, shown), zt, ct)},
                              readout="linear", steps=STEPS, factor_names=["size", "shape"])
  assert out["test"]["accuracy"] == [[0.75]]
  assert out["test"]["per_factor"]["shape"] == 0.75


def test_bad_inputs_get_clear_errors(data):
  (z, c), _, _ = data
  with pytest.raises(ValueError, match="slot counts"):
    ident.identifiability((z[:, :1], z, c), {})
  with pytest.raises(ValueError, match="readout"):
    ident.identifiability((z, z, c), {}, readout="forest")
  with pytest.raises(ValueError, match="matching"):
    ident.identifiability((z, z, c), {}, matching="greedy")


def test_reconstruction_metrics():
  x = np.random.default_rng(0).uniform(size=(50, 4, 4, 3))
  mse = lambda x_hat: ((x - x_hat) ** 2).reshape(50, -1).mean(1)
  assert ident.reconstruction_metrics(x, mse(x)) == {"recon_mse": 0.0, "recon_r2": 1.0}
  mean_image = np.broadcast_to(x.mean(0), x.shape)  # predicting the mean image: R² = 0
  assert abs(ident.reconstruction_metrics(x, mse(mean_image))["recon_r2"]) < 1e-9


def test_region_mse_averages_over_the_region_and_is_nan_where_it_is_empty():
  x = np.zeros((2, 2, 2, 3))
  x_hat = np.zeros_like(x)
  x_hat[:, 0, 0] = 2.0  # error 4 at one pixel of each image, 0 elsewhere
  region = np.array([[[True, True], [False, False]], [[False, False], [False, False]]])
  np.testing.assert_array_equal(ident.region_mse(x, x_hat, region), [2.0, np.nan])
  np.testing.assert_array_equal(ident.region_mse(x, x_hat, np.ones((2, 2, 2), bool)), [1.0, 1.0])


def test_interaction_statistics_separate_additive_from_interacting_generators():
  z = np.random.default_rng(0).uniform(-1, 1, (6, 2, 2))
  stats = {}
  for name, kw in (("additive", dict(degree=0)), ("n1", dict(degree=1)),
                   ("mlp", dict(interaction="mlp"))):
    spec = synthetic.SyntheticSpec(**kw)
    params = synthetic.init_params(spec)
    stats[name] = interaction.interaction_statistics(
        jax.vmap(lambda zi: synthetic.generate(spec, params, zi)), z)
  assert stats["additive"]["hessian_cross"] < 1e-10
  assert 0 < stats["n1"]["hessian_cross"] < stats["mlp"]["hessian_cross"]
  assert stats["additive"]["jacobian_overlap"] < stats["mlp"]["jacobian_overlap"] <= 1
  with pytest.raises(ValueError, match=r"\[N, K, m\]"):
    interaction.interaction_statistics(lambda z: z, np.zeros((2, 2)))


def test_non_finite_latents_and_a_diverged_readout_fit_are_errors(data):
  (z, c), (zt, ct), _ = data
  bad = z.copy()
  bad[7, 1, 0] = np.nan
  with pytest.raises(ValueError, match=r"fit: inferred latents of examples \[7\].*NaN/Inf"):
    ident.identifiability((bad, z, c), {"test": (zt, zt, ct)}, steps=5)
  with pytest.raises(ValueError, match=r"test: inferred latents of examples \[7\]"):
    ident.identifiability((z, z, c), {"test": (bad[:200], zt, ct)}, steps=5)
  # a fit whose validation loss overflows returns an error, not its untrained initial weights
  # (identifiability() standardises its inputs, so this drives the readouts directly)
  x = np.full((1, N, 1, M), 3e38, np.float32)
  readouts = ident._Readouts("mlp", M, (3,), steps=5, seed=0)  # pylint: disable=protected-access
  with pytest.raises(FloatingPointError, match="1 of 1 readout fits diverged"):
    readouts.fit(x, z[None, :, :1], c[None, :, :1])


def test_top_slot_share_has_its_known_answers():
  """Two images [P = 4 pixels, 3 foreground], K = 2: every object pixel on slot 1: 1; slot 0
  on pixels 0 and 1, slot 1 on pixel 2: 2/3; the background pixel's attention not counted."""
  one_slot = jax.nn.one_hot(jnp.array([1, 1, 1, 0]), 2)
  split = jax.nn.one_hot(jnp.array([0, 0, 1, 1]), 2)
  attention = np.stack([one_slot, split])[:, None, None]  # [N, L, heads, P, K]
  foreground = np.array([[True, True, True, False]] * 2)
  assert interaction.top_slot_share(attention, foreground) == pytest.approx((1 + 2 / 3) / 2)
  # averaged over layers and heads: two heads that disagree on every pixel share them out
  heads = np.stack([np.asarray(split), np.asarray(split)[:, ::-1]])[None, None]
  assert interaction.top_slot_share(heads, foreground[:1]) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="foreground pixels in every image"):
    interaction.top_slot_share(attention, np.zeros((2, 4), bool))
  with pytest.raises(ValueError, match=r"\[N, L, heads, P, K\]"):
    interaction.top_slot_share(attention[:, 0], foreground)


def test_background_share_has_its_known_answers():
  """K = 2 slots and a background token, last; 3 foreground pixels of 4: image 0's objects on
  the token entirely (1), image 1's on it at pixel 2 only (1/3), each averaged over heads."""
  on_token = jax.nn.one_hot(jnp.array([2, 2, 2, 0]), 3)
  one_pixel = jax.nn.one_hot(jnp.array([0, 1, 2, 2]), 3)
  attention = np.stack([on_token, one_pixel])[:, None, None]  # [N, L, heads, P, K + 1]
  foreground = np.array([[True, True, True, False]] * 2)
  assert interaction.background_share(attention, foreground) == pytest.approx((1 + 1 / 3) / 2)
  halves = np.stack([np.asarray(on_token), np.asarray(one_pixel)])[None, None]  # two heads
  assert interaction.background_share(halves, foreground[:1]) == pytest.approx((1 + 1 / 3) / 2)
  with pytest.raises(ValueError, match="foreground pixels in every image"):
    interaction.background_share(attention, np.zeros((2, 4), bool))


def test_object_purity_has_its_known_answers():
  """P = 5 pixels: object 0 alone on 0-1, object 1 alone on 3, both on 2, none on 4."""
  masks = np.array([[[1, 1, 1, 0, 0], [0, 0, 1, 1, 0]]], bool)  # [N=1, K, P]
  as_attention = lambda slots: np.asarray(jax.nn.one_hot(jnp.array(slots), 2))[None, None, None]
  # objects on slots of their own, in either order; shared pixel and background not scored
  assert interaction.object_purity(as_attention([0, 0, 1, 1, 0]), masks) == pytest.approx(1.0)
  assert interaction.object_purity(as_attention([1, 1, 0, 0, 0]), masks) == pytest.approx(1.0)
  # everything on one slot; or object 0 split evenly, object 1 on slot 1: (1/2 + 1) / 2
  assert interaction.object_purity(as_attention([1, 1, 1, 1, 1]), masks) == pytest.approx(0.5)
  assert interaction.object_purity(as_attention([0, 1, 0, 1, 0]), masks) == pytest.approx(0.75)
  uniform = np.full((1, 2, 3, 5, 2), 0.5)
  assert interaction.object_purity(uniform, masks) == pytest.approx(0.5)
  hidden = masks.copy()
  hidden[0, 1, 3] = False  # object 1 has no pixel of its own: nothing to score
  with pytest.raises(ValueError, match="pixels of its own"):
    interaction.object_purity(uniform, hidden)
  with pytest.raises(ValueError, match="same P and K"):
    interaction.object_purity(uniform[..., :4, :], masks)


def test_jis_has_its_known_answers():
  """Slots that each draw their own pixels: 1; pixels every slot moves alike: 0; one pixel of
  slot 0 alone and one shared 3:1 between the slots: (mean(1, 3/4) − 1/2) / (1 − 1/2) = 3/4."""
  z = np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)
  separate = lambda z: jnp.stack([jnp.tanh(z[:, 0]), jnp.sin(z[:, 1])], 1)[:, :, :, None]
  assert interaction.jacobian_interaction_score(separate, z) == pytest.approx(1.0)
  mixed = lambda z: jnp.tanh(z.sum(1, keepdims=True))[..., None]  # [B, 1, m, 1]
  assert interaction.jacobian_interaction_score(mixed, z) == pytest.approx(0.0, abs=1e-6)
  def shared(z):  # pixel 0 = z_00; pixel 1 = 3 z_10 + z_00: shares (1, 0) and (3/4, 1/4)
    return jnp.stack([z[:, 0, 0], 3 * z[:, 1, 0] + z[:, 0, 0]], 1)[:, None, :, None]
  assert interaction.jacobian_interaction_score(shared, z) == pytest.approx(0.75)
  # the foreground picks the pixels scored: pixel 1 alone gives (3/4 − 1/2) / (1/2)
  foreground = np.zeros((3, 1, 2), bool)
  foreground[:, :, 1] = True
  assert interaction.jacobian_interaction_score(shared, z, foreground) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="K >= 2"):
    interaction.jacobian_interaction_score(separate, z[:, :1])
