"""launch/python.sh: which Python the launch scripts install into and run with (PEP 668)."""
import os
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
