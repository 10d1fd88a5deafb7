#!/usr/bin/env bash
# The benchmark suite on a single-GPU host, nothing downloaded; meant to take under 5 minutes
# on an H100 (not measured yet: no GPU run so far).
# Assumes jax[cuda], flax, optax, chex, orbax-checkpoint and torch are installed there; the
# rest of compgen's dependencies (ml-collections, tensorflow-datasets, ...) come from a folder
# of wheels when missing: WHEELS=/path/to/wheels (made here with `pip download -d wheels .`).
# Usage: bash launch/gpu_bench.sh [OUT_DIR]   (default $OUT, else /tmp/compgen_gpu_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=${1:-${OUT:-/tmp/compgen_gpu_bench}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import compgen" 2>/dev/null; then
  "$PYTHON" -m pip install --no-index --find-links "${WHEELS:-wheels}" --no-deps -e . \
    ml-collections tensorflow-datasets importlib_resources absl-py tqdm matplotlib scipy
fi
"$PYTHON" -c "import jax; print('devices:', jax.devices())" | tee "$out/devices.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$out/devices.txt" || true
for res in 32 64; do
  timeout 240 "$PYTHON" -m compgen.bench --resolution=$res --batch_sizes=1,16,256,1024 \
    --steps=20 --out="$out/bench_$res.json" 2>&1 | grep -v "^I[0-9]" | tee "$out/bench_$res.txt"
done
