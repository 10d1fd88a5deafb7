"""Fault injection: SIGTERM and kill -9 during training and replay, damaged checkpoints,
divergence. Each resumed run must end with exactly the parameters of an uninterrupted one."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from compgen import cli
from compgen import errors
from compgen import files
from compgen import parallel
from compgen.inversion import replay as replay_lib
from compgen.training import checkpoints, loop, train_lib, trained

pytestmark = pytest.mark.slow

# Long enough that a signal lands mid-run; smoke shapes keep each step a few milliseconds.
TRAIN = ["--config.train.num_steps=300", "--config.train.checkpoint_every=50",
         "--config.train.eval_every=1000", "--config.train.log_every=10"]
REPLAY = ["--config.replay.num_steps=400", "--config.replay.checkpoint_every=50",
          "--config.replay.eval_every=1000", "--config.replay.log_every=10"]


@pytest.fixture(scope="module")
def vae_smoke(config_of):
  """(overrides) -> the config the jobs of `job` run: sprites vae,smoke with `overrides`."""
  def make(overrides):
    config = config_of("sprites", "vae,smoke")  # VAE: the sampling noise must resume exactly
    for flag in overrides:
      key, value = flag[len("--config."):].split("=")
      section, name = key.split(".")
      config[section][name] = int(value)
    return config
  return make


def _leaves(tree):
  return jax.tree.leaves(jax.device_get(tree))


@pytest.fixture(scope="module")
def start_job(repo_root):
  """(name, workdir, overrides) -> `python -m compgen.{name}` of sprites vae,smoke started in
  the background (stdout and stderr piped)."""
  env = dict(os.environ, PYTHONPATH=repo_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return lambda name, workdir, overrides: subprocess.Popen(
      [sys.executable, "-m", f"compgen.{name}", "--config=configs/sprites.py:vae,smoke",
       f"--workdir={workdir}", *overrides], cwd=repo_root, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)


def _wait_for(path, proc, timeout=300):
  start = time.time()
  while not os.path.exists(path):
    if proc.poll() is not None:
      pytest.fail(f"the job ended before {path} appeared:\n{proc.stdout.read()[-3000:]}")
    if time.time() - start > timeout:
      proc.kill()
      pytest.fail(f"{path} did not appear within {timeout} s")
    time.sleep(0.05)


def _steps(directory):
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, vae_smoke):
  """Uninterrupted training, then replay, in this process."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  config = vae_smoke(TRAIN + REPLAY)
  state = train_lib.train_and_evaluate(config, workdir)
  trained_copy = str(tmp_path_factory.mktemp("trained")) + "/w"
  shutil.copytree(workdir, trained_copy)  # a trained workdir for the replay fault test
  replay_lib.replay_and_evaluate(config, workdir)
  return {"params": _leaves(state.params), "replay": _replay_encoder(config, workdir),
          "trained": trained_copy, "config": config}


def _replay_encoder(config, workdir):
  _, params, _ = trained.restore_trained(config, workdir)
  return _leaves(replay_lib.replay_encoder_params(config, workdir, params,
                                                  parallel.make_mesh(config.mesh))["encoder"])


def test_sigterm_then_kill_9_then_resume_gives_the_uninterrupted_parameters(
    reference, tmp_path, start_job, vae_smoke):
  workdir = str(tmp_path)
  ckpts = os.path.join(workdir, "checkpoints")
  proc = start_job("train", workdir, TRAIN)
  _wait_for(os.path.join(ckpts, "50"), proc)
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == cli.PREEMPTED_EXIT_CODE, out[-3000:]
  preempted_at = _steps(ckpts)[-1]
  assert 50 < preempted_at < 300
  assert f"train preempted: saved a checkpoint at step {preempted_at}" in out

  proc = start_job("train", workdir, TRAIN)  # resumes, then dies without warning
  _wait_for(os.path.join(ckpts, str((preempted_at // 50 + 1) * 50)), proc)
  proc.kill()
  proc.wait()
  killed_after = _steps(ckpts)[-1]
  assert killed_after > preempted_at

  proc = start_job("train", workdir, TRAIN)
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out[-3000:]
  assert f"Resumed from {ckpts}/{killed_after}" in out
  config = vae_smoke(TRAIN)
  _, params, step = trained.restore_trained(config, workdir)
  assert step == 300
  for a, b in zip(reference["params"], _leaves(params), strict=True):
    np.testing.assert_array_equal(a, b)
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  logged = [row["step"] for row in rows if "loss" in row]
  assert logged == list(range(10, 301, 10))  # no step lost or logged twice


def _disk_use(root) -> int:
  """Bytes `root` takes on a tmpfs (whole 4 KiB pages per file)."""
  return sum(-(-os.path.getsize(os.path.join(d, f)) // 4096) * 4096
             for d, _, names in os.walk(root) for f in names)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="mounting a small tmpfs needs root")
def test_a_disk_that_fills_during_a_checkpoint_is_named_and_the_rerun_ends_as_uninterrupted(
    tmp_path, start_job, vae_smoke):
  reference = str(tmp_path / "reference")
  out = start_job("train", reference, []).communicate(timeout=300)[0]
  steps = _steps(os.path.join(reference, "checkpoints"))
  assert len(steps) >= 2, out[-3000:]
  last = os.path.join(reference, "checkpoints", str(steps[-1]))
  disk = tmp_path / "disk"  # room for all but half of the last checkpoint
  disk.mkdir()
  size_kib = (_disk_use(reference) - _disk_use(last) // 2) // 1024
  if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(disk)],
                    capture_output=True, check=False).returncode:
    pytest.skip("cannot mount a tmpfs here")
  try:
    workdir = str(disk / "w")
    proc = start_job("train", workdir, [])
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, out[-3000:]
    # One line among orbax's own reports of its failed background writes. The disk is sized
    # to fill in the last checkpoint; the pages of orbax's files and its temporary copies vary
    # from run to run, so an earlier checkpoint (none complete yet) or a later write (the last
    # metrics, the reconstructions) may be the one that finds it full.
    named = re.search(r"^compgen: DiskFullError: No space left on the device of "
                      + re.escape(workdir) + r"(?:/checkpoints while saving checkpoint step "
                      r"(\d+)\. Free space and run the same command again: it (?:resumes from "
                      r"step (\d+), the newest complete checkpoint|starts from step 0 \(no "
                      r"checkpoint is complete\))\."
                      r"| while (?:writing|appending to) \S+)",
                      out, re.MULTILINE)
    assert named, out[-3000:]
    subprocess.run(["mount", "-o", f"remount,size={4 * size_kib}k", str(disk)], check=True)
    proc = start_job("train", workdir, [])
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    if named.group(1):  # a checkpoint: the one named failed, the rerun resumes where it said
      assert int(named.group(1)) in steps
      if named.group(2):
        assert f"(step {named.group(2)})" in out
      else:
        assert "Resumed from" not in out
    config = vae_smoke([])
    for a, b in zip(_leaves(trained.restore_trained(config, reference)[1]),
                    _leaves(trained.restore_trained(config, workdir)[1]), strict=True):
      np.testing.assert_array_equal(a, b)
  finally:
    subprocess.run(["umount", str(disk)], check=False)


def test_sigterm_during_replay_then_resume(reference, start_job):
  workdir = reference["trained"]
  proc = start_job("replay", workdir, TRAIN + REPLAY)
  _wait_for(os.path.join(workdir, "replay", "checkpoints", "50"), proc)
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == cli.PREEMPTED_EXIT_CODE, out[-3000:]
  assert "replay preempted" in out
  proc = start_job("replay", workdir, TRAIN + REPLAY)
  out = proc.communicate(timeout=300)[0]
  assert proc.returncode == 0, out[-3000:]
  for a, b in zip(reference["replay"], _replay_encoder(reference["config"], workdir),
                  strict=True):
    np.testing.assert_array_equal(a, b)


def _truncate_largest_file(step_dir):
  paths = [os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs]
  largest = max(paths, key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.truncate(os.path.getsize(largest) // 2)


# Reading the damaged files fails inside orbax's async readers, which Python reports as
# "exception ignored" warnings on top of the error the test expects.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_second_writer_is_refused_at_once_and_a_killed_holder_blocks_nothing(
    tmp_path, repo_root, start_job):
  workdir = str(tmp_path / "w")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\nfrom compgen import files\n"
       "with files.hold(sys.argv[1], 'replay'):\n  print('held', flush=True)\n  time.sleep(600)",
       workdir], cwd=repo_root, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    rival = start_job("train", workdir, ["--config.train.num_steps=4"])
    out = rival.communicate(timeout=300)[0]
    assert rival.returncode == 1, out[-3000:]
    message = [line for line in out.splitlines() if line.startswith("compgen: ")]
    assert len(message) == 1 and "Traceback" not in out, out[-3000:]
    assert f"is in use by another job: replay (process {holder.pid} on " in message[0]
    assert "give this one another --workdir" in message[0]
    assert sorted(os.listdir(workdir)) == [".compgen", ".compgen.lock"]  # refused before writing
  finally:
    holder.kill()
    holder.wait()
  # the dead holder's lock is gone
  job = start_job("train", workdir, ["--config.train.num_steps=4"])
  out = job.communicate(timeout=300)[0]
  assert job.returncode == 0, out[-3000:]
  assert _steps(os.path.join(workdir, "checkpoints"))[-1] == 4


def test_workdir_hold_is_reentrant_and_unwritable_workdirs_are_named(tmp_path):
  workdir = str(tmp_path / "w")
  with files.hold(workdir, "experiment"):
    with files.hold(workdir + "/", "train"):  # the same folder, within one process
      holder = json.loads(open(os.path.join(workdir, files.LOCK_FILE)).read())
    open(os.path.join(workdir, "written"), "w").close()
  assert holder["job"] == "experiment" and holder["pid"] == os.getpid()
  assert sorted(os.listdir(workdir)) == [".compgen", "written"]  # the lock exists while held
  with files.hold(workdir, "search"):  # released, so held anew
    pass
  with files.hold(str(tmp_path / "unused"), "train"):  # made, nothing written: removed again
    pass
  assert not (tmp_path / "unused").exists()
  (tmp_path / "a_file").write_text("")
  with pytest.raises(files.WorkdirNotWritableError, match="Cannot write the workdir .*a_file"):
    with files.hold(str(tmp_path / "a_file"), "train"):
      pass


def test_damaged_checkpoint_falls_back_to_the_previous_step(tmp_path, capsys, config_of):
  config = config_of("sprites", "vae,smoke")
  config.train.num_steps = 6
  uninterrupted = train_lib.train_and_evaluate(config, str(tmp_path / "uninterrupted"))
  workdir = tmp_path / "damaged"
  stopped = train_lib.train_and_evaluate(config, str(workdir), stop_at_step=4)
  assert int(stopped.step) == 4 and _steps(workdir / "checkpoints") == [2, 4]
  _truncate_largest_file(workdir / "checkpoints" / "4")
  (workdir / "checkpoints" / "6.orbax-checkpoint-tmp-1234").mkdir()  # a save cut short
  capsys.readouterr()
  state = train_lib.train_and_evaluate(config, str(workdir))
  out = capsys.readouterr().out
  assert "checkpoint step 4" in out and "unreadable" in out and "resuming from step 2" in out
  assert (workdir / "checkpoints_unreadable" / "4").is_dir()  # set aside, not deleted
  for a, b in zip(_leaves(uninterrupted.params), _leaves(state.params), strict=True):
    np.testing.assert_array_equal(a, b)

  for step in _steps(workdir / "checkpoints"):  # every checkpoint damaged: refuse, keep them
    for d, _, fs in os.walk(workdir / "checkpoints" / str(step)):  # parameters included
      for f in fs:
        with open(os.path.join(d, f), "r+b") as fh:
          fh.truncate(os.path.getsize(os.path.join(d, f)) // 2)
  with pytest.raises(checkpoints.CheckpointError, match="No checkpoint .* could be restored"):
    trained.restore_trained(config, str(workdir))
  assert _steps(workdir / "checkpoints")


class _Recorder:
  """A checkpointer stand-in that records the saved steps."""
  directory = "ckpts"

  def __init__(self):
    self.saved = []

  def save(self, step, state, data_state):
    self.saved.append(step)

  def close(self):
    pass


class _Writer:
  def write(self, step, metrics):
    pass

  def flush(self):
    pass


def _run_fake_loop(step_fn, recorder):
  loop.run_loop(step_fn, type("State", (), {"step": 0})(), stop=20, num_steps=20, batch_size=1,
                log_every=10, checkpoint_every=5, checkpointer=recorder, writer=_Writer(),
                desc="train")


def test_divergence_names_the_first_bad_step_and_term_and_saves_nothing_after():
  def step_fn(state, step):
    bad = step >= 6  # the metrics of step 7 (1-based) are the first non-finite ones
    return state, {"loss": np.float32(np.nan if bad else 1.0),
                   "kl": np.float32(np.inf if bad else 0.5), "mse": np.float32(0.1)}
  recorder = _Recorder()
  with pytest.raises(FloatingPointError,
                     match=r"Non-finite train loss at step 7: kl=inf, loss=nan\. Nothing after "
                           r"step 5 was saved"):
    _run_fake_loop(step_fn, recorder)
  assert recorder.saved == [5]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])  # SIGINT: Ctrl-C
def test_a_stop_signal_in_the_loop_saves_the_current_step_and_raises(signum):
  def step_fn(state, step):
    if step == 2:
      os.kill(os.getpid(), signum)
    return state, {"loss": np.float32(1.0)}
  recorder = _Recorder()
  previous = signal.getsignal(signum)
  with pytest.raises(errors.Preempted, match="saved a checkpoint at step 3"):
    _run_fake_loop(step_fn, recorder)
  assert recorder.saved == [3]
  assert signal.getsignal(signum) == previous  # handler removed afterwards


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_outside_the_loops_ends_a_job_with_one_line_and_status_143(
    signum, repo_root):
  job = ("import os, signal, time\nfrom compgen import cli\n"
         f"cli.run(lambda: (os.kill(os.getpid(), {int(signum)}), time.sleep(60)))")
  out = subprocess.run([sys.executable, "-c", job], cwd=repo_root, capture_output=True,
                       text=True, timeout=120, check=False)
  assert out.returncode == cli.PREEMPTED_EXIT_CODE, out.stderr[-3000:]
  assert out.stdout.splitlines() == [
      f"stopped by {signal.Signals(signum).name} before the job finished; what it saved is "
      "whole and its finished stages are kept: run the same command again to go on."]
  assert "Traceback" not in out.stderr


def test_outside_the_main_thread_sigterm_handling_is_off_and_says_so_once(capsys, monkeypatch):
  monkeypatch.setattr(loop, "_warned_off_main_thread", False)
  flags = []
  def use_twice():
    for _ in range(2):
      with loop.preemption_notice() as requested:
        flags.append(requested(1))
  worker = threading.Thread(target=use_twice, name="worker")
  worker.start()
  worker.join()
  assert flags == [False, False]
  assert capsys.readouterr().out.count("cannot install a SIGTERM handler") == 1


def test_real_divergence_stops_training_without_a_nan_checkpoint(tmp_path, config_of):
  config = config_of("sprites", "smoke")
  config.optim.update(learning_rate=1e30, grad_clip_norm=0.0)
  with pytest.raises(FloatingPointError, match=r"Non-finite .* at (evaluation )?step \d+"):
    train_lib.train_and_evaluate(config, str(tmp_path))
  ckpts = tmp_path / "checkpoints"
  for step in _steps(ckpts) if ckpts.exists() else []:
    _, params, _ = trained.restore_trained(config, str(tmp_path))
    assert all(np.isfinite(leaf).all() for leaf in _leaves(params)), step
