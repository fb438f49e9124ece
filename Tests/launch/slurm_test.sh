#!/usr/bin/env bash
# Launcher test: a real Slurm (munged, slurmctld, slurmd from Debian's slurm-wlm) of NODES
# nodes (1: this machine; more: network namespaces with their own addresses, see
# slurm_up.sh), cluster/launch/slurm.sbatch submitted with sbatch: the job must finish with the run's
# table and checkpoints, scancel on a running job must stop every process it started, and a job
# short of tasks must say how many it needs. Prints the time from submit to the first step and
# the median step time. Needs root.
#   bash Tests/launch/slurm_test.sh BIN_DIR WORK_DIR [NODES]
set -euo pipefail
bin=$(realpath "$1"); work=$(realpath -m "$2"); nodes=${3:-1}
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
rm -rf "$work"; mkdir -p "$work/job"
trap 'bash "$here/slurm_up.sh" "$work/slurm" stop' EXIT
eval "$(bash "$here/slurm_up.sh" "$work/slurm" "$nodes")"
export SLURM_CONF

job_state() { scontrol show job "$1" | grep -o 'JobState=[A-Z]*' | cut -d= -f2; }
wait_job() {  # JOBID SECONDS → final state
  for _ in $(seq $(( $2 * 5 ))); do
    case "$(job_state "$1")" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) job_state "$1"; return 0 ;; esac
    sleep 0.2
  done
  echo "job $1 still $(job_state "$1") after $2 s" >&2; return 1
}

echo "== sbatch: 2 servers + 2 workers on $nodes node(s)"
cd "$work/job"
write_recipe run.yaml out slurmrun 4 2 2
start=$(date +%s.%N)
id=$(sbatch --parsable --nodes="$nodes" --ntasks=4 --overcommit --export="ALL,REDI_PS_BIN=$bin" "$repo/cluster/launch/slurm.sbatch" run.yaml)
wait_for_step out 120 || { cat "redi-ps-$id.out"; exit 1; }
echo "submit to first step: $(since $start) s"
state=$(wait_job "$id" 300)
log="redi-ps-$id.out"
[ "$state" = COMPLETED ] || { echo "FAIL: job $id ended $state"; cat "$log"; exit 1; }
scontrol show job "$id" | grep -q 'ExitCode=0:0' || { echo "FAIL: job exit code"; scontrol show job "$id"; exit 1; }
check_run out "$log"
[ "$(grep -c 'serving parameters at tcp://' "$log")" = 2 ] || { echo "FAIL: expected two servers advertising"; cat "$log"; exit 1; }
if [ "$nodes" -gt 1 ]; then
  # The coordinator on the first node; servers and workers joined from the other nodes too.
  grep -q "coordinator on node1 (tcp://10.213." "$log" || { echo "FAIL: the coordinator is not on node1"; cat "$log"; exit 1; }
  joined=$(grep -o "joined: [a-z]*-node[0-9]*" "$log" | sed 's/.*-//' | sort -u | tr '\n' ' ')
  echo "roles joined from: $joined"
  [ "$(wc -w <<< "$joined")" -ge 2 ] || { echo "FAIL: every role ran on one node"; cat "$log"; exit 1; }
fi
if ls -a | grep -q '^\.redi-ps-key'; then echo "FAIL: the job's run key directory was left behind"; exit 1; fi

echo "== scancel stops every process"
write_recipe long.yaml long slurmlong 400 1 2
id=$(sbatch --parsable --nodes="$nodes" --ntasks=3 --overcommit --export="ALL,REDI_PS_BIN=$bin" "$repo/cluster/launch/slurm.sbatch" long.yaml)
wait_for_step long 120 || { cat "redi-ps-$id.out"; exit 1; }
cancelled=$(date +%s.%N)
scancel "$id"
for _ in $(seq 300); do pgrep -f -- "$bin/redi-(ps|worker) " >/dev/null || break; sleep 0.1; done
if pgrep -af -- "$bin/redi-(ps|worker) "; then echo "FAIL: processes outlived scancel"; exit 1; fi
echo "every process gone $(since $cancelled) s after scancel"
state=$(wait_job "$id" 60)
[ "$state" = CANCELLED ] || { echo "FAIL: cancelled job ended $state"; exit 1; }
grep -q "stopped by signal 15" "redi-ps-$id.out" || { echo "FAIL: the coordinator did not say it was stopped"; cat "redi-ps-$id.out"; exit 1; }

echo "== a job with too few tasks is refused with the count it needs"
id=$(sbatch --parsable --ntasks=2 --overcommit --export="ALL,REDI_PS_BIN=$bin" "$repo/cluster/launch/slurm.sbatch" run.yaml)
state=$(wait_job "$id" 60)
[ "$state" = FAILED ] || { echo "FAIL: a job short of tasks ended $state"; exit 1; }
grep -q "submit with --ntasks=4" "redi-ps-$id.out" || { cat "redi-ps-$id.out"; exit 1; }
echo "PASS"
