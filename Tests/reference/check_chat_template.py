#!/usr/bin/env python3
"""Renders chat templates with Jinja2 configured as transformers configures it
(sandboxed, trim_blocks, lstrip_blocks, tojson without ASCII escaping) and compares with
`redi-ps render --template`.

usage: check_chat_template.py REDI_PS TEMPLATE.jinja [TEMPLATE.jinja ...]
Exits 77 when jinja2 is missing (the caller skips).
"""
import json
import subprocess
import sys

try:
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)

CONVERSATIONS = [
    [{"role": "user", "content": "What is 7 times 8?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Weather?"}],
    [{"role": "user", "content": "Line one\n  indented\nünïcode 🙂 \"quoted\""}],
    [{"role": "user", "content": "Add 2 and 3"},
     {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]},
     {"role": "tool", "content": "5"}, {"role": "tool", "content": "done"}, {"role": "assistant", "content": "It is 5."}],
]


def jinja_render(source, messages, add_generation_prompt):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    def raise_exception(message):
        raise RuntimeError(message)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source).render(messages=messages, add_generation_prompt=add_generation_prompt)


def main():
    binary, templates = sys.argv[1], sys.argv[2:]
    failures = 0
    checked = 0
    for path in templates:
        source = open(path).read()
        for messages in CONVERSATIONS:
            for gen in (False, True):
                want = jinja_render(source, messages, gen)
                args = [binary, "render", "--template", path, "--messages", json.dumps(messages)] + (["--add-generation-prompt"] if gen else [])
                got = subprocess.run(args, capture_output=True, text=True)
                checked += 1
                if got.returncode != 0 or got.stdout != want:
                    failures += 1
                    print(f"MISMATCH {path} gen={gen}\n--- jinja2:\n{want!r}\n--- redi-ps:\n{got.stdout!r}\n{got.stderr}")
    print(f"chat templates: {checked - failures}/{checked} renderings identical to Jinja2")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
