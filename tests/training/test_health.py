"""The health check (`training/health.py`): slot purity on the images' own objects, against
known answers — the true generator (one object per slot), the same generator with its slots
mixed, the renderer's own object masks, and trained models whose slots are and are not objects
(the quickstart seed-0 population's candidates 0 and 1, results/health/; the 64×64 model that
ships)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import compgen
from compgen.data import sprites as sprites_lib
from compgen.evaluation import interaction
from compgen.training import health

SPEC = sprites_lib.SpritesSpec(resolution=32, shapes=("square",))
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def _scenes(n=12, seed=0):
  """Latents [n, 2, 4] of scenes with both objects apart, their images and true masks."""
  rng = np.random.default_rng(seed)
  z = np.stack([rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.3, 0.7, (n, 2)),
                rng.uniform(0.5, 0.9, (n, 2)), rng.uniform(0.2, 0.8, (n, 2))], -1)
  shape = np.zeros((n, 2), np.int32)
  images = np.asarray(jnp.stack([sprites_lib.render(SPEC, zi, si) for zi, si in zip(z, shape)]))
  masks = np.asarray(sprites_lib.object_masks(SPEC, z, shape))
  return z.astype(np.float32), images, masks


def _true_decoder(z):  # z [B, 2, 4] -> images: slot k draws object k
  return jnp.stack([sprites_lib.render(SPEC, zi, jnp.zeros(2, jnp.int32)) for zi in z])


def _mixed_decoder(z):  # slot 1 moves both objects one way, slot 2 the other
  return _true_decoder(jnp.stack([z[:, 0] + z[:, 1] - 0.5, z[:, 0] - z[:, 1] + 0.5], 1))


def _mixing(z):  # the latents the mixed decoder draws the true scene from
  return jnp.stack([(z[:, 0] + z[:, 1]) / 2, (z[:, 0] - z[:, 1]) / 2 + 0.5], 1)


@pytest.fixture(scope="module")
def scenes():
  return _scenes()


def test_image_objects_are_the_renderers_objects(scenes):
  _, images, masks = scenes
  found, scored = health.image_objects(images, 2)
  assert scored.sum() >= 6  # objects apart: the foreground splits into two
  for f, m in zip(found[scored], masks[scored]):  # each component holds one whole object
    shared = (f[:, None] & m[None]).sum((2, 3))  # [component, object] pixels
    match = shared.argmax(1)
    assert sorted(match) == [0, 1]
    assert (shared[[0, 1], match[::-1]] == 0).all()  # and none of the other
    assert (shared[[0, 1], match] / m[match].sum((1, 2)) > 0.9).all()


def test_purity_is_one_for_object_slots_and_zero_for_mixed_ones(scenes):
  z, images, _ = scenes
  on_objects = health.scores_fn(lambda _, zz: {"output": _true_decoder(zz)}, images, 2)(None, z)
  on_mixed = health.scores_fn(lambda _, zz: {"output": _mixed_decoder(zz)}, images, 2)(
      None, _mixing(z))
  objects, mixed = on_objects["slot_purity"], on_mixed["slot_purity"]
  assert on_objects["jis"] > 0.95 and on_mixed["jis"] < 0.6
  assert "top_slot_share" not in on_objects  # no attention to score
  np.testing.assert_allclose(np.asarray(_mixed_decoder(_mixing(jnp.asarray(z)))), images,
                             atol=2e-3)  # the same scenes, drawn by mixed slots
  assert objects > 0.95 and health.is_healthy(objects)
  assert mixed < 0.1 and not health.is_healthy(mixed)
  assert health.verdict(objects).startswith("Health check passed: slot purity ")
  assert health.verdict(mixed).startswith("WARNING: this model's slots are not objects")


def _attending_decoder(kind: str):
  """The true renderer with attention [B, 1, 1, P, K + 1] on its slots and a background
  column: each pixel on the slot whose object covers it ("apart"), every pixel on slot 0
  ("collapsed"), or the objects' pixels a tenth on their slot and the rest on the background
  column ("token")."""
  def decode(_, z):
    alphas = jax.vmap(lambda zi: sprites_lib.object_alphas(SPEC, zi, jnp.zeros(2, jnp.int32)))(z)
    weights = jnp.moveaxis(alphas, 1, -1).reshape(len(z), -1, 2)  # [B, P, K]
    if kind == "collapsed":
      weights = jnp.stack([weights.sum(-1), jnp.zeros_like(weights[..., 0])], -1)
    if kind == "token":
      weights = 0.1 * weights
    weights = jnp.concatenate([weights, jnp.maximum(1 - weights.sum(-1, keepdims=True), 0)], -1)
    weights = weights / weights.sum(-1, keepdims=True)
    return {"output": _true_decoder(z), "attention": weights[:, None, None]}
  return decode


def test_attention_on_the_objects_is_scored_from_the_images_alone(scenes):
  z, images, _ = scenes
  apart, collapsed, token = (health.scores_fn(_attending_decoder(kind), images, 2)(None, z)
                             for kind in ("apart", "collapsed", "token"))
  assert apart["attention_purity"] > 0.95 and 0.5 <= apart["top_slot_share"] < 0.8
  assert collapsed["top_slot_share"] > 0.99 and abs(collapsed["attention_purity"] - 0.5) < 0.01
  # the background column: off the objects' cores (their soft edges give it a little) or on them
  assert apart["background_share"] < 0.3 and token["background_share"] > 0.85
  assert token["attention_purity"] > 0.95  # what is left on the slots still splits by object


def test_purity_on_image_components_matches_the_true_masks(scenes):
  z, images, masks = scenes
  found, scored = health.image_objects(images, 2)
  for decoder, latents in ((_true_decoder, z), (_mixed_decoder, np.asarray(_mixing(z)))):
    shares = np.asarray(interaction.slot_shares(decoder, latents))
    on_found = health.purity_from_shares(shares[scored], found[scored])
    on_true = health.purity_from_shares(shares[scored], masks[scored])
    assert abs(on_found - on_true) < 0.05


def test_purity_refuses_what_it_cannot_score():
  with pytest.raises(ValueError, match="K >= 2"):
    health.purity_from_shares(np.ones((1, 4, 4, 1)), np.ones((1, 1, 4, 4), bool))
  with pytest.raises(ValueError, match="every object with pixels"):
    health.purity_from_shares(np.ones((1, 4, 4, 2)) / 2, np.zeros((1, 2, 4, 4), bool))
  blank = np.full((3, 8, 8, 3), 0.1, np.float32)
  assert health.scores_fn(lambda _, z: {"output": z}, blank, 2) is None  # no objects


@pytest.mark.parametrize("name, healthy", [("quickstart_objects", True),
                                           ("quickstart_mixed", False)])
def test_trained_quickstart_models_classified_as_the_labels_say(name, healthy):
  model = compgen.load(os.path.join(FIXTURES, name))
  x = model.data("train", 64)["image"]
  purity = health.scores_fn(model.autoencoder.decode, x, 2)(
      model.params, model.encode(x))["slot_purity"]
  assert health.is_healthy(purity) == healthy, purity


def test_the_shipped_64px_model_has_object_slots():
  model = compgen.pretrained("sprites64")
  x = model.data("train", 16)["image"]
  purity = health.scores_fn(model.autoencoder.decode, x, 2)(
      model.params, model.encode(x))["slot_purity"]
  assert purity > 0.9
