#!/usr/bin/env bash
# Chaos run: trains a small recipe once without faults, then again while a random worker or
# server is killed (kill -9) every few seconds and a replacement started (a new worker, or a
# spare server). Prints every fault, the final weights' largest difference to the
# uninterrupted run, and whether every example was used exactly once per epoch.
#   bash cluster/experiments/chaos.sh [FAULTS (default 10)] [SECONDS between faults (default 4)]
# DATA_PLANE=sealed|plain runs both runs with that data plane (default curve).
# Exits nonzero when the run fails, fewer faults were injected, the weights differ, or an
# example was used twice or not at all.
set -euo pipefail
want=${1:-10}; every=${2:-4}
cd "$(dirname "$0")/../.."
source cluster/lib/build.sh
build redi-ps redi-worker
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
"$bin/redi-ps" keys --out "$work/run.key" >/dev/null

recipe() {  # OUTPUT PORT
  cat <<EOF
run_id: chaos
output: $1
seed: 7
model: {init: tiny}
synth: {problems: 120, traces_per_problem: 2, test_problems: 4, digits: 1, steps: 1}
stages:
  - {name: sft, objective: sft, data: sft.jsonl, epochs: 8, batch_size: 12, learning_rate: 2.0e-3, warmup_ratio: 0.1}
  - {name: redi, objective: redi, data: pref.jsonl, epochs: 1, batch_size: 8, learning_rate: 2.0e-4}
cluster: {servers: 2, workers: 3, bind: "tcp://127.0.0.1:$2", timeout_seconds: 1.5, heartbeat_seconds: 0.2,
          chunk_mib: 0.05, snapshot_every: 4, data_plane: ${DATA_PLANE:-curve}}
EOF
}
# The synthesised data lands in each output directory; the stage paths are relative to it.
for run in calm chaos; do mkdir -p "$work/$run"; done

start_server() { "$bin/redi-ps" serve --coordinator "tcp://127.0.0.1:$1" --key "$work/run.key" --timeout 60 2>>"$work/$2/servers.log" & }
start_worker() { "$bin/redi-worker" join --coordinator "tcp://127.0.0.1:$1" --key "$work/run.key" --threads 1 --timeout 60 $3 2>>"$work/$2/workers.log" & }

launch() {  # NAME PORT DELAY → coordinator pid in $coordinator, peers in roles[]
  recipe "$work/$1" "$2" | sed "s#data: sft.jsonl#data: $work/$1/sft.jsonl#; s#data: pref.jsonl#data: $work/$1/pref.jsonl#" > "$work/$1.yaml"
  "$bin/redi-ps" coordinate --recipe "$work/$1.yaml" --key "$work/run.key" >"$work/$1/table.txt" 2>"$work/$1/coordinator.log" &
  coordinator=$!
  roles=()
  for _ in 1 2; do start_server "$2" "$1"; pids+=($!); roles+=("server:$!"); done
  for _ in 1 2 3; do start_worker "$2" "$1" "$3"; pids+=($!); roles+=("worker:$!"); done
}

echo "uninterrupted run…"
launch calm $((21000 + RANDOM % 11000)) ""
wait "$coordinator" || { echo "the uninterrupted run failed:"; tail -5 "$work/calm/coordinator.log"; exit 1; }

echo "chaos run: a fault every ${every} s…"
port=$((21000 + RANDOM % 11000))
launch chaos "$port" "--delay-steps 0.3"
faults=0
while kill -0 "$coordinator" 2>/dev/null; do
  sleep "$every"
  kill -0 "$coordinator" 2>/dev/null || break
  alive=()
  for r in "${roles[@]}"; do kill -0 "${r#*:}" 2>/dev/null && alive+=("$r"); done
  [ ${#alive[@]} -gt 0 ] || continue
  victim=${alive[$((RANDOM % ${#alive[@]}))]}
  role=${victim%%:*}; pid=${victim#*:}
  kill -9 "$pid" 2>/dev/null || continue
  wait "$pid" 2>/dev/null || true   # reap it quietly
  faults=$((faults + 1))
  if [ "$role" = server ]; then start_server "$port" chaos; else start_worker "$port" chaos "--delay-steps 0.3"; fi
  pids+=($!); roles+=("$role:$!")
  echo "fault $faults at $(date +%T): killed $role (pid $pid), started a replacement (pid $!)"
done
status=0
wait "$coordinator" || status=$?
echo "chaos run: coordinator exit $status after $faults faults"
grep -E "stopped answering|replaying|takes over|spread over|admitted at step" "$work/chaos/coordinator.log" | sed 's/^/  /' | head -40
python3 cluster/tools/reports.py chaos "$work/calm" "$work/chaos" "$want" "$faults" "$status"
