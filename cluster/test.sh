#!/usr/bin/env bash
# The test suite as CI runs it: dependencies if missing, then every test in release mode
# (numeric code in a debug build is too slow to test usefully).
set -euo pipefail
cd "$(dirname "$0")/.."
bash cluster/install-deps.sh
swift test -c release
