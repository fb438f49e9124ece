# Sourced by the scripts in cluster/ (not run): the one build preamble.
#   source cluster/lib/build.sh; build PRODUCT…   → $bin holds the built binaries
# REDI_PS_BIN: binaries to use as they are (cluster/experiments/reproduce.sh, which builds once for many
# runs, and the tests, which run inside SwiftPM's build lock); otherwise the Debian packages
# that are missing are installed and the products built in release mode.
build() {
  if [ -n "${REDI_PS_BIN:-}" ]; then
    bin=$REDI_PS_BIN
    for product in "$@"; do
      [ -x "$bin/$product" ] || { echo "error: REDI_PS_BIN=$bin has no $product" >&2; exit 1; }
    done
    return
  fi
  bash cluster/tools/install-deps.sh
  for product in "$@"; do swift build -c release --product "$product" >&2; done
  bin=$(swift build -c release --show-bin-path)
}
