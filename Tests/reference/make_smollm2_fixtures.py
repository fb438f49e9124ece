#!/usr/bin/env python3
"""Regenerates smollm2_fixtures.json from Hugging Face transformers (needs torch,
transformers, gguf): token ids of a varied text set and chat renderings of SmolLM2-135M-
Instruct's own tokenizer and template, read by transformers from the GGUF file.

usage: make_smollm2_fixtures.py MODEL.gguf > Tests/reference/smollm2_fixtures.json
"""
import json
import os
import sys

from transformers import AutoTokenizer

path = sys.argv[1]
tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path))
texts = [
    "Hello world!", "  leading spaces\tand tabs\n\nnewlines   \n", "numbers 1234567 and 3.14159, -42 and 1,000,000",
    "ünïcödé 日本語 中文 한국어 Ελληνικά кириллица 🙂🚀 emoji", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "don't you'll we've I'M they'RE", "a  b   c    d\n\n\n e", "x\n \n y\r\n z", "!!!???...---___", "$100.00 (approx.) #tag @user",
    "def f(x):\n    return x**2  # square\n", "https://example.com/path?q=1&r=two", "<|endoftext|>after end", "   ",
]
conversations = [
    ([{"role": "user", "content": "What is 7 times 8?"}], True),
    ([{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Hi"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
      {"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "Why did the chicken cross the road?"}], False),
]
print(json.dumps({
    "tokenizer": [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts],
    "chat": [{"messages": m, "add_generation_prompt": g, "text": tok.apply_chat_template(m, tokenize=False, add_generation_prompt=g)}
             for m, g in conversations],
}, ensure_ascii=False, indent=1))
