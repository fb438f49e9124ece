#!/usr/bin/env bash
# Installs what redi-ps needs on a Debian/Ubuntu machine, only where it is missing:
# OpenBLAS, libzmq, OpenSSL's libcrypto (the sealed data plane), protobuf-c (+ protoc-c),
# pkg-config, and the Python references the tests use.
#   bash cluster/tools/install-deps.sh [--launch-tests]
# --launch-tests adds what the launcher tests start for real (Slurm with munge, sshd,
# iproute2 for network namespaces); only as root, since those tests need root anyway.
set -euo pipefail
updated=no
install() {  # APT OPTIONS… -- PACKAGES…: those not installed yet
  local options=() missing=()
  while [ "$1" != -- ]; do options+=("$1"); shift; done; shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "installing: ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  [ "$updated" = yes ] || $sudo apt-get update -qq
  updated=yes
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${options[@]}" "${missing[@]}" >/dev/null
}
install -- libopenblas-dev libzmq3-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler pkg-config
if [ "${1:-}" = --launch-tests ] && [ "$(id -u)" -eq 0 ]; then
  install --no-install-recommends -- slurm-wlm munge openssh-server openssh-client iproute2 procps util-linux
fi
if ! command -v swift >/dev/null 2>&1; then
  echo "error: swift is not on PATH; install Swift 6 (https://swift.org/install) and retry" >&2
  exit 1
fi
# Independent references for the tests: numpy, the gguf reader, jinja2, pyzmq (hostile peers),
# tensorboard (its own event-file reader), tokenizers (Hugging Face's BPE); matplotlib for
# cluster/tools/plot.py; pyarrow for parquet (redi-ps data openr1 reads Open-R1's parquet with it).
if command -v python3 >/dev/null 2>&1 && ! python3 -c "import numpy, gguf, jinja2, zmq, tensorboard, tokenizers, matplotlib, pyarrow" 2>/dev/null; then
  echo "installing numpy, gguf, jinja2, pyzmq, tensorboard, tokenizers, matplotlib and pyarrow for the reference tests, plots and parquet" >&2
  python3 -m pip install -q --disable-pip-version-check numpy gguf jinja2 pyzmq tensorboard tokenizers matplotlib pyarrow \
    || echo "warning: reference packages could not be installed; the tests that need them will skip" >&2
fi
