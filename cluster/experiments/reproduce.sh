#!/usr/bin/env bash
# The REDI paper's comparison in miniature, run the way the paper runs it, on this machine:
#   1. Data: the built-in arithmetic task; its synthetic teacher's correct traces train the
#      teacher model, and held-out problems are split into a validation and a test set.
#   2. A teacher model (`small`, 2.9 M parameters in its body) trained by SFT on those traces,
#      evaluated on validation every epoch (good but imperfect: the paper's teacher is too).
#   3. Distillation data as the paper makes it: the teacher samples independent whole traces of
#      every training problem at temperature 1, graded by the task's checker. The first correct
#      sample of each problem is the student's SFT data (rejection sampling); the first correct
#      with the first incorrect sample of a problem is a preference pair.
#   4. A smaller student (1.2 M in its body, the teacher's tokenizer) trained by SFT on the
#      teacher's correct samples until validation levels off (the curve is in the table); its
#      checkpoint is where every method starts.
#   5. Every method's learning rate tuned on validation (seed 1) over a grid around SFT's
#      rate / 50 (two steps lower, DPO's range, and two higher): REDI (α 0.8), DPO (β 0.1),
#      SimPO at the paper's β 2, γ 1 and at TRL's defaults, and SFT continued on the pairs'
#      correct traces (the paper's control).
#   6. Each at its tuned rate with N seeds, evaluated on test alike (T 0.6, top-p 0.95), and
#      symmetric REDI (α 1) at REDI's rate; differences paired per problem. A control arm: REDI
#      on the task's synthetic slip pairs (each incorrect trace is the correct one with one
#      slip). The paper's stability check: REDI α 1 and α 0.8 at 5× REDI's tuned rate and at the grid's top.
# Every run is a real cluster run (coordinator, server, workers on loopback).
#
#   bash cluster/experiments/reproduce.sh [--seeds N] [--teacher-epochs N] [--student-epochs N] [--teacher-samples N]
#                                         [--byte-tokenizer] [--out DIR] [--quick]
#
# The models' tokenizer is a byte-level BPE learned from the teacher's SFT records
# (`train_tokenizer`, ~3 bytes a token); --byte-tokenizer keeps one token per byte.
# --teacher-epochs (default 20; 0.74 pass@1 on validation on 2026-12-01), --student-epochs
# (default 40): the SFT lengths. --teacher-samples (default 8): samples of each training problem.
#
# Writes DIR/table.md (the teacher's and the student's SFT curves, the grid, the test table
# with paired differences, per-token log-probs at start and end, first-mistake types on
# test), the figures (DIR/figures/*.png, DIR/stability/*.png) and every run under DIR/runs. A
# finished run is not run again: after an interruption the same command goes on. --quick
# shrinks every budget (a smoke test of the pipeline, not a result).
set -euo pipefail
seeds=3
out=runs/reproduce
quick=no
teacher_epochs_option=""
student_epochs_option=""
samples_option=""
tokenizer_key="  train_tokenizer: 512"
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=${2:?--seeds needs a number}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --teacher-epochs) teacher_epochs_option=${2:?--teacher-epochs needs a number}; shift 2 ;;
    --student-epochs) student_epochs_option=${2:?--student-epochs needs a number}; shift 2 ;;
    --teacher-samples) samples_option=${2:?--teacher-samples needs a number}; shift 2 ;;
    --byte-tokenizer) tokenizer_key=""; shift ;;
    --quick) quick=yes; shift ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for option in "--seeds=$seeds" "--teacher-epochs=$teacher_epochs_option" "--student-epochs=$student_epochs_option" "--teacher-samples=$samples_option"; do
  value=${option#*=}
  [ -z "$value" ] || [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "error: ${option%%=*} must be a positive whole number, not $value" >&2; exit 2; }
done
mkdir -p "$out"
out=$(realpath "$out")
cd "$(dirname "$0")/../.."

# Budgets. Every preference method sees the same pairs for the same number of steps.
if [ "$quick" = yes ]; then
  problems=150 val_problems=16 test_problems=16 samples=2 teacher_samples=2 teacher_epochs=2 student_epochs=2 pref_epochs=1 grid="6.0e-5 2.0e-4"
else
  problems=3000 val_problems=200 test_problems=400 samples=4 teacher_samples=8 teacher_epochs=20 student_epochs=40 pref_epochs=1 grid="6.0e-6 2.0e-5 6.0e-5 2.0e-4 6.0e-4"
fi
teacher_epochs=${teacher_epochs_option:-$teacher_epochs}
student_epochs=${student_epochs_option:-$student_epochs}
teacher_samples=${samples_option:-$teacher_samples}
sft_lr=3.0e-3  # grid: SFT's rate / 50 = 6e-5, two steps lower (DPO's range) and two higher (where the objectives move the model)
port=${REDI_PS_REPRODUCE_PORT:-5590}

source cluster/lib/build.sh
build redi-ps redi-worker  # once, for every run below (REDI_PS_BIN set: those binaries as they are)
export REDI_PS_BIN=$bin
mkdir -p "$out/recipes" "$out/logs" "$out/runs" "$out/data"
started=$(date +%s)
say() { echo "[reproduce] $*" >&2; }

# run NAME: runs $out/recipes/NAME.yaml unless its output already holds an evaluation.
run() {
  local name=$1 log="$out/logs/$1.log"
  if grep -q '"eval/pass@1"' "$out/runs/$name/metrics.jsonl" 2>/dev/null; then
    say "$name: done before, kept"
    return
  fi
  rm -rf "$out/runs/$name"
  say "$name: running ($(( ($(date +%s) - started) / 60 )) min so far; log $log)"
  if ! bash cluster/launch/local.sh "$out/recipes/$name.yaml" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "error: run $name failed; its log is $log" >&2
    exit 1
  fi
  grep -o 'eval after [a-z_]*: pass@1 [0-9.]* ± [0-9.]*' "$log" | sed "s/^/[reproduce] $name: /" >&2 || true
}

# cluster_section EVAL_DATA: the evaluation (alike for every run) and the cluster.
cluster_section() {
  cat <<EOF
eval:
  data: $1
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

# evaluate MODEL NAME DATA: `redi-ps eval` of a checkpoint, as every run evaluates (once).
evaluate() {
  local model=$1 name=$2 eval_data=$3
  [ -f "$out/runs/$name/report.json" ] && return
  mkdir -p "$out/runs/$name"
  "$bin/redi-ps" eval --model "$model" --data "$eval_data" --samples "$samples" --temperature 0.6 --top-p 0.95 \
    --max-new-tokens 160 --batch 64 --samples-out "$out/runs/$name/eval_samples.jsonl" --out "$out/runs/$name/report.json" >/dev/null
}

# sft_stage NAME MODEL-LINES DATA EPOCHS: an SFT run from scratch, validation pass@1 every epoch.
sft_stage() {
  local name=$1 model=$2 records=$3 epochs=$4
  cat >"$out/recipes/$name.yaml" <<EOF
run_id: reproduce-$name
output: $out/runs/$name
seed: 0
model:
$model
stages:
  - name: sft
    objective: sft
    data: $records
    epochs: $epochs
    batch_size: 16
    learning_rate: $sft_lr
    warmup_ratio: 0.05
    micro_batch_tokens: 4096
    eval_every: $(( ($(wc -l <"$records") + 15) / 16 ))
$(cluster_section "$data/val-problems.jsonl")
EOF
  run "$name"
}

# 1. Data: training problems with the synthetic teacher's traces; held-out problems split into validation and test.
data=$out/data
if [ ! -f "$data/stats.json" ]; then
  "$bin/redi-ps" data synth --problems "$problems" --traces-per-problem 4 --test-problems $((val_problems + test_problems)) \
    --digits 1 --steps 2 --error-rate 0.2 --seed 0 --out "$data" >&2
fi
head -n "$val_problems" "$data/test.jsonl" >"$data/val-problems.jsonl"
tail -n +$((val_problems + 1)) "$data/test.jsonl" >"$data/test-problems.jsonl"
python3 cluster/tools/distill.py problems "$data/sft.jsonl" "$data/train-problems.jsonl" >&2

# 2. The teacher: SFT on the synthetic teacher's correct traces.
sft_stage teacher "  init: small
$tokenizer_key" "$data/sft.jsonl" "$teacher_epochs"
teacher=$out/runs/teacher/sft
evaluate "$teacher" teacher-on-test "$data/test-problems.jsonl"

# 3. The teacher's independent samples of every training problem (temperature 1, the whole
# distribution): the student's SFT data and the pairs.
pairs=$out/data/teacher
if [ ! -f "$pairs/stats.json" ]; then
  say "sampling $teacher_samples traces of each training problem from the teacher"
  "$bin/redi-ps" eval --model "$teacher" --data "$data/train-problems.jsonl" --samples "$teacher_samples" --temperature 1.0 --top-p 1.0 \
    --max-new-tokens 160 --batch 64 --seed 11 --samples-out "$data/teacher-samples.jsonl" --out "$data/teacher-samples-report.json" >/dev/null
  status=0
  python3 cluster/tools/distill.py pairs "$data/train-problems.jsonl" "$data/teacher-samples.jsonl" "$pairs" >&2 || status=$?
  if [ "$status" = 3 ] && [ "$quick" = yes ]; then
    say "quick: the teacher solves nothing yet; the synthetic slip pairs stand in for its samples"
    python3 cluster/tools/distill.py slip-stand-in "$data/pref.jsonl" "$pairs"
  elif [ "$status" != 0 ]; then
    exit 1
  fi
fi
# The slip pairs' overlap, for comparison with the teacher's.
python3 cluster/tools/distill.py overlap "$data/pref.jsonl" >"$data/slip-overlap.json"

# 4. The student: smaller, the teacher's tokenizer, SFT on the teacher's correct samples.
python3 cluster/tools/distill.py student-config "$teacher/config.json" "$data/student-config.json"
sft_stage student "  init: $data/student-config.json
  tokenizer: $teacher" "$pairs/sft.jsonl" "$student_epochs"
checkpoint=$out/runs/student/sft

# preference NAME SEED OBJECTIVE-LINES DATA LR EVAL_DATA: one method's run from the SFT checkpoint.
preference() {
  local name=$1 seed=$2 objective=$3 pairs=$4 lr=$5 eval_data=$6
  cat >"$out/recipes/$name.yaml" <<EOF
run_id: reproduce-$name
output: $out/runs/$name
seed: $seed
model:
  path: $checkpoint
stages:
  - name: train
$objective
    data: $pairs
    epochs: $pref_epochs
    batch_size: 16
    learning_rate: $lr
    warmup_ratio: 0.1
    micro_batch_tokens: 4096
$(cluster_section "$eval_data")
EOF
  run "$name"
}

methods=(redi dpo simpo simpo_trl sft_continued)
objective_of() {
  case "$1" in
    redi|redi_slip) printf '    objective: redi\n    alpha: 0.8' ;;
    redi_symmetric) printf '    objective: redi\n    alpha: 1.0' ;;
    dpo) printf '    objective: dpo\n    beta: 0.1' ;;
    simpo) printf '    objective: simpo\n    beta: 2.0\n    gamma: 1.0' ;;  # the paper's SimPO baseline
    simpo_trl) printf '    objective: simpo' ;;  # TRL's defaults: beta 0.1, gamma 0.5
    sft_continued) printf '    objective: sft' ;;
  esac
}
data_of() {
  case "$1" in
    sft_continued) echo "$pairs/positives.jsonl" ;;
    redi_slip) echo "$data/pref.jsonl" ;;
    *) echo "$pairs/pref.jsonl" ;;
  esac
}

# 5. The grid on validation.
for m in "${methods[@]}"; do
  for lr in $grid; do preference "grid-$m-lr$lr" 1 "$(objective_of "$m")" "$(data_of "$m")" "$lr" "$data/val-problems.jsonl"; done
done
# tuned METHOD: the grid's learning rate with the best validation pass@1 (ties: the lower rate).
tuned() {
  local m=$1 best="" best_lr="" lr value
  for lr in $grid; do
    value=$(python3 cluster/tools/distill.py last-pass "$out/runs/grid-$m-lr$lr/metrics.jsonl")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $value > $best else 1)"; then best=$value best_lr=$lr; fi
  done
  echo "$best_lr"
}
declare -A rate
for m in "${methods[@]}"; do rate[$m]=$(tuned "$m"); say "$m: learning rate ${rate[$m]} (best on validation)"; done
rate[redi_slip]=${rate[redi]}
rate[redi_symmetric]=${rate[redi]}

# 6. Seeds at the tuned rates on test, symmetric REDI (α 1) at REDI's rate, the slip-pair
# control arm, and the stability check.
arms=("${methods[@]}" redi_symmetric redi_slip)
# arm METHOD SEED: the run's name, with its rate (a run at another rate is another run, not a cached one).
arm() { echo "$1-lr${rate[$1]}-seed$2"; }
for seed in $(seq 1 "$seeds"); do
  for m in "${arms[@]}"; do
    preference "$(arm "$m" "$seed")" "$seed" "$(objective_of "$m")" "$(data_of "$m")" "${rate[$m]}" "$data/test-problems.jsonl"
  done
done
high=$(python3 -c "print('%.1e' % (5 * ${rate[redi]}))")
top=${grid##* }  # the grid's highest rate: where, here, pushing rejected traces down moves the model most
for lr in "$high" "$top"; do
  preference "stability-redi-lr$lr" 1 "$(objective_of redi)" "$(data_of redi)" "$lr" "$data/test-problems.jsonl"
  preference "stability-redi_symmetric-lr$lr" 1 "$(objective_of redi_symmetric)" "$(data_of redi)" "$lr" "$data/test-problems.jsonl"
done
# The student's SFT checkpoint itself on test (where every method starts), with the same evaluation.
evaluate "$checkpoint" sft-on-test "$data/test-problems.jsonl"

# 7. What explains the outcome: per-token log-probs of 64 teacher and 64 slip pairs at the start and end.
probe() {
  local model=$1 name=$2
  # Kept only when made from the same model (a tuned rate can change between invocations).
  [ -f "$out/probes/$name.json" ] && [ "$(cat "$out/probes/$name.model" 2>/dev/null)" = "$model" ] && return
  mkdir -p "$out/probes"
  "$bin/redi-ps" logprobs --model "$model" --data "$out/probes/teacher-pairs.jsonl" --out "$out/probes/$name-teacher.jsonl" 2>/dev/null
  "$bin/redi-ps" logprobs --model "$model" --data "$out/probes/slip-pairs.jsonl" --out "$out/probes/$name-slip.jsonl" 2>/dev/null
  python3 cluster/tools/distill.py logps "$out/probes/$name-teacher.jsonl" "$out/probes/$name-slip.jsonl" >"$out/probes/$name.json"
  echo "$model" >"$out/probes/$name.model"
}
mkdir -p "$out/probes"
head -n 64 "$pairs/pref.jsonl" >"$out/probes/teacher-pairs.jsonl"
head -n 64 "$data/pref.jsonl" >"$out/probes/slip-pairs.jsonl"
probe "$checkpoint" sft_checkpoint
for m in "${arms[@]}"; do probe "$out/runs/$(arm "$m" 1)/train" "$m"; done
probe "$out/runs/stability-redi-lr$high/train" "stability-redi"
probe "$out/runs/stability-redi_symmetric-lr$high/train" "stability-redi_symmetric"
probe "$out/runs/stability-redi-lr$top/train" "stability-redi-top"
probe "$out/runs/stability-redi_symmetric-lr$top/train" "stability-redi_symmetric-top"

# 8. The tables and the figures.
labelled=()
for m in "${arms[@]}"; do for seed in $(seq 1 "$seeds"); do labelled+=("$m=$out/runs/$(arm "$m" "$seed")"); done; done
grid_runs=()
for m in "${methods[@]}"; do for lr in $grid; do grid_runs+=("$m lr $lr=$out/runs/grid-$m-lr$lr"); done; done
{
  echo "## The teacher (small, $teacher_epochs epochs of SFT on the synthetic teacher's correct traces): validation pass@1 ($val_problems problems × $samples samples) by step"
  echo
  python3 cluster/tools/distill.py curve "$out/runs/teacher/metrics.jsonl"
  echo
  echo "On test: $(python3 cluster/tools/distill.py report "$out/runs/teacher-on-test/report.json")."
  echo
  echo "## The teacher's samples"
  echo
  python3 cluster/tools/distill.py describe "$pairs/stats.json" "$data/slip-overlap.json"
  echo
  echo "## The student (smaller, $student_epochs epochs of SFT on the teacher's correct samples): validation pass@1 by step"
  echo
  python3 cluster/tools/distill.py curve "$out/runs/student/metrics.jsonl"
  echo
  echo "## Learning rates on validation (seed 1; the best is each method's tuned rate)"
  echo
  python3 cluster/tools/compare.py --no-paired "${grid_runs[@]}"
  echo
  echo "## Test: pass@1 on $test_problems held-out problems × $samples samples (T 0.6, top-p 0.95), $seeds seeds per method at its tuned rate"
  echo
  echo "The student's SFT checkpoint on the same test: $(python3 cluster/tools/distill.py report "$out/runs/sft-on-test/report.json"); the teacher: $(python3 cluster/tools/distill.py report "$out/runs/teacher-on-test/report.json")."
  echo
  python3 cluster/tools/compare.py --method redi --baseline "$out/runs/sft-on-test/eval_samples.jsonl" "${labelled[@]}"
  echo
  echo "## Per-token log-probs of 64 pairs (teacher: the teacher model's samples; slip: the synthetic teacher's), start → end (seed 1)"
  echo
  python3 cluster/tools/distill.py probes "$out/probes" sft_checkpoint "${arms[@]}" stability-redi stability-redi_symmetric stability-redi-top stability-redi_symmetric-top
  echo
  echo "## Stability: α 0.8 and α 1 at 5× REDI's tuned rate ($high) and at the grid's highest ($top), on test"
  echo
  python3 cluster/tools/compare.py --no-paired "redi α 0.8 lr $high=$out/runs/stability-redi-lr$high" "redi α 1 lr $high=$out/runs/stability-redi_symmetric-lr$high" \
    "redi α 0.8 lr $top=$out/runs/stability-redi-lr$top" "redi α 1 lr $top=$out/runs/stability-redi_symmetric-lr$top"
  echo
  echo "## First mistake of incorrect test samples (all seeds)"
  echo
  python3 cluster/tools/distill.py error-table "$data/test-problems.jsonl" "sft_checkpoint=$out/runs/sft-on-test/eval_samples.jsonl" \
    $(for m in "${arms[@]}"; do printf '%s=%s ' "$m" "$(for seed in $(seq 1 "$seeds"); do echo "$out/runs/$(arm "$m" "$seed")/eval_train.jsonl"; done | paste -sd, -)"; done)
} >"$out/table.md"
python3 cluster/tools/plot.py --out "$out/figures" "${labelled[@]}" >&2
python3 cluster/tools/plot.py --out "$out/stability" "redi α=0.8 lr $top=$out/runs/stability-redi-lr$top" \
  "redi α=1 lr $top=$out/runs/stability-redi_symmetric-lr$top" "redi α=0.8 lr ${rate[redi]}=$out/runs/$(arm redi 1)" >&2
cat "$out/table.md"
say "done in $(( ($(date +%s) - started) / 60 )) min: $out/table.md, $out/figures, $out/stability"
