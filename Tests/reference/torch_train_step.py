#!/usr/bin/env python3
"""Forward+backward throughput of PyTorch eager (transformers' LlamaForCausalLM, fp32, SDPA
attention) on the shape `redi-bench step` measures: SmolLM2-135M's configuration with random
weights, RECORDS random sequences of LENGTH tokens, loss = mean NLL of every token after the
first, backward into every parameter, torch's intra-op threads = THREADS. The first step is a
warm-up; the median of REPEATS steps counts. Prints one line:
    pytorch eager step: <tokens/s> tokens/s (...)
Usage: torch_train_step.py --records 4 --length 256 --repeats 3 --threads 2
"""
import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=4)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rms_norm_eps=1e-5,
                         rope_theta=100000, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).float()
    model.train()
    ids = torch.randint(3, config.vocab_size, (a.records, a.length))
    times = []
    for i in range(a.repeats + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        dt = time.perf_counter() - t0
        if i > 0:
            times.append(dt)
    median = statistics.median(times)
    tokens = a.records * a.length
    print(f"pytorch eager step: {tokens / median:.1f} tokens/s ({a.records} records x {a.length} tokens, median of {a.repeats} "
          f"steps {median:.3f} s, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"BLAS {torch.backends.mkl.is_available() and 'MKL' or 'not MKL'})")


if __name__ == "__main__":
    main()
