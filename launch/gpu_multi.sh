#!/usr/bin/env bash
# Several processes joined by jax.distributed (one per GPU), on one or more hosts, all running
# `python -m compgen.$JOB --config=CONFIG --workdir=WORKDIR [overrides]` as one job.
# Usage: [JOB=train|search|replay|experiment] bash launch/gpu_multi.sh CONFIG WORKDIR [--config.k=v ...]
#
# Under SLURM (one task per GPU, e.g. `srun --ntasks=16 --gpus-per-task=1 bash launch/gpu_multi.sh
# ...`): each task is one process; its id, the process count and the coordinator (first host of
# the allocation, port $PORT, default 12355) come from the SLURM variables.
# Otherwise run the script once on every host, with
#   NUM_PROCESSES    processes in the whole job
#   COORDINATOR      host:port that process 0 listens on (default 127.0.0.1:$PORT: one host)
#   FIRST_PROCESS_ID id of this host's first process (host h of H with G GPUs each: h*G)
#   LOCAL_PROCESSES  processes started on this host (default: its GPU count), process i on GPU i
# WORKDIR must be on storage every host sees (a shared filesystem or gs://...). Each process's
# output is prefixed with [p<id>]; the script fails if any process fails.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: [JOB=train] bash launch/gpu_multi.sh CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/launch/python.sh"
config=$1 workdir=$2
shift 2
port=${PORT:-12355}
bash "$root/launch/install.sh"
export COMPGEN_DISTRIBUTED=1
job=(-m "compgen.${JOB:-train}" --config="$config" --workdir="$workdir" "$@")

if [ -n "${SLURM_PROCID:-}" ]; then
  head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
  export COMPGEN_COORDINATOR_ADDRESS=${COORDINATOR:-$head_node:$port}
  export COMPGEN_NUM_PROCESSES=$SLURM_NTASKS COMPGEN_PROCESS_ID=$SLURM_PROCID
  exec "$PYTHON" "${job[@]}"
fi

gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
local_count=${LOCAL_PROCESSES:-$gpus}
if [ "${local_count:-0}" -lt 1 ]; then
  echo "gpu_multi.sh: no GPU found; set LOCAL_PROCESSES (and XLA_FLAGS for CPU devices)." >&2
  exit 2
fi
export COMPGEN_NUM_PROCESSES=${NUM_PROCESSES:-$local_count}
export COMPGEN_COORDINATOR_ADDRESS=${COORDINATOR:-127.0.0.1:$port}
first=${FIRST_PROCESS_ID:-0}
pids=()
for ((i = 0; i < local_count; i++)); do
  id=$((first + i))
  if [ "$gpus" -gt 0 ]; then export CUDA_VISIBLE_DEVICES=$i; fi
  COMPGEN_PROCESS_ID=$id "$PYTHON" "${job[@]}" 2>&1 | sed -u "s/^/[p$id] /" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
