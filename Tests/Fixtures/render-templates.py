#!/usr/bin/env python3
"""Renders llama.cpp's chat templates with Python jinja2, configured the way Hugging Face
transformers' apply_chat_template configures it, and prints the expected outputs as JSON.

usage: python3 render-templates.py <templates-dir> <conversations.json>  > expected.json

Settings (the Swift tests use the same ones):
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
  globals raise_exception(msg), strftime_now(fmt) with the clock fixed at 2024-07-26T12:00:00
  filter tojson = json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
  variables: messages, add_generation_prompt (tools and documents not given: undefined),
             bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
Every template x conversation x add_generation_prompt(true, false) gives one case; a case whose
rendering raises is recorded with "error" instead of "expected" (the Swift renderer must fail too).
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime.datetime(2024, 7, 26, 12, 0, 0)
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: render-templates.py <templates-dir> <conversations.json>")
    tdir, conv_path = sys.argv[1], sys.argv[2]
    with open(conv_path, encoding="utf-8") as f:
        conversations = json.load(f)
    env = make_env()
    cases = []
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".jinja"):
            continue
        with open(os.path.join(tdir, name), encoding="utf-8") as f:
            source = f.read()
        try:
            template = env.from_string(source)
            compile_error = None
        except Exception as e:  # syntax errors: every case of this template is an expected failure
            template, compile_error = None, "compile: %s: %s" % (type(e).__name__, e)
        for ci, conv in enumerate(conversations):
            for agp in (True, False):
                case = {"template": name, "conversation": ci, "add_generation_prompt": agp}
                if template is None:
                    case["error"] = compile_error
                else:
                    try:
                        case["expected"] = template.render(
                            messages=conv["messages"], add_generation_prompt=agp, **SPECIAL_TOKENS)
                    except Exception as e:
                        case["error"] = "%s: %s" % (type(e).__name__, e)
                cases.append(case)
    out = {
        "renderer": "jinja2 %s configured like transformers apply_chat_template; bos_token=<s> eos_token=</s> "
                    "unk_token=<unk> pad_token=<pad>; no tools/documents; strftime_now fixed at %s"
                    % (jinja2.__version__, FIXED_NOW.isoformat()),
        "fixed_now": FIXED_NOW.isoformat(),
        "special_tokens": SPECIAL_TOKENS,
        "conversations": conversations,
        "cases": cases,
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
