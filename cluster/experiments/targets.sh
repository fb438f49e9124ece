#!/usr/bin/env bash
# The speed targets of a release, measured in one invocation on this machine as it comes (the
# environment is left as it is: a preset OPENBLAS_CORETYPE stays), each against its reference
# in the same run, and printed as one table with the CPU and BLAS kernel they hold for:
#   training step ≥ 1.5x PyTorch eager                         (step-bench.sh)
#   sampling at batch 32 ≥ 2x transformers and ≥ 45% of sgemm  (generate-bench.sh 32)
#   cluster efficiency ≥ 92% plain and ≥ 80% with CURVE        (efficiency.sh, 1 server + 2 workers)
#   the default job from a fresh clone ≤ 240 s with the build, and its run ≤ 90 s once built
# About 30 minutes on 2 cores. Each benchmark's whole output is kept in OUT (default: a new
# temporary folder, named at the end). Exits 0 once everything is measured, met or not: the
# table says which targets hold.
#   REDI_PS_PYTHON=/path/to/python-with-torch bash cluster/experiments/targets.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(realpath "$out")
bash cluster/tools/require-torch.sh targets >/dev/null
failed() {  # WHAT FILE: the end of what failed, where the rest is, exit 1
  tail -20 "$2" >&2
  echo "targets: $1 failed (whole output in $2)" >&2
  exit 1
}
step() {  # NAME COMMAND…: runs one benchmark, its output (both streams) into OUT/NAME.txt
  local name=$1
  shift
  echo "== $name: $*" >&2
  "$@" > "$out/$name.txt" 2>&1 || failed "$name" "$out/$name.txt"
  tail -1 "$out/$name.txt" >&2
}
step step bash cluster/experiments/step-bench.sh
step generate bash cluster/experiments/generate-bench.sh 32
step efficiency-plain env DATA_PLANE=plain bash cluster/experiments/efficiency.sh
step efficiency-curve env DATA_PLANE=curve bash cluster/experiments/efficiency.sh

# The default job as a newcomer runs it: a clone of this checkout's HEAD, built from nothing,
# then run again with its binaries built (synthesis, training and evaluation; the build is
# only checked). REDI_PS_BIN is ignored here: the clone builds its own.
clone=$(mktemp -d)
trap 'rm -rf "$clone"' EXIT
git clone --quiet "$PWD" "$clone/redi-ps"
timed() {  # NAME: the default job in the clone, its wall seconds appended to OUT/default.txt
  local start end
  echo "== default job ($1)" >&2
  start=$(date +%s.%N)
  (cd "$clone/redi-ps" && env -u REDI_PS_BIN bash cluster/launch/local.sh) > "$out/default-$1.txt" 2>&1 ||
    failed "the default job ($1)" "$out/default-$1.txt"
  end=$(date +%s.%N)
  echo "$1 $(python3 -c "print(f'{$end - $start:.1f}')")" >> "$out/default.txt"
  tail -1 "$out/default.txt" >&2
}
rm -f "$out/default.txt"
timed fresh
timed built
python3 cluster/tools/reports.py targets "$out"
echo "(every benchmark's output: $out)"
