#!/usr/bin/env bash
# The default job on one machine, from nothing: build redi-ps, initialise a small Llama
# model from scratch, and compute its SFT and REDI gradients on a built-in dataset.
# (The distributed stage 1 → stage 2 pipeline replaces this with a full run.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash cluster/install-deps.sh
swift build -c release --product redi-ps
bin=.build/release/redi-ps
out=${1:-runs/default}
mkdir -p "$out"
cat > "$out/sft.jsonl" <<'DATA'
{"prompt": "Compute 17+25. ", "completion": "17+25: 7+5=12, write 2 carry 1; 1+2+1=4. Answer: 42"}
{"prompt": "Compute 38+14. ", "completion": "38+14: 8+4=12, write 2 carry 1; 3+1+1=5. Answer: 52"}
DATA
cat > "$out/pref.jsonl" <<'DATA'
{"prompt": "Compute 17+25. ", "chosen": "17+25: 7+5=12, write 2 carry 1; 1+2+1=4. Answer: 42", "rejected": "17+25: 7+5=12, write 2; 1+2=3. Answer: 32"}
{"prompt": "Compute 38+14. ", "chosen": "38+14: 8+4=12, write 2 carry 1; 3+1+1=5. Answer: 52", "rejected": "38+14: 8+4=12, write 2 carry 1; 3+1=4. Answer: 42"}
DATA
$bin init --config small --seed 0 --out "$out/model" --force
echo "stage 1 objective (sft):"
$bin grad --model "$out/model" --data "$out/sft.jsonl" --objective sft --out "$out/sft-grads.safetensors"
echo "stage 2 objective (redi, alpha 0.8):"
$bin grad --model "$out/model" --data "$out/pref.jsonl" --objective redi --out "$out/redi-grads.safetensors"
$bin logprobs --model "$out/model" --data "$out/pref.jsonl"
echo "checkpoint and gradients in $out"
