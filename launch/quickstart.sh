#!/usr/bin/env bash
# Installs compgen, then runs the main job on the embedded default: renders the 64x64 sprites
# dataset (diagonal ID/OOD split), writes ID and OOD sample grids and prints its statistics.
# Usage: bash launch/quickstart.sh [WORKDIR]   (default /tmp/compgen_quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
bash launch/install.sh
"$PYTHON" -m compgen.data --config=configs/sprites.py --workdir="${1:-/tmp/compgen_quickstart}"
