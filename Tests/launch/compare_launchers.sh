#!/usr/bin/env bash
# Step time of one recipe started three ways on this machine: cluster/launch/local.sh (loopback),
# cluster/launch/slurm.sbatch on a one-node Slurm, and on a three-node Slurm whose nodes are network
# namespaces; plus the time from sbatch to the first step. Not part of the test run (minutes).
# Needs root and the launcher-test packages (cluster/tools/install-deps.sh --launch-tests).
#   bash Tests/launch/compare_launchers.sh [RECIPE (default: the default recipe, SFT cut to 2 epochs)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
cd "$repo"
swift build -c release --product redi-ps >&2; swift build -c release --product redi-worker >&2
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
trap 'bash "$here/slurm_up.sh" "$work/slurm1" stop; bash "$here/slurm_up.sh" "$work/slurm3" stop' EXIT
source_recipe=${1:-}
# Each launch gets its own copy of the recipe, writing to its own output.
copy() {  # NAME → path of a recipe whose output is $work/NAME/out
  mkdir -p "$work/$1"
  if [ -n "$source_recipe" ]; then
    sed "s#^output:.*#output: $work/$1/out#" "$source_recipe" > "$work/$1/recipe.yaml"
  else
    sed -e "s#^output:.*#output: $work/$1/out#" -e '0,/epochs: [0-9]*/s//epochs: 2/' cluster/recipes/default.yaml > "$work/$1/recipe.yaml"
  fi
  echo "$work/$1/recipe.yaml"
}
median_step() {
  python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "step" in r]
for stage in dict.fromkeys(r["stage"] for r in rows):
    t = [r["time/step"] for r in rows if r["stage"] == stage][1:]
    print(f"{stage}: {len(t) + 1} steps, median {statistics.median(t) * 1000:.1f} ms, mean {statistics.mean(t) * 1000:.1f} ms")
PY
}

echo "== local.sh (loopback)"
recipe=$(copy local)
bash cluster/launch/local.sh "$recipe" > "$work/local/log" 2>&1 || { tail "$work/local/log"; exit 1; }
median_step "$work/local/out"

for nodes in 1 3; do
  echo "== slurm.sbatch on $nodes node(s)"
  eval "$(bash "$here/slurm_up.sh" "$work/slurm$nodes" "$nodes")"; export SLURM_CONF
  recipe=$(copy "slurm$nodes")
  cd "$work/slurm$nodes"
  start=$(date +%s.%N)
  id=$(sbatch --parsable --nodes="$nodes" --ntasks=3 --overcommit --export="ALL,REDI_PS_BIN=$bin" "$repo/cluster/launch/slurm.sbatch" "$recipe")
  wait_for_step "$work/slurm$nodes/out" 300
  echo "submit to first step: $(since "$start") s"
  while scontrol show job "$id" | grep -qE 'JobState=(PENDING|RUNNING|COMPLETING)'; do sleep 1; done
  scontrol show job "$id" | grep -o 'JobState=[A-Z]*'
  median_step "$work/slurm$nodes/out"
  cd "$repo"
  bash "$here/slurm_up.sh" "$work/slurm$nodes" stop
done
