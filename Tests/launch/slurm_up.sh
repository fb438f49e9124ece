#!/usr/bin/env bash
# Brings up a single-node Slurm (munged, slurmctld, slurmd) for the launcher tests, as root,
# with every file under DIR: DIR/slurm.conf (point SLURM_CONF at it), logs, state, pids.
#   bash Tests/launch/slurm_up.sh DIR      → prints "SLURM_CONF=DIR/slurm.conf" once the node is idle
#   bash Tests/launch/slurm_up.sh DIR stop
set -euo pipefail
dir=$(realpath -m "$1")
if [ "${2:-}" = stop ]; then
  for p in slurmd slurmctld; do
    [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "slurm_up.sh: needs root (slurmd runs jobs as their users)" >&2; exit 1; }
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "slurm_up.sh: $b is missing (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
mkdir -p "$dir/state" "$dir/spool"
node=$(hostname -s)
memory=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=rediptest
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$((6817 + RANDOM % 1000))
SlurmdPort=$((7817 + RANDOM % 1000))
NodeName=$node CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$dir/slurm.conf"
# munge: its socket directory belongs to the munge user, and munged runs as that user.
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge /etc/munge/munge.key 2>/dev/null || true
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --force
fi
munge -n | unmunge >/dev/null || { echo "slurm_up.sh: munge does not work" >&2; exit 1; }
/usr/sbin/slurmctld -f "$SLURM_CONF" -i
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
  case "$state" in idle*) echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
  sleep 1
done
echo "slurm_up.sh: the node did not become idle (state '${state:-none}'); logs in $dir" >&2
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
