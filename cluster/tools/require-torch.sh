#!/usr/bin/env bash
# Prints the Python the benchmarks against PyTorch use ($REDI_PS_PYTHON, else python3), or
# fails with what to do when it lacks torch or transformers.
#   python=$(bash cluster/tools/require-torch.sh SCRIPT-NAME)
set -euo pipefail
python=${REDI_PS_PYTHON:-python3}
if ! "$python" -c "import torch, transformers" 2>/dev/null; then
    echo "${1:-benchmark}: $python has no torch/transformers; set REDI_PS_PYTHON to a Python that has both" \
         "(python3 -m venv V && V/bin/pip install torch transformers)" >&2
    exit 1
fi
echo "$python"
