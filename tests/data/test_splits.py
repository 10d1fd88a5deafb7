"""ID/OOD splits: disjoint, OOD recombines ID values, deterministic, clear errors."""
import numpy as np
import pytest

from compgen.data import splits

DIMS = dict(num_slots=2, latent_dim=4, num_categories=(3,))


def _draw(spec, domain, n=4000, seed=0, **dims):
  return splits.sample(spec, domain, n, np.random.default_rng(seed), **(dims or DIMS))


@pytest.mark.parametrize("num_slots, band", [(2, "joint"), (3, "joint"), (2, "per_latent"),
                                             (3, "per_latent")])
def test_diagonal_id_and_ood_are_disjoint_and_in_the_cube(num_slots, band):
  spec = splits.SplitSpec("diagonal", delta=0.125, band=band)
  dims = dict(DIMS, num_slots=num_slots)
  z_id, f_id = _draw(spec, "id", **dims)
  z_ood, f_ood = _draw(spec, "ood", **dims)
  assert z_id.shape == (4000, num_slots, 4) and f_id.shape == (4000, num_slots, 1)
  for z in (z_id, z_ood):
    assert z.dtype == np.float32 and z.min() >= 0.0 and z.max() <= 1.0
  assert splits.distance_to_diagonal(z_id, band).max() <= 0.125 + 1e-6
  assert splits.distance_to_diagonal(z_ood, band).min() > 0.125
  assert splits.in_domain(spec, z_id, f_id).all()
  assert not splits.in_domain(spec, z_ood, f_ood).any()


def test_diagonal_band_is_filled_not_just_its_centre():
  z_id, _ = _draw(splits.SplitSpec("diagonal", delta=0.125), "id")
  d = splits.distance_to_diagonal(z_id)
  # Uniform in a 4-dim ball of radius δ: most mass near the rim (P[d > δ/2] = 1 − 2⁻⁴).
  assert 0.85 < (d > 0.0625).mean() < 0.97


def test_per_latent_band_bounds_each_latent_and_is_wider_than_the_joint_band():
  z_id, _ = _draw(splits.SplitSpec("diagonal", delta=0.125, band="per_latent"), "id")
  per_latent = np.abs(z_id[:, 0] - z_id[:, 1]) / np.sqrt(2)  # K = 2: distance per latent
  assert per_latent.max() <= 0.125 + 1e-6
  # uniform in a 1-dim ball per latent: |z_1 − z_2| / √2 ~ U(0, δ), independently per latent
  np.testing.assert_allclose(per_latent.mean(0), 0.0625, atol=0.004)
  assert abs(np.corrcoef(per_latent[:, 0], per_latent[:, 1])[0, 1]) < 0.05
  joint = splits.distance_to_diagonal(z_id, "joint")
  assert joint.max() > 0.2  # outside the joint band: every latent may differ at once


@pytest.mark.parametrize("num_slots", [2, 3])
def test_l_shaped_id_is_uniform_on_the_union_of_anchored_product_sets(num_slots):
  spec = splits.SplitSpec("l_shaped", delta=0.3)
  dims = dict(num_slots=num_slots, latent_dim=2)
  z_id, f_id = _draw(spec, "id", n=20000, **dims)
  z_ood, f_ood = _draw(spec, "ood", **dims)
  assert z_id.min() >= 0 and z_id.max() <= 1 and z_ood.min() >= 0 and z_ood.max() <= 1
  assert splits.in_domain(spec, z_id, f_id).all() and not splits.in_domain(spec, z_ood, f_ood).any()
  # the oracle: uniform draws from the cube, kept where some slot is in the box [0, 0.3]^2
  cube = np.random.default_rng(1).uniform(size=(400_000, num_slots, 2))
  oracle = cube[splits.anchored_slots(cube, 0.3).any(-1)]
  anchored = lambda z: splits.anchored_slots(z, 0.3).sum(-1)
  for count in range(1, num_slots + 1):  # overlaps (several slots anchored) not double-counted
    np.testing.assert_allclose((anchored(z_id) == count).mean(),
                               (anchored(oracle) == count).mean(), atol=0.01)
  bins = np.linspace(0, 1, 6)
  np.testing.assert_allclose(np.histogram(z_id[:, 0, 0], bins)[0] / len(z_id),
                             np.histogram(oracle[:, 0, 0], bins)[0] / len(oracle), atol=0.01)


@pytest.mark.parametrize("scheme", ["diagonal", "l_shaped", "held_out_combinations"])
def test_every_ood_slot_value_is_seen_in_domain(scheme):
  """OOD is new combinations, not extrapolation: each slot's marginal support is ID's."""
  spec = splits.SplitSpec(scheme)
  z_id, f_id = _draw(spec, "id")
  z_ood, f_ood = _draw(spec, "ood")
  bins = np.linspace(0, 1, 11)
  for k in range(2):
    for d in range(4):
      seen_id = np.histogram(z_id[:, k, d], bins)[0] > 0
      seen_ood = np.histogram(z_ood[:, k, d], bins)[0] > 0
      assert np.all(seen_id[seen_ood]), (k, d)
    assert set(f_ood[:, k, 0]) <= set(f_id[:, k, 0])


def test_held_out_combinations_are_only_ood():
  spec = splits.SplitSpec("held_out_combinations")
  _, f_id = _draw(spec, "id")
  _, f_ood = _draw(spec, "ood")
  combos_id = {tuple(c) for c in f_id[:, :, 0]}
  combos_ood = {tuple(c) for c in f_ood[:, :, 0]}
  assert combos_id.isdisjoint(combos_ood)
  assert combos_ood == {(0, 1), (1, 0), (2, 2)}  # Σ c ≡ 1 (mod 3)
  assert len(combos_id) == 6
  custom = splits.SplitSpec("held_out_combinations", held_out=((0, 0), (1, 1)))
  assert {tuple(c) for c in _draw(custom, "ood")[1][:, :, 0]} == {(0, 0), (1, 1)}


def test_samplers_are_deterministic_given_a_seed():
  for scheme in splits.SCHEMES:
    spec = splits.SplitSpec(scheme)
    a, b, c = (_draw(spec, "ood", n=64, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("make, match", [
    (lambda: splits.SplitSpec("checkerboard"), "Unknown split scheme"),
    (lambda: splits.SplitSpec("diagonal", band="radial"), "Unknown diagonal band"),
    (lambda: splits.SplitSpec("diagonal", delta=0.0), "delta"),
    (lambda: splits.SplitSpec("diagonal", delta=1.5), "delta"),
    (lambda: _draw(splits.SplitSpec("diagonal"), "id", num_slots=1, latent_dim=2),
     "num_slots >= 2"),
    (lambda: _draw(splits.SplitSpec("held_out_combinations"), "id", num_slots=2, latent_dim=2),
     "categorical"),
    (lambda: _draw(splits.SplitSpec("held_out_combinations", held_out=((0, 0), (0, 1), (0, 2))),
                   "id"), "only OOD"),
    (lambda: _draw(splits.SplitSpec("held_out_combinations", held_out=((0, 5),)), "id"),
     "not 2-tuples"),
    (lambda: _draw(splits.SplitSpec("diagonal"), "test"), "Unknown domain"),
])
def test_bad_split_arguments_get_a_clear_error(make, match):
  with pytest.raises(ValueError, match=match):
    make()
