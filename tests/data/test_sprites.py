"""The sprites renderer: shapes, depth order, strips, gradients, and an oracle search."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from compgen.data import sprites

SPEC = sprites.SpritesSpec(resolution=32, num_slots=2)


@pytest.fixture(scope="module")
def renderer():
  return sprites.make_renderer(SPEC)


def _scene(x0=0.5, x1=0.5, y=0.5, scale=0.5, hue0=0.1, hue1=0.6):
  z = jnp.array([[x0, y, scale, hue0], [x1, y, scale, hue1]], jnp.float32)
  return z, jnp.array([0, 1])


def test_batch_shapes_range_and_determinism(renderer):
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.uniform(size=(6, 2, 4)), jnp.float32)
  shape = jnp.asarray(rng.integers(0, 3, (6, 2)))
  images, vis = renderer(z, shape)
  chex.assert_shape(images, (6, 32, 32, 3))
  chex.assert_shape(vis, (6, 2))
  assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
  np.testing.assert_array_equal(np.asarray(images), np.asarray(renderer(z, shape)[0]))
  # The background shows where there is no object.
  np.testing.assert_allclose(np.asarray(images[:, 0, 0]), 0.1, atol=1e-3)


def test_x_strips_give_each_object_its_half_of_the_canvas():
  z, _ = _scene(x0=1.0, x1=0.0)
  phys = SPEC.physical(z)
  np.testing.assert_allclose(np.asarray(phys["x"]), [0.5, 0.5], atol=1e-6)
  z, _ = _scene(x0=0.0, x1=1.0)
  np.testing.assert_allclose(np.asarray(SPEC.physical(z)["x"]), [0.1, 0.9], atol=1e-6)
  no_strips = sprites.SpritesSpec(resolution=32, x_strips=False)
  np.testing.assert_allclose(np.asarray(no_strips.physical(z)["x"]), [0.1, 0.9], atol=1e-6)
  np.testing.assert_allclose(np.asarray(no_strips.physical(_scene(0.5, 0.5)[0])["x"]), [0.5, 0.5])


def test_front_object_occludes_back_object_and_visibility_says_so():
  spec = sprites.SpritesSpec(resolution=32, x_strips=False)
  z, shape = _scene(x0=0.5, x1=0.5, scale=1.0)  # same place, object 1 (a square) in front
  alpha = sprites.object_alphas(spec, z, shape)
  image = sprites.composite(spec, z, alpha)
  front = sprites.hue_to_rgb(spec.physical(z)["hue"][1])
  np.testing.assert_allclose(np.asarray(image[16, 16]), np.asarray(front), atol=1e-3)
  vis = np.asarray(sprites.visibility(alpha))
  assert vis[1] > 0.99 and vis[0] < 0.6
  z_apart, _ = _scene(x0=0.0, x1=1.0, scale=0.2)
  vis_apart = np.asarray(sprites.visibility(sprites.object_alphas(spec, z_apart, shape)))
  np.testing.assert_allclose(vis_apart, 1.0, atol=1e-3)


def test_object_masks_cover_each_whole_object_and_meet_where_objects_overlap():
  spec = sprites.SpritesSpec(resolution=32, x_strips=False)
  stacked, shape = _scene(x0=0.5, x1=0.5, scale=1.0)  # object 1 hides most of object 0
  apart, _ = _scene(x0=0.0, x1=1.0, scale=0.2)
  masks = np.asarray(sprites.object_masks(spec, jnp.stack([stacked, apart]),
                                          jnp.stack([shape, shape])))
  assert masks.shape == (2, 2, 32, 32)
  alphas = [np.asarray(sprites.object_alphas(spec, z, shape)) for z in (stacked, apart)]
  np.testing.assert_array_equal(masks, np.stack(alphas) > 0.5)
  both = masks.sum(1) >= 2
  assert both[0, 16, 16] and both[0].sum() > 100  # the hidden part counts: they meet
  assert not both[1].any() and masks[1].sum() > 20  # apart: no pixel of two


def test_shapes_have_the_expected_areas():
  spec = sprites.SpritesSpec(resolution=64, num_slots=1)
  z = jnp.array([[0.5, 0.5, 1.0, 0.5]], jnp.float32)
  radius_px = sprites.RANGES["scale"][1] * 64
  areas = [float(sprites.object_alphas(spec, z, jnp.array([s])).sum()) for s in range(3)]
  # circle of radius r, square of half side 0.8 r, equilateral triangle of side 1.8 r
  expected = [np.pi * radius_px**2, (1.6 * radius_px)**2, np.sqrt(3) / 4 * (1.8 * radius_px)**2]
  np.testing.assert_allclose(areas, expected, rtol=0.05)


def test_image_is_differentiable_in_every_continuous_latent():
  rng = np.random.default_rng(1)
  weights = jnp.asarray(rng.normal(size=SPEC.image_shape), jnp.float32)
  z = jnp.array([[0.3, 0.4, 0.6, 0.2], [0.7, 0.6, 0.5, 0.8]], jnp.float32)
  grad_fn = jax.jit(jax.grad(lambda zz, s: jnp.sum(weights * sprites.render(SPEC, zz, s))))
  for shape in ([0, 1], [2, 2], [1, 0]):
    grad = grad_fn(z, jnp.array(shape))
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.abs(np.asarray(grad)) > 1e-4), (shape, grad)


def test_overlapping_strips_share_the_given_fraction_of_their_width():
  spec = sprites.SpritesSpec(resolution=32, strip_overlap=0.5)  # strips 0.8 / 1.5 wide
  width = 0.8 / 1.5
  np.testing.assert_allclose(np.asarray(spec.physical(_scene(0.0, 0.0)[0])["x"]),
                             [0.1, 0.1 + width / 2], atol=1e-6)
  np.testing.assert_allclose(np.asarray(spec.physical(_scene(1.0, 1.0)[0])["x"]),
                             [0.1 + width, 0.9], atol=1e-6)
  # object 0 at the right of its strip, object 1 at the left of its own: the same place
  z, shape = _scene(x0=0.75, x1=0.25, scale=0.6)
  np.testing.assert_allclose(*np.asarray(spec.physical(z)["x"]), atol=1e-6)
  vis = np.asarray(sprites.visibility(sprites.object_alphas(spec, z, shape)))
  assert vis[0] < 0.5 and vis[1] > 0.99  # the front object hides the back one


def _oracle_search(spec, z_true, shape, z0, steps=300):
  """z* = argmin_z ‖x − f(z)‖² through the true renderer f from z0, shapes known."""
  render = jax.vmap(lambda z, s: sprites.render(spec, z, s))
  x = render(z_true, shape)
  opt = optax.adam(0.01)

  @jax.jit
  def search(z):
    loss = lambda zz: jnp.sum((render(zz, shape) - x) ** 2)
    def step(carry, _):
      z, state = carry
      g = jax.grad(loss)(z)
      updates, state = opt.update(g, state)
      return (optax.apply_updates(z, updates), state), None
    (z, _), _ = jax.lax.scan(step, (z, opt.init(z)), None, length=steps)
    return z

  return search(z0)


def _perturbed(rng, z_true):
  return jnp.clip(z_true + jnp.asarray(rng.uniform(-0.08, 0.08, size=z_true.shape),
                                       jnp.float32), 0, 1)


def test_oracle_search_through_the_true_renderer_recovers_the_latents():
  rng = np.random.default_rng(2)
  z_true = jnp.asarray(rng.uniform(0.2, 0.8, size=(4, 2, 4)), jnp.float32)
  shape = jnp.asarray(rng.integers(0, 3, (4, 2)))
  z0 = _perturbed(rng, z_true)
  z_star = _oracle_search(SPEC, z_true, shape, z0)
  assert float(jnp.abs(z0 - z_true).max()) > 0.05
  np.testing.assert_allclose(np.asarray(z_star), np.asarray(z_true), atol=0.01)


def test_oracle_search_recovers_both_objects_of_overlapping_scenes():
  """Scenes of the `overlap` variant in which the back object is 50-90% visible: its whole
  latents (the hidden part included: x, y, scale are those of the whole shape) come back
  from the visible part, as the front object's do."""
  spec = sprites.SpritesSpec(resolution=32, strip_overlap=0.5)
  rng = np.random.default_rng(3)
  z = rng.uniform(0.2, 0.8, size=(256, 2, 4)).astype(np.float32)
  shape = rng.integers(0, 3, (256, 2))
  _, vis = sprites.make_renderer(spec)(jnp.asarray(z), jnp.asarray(shape))
  hidden = (np.asarray(vis)[:, 0] > 0.5) & (np.asarray(vis)[:, 0] < 0.9)
  z_true, shape = jnp.asarray(z[hidden][:4]), jnp.asarray(shape[hidden][:4])
  assert len(z_true) == 4
  z0 = _perturbed(rng, z_true)
  z_star = _oracle_search(spec, z_true, shape, z0)
  assert float(jnp.abs(z0 - z_true).max()) > 0.05
  np.testing.assert_allclose(np.asarray(z_star), np.asarray(z_true), atol=0.01)


@pytest.mark.parametrize("kwargs, match", [
    (dict(resolution=4), "resolution"),
    (dict(num_slots=0), "num_slots"),
    (dict(shapes=("circle", "star")), "shapes"),
    (dict(edge_width=0.0), "edge_width"),
    (dict(strip_overlap=1.0), "strip_overlap"),
    (dict(background=(2.0, 0.0, 0.0)), "background"),
])
def test_bad_spec_is_refused_with_the_argument_named(kwargs, match):
  with pytest.raises(ValueError, match=match):
    sprites.SpritesSpec(**kwargs)


def test_wrong_latent_shape_is_refused():
  with pytest.raises(AssertionError):
    sprites.render(SPEC, jnp.zeros((3, 4)), jnp.zeros((3,), jnp.int32))
  with pytest.raises(ValueError, match="Unknown shape"):
    sprites.shape_index(SPEC, ["hexagon"])
