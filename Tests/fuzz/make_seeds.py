#!/usr/bin/env python3
"""Seeds for redi-fuzz: a tiny llama GGUF (written by llama.cpp's own `gguf` package, with
F32, F16, Q8_0 and Q4_0 tensors and a BPE tokenizer), tiny safetensors files, TRL JSONL
records of every shape, and YAML recipes.   make_seeds.py OUTDIR"""
import json
import os
import struct
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

try:
    import gguf

    hidden, heads, kv, inter, vocab = 32, 2, 1, 32, 8
    w = gguf.GGUFWriter(os.path.join(out, "tiny.gguf"), "llama")
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    tokens = ["<|endoftext|>", "h", "e", "l", "o", "he", "ll", "hello"]
    w.add_token_list(tokens)
    w.add_token_types([3, 1, 1, 1, 1, 1, 1, 1])
    w.add_token_merges(["h e", "l l", "he ll"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    rng = np.random.default_rng(0)
    hd = hidden // heads

    def t(name, shape, qtype=None):
        data = rng.standard_normal(shape).astype(np.float32)
        if qtype is None:
            w.add_tensor(name, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, data.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    t("token_embd.weight", (vocab, hidden))
    t("output_norm.weight", (hidden,))
    t("blk.0.attn_norm.weight", (hidden,))
    t("blk.0.ffn_norm.weight", (hidden,))
    t("blk.0.attn_q.weight", (heads * hd, hidden), gguf.GGMLQuantizationType.Q8_0)
    t("blk.0.attn_k.weight", (kv * hd, hidden), gguf.GGMLQuantizationType.Q4_0)
    t("blk.0.attn_v.weight", (kv * hd, hidden), gguf.GGMLQuantizationType.Q4_1)
    t("blk.0.attn_output.weight", (hidden, heads * hd), gguf.GGMLQuantizationType.F16)
    t("blk.0.ffn_gate.weight", (inter, hidden))
    t("blk.0.ffn_up.weight", (inter, hidden))
    t("blk.0.ffn_down.weight", (hidden, inter))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
except ImportError:
    print("gguf not installed: no GGUF seed", file=sys.stderr)


def safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, array) in tensors.items():
        raw = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


safetensors(os.path.join(out, "a.safetensors"), {"w": ("F32", np.arange(6, dtype=np.float32).reshape(2, 3)),
                                                 "b": ("F16", np.ones(4, dtype=np.float16)),
                                                 "c": ("BF16", np.zeros(2, dtype=np.uint16))}, {"format": "pt"})
safetensors(os.path.join(out, "b.safetensors"), {"exp_avg": ("F32", np.zeros(8, dtype=np.float32))})

lines = [
    {"prompt": "1+1=", "completion": "2"},
    {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
]
pref = [
    {"prompt": "1+1=", "chosen": "2", "rejected": "3", "ref_chosen_logp": -1.5, "ref_rejected_logp": -2.5},
    {"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": "y"}],
     "rejected": [{"role": "assistant", "content": "z"}]},
]
with open(os.path.join(out, "sft.jsonl"), "w") as f:
    f.write("\n".join(json.dumps(x) for x in lines) + "\n")
with open(os.path.join(out, "pref.jsonl"), "w") as f:
    f.write("\n".join(json.dumps(x) for x in pref) + "\n")
with open(os.path.join(out, "inline.yaml"), "w") as f:
    f.write("""run_id: e2e
output: out
seed: 3
model: {init: tiny}
stages:
  - {name: sft, objective: sft, data: sft.jsonl, epochs: 4, batch_size: 12, learning_rate: 1.0e-2, warmup_ratio: 0.25, checkpoint_every: 2}
  - {name: redi, objective: redi, data: pref.jsonl, epochs: 2, batch_size: 12, learning_rate: 5.0e-3, alpha: 0.8, gamma: 0.5}
eval: {data: test.jsonl, samples: 2, max_new_tokens: 16, answer_rule: boxed}
cluster: {servers: 1, workers: 2, bind: "tcp://127.0.0.1:5570", timeout_seconds: 30, chunk_mib: 0.05, heartbeat_seconds: 0.5}
""")

# tokenizer.json: byte-level BPE with merges, added tokens and a pre-tokenizer.
vocab = {c: i for i, c in enumerate(["h", "e", "l", "o", "\u0120", "w", "r", "d", "he", "ll", "hell", "hello", "1", "2", "3"])}
tokenizer = {
    "model": {"type": "BPE", "vocab": vocab, "merges": ["h e", "l l", "he ll", "hell o"]},
    "added_tokens": [{"id": len(vocab), "content": "<|im_start|>", "special": True}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel"}]},
}
with open(os.path.join(out, "seed.tokenizer.json"), "w") as f:
    json.dump(tokenizer, f)
# trainer_state.json as redi-ps writes it.
state = {"stage": "sft", "step": 2, "total_steps": 4, "epoch": 1, "data_position": 24, "optimizer_step": 2, "seed": 3,
         "run_id": "e2e", "parameter_version": 3,
         "log": {"metrics": 400, "examples": 200, "events": 1000, "events_file": "events.out.tfevents.1700000000.host"}}
with open(os.path.join(out, "seed.trainer_state.json"), "w") as f:
    json.dump(state, f, indent=2, sort_keys=True)
