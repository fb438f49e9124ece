#!/usr/bin/env bash
# Each role's peak memory, measured against the memory model (`redi-ps plan`), on this machine:
# a model initialised from a preset or config.json, SFT then REDI steps on sequences of TOKENS
# tokens (byte-tokenised filler text, one sequence per micro-batch), a snapshot every step,
# SERVERS servers and WORKERS workers on loopback, a checkpoint after each stage.
#   [SNAPSHOT_EVERY=N] [SNAPSHOT_DIR=/local/disk/dir] [ACTIVATION_KEEP_MIB=M] bash cluster/experiments/memory.sh [MODEL] [SERVERS] [WORKERS] [TOKENS] [STEPS]
#   e.g. bash cluster/experiments/memory.sh smollm2-135m 2 2 2048
#        SNAPSHOT_EVERY=0 bash cluster/experiments/memory.sh cluster/configs/qwen2.5-0.5b.json 2 1 2048 1
# Prints each process's measured peak RSS beside the plan's prediction for its role.
set -euo pipefail
model=${1:-smollm2-135m} servers=${2:-2} workers=${3:-2} tokens=${4:-2048} steps=${5:-3} snapshot_every=${SNAPSHOT_EVERY:-1} activation_keep_mib=${ACTIVATION_KEEP_MIB:-4096} snapshot_dir=${SNAPSHOT_DIR:-}
[ -f "$model" ] && model=$(realpath "$model")
cd "$(dirname "$0")/../.."
source cluster/lib/build.sh
build redi-ps redi-worker
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 Tests/reference/filler_data.py --out "$work" --tokens "$tokens" --records $((workers * steps))
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/memory.yaml" <<EOF
run_id: memory
output: $work/out
seed: 0
model: {init: $model}
stages:
  - {name: sft, objective: sft, data: sft.jsonl, max_steps: $steps, batch_size: $workers, learning_rate: 1.0e-5, micro_batch_tokens: $tokens}
  - {name: redi, objective: redi, alpha: 0.8, data: pref.jsonl, max_steps: $steps, batch_size: $workers, learning_rate: 1.0e-6, micro_batch_tokens: $((2 * tokens))}
cluster: {servers: $servers, workers: $workers, bind: "tcp://127.0.0.1:$port", timeout_seconds: 600, snapshot_every: $snapshot_every, activation_keep_mib: $activation_keep_mib,${snapshot_dir:+ snapshot_dir: $snapshot_dir,} chunk_mib: 4}
EOF
echo "== plan" >&2
"$bin/redi-ps" plan --recipe "$work/memory.yaml" --sequence-length "$tokens" | tee "$work/plan.txt"
echo "== run ($servers servers, $workers workers, $tokens-token sequences, $steps SFT + $steps REDI steps, snapshot_every $snapshot_every${snapshot_dir:+ in files in $snapshot_dir}, activation_keep_mib $activation_keep_mib)" >&2
start=$(date +%s)
bash cluster/launch/local.sh "$work/memory.yaml" > "$work/run.log" 2>&1 || { tail -30 "$work/run.log"; exit 1; }
echo "run: $(( $(date +%s) - start )) s" >&2
python3 cluster/tools/reports.py memory "$work/plan.txt" "$work/run.log"
