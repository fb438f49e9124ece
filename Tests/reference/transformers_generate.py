#!/usr/bin/env python3
"""Sampling throughput of Hugging Face `transformers` generate() on a checkpoint, shaped like
`redi-bench generate`: PROMPTS random prompts of PROMPT_TOKENS tokens, SAMPLES samples each,
BATCH rows decoded together (BATCH / SAMPLES prompts per generate() call), every sample exactly
TOKENS new tokens (min_new_tokens = max_new_tokens, so both sides do the same work), temperature
0.6, top-p 0.95, fp32, torch's intra-op threads = THREADS. Prints one line:
    transformers generate: <tokens/s> tokens/s (...)
Usage: transformers_generate.py CHECKPOINT --batch 32 --samples 4 --prompts 16 --tokens 128 --prompt-tokens 64 --threads 2
"""
import argparse
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if a.batch % a.samples or a.prompts % (a.batch // a.samples):
        sys.exit("--batch must be a multiple of --samples and --prompts a multiple of batch/samples")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.checkpoint, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    per_call = a.batch // a.samples
    prompts = torch.randint(3, vocab, (a.prompts, a.prompt_tokens))

    def run(ids, tokens):
        return model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.6, top_p=0.95,
                              max_new_tokens=tokens, min_new_tokens=tokens, num_return_sequences=a.samples,
                              pad_token_id=model.config.eos_token_id)

    with torch.inference_mode():
        run(prompts[:per_call], 4)  # warm-up: allocations, kernels
        produced, start = 0, time.perf_counter()
        for i in range(0, a.prompts, per_call):
            out = run(prompts[i:i + per_call], a.tokens)
            produced += (out.shape[1] - a.prompt_tokens) * out.shape[0]
        seconds = time.perf_counter() - start
    print(f"transformers generate: {produced / seconds:.1f} tokens/s ({a.prompts} prompts x {a.samples} samples, batch {a.batch}, "
          f"{produced} new tokens after {a.prompt_tokens}-token prompts in {seconds:.1f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, fp32)")


if __name__ == "__main__":
    main()
