#!/usr/bin/env bash
# Cluster benchmark: a raw ZeroMQ stream and redi-ps messages measured first, then a recipe
# run, then its per-step time split (compute / communication / waiting) and the workers'
# push+pull throughput as a fraction of the raw stream measured in this same run.
#   bash cluster/bench.sh [RECIPE.yaml]
set -euo pipefail
# A recipe given on the command line is relative to where the command was typed.
recipe=${1:-}
if [ -n "$recipe" ]; then recipe=$(realpath "$recipe"); fi
cd "$(dirname "$0")/.."
recipe=${recipe:-cluster/recipes/default.yaml}
source cluster/lib/build.sh
build redi-bench
transport=$("$bin/redi-bench" transport)
echo "$transport" >&2   # (tee /dev/stderr would reopen, and truncate, a log file stderr points to)
raw=$(sed -n 's/.*raw ZeroMQ \([0-9.]*\) GB\/s.*/\1/p' <<< "$transport")
log=$(mktemp)
bash cluster/local.sh "$recipe" --overwrite | tee "$log"
out=$(python3 - "$recipe" <<'PY'
import os, sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
print(os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), r.get("output", "runs/" + r.get("run_id", "redi")))))
PY
)
python3 - "$out" "$raw" <<'PY'
import json, os, sys, statistics
out, raw = sys.argv[1], float(sys.argv[2])
rows = [r for r in (json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if l.strip()) if "time/step" in r]
params = None
for stage in ("sft", "redi", "dpo", "simpo"):
    cfg = os.path.join(out, stage, "config.json")
    if os.path.exists(cfg):
        import struct
        with open(os.path.join(out, stage, "model.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        params = sum((v["data_offsets"][1] - v["data_offsets"][0]) // 4 for k, v in header.items() if k != "__metadata__")
        break
for stage in sorted({r["stage"] for r in rows}):
    s = [r for r in rows if r["stage"] == stage][1:] or [r for r in rows if r["stage"] == stage]
    med = lambda k: statistics.median(r[k] for r in s)
    step, comp, comm, wait = med("time/step"), med("time/compute"), med("time/communication"), med("time/waiting")
    line = f"{stage}: median step {step:.3f} s = compute {comp:.3f} s ({100*comp/step:.0f}%) + communication {comm:.3f} s ({100*comm/step:.0f}%) + coordination/waiting {wait:.3f} s; {med('tokens_per_second'):.0f} tokens/s"
    if params:
        moved = 8 * params / comm / 1e9 if comm > 0 else float("inf")
        line += f"; each worker moves {8*params/1e6:.1f} MB/step (pull+push) at {moved:.2f} GB/s = {100*moved/raw:.0f}% of raw ZeroMQ {raw:.2f} GB/s"
    print(line)
PY
