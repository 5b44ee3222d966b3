#!/usr/bin/env python3
"""Makes smollm2-fuzz.json: random strings mixing the characters pre-tokenizers
treat specially, with the ids llama.cpp (llama-cpp-python 0.3.36, installed in
$EDGEAI_CACHE/llama-cpp-python) gives for the SmolLM2 vocabulary, without and
with special-token parsing. Not run by CI; the output is checked in.

usage: python3 make-fuzz-fixture.py > smollm2-fuzz.json
"""
import json, os, random, sys

cache = os.environ.get("EDGEAI_CACHE") or os.path.expanduser("~/.cache/edgeai")
sys.path.insert(0, os.path.join(cache, "llama-cpp-python"))
import llama_cpp  # noqa: E402

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\n", "\r\n", "\t",
    "'", "'s", "'T", "'re", "'LL", "'ve", "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~", "äöüßéèêçñÅØæ",
    "нещоБългарски", "日本語のテキスト我想在工作", "한국어", "\u0301\u0308\u0327", "١٢٣", "²³½Ⅻ",
    "🦙🚀😶\u200d🌫️✅", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028", "“”‘’—…", "！＂＃（）：；",
    "ｆｕｌｌ", "กขค", "\u200b", "\x00\x01\x1f\x7f", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "<reponame>", "\U0001D400", "\U0001F9D1\U0001F3FD", "ǅ", "ʰ",
]


def rand_string(rng):
    n = rng.randint(1, 12)
    return "".join(rng.choice(rng.choice(POOLS)) if rng.random() < 0.5 else rng.choice(POOLS) for _ in range(n))


def main():
    rng = random.Random(2024)
    model = os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    cases = []
    for _ in range(300):
        s = rand_string(rng)
        b = s.encode("utf-8")
        cases.append({
            "text": s,
            "ids": llm.tokenize(b, add_bos=False, special=False),
            "ids_special": llm.tokenize(b, add_bos=False, special=True),
        })
    source = ("llama.cpp via llama-cpp-python 0.3.36, SmolLM2-135M-Instruct vocabulary; "
              "ids: tokenize(add_special=False, parse_special=False), ids_special: parse_special=True")
    lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases]
    sys.stdout.write('{"source":' + json.dumps(source) + ',\n"cases":[\n' + ",\n".join(lines) + "\n]}\n")


main()
