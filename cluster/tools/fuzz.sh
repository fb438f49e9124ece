#!/usr/bin/env bash
# Fuzzes every decoder of outside bytes (GGUF, safetensors, protocol envelopes, JSONL, YAML,
# tokenizer.json, chat templates, trainer_state.json, graded answers)
# with mutated inputs; exits nonzero if one traps (the input is left in crash-NAME.bin).
#   bash cluster/tools/fuzz.sh [RUNS per decoder, default 1000000] [DECODER…]
set -euo pipefail
runs=${1:-1000000}; shift || true
cd "$(dirname "$0")/../.."
source cluster/lib/build.sh
build redi-fuzz
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
python3 Tests/fuzz/make_seeds.py "$seeds"
cp cluster/recipes/*.yaml "$seeds/"
cp Tests/reference/*.jinja "$seeds/"
cp Tests/GradingTests/math_verify_pairs.jsonl "$seeds/"
"$bin/redi-fuzz" --seeds "$seeds" --runs "$runs" "$@"
