"""The conv models' matmul layers compute XLA's convolutions exactly, with the same parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen import config_lib, models
from compgen.models import layers


def _value_and_grads(layer, params, x):
  """The layer's output, and the gradients in params and input of a nonlinear scalar of it
  (one compile, rather than one per operation)."""
  def loss(p, xx):
    out = layer.apply(p, xx)
    return jnp.sum(jnp.sin(out) * jnp.arange(1.0, 1.0 + out.shape[-1]))  # channels weighted apart
  return jax.jit(lambda p, xx: (layer.apply(p, xx), jax.grad(loss, argnums=(0, 1))(p, xx)))(
      params, x)


def _assert_same(ours, reference):
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference), strict=True):
    scale = max(float(jnp.abs(b).max()), 1.0)
    np.testing.assert_allclose(np.asarray(a) / scale, np.asarray(b) / scale, atol=1e-5)


def _check_same_layer(ours, reference, shape, out_shape):
  """Random kernel and bias in both: the same output and gradients; the same init per key."""
  x = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
  rng = np.random.default_rng(0)
  params = {"params": {
      "kernel": jnp.asarray(rng.normal(size=(4, 4, shape[-1], out_shape[-1])) * 0.2, jnp.float32),
      "bias": jnp.asarray(rng.normal(size=(out_shape[-1],)), jnp.float32)}}
  out, grads = _value_and_grads(ours, params, x)
  assert out.shape == out_shape
  _assert_same((out, grads), _value_and_grads(reference, params, x))
  _assert_same(jax.jit(ours.init)(jax.random.PRNGKey(3), x),
               jax.jit(reference.init)(jax.random.PRNGKey(3), x))


# windows first (4F >= C) and taps first (4F < C: the last layer to RGB); odd and 1-pixel maps
@pytest.mark.parametrize("shape, features", [((3, 4, 4, 8), 8), ((2, 5, 3, 8), 16),
                                             ((3, 6, 6, 32), 3), ((2, 1, 1, 8), 4)])
def test_subpixel_layer_is_xla_transposed_convolution(shape, features):
  n, h, w, _ = shape
  _check_same_layer(layers.SubpixelConvTranspose(features),
                    nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME"),
                    shape, (n, 2 * h, 2 * w, features))


@pytest.mark.parametrize("shape, features", [((3, 8, 8, 3), 8), ((2, 6, 4, 5), 4)])
def test_patch_layer_is_xla_strided_convolution(shape, features):
  n, h, w, _ = shape
  ours = layers.PatchConv(features)
  _check_same_layer(ours, nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME"), shape,
                    (n, h // 2, w // 2, features))
  with pytest.raises(ValueError, match="even image sizes, not 7x8"):
    ours.init(jax.random.PRNGKey(0), jnp.zeros((1, 7, 8, 3)))


def test_conv_models_in_matmul_layers_are_the_xla_models():
  """One parameter tree for both forms: a checkpoint of either restores into the other."""
  cfg = config_lib.model_config(slot_dim=6)
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(3, 2, 6)), jnp.float32)
  x = jnp.asarray(rng.uniform(size=(3, 16, 16, 3)), jnp.float32)
  for name in ("conv", "unconstrained_conv"):
    cfg.decoder = name
    built = {}
    for upsampling in ("subpixel", "xla"):
      cfg.decoders[name].upsampling = upsampling
      dec = models.make_decoder(cfg, (16, 16, 3))
      built[upsampling] = jax.jit(dec.apply), jax.jit(dec.init)(jax.random.PRNGKey(0), z)
    (fast, params), (xla, xla_params) = built["subpixel"], built["xla"]
    _assert_same(params, xla_params)
    # every bias non-zero, the last layer's included (the conv decoder sums the slots' maps
    # before its linear last layer and adds (K − 1) of its bias back)
    leaves, tree = jax.tree.flatten(params)
    params = jax.tree.unflatten(tree, [a + 0.1 * jnp.asarray(rng.normal(size=a.shape), a.dtype)
                                       for a in leaves])
    out = fast(params, z)
    _assert_same(out["output"], xla(params, z)["output"])
    if name == "conv":
      _assert_same(out["output"], params["params"]["bias"] + out["slots"].sum(axis=1))
  cfg.encoder = "conv"
  encoders = {}
  for first_layer in ("patches", "xla"):
    cfg.encoders.conv.first_layer = first_layer
    enc = models.make_encoder(cfg, 2)
    encoders[first_layer] = jax.jit(enc.apply), jax.jit(enc.init)(jax.random.PRNGKey(0), x)
  (fast, params), (xla, xla_params) = encoders["patches"], encoders["xla"]
  _assert_same(params, xla_params)
  _assert_same(fast(params, x)["mean"], xla(params, x)["mean"])
  cfg.decoders.conv.upsampling = "fft"
  cfg.decoder = "conv"
  with pytest.raises(ValueError, match="Unknown upsampling 'fft'.*subpixel"):
    models.make_decoder(cfg, (16, 16, 3)).init(jax.random.PRNGKey(0), z)
