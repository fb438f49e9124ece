#!/usr/bin/env bash
# The test suite as CI runs it: dependencies if missing, the real test model, a short fuzz
# run, then every test in release mode (numeric code in a debug build is too slow to test usefully).
set -euo pipefail
cd "$(dirname "$0")/.."
bash cluster/install-deps.sh --launch-tests
if ! bash cluster/fetch-test-model.sh >/dev/null; then
  echo "warning: could not fetch the test model; tests that need it will skip" >&2
fi
# A short fuzz of every decoder of outside bytes (cluster/fuzz.sh runs 10^6 per decoder).
bash cluster/fuzz.sh 20000
swift test -c release
