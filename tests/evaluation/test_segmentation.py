"""FG-ARI and J-ARI (`evaluation.segmentation`) on segmentations with known answers."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen.data import sprites
from compgen.evaluation import interaction
from compgen.evaluation import segmentation


def _ari_by_pairs(a, b):
  """The pair-counting definition, pair by pair (the oracle)."""
  tp = tn = fn = fp = 0
  for i, j in itertools.combinations(range(len(a)), 2):
    same_a, same_b = a[i] == a[j], b[i] == b[j]
    tp += same_a and same_b
    tn += not same_a and not same_b
    fn += same_a and not same_b
    fp += same_b and not same_a
  if fn == 0 and fp == 0:
    return 1.0
  return 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def test_ari_equals_the_pair_count_and_has_its_known_answers():
  rng = np.random.default_rng(0)
  for n, ka, kb in ((7, 2, 3), (20, 3, 3), (31, 4, 2), (12, 1, 3)):
    a, b = rng.integers(0, ka, n), rng.integers(0, kb, n)
    assert segmentation.adjusted_rand_index(a, b) == pytest.approx(_ari_by_pairs(a, b))
  truth = np.repeat([0, 1, 2], 50)
  assert segmentation.adjusted_rand_index(truth, truth) == 1.0
  assert segmentation.adjusted_rand_index(truth, 7 - 3 * truth) == pytest.approx(1.0)  # relabelled
  assert segmentation.adjusted_rand_index(truth, np.zeros_like(truth)) == 0.0  # one slot takes all
  merged = np.where(truth == 2, 1, truth)  # two of three objects in one slot
  assert 0 < segmentation.adjusted_rand_index(truth, merged) < 1
  random = rng.integers(0, 3, truth.size)
  assert abs(segmentation.adjusted_rand_index(truth, random)) < 0.05
  assert segmentation.adjusted_rand_index([0], [4]) == 1.0  # no pair disagrees
  with pytest.raises(ValueError, match="same points"):
    segmentation.adjusted_rand_index(truth, truth[:-1])


def test_visible_objects_put_the_front_object_on_top_and_mark_the_background():
  masks = np.zeros((1, 2, 1, 4), bool)
  masks[0, 0, 0, :3] = True  # object 0 (back) covers pixels 0-2
  masks[0, 1, 0, 2:] = True  # object 1 (front) covers pixels 2-3
  assert segmentation.visible_objects(masks).tolist() == [[[0, 0, 1, 1]]]
  masks[0, :, 0, 3] = False
  assert segmentation.visible_objects(masks)[0, 0, 3] == -1


def test_fg_ari_scores_the_foreground_only_and_skips_empty_images():
  labels = np.array([[[-1, -1, 0, 0, 1, 1]], [[-1] * 6]])  # [N=2, H=1, W=6]
  right = np.zeros((2, 1, 6, 3))
  right[0, 0, 2:4, 2] = right[0, 0, 4:, 0] = 1  # objects to slots 2 and 0
  right[0, 0, :2, 0] = 5  # the background anywhere changes nothing
  per_image = segmentation.foreground_ari(labels, right)
  assert per_image[0] == 1.0 and np.isnan(per_image[1])
  assert segmentation.mean_foreground_ari(labels, right) == 1.0
  one_slot = np.zeros((2, 1, 6, 3))
  one_slot[..., 1] = 1
  assert segmentation.foreground_ari(labels, one_slot)[0] == 0.0
  with pytest.raises(ValueError, match="no image to score"):
    segmentation.mean_foreground_ari(labels[1:], right[1:])
  with pytest.raises(ValueError, match=r"\[N, H, W, K'\]"):
    segmentation.foreground_ari(labels, right[:, 0])


def test_slot_masks_of_each_decoder_kind():
  b, h, w, k = 2, 3, 4, 2
  output = jnp.zeros((b, h, w, 3))
  alpha = jax.random.uniform(jax.random.PRNGKey(0), (b, k + 1, h, w))
  assert np.allclose(segmentation.slot_masks({"output": output, "masks": alpha, "slots": 0}),
                     np.moveaxis(alpha, 1, -1))
  attention = jax.random.uniform(jax.random.PRNGKey(1), (b, 2, 4, h * w, k + 1))
  got = segmentation.slot_masks({"output": output, "attention": attention})
  assert got.shape == (b, h, w, k + 1)
  assert np.allclose(got[0, 1, 2], attention[0, :, :, 1 * w + 2].mean((0, 1)))
  # additive slots that each carry half the background: the object, not the offset, counts
  slots = jnp.full((b, k, h, w, 3), 0.05)
  slots = slots.at[:, 0, 0, 0].set(0.9).at[:, 1, 2, 3].set(0.6)
  masks = np.asarray(segmentation.slot_masks({"output": output, "slots": slots}))
  assert masks.argmax(-1)[0, 0, 0] == 0 and masks.argmax(-1)[0, 2, 3] == 1
  assert np.allclose(masks[0, 1, 1], 0)  # both slots at their own level
  assert segmentation.slot_masks({"output": output}) is None  # the unconstrained controls


def test_j_ari_of_the_true_renderer_is_one_and_of_a_mixing_decoder_is_low():
  """The renderer itself as the decoder, on scenes whose objects do not overlap: each object's
  pixels depend on its own slot alone, so its Jacobian's slot assignment is the true one
  (J-ARI 1; where objects overlap, the back one shows through the front one's soft edge); a
  decoder that draws object 0 from (z_0 + z_1) / 2 and object 1 from (z_0 − z_1) / 2 moves
  every pixel by both slots alike (but where both objects meet), so no assignment follows the
  objects."""
  spec = sprites.SpritesSpec(resolution=16, num_slots=2)
  z = np.random.default_rng(0).uniform(0.1, 0.9, (12, 2, 4)).astype(np.float32)
  z[:, :, 2] = 0.6
  masks = np.asarray(sprites.object_masks(spec, z, np.zeros((12, 2), np.int32)))
  apart = (masks.sum(1) < 2).all((1, 2))
  assert apart.sum() >= 8
  z, labels = z[apart], segmentation.visible_objects(masks[apart])
  render = lambda y: jax.vmap(lambda zi: sprites.render(spec, zi, jnp.zeros(2, jnp.int32)))(y)
  shares = interaction.slot_shares(render, z)
  assert segmentation.mean_foreground_ari(labels, shares) == pytest.approx(1.0)
  mix = lambda y: render(jnp.stack([(y[:, 0] + y[:, 1]) / 2, (y[:, 0] - y[:, 1]) / 2 + 0.5], 1))
  mixed = interaction.slot_shares(mix, z)
  assert segmentation.mean_foreground_ari(labels, mixed) < 0.2
