r"""Benchmarks of batched inversion: throughput, the alternatives, and the hardware limit.

  python -m compgen.bench [--quick] [--out=bench.json] [--resolution=32] [--batch_sizes=...]

Sections (`--sections`, all by default), each on freshly initialised default sprites models:
  search     compgen's `Searcher` (jit + vmap + lax.scan of per-image Adam) per decoder and
             batch size: image-steps/s, first-call (compile) time, XLA's FLOPs per image-step
             of one search step and memory of the compiled search, and the fraction of the
             measured matmul rate
  loop       the same search as a Python loop over images of a jitted one-image search
  torch      the alpha decoder and Adam search in PyTorch (batched autograd), weights copied
             from the Flax model; the final losses of both are compared before the times
  replay     a replay encoder step (prior sample → decode → encoder update, one jit) vs the
             same encoder step on pre-decoded images
  streaming  continuous batching (`stream_search`) vs fixed-step search to the same tolerance,
             through the true sprites renderer, on a half-easy, half-hard mix of starts
  train      one jitted ID train step (Eq. 4.2, Adam, batch `--train_batch_size`) per
             decoder:encoder pair (`--train_models`; `conv/xla:conv/xla` is the conv pair in
             XLA's own convolutions, the reference of the same widths) and resolution
             (`--train_resolutions`): examples/s, XLA's FLOPs per example and the fraction of
             the matmul rate; the ratio of each pair to the first one, measured side by side
  profile    where one train step of each conv pair in `--train_models` spends its time, at
             each train resolution: the encoder and the decoder forward and forward +
             backward, each upsampling layer forward + backward, the optimizer update,
             as milliseconds and shares of the whole step
Writes JSON (`--out`) and prints a table. Ratios are measured in one run on one machine.
"""
from __future__ import annotations

import os
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app
from absl import flags

from compgen import config_lib, files, models, parallel
from compgen.data import sprites as sprites_lib
from compgen.inversion import replay, search
from compgen.models import decoders as decoders_lib
from compgen.models import layers
from compgen.training import objectives, optimizers, resumable, train_lib, trained

SECTIONS = ("search", "loop", "torch", "replay", "streaming", "train", "profile")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Which of {SECTIONS} to run.")
_DECODERS = flags.DEFINE_list("decoders", ["alpha", "transformer"],
                               "Decoders the search section times (conv/xla: the conv decoder in "
                               "XLA's transposed convolutions).")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "16", "256", "1024"], "Batch sizes.")
_RESOLUTION = flags.DEFINE_integer("resolution", 32, "Image height and width.")
_STEPS = flags.DEFINE_integer("steps", 10, "Search steps per timed call.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls; the fastest counts.")
_MICRO_BATCH = flags.DEFINE_integer("micro_batch", -1, "Searcher/replay micro-batch: -1 auto "
                                    "(1 on CPU), 0 whole batch; the whole batch is also timed "
                                    "at batch 256 for comparison.")
TRAIN_MODELS = ("conv/xla:conv/xla", "conv:conv", "additive:cnn")
_TRAIN_MODELS = flags.DEFINE_list(
    "train_models", list(TRAIN_MODELS),
    "decoder[/upsampling]:encoder[/first_layer] pairs the train section times; the first is "
    "the baseline of the ratios (conv/xla:conv/xla: the conv pair in XLA's own convolutions; "
    "additive:cnn: the sprites default, one shared φ, 6 dims per slot).")
_TRAIN_RESOLUTIONS = flags.DEFINE_list("train_resolutions", ["16", "32", "64"],
                                       "Image sizes the train section times.")
_TRAIN_BATCH = flags.DEFINE_integer("train_batch_size", 64, "Batch size of the train section.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes: checks that everything runs.")
_OUT = flags.DEFINE_string("out", "bench.json", "Where the JSON results go.")


def _best_time(fn, repeats: int) -> tuple[float, float]:
  """(first call seconds, fastest of `repeats` further calls) of fn() (which blocks)."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return first, min(times)


def _decoder(name: str, resolution: int, batch_size: int, slot_dim: int = 8):
  """A default sprites decoder (`name`; "conv/xla": the conv decoder in XLA's transposed
  convolutions), its parameters, images x and latents z of one batch."""
  cfg = config_lib.base_config("sprites").model
  _select(cfg, name)
  dec = models.make_decoder(cfg, (resolution, resolution, 3))
  z = jax.random.normal(jax.random.PRNGKey(0), (batch_size, 2, slot_dim))
  params = dec.init(jax.random.PRNGKey(1), z[:1])
  x = jax.random.uniform(jax.random.PRNGKey(2), (batch_size, resolution, resolution, 3))
  return dec, params, x, z


def cpu_model() -> str:
  """The host CPU's model name (/proc/cpuinfo on Linux), and its core count."""
  try:
    with open("/proc/cpuinfo") as f:
      name = next((line.split(":", 1)[1].strip() for line in f
                   if line.startswith("model name")), "")
  except OSError:
    name = ""
  return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def matmul_flops_per_s(n: int = 1024, repeats: int = 5) -> float:
  """The machine's dense float32 matmul rate: 2 n³ / (fastest jitted [n, n] @ [n, n])."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
  f = jax.jit(lambda a, b: a @ b)
  _, best = _best_time(lambda: f(a, a).block_until_ready(), repeats)
  return 2 * n ** 3 / best


def flops_per_image_step(decode_fn, params, x, z) -> float:
  """XLA's FLOP count of one search step (objective and its gradient in z) per image, from
  the loop-free vmapped step (XLA counts a loop body once, so the search itself is not used)."""
  def objective(zi, xi):
    return jnp.mean((decode_fn(params, zi[None])[0] - xi) ** 2)
  step = jax.jit(jax.vmap(jax.value_and_grad(objective)))
  cost = step.lower(z, x).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan"))) / len(x) if cost else float("nan")


def search_throughput(decoder: str, batch_size: int, resolution: int, steps: int,
                      repeats: int, matmul_rate: float | None = None,
                      micro_batch: int = -1) -> dict:
  """Image-steps/s of `Searcher` through a default `decoder` at one batch size, with XLA's
  FLOP count and memory of the compiled search."""
  dec, params, x, z = _decoder(decoder, resolution, batch_size)
  mb = parallel.resolve_micro_batch(micro_batch)
  searcher = search.Searcher(lambda p, zz: dec.apply(p, zz)["output"],
                             optimizer=optax.adam(0.03), num_steps=steps, micro_batch=mb)
  first, best = _best_time(lambda: jax.block_until_ready(searcher(params, x, z).z), repeats)
  memory = searcher.lower(params, x, z).compile().memory_analysis()
  flops = flops_per_image_step(lambda p, zz: dec.apply(p, zz)["output"], params, x, z)
  rate = batch_size * steps / best
  row = {"decoder": decoder, "batch_size": batch_size, "micro_batch": mb or batch_size,
         "resolution": resolution,
         "steps": steps, "seconds": best, "image_steps_per_s": rate, "first_call_s": first,
         "flops_per_image_step": flops, "device": jax.devices()[0].device_kind}
  if memory is not None:
    row["memory_bytes"] = int(memory.argument_size_in_bytes + memory.output_size_in_bytes
                              + memory.temp_size_in_bytes)
  if matmul_rate:
    row["fraction_of_matmul_rate"] = rate * flops / matmul_rate
  return row


def python_loop_throughput(resolution: int, num_images: int, steps: int, repeats: int) -> dict:
  """Image-steps/s of a Python loop calling a jitted one-image alpha search per image."""
  dec, params, x, z = _decoder("alpha", resolution, num_images)
  searcher = search.Searcher(lambda p, zz: dec.apply(p, zz)["output"],
                             optimizer=optax.adam(0.03), num_steps=steps)
  loop = lambda: [jax.block_until_ready(searcher(params, x[i:i + 1], z[i:i + 1]).z)
                  for i in range(num_images)]
  first, best = _best_time(loop, repeats)
  return {"decoder": "alpha", "images": num_images, "steps": steps,
          "image_steps_per_s": num_images * steps / best, "first_call_s": first}


def _torch_port(dec_params, resolution: int):
  """(torch, bench_torch, the alpha decoder with `dec_params` in PyTorch), or None without
  torch."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from compgen import bench_torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  shape = (resolution, resolution, 3)
  num_frequencies = config_lib.base_config("sprites").model.decoders.alpha.num_frequencies
  features = np.asarray(decoders_lib._pixel_features(shape, num_frequencies))  # pylint: disable=protected-access
  return torch, bench_torch, bench_torch.alpha_decoder(dec_params, features, shape)


_NO_TORCH = "torch is not installed: pip install -e '.[bench]'"


def torch_comparison(resolution: int, batch_size: int, steps: int, repeats: int,
                     micro_batch: int = -1) -> dict:
  """PyTorch vs compgen on the same alpha decoder weights, images and starts."""
  dec, params, x, z = _decoder("alpha", resolution, batch_size)
  port = _torch_port(params, resolution)
  if port is None:
    return {"skipped": _NO_TORCH}
  torch, bench_torch, decode = port
  x_np, z_np = np.asarray(x), np.asarray(z)
  searcher = search.Searcher(lambda p, zz: dec.apply(p, zz)["output"],
                             optimizer=optax.adam(0.03), num_steps=steps,
                             micro_batch=parallel.resolve_micro_batch(micro_batch))
  jax_loss = float(np.mean(searcher(params, x, z).mse))
  torch_loss = float(np.mean(bench_torch.search(decode, x_np, z_np, steps, 0.03)))
  _, torch_best = _best_time(lambda: bench_torch.search(decode, x_np, z_np, steps, 0.03),
                             repeats)
  _, jax_best = _best_time(lambda: jax.block_until_ready(searcher(params, x, z).z), repeats)
  return {"batch_size": batch_size, "steps": steps, "torch": torch.__version__,
          "torch_threads": torch.get_num_threads(),
          "final_mse_compgen": jax_loss, "final_mse_torch": torch_loss,
          "same_loss": bool(abs(jax_loss - torch_loss) <= 1e-3 * abs(torch_loss) + 1e-7),
          "compgen_image_steps_per_s": batch_size * steps / jax_best,
          "torch_image_steps_per_s": batch_size * steps / torch_best,
          "speedup": torch_best / jax_best}


def replay_cost(resolution: int, batch_size: int, repeats: int, steps: int = 5,
                micro_batch: int = -1) -> dict:
  """Steps/s of a replay encoder step (sample, decode, update) vs the same step on
  pre-decoded images."""
  cfg = config_lib.base_config("sprites").model
  enc = models.make_encoder(cfg, 2)
  dec, dec_params, x, z = _decoder("alpha", resolution, batch_size)
  enc_params = enc.init(jax.random.PRNGKey(3), x[:1])["params"]
  encode = lambda p, xx: enc.apply({"params": p}, xx)["mean"]
  decode = lambda p, zz: dec.apply(p, zz)["output"]
  opt = optax.adam(1e-4)

  class _Gaussian:  # a slot prior with the right shapes; its values do not change the cost
    def sample(self, rng, n):
      return jax.random.normal(rng, (n, 2, cfg.slot_dim))

  prior = _Gaussian()
  replay_step = jax.jit(replay.make_encoder_step(
      encode, replay.replay_sampler(decode, batch_size,
                                    micro_batch=parallel.resolve_micro_batch(micro_batch)),
      opt), static_argnums=3)
  data_step = jax.jit(replay.make_encoder_step(encode, replay.dataset_sampler(batch_size),
                                               opt))
  x_all, z_all = decode(dec_params, z), z
  state = lambda: resumable.TrainState(jnp.zeros((), jnp.int32), enc_params,
                                              opt.init(enc_params))

  def run(step, *args):
    s = state()
    for i in range(steps):
      s, _ = step(s, jax.random.PRNGKey(i), *args)
    jax.block_until_ready(s.params)

  _, t_replay = _best_time(lambda: run(replay_step, dec_params, prior), repeats)
  _, t_data = _best_time(lambda: run(data_step, x_all, z_all), repeats)
  port = _torch_port(dec_params, resolution)
  if port is None:
    torch_row = {"torch_skipped": _NO_TORCH}
  else:
    torch, bench_torch, t_dec = port
    t_enc = bench_torch.CNNEncoder(enc_params, 2, cfg.slot_dim)
    with torch.no_grad():  # the port computes the same encoder
      same = float(np.abs(t_enc(torch.tensor(np.asarray(x_all))).numpy()
                          - np.asarray(encode(enc_params, x_all))).max())
    _, t_torch = _best_time(lambda: bench_torch.replay_steps(t_enc, t_dec, batch_size, steps),
                            repeats)
    torch_row = {"torch_replay_steps_per_s": steps / t_torch,
                 "torch_encoder_max_abs_diff": same, "speedup_vs_torch": t_torch / t_replay}
  return {**torch_row,"batch_size": batch_size, "resolution": resolution,
          "micro_batch": parallel.resolve_micro_batch(micro_batch) or batch_size,
          "replay_steps_per_s": steps / t_replay, "pre_decoded_steps_per_s": steps / t_data,
          "replay_examples_per_s": steps * batch_size / t_replay,
          "cost_ratio": t_replay / t_data}


def streaming_comparison(resolution: int, num_images: int, batch_size: int, max_steps: int,
                         chunk_steps: int, tol: float = 2e-5) -> dict:
  """Converged images per second through the true renderer: continuous batching vs one
  fixed-step vmapped search of `max_steps`, starts half near the truth (easy), half far."""
  spec = sprites_lib.SpritesSpec(resolution=resolution, num_slots=2)
  rng = np.random.default_rng(0)
  z_true = np.stack([rng.uniform(0.05, 0.45, (num_images, 4)),
                     rng.uniform(0.55, 0.95, (num_images, 4))], axis=1).astype(np.float32)
  shapes = jnp.zeros((2,), jnp.int32)
  render = jax.jit(jax.vmap(lambda zz: sprites_lib.render(spec, zz, shapes)))
  x = np.asarray(render(jnp.asarray(z_true)))
  noise = np.where(np.arange(num_images)[:, None, None] % 2 == 0, 0.01, 0.08)
  z0 = (z_true + noise * rng.standard_normal(z_true.shape)).astype(np.float32)
  decode = lambda p, zz: jax.vmap(lambda zi: sprites_lib.render(spec, zi, shapes))(zz)
  make = lambda steps: search.Searcher(decode, optimizer=optax.adam(0.01), num_steps=steps,
                                       tol=tol)
  fixed = make(max_steps)

  def fixed_run():
    out = [fixed(None, x[lo:lo + batch_size], z0[lo:lo + batch_size])
           for lo in range(0, num_images, batch_size)]
    return np.concatenate([np.asarray(r.converged) for r in out])

  streamer = make(chunk_steps)
  stream_run = lambda: search.stream_search(streamer, None, x, z0, batch_size=batch_size,
                                            chunk_steps=chunk_steps, max_steps=max_steps)
  fixed_run()  # compile both first
  stream_run()
  start = time.perf_counter()
  fixed_converged = fixed_run()
  t_fixed = time.perf_counter() - start
  start = time.perf_counter()
  streamed = stream_run()
  t_stream = time.perf_counter() - start
  return {"images": num_images, "batch_size": batch_size, "max_steps": max_steps,
          "chunk_steps": chunk_steps, "tol": tol,
          "fixed_converged": int(fixed_converged.sum()), "fixed_seconds": t_fixed,
          "stream_converged": int(streamed["converged"].sum()), "stream_seconds": t_stream,
          "fixed_converged_per_s": fixed_converged.sum() / t_fixed,
          "stream_converged_per_s": streamed["converged"].sum() / t_stream,
          "speedup": (streamed["converged"].sum() / t_stream) /
                     max(fixed_converged.sum() / t_fixed, 1e-9)}


def train_throughput(decoder: str, encoder: str, resolution: int, batch_size: int,
                     repeats: int, steps: int = 5, matmul_rate: float | None = None) -> dict:
  """Examples/s of one jitted, donated ID train step (Eq. 4.2, default optimiser) of the
  sprites models `decoder` + `encoder` (sprites defaults: additive φ shared by the slots, 6
  dims per slot; see `_train_config`), with XLA's FLOPs per example."""
  config = _train_config(decoder, encoder)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.uniform(size=(batch_size, resolution, resolution, 3)),
                                jnp.float32),
           "latents": jnp.zeros((batch_size, 2, 5), jnp.float32)}
  model = trained.build_model(config, batch)
  optimizer = optimizers.make_optimizer(config.optim, 1000)
  state = train_lib.state_initializer(config, model, optimizer, batch)()
  step = jax.jit(train_lib.make_train_step(model, config, optimizer), donate_argnums=0)
  key = jax.random.PRNGKey(0)
  cost = step.lower(state, batch, key).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) / batch_size if cost else float("nan")
  holder = [state]

  def run():
    for _ in range(steps):
      holder[0], _ = step(holder[0], batch, key)
    jax.block_until_ready(holder[0].params)
  first, best = _best_time(run, repeats)
  rate = batch_size * steps / best
  row = {"decoder": decoder, "encoder": encoder, "resolution": resolution,
         "batch_size": batch_size, "examples_per_s": rate, "first_call_s": first,
         "flops_per_example": flops,
         "parameters": int(sum(x.size for x in jax.tree.leaves(state.params)))}
  if matmul_rate:
    row["fraction_of_matmul_rate"] = rate * flops / matmul_rate
  return row


def _select(model: ml_collections.ConfigDict, decoder: str, encoder: str = "") -> None:
  """Sets `model`'s decoder (and encoder) from bench names: after a slash, a conv decoder's
  upsampling and the conv encoder's first layer ("conv/xla": XLA's own layers)."""
  model.decoder, _, upsampling = decoder.partition("/")
  if upsampling:
    model.decoders[model.decoder].upsampling = upsampling
  if encoder:
    model.encoder, _, first_layer = encoder.partition("/")
    if first_layer:
      model.encoders[model.encoder].first_layer = first_layer


def _train_config(decoder: str, encoder: str):
  """The sprites config of a bench pair (`_select`; "conv/xla:conv/xla" is the conv pair in
  XLA's layers), with the sprites benchmark's slots: 6 dims, one φ shared by the slots."""
  config = config_lib.base_config("sprites")
  _select(config.model, decoder, encoder)
  config.model.slot_dim = 6
  config.model.decoders.additive.slot_index = False
  return config


def train_profile(decoder: str, encoder: str, resolution: int, batch_size: int,
                  repeats: int) -> list[dict]:
  """Milliseconds of the parts of one train step of a conv pair (see `_train_config`), each
  jitted alone on the same shapes: the whole step, encoder and decoder forward and forward +
  backward (gradients in their parameters, the decoder's of the MSE to the image), each
  upsampling layer forward + backward on the maps it sees in the decoder (in its parameters
  and input, ELU after it but the last), and the optimizer update."""
  config = _train_config(decoder, encoder)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(batch_size, resolution, resolution, 3)), jnp.float32)
  batch = {"image": x, "latents": jnp.zeros((batch_size, 2, 5), jnp.float32)}
  model = trained.build_model(config, batch)
  optimizer = optimizers.make_optimizer(config.optim, 1000)
  state = train_lib.state_initializer(config, model, optimizer, batch)()
  step = jax.jit(train_lib.make_train_step(model, config, optimizer))
  key = jax.random.PRNGKey(0)
  z = model.encode(state.params, x)["mean"]
  mse = lambda p: jnp.mean((model.decode(p, z)["output"] - x) ** 2)
  parts = {
      "train step": (step, state, batch, key),
      "encoder forward": (jax.jit(lambda p: model.encode(p, x)["mean"]), state.params),
      "encoder forward+backward": (jax.jit(jax.grad(
          lambda p: jnp.sum(model.encode(p, x)["mean"] ** 2))), state.params),
      "decoder forward": (jax.jit(lambda p: model.decode(p, z)["output"]), state.params),
      "decoder forward+backward": (jax.jit(jax.grad(mse)), state.params),
  }
  dec_cfg = config.model.decoders[config.model.decoder]
  side = 4
  while side < resolution and "upsampling" in dec_cfg:
    last = 2 * side == resolution
    features = 3 if last else dec_cfg.channels
    # the conv decoder draws each slot's maps, and its last layer once, on their sum
    maps = batch_size * (2 if config.model.decoder == "conv" and not last else 1)
    layer = (layers.SubpixelConvTranspose(features) if dec_cfg.upsampling == "subpixel" else
             nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME"))
    h = jnp.asarray(rng.normal(size=(maps, side, side, dec_cfg.channels)), jnp.float32)
    act = (lambda y: y) if last else nn.elu
    grad = jax.grad(lambda p, hh, layer=layer, act=act: jnp.sum(act(layer.apply(p, hh)) ** 2),
                    argnums=(0, 1))
    parts[f"upsampling {side}->{2 * side}x{features}"] = (
        jax.jit(grad), layer.init(jax.random.PRNGKey(0), h), h)
    side *= 2
  grads = jax.grad(lambda p: objectives.loss_fn(model, config.loss, p, batch, key, 0)[0])(
      state.params)
  parts["optimizer update"] = (jax.jit(lambda g, o, p: optax.apply_updates(
      p, optimizer.update(g, o, p)[0])), grads, state.opt_state, state.params)
  times = {name: _best_time(lambda f=f, a=args: jax.block_until_ready(f(*a)), repeats)[1]
           for name, (f, *args) in parts.items()}
  whole = times["train step"]
  return [{"decoder": decoder, "encoder": encoder, "resolution": resolution,
           "batch_size": batch_size, "part": name, "ms": 1e3 * t, "share_of_step": t / whole}
          for name, t in times.items()]


def run_benchmarks(sections, decoders, batch_sizes, resolution, steps, repeats,
                   quick: bool = False, micro_batch: int = -1,
                   train_models=TRAIN_MODELS, train_resolutions=(16, 32, 64),
                   train_batch_size: int = 64) -> dict:
  """All requested sections; `quick` shrinks every size so the whole run takes seconds."""
  if quick:
    resolution, steps, repeats, batch_sizes = 8, 2, 1, [2]
    train_resolutions, train_batch_size = (8,), 2
  unknown = set(sections) - set(SECTIONS)
  if unknown:
    raise ValueError(f"Unknown bench section(s) {sorted(unknown)}: choose from {SECTIONS}.")
  big = max(batch_sizes)  # the PyTorch comparison runs at min(big, 256)
  out = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "cpu": cpu_model(),
         "date": time.strftime("%Y-%m-%d"), "resolution": resolution, "quick": quick,
         "micro_batch": parallel.resolve_micro_batch(micro_batch),
         "matmul_flops_per_s": matmul_flops_per_s(128 if quick else 1024)}
  if "search" in sections:
    rate = out["matmul_flops_per_s"]
    out["search"] = [search_throughput(d, b, resolution, steps, repeats, rate, micro_batch)
                     for d in decoders for b in batch_sizes]
    whole = min(big, 256)  # the same search without micro-batching, for comparison
    if parallel.resolve_micro_batch(micro_batch) not in (None, whole):
      out["search"] += [search_throughput(d, whole, resolution, steps, repeats, rate, 0)
                        for d in decoders]
  if "loop" in sections:
    out["loop"] = python_loop_throughput(resolution, 2 if quick else 32, steps, repeats)
  if "torch" in sections:
    out["torch"] = torch_comparison(resolution, min(big, 256), steps, repeats, micro_batch)
  if "replay" in sections:
    out["replay"] = replay_cost(resolution, 2 if quick else 64, repeats, 2 if quick else 5,
                                micro_batch)
  if "streaming" in sections:
    out["streaming"] = streaming_comparison(
        resolution, 4 if quick else 128, 2 if quick else 64, 4 if quick else 400,
        2 if quick else 25)
  if "train" in sections:
    pairs = [tuple(m.split(":")) for m in train_models]
    bad = [m for m, p in zip(train_models, pairs) if len(p) != 2]
    if bad:
      raise ValueError(f"--train_models {bad}: write decoder:encoder, e.g. conv:conv.")
    out["train"] = [train_throughput(d, e, r, train_batch_size, repeats,
                                     2 if quick else 5, out["matmul_flops_per_s"])
                    for r in train_resolutions for d, e in pairs]
  if "profile" in sections:
    pairs = [tuple(m.split(":")) for m in train_models]
    out["profile"] = [row for r in train_resolutions for d, e in pairs if d.startswith("conv")
                      for row in train_profile(d, e, r, train_batch_size, repeats)]
  return out


def format_table(results: dict) -> str:
  """The results as text tables, with each target's ratio."""
  lines = [f"matmul: {results['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
           f"({results['devices'][0]}; {results.get('cpu', '?')}; jax {results['jax']})", "",
           f"{'decoder':<12}{'batch':>6}{'micro':>6}{'image-steps/s':>15}{'compile s':>11}"
           f"{'MFLOP/img-step':>16}{'of matmul':>11}{'memory MB':>11}"]
  for r in results.get("search", []):
    lines.append(f"{r['decoder']:<12}{r['batch_size']:>6}{r['micro_batch']:>6}"
                 f"{r['image_steps_per_s']:>15.1f}"
                 f"{r['first_call_s']:>11.1f}{r['flops_per_image_step'] / 1e6:>16.2f}"
                 f"{r.get('fraction_of_matmul_rate', float('nan')):>11.1%}"
                 f"{r.get('memory_bytes', 0) / 1e6:>11.1f}")
  sweep_micro = lambda b: min(results.get("micro_batch") or b, b)  # not the comparison rows
  alpha = {r["batch_size"]: r for r in results.get("search", [])
           if r["decoder"] == "alpha" and r["micro_batch"] == sweep_micro(r["batch_size"])}
  if "loop" in results and alpha:
    best = alpha[max(alpha)]
    lines.append(f"\nPython loop over images (alpha): {results['loop']['image_steps_per_s']:.1f}"
                 f" image-steps/s; compgen at batch {best['batch_size']} is "
                 f"{best['image_steps_per_s'] / results['loop']['image_steps_per_s']:.1f}x")
  t = results.get("torch")
  if t:
    lines.append("\nPyTorch: " + (t["skipped"] if "skipped" in t else
                 f"{t['torch_image_steps_per_s']:.1f} vs compgen "
                 f"{t['compgen_image_steps_per_s']:.1f} image-steps/s at batch "
                 f"{t['batch_size']} ({t['speedup']:.2f}x); final MSE torch "
                 f"{t['final_mse_torch']:.6f}, compgen {t['final_mse_compgen']:.6f} "
                 f"({'same' if t['same_loss'] else 'DIFFERENT'})"))
  r = results.get("replay")
  if r:
    lines.append(f"\nReplay: {r['replay_steps_per_s']:.2f} steps/s "
                 f"({r['replay_examples_per_s']:.0f} examples/s) vs pre-decoded "
                 f"{r['pre_decoded_steps_per_s']:.2f} steps/s: on-the-fly decoding costs "
                 f"{r['cost_ratio']:.2f}x" + (
                     f"; PyTorch replay {r['torch_replay_steps_per_s']:.2f} steps/s "
                     f"(compgen {r['speedup_vs_torch']:.2f}x; encoder ports differ by "
                     f"{r['torch_encoder_max_abs_diff']:.1e})"
                     if "torch_replay_steps_per_s" in r else ""))
  rows = results.get("train", [])
  if rows:
    base = {r["resolution"]: r for r in rows[::-1]}  # the first pair at each resolution
    lines += ["", f"{'train: decoder:encoder':<24}{'res':>5}{'examples/s':>12}"
              f"{'vs first':>10}{'MFLOP/example':>15}{'of matmul':>11}"]
    for r in rows:
      lines.append(f"{r['decoder'] + ':' + r['encoder']:<24}{r['resolution']:>5}"
                   f"{r['examples_per_s']:>12.1f}"
                   f"{r['examples_per_s'] / base[r['resolution']]['examples_per_s']:>9.2f}x"
                   f"{r['flops_per_example'] / 1e6:>15.1f}"
                   f"{r.get('fraction_of_matmul_rate', float('nan')):>11.1%}")
  rows = results.get("profile", [])
  if rows:
    lines += ["", f"{'profile: decoder:encoder':<24}{'res':>5}  {'part':<28}{'ms':>9}"
              f"{'of step':>9}"]
    for r in rows:
      lines.append(f"{r['decoder'] + ':' + r['encoder']:<24}{r['resolution']:>5}  "
                   f"{r['part']:<28}{r['ms']:>9.2f}{r['share_of_step']:>9.1%}")
  s = results.get("streaming")
  if s:
    lines.append(f"\nStreaming: {s['stream_converged']}/{s['images']} converged in "
                 f"{s['stream_seconds']:.1f} s vs fixed-step {s['fixed_converged']} in "
                 f"{s['fixed_seconds']:.1f} s: {s['speedup']:.2f}x converged images/s")
  return "\n".join(lines)


def main(argv):
  del argv
  results = run_benchmarks(_SECTIONS.value, _DECODERS.value,
                           [int(b) for b in _BATCH_SIZES.value], _RESOLUTION.value,
                           _STEPS.value, _REPEATS.value, _QUICK.value, _MICRO_BATCH.value,
                           _TRAIN_MODELS.value, [int(r) for r in _TRAIN_RESOLUTIONS.value],
                           _TRAIN_BATCH.value)
  files.write_json(files.path(_OUT.value), results, default=float)
  print(format_table(results))
  print(f"\nresults: {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
