#!/usr/bin/env bash
# Installs compgen (editable) with the tested constraints into the Python launch/python.sh
# picks (an active environment, or the repository's .venv/, made on first use).
# Usage: bash launch/install.sh [EXTRA]   e.g. `bash launch/install.sh test`.
# Idempotent and fast when nothing changed: a stamp keyed on this checkout's path, setup.cfg
# and launch/constraints.txt skips the pip call.
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/python.sh
extra=${1:-}
key=$( (pwd; cat setup.cfg launch/constraints.txt; echo "$extra") | sha1sum | cut -c1-16)
stamp="$("$PYTHON" -c 'import sys; print(sys.prefix)')/.compgen-install-$key"
if [ -f "$stamp" ] && "$PYTHON" -c "import importlib.metadata as m; m.version('compgen')" >/dev/null 2>&1; then
  exit 0
fi
echo "Installing compgen${extra:+[$extra]} into $("$PYTHON" -c 'import sys; print(sys.prefix)') ..."
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}" \
  -c launch/constraints.txt
touch "$stamp"
