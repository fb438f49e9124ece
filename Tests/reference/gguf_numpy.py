#!/usr/bin/env python3
"""Independent reference for a GGUF model: tensors read and dequantised by the `gguf`
package (llama.cpp's own Python reader), llama.cpp's Q/K permutation undone here, and the
float64 numpy forward of llama_numpy.py.

usage: gguf_numpy.py MODEL.gguf LOGPROBS.jsonl [GENERATE.jsonl [LOGITS.json]]
  LOGPROBS.jsonl: `redi-ps logprobs --ids --per-token` output; each token's log-probability
                  must agree to 1e-3 relative.
  GENERATE.jsonl: `redi-ps generate --ids --temperature 0` output; the greedy tokens must match.
  LOGITS.json:    `redi-ps generate --logits-out` output; every next-token logit must agree
                  to 1e-3 relative to the largest logit magnitude.
Exits 77 when the gguf package is missing (the caller skips).
"""
import json
import os
import sys

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_numpy import logits  # noqa: E402

NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
         "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def field(reader, key):
    f = reader.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]][0]


def load(path):
    r = gguf.GGUFReader(path)
    arch = field(r, "general.architecture")
    heads, kv = int(field(r, f"{arch}.attention.head_count")), int(field(r, f"{arch}.attention.head_count_kv"))
    cfg = {"hidden_size": int(field(r, f"{arch}.embedding_length")), "num_attention_heads": heads,
           "num_key_value_heads": kv, "num_hidden_layers": int(field(r, f"{arch}.block_count")),
           "rms_norm_eps": float(field(r, f"{arch}.attention.layer_norm_rms_epsilon")),
           "rope_theta": float(field(r, f"{arch}.rope.freq_base")), "tie_word_embeddings": True}
    w = {}
    for t in r.tensors:
        a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape([int(d) for d in reversed(t.shape)])
        name = t.name
        if name.startswith("blk."):
            _, layer, kind, suffix = name.split(".", 3)
            if arch == "llama" and kind in ("attn_q", "attn_k"):
                n = heads if kind == "attn_q" else kv
                a = a.reshape(n, a.shape[0] // n // 2, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)
            name = f"model.layers.{layer}.{NAMES[kind]}.{suffix}"
        elif name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            name = "model.norm.weight"
        elif name == "output.weight":
            name, cfg["tie_word_embeddings"] = "lm_head.weight", False
        w[name] = a
    return w, cfg


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def main():
    w, cfg = load(sys.argv[1])
    worst, count = 0.0, 0
    for line in open(sys.argv[2]):
        r = json.loads(line)
        ids = r["prompt_ids"] + r["completion_ids"]
        lp = log_softmax(logits(w, cfg, np.array(ids)))
        start = max(len(r["prompt_ids"]), 1)
        ref = [lp[i - 1, ids[i]] for i in range(start, len(ids))]
        mine = r["token_logps"]
        assert len(ref) == len(mine), f"{len(mine)} scored tokens, reference has {len(ref)}"
        for a, b in zip(mine, ref):
            worst = max(worst, abs(a - b) / max(1.0, abs(b)))
        count += len(ref)
    print(f"gguf + numpy float64 reference: {count} tokens, worst relative log-probability difference {worst:.2e}")
    ok = worst < 1e-3
    if len(sys.argv) > 3:
        for line in open(sys.argv[3]):
            g = json.loads(line)
            ids = list(g["prompt_ids"])
            for _ in range(len(g["ids"])):
                ids.append(int(np.argmax(logits(w, cfg, np.array(ids))[-1])))
            ref = ids[len(g["prompt_ids"]):]
            same = ref == g["ids"]
            print(f"greedy tokens {'match' if same else 'DIFFER'}: {g['ids']} vs reference {ref}")
            ok = ok and same
    if len(sys.argv) > 4:
        g = json.loads(open(sys.argv[4]).read())
        ref = logits(w, cfg, np.array(g["prompt_ids"]))[-1]
        mine = np.array(g["logits"], dtype=np.float64)
        rel = np.abs(mine - ref).max() / np.abs(ref).max()
        print(f"next-token logits ({len(mine)} of them): max |difference| / max |logit| = {rel:.2e}; argmax equal: {int(mine.argmax()) == int(ref.argmax())}")
        ok = ok and rel < 1e-3 and int(mine.argmax()) == int(ref.argmax())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
