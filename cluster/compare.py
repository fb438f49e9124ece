#!/usr/bin/env python3
"""Compares methods by pass@1 from runs' metrics.jsonl and prints a markdown table.

    python3 cluster/compare.py [--stage STAGE] [--method LABEL] [LABEL=]RUN_OUTPUT ...

Runs sharing a label are seeds of one method. For each label: pass@1 mean ± standard error
of the mean over seeds (SEM; for a single run, its standard error over problems), the seeds' values, and the last step's chosen and rejected
log-probabilities. Then --method (default: the first label) against every other label:
the difference of means, its standard error sqrt(SEM_a² + SEM_b²), and whether the
difference is at least twice that standard error. The evaluated stage is --stage, or each
run's last evaluated stage.
"""
import argparse
import collections
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import mean_sem, read_run  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", help="the evaluated stage to compare (default: each run's last)")
    parser.add_argument("--method", help="the label compared against the others (default: the first)")
    parser.add_argument("runs", nargs="+", metavar="[LABEL=]RUN_OUTPUT")
    args = parser.parse_args()
    methods = collections.OrderedDict()
    for spec in args.runs:
        label, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        label = label or os.path.basename(os.path.normpath(path))
        steps, evals, order = read_run(path)
        evaluated = [s for s in order if s in evals]
        stage = args.stage or (evaluated[-1] if evaluated else None)
        if stage not in evals:
            sys.exit("error: %s has no pass@1 for stage %s" % (path, stage))
        last = max((step for (s, step) in steps if s == stage), default=None)
        record = steps.get((stage, last), {})
        methods.setdefault(label, []).append(
            (evals[stage][0], record.get("logps/chosen"), record.get("logps/rejected"), evals[stage][1]))
    summary = collections.OrderedDict()
    print("| method | seeds | pass@1 (mean ± SEM) | per seed | logp chosen | logp rejected |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, rows in methods.items():
        # One run: its own standard error over problems stands for the SEM.
        mean, sem = mean_sem([r[0] for r in rows]) if len(rows) > 1 else (rows[0][0], rows[0][3])
        summary[label] = (mean, sem)

        def average(i):
            values = [r[i] for r in rows if r[i] is not None]
            return "%.2f" % (sum(values) / len(values)) if values else "–"

        seeds = ", ".join("%.3f" % r[0] for r in rows)
        print("| %s | %d | %.3f ± %.3f | %s | %s | %s |" % (label, len(rows), mean, sem, seeds, average(1), average(2)))
    method = args.method or next(iter(summary))
    if method not in summary:
        sys.exit("error: no runs labelled %s" % method)
    others = [label for label in summary if label != method]
    if not others:
        return
    m, s = summary[method]
    print()
    print("| %s vs | difference | its SEM | ≥ 2 SEM better? |" % method)
    print("| --- | --- | --- | --- |")
    for label in others:
        om, osem = summary[label]
        diff, sem = m - om, math.sqrt(s * s + osem * osem)
        verdict = "yes" if sem > 0 and diff >= 2 * sem else "no"
        print("| %s | %+.3f | %.3f | %s |" % (label, diff, sem, verdict))


if __name__ == "__main__":
    main()
