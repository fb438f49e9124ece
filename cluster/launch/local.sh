#!/usr/bin/env bash
# Runs a recipe on this machine: one coordinator, the recipe's servers and workers, all on
# loopback; waits for the coordinator and stops the rest. Installs what is missing first.
#   bash cluster/launch/local.sh [RECIPE.yaml [--resume latest | --overwrite | --evaluate [--model CHECKPOINT]]]
# Without a recipe it runs the default job (cluster/recipes/default.yaml), whose output
# (runs/default) is replaced each time; a recipe's output holding a run is refused unless
# --resume latest or --overwrite says what to do with it. --evaluate trains nothing: it
# evaluates the recipe's model (or CHECKPOINT) on the recipe's benchmarks with the workers.
set -euo pipefail
# A recipe, --model or --resume path given on the command line is relative to where the command was typed.
recipe=${1:-}
coordinate_args=()
path_follows=no
for arg in "${@:2}"; do
  if [ "$path_follows" = yes ] && [ "$arg" != latest ]; then arg=$(realpath "$arg"); fi
  path_follows=no
  case "$arg" in --model | --resume) path_follows=yes ;; esac
  coordinate_args+=("$arg")
done
if [ -n "$recipe" ]; then recipe=$(realpath "$recipe"); else coordinate_args=(--overwrite); fi
cd "$(dirname "$0")/../.."
recipe=${recipe:-cluster/recipes/default.yaml}
[ -f "$recipe" ] || { echo "error: no recipe at $recipe" >&2; exit 1; }
source cluster/lib/build.sh
build redi-ps redi-worker
# The recipe itself says how many servers and workers to start and where they connect.
read -r servers workers endpoint < <("$bin/redi-ps" coordinate --recipe "$recipe" --print-cluster)
# A fresh run key for this launch: every process proves it holds it (CurveZMQ).
keydir=$(mktemp -d)
key="$keydir/run.key"
"$bin/redi-ps" keys --out "$key" >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$keydir"; }
trap cleanup EXIT INT TERM
"$bin/redi-ps" coordinate --recipe "$recipe" --key "$key" ${coordinate_args[@]+"${coordinate_args[@]}"} &
coordinator=$!
for _ in $(seq "$servers"); do "$bin/redi-ps" serve --coordinator "$endpoint" --key "$key" & pids+=($!); done
for _ in $(seq "$workers"); do "$bin/redi-worker" join --coordinator "$endpoint" --key "$key" --threads 1 & pids+=($!); done
status=0
wait "$coordinator" || status=$?
# Peers leave on the coordinator's word (logging their peak memory); the trap stops any that linger.
for _ in $(seq 100); do
  lingering=0
  for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then lingering=1; fi; done
  [ "$lingering" = 0 ] && break
  sleep 0.1
done
exit "$status"
