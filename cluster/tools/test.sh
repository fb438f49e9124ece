#!/usr/bin/env bash
# The test suite as CI runs it: the formatting check, dependencies if missing, the real test
# model, a short fuzz run, then every test in release mode (numeric code in a debug build is
# too slow to test usefully).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Layout as .swift-format says (swift-format ships with the Swift toolchain; `swift format -i -r
# Sources Tests Package.swift` applies it).
if ! swift format lint --strict -r Sources Tests Package.swift; then
  echo "error: the code is not formatted as .swift-format says; run: swift format -i -r Sources Tests Package.swift" >&2
  exit 1
fi
bash cluster/tools/install-deps.sh --launch-tests
if ! bash cluster/tools/fetch-test-model.sh >/dev/null; then
  echo "warning: could not fetch the test model; tests that need it will skip" >&2
fi
# transformers + torch for the checkpoint/autograd comparison (CheckpointOpensInTransformers…),
# in a venv beside the system's reference packages; ~4 GB from PyPI (torch's CUDA build), so
# only where the disk has room and REDI_PS_PYTHON does not already name a Python with them.
venv=.cache/python-torch
if [ -z "${REDI_PS_PYTHON:-}" ] && ! python3 -c "import torch, transformers" 2>/dev/null; then
  if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
    free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
    if [ "$free_gb" -ge 12 ]; then
      echo "installing torch and transformers into $venv for the transformers comparison" >&2
      python3 -m venv --system-site-packages "$venv" &&
        "$venv/bin/python" -m pip install -q --disable-pip-version-check torch transformers safetensors ||
        echo "warning: torch/transformers could not be installed; the transformers comparison will skip" >&2
    else
      echo "warning: ${free_gb} GB free; torch needs ~6 GB, so the transformers comparison will skip" >&2
    fi
  fi
  if "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then export REDI_PS_PYTHON=$PWD/$venv/bin/python; fi
fi
# A short fuzz of every decoder of outside bytes (cluster/tools/fuzz.sh runs 10^6 per decoder).
bash cluster/tools/fuzz.sh 20000
swift test -c release
