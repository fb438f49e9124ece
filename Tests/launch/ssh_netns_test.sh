#!/usr/bin/env bash
# Launcher test: cluster/launch/ssh.sh across five hosts, each a network namespace with its own
# address and sshd (coordinator, two servers, two workers), so every byte between roles
# crosses the namespaces' network and nothing can use loopback. Checks the run's table and
# checkpoints, that servers advertised their own hosts, that the run key never appeared on a
# command line nor stayed on disk, that Ctrl-C stops every process on every host, and that a
# bad hostfile is refused. Needs root, iproute2, openssh-server and -client.
#   bash Tests/launch/ssh_netns_test.sh BIN_DIR WORK_DIR
set -euo pipefail
bin=$(realpath "$1"); work=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
rm -rf "$work"; mkdir -p "$work"
hosts="$work/hosts.d"
cleanup() { bash "$here/netns_hosts.sh" down "$hosts"; }
trap cleanup EXIT
bash "$here/netns_hosts.sh" up "$hosts" 5
mapfile -t address < "$hosts/hosts"
subnet=${address[0]%.*}
export REDI_PS_SSH="ssh -F $hosts/ssh_config" REDI_PS_BIN="$bin" REDI_PS_REMOTE_BIN="$bin" REDI_PS_TIMEOUT=60
"$bin/redi-ps" keys --out "$work/run.key" >/dev/null
export REDI_PS_KEY="$work/run.key"
secret=$(awk '/^curve-secret-key/ { print $3 }' "$work/run.key")

cat > "$work/hostfile" <<EOF
# host           role         count threads
${address[0]}    coordinator
${address[1]}    server
${address[2]}    server
${address[3]}    worker       1     1
${address[4]}    worker       1     1
EOF

echo "== a run across 5 hosts"
write_recipe "$work/run.yaml" "$work/out" sshnetns 4 2 2
start=$(date +%s.%N)
bash "$repo/cluster/launch/ssh.sh" "$work/hostfile" "$work/run.yaml" > "$work/run.log" 2>&1 &
launcher=$!
wait_for_step "$work/out" 120 || { cat "$work/run.log"; exit 1; }
echo "launch to first step: $(since $start) s"
# The key travels on ssh stdin only: no process shows it in its arguments.
if ps -eo pid,args | grep -F -- "$secret" | grep -v grep; then echo "FAIL: the run key is on a command line"; exit 1; fi
status=0; wait "$launcher" || status=$?
[ "$status" = 0 ] || { echo "FAIL: ssh.sh exited $status"; tail -30 "$work/run.log"; exit 1; }
check_run "$work/out" "$work/run.log"
for server in "${address[1]}" "${address[2]}"; do
  grep -q "serving parameters at tcp://$server:" "$work/run.log" || { echo "FAIL: no server advertised $server"; cat "$work/run.log"; exit 1; }
done
if grep -q "127.0.0.1" "$work/run.log"; then echo "FAIL: a role used loopback"; grep 127.0.0.1 "$work/run.log"; exit 1; fi
# The remote copies of the key are gone with their processes.
if grep -rlsF -- "$secret" /tmp --include=run.key | grep -v "^$work/" ; then echo "FAIL: a copy of the run key stayed on disk"; exit 1; fi

echo "== stopping ssh.sh (TERM, as Ctrl-C) stops every process on every host"
write_recipe "$work/long.yaml" "$work/long" sshlong 400 2 2
bash "$repo/cluster/launch/ssh.sh" "$work/hostfile" "$work/long.yaml" > "$work/long.log" 2>&1 &
launcher=$!
wait_for_step "$work/long" 120 || { cat "$work/long.log"; exit 1; }
kill -TERM "$launcher"   # what Ctrl-C does (a background script ignores INT)
status=0; wait "$launcher" || status=$?
[ "$status" != 0 ] || { echo "FAIL: an interrupted launch exited 0"; exit 1; }
for _ in $(seq 100); do
  pgrep -f -- "$bin/redi-(ps|worker) .*$subnet" >/dev/null || break
  sleep 0.1
done
if pgrep -af -- "$bin/redi-(ps|worker) .*$subnet"; then echo "FAIL: processes outlived the interrupted launch"; exit 1; fi
grep -q "stopped by signal" "$work/long.log" || { echo "FAIL: the coordinator did not say it was stopped"; tail "$work/long.log"; exit 1; }
echo "interrupted launch: exit $status, every process gone"

echo "== a host ssh cannot reach ends the launch, and what started is stopped"
cat "$work/hostfile" > "$work/unreachable-hostfile"
echo "$subnet.99 worker" >> "$work/unreachable-hostfile"
start=$(date +%s.%N)
status=0; bash "$repo/cluster/launch/ssh.sh" "$work/unreachable-hostfile" "$work/long.yaml" --overwrite > "$work/unreachable.log" 2>&1 || status=$?
[ "$status" = 1 ] || { echo "FAIL: ssh.sh exited $status with an unreachable host"; cat "$work/unreachable.log"; exit 1; }
grep -q "ssh could not start the worker on $subnet.99 (exit 255)" "$work/unreachable.log" || { cat "$work/unreachable.log"; exit 1; }
for _ in $(seq 100); do pgrep -f -- "$bin/redi-(ps|worker) .*$subnet" >/dev/null || break; sleep 0.1; done
if pgrep -af -- "$bin/redi-(ps|worker) .*$subnet"; then echo "FAIL: processes outlived the failed launch"; exit 1; fi
echo "unreachable host: exit 1 after $(since "$start") s, every process gone"

echo "== a bad hostfile is refused before anything starts"
printf '%s coordinator\n%s sevrer 1\n' "${address[0]}" "${address[1]}" > "$work/bad-hostfile"
if bash "$repo/cluster/launch/ssh.sh" "$work/bad-hostfile" "$work/run.yaml" 2> "$work/bad.log"; then echo "FAIL: a bad hostfile was accepted"; exit 1; fi
grep -q "bad-hostfile:2: role must be coordinator, server or worker, not 'sevrer'" "$work/bad.log" || { cat "$work/bad.log"; exit 1; }
echo "PASS"
