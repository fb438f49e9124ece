#!/usr/bin/env bash
# Cluster benchmark: a raw ZeroMQ stream and redi-ps messages measured first, then a recipe
# run, then its per-step time split (compute / communication / waiting) and the workers'
# push+pull throughput as a fraction of the raw stream measured in this same run.
#   bash cluster/experiments/bench.sh [RECIPE.yaml]
set -euo pipefail
# A recipe given on the command line is relative to where the command was typed.
recipe=${1:-}
if [ -n "$recipe" ]; then recipe=$(realpath "$recipe"); fi
cd "$(dirname "$0")/../.."
recipe=${recipe:-cluster/recipes/default.yaml}
source cluster/lib/build.sh
build redi-bench
transport=$("$bin/redi-bench" transport)
echo "$transport" >&2   # (tee /dev/stderr would reopen, and truncate, a log file stderr points to)
raw=$(sed -n 's/.*raw ZeroMQ \([0-9.]*\) GB\/s.*/\1/p' <<< "$transport")
log=$(mktemp)
bash cluster/launch/local.sh "$recipe" --overwrite | tee "$log"
python3 cluster/tools/reports.py steps "$recipe" "$raw"
