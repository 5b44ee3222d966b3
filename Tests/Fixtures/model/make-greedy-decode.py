#!/usr/bin/env python3
"""llama.cpp greedy references in its decode arithmetic, for the SmolLM2 Q8_0 fixtures.

EdgeAI evaluates every token with llama.cpp's single-token (decode) arithmetic whatever the
batch, so that a token's logits do not depend on how the prompt was split. llama.cpp itself
uses other kernels for batches (tinyBLAS f16 attention), so its batch-prompt greedy text is not
ours bit for bit; its one-token-per-llama_decode text is. This script recomputes, for the prompt
ids already in the fixtures, with one token per llama_decode from an empty cache (n_ctx 128, flash
attention off, 2 threads):
  Tests/Fixtures/model/greedy-llama-cpp.json: top_logits_after_prompt (the same 5 token ids),
      greedy_ids, greedy_text, greedy_top2_margins (32 tokens, end of sequence ignored)
  Tests/Fixtures/api/smollm2-q8_0-greedy.json: greedy_ids, greedy_text
and records the protocol in their "source" fields.

Usage: Tests/Fixtures/model/make-greedy-decode.py [--model GGUF]
Needs llama-cpp-python in ~/.cache/edgeai/llama-cpp-python (Benchmarks/compare.py installs it).
"""
import argparse
import ctypes
import hashlib
import json
import os
import sys

N_GEN = 32


def cache_dir():
    return os.environ.get("EDGEAI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeai")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(cache_dir(), "models", "smollm2-135m-instruct-q8_0.gguf"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(cache_dir(), "llama-cpp-python"))
    import llama_cpp as L  # noqa: E402

    cb = L.llama_log_callback(lambda level, text, user: None)
    L.llama_log_set(cb, ctypes.c_void_p())
    L.llama_backend_init()
    model = L.llama_model_load_from_file(args.model.encode(), L.llama_model_default_params())
    if not model:
        sys.exit(f"cannot load {args.model}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    def piece(t):
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(vocab, t, buf, 256, 0, False)
        return buf.raw[:n]

    def run(prompt_ids, top_ids):
        cp = L.llama_context_default_params()
        cp.n_ctx = 128
        cp.n_batch = 1
        cp.n_ubatch = 1
        cp.n_threads = 2
        cp.n_threads_batch = 2
        cp.flash_attn_type = 0
        ctx = L.llama_init_from_model(model, cp)
        batch = L.llama_batch_init(1, 0, 1)

        def feed(t, pos):
            batch.token[0] = t
            batch.pos[0] = pos
            batch.n_seq_id[0] = 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = 1
            batch.n_tokens = 1
            if L.llama_decode(ctx, batch) != 0:
                sys.exit("llama_decode failed")
            p = L.llama_get_logits_ith(ctx, 0)
            return [p[j] for j in range(n_vocab)]

        for i, t in enumerate(prompt_ids):
            logits = feed(t, i)
        top = [[t, round(logits[t], 4)] for t in top_ids]
        ids, margins = [], []
        pos = len(prompt_ids)
        for _ in range(N_GEN):
            order = sorted(range(n_vocab), key=lambda j: -logits[j])[:2]
            ids.append(order[0])
            margins.append(round(logits[order[0]] - logits[order[1]], 4))
            if len(ids) == N_GEN:
                break
            logits = feed(order[0], pos)
            pos += 1
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        text = b"".join(piece(t) for t in ids).decode("utf-8", "replace")
        return top, ids, text, margins

    protocol = (f"llama.cpp via llama-cpp-python 0.3.36 (flash attention off), one token per llama_decode "
                f"(its decode arithmetic, which EdgeAI uses for every batch size), on "
                f"{os.path.basename(args.model)} (sha256 {sha[:8]}...{sha[-5:]}); made by "
                f"Tests/Fixtures/model/make-greedy-decode.py")
    path = os.path.join(here, "greedy-llama-cpp.json")
    with open(path) as f:
        fx = json.load(f)
    for p in fx["prompts"]:
        top, ids, text, margins = run(p["prompt_ids"], [t for t, _ in p["top_logits_after_prompt"]])
        p.update({"top_logits_after_prompt": top, "greedy_ids": ids, "greedy_text": text, "greedy_top2_margins": margins})
    fx["source"] = protocol + ": prompt ids, top-5 logits after the prompt, 32-token greedy continuation " \
        "(argmax, end of sequence ignored) and the top-2 logit margin at each generated position"
    with open(path, "w") as f:
        json.dump(fx, f, indent=1, ensure_ascii=False)
        f.write("\n")
    path = os.path.join(here, "..", "api", "smollm2-q8_0-greedy.json")
    with open(path) as f:
        fx = json.load(f)
    for c in fx["cases"]:
        _, ids, text, _ = run(c["prompt_ids"], [])
        c.update({"greedy_ids": ids, "greedy_text": text})
    fx["source"] = protocol + ": 32-token greedy continuation of each case's prompt ids (end of sequence ignored)"
    with open(path, "w") as f:
        json.dump(fx, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("make-greedy-decode: wrote greedy-llama-cpp.json and ../api/smollm2-q8_0-greedy.json", file=sys.stderr)


if __name__ == "__main__":
    main()
