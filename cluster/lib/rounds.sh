# Sourced by the benchmark scripts that measure against a reference (not run): ROUNDS rounds
# (default 3), each running both sides one after the other, then every round's ratio and the
# median round (cluster/tools/reports.py rounds). On a shared machine a noisy neighbour then
# slows one round, not one side.
#   ours() { …; rate=N; }   theirs() { …; rate=N; }   (each prints its output, sets rate)
#   rounds "OURS" "THEIRS" "TAIL" [reports.py rounds options: --percent, --label L]
rounds() {
  local ours_name=$1 theirs_name=$2 tail=$3 round ours_rates=() theirs_rates=()
  shift 3
  for round in $(seq "${ROUNDS:-3}"); do
    echo "== round $round of ${ROUNDS:-3}: $ours_name" >&2
    ours
    ours_rates+=("$rate")
    echo "== round $round of ${ROUNDS:-3}: $theirs_name" >&2
    theirs
    theirs_rates+=("$rate")
  done
  python3 cluster/tools/reports.py rounds "$@" "$ours_name" "$theirs_name" \
    "$(IFS=,; echo "${ours_rates[*]}")" "$(IFS=,; echo "${theirs_rates[*]}")" "$tail"
}
