# Shared by the launcher tests (sourced): a short recipe and the checks of a finished run.

# write_recipe FILE OUTPUT RUN_ID EPOCHS SERVERS WORKERS: the tiny model on the synthesised task,
# SFT then REDI; short timeouts so a lost peer shows quickly.
write_recipe() {
  cat > "$1" <<RECIPE
run_id: $3
output: $2
seed: 3
model: {init: tiny}
synth: {problems: 60, traces_per_problem: 2, test_problems: 4, digits: 1, steps: 1}
stages:
  - {name: sft, objective: sft, data: sft.jsonl, epochs: $4, batch_size: 12, learning_rate: 2.0e-3}
  - {name: redi, objective: redi, data: pref.jsonl, epochs: 1, batch_size: 12, learning_rate: 2.0e-4}
eval: {data: test.jsonl, samples: 2, max_new_tokens: 40}
cluster: {servers: $5, workers: $6, bind: "tcp://127.0.0.1:$((20000 + RANDOM % 12000))", timeout_seconds: 20, heartbeat_seconds: 1}
RECIPE
}

# check_run OUTPUT LOG: both stages ended with a Hugging Face checkpoint, the run's table was
# printed, and every step is in metrics.jsonl; prints the median step time.
check_run() {
  python3 - "$1" "$2" <<'PY'
import json, os, statistics, sys
out, log = sys.argv[1], open(sys.argv[2]).read()
for stage in ("sft", "redi"):
    for f in ("config.json", "model.safetensors", "trainer_state.json"):
        assert os.path.getsize(os.path.join(out, stage, f)) > 0, f"{stage}/{f} missing"
    json.load(open(os.path.join(out, stage, "config.json")))
assert "stage        steps  pass@1" in log, "no result table in the log"
rows = [r for r in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if "step" in r]
steps = {s: [r for r in rows if r["stage"] == s] for s in ("sft", "redi")}
for s, rs in steps.items():
    assert rs and [r["step"] for r in rs] == list(range(1, len(rs) + 1)), f"{s}: steps missing from metrics.jsonl"
times = [r["time/step"] for r in steps["sft"][1:]]
print(f"run ok: {len(steps['sft'])} sft + {len(steps['redi'])} redi steps, median sft step {statistics.median(times) * 1000:.1f} ms")
PY
}

# wait_for_step OUTPUT SECONDS: until the first step is in metrics.jsonl.
wait_for_step() {
  for _ in $(seq $(( $2 * 10 ))); do
    [ -s "$1/metrics.jsonl" ] && return 0
    sleep 0.1
  done
  echo "no step in $1/metrics.jsonl after $2 s" >&2
  return 1
}

# since START: seconds from START (date +%s.%N) to now.
since() { awk -v start="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.2f", now - start }'; }
