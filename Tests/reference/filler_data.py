"""Writes SFT and preference JSONL (TRL's prompt/completion and prompt/chosen/rejected) whose
records are about TOKENS byte tokens long: filler text for measuring memory and speed at a
sequence length, not for learning anything."""
import argparse
import json
import os
import random

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", required=True, help="directory for sft.jsonl and pref.jsonl")
parser.add_argument("--tokens", type=int, required=True, help="tokens (bytes) per record")
parser.add_argument("--records", type=int, default=16, help="records per file")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
rng = random.Random(args.seed)
words = ["step", "add", "carry", "seven", "then", "so", "total", "check", "answer", "we", "have", "left"]


def text(n):
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(words))
    return " ".join(out)[:n]


prompt_tokens = min(64, args.tokens // 4)
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "sft.jsonl"), "w") as f:
    for _ in range(args.records):
        f.write(json.dumps({"prompt": text(prompt_tokens), "completion": text(args.tokens - prompt_tokens - 2)}) + "\n")
with open(os.path.join(args.out, "pref.jsonl"), "w") as f:
    for _ in range(args.records):
        f.write(json.dumps({"prompt": text(prompt_tokens), "chosen": text(args.tokens - prompt_tokens - 2),
                            "rejected": text(args.tokens - prompt_tokens - 2)}) + "\n")
