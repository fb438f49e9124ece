#!/usr/bin/env bash
# Training-step throughput, redi-ps against PyTorch eager, in one invocation on the same shape
# (SmolLM2-135M's configuration, random weights, RECORDS sequences of LENGTH tokens, every token
# after the first scored, forward + backward) and the same threads (every core), in ROUNDS rounds
# (default 3) that each run both. Prints every round's ratio and the median; redi-bench also
# prints its MFU against sgemm measured in the same run.
#   REDI_PS_PYTHON=/path/to/python-with-torch bash cluster/experiments/step-bench.sh
set -euo pipefail
records=${RECORDS:-4} length=${LENGTH:-256} repeats=${REPEATS:-3}
cd "$(dirname "$0")/../.."
python=$(bash cluster/tools/require-torch.sh step-bench)
source cluster/lib/build.sh
build redi-bench
threads=$(nproc)
ours() {
  local out
  out=$("$bin/redi-bench" step --records "$records" --length "$length" --repeats "$repeats")
  echo "$out"
  rate=$(sed -n 's/^forward+backward: \([0-9.]*\) tokens\/s.*/\1/p' <<< "$out")
}
theirs() {
  local out
  out=$("$python" Tests/reference/torch_train_step.py --records "$records" --length "$length" --repeats "$repeats" --threads "$threads")
  echo "$out"
  rate=$(sed -n 's/^pytorch eager step: \([0-9.]*\) tokens\/s.*/\1/p' <<< "$out")
}
source cluster/lib/rounds.sh
rounds redi-ps "pytorch eager" "($records x $length tokens, $threads threads)"
