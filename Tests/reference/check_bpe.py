"""Byte-level BPE against Hugging Face's `tokenizers`, with no model download: trains small
tokenizers with each pre-tokenizer redi-ps implements (GPT-2, SmolLM2's individual digits,
Qwen2's split pattern) on a mixed corpus, saves them as tokenizer.json, and checks that
`redi-ps tokenize` gives the ids `tokenizers` gives and `redi-ps detokenize` the text back.
    python3 check_bpe.py REDI_PS_BINARY WORK_DIR
Exit 77 when `tokenizers` is not installed (cluster/tools/install-deps.sh installs it)."""
import json
import os
import subprocess
import sys

try:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
except ImportError:
    print("skip: tokenizers is not installed")
    sys.exit(77)

QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 12:30 and we've got 3 apples.",
    "def add(a, b):\n    return a + b  # they'll add 1234567 + 89\n\n",
    "Question: what is 17*23? Let's think step by step. 17*23 = 391. Answer: 391",
    "Ünïcödé tëxt, 日本語のテキスト, emoji 🙂🚀, and Ελληνικά; I'M SHOUTING, YOU'RE NOT.",
    "   leading spaces, trailing spaces   \ttabs\t\r\nwindows lines\r\nand\n\n\nblank ones",
    "$100.50 costs 10% more than 3.14159... (approximately) [citation needed] {json: true}",
] * 20

TEXTS = [
    "Hello world", " Hello  world ", "It's we'll they've I'd you're SHE'S", "12345 + 678 = 13023",
    "x1 y22 z333", "tabs\tand\nnewlines\r\n\r\n end", "   ", "", "日本語 🙂 Ünïcödé", "a\n\n\nb",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "Answer: 4<|endoftext|>",
    "don't DON'T Don'T", "!!! ??? ... ---", "naïve café résumé", "line one\n  indented two\n\ttab three",
    "3.14159 and 2.71828", "mixed123text456", "'s 't 're", "unknownwordsneverseenbefore xyzzy",
]


def build(kind, path):
    tok = Tokenizer(models.BPE())
    if kind == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif kind == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2), behavior="isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    os.makedirs(path, exist_ok=True)
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|im_start|>", "eos_token": "<|endoftext|>", "add_bos_token": False}, f)
    return tok


def run(binary, *args):
    # Bytes, not text mode: universal newlines would turn the output's \r\n into \n.
    r = subprocess.run([binary, *args], capture_output=True)
    if r.returncode != 0:
        sys.exit("%s %s failed: %s" % (binary, " ".join(args), r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode("utf-8")


def main(binary, work):
    checked = 0
    for kind in ["gpt2", "smollm", "qwen2"]:
        path = os.path.join(work, "bpe-" + kind)
        tok = build(kind, path)
        for i, text in enumerate(TEXTS):
            f = os.path.join(work, "text-%s-%d.txt" % (kind, i))
            with open(f, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            expected = tok.encode(text, add_special_tokens=False).ids
            got = json.loads(run(binary, "tokenize", "--model", path, "--file", f))["ids"]
            if got != expected:
                sys.exit("%s: %r\n  tokenizers: %s\n  redi-ps:    %s" % (kind, text, expected, got))
            if expected:
                back = run(binary, "detokenize", "--model", path, json.dumps(expected))
                if back[:-1] != text:  # the CLI ends its output with one newline
                    sys.exit("%s: detokenize %r gave %r" % (kind, text, back))
            checked += 1
    print("ok: %d texts × 3 pre-tokenizers match tokenizers %s" % (checked // 3, __import__("tokenizers").__version__))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
