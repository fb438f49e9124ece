#!/usr/bin/env bash
# Regenerates the committed protobuf-c code from proto/redi.proto into Sources/CREDIProto.
# Usage: bash proto/generate.sh [OUTDIR]   (OUTDIR defaults to Sources/CREDIProto)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-Sources/CREDIProto}
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path=proto --c_out="$tmp" proto/redi.proto
mkdir -p "$out/include"
# The header goes where SwiftPM looks for a C target's public headers; the source includes it by name.
mv "$tmp/redi.pb-c.h" "$out/include/redi.pb-c.h"
mv "$tmp/redi.pb-c.c" "$out/redi.pb-c.c"
