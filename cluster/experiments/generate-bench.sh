#!/usr/bin/env bash
# Sampling throughput, redi-ps against Hugging Face transformers, in one invocation on the same
# checkpoint (SmolLM2-135M-Instruct, dequantised from the test model's GGUF), the same shape
# (PROMPTS prompts × SAMPLES samples of TOKENS new tokens after PROMPT_TOKENS-token prompts,
# BATCH rows decoded together, temperature 0.6, top-p 0.95, fp32) and the same threads (every
# core), in ROUNDS rounds (default 3) that each run both. Prints every round's ratio and the
# median; redi-bench also prints its MFU against sgemm and against its own matrix products alone.
#   REDI_PS_PYTHON=/path/to/python-with-torch bash cluster/experiments/generate-bench.sh [BATCH]
# (torch from PyPI is large: python3 -m venv V && V/bin/pip install torch transformers)
set -euo pipefail
batch=${1:-32}
samples=${SAMPLES:-4} tokens=${TOKENS:-128} prompt_tokens=${PROMPT_TOKENS:-64}
prompts=${PROMPTS:-$(( 2 * batch / samples ))}
cd "$(dirname "$0")/../.."
python=$(bash cluster/tools/require-torch.sh generate-bench)
source cluster/lib/build.sh
build redi-ps redi-bench
bash cluster/tools/fetch-test-model.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/redi-ps" convert --from .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf --out "$work/model" >&2
threads=$(nproc)
ours() {
  local out
  out=$("$bin/redi-bench" generate --model "$work/model" --batch "$batch" --samples "$samples" --prompts "$prompts" \
        --tokens "$tokens" --prompt-tokens "$prompt_tokens")
  echo "$out"
  rate=$(sed -n 's/.*new tokens after [0-9]*-token prompts: \([0-9.]*\) tokens\/s.*/\1/p' <<< "$out" | head -1)
}
theirs() {
  local out
  out=$("$python" Tests/reference/transformers_generate.py "$work/model" --batch "$batch" --samples "$samples" --prompts "$prompts" \
        --tokens "$tokens" --prompt-tokens "$prompt_tokens" --threads "$threads" 2>/dev/null)
  echo "$out"
  rate=$(sed -n 's/^transformers generate: \([0-9.]*\) tokens\/s.*/\1/p' <<< "$out")
}
source cluster/lib/rounds.sh
rounds redi-ps "transformers generate" "(batch $batch, $threads threads)"
