#!/usr/bin/env bash
# Brings up Slurm (munged, slurmctld, slurmd) for the launcher tests, as root, with every file
# under DIR: DIR/slurm.conf (point SLURM_CONF at it), logs, state, pids. With NODES = 1 (the
# default) the one node is this machine; with more, node1…NODES are network namespaces with
# their own addresses and host names (Tests/launch/netns_hosts.sh), one slurmd each, and
# slurmctld runs here on the bridge that joins them.
#   bash Tests/launch/slurm_up.sh DIR [NODES]  → prints "SLURM_CONF=DIR/slurm.conf" once every node is idle
#   bash Tests/launch/slurm_up.sh DIR stop
set -euo pipefail
dir=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
if [ "${2:-}" = stop ]; then
  for pid in "$dir"/slurmd-*.pid "$dir/slurmctld.pid"; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  [ -d "$dir/hosts" ] && bash "$here/netns_hosts.sh" down "$dir/hosts"
  exit 0
fi
nodes=${2:-1}
[ "$(id -u)" -eq 0 ] || { echo "slurm_up.sh: needs root (slurmd runs jobs as their users)" >&2; exit 1; }
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "slurm_up.sh: $b is missing (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
mkdir -p "$dir/state"
memory=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 / '"$nodes"' }' /proc/meminfo)
if [ "$nodes" = 1 ]; then
  controller=$(hostname -s)
  node_line="NodeName=$controller CPUs=$(nproc) RealMemory=$memory State=UNKNOWN"
else
  NETNS_NO_SSHD=1 bash "$here/netns_hosts.sh" up "$dir/hosts" "$nodes"
  first=$(head -n 1 "$dir/hosts/hosts")
  controller="$(hostname -s)(${first%.*}.254)"
  node_line="NodeName=node[1-$nodes] NodeAddr=${first%.*}.[1-$nodes] CPUs=$(nproc) RealMemory=$memory State=UNKNOWN"
fi
cat > "$dir/slurm.conf" <<CONF
ClusterName=rediptest
SlurmctldHost=$controller
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
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmctldPort=$((6817 + RANDOM % 1000))
SlurmdPort=$((7817 + RANDOM % 1000))
$node_line
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
if [ "$nodes" = 1 ]; then
  /usr/sbin/slurmd -f "$SLURM_CONF"
else
  # In its namespace each slurmd sees its own host name (a UTS namespace) and, since
  # `ip netns exec` mounts a fresh /sys, the cgroup v1 hierarchies slurmd checks for.
  i=0
  while read -r ns; do
    i=$((i + 1))
    ip netns exec "$ns" unshare --uts sh -c '
      mount -t tmpfs cgroups /sys/fs/cgroup
      for c in cpu cpuacct cpuset memory devices freezer pids; do mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
      mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
      hostname "$1"; exec /usr/sbin/slurmd -f "$2"' slurmd "node$i" "$SLURM_CONF"
  done < "$dir/hosts/netns"
fi
for _ in $(seq 60); do
  states=$(sinfo -h -N -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)
  case "$states" in "idle ") echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
  sleep 1
done
echo "slurm_up.sh: the nodes did not become idle (states '${states:-none}'); logs in $dir" >&2
tail -n 20 "$dir"/*.log >&2 || true
exit 1
