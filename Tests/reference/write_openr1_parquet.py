"""Writes a small Open-R1-Math-Raw-shaped training parquet and two benchmark files for the
end-to-end test of the paper's workload (PaperWorkloadTests).
    python3 Tests/reference/write_openr1_parquet.py OUTDIR
OUTDIR/train.parquet: 12 problems with 3-4 generations each, verdicts in `correctness`
(llama_verification, math_verify_reparsed_answer), one cn_k12 row, one invalid problem, one
over-long trace; OUTDIR/math500.parquet and OUTDIR/aime24.jsonl: problem/answer rows."""
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rows = []
for i in range(12):
    a, b = i % 7 + 1, (i * 3) % 5 + 2
    good = f"<think>\n{a}+{b}={a + b}</think>\nThe answer is $\\boxed{{{a + b}}}$."
    slip = f"<think>\n{a}+{b}={a + b + 1}</think>\nThe answer is $\\boxed{{{a + b + 1}}}$."
    other = f"<think>\nadd {a} and {b}: {a + b}</think>\n$\\boxed{{{a + b}}}$"
    rows.append({
        "problem": f"What is {a}+{b}?", "answer": str(a + b), "source": "olympiads", "problem_is_valid": "yes",
        "generations": [good, slip, other],
        "correctness": {"llama_verification": [True, False, True], "math_verify_reparsed_answer": [True, False, True]},
    })
rows[3]["source"] = "cn_k12"
rows[4]["problem_is_valid"] = "no"
rows[5]["generations"][0] = "<think>\n" + "carry " * 5000 + "</think>\\boxed{9}"  # over --max-response-tokens
rows[6]["correctness"]["llama_verification"] = [True, False, None]  # no yes from both: incorrect
pq.write_table(pa.Table.from_pylist(rows), out / "train.parquet")
pq.write_table(pa.Table.from_pylist([
    {"problem": "Compute $\\frac{1}{2}+\\frac{1}{4}$.", "answer": "\\frac{3}{4}"},
    {"problem": "What is $\\sqrt{2}\\cdot\\frac{1}{2}$?", "answer": "\\frac{\\sqrt{2}}{2}"},
    {"problem": "What is 6+7?", "answer": "13"},
]), out / "math500.parquet")
with open(out / "aime24.jsonl", "w") as f:
    for problem, answer in [("Find 2+2.", 4), ("Find 10*3.", 30)]:
        f.write(json.dumps({"problem": problem, "answer": answer}) + "\n")
print("wrote", out)
