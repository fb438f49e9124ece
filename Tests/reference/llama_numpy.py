#!/usr/bin/env python3
"""Independent float64 reference for redi-ps, in numpy only (CI can always install it).

Reads a checkpoint directory with its own safetensors parser (so it also checks redi-ps's
writer against the format spec), runs a Llama/Qwen2 forward in float64 and compares the
log-probabilities redi-ps printed with `logprobs --ids`.

usage: llama_numpy.py CHECKPOINT_DIR LOGPROBS.jsonl   (exit 0 when everything agrees)
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
    meta = header.pop("__metadata__", {})
    assert meta.get("format") == "pt", "transformers needs __metadata__ {format: pt}"
    out, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        assert b == end, f"hole or overlap before {name}"
        end = e
        data = raw[8 + n + b:8 + n + e]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data, "<" + np.dtype(DTYPES[info["dtype"]]).str[1:])
        out[name] = arr.reshape(info["shape"]).astype(np.float64)
    assert 8 + n + end == len(raw), "trailing or missing bytes"
    return out


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, theta):  # x: [T, H, D], Hugging Face rotate_half layout
    t, _, d = x.shape
    inv = (1.0 / theta ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d)).astype(np.float32).astype(np.float64)
    ang = np.arange(t)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1))[:, None, :], np.sin(np.concatenate([ang, ang], -1))[:, None, :]
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rot * sin


def logits(w, cfg, ids):
    c, h, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    d = cfg.get("head_dim") or c // h
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    x = w["model.embed_tokens.weight"][ids]
    t = len(ids)
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        n = rms(x, w[p + "input_layernorm.weight"], eps)
        def proj(name):
            y = n @ w[p + f"self_attn.{name}.weight"].T
            return y + w[p + f"self_attn.{name}.bias"] if p + f"self_attn.{name}.bias" in w else y
        q = rope(proj("q_proj").reshape(t, h, d), theta)
        k = rope(proj("k_proj").reshape(t, kv, d), theta)
        v = proj("v_proj").reshape(t, kv, d)
        k, v = np.repeat(k, h // kv, 1), np.repeat(v, h // kv, 1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = np.einsum("hts,shd->thd", s, v).reshape(t, h * d)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        n = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        g, u = n @ w[p + "mlp.gate_proj.weight"].T, n @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return rms(x, w["model.norm.weight"], eps) @ head.T


def sequence_logp(w, cfg, prompt, completion):
    ids = np.array(prompt + completion)
    z = logits(w, cfg, ids)
    z = z - z.max(-1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    start = max(len(prompt), 1)
    return sum(lp[i - 1, ids[i]] for i in range(start, len(ids))), len(ids) - start


def main():
    ckpt, lines = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{ckpt}/config.json"))
    w = read_safetensors(f"{ckpt}/model.safetensors")
    worst = 0.0
    for line in open(lines):
        r = json.loads(line)
        pairs = [("", "completion")] if "logp" in r else [("chosen_", "chosen"), ("rejected_", "rejected")]
        for key, ids in pairs:
            ref, count = sequence_logp(w, cfg, r["prompt_ids"], r[f"{ids}_ids"])
            assert count == r[f"{key}tokens"], f"token count {r[f'{key}tokens']} vs reference {count}"
            worst = max(worst, abs(ref - r[f"{key}logp"]) / max(1.0, abs(ref)))
    print(f"numpy float64 reference: worst relative logp difference {worst:.3e}")
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    main()
