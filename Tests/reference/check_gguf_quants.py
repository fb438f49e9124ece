#!/usr/bin/env python3
"""Writes a tiny llama GGUF with the `gguf` package — one tensor in each type redi-ps
reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1) — converts it with `redi-ps convert`, and checks
every tensor against gguf's own dequantisation (with llama.cpp's Q/K permutation undone).

usage: check_gguf_quants.py REDI_PS WORKDIR     (exits 77 without the gguf package)
"""
import os
import subprocess
import sys

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize, quantize
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_numpy import read_safetensors  # noqa: E402

binary, work = sys.argv[1], sys.argv[2]
C, I, H, KV, V, L = 64, 96, 4, 2, 300, 2
hd = C // H
rng = np.random.default_rng(0)
types = [gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1,
         gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16, gguf.GGMLQuantizationType.F32]
path = os.path.join(work, "tiny.gguf")
w = gguf.GGUFWriter(path, "llama")
w.add_block_count(L); w.add_context_length(128); w.add_embedding_length(C); w.add_feed_forward_length(I)
w.add_head_count(H); w.add_head_count_kv(KV); w.add_layer_norm_rms_eps(1e-5); w.add_rope_freq_base(10000.0)
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("default")
tokens = [bytes([b]).decode("latin-1") for b in range(256)] + ["<s>", "</s>", "ab", "abc"] + [f"<x{i}>" for i in range(V - 260)]
w.add_token_list(tokens); w.add_token_types([1] * 256 + [3, 3, 1, 1] + [4] * (V - 260)); w.add_token_merges(["a b", "ab c"])
w.add_bos_token_id(256); w.add_eos_token_id(257)
expected = {}
n = 0
def add(gguf_name, hf_name, shape, permute_heads=None):
    global n
    kind = types[n % len(types)] if len(shape) == 2 else gguf.GGMLQuantizationType.F32
    n += 1
    x = rng.standard_normal(shape).astype(np.float32)
    data = quantize(x, kind) if kind not in (gguf.GGMLQuantizationType.F32,) else x
    w.add_tensor(gguf_name, data, raw_dtype=kind)
    ref = np.asarray(dequantize(data, kind), dtype=np.float32).reshape(shape)
    if permute_heads:
        ref = ref.reshape(permute_heads, shape[0] // permute_heads // 2, 2, shape[1]).swapaxes(1, 2).reshape(shape)
    expected[hf_name] = ref
add("token_embd.weight", "model.embed_tokens.weight", (V, C))
for l in range(L):
    p, q = f"blk.{l}.", f"model.layers.{l}."
    add(p + "attn_q.weight", q + "self_attn.q_proj.weight", (C, C), H)
    add(p + "attn_k.weight", q + "self_attn.k_proj.weight", (KV * hd, C), KV)
    add(p + "attn_v.weight", q + "self_attn.v_proj.weight", (KV * hd, C))
    add(p + "attn_output.weight", q + "self_attn.o_proj.weight", (C, C))
    add(p + "ffn_gate.weight", q + "mlp.gate_proj.weight", (I, C))
    add(p + "ffn_up.weight", q + "mlp.up_proj.weight", (I, C))
    add(p + "ffn_down.weight", q + "mlp.down_proj.weight", (C, I))
    add(p + "attn_norm.weight", q + "input_layernorm.weight", (C,))
    add(p + "ffn_norm.weight", q + "post_attention_layernorm.weight", (C,))
add("output_norm.weight", "model.norm.weight", (C,))
add("output.weight", "lm_head.weight", (V, C))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

out = os.path.join(work, "tiny-hf")
subprocess.run([binary, "convert", "--from", path, "--out", out, "--force"], check=True, capture_output=True)
mine = read_safetensors(os.path.join(out, "model.safetensors"))
worst = max(np.abs(mine[k] - expected[k]).max() for k in expected)
missing = set(expected) ^ set(mine)
print(f"GGUF quantised types: {len(expected)} tensors, max |redi-ps - gguf.dequantize| = {worst:.3g}, name mismatches: {sorted(missing)}")
sys.exit(0 if worst == 0 and not missing else 1)
