#!/usr/bin/env bash
# The REDI paper's Table 2 in miniature, on this machine: one SFT checkpoint on the built-in
# arithmetic task, then from it REDI (α = 0.8), symmetric REDI (α = 1), DPO, SimPO and SFT
# continued on the same positives (the paper's control), each with several seeds, the same
# pairs and the same evaluation (T = 0.6, top-p 0.95, pass@1 over k samples of held-out
# problems). Then the paper's stability check: symmetric and asymmetric REDI at a higher
# learning rate. Every run is a real cluster run (coordinator, server, workers on loopback).
#
#   bash cluster/reproduce.sh [--seeds N] [--out DIR] [--quick]
#
# Writes DIR/table.md (pass@1 mean ± SEM per method; REDI against each baseline), the
# figures (DIR/figures/*.png; DIR/stability/*.png) and every run's output under DIR/runs.
# A run that finished is not run again: after an interruption the same command goes on.
# --quick shrinks every budget (a smoke test of the pipeline, not a result).
set -euo pipefail
seeds=3
out=runs/reproduce
quick=no
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=${2:?--seeds needs a number}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --quick) quick=yes; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "error: --seeds must be a positive whole number, not $seeds" >&2; exit 2; }
mkdir -p "$out"
out=$(realpath "$out")
cd "$(dirname "$0")/.."

# Budgets. The task and SFT budget put the SFT model well below the ceiling (room to improve);
# every preference method sees the same pairs for the same number of steps.
if [ "$quick" = yes ]; then
  problems=120 test_problems=16 samples=2 sft_epochs=1 sft_lr=3.0e-3 pref_epochs=0.5 pref_lr=2.0e-4 high_lr=1.0e-3
else
  problems=3000 test_problems=400 samples=4 sft_epochs=7 sft_lr=3.0e-3 pref_epochs=0.5 pref_lr=2.0e-4 high_lr=1.0e-3
fi
port=${REDI_PS_REPRODUCE_PORT:-5590}

source cluster/lib/build.sh
build redi-ps redi-worker  # once, for every run below (REDI_PS_BIN set: those binaries as they are)
export REDI_PS_BIN=$bin
mkdir -p "$out/recipes" "$out/logs" "$out/runs"
started=$(date +%s)

# run NAME: runs $out/recipes/NAME.yaml unless its output already holds an evaluation.
run() {
  local name=$1 log="$out/logs/$1.log"
  if grep -q '"eval/pass@1"' "$out/runs/$name/metrics.jsonl" 2>/dev/null; then
    echo "[reproduce] $name: done before, kept" >&2
    return
  fi
  rm -rf "$out/runs/$name"
  echo "[reproduce] $name: running ($(( ($(date +%s) - started) / 60 )) min so far; log $log)" >&2
  if ! bash cluster/local.sh "$out/recipes/$name.yaml" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "error: run $name failed; its log is $log" >&2
    exit 1
  fi
  grep -o 'eval after [a-z_]*: pass@1 [0-9.]* ± [0-9.]*' "$log" | sed "s/^/[reproduce] $name: /" >&2 || true
}

cluster_section() {
  cat <<EOF
eval:
  data: $out/runs/sft/test.jsonl
  samples: $samples
  temperature: 0.6
  top_p: 0.95
  max_new_tokens: 160
  batch: 64
cluster:
  servers: 1
  workers: 2
  bind: tcp://127.0.0.1:$port
  heartbeat_seconds: 2
  timeout_seconds: 120
  chunk_mib: 1
EOF
}

# 1. The task's data and the shared SFT checkpoint.
cat >"$out/recipes/sft.yaml" <<EOF
run_id: reproduce-sft
output: $out/runs/sft
seed: 0
model:
  init: small
synth:
  problems: $problems
  traces_per_problem: 4
  test_problems: $test_problems
  digits: 1
  steps: 2
  error_rate: 0.2
stages:
  - name: sft
    objective: sft
    data: sft.jsonl
    epochs: $sft_epochs
    batch_size: 16
    learning_rate: $sft_lr
    warmup_ratio: 0.05
    micro_batch_tokens: 4096
$(cluster_section)
EOF
run sft

# The control sees the pairs' chosen traces as prompt/completion records: same prompts, same positives.
python3 - "$out/runs/sft/pref.jsonl" "$out/runs/sft/positives.jsonl" <<'PY'
import json, os, sys
with open(sys.argv[1]) as f, open(sys.argv[2] + ".tmp", "w") as g:
    for line in f:
        r = json.loads(line)
        g.write(json.dumps({"prompt": r["prompt"], "completion": r["chosen"]}) + "\n")
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY

# preference NAME SEED STAGE OBJECTIVE-LINES DATA LR: one method's run from the SFT checkpoint.
preference() {
  local name=$1 seed=$2 stage=$3 objective=$4 data=$5 lr=$6
  cat >"$out/recipes/$name.yaml" <<EOF
run_id: reproduce-$name
output: $out/runs/$name
seed: $seed
model:
  path: $out/runs/sft/sft
stages:
  - name: $stage
$objective
    data: $data
    epochs: $pref_epochs
    batch_size: 16
    learning_rate: $lr
    warmup_ratio: 0.1
    micro_batch_tokens: 4096
$(cluster_section)
EOF
  run "$name"
}

pairs="$out/runs/sft/pref.jsonl"
methods=(redi redi_symmetric dpo simpo sft_continued)
objective_of() {
  case "$1" in
    redi) printf '    objective: redi\n    alpha: 0.8' ;;
    redi_symmetric) printf '    objective: redi\n    alpha: 1.0' ;;
    dpo) printf '    objective: dpo\n    beta: 0.1' ;;
    simpo) printf '    objective: simpo' ;;
    sft_continued) printf '    objective: sft' ;;
  esac
}
for seed in $(seq 1 "$seeds"); do
  for m in "${methods[@]}"; do
    data=$pairs; [ "$m" = sft_continued ] && data="$out/runs/sft/positives.jsonl"
    preference "$m-seed$seed" "$seed" "$m" "$(objective_of "$m")" "$data" "$pref_lr"
  done
done
# Stability at a higher learning rate (the paper: symmetric REDI collapses, α = 0.8 holds).
preference redi-high-lr 1 redi "$(objective_of redi)" "$pairs" "$high_lr"
preference redi_symmetric-high-lr 1 redi_symmetric "$(objective_of redi_symmetric)" "$pairs" "$high_lr"

# 2. The table and the figures.
labelled=()
for m in "${methods[@]}"; do for seed in $(seq 1 "$seeds"); do labelled+=("$m=$out/runs/$m-seed$seed"); done; done
{
  echo "pass@1 on $test_problems held-out problems × $samples samples (T 0.6, top-p 0.95); seeds $seeds per method;"
  echo "sft_checkpoint is where every method starts (its ± is its standard error over problems)."
  echo
  python3 cluster/compare.py --method redi sft_checkpoint="$out/runs/sft" "${labelled[@]}"
} >"$out/table.md"
python3 cluster/plot.py --out "$out/figures" "${labelled[@]}" >&2
python3 cluster/plot.py --out "$out/stability" "redi α=0.8 lr $high_lr=$out/runs/redi-high-lr" \
  "redi α=1 lr $high_lr=$out/runs/redi_symmetric-high-lr" "redi α=0.8 lr $pref_lr=$out/runs/redi-seed1" \
  "redi α=1 lr $pref_lr=$out/runs/redi_symmetric-seed1" >&2
cat "$out/table.md"
echo "[reproduce] done in $(( ($(date +%s) - started) / 60 )) min: $out/table.md, $out/figures, $out/stability" >&2
