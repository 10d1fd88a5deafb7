#!/usr/bin/env bash
# Installs compgen, then runs the main job on the embedded default: the whole experiment on a
# CPU-sized sprites config (16x16 images rendered locally, diagonal ID/OOD split) — ID training
# of the additive slot decoder and the unconstrained control, encoder, search, replay and
# replay + search, scored ID vs OOD — and prints the results table. The length comes from the
# ID data (the rule variant, capped at 8,000 steps: results/quickstart/rule/).
# Usage: bash launch/quickstart.sh [WORKDIR]   (default /tmp/compgen_quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/python.sh
bash launch/install.sh
"$PYTHON" -m compgen.experiment --config=configs/sprites.py:quickstart,rule \
  --workdir="${1:-/tmp/compgen_quickstart}"
