"""Tables and verdicts the measuring scripts print, from the files a run leaves (the scripts
in cluster/ call it; it can be run on kept files too).

  python3 cluster/tools/reports.py memory PLAN.txt RUN.log            each process's peak RSS beside the plan
  python3 cluster/tools/reports.py overhead METRICS.jsonl RUN.log WORKERS STEPS
                                                               one row: step, compute, overhead, coordinator CPU
  python3 cluster/tools/reports.py rss SAMPLES.txt                   RSS spread per process ("time pid name KiB" lines)
  python3 cluster/tools/reports.py steps RECIPE RAW_GBPS             a run's median step split into compute and
                                                               communication, against raw ZeroMQ (bench.sh)
  python3 cluster/tools/reports.py chaos CALM CHAOS WANT FAULTS STATUS
                                                               chaos.sh's verdict: same weights, every example once
  python3 cluster/tools/reports.py first-stage RECIPE WORK           efficiency.sh's recipe: the first (SFT) stage on
                                                               1 server + 2 workers; prints MODEL BATCH MICRO
  python3 cluster/tools/reports.py rate METRICS.jsonl                median tokens/s after the first step (and the split)
  python3 cluster/tools/reports.py rounds OURS THEIRS A,… B,… TAIL   a benchmark's rounds (each ran A then B): every
                                                               round's ratio A/B and their median
  python3 cluster/tools/reports.py targets OUT                       targets.sh's table: each speed target, what its
                                                               benchmark's output in OUT measured, met or not
"""
import argparse
import collections
import json
import os
import re
import statistics
import sys

from runs import median, recipe_output, safetensors_arrays, safetensors_header, step_rows


def memory(args):
    plan, log = open(args.plan).read(), open(args.log).read()
    predicted = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(coordinator|server|worker)\b.*?([0-9.]+) GiB", plan, re.M)}
    print("%-14s %10s %10s %7s" % ("process", "predicted", "measured", "ratio"))
    for name, mib in re.findall(r"\[(coordinator|server-\d+|worker-\d+)\].*peak RSS ([0-9.]+) MiB", log):
        want, got = predicted.get(name.split("-")[0]), float(mib) / 1024
        if want:
            print("%-14s %8.2f GiB %8.2f GiB %6.2fx" % (name, want, got, got / want))
        else:
            print("%-14s %10s %8.2f GiB" % (name, "?", got))


def overhead(args):
    rows = [json.loads(line) for line in open(args.metrics) if line.strip()]
    rows = rows[len(rows) // 10:]  # after warm-up
    step = statistics.median(r["time/step"] for r in rows) * 1e3
    compute = statistics.median(r["time/compute"] for r in rows) * 1e3
    cpu = float(re.search(r"\[coordinator\] peak RSS [0-9.]+ MiB, CPU ([0-9.]+) s", open(args.log).read()).group(1))
    print("%8d %12.2f %14.2f %9.2f ms %13.2f ms/step  (target overhead <= %.0f ms)"
          % (args.workers, step, compute, step - compute, 1e3 * cpu / args.steps, 5 + args.workers))


def rss(args):
    series = collections.defaultdict(list)
    for line in open(args.samples):
        _, pid, name, kib = line.split()
        series[(name, pid)].append(int(kib) / 1024)
    print("%-22s %8s %10s %10s %8s" % ("process", "samples", "min (MiB)", "max (MiB)", "spread"))
    for (name, pid), values in sorted(series.items()):
        steady = values[len(values) // 10:len(values) * 95 // 100] or values  # after warm-up, before the final checkpoint
        lo, hi = min(steady), max(steady)
        print("%-22s %8d %10.1f %10.1f %7.1f%%" % ("%s %s" % (name, pid), len(values), lo, hi, 100 * (hi - lo) / lo))


def steps(args):
    out, raw = recipe_output(args.recipe), args.raw_gbps
    rows = step_rows(os.path.join(out, "metrics.jsonl"))
    params = None
    for stage in ("sft", "redi", "dpo", "simpo"):
        weights = os.path.join(out, stage, "model.safetensors")
        if os.path.exists(weights):
            header, _ = safetensors_header(weights)
            params = sum((v["data_offsets"][1] - v["data_offsets"][0]) // 4 for k, v in header.items() if k != "__metadata__")
            break
    for stage in sorted({r["stage"] for r in rows}):
        s = [r for r in rows if r["stage"] == stage][1:] or [r for r in rows if r["stage"] == stage]
        step, comp, comm, wait = (median(s, k) for k in ("time/step", "time/compute", "time/communication", "time/waiting"))
        line = (f"{stage}: median step {step:.3f} s = compute {comp:.3f} s ({100*comp/step:.0f}%) + communication {comm:.3f} s "
                f"({100*comm/step:.0f}%) + coordination/waiting {wait:.3f} s; {median(s, 'tokens_per_second'):.0f} tokens/s")
        if params:
            moved = 8 * params / comm / 1e9 if comm > 0 else float("inf")
            line += f"; each worker moves {8*params/1e6:.1f} MB/step (pull+push) at {moved:.2f} GB/s = {100*moved/raw:.0f}% of raw ZeroMQ {raw:.2f} GB/s"
        print(line)


def chaos(args):
    def used(run):
        seen = collections.defaultdict(list)
        for line in open(os.path.join(run, "examples.jsonl")):
            r = json.loads(line)
            for epoch, i in r["examples"]:
                seen[(r["stage"], epoch)].append(i)
        return seen
    ok = args.status == 0 and args.faults >= args.want
    if args.status == 0:
        a, b = (safetensors_arrays(os.path.join(run, "redi", "model.safetensors")) for run in (args.calm, args.chaos))
        diff = max(float(abs(a[k] - b[k]).max()) for k in a)
        print(f"final weights: max |chaos - uninterrupted| = {diff} over {sum(x.size for x in a.values())} parameters")
        seen, reference = used(args.chaos), used(args.calm)
        twice = sum(len(v) - len(set(v)) for v in seen.values())
        same = {k: sorted(v) for k, v in seen.items()} == {k: sorted(v) for k, v in reference.items()}
        print(f"exactly once: {sum(len(v) for v in seen.values())} examples over {len(seen)} (stage, epoch) pairs, "
              f"{twice} used twice, same sets as the uninterrupted run: {same}")
        ok = ok and diff == 0.0 and twice == 0 and same
    print(f"faults injected: {args.faults} (wanted ≥ {args.want})")
    print("chaos: PASS" if ok else "chaos: FAIL")
    sys.exit(0 if ok else 1)


def first_stage(args):
    import yaml
    r = yaml.safe_load(open(args.recipe))
    base = os.path.dirname(os.path.abspath(args.recipe))
    absolute = lambda p: p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
    stage = r["stages"][0]
    if stage["objective"] != "sft":
        sys.exit("error: the recipe's first stage must be SFT")
    for key in ("path", "init", "tokenizer"):
        if key in r["model"] and not (key == "init" and "/" not in r["model"][key]):
            r["model"][key] = absolute(r["model"][key])
    if "synth" in r:
        r["synth"]["problems"] = max(r["synth"].get("problems", 0), 160)  # ten batches at least
        data = os.path.join(args.work, "out", "sft.jsonl")
    else:
        data = stage["data"] = absolute(stage["data"])
    r["stages"], r["output"] = [stage], os.path.join(args.work, "out")
    r.pop("eval", None)
    r.setdefault("cluster", {}).update(servers=1, workers=2, wire=os.environ.get("WIRE", "fp32"), data_plane=os.environ.get("DATA_PLANE", "curve"))
    yaml.safe_dump(r, open(os.path.join(args.work, "recipe.yaml"), "w"))
    print(r["model"].get("path", r["model"].get("init")), stage.get("batch_size", 8), stage.get("micro_batch_tokens", 4096), data)


def rate(args):
    rows = [r for r in step_rows(args.metrics) if "tokens_per_second" in r]
    print("loss per step: " + " ".join(f"{r['loss']:.4f}" for r in rows), file=sys.stderr)
    rest = rows[1:]
    print(f"cluster median step {median(rest, 'time/step'):.3f} s: worker compute {median(rest, 'time/compute'):.3f} s, "
          f"pull+push {median(rest, 'time/communication'):.3f} s, coordination/waiting {median(rest, 'time/waiting'):.3f} s", file=sys.stderr)
    print(f"{median(rest, 'tokens_per_second'):.1f}")


def rounds(args):
    ours, theirs = ([float(v) for v in values.split(",")] for values in (args.ours_rates, args.theirs_rates))
    if len(ours) != len(theirs) or not ours:
        sys.exit(f"rounds: {len(ours)} rates of {args.ours} but {len(theirs)} of {args.theirs}")
    def show(ratio):
        return f"{100 * ratio:.0f}%" if args.percent else f"{ratio:.2f}x"
    ratios = [a / b for a, b in zip(ours, theirs)]
    for i, (a, b, r) in enumerate(zip(ours, theirs, ratios), 1):
        print(f"  round {i}: {args.ours} {a:.1f} vs {args.theirs} {b:.1f} = {show(r)}", file=sys.stderr)
    # The median round's ratio: a noisy neighbour slows one side of one round, not every round.
    print(f"{args.label + ': ' if args.label else ''}{args.ours} {statistics.median(ours):.1f} tokens/s vs {args.theirs} {statistics.median(theirs):.1f} tokens/s = "
          f"{show(statistics.median(ratios))} (median of {len(ratios)} rounds, each ran both; spread "
          f"{show(min(ratios))}-{show(max(ratios))}) {args.tail}".rstrip())


def targets(args):
    def read(name):
        path = os.path.join(args.out, name + ".txt")
        if not os.path.exists(path):
            sys.exit(f"targets: no {path}: run cluster/experiments/targets.sh")
        return open(path).read()

    def median_line(name, unit):
        # rounds' result line: "… = 1.47x (median of 3 rounds, each ran both; spread 1.37x-1.51x) …"
        found = re.findall(rf"= ([0-9.]+){unit} \(median of (\d+) rounds, each ran both; spread ([0-9.]+){unit}-([0-9.]+){unit}\)", read(name))
        if not found:
            sys.exit(f"targets: {name}.txt has no result line (the benchmark did not finish?)")
        return [float(v) for v in found[-1]]

    # What the numbers hold for: the CPU as Linux reports it, the environment, the BLAS start line.
    cpu = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        cpu.setdefault(key.strip(), value.strip())
    preset = [f"{v}={os.environ[v]}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    start = re.search(r"BLAS (OpenBLAS .*)", read("step"))
    print(f"CPU: {cpu.get('model name', '?')} (vendor {cpu.get('vendor_id', '?')}, family {cpu.get('cpu family', '?')}, "
          f"model {cpu.get('model', '?')}), {os.cpu_count()} cores; preset: {', '.join(preset) or 'nothing'}")
    print(f"BLAS: {start.group(1) if start else '? (no start line in step.txt)'}")

    rows = []
    def row(what, measured, spread, target, met):
        rows.append((what, measured, spread, target, "met" if met else "MISSED"))

    ratio, n, low, high = median_line("step", "x")
    row("training step vs PyTorch eager", f"{ratio:.2f}x", f"{low:.2f}-{high:.2f}x, {n:.0f} rounds", ">= 1.5x", ratio >= 1.5)
    ratio, n, low, high = median_line("generate", "x")
    row("sampling, batch 32, vs transformers", f"{ratio:.2f}x", f"{low:.2f}-{high:.2f}x, {n:.0f} rounds", ">= 2x", ratio >= 2)
    mfu = [float(v) for v in re.findall(r"^redi-bench generate: .* MFU ([0-9.]+)% of sgemm", read("generate"), re.M)]
    if not mfu:
        sys.exit("targets: generate.txt has no 'MFU …% of sgemm' line")
    row("sampling, batch 32, of sgemm", f"{statistics.median(mfu):.1f}%", f"{min(mfu):.1f}-{max(mfu):.1f}%, {len(mfu)} rounds", ">= 45%",
        statistics.median(mfu) >= 45)
    for plane, target in (("plain", 92), ("curve", 80)):
        share, n, low, high = median_line("efficiency-" + plane, "%")
        row(f"cluster efficiency, {plane}", f"{share:.0f}%", f"{low:.0f}-{high:.0f}%, {n:.0f} rounds", f">= {target}%", share >= target)
    seconds = dict(line.split() for line in read("default").splitlines() if line.strip())
    for key, what, target in (("fresh", "default job, fresh clone with the build", 240), ("built", "default job, binaries built", 90)):
        if key not in seconds:
            sys.exit(f"targets: default.txt has no '{key}' time")
        row(what, f"{float(seconds[key]):.0f} s", "1 run", f"<= {target} s", float(seconds[key]) <= target)

    table = [("target", "measured", "spread", "want", "verdict")] + rows
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    missed = [r[0] for r in rows if r[4] != "met"]
    print(f"{len(rows) - len(missed)} of {len(rows)} targets met" + (f"; missed: {'; '.join(missed)}" if missed else ""))


# name, function, help, positional arguments (a name, or (name, type)).
COMMANDS = [
    ("memory", memory, "peak RSS per process against `redi-ps plan`", ["plan", "log"]),
    ("overhead", overhead, "a step's overhead and the coordinator's CPU per step", ["metrics", "log", ("workers", int), ("steps", int)]),
    ("rss", rss, "RSS spread per process over a run", ["samples"]),
    ("steps", steps, "a run's median step: compute and communication, against raw ZeroMQ", ["recipe", ("raw_gbps", float)]),
    ("chaos", chaos, "chaos.sh's verdict: bit-identical weights, every example exactly once",
     ["calm", "chaos", ("want", int), ("faults", int), ("status", int)]),
    ("first-stage", first_stage, "efficiency.sh's recipe (first stage, 1 server + 2 workers) written into WORK", ["recipe", "work"]),
    ("rate", rate, "median tokens/s of a run after its first step", ["metrics"]),
    ("rounds", rounds, "a benchmark's rounds: each round's ratio and their median",
     ["ours", "theirs", "ours_rates", "theirs_rates", "tail"]),
    ("targets", targets, "targets.sh's table: every speed target against what its benchmark measured", ["out"]),
]
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
sub = parser.add_subparsers(dest="report", required=True)
for name, run, help_text, positionals in COMMANDS:
    p = sub.add_parser(name, help=help_text)
    for arg in positionals:
        arg, kind = (arg, str) if isinstance(arg, str) else arg
        p.add_argument(arg, type=kind)
    if name == "rounds":
        p.add_argument("--percent", action="store_true", help="ratios as percentages (an efficiency)")
        p.add_argument("--label", default="", help="what was measured, to start the result line")
    p.set_defaults(run=run)
args = parser.parse_args()
args.run(args)
