#!/usr/bin/env bash
# compgen on one lent GPU in one call of at most 8 minutes, nothing downloaded, every result
# under OUT_DIR. A lease is 15 min in all and at most 10 per call, and its first call spends
# a minute or two starting: 8 min leaves time to rerun once. Each step's budget (seconds):
#     20  install   the wheels in .whl/ (ml-collections, tensorflow-datasets and the packages
#                   they need that the image lacks; made here by launch/gpu_wheels.sh) into
#                   /tmp/site, when compgen does not import
#     20  devices   jax.devices() and nvidia-smi
#     90  tests     the model tests on the GPU (tests/models: the matmul layers equal XLA's
#                   convolutions there, the released recipe's equations)
#     60  search    search through the alpha, conv/xla and conv decoders at 64², batch 1, 256
#                   and 1024, 20 steps a call
#     60  train     the train step and its profile of the conv pair against XLA's layers at 64²
#    200  tvae      the Transformer VAE of the released recipe at 16×16
#                   (`configs/sprites.py:long16,transformer_vae_released`), evaluated and
#                   checkpointed every 500 steps, ended by SIGTERM at its budget (the job saves
#                   a checkpoint and stops); JIS, slot purity and the top slot's share at every
#                   evaluation in tvae.txt (its metrics.jsonl beside it)
#    450  in all, 30 to spare; every step is cut at its budget by `timeout`, so the call ends
#         by 480 s whatever a step does. OUT_DIR gets six files: steps.txt (each step's time
#         and exit status), log.txt (every step's output), bench_search.json,
#         bench_train.json, tvae.txt, tvae_metrics.jsonl.
# Usage: bash launch/gpu_bench.sh [--dry-run] [OUT_DIR]   (default $OUT, else /tmp/compgen_gpu_bench)
#   --dry-run: the same steps at tiny sizes, on whatever device there is (the tests run it on
#              the CPU, where compiling alone takes longer: each budget is 4x): it checks the
#              script, not the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
PYTHON=${PYTHON:-python3}
out=${1:-${OUT:-/tmp/compgen_gpu_bench}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS
step() {  # step NAME BUDGET COMMAND...: the command, cut at BUDGET s, its output in log.txt
  local name=$1 budget=$(($2 * (dry ? 4 : 1))); shift 2
  local t0=$SECONDS
  echo "== $name (budget $budget s) ==" >> "$out/log.txt"
  timeout --signal=TERM --kill-after=10 "$budget" "$@" 2>&1 | grep -v "^[IW][0-9]" \
    >> "$out/log.txt"
  local rc=${PIPESTATUS[0]}
  printf '%-8s %4ss of %4ss  exit %s\n' "$name" $((SECONDS - t0)) "$budget" "$rc" \
    | tee -a "$out/steps.txt"
}
if ! "$PYTHON" -c "import ml_collections" 2>/dev/null; then
  step install 20 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
step devices 20 bash -c "\"$PYTHON\" -c 'import jax; print(jax.devices())'; \
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true"
if [ $dry = 1 ]; then
  step tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider tests/models/test_released_recipe.py \
    -k schedule
  step search 60 "$PYTHON" -m compgen.bench --sections=search --quick --decoders=alpha \
    --out="$out/bench_search.json"
  step train 60 "$PYTHON" -m compgen.bench --sections=train --quick --out="$out/bench_train.json"
  tvae_config=configs/sprites.py:smoke,transformer_vae_released
  tvae_every=2
else
  step tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider tests/models
  step search 60 "$PYTHON" -m compgen.bench --sections=search --resolution=64 \
    --decoders=alpha,conv/xla,conv --batch_sizes=1,256,1024 --steps=20 \
    --out="$out/bench_search.json"
  step train 60 "$PYTHON" -m compgen.bench --sections=train,profile --train_resolutions=64 \
    --out="$out/bench_train.json"
  tvae_config=configs/sprites.py:long16,transformer_vae_released
  tvae_every=500
fi
tvae=/tmp/compgen_gpu_tvae  # outside OUT: the device returns at most 8 files
rm -rf "$tvae"
step tvae 200 "$PYTHON" -m compgen.train --config="$tvae_config" --workdir="$tvae" \
  --config.train.eval_every=$tvae_every --config.train.checkpoint_every=$tvae_every
cp "$tvae/metrics.jsonl" "$out/tvae_metrics.jsonl" 2>/dev/null || echo "{}" > "$out/tvae_metrics.jsonl"
"$PYTHON" - "$out/tvae_metrics.jsonl" > "$out/tvae.txt" 2>&1 <<'EOF'
import json, sys
rows = [row for row in map(json.loads, open(sys.argv[1])) if "step" in row]
if not rows:
  sys.exit("the Transformer VAE run logged nothing: see its part of log.txt")
keys = ["train/recon_mse", "train/jis", "train/slot_purity", "train/top_slot_share"]
print("step  " + "  ".join(keys))
for row in rows:
  if "train/jis" in row:
    print(row["step"], "  ".join(f"{row[k]:.4f}" for k in keys if k in row))
speed = [r["examples_per_s"] for r in rows if "examples_per_s" in r]
print(f"last step {rows[-1]['step']}, {speed[-1]:.0f} examples/s" if speed else "no steps")
EOF
cat "$out/tvae.txt"
echo "in all: $((SECONDS - start)) s of $((480 * (dry ? 4 : 1)))" | tee -a "$out/steps.txt"
