"""compgen from Python (a notebook, a script): everything the jobs do, without flags.

    import compgen
    config = compgen.get_config("configs/sprites.py:quickstart", {"train.num_steps": 500})
    model = compgen.fit(config, "/tmp/cg/run")        # ID training, Eq. 4.2 (resumes)
    ood = model.data("test_ood", 8)                   # {"image" [8, H, W, 3], "latents", ...}
    z = model.encode(ood["image"])                    # ĝ(x): [8, K, m]
    found = compgen.invert(model, ood["image"])       # search, Eq. 4.3, from ĝ(x)
    replayed = compgen.replay_encoder(model)          # ĝ trained on decoded prior samples, Eq. 4.4
    scores = compgen.evaluate(model)                  # {method: {"id"/"ood": metrics}}

The names differ from the job modules (`python -m compgen.train / search / replay`) so that
importing a job never shadows a function. Every function writes to and resumes from the
model's workdir exactly like the corresponding job.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from compgen import config_lib
from compgen import errors
from compgen import files
from compgen import models
from compgen import parallel
from compgen.data import checks
from compgen.data import pipeline
from compgen.inversion import perception as perception_lib
from compgen.inversion import priors
from compgen.inversion import replay as replay_lib
from compgen.study import experiment as experiment_lib
from compgen.study import perceived as perceived_lib
from compgen.training import checkpoints, train_lib, trained


def get_config(spec: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The config of `path/to/config.py[:variant,...]`, with dotted-key overrides
  (e.g. {"train.num_steps": 500}); an unknown key is an error, as on the command line."""
  config = config_lib.load_config(spec)
  for key, value in (overrides or {}).items():
    config_lib.override(config, key, value)
  return config_lib.check_values(config)


def _config(config, caller: str) -> ml_collections.ConfigDict:
  """The config a function was handed (a spec string is loaded); its values are checked by
  the job it starts."""
  if isinstance(config, str):
    return config_lib.load_config(config)
  if not isinstance(config, ml_collections.ConfigDict):
    raise TypeError(f"compgen.{caller} takes a config (compgen.get_config('configs/"
                    f"sprites.py:quickstart')) or its spec string, not {type(config).__name__}.")
  return config


def _with_settings(config: ml_collections.ConfigDict, section: str, settings: dict,
                   caller: str) -> ml_collections.ConfigDict:
  """A copy of `config` with `settings` {key: value} set in `config.<section>`; an unknown key
  or a value of the wrong type is an error naming the closest keys, as on the command line."""
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in settings.items():
    try:
      config_lib.override(config, f"{section}.{key}", value)
    except (KeyError, TypeError) as e:
      raise errors.ConfigError(f"compgen.{caller}({key}=...): {e.args[0]}") from e
  return config_lib.check_values(config)


@dataclasses.dataclass
class Model:
  """A trained slot autoencoder and where it lives.

  Attributes:
    config: the run's config.
    workdir: its workdir (checkpoints, search and replay results).
    autoencoder: `models.Autoencoder` (Flax encoder and decoder modules).
    params: {"encoder", "decoder"} parameters.
    step: the training step restored.
    encoder_source: "id" (trained with the decoder) or "replay" (`replay_encoder`).
  """
  config: ml_collections.ConfigDict
  workdir: str
  autoencoder: models.Autoencoder
  params: dict
  step: int
  encoder_source: str = "id"
  _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

  def memo(self, key, make: Callable[[], Any]):
    """`make()`, computed once per model and `key` (compiled functions, fitted priors,
    searchers), then reused."""
    if key not in self._cache:
      self._cache[key] = make()
    return self._cache[key]

  def _jit(self, name, fn):
    return self.memo(name, lambda: jax.jit(fn))

  def encode(self, x) -> np.ndarray:
    """ĝ(x): images [B, H, W, C] float in [0, 1] (or vectors [B, d_x]) -> slot latents
    [B, K, m] (means). Bad input (wrong shape, uint8, NaN, out of range) is a `DataError`."""
    x = np.asarray(x)
    checks.check_batch(x, "compgen.Model.encode: x")
    return np.asarray(self._jit("encode", lambda p, x: self.autoencoder.encode(p, x)["mean"])(
        self.params, x.astype(np.float32)))

  def decode(self, z) -> dict[str, np.ndarray]:
    """f̂(z): latents [B, K, m] -> {"output": [B, H, W, C], plus the decoder's extras
    ("masks", "slots", "attention"; see `compgen.models.decoders`)}."""
    z = np.asarray(z)
    checks.check_batch(z, "compgen.Model.decode: z", name="latents", unit_range=False)
    return jax.tree.map(np.asarray, self._jit("decode", self.autoencoder.decode)(
        self.params, z.astype(np.float32)))

  def data(self, split: str, n: int | None = None) -> dict[str, np.ndarray]:
    """The first n examples (all: None or -1) of split "train" | "test_id" | "test_ood" of
    the run's data, as model inputs (images float32 in [0, 1])."""
    source = pipeline.load_split(self.config.data, split)
    return trained.first_examples(source, len(source) if n is None or n < 0 else n)

  def prior_latents(self, num_examples: int | None = None) -> np.ndarray:
    """The encoder's latents [N, K, m] of the first `num_examples` (default
    `replay.prior_examples`) ID training images: the sample every prior of this model is
    fitted on (`compgen.inversion.perception`)."""
    n = num_examples or self.config.replay.prior_examples
    return self.memo(("prior_latents", n), lambda: perception_lib.prior_latents(
        self.config, self._jit("infer", trained.make_infer(self.autoencoder)), self.params,
        parallel.make_mesh(self.config.mesh), n))

  def prior(self, kind: str = "empirical", num_examples: int | None = None):
    """A factorised slot prior (`compgen.inversion.priors`) fitted on `prior_latents`."""
    return self.memo(("prior", kind, num_examples or self.config.replay.prior_examples),
                     lambda: priors.fit_prior(kind, self.prior_latents(num_examples),
                                              seed=self.config.seed))


PARAMS_FILE = "params.npz"  # an exported model: config.json + these parameters
PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def load(workdir: str, config: ml_collections.ConfigDict | None = None) -> Model:
  """The trained model of `workdir` (by default with the config saved there), or of a folder
  that `export` wrote (config.json and params.npz)."""
  if config is None:
    path = files.path(workdir, "config.json")
    if not path.exists():
      raise checkpoints.CheckpointError(
          f"{workdir} has no config.json: it holds no compgen run. Train one with "
          "compgen.fit(config, workdir) or `python -m compgen.train`.")
    config = ml_collections.ConfigDict(files.read_json(path))
  if files.path(workdir, PARAMS_FILE).exists():
    exported = _load_exported(config, workdir)
    newest = checkpoints.latest_step(files.path(workdir))
    if newest is None or newest <= exported.step:
      return exported
    print(f"NOTE: {workdir} holds an export of step {exported.step} and newer checkpoints "
          f"(step {newest}): using the checkpoints, as the jobs do. Export again to update "
          f"{PARAMS_FILE}.")
  autoencoder, params, step = trained.restore_trained(config, workdir)
  return Model(config, str(workdir), autoencoder, params, step)


def export(model: Model, folder: str) -> str:
  """Writes `model` as `folder`/config.json and params.npz (its parameters, float32, no
  optimizer state: a few MB), which `load(folder)` reads back anywhere; returns the folder."""
  flat = traverse_util.flatten_dict(jax.device_get(model.params), sep="/")
  files.save_npz(files.path(folder, PARAMS_FILE), step=np.asarray(model.step),
                 **{f"params/{k}": np.asarray(v, np.float32) for k, v in flat.items()})
  files.write_json(files.path(folder, "config.json"), model.config.to_dict())
  return str(folder)


def _load_exported(config, folder) -> Model:
  example = trained.first_examples(pipeline.load_split(config.data, "test_id"), 1)
  autoencoder = trained.build_model(config, example)
  expected = traverse_util.flatten_dict(jax.eval_shape(
      lambda: autoencoder.init(jax.random.PRNGKey(0), models.model_input(example))), sep="/")
  arrays = files.load_npz(files.path(folder, PARAMS_FILE))
  found = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
  wrong = sorted(set(expected) ^ set(found)) + sorted(
      k for k in set(expected) & set(found) if expected[k].shape != found[k].shape)
  if wrong:
    raise checkpoints.CheckpointError(
        f"{folder}/{PARAMS_FILE} does not hold the parameters of its config.json's model "
        f"(arrays missing, extra or reshaped: {', '.join(wrong[:5])}): export it again from "
        "its workdir with compgen.export(compgen.load(workdir), folder).")
  params = traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in found.items()}, sep="/")
  return Model(config, str(folder), autoencoder, params, int(arrays["step"]))


def pretrained(name: str = "sprites64") -> Model:
  """A model shipped with compgen (`compgen/pretrained/<name>`; nothing is downloaded),
  loaded like `load`: e.g. `compgen.invert(compgen.pretrained(), ood_images)`."""
  names = sorted(os.listdir(PRETRAINED_DIR)) if os.path.isdir(PRETRAINED_DIR) else []
  if name not in names:
    raise ValueError(f"No shipped model {name!r}: choose one of {names}.")
  return load(os.path.join(PRETRAINED_DIR, name))


def fit(config: ml_collections.ConfigDict | str, workdir: str) -> Model:
  """Trains (or resumes, or finds finished) the configured autoencoder on ID data (Eq. 4.2)
  in `workdir`, like `python -m compgen.train`; returns it loaded. `config`: a config or its
  spec string ("configs/sprites.py:quickstart")."""
  config = config_lib.check_values(_config(config, "fit"))
  train_lib.train_and_evaluate(config, workdir)
  return load(workdir, config)


def invert(model: Model, x, z0=None, record_steps=(), **search_settings) -> dict[str, Any]:
  """Batched gradient search z* = argmin_z ‖x − f̂(z)‖² (Eq. 4.3) from z0 (default: ĝ(x)).

  x: [B, ...]; z0: [B, K, m] or [B, R, K, m]. `search_settings` override `config.search`
  (num_steps, learning_rate, tol, restarts, regularizer, reg_weight, prior, micro_batch).
  Returns numpy arrays: z [B, K, m] (the best iterate), mse [B], trace [B, T] (objective per
  step), converged [B], converged_step [B], finite [B] (False: the objective went NaN/Inf and
  z is the best finite iterate; also printed), z0 [B, K, m] and mse0 [B] (the start and its
  error); with `record_steps`, also "iterates": {step: z [B, K, m]} from the first start.
  The perception of the jobs (`compgen.inversion.perception`: its prior sample, restarts and
  random streams), so the experiment's search latents of the same images are what it returns.
  """
  config = _with_settings(model.config, "search", search_settings, "invert")
  key = ("perception", repr(sorted(config.search.to_dict().items())))
  perception = model.memo(key, lambda: perception_lib.Perception.of(
      config, model.autoencoder, parallel.make_mesh(config.mesh), model.prior_latents))
  if isinstance(x, dict):
    raise checks.DataError(
        f"compgen.invert: x is a dict (keys {sorted(x)}), not an array: pass its images, e.g. "
        'compgen.invert(model, model.data(...)["image"]).')
  x = np.asarray(x)
  checks.check_batch(x, "compgen.invert: x")
  x = x.astype(np.float32)
  if z0 is not None:
    z0 = np.asarray(z0)
    checks.check_batch(z0, "compgen.invert: z0", name="start latents", unit_range=False)
  start = model.encode(x) if z0 is None else z0.astype(np.float32)
  out = perception(model.params, x, start, desc="compgen.invert")
  first = start if start.ndim == 3 else start[:, 0]
  out["z0"] = first
  out["mse0"] = np.asarray(models.per_example_mse(model.decode(first)["output"], x))
  if record_steps:
    out["iterates"] = {step: np.asarray(z) for step, z in perception.searcher.iterates(
        model.params, x, first, record_steps).items()}
  return out


def replay_encoder(model: Model, **replay_settings) -> Model:
  """Generative replay (Eq. 4.4): trains an encoder on f̂(ẑ), ẑ from a factorised prior of
  ID latents, like `python -m compgen.replay` (in `{workdir}/replay`, resumed or reused).
  `replay_settings` override `config.replay` (prior, num_steps, init, loss, ...).
  Returns the model with the replay-trained encoder."""
  config = _with_settings(model.config, "replay", replay_settings, "replay_encoder")
  replay_lib.replay_and_evaluate(config, model.workdir)
  params = replay_lib.replay_encoder_params(config, model.workdir, model.params,
                                            parallel.make_mesh(config.mesh))
  return Model(config, model.workdir, model.autoencoder, params, model.step, "replay")


def evaluate(model: Model) -> dict[str, dict[str, dict]]:
  """Identifiability (readouts fitted on ID latents, applied ID and OOD) and reconstruction
  of the four perception methods — encoder, search, replay_encoder, replay_search — as in
  the experiment job: {method: {"id" | "ood": {"identifiability", "per_factor", "recon_mse",
  "recon_r2", ...}}}. Needs a replay run (`replay_encoder(model)`) in the workdir."""
  if not files.path(model.workdir, "replay", "checkpoints").exists():
    raise checkpoints.CheckpointError(
        f"evaluate scores the replay-trained encoder too, and {model.workdir} has no replay "
        "run: call compgen.replay_encoder(model) first.")
  config = model.config
  bench = perceived_lib.load_benchmark(config)
  perceived = experiment_lib.infer_latents(config, model.workdir, bench,
                                           parallel.make_mesh(config.mesh))
  return experiment_lib.score_methods(config, perceived, bench, config.seed)


def run_experiment(config: ml_collections.ConfigDict | str, workdir: str,
                   overwrite: bool = False) -> dict:
  """The whole experiment (`python -m compgen.experiment`): results dict, also written to
  `{workdir}/results.json`, results.md and figures. `config`: a config or its spec string."""
  return experiment_lib.run_experiment(_config(config, "run_experiment"), workdir, overwrite)
