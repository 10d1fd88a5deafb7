#!/usr/bin/env bash
# One host, every local device (CPU, GPUs or a single TPU VM): installs compgen, then runs
# `python -m compgen.$JOB --config=CONFIG --workdir=WORKDIR [overrides]`.
# Usage: [JOB=train|search|replay|experiment] bash launch/local.sh CONFIG WORKDIR [--config.k=v ...]
#   e.g. JOB=experiment bash launch/local.sh configs/sprites.py:quickstart /tmp/cg/exp
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: [JOB=train] bash launch/local.sh CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/launch/python.sh"
config=$1 workdir=$2
shift 2
bash "$root/launch/install.sh"
exec "$PYTHON" -m "compgen.${JOB:-train}" --config="$config" --workdir="$workdir" "$@"
