"""Scale-out: the same jobs on 1 device, 8 devices (FSDP too) and 2 processes agree; the launch
scripts' command lines.

Tolerance: parameters and latents agree to rtol 1e-4 / atol 1e-5 across device counts (the
only difference is the order of floating-point reductions); the data seen is identical.
"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from compgen import parallel
from compgen.inversion import replay as replay_lib
from compgen.inversion import search_job
from compgen.training import train_lib, trained

TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module")
def smoke_on(config_of):
  """(devices, fsdp_min_size=0) -> the sprites smoke config on that data mesh."""
  def make(devices, fsdp_min_size=0):
    config = config_of("sprites", "smoke")
    config.mesh.data = devices
    config.mesh.fsdp_min_size = fsdp_min_size
    return config
  return make


def _run_jobs(config, workdir):
  """Train, search, replay in `workdir`: (final train state, search latents, replay summary)."""
  state = train_lib.train_and_evaluate(config, workdir)
  search_job.search_and_save(config, workdir)
  replay = replay_lib.replay_and_evaluate(config, workdir)
  latents = {s: np.load(os.path.join(workdir, "search", f"{s}.npz"))["z"]
             for s in ("test_id", "test_ood")}
  return state, latents, replay


def _assert_trees_close(a, b):
  for x, y in zip(jax.tree.leaves(parallel.to_host(a)), jax.tree.leaves(parallel.to_host(b)),
                  strict=True):
    np.testing.assert_allclose(x, y, **TOL)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, smoke_on):
  workdir = str(tmp_path_factory.mktemp("one_device"))
  return (workdir,) + _run_jobs(smoke_on(1), workdir)


def test_eight_devices_give_the_one_device_results(one_device, tmp_path, smoke_on):
  _, state1, latents1, replay1 = one_device
  state8, latents8, replay8 = _run_jobs(smoke_on(8), str(tmp_path))
  _assert_trees_close(state1.params, state8.params)
  for split in latents1:
    np.testing.assert_allclose(latents1[split], latents8[split], **TOL)
  for split, value in replay1["encoders"]["replay_encoder"].items():
    assert replay8["encoders"]["replay_encoder"][split] == pytest.approx(value, rel=1e-3)


def test_global_batch_is_split_over_the_devices():
  mesh = parallel.make_mesh(None)
  batch = parallel.put_batch({"x": np.zeros((16, 4, 4, 3), np.float32)}, mesh)["x"]
  assert batch.shape == (16, 4, 4, 3) and len(batch.addressable_shards) == 8
  assert {s.data.shape for s in batch.addressable_shards} == {(2, 4, 4, 3)}
  assert {s.device for s in batch.addressable_shards} == set(jax.devices())


def test_fsdp_shards_large_arrays_and_trains_like_replication(one_device, tmp_path, smoke_on):
  _, state1, _, _ = one_device
  config = smoke_on(8, fsdp_min_size=1024)
  config.train.num_steps = 4
  state = train_lib.train_and_evaluate(config, str(tmp_path))
  specs = {tuple(leaf.sharding.spec) for leaf in jax.tree.leaves(state.params)
           if leaf.size >= 1024}
  assert specs and all(parallel.DATA_AXIS in spec for spec in specs)
  small = [leaf for leaf in jax.tree.leaves(state.params) if leaf.size < 1024]
  assert all(leaf.sharding.is_fully_replicated for leaf in small)
  adam_mu = [leaf for leaf in jax.tree.leaves(state.opt_state) if leaf.size >= 1024]
  assert all(parallel.DATA_AXIS in tuple(leaf.sharding.spec) for leaf in adam_mu)
  _assert_trees_close(state1.params, state.params)


def test_state_sharding_picks_the_largest_divisible_dimension():
  mesh = parallel.make_mesh(None)
  shapes = {"w": jax.ShapeDtypeStruct((6, 64), np.float32),
            "odd": jax.ShapeDtypeStruct((9, 7), np.float32),
            "b": jax.ShapeDtypeStruct((8,), np.float32)}
  spec = {k: tuple(v.spec) for k, v in parallel.state_sharding(shapes, mesh, 40).items()}
  assert spec == {"w": (None, "data"), "odd": (), "b": ()}
  assert all(not s for s in (tuple(v.spec) for v in
                             parallel.state_sharding(shapes, mesh, 0).values()))


def test_mesh_settings_are_checked(smoke_on):
  config = smoke_on(9)
  with pytest.raises(ValueError, match="mesh.data=9"):
    parallel.make_mesh(config.mesh)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def gpu_multi(repo_root):
  """(job, workdir, port) -> stdout of two processes with two CPU devices each, started by
  launch/gpu_multi.sh."""
  def run(job, workdir, port):
    env = dict(os.environ, JOB=job, LOCAL_PROCESSES="2", PORT=str(port), PYTHON=sys.executable,
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=repo_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(["bash", os.path.join(repo_root, "launch", "gpu_multi.sh"),
                           "configs/sprites.py:smoke", workdir], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
  return run


@pytest.mark.slow
def test_two_processes_train_and_search_like_one(one_device, tmp_path, gpu_multi, smoke_on):
  workdir1, state1, latents1, _ = one_device
  workdir = str(tmp_path / "two_processes")
  out = gpu_multi("train", workdir, _free_port())
  assert "[p0] test_ood" in out and "[p1] test_ood" not in out  # process 0 reports
  rows = (tmp_path / "two_processes" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == len((open(os.path.join(workdir1, "metrics.jsonl")).readlines()))
  # Restore in this single process (8 devices) what 2 processes x 2 devices saved.
  config = smoke_on(-1)
  _, params, step = trained.restore_trained(config, workdir)
  assert step == 4
  _assert_trees_close(state1.params, params)
  gpu_multi("search", workdir, _free_port())
  for split, z in latents1.items():
    np.testing.assert_allclose(np.load(os.path.join(workdir, "search", f"{split}.npz"))["z"],
                               z, **TOL)


@pytest.fixture(scope="module")
def tpu_pod(repo_root):
  """(*args, **env) -> the finished launch/tpu_pod.sh *args."""
  return lambda *args, **env: subprocess.run(
      ["bash", os.path.join(repo_root, "launch", "tpu_pod.sh"), *args],
      env=dict(os.environ, **env), capture_output=True, text=True)


def test_tpu_pod_command_line(tpu_pod):
  proc = tpu_pod("my-tpu", "us-central2-b", "configs/sprites.py:fast32", "gs://bucket/run",
                  "--config.seed=1", DRY_RUN="1", REPO="https://example.org/compgen.git",
                  REV="abc123", JOB="search")
  assert proc.returncode == 0, proc.stderr
  cmd = proc.stdout
  assert cmd.startswith("gcloud compute tpus tpu-vm ssh my-tpu --zone=us-central2-b "
                        "--worker=all --command=")
  remote = subprocess.run(["bash", "-c", f"printf '%s\\n' {cmd}"], capture_output=True,
                          text=True).stdout.splitlines()[-1]
  assert remote.startswith("--command=set -e; [ -d compgen ] || git clone -q "
                           "https://example.org/compgen.git compgen; cd compgen;")
  assert "git checkout -q abc123;" in remote
  assert "pip install -q -e '.[gcs]' 'jax[tpu]' -c launch/constraints.txt;" in remote
  assert remote.endswith("COMPGEN_DISTRIBUTED=1 python3 -m compgen.search "
                         "--config=configs/sprites.py:fast32 --workdir=gs://bucket/run "
                         "--config.seed=1")


def test_tpu_pod_refuses_a_local_workdir(tpu_pod):
  proc = tpu_pod("my-tpu", "zone", "configs/sprites.py", "/tmp/run", DRY_RUN="1")
  assert proc.returncode == 2
  assert "not a gs:// path" in proc.stderr and "gs://my-bucket" in proc.stderr
  assert tpu_pod("only-two", "args").returncode == 2


def test_distributed_start_reads_the_compgen_environment(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.setenv("COMPGEN_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  monkeypatch.setenv("COMPGEN_NUM_PROCESSES", "4")
  monkeypatch.setenv("COMPGEN_PROCESS_ID", "3")
  parallel.initialize_distributed()
  assert calls == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                    "process_id": 3}]
  for var in ("COMPGEN_COORDINATOR_ADDRESS", "COMPGEN_NUM_PROCESSES", "COMPGEN_PROCESS_ID"):
    monkeypatch.delenv(var)
  parallel.initialize_distributed()  # Cloud TPU / SLURM: JAX detects everything itself
  assert calls[-1] == {}
  monkeypatch.setenv("COMPGEN_DISTRIBUTED", "1")
  assert parallel.distributed_requested()
