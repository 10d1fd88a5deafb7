"""Test set-up, before jax loads: 8 virtual CPU devices (so sharding code runs on one CPU),
and one persistent XLA compilation cache for the whole session, shared by the xdist workers
and by the jobs the tests start as subprocesses (they inherit the environment), so that the
same smoke models compile once rather than in every process. The cache is new for each
session (unless JAX_COMPILATION_CACHE_DIR is set) and removed at its end; a size limit turns
on jax's file lock around every read and write, which the concurrent processes need. Only
compilations of ≥ 1 s are written (jax's default): writing every small one costs the
in-process tests more than the subprocesses gain (measured: tests/test_faults.py 53 s with
every compilation cached, 64 s with ≥ 1 s; two other test files 37.5 s against 35.0 s)."""
import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process of the session
  _CACHE = tempfile.mkdtemp(prefix="compgen-tests-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(16 << 30))
