#!/usr/bin/env bash
# A Cloud TPU pod slice: on every worker (`gcloud ... ssh --worker=all`), installs this commit
# of compgen with jax[tpu] and starts `python -m compgen.$JOB` as one multi-host job
# (jax.distributed finds the workers itself).
# Usage: [JOB=train|search|replay|experiment] bash launch/tpu_pod.sh TPU_NAME ZONE CONFIG \
#          gs://BUCKET/WORKDIR [--config.k=v ...]
# Settings: REPO (git URL the workers clone; default this checkout's `origin`), REV (default
# this checkout's HEAD, which must be pushed), PROJECT (gcloud project; default gcloud's),
# DRY_RUN=1 prints the gcloud command instead of running it.
# The workdir must be a gs:// path: every worker writes its part of each checkpoint there.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: [JOB=train] bash launch/tpu_pod.sh TPU_NAME ZONE CONFIG gs://BUCKET/WORKDIR" \
    "[--config.key=value ...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
name=$1 zone=$2 config=$3 workdir=$4
shift 4
if [[ "$workdir" != gs://* ]]; then
  echo "tpu_pod.sh: WORKDIR=$workdir is not a gs:// path. Every TPU worker must read and" \
    "write the same checkpoints, so use a Cloud Storage bucket, e.g." \
    "gs://my-bucket/compgen/run1." >&2
  exit 2
fi
repo=${REPO:-$(git -C "$root" remote get-url origin 2>/dev/null || true)}
if [ -z "$repo" ]; then
  echo "tpu_pod.sh: no git remote 'origin' here; set REPO to a URL the workers can clone." >&2
  exit 2
fi
rev=${REV:-$(git -C "$root" rev-parse HEAD)}
job=$(printf ' %q' -m "compgen.${JOB:-train}" --config="$config" --workdir="$workdir" "$@")
remote="set -e; [ -d compgen ] || git clone -q $(printf '%q' "$repo") compgen; cd compgen;"
remote+=" git fetch -q origin; git checkout -q $rev;"
remote+=" python3 -m pip install -q -e '.[gcs]' 'jax[tpu]' -c launch/constraints.txt;"
remote+=" COMPGEN_DISTRIBUTED=1 python3$job"
cmd=(gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all --command="$remote")
if [ -n "${PROJECT:-}" ]; then cmd+=(--project="$PROJECT"); fi
if [ "${DRY_RUN:-0}" = 1 ]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
