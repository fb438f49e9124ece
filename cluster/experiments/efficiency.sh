#!/usr/bin/env bash
# Cluster efficiency: the first (SFT) stage of a recipe run by 1 server + 2 workers (one BLAS
# thread each) on this machine, against the single-process trainer (every core's BLAS threads)
# on the same records, batch size and micro-batch size, measured in the same invocation.
# ROUNDS rounds (default 3) each run both; prints every round's ratio (scored tokens/s) and the median.
#   bash cluster/experiments/efficiency.sh [RECIPE.yaml]     (default: cluster/recipes/smollm2.yaml)
# WIRE=bf16-gradients (pushes) or WIRE=bf16 (pushes and pulls) runs the cluster with bfloat16 on the wire; the per-step losses are printed
# so two runs (fp32, bf16) can be compared step by step (same data order). DATA_PLANE=sealed runs
# pushes and pulls over PLAIN connections with every frame sealed by redi-ps (AES-256-GCM),
# DATA_PLANE=plain unencrypted (CURVE's encryption and decryption of every byte cost CPU that
# a 2-core machine takes from the workers).
set -euo pipefail
recipe=${1:-}
if [ -n "$recipe" ]; then recipe=$(realpath "$recipe"); fi
cd "$(dirname "$0")/../.."
recipe=${recipe:-cluster/recipes/smollm2.yaml}
source cluster/lib/build.sh
build redi-bench redi-ps redi-worker
bash cluster/tools/fetch-test-model.sh >/dev/null
work=$(mktemp -d)
# The recipe's first stage only, no evaluation, 1 server and 2 workers, output in $work.
read -r model batch micro data < <(python3 cluster/tools/reports.py first-stage "$recipe" "$work")
ours() {  # the cluster, from a fresh output (a synthesised recipe's data is written by the run)
  rm -rf "$work/out"
  bash cluster/launch/local.sh "$work/recipe.yaml" > "$work/cluster.log" 2>&1 || { tail "$work/cluster.log"; exit 1; }
  rate=$(python3 cluster/tools/reports.py rate "$work/out/metrics.jsonl")
}
theirs() {
  local records steps out
  records=$(grep -c . "$data")
  steps=$(( records / batch - 1 )); [ "$steps" -le 8 ] || steps=8
  out=$("$bin/redi-bench" train --model "$model" --data "$data" --batch-size "$batch" --micro-batch-tokens "$micro" --steps "$steps")
  echo "$out" >&2
  rate=$(sed -n 's/.*median \([0-9.]*\) tokens\/s.*/\1/p' <<< "$out")
}
source cluster/lib/rounds.sh
rounds "1 server + 2 workers" "single process" "" --percent --label "cluster efficiency (${WIRE:-fp32} wire, ${DATA_PLANE:-curve} data plane)"
rm -rf "$work"
