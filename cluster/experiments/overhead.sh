#!/usr/bin/env bash
# What coordination costs as workers are added, and whether memory stays flat over a long run:
# the `tiny` model on 64-token records (so a step is almost all coordination), one server, one
# record per worker per step, no snapshots, all on this machine.
#   bash cluster/experiments/overhead.sh [STEPS] [WORKER COUNTS...]      (default: 200 steps; 1 2 4 8 16 workers)
#   LONG=20000 bash cluster/experiments/overhead.sh ...                  also a LONG-step run with 4 workers whose
#                                                            every process's RSS is sampled twice a second
#                                                            (spread after the first 10%, before the last 5%)
# Prints per worker count: the median step, the median of the slowest worker's compute, their
# difference (the step's overhead: sending work, pulls, pushes, the servers' sums and update,
# the reports), and the coordinator's CPU time per step.
set -euo pipefail
steps=${1:-200}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 4 8 16)
cd "$(dirname "$0")/../.."
source cluster/lib/build.sh
build redi-ps redi-worker
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 Tests/reference/filler_data.py --out "$work" --tokens 64 --records 64

# run WORKERS STEPS TAG: one run; its log in $work/TAG.log, its metrics in $work/TAG/metrics.jsonl
run() {
  local workers=$1 steps=$2 tag=$3
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$work/$tag.yaml" <<EOF
run_id: overhead
output: $work/$tag
seed: 0
model: {init: tiny}
stages:
  - {name: sft, objective: sft, data: sft.jsonl, max_steps: $steps, batch_size: $workers, learning_rate: 1.0e-4, micro_batch_tokens: 128}
cluster: {servers: 1, workers: $workers, bind: "tcp://127.0.0.1:$port", timeout_seconds: 120, snapshot_every: 0}
EOF
  bash cluster/launch/local.sh "$work/$tag.yaml" > "$work/$tag.log" 2>&1 || { tail -20 "$work/$tag.log"; exit 1; }
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf "%8s %12s %14s %12s %16s\n" workers "step (ms)" "compute (ms)" "overhead" "coordinator CPU"
for n in "${counts[@]}"; do
  run "$n" "$steps" "w$n"
  python3 cluster/tools/reports.py overhead "$work/w$n/metrics.jsonl" "$work/w$n.log" "$n" "$steps"
done

if [ -n "${LONG:-}" ]; then
  echo "== $LONG steps with 4 workers, RSS sampled every 0.5 s"
  start=$(date +%s)
  run 4 "$LONG" long &
  runner=$!
  : > "$work/rss.txt"
  while kill -0 "$runner" 2>/dev/null; do
    for pid in $(pgrep -f "redi-ps coordinate --recipe $work/long.yaml|redi-ps serve|redi-worker join" || true); do
      name=$( (tr '\0' ' ' < "/proc/$pid/cmdline") 2>/dev/null | awk '{print $2}') || continue
      rss=$( (awk '/VmRSS/ {print $2}' "/proc/$pid/status") 2>/dev/null) || continue
      [ -n "$rss" ] && echo "$(date +%s.%N) $pid $name $rss" >> "$work/rss.txt"
    done
    sleep 0.5
  done
  wait "$runner"
  echo "$LONG steps in $(( $(date +%s) - start )) s"
  python3 cluster/tools/reports.py rss "$work/rss.txt"
fi
