#!/usr/bin/env python3
"""Data and analysis for the miniature REDI experiment (cluster/experiments/reproduce.sh).

    python3 cluster/tools/distill.py problems SFT_JSONL OUT_JSONL
        Training problems in eval format ({"prompt", "answer"}), one per distinct prompt of a
        prompt/completion file whose completions end with "Answer: N" (the teacher's correct traces).
    python3 cluster/tools/distill.py pairs PROBLEMS SAMPLES OUT_DIR
        The teacher's samples as the paper uses them, from independent whole samples of each
        training problem (`redi-ps eval --samples-out`): the first correct sample of every
        problem that has one -> OUT_DIR/sft.jsonl (rejection sampling: the student's SFT data);
        the first correct with the first incorrect sample of a problem -> OUT_DIR/pref.jsonl,
        their chosen traces as OUT_DIR/positives.jsonl (the SFT-continued control);
        OUT_DIR/stats.json. Exit status 3 when no problem has both.
    python3 cluster/tools/distill.py slip-stand-in PREF_JSONL OUT_DIR
        OUT_DIR as `pairs` makes it from the synthetic slip pairs (for a --quick run whose
        teacher solves nothing yet).
    python3 cluster/tools/distill.py overlap PREF_JSONL
        How alike a file's chosen and rejected traces are (shared prefix, equal lines).
    python3 cluster/tools/distill.py errors PROBLEMS EVAL_SAMPLES [EVAL_SAMPLES ...]
        The first mistake of every incorrect sample of the arithmetic task, by type, as JSON.
    python3 cluster/tools/distill.py error-table PROBLEMS LABEL=SAMPLES[,SAMPLES...] ...
        The same for several methods, as a markdown table.
    python3 cluster/tools/distill.py logps TEACHER_LOGPROBS SLIP_LOGPROBS
        Mean per-token log-probabilities of chosen and rejected (`redi-ps logprobs` outputs).
    python3 cluster/tools/distill.py probes DIR NAME ...
        Those of several checkpoints (DIR/NAME.json) as a markdown table.
    python3 cluster/tools/distill.py curve METRICS_JSONL
        A stage's evaluations during training (eval_every) as a markdown table, and whether
        it levelled off (its last evaluations within noise of each other).
    python3 cluster/tools/distill.py describe TEACHER_STATS SLIP_OVERLAP
        The teacher's pairs next to the synthetic slip pairs, in words.
    python3 cluster/tools/distill.py report EVAL_REPORT
        A `redi-ps eval --out` report's pass@1 ± its standard error.
    python3 cluster/tools/distill.py last-pass METRICS_JSONL
        A run's last pass@1 (its final evaluation).
    python3 cluster/tools/distill.py student-config TEACHER_CONFIG OUT_CONFIG
        The student's config.json: the teacher's vocabulary and special ids, a smaller body.
"""
import argparse
import json
import os
import re
import sys


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    with open(path + ".tmp", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(path + ".tmp", path)


ANSWER = re.compile(r"Answer:\s*(-?\d+)\s*$")


def problems(args):
    seen, rows = set(), []
    for r in read_jsonl(args.sft):
        m = ANSWER.search(r["completion"])
        if not m:
            sys.exit("error: %s: a completion without a final \"Answer: N\"" % args.sft)
        if r["prompt"] not in seen:
            seen.add(r["prompt"])
            rows.append({"prompt": r["prompt"], "answer": m.group(1)})
    write_jsonl(args.out, rows)
    print("%d training problems -> %s" % (len(rows), args.out))


def shared_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def overlap_stats(pairs):
    if not pairs:
        return {}
    prefix = [shared_prefix(p["chosen"], p["rejected"]) / max(1, len(p["chosen"])) for p in pairs]
    same_lines = []
    for p in pairs:
        c, r = p["chosen"].split("\n"), set(p["rejected"].split("\n"))
        same_lines.append(sum(1 for line in c if line in r) / max(1, len(c)))
    return {"pairs": len(pairs),
            "shared_prefix_of_chosen": sum(prefix) / len(prefix),
            "chosen_lines_also_in_rejected": sum(same_lines) / len(same_lines),
            "mean_chars_chosen": sum(len(p["chosen"]) for p in pairs) / len(pairs),
            "mean_chars_rejected": sum(len(p["rejected"]) for p in pairs) / len(pairs)}


def pairs(args):
    problem_rows = read_jsonl(args.problems)
    pref, positives, sft = [], [], []
    counts = {"problems": 0, "all_correct": 0, "all_incorrect": 0, "paired": 0, "samples": 0, "correct_samples": 0}
    for row in read_jsonl(args.samples):
        prompt = problem_rows[row["line"] - 1]["prompt"]
        samples = row["samples"]
        counts["problems"] += 1
        counts["samples"] += len(samples)
        good = [s["text"] for s in samples if s["correct"]]
        bad = [s["text"] for s in samples if not s["correct"]]
        counts["correct_samples"] += len(good)
        if good:
            sft.append({"prompt": prompt, "completion": good[0]})
        if not bad:
            counts["all_correct"] += 1
        elif not good:
            counts["all_incorrect"] += 1
        else:
            counts["paired"] += 1
            pref.append({"prompt": prompt, "chosen": good[0], "rejected": bad[0]})
            positives.append({"prompt": prompt, "completion": good[0]})
    if not pref:
        print("error: no problem has both a correct and an incorrect sample", file=sys.stderr)
        sys.exit(3)
    os.makedirs(args.out, exist_ok=True)
    write_jsonl(os.path.join(args.out, "sft.jsonl"), sft)
    write_jsonl(os.path.join(args.out, "pref.jsonl"), pref)
    write_jsonl(os.path.join(args.out, "positives.jsonl"), positives)
    stats = dict(counts, sft_records=len(sft), sample_accuracy=counts["correct_samples"] / max(1, counts["samples"]), overlap=overlap_stats(pref))
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats))


def slip_stand_in(args):
    pref = read_jsonl(args.pref)
    os.makedirs(args.out, exist_ok=True)
    write_jsonl(os.path.join(args.out, "pref.jsonl"), pref)
    positives = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in pref]
    write_jsonl(os.path.join(args.out, "positives.jsonl"), positives)
    write_jsonl(os.path.join(args.out, "sft.jsonl"), positives)
    stats = {"problems": 0, "all_correct": 0, "all_incorrect": 0, "paired": len(pref), "samples": 0, "correct_samples": 0,
             "sft_records": len(positives), "sample_accuracy": 0, "overlap": overlap_stats(pref), "stand_in": True}
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=2)


def overlap(args):
    print(json.dumps(overlap_stats(read_jsonl(args.pref))))


# The arithmetic task's problems: a start, then operations (see Sources/ReasoningTask).
START = re.compile(r"has (\d+) \w+\.")
OPS = [(re.compile(r"gets (\d+) more"), "+"), (re.compile(r"gives away (\d+)"), "-"),
       (re.compile(r"becomes (\d+) times"), "*"), (re.compile(r"buys (\d+) boxes with (\d+)"), "box")]
EQUATION = re.compile(r"^(-?\d+) ([-+*]) (-?\d+) = (-?\d+)")


def parse_problem(prompt):
    text = prompt.split("\n")[0]
    start = int(START.search(text).group(1))
    ops = []
    for sentence in text.split(" Then ")[1:]:
        for pattern, kind in OPS:
            m = pattern.search(sentence)
            if m:
                ops.append(("+", int(m.group(1)) * int(m.group(2))) if kind == "box" else (kind, int(m.group(1))))
                break
    return start, ops


def first_mistake(start, ops, text):
    """The type of a wrong sample's first mistake against the problem's own steps."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines or not ANSWER.search(lines[-1]):
        return "no_final_answer"
    m = re.match(r"We start with (-?\d+)", lines[0])
    if not m:
        return "malformed"
    if int(m.group(1)) != start:
        return "wrong_start"
    total, step = start, 0
    for line in lines[1:-1]:
        if " boxes of " in line:
            continue  # the group's product; its sum is the next line
        e = EQUATION.match(line)
        if not e:
            return "malformed"
        a, op, b, c = int(e.group(1)), e.group(2), int(e.group(3)), int(e.group(4))
        if step >= len(ops):
            return "extra_step"
        want_op, want_b = ops[step]
        if a != total:
            return "wrong_carried_value"
        if op != want_op:
            return "wrong_operation"
        if b != want_b:
            return "wrong_operand"
        if c != {"+": a + b, "-": a - b, "*": a * b}[op]:
            return "arithmetic_slip"
        total, step = c, step + 1
    if step < len(ops):
        return "skipped_step"
    if int(ANSWER.search(lines[-1]).group(1)) != total:
        return "wrong_final_answer"
    return "other"


def errors(args):
    wrong, counts = first_mistakes(read_jsonl(args.problems), args.samples)
    print(json.dumps({"incorrect_samples": wrong, "first_mistake": {k: v / max(1, wrong) for k, v in sorted(counts.items())}}))


def first_mistakes(problem_rows, paths):
    counts, wrong = {}, 0
    for path in paths:
        for row in read_jsonl(path):
            start, ops = parse_problem(problem_rows[row["line"] - 1]["prompt"])
            for sample in row["samples"]:
                if sample["correct"]:
                    continue
                wrong += 1
                kind = first_mistake(start, ops, sample["text"])
                counts[kind] = counts.get(kind, 0) + 1
    return wrong, counts


def error_table(args):
    problem_rows = read_jsonl(args.problems)
    results = []
    for spec in args.methods:
        label, _, files = spec.partition("=")
        results.append((label, first_mistakes(problem_rows, files.split(","))))
    kinds = sorted({k for _, (_, counts) in results for k in counts}, key=lambda k: -sum(c.get(k, 0) for _, (_, c) in results))
    print("| method | incorrect samples | " + " | ".join(kinds) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in kinds) + " |")
    for label, (wrong, counts) in results:
        print("| %s | %d | %s |" % (label, wrong, " | ".join("%.0f%%" % (100 * counts.get(k, 0) / max(1, wrong)) for k in kinds)))


def mean_per_token(path):
    rows = read_jsonl(path)
    def mean(key):
        return sum(r[key + "_logp"] / max(1, r[key + "_tokens"]) for r in rows) / len(rows)
    return {"chosen": mean("chosen"), "rejected": mean("rejected"), "pairs": len(rows)}


def logps(args):
    print(json.dumps({"teacher": mean_per_token(args.teacher), "slip": mean_per_token(args.slip)}))


def probes(args):
    print("| model | teacher chosen | teacher rejected | slip chosen | slip rejected |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.names:
        with open(os.path.join(args.dir, name + ".json")) as f:
            p = json.load(f)
        print("| %s | %.3f | %.3f | %.3f | %.3f |" % (name, p["teacher"]["chosen"], p["teacher"]["rejected"], p["slip"]["chosen"], p["slip"]["rejected"]))


def curve(args):
    rows, last = [], 0
    for r in read_jsonl(args.metrics):
        if "step" in r:
            last = max(last, r["step"])
        elif r.get("eval/pass@1") is not None:
            rows.append((last, r["eval/pass@1"], r.get("eval/pass@1_stderr") or 0))
    print("| step | pass@1 | ± |")
    print("| --- | --- | --- |")
    for step, value, error in rows:
        print("| %d | %.3f | %.3f |" % (step, value, error))
    # Levelled off: the last quarter of the evaluations (at least 3) spans no more than the
    # noise of one evaluation (3 of its standard errors, over samples) plus a point.
    tail = rows[-max(3, len(rows) // 4):]
    if len(rows) >= 3:
        values = [v for _, v, _ in tail]
        noise = 3 * max(e for _, _, e in tail) + 0.01
        span = max(values) - min(values)
        rise = values[-1] - values[0]
        print()
        print("Over the last %d evaluations pass@1 %s by %.3f (spread %.3f; noise %.3f): %s." % (
            len(tail), "rose" if rise >= 0 else "fell", abs(rise), span, noise,
            "levelled off" if span <= noise else "not yet level"))


def describe(args):
    with open(args.stats) as f:
        teacher = json.load(f)
    with open(args.slip) as f:
        slip = json.load(f)
    o = teacher["overlap"]
    if teacher.get("stand_in"):
        print("(--quick: the teacher solved nothing yet, so the synthetic slip pairs stand in for its pairs.)")
        return
    per_problem = round(teacher["samples"] / max(1, teacher["problems"]))
    print("The teacher sampled %d training problems %d times each at T 1 (%.0f%% of samples correct): %d problems with a correct "
          "sample give the student's SFT data; %d all correct, %d all wrong, %d pairs. A pair's traces share %.0f%% of the chosen "
          "trace as a common prefix and %.0f%% of its lines; the synthetic slip pairs share %.0f%% and %.0f%%." % (
              teacher["problems"], per_problem, 100 * teacher["sample_accuracy"], teacher["sft_records"], teacher["all_correct"],
              teacher["all_incorrect"], teacher["paired"], 100 * o["shared_prefix_of_chosen"], 100 * o["chosen_lines_also_in_rejected"],
              100 * slip["shared_prefix_of_chosen"], 100 * slip["chosen_lines_also_in_rejected"]))


def report(args):
    with open(args.report) as f:
        r = json.load(f)
    print("pass@1 %.3f ± %.3f" % (r["pass@1"], r.get("pass@1_stderr_problems", r.get("pass@1_stderr", 0))))


def last_pass(args):
    values = [r["eval/pass@1"] for r in read_jsonl(args.metrics) if r.get("eval/pass@1") is not None]
    if not values:
        sys.exit("error: %s has no evaluation" % args.metrics)
    print(values[-1])


# The student: as the paper's, smaller than the teacher; the same tokenizer and special ids.
STUDENT = {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 3}


def student_config(args):
    with open(args.teacher) as f:
        config = json.load(f)
    config.update(STUDENT)
    config.pop("head_dim", None)
    with open(args.out, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


# Each subcommand: its function and its positional arguments ("NAME+" takes one or more).
COMMANDS = {
    "problems": (problems, ["sft", "out"]),
    "pairs": (pairs, ["problems", "samples", "out"]),
    "slip-stand-in": (slip_stand_in, ["pref", "out"]),
    "overlap": (overlap, ["pref"]),
    "errors": (errors, ["problems", "samples+"]),
    "error-table": (error_table, ["problems", "methods+"]),
    "logps": (logps, ["teacher", "slip"]),
    "probes": (probes, ["dir", "names+"]),
    "curve": (curve, ["metrics"]),
    "describe": (describe, ["stats", "slip"]),
    "report": (report, ["report"]),
    "last-pass": (last_pass, ["metrics"]),
    "student-config": (student_config, ["teacher", "out"]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (run, positional) in COMMANDS.items():
        p = sub.add_parser(name)
        for arg in positional:
            if arg.endswith("+"):
                p.add_argument(arg[:-1], nargs="+")
            else:
                p.add_argument(arg)
        p.set_defaults(run=run)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
