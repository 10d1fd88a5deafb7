"""The launch scripts: launch/python.sh (which Python they install into and run with, PEP 668)
and launch/gpu_bench.sh (one lent-GPU call of at most 8 minutes, and its CPU dry run)."""
import os
import re
import shutil
import subprocess
import sys

import pytest



def _base_python() -> str:
  """An interpreter outside any virtual environment (this one's base)."""
  for name in ("python3", "python"):
    path = os.path.join(sys.base_prefix, "bin", name)
    if os.path.exists(path):
      return path
  pytest.skip("no base interpreter found next to sys.base_prefix")


@pytest.fixture
def checkout(tmp_path, repo_root):
  (tmp_path / "launch").mkdir()
  shutil.copy(os.path.join(repo_root, "launch", "python.sh"), tmp_path / "launch")
  return tmp_path


def _pick(checkout, python):
  env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin", "PYTHON": python}
  return subprocess.run(["bash", "-c", 'source launch/python.sh && echo "$PYTHON"'],
                        cwd=checkout, env=env, capture_output=True, text=True, timeout=120)


def test_a_python_inside_an_environment_is_used_and_nothing_is_made(checkout):
  venv = checkout / "env"
  subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
  out = _pick(checkout, str(venv / "bin" / "python"))
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == str(venv / "bin" / "python")
  assert not (checkout / ".venv").exists()


def test_a_python_outside_any_environment_gets_the_repository_venv(checkout):
  out = _pick(checkout, _base_python())
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == str(checkout / ".venv" / "bin" / "python")
  assert "making one at" in out.stderr
  made = subprocess.run([out.stdout.strip(), "-c", "import sys; print(sys.prefix)"],
                        capture_output=True, text=True, check=True).stdout.strip()
  assert made == str(checkout / ".venv")
  again = _pick(checkout, _base_python())  # reused, not remade
  assert again.stdout.strip() == out.stdout.strip() and "making one" not in again.stderr


def test_a_missing_venv_module_names_the_package_and_leaves_nothing(checkout):
  fake = checkout / "python3"  # Debian without python3-venv: `-m venv` fails
  fake.write_text(f'#!/bin/bash\nif [ "$1 $2" = "-m venv" ]; then mkdir -p "$3"; '
                  f'echo "ensurepip is not available" >&2; exit 1; fi\n'
                  f'exec {_base_python()} "$@"\n')
  fake.chmod(0o755)
  out = _pick(checkout, str(fake))
  assert out.returncode == 1
  assert "python3-venv" in out.stderr
  assert not (checkout / ".venv").exists()
  missing = _pick(checkout, "no-such-python")
  assert missing.returncode == 1 and "no Python 'no-such-python'" in missing.stderr


def _step_budgets(script: str) -> dict[str, int]:
  """{step name: its budget in s} of the `step NAME BUDGET ...` calls of a launch script."""
  return {name: int(budget) for name, budget in re.findall(r"^\s*step (\w+) (\d+) ", script,
                                                          re.MULTILINE)}


def test_the_gpu_bench_fits_one_8_minute_call_by_its_own_accounting(repo_root):
  script = open(os.path.join(repo_root, "launch", "gpu_bench.sh")).read()
  budgets = _step_budgets(script)
  assert set(budgets) == {"install", "devices", "tests", "search", "train", "tvae"}
  assert sum(budgets.values()) <= 450  # of the call's 480 s, 30 to spare
  header = dict((name, int(b)) for b, name in re.findall(r"^#\s+(\d+)\s+(\w+)\s", script,
                                                         re.MULTILINE) if name in budgets)
  assert header == budgets  # the budgets the header states are the ones the steps get


@pytest.mark.slow
def test_the_gpu_bench_dry_run_runs_every_step_on_the_cpu(tmp_path, repo_root):
  env = {**os.environ, "PYTHON": sys.executable}
  out = subprocess.run(["bash", os.path.join(repo_root, "launch", "gpu_bench.sh"), "--dry-run",
                        str(tmp_path)], env=env, capture_output=True, text=True, timeout=4 * 480)
  assert out.returncode == 0, out.stderr
  steps = (tmp_path / "steps.txt").read_text().splitlines()
  ran = {line.split()[0]: line for line in steps if "exit" in line}
  assert set(ran) >= {"devices", "tests", "search", "train", "tvae"}, steps
  assert all(line.endswith("exit 0") for line in ran.values()), steps
  assert sorted(os.listdir(tmp_path)) == ["bench_search.json", "bench_train.json", "log.txt",
                                          "steps.txt", "tvae.txt", "tvae_metrics.jsonl"]
  tvae = (tmp_path / "tvae.txt").read_text().splitlines()
  assert tvae[0].split()[:3] == ["step", "train/recon_mse", "train/jis"]
  last = tvae[-2].split()  # the last evaluation: step, MSE, JIS, purity, top slot's share
  assert last[0] == "4" and 0 <= float(last[2]) <= 1 and 0 <= float(last[4]) <= 1
