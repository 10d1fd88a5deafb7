"""Test set-up, before jax loads: 8 virtual CPU devices (so sharding code runs on one CPU),
and one persistent XLA compilation cache for the whole session, shared by the xdist workers
and by the jobs the tests start as subprocesses (they inherit the environment), so that the
same smoke models compile once rather than in every process. The cache is new for each
session (unless JAX_COMPILATION_CACHE_DIR is set) and removed at its end; a size limit turns
on jax's file lock around every read and write, which the concurrent processes need. The
jobs the tests start write every compilation (they repeat each other's: tests/test_faults.py
147 s against 203 s with only ≥ 1 s written; tests/inversion/test_jobs.py with
tests/test_parallel.py 191 s against 234 s), the test processes only those of ≥ 1 s (jax's
default): writing every small one costs the in-process tests more than they gain.

Fixtures every test module may ask for: `repo_root` (the repository's folder), `config_of`
(a config file of configs/ with variants, loaded as the jobs load it) and `train_encoder` (an
MLP encoder trained by optax steps on batches of a sampler)."""
import atexit
import os
import shutil
import tempfile

import pytest

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process of the session
  _CACHE = tempfile.mkdtemp(prefix="compgen-tests-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(16 << 30))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # the subprocesses'


def pytest_configure(config):  # pylint: disable=unused-argument
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@pytest.fixture(scope="session")
def repo_root() -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def config_of(repo_root):
  """(name, variants="") -> `get_config(variants)` of configs/{name}.py."""
  from compgen import config_lib  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS)
  return lambda name, variants="": config_lib.load_config(
      os.path.join(repo_root, "configs", f"{name}.py") + (f":{variants}" if variants else ""))


@pytest.fixture(scope="session")
def train_encoder():
  """(sampler, sampler_args, steps=800, seed=0, dim=16, slot_dim=3) -> ĝ: an MLP encoder
  trained on `sampler` batches (x [B, dim], z [B, 2, slot_dim]) by optax steps."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from compgen import config_lib, models  # pylint: disable=g-import-not-at-top
  from compgen.inversion import replay  # pylint: disable=g-import-not-at-top
  from compgen.training import optimizers, resumable  # pylint: disable=g-import-not-at-top

  def train(sampler, sampler_args, steps=800, seed=0, dim=16, slot_dim=3):
    cfg = config_lib.model_config(slot_dim=slot_dim)
    encoder = models.make_encoder(cfg, num_slots=2)
    params = encoder.init(jax.random.PRNGKey(seed), jnp.zeros((1, dim)))["params"]
    optimizer = optimizers.make_optimizer(config_lib.training_config().optim, steps)
    encode = lambda p, x: encoder.apply({"params": p}, x)["mean"]
    step = jax.jit(replay.make_encoder_step(encode, sampler, optimizer))
    state = resumable.TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))
    for i in range(steps):
      state, _ = step(state, jax.random.PRNGKey(i), *sampler_args)
    return lambda x: encode(state.params, x)
  return train
