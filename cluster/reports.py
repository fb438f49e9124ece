"""Tables the measuring scripts print, from the files a run leaves (cluster/memory.sh and
cluster/overhead.sh call it; it can be run on kept files too).

  python3 cluster/reports.py memory PLAN.txt RUN.log            each process's peak RSS beside the plan
  python3 cluster/reports.py overhead METRICS.jsonl RUN.log WORKERS STEPS
                                                               one row: step, compute, overhead, coordinator CPU
  python3 cluster/reports.py rss SAMPLES.txt                   RSS spread per process ("time pid name KiB" lines)
"""
import argparse
import collections
import json
import re
import statistics


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


parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
sub = parser.add_subparsers(dest="report", required=True)
p = sub.add_parser("memory", help="peak RSS per process against `redi-ps plan`")
p.add_argument("plan")
p.add_argument("log")
p.set_defaults(run=memory)
p = sub.add_parser("overhead", help="a step's overhead and the coordinator's CPU per step")
p.add_argument("metrics")
p.add_argument("log")
p.add_argument("workers", type=int)
p.add_argument("steps", type=int)
p.set_defaults(run=overhead)
p = sub.add_parser("rss", help="RSS spread per process over a run")
p.add_argument("samples")
p.set_defaults(run=rss)
args = parser.parse_args()
args.run(args)
