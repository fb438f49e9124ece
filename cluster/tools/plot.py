#!/usr/bin/env python3
"""Figures from runs' metrics.jsonl: loss, grad norm and chosen/rejected log-probs per step
for each stage, and pass@1 per evaluated stage with standard-error bars.

    python3 cluster/tools/plot.py [--out DIR] [LABEL=]RUN_OUTPUT ...

Each argument is a run's output directory (where metrics.jsonl is), optionally labelled.
Runs sharing a label are seeds of one method: curves show their mean per step (with the
spread of seeds shaded), and pass@1 bars the mean over seeds with the standard error of
that mean (with one run: the run's own standard error over problems). Writes loss.png,
grad_norm.png, logps.png and pass1.png into --out (default: the first run's directory).
"""
import argparse
import collections
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


from runs import mean_sem, read_run  # noqa: E402


def curves(runs, stage, name):
    """Per label: steps, mean, min, max of `name` over that label's runs."""
    out = {}
    for label, items in runs.items():
        by_step = collections.defaultdict(list)
        for steps, _, _ in items:
            for (s, step), record in steps.items():
                if s == stage and record.get(name) is not None:
                    by_step[step].append(record[name])
        if by_step:
            xs = sorted(by_step)
            out[label] = (xs, [sum(by_step[x]) / len(by_step[x]) for x in xs],
                          [min(by_step[x]) for x in xs], [max(by_step[x]) for x in xs])
    return out


def line_figure(runs, stages, series, path, title):
    """One axes per stage holding every (metric name, line style, legend suffix) of `series`."""
    rows = [s for s in stages if any(curves(runs, s, name) for name, _, _ in series)]
    if not rows:
        return False
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 3.2 * len(rows)), squeeze=False)
    for r, stage in enumerate(rows):
        ax = axes[r][0]
        for name, style, suffix in series:
            for i, (label, (xs, mean, lo, hi)) in enumerate(curves(runs, stage, name).items()):
                color = "C%d" % (i % 10)
                ax.plot(xs, mean, style, color=color, label=(label + " " + suffix).strip())
                if lo != hi:
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.2)
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(runs) > 1 or len(series) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="directory for the PNG files (default: the first run's)")
    parser.add_argument("runs", nargs="+", metavar="[LABEL=]RUN_OUTPUT")
    args = parser.parse_args()
    runs = collections.OrderedDict()
    stages = []
    for spec in args.runs:
        label, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        label = label or os.path.basename(os.path.normpath(path))
        steps, evals, order = read_run(path)
        runs.setdefault(label, []).append((steps, evals, order))
        stages += [s for s in order if s not in stages]
    out = args.out or args.runs[0].rpartition("=")[2]
    os.makedirs(out, exist_ok=True)
    written = []
    for name, series, title in [
        ("loss.png", [("loss", "-", "")], "training loss per step"),
        ("grad_norm.png", [("grad_norm", "-", "")], "gradient norm per step (before clipping)"),
        ("logps.png", [("logps/chosen", "-", "chosen"), ("logps/rejected", "--", "rejected")],
         "sequence log-probabilities (solid: chosen, dashed: rejected)"),
    ]:
        if line_figure(runs, stages, series, os.path.join(out, name), title):
            written.append(name)
    # pass@1 bars: one group per evaluated stage, one bar per label.
    bars = []
    for label, items in runs.items():
        for stage in stages:
            values = [evals[stage] for _, evals, _ in items if stage in evals]
            if values:
                mean, sem = mean_sem([v[0] for v in values]) if len(values) > 1 else values[0]
                bars.append((label, stage, mean, sem, len(values)))
    if bars:
        fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(bars) + 2), 3.8))
        names = ["%s\n%s%s" % (label, stage, "\n(%d seeds)" % n if n > 1 else "") for label, stage, _, _, n in bars]
        ax.bar(range(len(bars)), [b[2] for b in bars], yerr=[b[3] for b in bars], capsize=4, color="#4c72b0")
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_ylabel("pass@1")
        ax.set_title("pass@1 (mean ± standard error)")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "pass1.png"), dpi=110)
        plt.close(fig)
        written.append("pass1.png")
    if not written:
        sys.exit("error: no step or eval lines in the runs' metrics.jsonl")
    print("wrote " + ", ".join(os.path.join(out, w) for w in written))


if __name__ == "__main__":
    main()
