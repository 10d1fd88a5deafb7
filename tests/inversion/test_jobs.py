"""The search and replay jobs on a trained smoke workdir, in-process and from the CLI."""
import json
import os
import shutil
import signal
import subprocess
import sys
import types

import ml_collections
import numpy as np
import pytest

from compgen import errors
from compgen import parallel
from compgen.inversion import perception, replay, search_job
from compgen.training import checkpoints, train_lib


@pytest.fixture(scope="module")
def trained(tmp_path_factory, config_of):
  workdir = str(tmp_path_factory.mktemp("trained"))
  config = config_of("sprites", "smoke")
  train_lib.train_and_evaluate(config, workdir)
  return config, workdir


def test_search_job_writes_latents_and_never_ends_worse_than_its_start(trained, capsys):
  config, workdir = trained
  summary = search_job.search_and_save(config, workdir)
  for split in ("test_id", "test_ood"):
    with np.load(os.path.join(workdir, "search", f"{split}.npz")) as f:
      n = config.data["num_" + split]
      assert f["z"].shape == f["z0"].shape == f["latents"].shape[:2] + (config.model.slot_dim,)
      assert f["z"].shape[0] == n and f["mse"].shape == (n,)
      assert (f["mse"] <= f["mse0"] + 1e-6).all()
    assert summary[split]["image_steps_per_s"] > 0
  assert "test_ood" in search_job.format_summary(summary)
  written = os.path.getmtime(os.path.join(workdir, "search", "test_ood.npz"))
  unrelated = config.copy_and_resolve_references()  # settings the search does not depend on
  unrelated.optim.grad_clip_norm = 0.0  # (another optimizer state: restores the parameters)
  unrelated.search.micro_batch = 2
  search_job.search_and_save(unrelated, workdir)  # finished splits are not redone ...
  assert os.path.getmtime(os.path.join(workdir, "search", "test_ood.npz")) == written
  longer = config.copy_and_resolve_references()
  longer.search.num_steps += 1
  longer.search.splits = ("test_ood",)
  search_job.search_and_save(longer, workdir)  # ... unless made with other settings ...
  assert "(search.num_steps was 5, now 6); searching test_ood again" in capsys.readouterr().out
  assert os.path.getmtime(os.path.join(workdir, "search", "test_ood.npz")) > written
  written = os.path.getmtime(os.path.join(workdir, "search", "test_ood.npz"))
  config.search.splits = ("test_ood",)
  search_job.search_and_save(config, workdir, overwrite=True)  # ... unless asked
  assert os.path.getmtime(os.path.join(workdir, "search", "test_ood.npz")) > written


def test_replay_job_then_search_from_the_replay_encoder(trained):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.search.init = "replay_encoder"
  with pytest.raises(checkpoints.CheckpointError, match="needs a replay run"):
    search_job.search_and_save(config, workdir)
  summary = replay.replay_and_evaluate(config, workdir)
  assert set(summary["encoders"]) == {"id_encoder", "replay_encoder"}
  assert json.load(open(os.path.join(workdir, "replay", "summary.json"))) == summary
  assert sorted(os.listdir(os.path.join(workdir, "replay", "checkpoints"))) == ["2", "4"]
  other = config.copy_and_resolve_references()
  other.replay.prior = "gaussian"
  with pytest.raises(checkpoints.CheckpointError,
                     match="replay.prior was 'empirical', now 'gaussian'.*delete"):
    replay.replay_and_evaluate(other, workdir)
  other = config.copy_and_resolve_references()  # pacing and optimizer-free settings reuse it
  other.replay.update(log_every=1, eval_every=1)
  assert replay.replay_and_evaluate(other, workdir)["encoders"] == summary["encoders"]
  config.search.splits = ("test_ood",)
  config.search.restarts = 2
  result = search_job.search_and_save(config, workdir, overwrite=True)
  assert np.isfinite(result["test_ood"]["mse_search"])


def test_jobs_refuse_a_workdir_without_a_trained_model(tmp_path, config_of):
  config = config_of("sprites", "smoke")
  with pytest.raises(checkpoints.CheckpointError, match="No trained model"):
    search_job.search_and_save(config, str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError, match="No trained model"):
    replay.replay_and_evaluate(config, str(tmp_path))


def test_train_search_replay_from_the_command_line(tmp_path, repo_root):
  for job in ("train", "search", "replay"):
    proc = subprocess.run([sys.executable, "-m", f"compgen.{job}",
                           "--config=configs/synthetic.py:smoke", f"--workdir={tmp_path}"],
                          cwd=repo_root, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, (job, proc.stderr[-3000:])
  assert "matched R²" in proc.stdout or "replay_encoder" in proc.stdout
  assert (tmp_path / "search" / "test_ood.npz").exists()
  assert (tmp_path / "replay" / "summary.json").exists()


def test_search_all_runs_the_searcher_once_per_batch():
  calls = []
  def searcher(params, x, z0):
    calls.append(len(x))
    n = len(x)
    return types.SimpleNamespace(z=z0, mse=np.zeros(n), trace=np.zeros((n, 3)),
                                 converged=np.ones(n, bool), converged_step=np.zeros(n, int),
                                 finite=np.ones(n, bool))
  mesh = parallel.make_mesh(ml_collections.ConfigDict({"data": 1, "fsdp_min_size": 0}))
  out = perception.search_all(searcher, None, np.zeros((5, 4), np.float32),
                              np.zeros((5, 2, 3), np.float32), mesh, batch_size=2)
  assert calls == [2, 2, 1] and out["z"].shape == (5, 2, 3) and out["finite"].all()


def test_a_stop_signal_between_splits_keeps_the_finished_split_and_the_rerun_completes(
    trained, tmp_path, monkeypatch):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.search.splits = ("test_id", "test_ood")
  workdir = shutil.copytree(workdir, tmp_path / "w")
  out = workdir / "search"
  shutil.rmtree(out, ignore_errors=True)  # another test's search
  calls = []
  search_batch = perception.search_batch
  def stop_in_the_second_split(*args):
    calls.append(len(args[2]))
    if len(calls) == 1 + -(-config.data.num_test_id // config.search.batch_size):
      os.kill(os.getpid(), signal.SIGTERM)  # during test_ood's first batch
    return search_batch(*args)
  monkeypatch.setattr(perception, "search_batch", stop_in_the_second_split)
  with pytest.raises(errors.Preempted, match=r"preempted in test_ood .* saved in .*: test_id\. "
                                             "Run the same command again"):
    search_job.search_and_save(config, str(workdir))
  assert set(json.loads((out / "summary.json").read_text())) == {"test_id"}
  assert not (out / "test_ood.npz").exists()
  monkeypatch.setattr(perception, "search_batch", search_batch)
  written = os.path.getmtime(out / "test_id.npz")
  summary = search_job.search_and_save(config, str(workdir))  # searches test_ood only
  assert os.path.getmtime(out / "test_id.npz") == written
  assert set(summary) == {"test_id", "test_ood"}
  assert json.loads((out / "summary.json").read_text()) == summary
  # Stopped after a split's .npz was written but before its summary: rebuilt from the .npz.
  (out / "summary.json").write_text(json.dumps({"test_id": summary["test_id"]}))
  assert search_job.search_and_save(config, str(workdir)) == summary
  assert os.path.getmtime(out / "test_id.npz") == written
