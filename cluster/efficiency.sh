#!/usr/bin/env bash
# Cluster efficiency: the first (SFT) stage of a recipe run by 1 server + 2 workers (one BLAS
# thread each) on this machine, against the single-process trainer (every core's BLAS threads)
# on the same records, batch size and micro-batch size, measured in the same invocation.
# Prints both medians (scored tokens/s) and their ratio.
#   bash cluster/efficiency.sh [RECIPE.yaml]     (default: cluster/recipes/smollm2.yaml)
# WIRE=bf16-gradients (pushes) or WIRE=bf16 (pushes and pulls) runs the cluster with bfloat16 on the wire; the per-step losses are printed
# so two runs (fp32, bf16) can be compared step by step (same data order). DATA_PLANE=plain runs
# pushes and pulls unencrypted (CURVE's encryption and decryption of every byte cost CPU that
# a 2-core machine takes from the workers).
set -euo pipefail
recipe=${1:-}
if [ -n "$recipe" ]; then recipe=$(realpath "$recipe"); fi
cd "$(dirname "$0")/.."
recipe=${recipe:-cluster/recipes/smollm2.yaml}
source cluster/lib/build.sh
build redi-bench redi-ps redi-worker
bash cluster/fetch-test-model.sh >/dev/null
work=$(mktemp -d)
# The recipe's first stage only, no evaluation, 1 server and 2 workers, output in $work.
read -r model batch micro < <(python3 - "$recipe" "$work" <<'PY'
import os, sys, yaml
path, work = sys.argv[1], sys.argv[2]
r = yaml.safe_load(open(path))
base = os.path.dirname(os.path.abspath(path))
absolute = lambda p: p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
stage = r["stages"][0]
assert stage["objective"] == "sft", "the first stage must be SFT"
for key in ("path", "init", "tokenizer"):
    if key in r["model"] and not (key == "init" and "/" not in r["model"][key]):
        r["model"][key] = absolute(r["model"][key])
if "synth" in r:
    r["synth"]["problems"] = max(r["synth"].get("problems", 0), 160)  # ten batches at least
else:
    stage["data"] = absolute(stage["data"])
r["stages"], r["output"] = [stage], os.path.join(work, "out")
r.pop("eval", None)
r["cluster"].update(servers=1, workers=2, wire=os.environ.get("WIRE", "fp32"), data_plane=os.environ.get("DATA_PLANE", "curve"))
yaml.safe_dump(r, open(os.path.join(work, "recipe.yaml"), "w"))
print(r["model"].get("path", r["model"].get("init")), stage.get("batch_size", 8), stage.get("micro_batch_tokens", 4096))
PY
)
echo "== cluster: 1 server + 2 workers × 1 thread" >&2
bash cluster/local.sh "$work/recipe.yaml" > "$work/cluster.log" 2>&1 || { tail "$work/cluster.log"; exit 1; }
cluster=$(python3 - "$work/out/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "tokens_per_second" in r]
print("loss per step: " + " ".join(f"{r['loss']:.4f}" for r in rows), file=sys.stderr)
med = lambda k: statistics.median(r[k] for r in rows[1:])
print(f"cluster median step {med('time/step'):.3f} s: worker compute {med('time/compute'):.3f} s, "
      f"pull+push {med('time/communication'):.3f} s, coordination/waiting {med('time/waiting'):.3f} s", file=sys.stderr)
print(f"{statistics.median(r['tokens_per_second'] for r in rows[1:]):.1f}")
PY
)
data="$work/out/sft.jsonl"
[ -f "$data" ] || data=$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['stages'][0]['data'])" "$work/recipe.yaml")
echo "== single process" >&2
records=$(grep -c . "$data")
steps=$(( records / batch - 1 )); [ "$steps" -le 8 ] || steps=8
reference=$("$bin/redi-bench" train --model "$model" --data "$data" --batch-size "$batch" --micro-batch-tokens "$micro" --steps "$steps")
echo "$reference" >&2
single=$(sed -n 's/.*median \([0-9.]*\) tokens\/s.*/\1/p' <<< "$reference")
python3 -c "
c, s = $cluster, $single
print(f'cluster efficiency (${WIRE:-fp32} wire, ${DATA_PLANE:-curve} data plane): 1 server + 2 workers {c:.1f} tokens/s vs single process {s:.1f} tokens/s = {100 * c / s:.0f}%')"
rm -rf "$work"
