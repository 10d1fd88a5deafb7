"""The parts of Brady et al.'s released Transformer VAE recipe (JackBrady/interaction-asymmetry)
against its equations, transcribed here from the released code: the learning-rate schedule
(`train_model.py`, `utilities/setup_utils.LrScheduler`), the attention temperature
(`models/transformer.MultiHeadAttention`), the decoder and its interaction penalty
(`models/decoders.TransformerDecoder`, `Transformer.cross_att_interaction`), the slot-query
encoder (`models/encoders.SlotEncoder` with `Transformer(selfatt=True, crossatt=True)`,
`sample_zh` of `models/autoencoder.py`) and the α warm-up, and the config variant that puts
them together."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from compgen import models
from compgen.models import decoders, encoders, layers
from compgen.training import objectives, optimizers


def _released_lr(it, lr=5e-4, warmup=10_000, hold=30_000, decay_steps=500_000):
  """The learning rate of update `it` in the released sprites run (α, β > 0)."""
  if it < warmup:
    return lr * it / warmup
  if it < hold:
    return lr
  return 1e-4 * 0.1 ** ((it - hold) / decay_steps)


def test_warmup_hold_decay_is_the_released_schedule():
  optim = ml_collections.ConfigDict(dict(
      learning_rate=5e-4, decay="warmup_hold_decay", warmup_steps=10_000, hold_steps=30_000,
      hold_drop=0.2, decay_rate=0.1, end_learning_rate_fraction=0.1))
  schedule = optimizers.learning_rate_schedule(optim, 500_000)
  # (at exactly 30,000 the released loop keeps its first scheduler's 0.91 × peak for one step)
  for it in (0, 1, 2_500, 9_999, 10_000, 10_001, 20_000, 29_999, 30_001, 100_000, 499_999):
    assert float(schedule(it)) == pytest.approx(_released_lr(it), rel=1e-5), it


def _gelu(x):  # Flax's nn.gelu (tanh form)
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _norm(x, p=None, axes=(-1,), eps=1e-6):
  mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
  y = (x - mean) / np.sqrt(var + eps)
  return y if p is None else y * np.asarray(p["scale"]) + np.asarray(p["bias"])


def _dense(x, p):
  return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _mha(q, kv, p, heads):
  """The released MultiHeadAttention: softmax(Q Kᵀ · d_q^−½) V per head, then fin_proj."""
  split = lambda t: t.reshape(t.shape[:-1] + (heads, -1)).swapaxes(-2, -3)  # [B, h, n, c]
  query, key, value = (split(_dense(t, p[n])) for t, n in ((q, "query"), (kv, "key"),
                                                          (kv, "value")))
  scores = query @ key.swapaxes(-1, -2) * q.shape[-1] ** -0.5
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  out = (weights @ value).swapaxes(-2, -3)
  return _dense(out.reshape(out.shape[:-2] + (-1,)), p["out"]), weights


def test_query_width_temperature_is_the_released_attention():
  rng = np.random.default_rng(0)
  q, kv = rng.normal(size=(2, 5, 12)), rng.normal(size=(2, 3, 24))
  attention = layers.CrossAttention(num_heads=4, scale="query_width")
  params = attention.init(jax.random.PRNGKey(0), q, kv)
  out, weights = attention.apply(params, q, kv)
  want_out, want_weights = _mha(q, kv, params["params"], heads=4)
  np.testing.assert_allclose(np.asarray(weights), want_weights, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out), want_out, atol=1e-4)
  head = layers.CrossAttention(num_heads=4)  # the default 1/√(24 / 4) is sharper here
  sharp = head.apply(params, q, kv)[1]
  assert float(jnp.max(sharp)) > float(jnp.max(weights))
  with pytest.raises(ValueError, match="Unknown softmax scale"):
    layers.CrossAttention(num_heads=4, scale="dk").init(jax.random.PRNGKey(0), q, kv)


def _released_encoder(p, x, depth, heads, slot_dim):
  """The released SlotEncoder(enc_type="transformer") forward and VAE split on Flax params."""
  x = jnp.asarray(x)
  for i in range(len([k for k in p if k.startswith("Conv_")])):
    c = p[f"Conv_{i}"]
    x = jax.lax.conv_general_dilated(x, c["kernel"], (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + c["bias"]
    x = jnp.asarray(_gelu(np.asarray(x, np.float64)), jnp.float32)
  x = np.asarray(x, np.float64)
  b, h, w, d = x.shape
  ys, xs = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
  grid = np.stack([ys, xs, 1 - ys, 1 - xs], -1)  # build_grid: [grid, 1 − grid]
  x = (x + _dense(grid, p["position"])).reshape(b, h * w, d)
  z = _norm(x, axes=(-2, -1), eps=1e-5)  # nn.LayerNorm(x.shape[1:]), fresh each call
  z = _dense(_gelu(_dense(z, p["feature_mlp"]["Dense_0"])), p["feature_mlp"]["Dense_1"])
  s = np.broadcast_to(np.asarray(p["slot_queries"], np.float64), (b,) + p["slot_queries"].shape)
  for i in range(depth):  # TransformerLayer: cross, self, feed-forward, each pre-norm + residual
    s = _mha(_norm(s, p[f"norm_q_{i}"]), _norm(z, p[f"norm_kv_{i}"]), p[f"cross_attention_{i}"],
             heads)[0] + s
    n = _norm(s, p[f"norm_self_{i}"])
    s = _mha(n, n, p[f"self_attention_{i}"], heads)[0] + s
    mlp = p[f"mlp_{i}"]
    s = _dense(_gelu(_dense(_norm(s, p[f"norm_mlp_{i}"]), mlp["Dense_0"])), mlp["Dense_1"]) + s
  s = _norm(s, p["norm_out"])  # fin_norm
  mu, raw = s[..., :slot_dim], s[..., slot_dim:]
  return mu, np.log((0.5 * np.exp(raw)) ** 2)  # sample_zh: σ = ½ exp(raw)


def test_query_transformer_encoder_is_the_released_forward():
  x = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype(np.float32)
  enc = encoders.QueryTransformerEncoder(num_slots=3, slot_dim=4, variational=True,
                                         channels=(6,), depth=2, num_heads=2)
  params = enc.init(jax.random.PRNGKey(0), x)
  p = params["params"]
  assert float(p["slot_queries"].min()) >= 0 and float(p["slot_queries"].max()) < 1  # U[0, 1)
  out = enc.apply(params, x)
  mu, logvar = _released_encoder(p, x, depth=2, heads=2, slot_dim=4)
  np.testing.assert_allclose(np.asarray(out["mean"]), mu, atol=2e-4)
  np.testing.assert_allclose(np.asarray(out["logvar"]), logvar, atol=2e-4)
  with pytest.raises(ValueError, match="reads images"):
    enc.init(jax.random.PRNGKey(0), np.zeros((2, 12), np.float32))


def test_the_released_query_init_starts_with_near_identical_slots_and_normal_does_not():
  """U[0, 1) queries share their mean, and the slots come out of the encoder nearly equal at
  step 0 (cosine > 0.9); N(0, 3²) queries start them apart."""
  x = np.random.default_rng(4).uniform(size=(8, 8, 8, 3)).astype(np.float32)
  def slot_cosine(init):
    enc = encoders.QueryTransformerEncoder(num_slots=2, slot_dim=16, variational=True,
                                           channels=(8,), depth=2, query_init=init)
    params = enc.init(jax.random.PRNGKey(5), x)
    mu = np.asarray(enc.apply(params, x)["mean"])
    mu = mu / np.linalg.norm(mu, axis=-1, keepdims=True)
    return float((mu[:, 0] * mu[:, 1]).sum(-1).mean()), params["params"]["slot_queries"]
  uniform, q_uniform = slot_cosine("uniform")
  normal, q_normal = slot_cosine("normal")
  assert uniform > 0.9 and normal < 0.6, (uniform, normal)  # here 0.95 and −0.02
  assert float(q_uniform.min()) >= 0 and abs(float(jnp.std(q_normal)) - 3.0) < 0.6


@pytest.mark.parametrize("size, steps", [("quickstart", 4000), ("long16", 30_000),
                                         ("bench64", 16_000)])
def test_the_released_variant_sets_the_recipe_as_shares_of_the_run(size, steps, config_of):
  config = config_of("sprites", f"{size},transformer_vae_released")
  m = config.model
  assert (m.decoder, m.encoder, m.variational, m.slot_dim) == (
      "transformer", "query_transformer", True, 32)
  assert m.decoders.transformer.softmax_scale == "query_width"
  assert m.encoders.query_transformer.softmax_scale == "query_width"
  assert (m.encoders.query_transformer.depth, m.encoders.query_transformer.num_heads) == (5, 4)
  assert config.train.num_steps == steps and config.train.batch_size == 64
  schedule = optimizers.learning_rate_schedule(config.optim, steps)
  released = lambda share: _released_lr(share * 500_000)  # the same point of the run
  for share in (0.01, 0.03, 0.5, 0.99):  # warm-up, hold, decay
    assert float(schedule(round(share * steps))) == pytest.approx(released(share), rel=1e-3)
  alpha = lambda share: float(objectives._ramp(config.loss.interaction_weight,
                                               config.loss.interaction_warmup_steps,
                                               jnp.asarray(round(share * steps))))
  for share in (0.01, 0.025, 0.05, 0.5):  # released: 0.05 · it / 25,000, then 0.05
    assert alpha(share) == pytest.approx(0.05 * min(1, share * 500_000 / 25_000), rel=1e-3)


def _released_interaction(weights):
  """`Transformer.cross_att_interaction` of the released code, loop for loop: weights
  [B, heads, P, K] summed over heads, Σ over pairs (i, j + 1) for j ≥ i of the products, mean
  over pixels, then over the batch."""
  w = weights.sum(1).transpose(0, 2, 1)  # [B, K, P]
  interaction = 0
  for i in range(w.shape[1]):
    for j in range(i, w.shape[1] - 1):
      interaction = interaction + w[:, i] * w[:, j + 1]
  return interaction.mean(1).mean()


def _released_decoder(p, z, features, heads, layers_):
  """The released `TransformerDecoder.forward` (init_mlp, query_mlp, `Transformer` of
  cross-attention layers with selfatt=False, fin_norm, output_mlp) and `compute_interaction`
  (attention averaged over layers) on Flax params: -> (image [B, P, C], interaction)."""
  mlp = lambda x, q: _dense(_gelu(_dense(x, q["Dense_0"])), q["Dense_1"])
  kv = mlp(np.asarray(z, np.float64), p["MLP_1"])  # init_mlp: slots to the model width
  x = np.broadcast_to(mlp(np.asarray(features, np.float64), p["MLP_0"]),
                      (len(z),) + (len(features), p["MLP_0"]["Dense_1"]["bias"].shape[0]))
  weights = 0
  for i in range(layers_):  # TransformerLayer(crossatt=True): cross-attention, feed-forward
    update, attn = _mha(_norm(x, p[f"norm_q_{i}"]), _norm(kv, p[f"norm_kv_{i}"]),
                        p[f"cross_attention_{i}"], heads)
    x = update + x
    x = mlp(_norm(x, p[f"norm_mlp_{i}"]), p[f"mlp_{i}"]) + x
    weights = weights + attn / layers_
  return mlp(_norm(x, p["LayerNorm_0"]), p["readout"]), _released_interaction(weights)


def test_transformer_decoder_and_penalty_are_the_released_forward():
  """One forward pass of decoder and penalty on a hand-built input against the released
  equations: the same function of the same parameters (the widths are compgen's)."""
  z = np.random.default_rng(2).normal(size=(2, 3, 5)).astype(np.float32)
  shape = (4, 4, 3)
  dec = decoders.TransformerDecoder(output_shape=shape, width=12, num_layers=2, num_heads=3,
                                    num_frequencies=2, softmax_scale="query_width")
  params = dec.init(jax.random.PRNGKey(3), z)
  out = dec.apply(params, z)
  features = decoders._pixel_features(shape, 2)
  image, interaction = _released_decoder(params["params"], z, features, heads=3, layers_=2)
  np.testing.assert_allclose(np.asarray(out["output"]).reshape(2, 16, 3), image, atol=1e-4)
  np.testing.assert_allclose(float(models.interaction_penalty(out["attention"])), interaction,
                             rtol=1e-4)
  # the penalty's two ends: one slot per pixel (0) and uniform attention (H²(K − 1) / (2K))
  uniform = np.full((2, 2, 3, 16, 3), 1 / 3, np.float32)
  onehot = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
  assert float(models.interaction_penalty(uniform)) == pytest.approx(
      _released_interaction(uniform.mean(1)), rel=1e-6) == pytest.approx(9 * 2 / 6, rel=1e-6)
  assert float(models.interaction_penalty(np.broadcast_to(onehot, uniform.shape))) == 0.0
