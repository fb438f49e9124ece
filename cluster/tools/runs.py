"""Reading runs' outputs (metrics.jsonl, evaluation samples, safetensors weights, recipes)
for the analysis and measuring scripts."""
import collections
import json
import math
import os
import statistics
import struct
import sys


def read_run(path):
    metrics = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(metrics):
        sys.exit("error: %s has no metrics.jsonl (pass a run's output directory)" % path)
    steps = collections.defaultdict(dict)  # (stage, step) -> metrics
    evals = {}  # stage -> (pass@1, stderr)
    stage_order = []
    with open(metrics) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit("error: %s line %d is not JSON: %s" % (metrics, n, e))
            stage = record.get("stage")
            if stage is None:
                continue
            if stage not in stage_order:
                stage_order.append(stage)
            if "step" in record:
                steps[(stage, record["step"])] = record  # a replayed step keeps its last line
            elif record.get("eval/pass@1") is not None:
                evals[stage] = (record["eval/pass@1"], record.get("eval/pass@1_stderr") or 0.0)
    return steps, evals, stage_order


def mean_sem(values):
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def problem_accuracies(path):
    """{problem line: fraction of its samples correct} from an evaluation samples file
    (`eval_STAGE.jsonl` of a run, or `redi-ps eval --samples-out`)."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                samples = row["samples"]
                out[row["line"]] = sum(1 for s in samples if s["correct"]) / max(1, len(samples))
    return out


def step_rows(metrics_path):
    """The step records of a metrics.jsonl (those with timings), in file order."""
    with open(metrics_path) as f:
        return [r for r in (json.loads(line) for line in f if line.strip()) if "time/step" in r]


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def safetensors_header(path):
    """A safetensors file's header: {name: {"dtype", "shape", "data_offsets"}} (and its byte length)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def safetensors_arrays(path):
    """Every tensor of a float32 safetensors file as a flat numpy array."""
    import numpy as np
    header, start = safetensors_header(path)
    data = open(path, "rb").read()
    return {k: np.frombuffer(data[start + v["data_offsets"][0]:start + v["data_offsets"][1]], dtype=np.float32)
            for k, v in header.items() if k != "__metadata__"}


def recipe_output(recipe_path):
    """Where a recipe's run writes: its output (default runs/RUN_ID) against the recipe's directory."""
    import yaml
    r = yaml.safe_load(open(recipe_path))
    base = os.path.dirname(os.path.abspath(recipe_path))
    return os.path.normpath(os.path.join(base, r.get("output", "runs/" + r.get("run_id", "redi"))))
