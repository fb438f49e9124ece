#!/usr/bin/env python3
"""Compares methods by pass@1 from runs' outputs and prints markdown tables.

    python3 cluster/tools/compare.py [--stage STAGE] [--method LABEL] [--baseline SAMPLES] [--no-paired] [LABEL=]RUN_OUTPUT ...

Runs sharing a label are seeds of one method. For each label: pass@1 mean ± standard error
of the mean over seeds (SEM; for a single run, its standard error over problems), the seeds'
values, and the last step's chosen and rejected log-probabilities (sums per sequence, as the
objective logs them). Then --method (default: the first label) against every other label,
paired per problem: each problem's accuracy (its samples, averaged over the seeds) under the
method minus under the other, the mean of those differences and its standard error over
problems, and whether the difference is at least twice that standard error. It needs each
run's evaluation samples (eval_STAGE.jsonl); --no-paired leaves the comparison out.
--baseline adds a checkpoint's samples file (`redi-ps eval --samples-out`) as the row
"sft_checkpoint". The evaluated stage is --stage, or each run's last evaluated stage.
"""
import argparse
import collections
import math
import os
import sys

from runs import mean_sem, problem_accuracies, read_run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", help="the evaluated stage to compare (default: each run's last)")
    parser.add_argument("--method", help="the label compared against the others (default: the first)")
    parser.add_argument("--baseline", help="a samples file of the checkpoint every method starts from")
    parser.add_argument("--no-paired", action="store_true", help="only the table of methods")
    parser.add_argument("runs", nargs="+", metavar="[LABEL=]RUN_OUTPUT")
    args = parser.parse_args()
    methods = collections.OrderedDict()
    per_problem = collections.OrderedDict()  # label -> [ {line: accuracy} per seed ]
    if args.baseline:
        acc = problem_accuracies(args.baseline)
        values = list(acc.values())
        mean = sum(values) / len(values)
        sem = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1) / len(values))
        methods["sft_checkpoint"] = [(mean, None, None, sem)]
        per_problem["sft_checkpoint"] = [acc]
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
        if not args.no_paired:
            samples = os.path.join(path, "eval_%s.jsonl" % stage)
            if not os.path.isfile(samples):
                sys.exit("error: %s has no evaluation samples %s (or pass --no-paired)" % (path, samples))
            per_problem.setdefault(label, []).append(problem_accuracies(samples))
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
    if args.no_paired:
        return
    method = args.method or next(iter(summary))
    if method not in summary:
        sys.exit("error: no runs labelled %s" % method)
    others = [label for label in summary if label != method]
    if not others:
        return

    def averaged(label):
        seeds = per_problem[label]
        return {p: sum(s[p] for s in seeds) / len(seeds) for p in seeds[0]}

    mine = averaged(method)
    print()
    print("| %s vs | difference (paired per problem) | its SEM | ≥ 2 SEM better? |" % method)
    print("| --- | --- | --- | --- |")
    for label in others:
        theirs = averaged(label)
        common = sorted(set(mine) & set(theirs))
        if len(common) != len(mine):
            sys.exit("error: %s and %s were evaluated on different problems" % (method, label))
        d = [mine[p] - theirs[p] for p in common]
        diff = sum(d) / len(d)
        sem = math.sqrt(sum((x - diff) ** 2 for x in d) / max(1, len(d) - 1) / len(d))
        verdict = "yes" if sem > 0 and diff >= 2 * sem else "no"
        print("| %s | %+.3f | %.3f | %s |" % (label, diff, sem, verdict))


if __name__ == "__main__":
    main()
