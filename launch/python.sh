# Sourced by the launch scripts: sets and exports PYTHON, the interpreter compgen is installed
# into and run with.
#   - The Python `$PYTHON` names (default: python3 on PATH) when it runs inside a virtual
#     environment or a conda env (an activated one, or PYTHON=/path/to/env/bin/python): that
#     one, and nothing new is made.
#   - Otherwise (a distribution's or pyenv's own Python; Debian's is marked externally
#     managed, PEP 668, and pip refuses to install into it): the repository's `.venv/`, made
#     with `$PYTHON -m venv` on first use and reused after.
_launch_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_launch_base=${PYTHON:-python3}
if ! command -v "$_launch_base" >/dev/null 2>&1; then
  echo "launch: no Python '$_launch_base' found: install Python >= 3.10, or set PYTHON to one." >&2
  exit 1
fi
if "$_launch_base" -c 'import os, sys
sys.exit(0 if sys.prefix != sys.base_prefix or os.path.isdir(os.path.join(sys.prefix, "conda-meta")) else 1)'; then
  PYTHON=$_launch_base
else
  if [ ! -x "$_launch_root/.venv/bin/python" ]; then
    echo "launch: $("$_launch_base" -c 'import sys; print(sys.executable)') is not inside a virtual" \
         "environment; making one at $_launch_root/.venv (to use another environment, activate" \
         "it or set PYTHON to its python)." >&2
    if ! "$_launch_base" -m venv "$_launch_root/.venv"; then
      rm -rf "$_launch_root/.venv"
      echo "launch: '$_launch_base -m venv' failed. On Debian or Ubuntu install the venv module" \
           "(sudo apt install python3-venv), or set PYTHON to the python of an environment" \
           "you made." >&2
      exit 1
    fi
  fi
  PYTHON=$_launch_root/.venv/bin/python
fi
export PYTHON
unset _launch_root _launch_base
