#!/usr/bin/env python3
"""Opens a redi-ps checkpoint with Hugging Face transformers, unchanged, and compares:
tokenizer ids, per-record log-probabilities, and (given a gradient file from `redi-ps grad
--objective sft`) every parameter's gradient from torch autograd.

usage: check_transformers.py CHECKPOINT_DIR SFT.jsonl LOGPROBS.jsonl [GRADS.safetensors]
Exits 77 when torch/transformers are not installed (the caller skips), 0 on agreement.
"""
import json
import sys

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from safetensors.numpy import load_file
except ImportError as e:  # pragma: no cover
    print(f"skip: {e}")
    sys.exit(77)


def main():
    ckpt, data, lines = sys.argv[1:4]
    grads_path = sys.argv[4] if len(sys.argv) > 4 else None
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float64)
    tok = AutoTokenizer.from_pretrained(ckpt)
    records = [json.loads(l) for l in open(data) if l.strip()]
    outputs = [json.loads(l) for l in open(lines)]
    total, count, worst = 0.0, 0, 0.0
    for rec, out in zip(records, outputs):
        p_ids = [tok.bos_token_id] + tok(rec["prompt"], add_special_tokens=False)["input_ids"]
        c_ids = tok(rec["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert p_ids == out["prompt_ids"] and c_ids == out["completion_ids"], f"tokenizer disagrees on {rec}"
        ids = torch.tensor([p_ids + c_ids])
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
        targets = ids[0, 1:]
        lp = logp[torch.arange(len(targets)), targets][len(p_ids) - 1:].sum()
        worst = max(worst, abs(lp.item() - out["logp"]) / max(1.0, abs(lp.item())))
        total = total + lp
        count += len(c_ids)
    print(f"transformers: worst relative logp difference {worst:.3e}")
    ok = worst < 1e-5
    if grads_path:
        (-total / count).backward()
        mine = load_file(grads_path)
        gworst = 0.0
        for name, param in model.named_parameters():
            if name not in mine:
                print(f"missing gradient {name}"); ok = False; continue
            ref = param.grad.numpy()
            scale = max(abs(ref).max(), 1e-8)
            gworst = max(gworst, abs(mine[name] - ref).max() / scale)
        print(f"torch autograd: worst gradient difference relative to tensor scale {gworst:.3e}")
        ok = ok and gworst < 1e-4
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
