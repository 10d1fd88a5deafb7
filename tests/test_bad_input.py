"""Bad input gets a clear error naming the problem and the fix: images of the wrong shape,
dtype or range for a model, latents of the wrong slot count or dim, empty batches, NaN in a
batch, unknown or ill-typed config keys, config values that cannot mean anything, misspelt
keyword settings of the API, a job's user errors as one message, unknown prior names, and a
TFDS data_dir of another dataset version or builder config.

Already tested elsewhere, not repeated here: unknown decoder / encoder names with the list of
valid ones (tests/models/test_models.py), a workdir of another config
(tests/training/test_train.py) and a missing trained model (tests/inversion/test_jobs.py).
"""
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import compgen
from compgen import cli, config_lib, models, parallel
from compgen.data import checks, pipeline, tfds_builders
from compgen.inversion import perception, priors, replay, search
from compgen.training import train_lib

DataError = pipeline.DataError
IMAGE = (8, 8, 3)
K, M = 2, 3
SMOKE = "configs/sprites.py:smoke"


def _autoencoder(decoder, output_shape):
  cfg = config_lib.model_config(slot_dim=M)
  cfg.decoder = decoder
  cfg.encoders.cnn.update(channels=(4,), hidden=8)
  cfg.decoders[decoder].update(hidden=(8,), num_frequencies=2)
  return models.Autoencoder(models.make_encoder(cfg, K), models.make_decoder(cfg, output_shape))


@pytest.fixture(scope="module")
def image_model():
  """A tiny compgen.Model for 8x8x3 images, K=2 slots of m=3 dims. Its params are zeros of
  the right shapes: every check here fires on the host or while tracing, before a compile."""
  autoencoder = _autoencoder("alpha", IMAGE)
  shapes = jax.eval_shape(autoencoder.init, jax.random.PRNGKey(0), jnp.zeros((1,) + IMAGE))
  params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  assert jax.eval_shape(autoencoder.encode, params, jnp.zeros((2,) + IMAGE))["mean"].shape == (
      2, K, M)  # the right shapes pass
  config = config_lib.base_config("sprites")
  config_lib.apply_smoke(config)
  return compgen.Model(config, "/nonexistent", autoencoder, params, 0)


def _images(n=3, seed=0):
  return np.random.default_rng(seed).uniform(size=(n,) + IMAGE).astype(np.float32)


# --- the model boundary: static shape and dtype checks (trace time, so also under jit) ------

@pytest.mark.parametrize("x, match", [
    (jnp.zeros((2, 16, 16, 3)), r"images of shape \(B, 16, 16, 3\), but this model was trained "
                                r"on \(8, 8, 3\) images: give 8x8x3 images"),
    (jnp.zeros((2, 8, 8, 1)), r"\(B, 8, 8, 1\).*trained on \(8, 8, 3\)"),
    (jnp.zeros(IMAGE), r"without a batch axis.*\(B, 8, 8, 3\); use x\[None\]"),
    (jnp.zeros((0,) + IMAGE), r"Empty batch"),
    (jnp.zeros((2,) + IMAGE, jnp.uint8), r"dtype uint8.*float32 in \[0, 1\] with "
                                          r"compgen.data.pipeline.to_model_inputs"),
    (jnp.zeros((2,) + IMAGE, jnp.int32), r"dtype int32.*give float32"),
])
def test_model_refuses_images_of_the_wrong_shape_or_dtype(image_model, x, match):
  with pytest.raises(DataError, match=match):
    jax.eval_shape(image_model.autoencoder.encode, image_model.params, x)  # traced, as by jit


@pytest.mark.parametrize("z, match", [
    (jnp.zeros((2, 3, M)), r"latents of shape \(B, 3, 3\), but this model has K=2 slots of m=3 "
                           r"dims: give z as \[B, 2, 3\]"),
    (jnp.zeros((2, K, 4)), r"\(B, 2, 4\).*K=2 slots of m=3"),
    (jnp.zeros((2, K * M)), r"\(B, 6\).*give z as \[B, 2, 3\]"),
    (jnp.zeros((0, K, M)), r"Empty batch"),
    (jnp.zeros((2, K, M), jnp.int32), r"float32 latents"),
])
def test_model_refuses_latents_of_the_wrong_slot_count_dim_or_dtype(image_model, z, match):
  with pytest.raises(DataError, match=match):
    jax.eval_shape(image_model.autoencoder.decode, image_model.params, z)


def test_vector_model_names_the_vector_size():
  model = _autoencoder("additive", (6,))
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 6)))
  assert jax.eval_shape(model.encode, params, jnp.zeros((4, 6)))["mean"].shape == (4, K, M)
  with pytest.raises(DataError, match=r"inputs of shape \(B, 5\), but this model was trained on "
                                      r"\(6,\) inputs: give vectors of 6 dims"):
    jax.eval_shape(model.encode, params, jnp.zeros((4, 5)))


# --- values at the host entry points: NaN, range, uint8, empty ------------------------------

def test_model_encode_and_decode_check_values_and_name_the_bad_examples(image_model):
  x = _images()
  checks.check_batch(x, "good data passes")
  nan = x.copy()
  nan[1, 2, 3, 0] = np.nan
  with pytest.raises(DataError, match=r"compgen.Model.encode: x: images at index \[1\] \(of 3\) "
                                      r"hold NaN/Inf values; drop or fix them"):
    image_model.encode(nan)
  with pytest.raises(DataError, match=r"images at index \[0, 1, 2\] \(of 3\) have values outside "
                                      r"\[0, 1\] \(found \[0, 255\]\).*divide 0..255 pixels by 255"):
    image_model.encode(np.round(x * 255))
  with pytest.raises(DataError, match=r"dtype uint8.*to_model_inputs"):
    image_model.encode((x * 255).astype(np.uint8))
  with pytest.raises(DataError, match=r"empty batch of images \(shape \(0, 8, 8, 3\)\)"):
    image_model.encode(x[:0])
  with pytest.raises(DataError, match=r"trained on \(8, 8, 3\) images"):
    image_model.encode(np.zeros((2, 4, 4, 3), np.float32))
  z = np.zeros((4, K, M), np.float32)
  z[3, 1, 2] = np.inf
  with pytest.raises(DataError, match=r"compgen.Model.decode: z: latents at index \[3\] \(of 4\) "
                                      r"hold NaN/Inf"):
    image_model.decode(z)


def test_invert_checks_images_and_start_latents(image_model):
  x = _images(4)
  x[2, 0, 0, 0] = np.nan
  with pytest.raises(DataError, match=r"compgen.invert: x: images at index \[2\] \(of 4\)"):
    compgen.invert(image_model, x)
  z0 = np.zeros((4, K, M), np.float32)
  z0[0] = np.nan
  with pytest.raises(DataError, match=r"compgen.invert: z0: start latents at index \[0\]"):
    compgen.invert(image_model, _images(4), z0)
  with pytest.raises(DataError, match=r"\[0, 1\]"):
    compgen.invert(image_model, _images(4) * 2)


def _identity(params, z):
  del params
  return z.reshape(len(z), -1)


def test_searcher_names_non_finite_images_and_starts_and_can_be_told_not_to(capsys):
  searcher = search.Searcher(_identity, num_steps=2)
  x, z0 = np.zeros((4, 6), np.float32), np.zeros((4, 2, 3), np.float32)
  fix = r"drop or fix them, or pass Searcher\(check_inputs=False\) to search them anyway"
  bad_x = x.copy()
  bad_x[2, 1] = np.nan
  with pytest.raises(DataError, match=r"Searcher: x: images at index \[2\] \(of 4\) hold NaN/Inf "
                                      r"values; " + fix):
    searcher(None, bad_x, z0)
  with pytest.raises(DataError, match=r"Searcher: x: images at index \[2\]"):  # on the device
    searcher(None, jnp.asarray(bad_x), jnp.asarray(z0))
  restarts = np.zeros((4, 3, 2, 3), np.float32)
  restarts[1, 2, 0, 0] = -np.inf  # one restart of image 1
  with pytest.raises(DataError, match=r"Searcher: z0: start latents at index \[1\] \(of 4\)"):
    searcher(None, x, restarts)
  with pytest.raises(DataError, match=r"dtype int64.*give float32"):
    searcher(None, x.astype(np.int64), z0)
  many = np.full((15, 6), np.nan, np.float32)
  with pytest.raises(DataError, match=r"index \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] and 5 more"):
    searcher(None, many, np.zeros((15, 2, 3), np.float32))
  with pytest.raises(DataError, match=r"Searcher: x: images at index \[5\] \(of 6\)"):
    search.stream_search(searcher, None, np.concatenate([x, x[:1], bad_x[2:3]]),
                         np.zeros((6, 2, 3), np.float32), batch_size=2, chunk_steps=1, max_steps=2)
  unchecked_searcher = search.Searcher(_identity, num_steps=2, check_inputs=False)
  unchecked = unchecked_searcher(None, bad_x, z0)
  np.testing.assert_array_equal(np.asarray(unchecked.finite), [True, True, False, True])
  # a diverged image is reported, never masked, by every batched way of searching
  streamed = search.stream_search(unchecked_searcher, None, bad_x, z0, batch_size=2,
                                  chunk_steps=1, max_steps=2)
  np.testing.assert_array_equal(streamed["finite"], [True, True, False, True])
  mesh = parallel.make_mesh(ml_collections.ConfigDict({"data": 1, "fsdp_min_size": 0}))
  batched = perception.search_all(unchecked_searcher, None, bad_x, z0, mesh, batch_size=3)
  np.testing.assert_array_equal(batched["finite"], [True, True, False, True])
  perception.report_diverged(batched["finite"], "search test_ood")
  assert ("WARNING: search test_ood: the objective went NaN/Inf for 1 of 4 images (index [2])"
          in capsys.readouterr().out)


# --- config keys and names ------------------------------------------------------------------

def _parse(argv, capsys):
  """cli.parse_flags on a fresh flag set with --config: returns (exit code, stderr)."""
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config", flag_values=flag_values,
                                  sys_argv=argv)
  with pytest.raises(SystemExit) as exit_info:
    cli.parse_flags(argv, flag_values)
  return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("override, match", [
    ("--config.train.lerning_rate=1",
     r"Unknown config key 'train.lerning_rate': config.train has no 'lerning_rate' \(it has "
     r"\['batch_size', .*\]\). Did you mean optim.learning_rate, search.learning_rate or "
     r"replay.optim.learning_rate\?"),
    ("--config.lerning_rate=1", r"Unknown config key 'lerning_rate': the config has no "
                                r"'lerning_rate' \(it has \['data', .*optim.learning_rate"),
    ("--config.trian.num_steps=1", r"the config has no 'trian'.*Did you mean train.num_steps"),
    ("--config.train.num_steps=abc",
     r"flag --config.train.num_steps=abc: invalid literal for int\(\).*"
     r"--config.train.num_steps takes an int \(it is 4 in configs/sprites.py:smoke\)"),
    ("--config.model.variational=maybe", r"--config.model.variational takes a bool"),
])
def test_parse_flags_names_a_bad_config_override(capsys, override, match):
  code, err = _parse(["job", f"--config={SMOKE}", override], capsys)
  assert code == 1
  assert err.startswith("FATAL Flags parsing error: ") and "Traceback" not in err, err
  assert len(err.splitlines()) == 2, err
  assert re.search(match, err), err


def test_get_config_names_a_bad_key_or_type():
  with pytest.raises(KeyError, match=r"Did you mean optim.learning_rate"):
    compgen.get_config(SMOKE, {"train.lerning_rate": 1.0})
  with pytest.raises(TypeError, match=r"Config key 'train.num_steps' takes an int \(it is 4\), "
                                      r"not 'abc' \(str\)"):
    compgen.get_config(SMOKE, {"train.num_steps": "abc"})


def _train(tmp_path, *overrides, env=None):
  workdir = tmp_path / "run"
  proc = subprocess.run([sys.executable, "-m", "compgen.train", f"--config={SMOKE}",
                         f"--workdir={workdir}", *overrides], capture_output=True, text=True,
                        timeout=120, check=False, env={**os.environ, **(env or {})})
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert not workdir.exists()  # refused before the job started
  return proc.stderr


def test_train_job_refuses_a_value_of_the_wrong_type(tmp_path):
  err = _train(tmp_path, "--config.train.num_steps=abc")
  assert "flag --config.train.num_steps=abc: invalid literal for int()" in err, err
  assert "Traceback" not in err, err


def test_train_job_refuses_an_unknown_config_key_in_one_line(tmp_path):
  err = _train(tmp_path, "--config.train.lerning_rate=1")
  assert "Traceback" not in err, err[-2000:]
  assert "Unknown config key 'train.lerning_rate'" in err and "optim.learning_rate" in err, err


@pytest.mark.parametrize("overrides, match", [
    ({"train.num_steps": -5}, r"config.train.num_steps=-5: must be >= 1"),
    ({"train.batch_size": 0}, r"config.train.batch_size=0: must be >= 1"),
    ({"optim.learning_rate": 0.0}, r"config.optim.learning_rate=0.0: must be > 0"),
    ({"loss.beta": -0.1}, r"config.loss.beta=-0.1: must be >= 0"),
    ({"optim.end_learning_rate_fraction": 1.5},
     r"end_learning_rate_fraction=1.5: must be in \[0, 1\]"),
    ({"data.min_visibility": 0.0}, r"config.data.min_visibility=0.0: must be in \(0, 1\]"),
    ({"search.micro_batch": -2}, r"search.micro_batch=-2: must be >= 0, or -1 for auto"),
    ({"search.num_examples": 0}, r"search.num_examples=0: must be >= 1, or -1 for all"),
    ({"model.decoders.additive.hidden": (32, 0)}, r"additive.hidden=\(32, 0\): sizes must be"),
    ({"experiment.seeds": 0, "replay.num_steps": -1},
     r"replay.num_steps=-1: must be >= 1; config.experiment.seeds=0: must be >= 1. Set them"),
])
def test_config_values_that_cannot_mean_anything_are_refused_naming_the_key(overrides, match):
  with pytest.raises(config_lib.ConfigError, match=match):
    compgen.get_config(SMOKE, overrides)
  for sentinel in ({"search.micro_batch": -1}, {"mesh.data": -1}, {"search.num_examples": -1},
                   {"experiment.control_seeds": 0}, {"loss.beta": 0.0}):
    compgen.get_config(SMOKE, sentinel)  # the values that mean "auto", "all", "none", "off"


def test_every_variant_of_every_config_file_has_values_that_mean_something(
    config_of, monkeypatch):
  allowed = {}
  real = config_lib.parse_variants
  def recording(arg, names, exclusive=None):
    allowed.setdefault("names", names)
    return real(arg, names, exclusive)
  monkeypatch.setattr(config_lib, "parse_variants", recording)
  for name in ("sprites", "synthetic"):
    allowed.clear()
    config_lib.check_values(config_of(name))
    for variant in allowed["names"]:
      config_lib.check_values(config_of(name, variant))
      config_lib.check_values(config_of(name, f"{variant},smoke"))


def test_a_named_setting_outside_its_choices_is_refused_before_any_compute(tmp_path, config_of):
  with pytest.raises(config_lib.ConfigError, match=r"config.search.init='encodr': must be one of "
                     r"\('encoder', .*config.optim.decay='step': must be one of"):
    compgen.get_config(SMOKE, {"search.init": "encodr", "optim.decay": "step"})
  config = config_of("sprites", "smoke")
  config.replay.init = "pretrained"
  with pytest.raises(config_lib.ConfigError, match=r"config.replay.init='pretrained'"):
    replay.replay_and_evaluate(config, str(tmp_path))  # before it looks for a trained model
  config.replay.init, config.experiment.readout_fit = "scratch", "mine"
  with pytest.raises(config_lib.ConfigError, match=r"config.experiment.readout_fit='mine'"):
    train_lib.train_and_evaluate(config, str(tmp_path))
  assert not any(tmp_path.iterdir())  # nothing written


def test_variants_that_set_the_same_thing_are_refused_together(config_of):
  for name, spec, what in (("sprites", "quickstart,bench64", "the image size"),
                           ("sprites", "conv,transformer_vae", "model.decoder"),
                           ("sprites", "held_out,iid", "data.split.scheme"),
                           ("sprites", "slot_attention,conv_encoder,smoke", "model.encoder"),
                           ("synthetic", "n1,mlp", "the interaction")):
    with pytest.raises(config_lib.ConfigError, match=f"Config variants .* both set {what}"):
      config_of(name, spec)
  config_of("sprites", "transformer_vae,vae,overlap,fast32")  # of different groups: combined


def test_api_settings_are_checked_like_the_command_line(image_model, tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r"compgen.invert\(num_stepz=...\): Unknown "
                     r"config key 'search.num_stepz'.*Did you mean search.num_steps"):
    compgen.invert(image_model, _images(2), num_stepz=3)
  with pytest.raises(config_lib.ConfigError, match=r"config.search.num_steps=0: must be >= 1"):
    compgen.invert(image_model, _images(2), num_steps=0)
  with pytest.raises(config_lib.ConfigError, match=r"compgen.invert\(learning_rate=...\): "
                     r"Config key 'search.learning_rate' takes a float"):
    compgen.invert(image_model, _images(2), learning_rate="fast")
  with pytest.raises(config_lib.ConfigError, match=r"compgen.replay_encoder\(nun_steps=...\):"
                     r".*Did you mean replay.num_steps"):
    compgen.replay_encoder(image_model, nun_steps=3)
  with pytest.raises(TypeError, match=r"compgen.fit takes a config \(compgen.get_config\("):
    compgen.fit(image_model, str(tmp_path / "w"))
  with pytest.raises(config_lib.ConfigError, match=r"train.num_steps=-5"):
    config = compgen.get_config(SMOKE)
    config.train.num_steps = -5  # set after get_config: checked where it is used
    compgen.run_experiment(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_a_jobs_user_errors_are_one_message_and_its_bugs_keep_their_traceback(tmp_path):
  """A bad config value, and data whose splits disagree (found before training): one message
  naming the problem and the fix, exit status 1, no workdir; COMPGEN_TRACEBACK=1 shows it."""
  err = _train(tmp_path, "--config.train.num_steps=-5")
  assert err.strip() == ("compgen: ConfigError: config.train.num_steps=-5: must be >= 1. Set it "
                         "to a value that means something (defaults: compgen/config_lib.py)."), err
  rng = np.random.default_rng(0)
  for split, side in (("train", 16), ("test_id", 16), ("test_ood", 32)):
    np.savez(tmp_path / f"{split}.npz", image=rng.uniform(size=(4, side, side, 3)),
             latents=rng.uniform(size=(4, 2, 3)))
  npz = ["--config.data.dataset=npz", f"--config.data.npz_path={tmp_path}"]
  err = _train(tmp_path, *npz)
  assert err.startswith("compgen: DataError: ") and len(err.strip().splitlines()) == 1, err
  assert "'image' [N, H, W, C] is float64 [N, 32, 32, 3] in test_ood but" in err, err
  err = _train(tmp_path, *npz, env={"COMPGEN_TRACEBACK": "1"})
  assert "Traceback (most recent call last)" in err and "DataError" in err, err[-2000:]


def test_unknown_prior_lists_the_valid_ones():
  latents = np.random.default_rng(0).normal(size=(8, K, M))
  with pytest.raises(ValueError, match=r"Unknown prior 'flow': choose one of "
                                       r"\('empirical', 'gaussian', 'kde'\)"):
    priors.fit_prior("flow", latents)


# --- a TFDS data_dir of another dataset version or builder config ---------------------------

NAME = "compgen_sprites/diagonal_tiny"


def _tfds_config(data_dir):
  """config.data that describes compgen_sprites/diagonal_tiny, read from `data_dir`."""
  data = config_lib.data_config("sprites")
  data.source, data.tfds_config, data.tfds_data_dir = "tfds", "diagonal_tiny", str(data_dir)
  data.sprites.resolution = 16
  data.num_train, data.num_test_id, data.num_test_ood = 256, 128, 128
  return data


def test_a_config_that_describes_other_data_than_its_builder_config_is_refused(tmp_path):
  data = _tfds_config(tmp_path)
  data.sprites.resolution = 32  # e.g. configs/sprites.py:fast32,tfds
  with pytest.raises(pipeline.DataError,
                     match=r"config.data does not describe compgen_sprites/diagonal_tiny: "
                           r"generator.resolution: the builder renders 16, config.data says 32"):
    pipeline.load_split(data, "train")
  assert not (tmp_path / "compgen_sprites").exists()  # refused before building anything


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """A data_dir with compgen_sprites/diagonal_tiny built by this compgen."""
  data_dir = tmp_path_factory.mktemp("tfds")
  assert len(pipeline.load_split(_tfds_config(data_dir), "test_id")) == 128
  return data_dir


def _copy(prepared, tmp_path):
  shutil.copytree(prepared, tmp_path / "tfds")
  return tmp_path / "tfds", tmp_path / "tfds" / NAME


def test_prepared_dataset_records_its_builder_config_and_is_read_again(prepared):
  stored = json.loads((prepared / NAME / "1.1.0" / "metadata.json").read_text())["spec"]
  assert stored["generator"]["resolution"] == 16 and stored["num_train"] == 256
  tfds_builders.check_prepared(NAME, str(prepared))
  assert len(pipeline.load_split(_tfds_config(prepared), "train")) == 256


def test_data_dir_of_another_dataset_version_is_refused(prepared, tmp_path):
  data_dir, root = _copy(prepared, tmp_path)
  (root / "1.1.0").rename(root / "0.9.0")
  with pytest.raises(DataError, match=r"holds version 0\.9\.0 of compgen_sprites/diagonal_tiny, "
                                      r"but this compgen builds and reads version 1\.1\.0.*Delete "
                                      r".*diagonal_tiny \(it is rebuilt on first use\) or point "
                                      r"data.tfds_data_dir elsewhere"):
    pipeline.load_split(_tfds_config(data_dir), "train")
  assert not (root / "1.1.0").exists()  # nothing built next to it


def test_data_dir_prepared_from_another_builder_config_is_refused(prepared, tmp_path):
  data_dir, root = _copy(prepared, tmp_path)
  meta = root / "1.1.0" / "metadata.json"
  record = json.loads(meta.read_text())
  record["spec"]["generator"]["resolution"] = 32
  record["spec"]["num_train"] = 100
  meta.write_text(json.dumps(record))
  with pytest.raises(DataError, match=r"was prepared from another builder config than this "
                                      r"compgen's compgen_sprites/diagonal_tiny \(version 1\.1\.0\): "
                                      r"generator.resolution: found 32, expected 16; num_train: "
                                      r"found 100, expected 256\. Delete"):
    pipeline.load_split(_tfds_config(data_dir), "test_id")
  meta.unlink()
  with pytest.raises(DataError, match=r"holds no record of the builder config"):
    pipeline.load_split(_tfds_config(data_dir), "test_id")
