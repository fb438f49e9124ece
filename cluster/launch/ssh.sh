#!/usr/bin/env bash
# Runs a recipe on hosts reached over ssh: the coordinator, servers and workers a hostfile
# places, each started with `ssh HOST`; waits for the coordinator and stops every process it
# started when it ends or is interrupted (Ctrl-C, TERM).
#
#   bash cluster/launch/ssh.sh HOSTFILE RECIPE.yaml [COORDINATOR OPTIONS…]     (e.g. --resume latest)
#
# HOSTFILE, one role per line ('#' starts a comment):
#   HOST  coordinator
#   HOST  server  [COUNT]              (default 1)
#   HOST  worker  [COUNT] [THREADS]    (default 1 worker, threads = the host's cores)
# HOST is what ssh connects to ([user@]name); peers connect to the name part, so it must
# resolve to the same address on every host. Ports: the coordinator binds the recipe's
# cluster.bind port on every interface; servers bind any free port on every interface and
# advertise their host.
#
# Every host needs the binaries at REDI_PS_REMOTE_BIN (default: this checkout's .build/release
# path, which suits a shared filesystem or identical installs). Only the coordinator's host
# needs the recipe, model and data, at the same absolute paths as here. The run key is made
# fresh for the launch (or REDI_PS_KEY is used) and sent to each process over its ssh stdin:
# it never appears on a command line, and on the remote host it lives in a mode-0700
# temporary directory removed when the process ends.
#
# Environment: REDI_PS_SSH (ssh command; default "ssh -o BatchMode=yes"), REDI_PS_REMOTE_BIN,
# REDI_PS_BIN (local binaries, to make the key; default .build/release), REDI_PS_KEY,
# REDI_PS_TIMEOUT (seconds servers and workers wait for the coordinator; default 120).
set -euo pipefail
fail() { echo "ssh.sh: error: $*" >&2; exit 1; }
[ $# -ge 2 ] || fail "usage: bash cluster/launch/ssh.sh HOSTFILE RECIPE.yaml [COORDINATOR OPTIONS…]"
hostfile=$1; recipe=$2; shift 2
[ -f "$hostfile" ] || fail "no hostfile at $hostfile"
[ -f "$recipe" ] || fail "no recipe at $recipe"
recipe=$(realpath "$recipe")
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${REDI_PS_BIN:-$repo/.build/release}
remote_bin=${REDI_PS_REMOTE_BIN:-$bin}
read -r -a ssh <<< "${REDI_PS_SSH:-ssh -o BatchMode=yes}"
timeout=${REDI_PS_TIMEOUT:-120}
[ -x "$bin/redi-ps" ] || fail "no $bin/redi-ps here: build with 'swift build -c release' or set REDI_PS_BIN"

# The hostfile, checked whole before anything starts.
coordinator_host="" servers=() workers=()   # workers: "host threads"
line_number=0
while IFS= read -r line || [ -n "$line" ]; do
  line_number=$((line_number + 1))
  line=${line%%#*}
  read -r host role count threads extra <<< "$line" || true
  [ -n "${host:-}" ] || continue
  where="$hostfile:$line_number"
  [ -z "${extra:-}" ] || fail "$where: too many fields (HOST ROLE [COUNT] [THREADS])"
  count=${count:-1}
  [[ "$count" =~ ^[1-9][0-9]*$ ]] || fail "$where: COUNT must be a positive integer, not '$count'"
  [ -z "${threads:-}" ] || [[ "$threads" =~ ^[1-9][0-9]*$ ]] || fail "$where: THREADS must be a positive integer, not '$threads'"
  case "$role" in
    coordinator)
      [ -z "$coordinator_host" ] || fail "$where: a second coordinator (the first is $coordinator_host)"
      [ "$count" = 1 ] && [ -z "${threads:-}" ] || fail "$where: a coordinator takes no COUNT or THREADS"
      coordinator_host=$host ;;
    server)
      [ -z "${threads:-}" ] || fail "$where: servers take no THREADS"
      for _ in $(seq "$count"); do servers+=("$host"); done ;;
    worker)
      for _ in $(seq "$count"); do workers+=("$host ${threads:-0}"); done ;;
    *) fail "$where: role must be coordinator, server or worker, not '${role:-}'" ;;
  esac
done < "$hostfile"
[ -n "$coordinator_host" ] || fail "$hostfile names no coordinator"

read -r want_servers want_workers local_endpoint < <("$bin/redi-ps" coordinate --recipe "$recipe" --print-cluster)
[ ${#servers[@]} -ge "$want_servers" ] || fail "the recipe needs $want_servers server(s); $hostfile places ${#servers[@]}"
[ ${#workers[@]} -ge "$want_workers" ] || fail "the recipe needs $want_workers worker(s); $hostfile places ${#workers[@]}"
[ ${#servers[@]} -eq "$want_servers" ] || echo "ssh.sh: $(( ${#servers[@]} - want_servers )) server(s) beyond the recipe's $want_servers wait as spares" >&2
[ ${#workers[@]} -eq "$want_workers" ] || echo "ssh.sh: $(( ${#workers[@]} - want_workers )) worker(s) beyond the recipe's $want_workers wait for a free slot" >&2
port=${local_endpoint##*:}
address_of() { echo "${1#*@}"; }
endpoint="tcp://$(address_of "$coordinator_host"):$port"

keydir=$(mktemp -d)
if [ -n "${REDI_PS_KEY:-}" ]; then
  cp "$REDI_PS_KEY" "$keydir/run.key"
else
  "$bin/redi-ps" keys --out "$keydir/run.key" >/dev/null
fi
key_line=$(base64 -w0 < "$keydir/run.key")

# What runs on each host: takes the key from stdin into a private temporary directory,
# starts the role there, and stops it (TERM) when ssh.sh goes away (stdin closes).
remote_wrapper='
set -u
umask 077
d=$(mktemp -d) || exit 1
trap "rm -rf \"\$d\"" EXIT
IFS= read -r k || { echo "ssh.sh: no run key on stdin" >&2; exit 1; }
printf %s "$k" | base64 -d > "$d/run.key" || exit 1
cd "$d"
"$@" --key "$d/run.key" </dev/null &
pid=$!
exec 3<&0
( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null ) >/dev/null 2>&1 &
watch=$!
rc=0; wait "$pid" || rc=$?
pkill -P "$watch" 2>/dev/null; kill "$watch" 2>/dev/null
exit "$rc"'
quote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }   # for the remote POSIX shell

pids=() holders=() labels=()
start() {  # LABEL HOST COMMAND… : ssh HOST wrapper COMMAND…, stdin holding the key
  local label=$1 host=$2; shift 2
  local command="bash -c $(quote "$remote_wrapper") redi-ps-role"
  for a in "$@"; do command+=" $(quote "$a")"; done
  local fifo="$keydir/stdin-${#pids[@]}"
  mkfifo "$fifo"
  { printf '%s\n' "$key_line"; exec sleep 2147483647; } > "$fifo" &
  holders+=($!)
  "${ssh[@]}" "$host" "$command" < "$fifo" &
  pids+=($!); labels+=("$label on $host")
}
cleanup() {
  # Closing each ssh's stdin tells its remote wrapper to stop the process it started.
  for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.5
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$keydir"
}
trap cleanup EXIT
trap 'echo "ssh.sh: interrupted; stopping every process" >&2; exit 130' INT TERM

echo "ssh.sh: coordinator on $coordinator_host ($endpoint), ${#servers[@]} server(s), ${#workers[@]} worker(s)" >&2
start coordinator "$coordinator_host" "$remote_bin/redi-ps" coordinate --recipe "$recipe" --bind "tcp://*:$port" "$@"
coordinator=${pids[0]}
for host in "${servers[@]}"; do
  start server "$host" "$remote_bin/redi-ps" serve --coordinator "$endpoint" --bind "tcp://0.0.0.0:*" \
    --advertise "$(address_of "$host")" --timeout "$timeout"
done
for w in "${workers[@]}"; do
  read -r host threads <<< "$w"
  args=(--coordinator "$endpoint" --timeout "$timeout")
  [ "$threads" = 0 ] || args+=(--threads "$threads")
  start worker "$host" "$remote_bin/redi-worker" join "${args[@]}"
done
# Until the coordinator ends: a host ssh cannot reach (exit 255) ends the launch at once;
# other roles that end are reported, and the coordinator decides what that means for the run.
ended=()
while kill -0 "$coordinator" 2>/dev/null; do
  for i in "${!pids[@]}"; do
    [ "$i" -gt 0 ] && [ -z "${ended[$i]:-}" ] && ! kill -0 "${pids[$i]}" 2>/dev/null || continue
    rc=0; wait "${pids[$i]}" || rc=$?
    ended[$i]=$rc
    if [ "$rc" = 255 ]; then
      echo "ssh.sh: error: ssh could not start the ${labels[$i]} (exit 255); stopping the launch" >&2
      exit 1
    fi
    echo "ssh.sh: the ${labels[$i]} exited with status $rc" >&2
  done
  sleep 0.5
done
status=0
wait "$coordinator" || status=$?
# Told by the coordinator, servers and workers end on their own; give them a moment.
for _ in $(seq 30); do
  alive=0; for p in "${pids[@]:1}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 1 ] || break
  sleep 1
done
echo "ssh.sh: coordinator exit status $status" >&2
exit "$status"
