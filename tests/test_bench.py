"""The benchmark suite measures and reports (no timing assertions)."""
import glob
import json
import os
import subprocess
import sys

from compgen import bench


def test_quick_bench_cli_writes_consistent_json_and_prints_a_table(tmp_path, repo_root):
  out = tmp_path / "bench.json"
  proc = subprocess.run([sys.executable, "-m", "compgen.bench", "--quick", "--decoders=alpha",
                         f"--out={out}"], cwd=repo_root, capture_output=True, text=True,
                        timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "image-steps/s" in proc.stdout and "PyTorch" in proc.stdout
  results = json.loads(out.read_text())
  assert set(bench.SECTIONS) <= set(results) and results["quick"]
  rows = results["search"]  # micro-batched (auto: 1 on CPU), and the whole batch for comparison
  assert {(r["decoder"], r["batch_size"], r["micro_batch"]) for r in rows} == {
      ("alpha", 2, 1), ("alpha", 2, 2)}
  for row in rows:  # a measurement, with XLA's cost analysis of the compiled search
    assert row["image_steps_per_s"] > 0 and row["seconds"] > 0 and row["first_call_s"] > 0
    assert row["flops_per_image_step"] > 0 and row["memory_bytes"] > 0
    assert row["fraction_of_matmul_rate"] > 0
  assert results["loop"]["image_steps_per_s"] > 0
  # the PyTorch port computes the same search (torch comes with the bench extra)
  assert results["torch"]["same_loss"], results["torch"]
  assert results["replay"]["cost_ratio"] > 0
  assert results["replay"]["torch_encoder_max_abs_diff"] < 1e-4  # same encoder in PyTorch
  streaming = results["streaming"]
  assert 0 <= streaming["stream_converged"] <= streaming["images"]
  # the conv pair in XLA's layers first: the reference of the ratios, with the same parameters
  train = results["train"]
  assert [(r["decoder"], r["encoder"], r["resolution"]) for r in train] == [
      ("conv/xla", "conv/xla", 8), ("conv", "conv", 8), ("additive", "cnn", 8)]
  assert all(r["examples_per_s"] > 0 and r["flops_per_example"] > 0 for r in train)
  assert train[0]["parameters"] == train[1]["parameters"]
  assert "train: decoder:encoder" in proc.stdout
  # the profile of both conv pairs: every part timed, the whole step its own 100%
  profile = results["profile"]
  for pair in (("conv/xla", "conv/xla"), ("conv", "conv")):
    parts = {r["part"]: r for r in profile if (r["decoder"], r["encoder"]) == pair}
    assert set(parts) == {"train step", "encoder forward", "encoder forward+backward",
                          "decoder forward", "decoder forward+backward", "upsampling 4->8x3",
                          "optimizer update"}
    assert parts["train step"]["share_of_step"] == 1.0
    assert all(r["ms"] > 0 for r in parts.values())
  assert "profile: decoder:encoder" in proc.stdout


def test_launch_scripts_parse(repo_root):
  scripts = glob.glob(os.path.join(repo_root, "launch", "*.sh"))
  assert os.path.join(repo_root, "launch", "gpu_bench.sh") in scripts
  for script in scripts:
    proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (script, proc.stderr)
