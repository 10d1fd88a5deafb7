#!/usr/bin/env bash
# compgen on a single-GPU host, nothing downloaded, results under OUT_DIR, in one call:
#   1. the layer and model tests on the GPU (the matmul layers equal XLA's convolutions there),
#      when pytest is installed;
#   2. the benchmark: search through the alpha and conv decoders (conv/xla: XLA's transposed
#      convolutions) at 32² and 64², and the train step and its profile of the conv pair
#      against the same pair in XLA's layers at 32² and 64²;
#   3. one seed of the 64×64 sprites benchmark (`configs/sprites.py:bench64`, no control).
# Meant to take a few minutes on an H100/H200 (not yet run on one).
# Assumes jax[cuda], flax, optax, chex, orbax-checkpoint are installed there; the rest of
# compgen's dependencies (ml-collections, tensorflow-datasets, ...) come from a folder of wheels
# when missing: WHEELS=/path/to/wheels (made here with `pip download -d wheels .`).
# Usage: bash launch/gpu_bench.sh [OUT_DIR]   (default $OUT, else /tmp/compgen_gpu_bench)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=${1:-${OUT:-/tmp/compgen_gpu_bench}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PYTHON" -c "import compgen" 2>/dev/null; then
  "$PYTHON" -m pip install --no-index --find-links "${WHEELS:-wheels}" --no-deps -e . \
    ml-collections tensorflow-datasets importlib_resources absl-py tqdm matplotlib scipy
fi
"$PYTHON" -c "import jax; print('devices:', jax.devices())" | tee "$out/devices.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$out/devices.txt" || true
quiet() { grep -v "^[IW][0-9]"; }
if "$PYTHON" -c "import pytest" 2>/dev/null; then
  timeout 300 "$PYTHON" -m pytest -q -p no:cacheprovider tests/models 2>&1 | tee "$out/tests.txt"
fi
for res in 32 64; do
  timeout 240 "$PYTHON" -m compgen.bench --sections=search --resolution=$res \
    --decoders=alpha,conv/xla,conv --batch_sizes=1,256,1024 --steps=20 \
    --out="$out/bench_search_$res.json" 2>&1 | quiet | tee "$out/bench_search_$res.txt"
done
timeout 300 "$PYTHON" -m compgen.bench --sections=train,profile --train_resolutions=32,64 \
  --out="$out/bench_train.json" 2>&1 | quiet | tee "$out/bench_train.txt"
timeout 900 "$PYTHON" -m compgen.experiment --config=configs/sprites.py:bench64 \
  --workdir="$out/sprites64" --config.experiment.seeds=1 --config.experiment.control_seeds=0 \
  --config.experiment.composed_pool=0 2>&1 | quiet | tail -n 80 | tee "$out/sprites64.txt"
