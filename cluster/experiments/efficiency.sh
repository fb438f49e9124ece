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
recipe=${1:-} rounds=${ROUNDS:-3}
if [ -n "$recipe" ]; then recipe=$(realpath "$recipe"); fi
cd "$(dirname "$0")/../.."
recipe=${recipe:-cluster/recipes/smollm2.yaml}
source cluster/lib/build.sh
build redi-bench redi-ps redi-worker
bash cluster/tools/fetch-test-model.sh >/dev/null
work=$(mktemp -d)
# The recipe's first stage only, no evaluation, 1 server and 2 workers, output in $work.
read -r model batch micro data < <(python3 cluster/tools/reports.py first-stage "$recipe" "$work")
# Rounds alternate the two, so a noisy moment on a shared machine slows one round, not one side.
cluster_rates=() single_rates=()
for round in $(seq "$rounds"); do
  echo "== round $round of $rounds: cluster, 1 server + 2 workers × 1 thread" >&2
  rm -rf "$work/out"
  bash cluster/launch/local.sh "$work/recipe.yaml" > "$work/cluster.log" 2>&1 || { tail "$work/cluster.log"; exit 1; }
  cluster_rates+=("$(python3 cluster/tools/reports.py rate "$work/out/metrics.jsonl")")
  echo "== round $round of $rounds: single process" >&2
  records=$(grep -c . "$data")  # a synthesised recipe's data is written by the run
  steps=$(( records / batch - 1 )); [ "$steps" -le 8 ] || steps=8
  reference=$("$bin/redi-bench" train --model "$model" --data "$data" --batch-size "$batch" --micro-batch-tokens "$micro" --steps "$steps")
  echo "$reference" >&2
  single_rates+=("$(sed -n 's/.*median \([0-9.]*\) tokens\/s.*/\1/p' <<< "$reference")")
done
python3 cluster/tools/reports.py rounds "1 server + 2 workers" "single process" --percent \
  --label "cluster efficiency (${WIRE:-fp32} wire, ${DATA_PLANE:-curve} data plane)" \
  "$(IFS=,; echo "${cluster_rates[*]}")" "$(IFS=,; echo "${single_rates[*]}")" ""
rm -rf "$work"
