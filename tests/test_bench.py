"""The benchmark module measures and reports (no timing assertions)."""
import json
import subprocess
import sys

from compgen import bench
from tests.training.test_train import ROOT


def test_search_throughput_reports_a_measurement():
  row = bench.search_throughput("additive", batch_size=2, resolution=8, steps=2, repeats=1)
  assert row["image_steps_per_s"] > 0 and row["seconds"] > 0 and row["first_call_s"] > 0


def test_bench_cli_writes_json_and_prints_a_table(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run([sys.executable, "-m", "compgen.bench", "--decoders=alpha",
                         "--batch_sizes=2", "--resolution=8", "--steps=2", "--repeats=1",
                         f"--out={out}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "image-steps/s" in proc.stdout
  assert json.loads(out.read_text())["search"][0]["decoder"] == "alpha"
