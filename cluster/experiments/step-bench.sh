#!/usr/bin/env bash
# Training-step throughput, redi-ps against PyTorch eager, in one invocation on the same shape
# (SmolLM2-135M's configuration, random weights, RECORDS sequences of LENGTH tokens, every token
# after the first scored, forward + backward) and the same threads (every core). Prints both
# rates and their ratio; redi-bench also prints its MFU against sgemm measured in the same run.
#   REDI_PS_PYTHON=/path/to/python-with-torch bash cluster/experiments/step-bench.sh
set -euo pipefail
records=${RECORDS:-4} length=${LENGTH:-256} repeats=${REPEATS:-3}
cd "$(dirname "$0")/../.."
python=$(bash cluster/tools/require-torch.sh step-bench)
source cluster/lib/build.sh
build redi-bench
threads=$(nproc)
echo "== redi-ps" >&2
ours=$("$bin/redi-bench" step --records "$records" --length "$length" --repeats "$repeats")
echo "$ours"
echo "== pytorch eager" >&2
theirs=$("$python" Tests/reference/torch_train_step.py --records "$records" --length "$length" --repeats "$repeats" --threads "$threads")
echo "$theirs"
a=$(sed -n 's/^forward+backward: \([0-9.]*\) tokens\/s.*/\1/p' <<< "$ours")
b=$(sed -n 's/^pytorch eager step: \([0-9.]*\) tokens\/s.*/\1/p' <<< "$theirs")
python3 -c "print(f'redi-ps {$a:.1f} tokens/s vs pytorch eager {$b:.1f} tokens/s = {$a / $b:.2f}x ($records x $length tokens, $threads threads)')"
