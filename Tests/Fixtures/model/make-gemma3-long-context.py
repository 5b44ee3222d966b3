#!/usr/bin/env python3
"""Writes gemma3-long-context.llama-cpp.json: a prompt longer than Gemma 3's 512-token sliding
window (BOS + the first 700 tokens of /usr/share/common-licenses/GPL-3, tokenized by llama.cpp)
and llama.cpp's 16-token greedy continuation of it (prompt as one batch, then one token per decode,
flash attention off, 2 threads).

Run by a person, not by the tests: needs llama-cpp-python 0.3.36 (Benchmarks/compare.py installs
it into $EDGEAI_CACHE/llama-cpp-python) and the model (bash Models/fetch.sh @cf/google/gemma-3-270m).
Usage: python3 Tests/Fixtures/model/make-gemma3-long-context.py > Tests/Fixtures/model/gemma3-long-context.llama-cpp.json
"""
import ctypes, json, os, sys

cache = os.environ.get("EDGEAI_CACHE") or os.path.expanduser("~/.cache/edgeai")
sys.path.insert(0, os.path.join(cache, "llama-cpp-python"))
import llama_cpp as L  # noqa: E402

PROMPT_TOKENS, GENERATE = 700, 16
model_path = os.path.join(cache, "models", "gemma-3-270m-q4_k_m.gguf")
cb = L.llama_log_callback(lambda level, text, user: None)
L.llama_log_set(cb, ctypes.c_void_p())
L.llama_backend_init()
model = L.llama_model_load_from_file(model_path.encode(), L.llama_model_default_params())
vocab = L.llama_model_get_vocab(model)
text = open("/usr/share/common-licenses/GPL-3", "rb").read()
buf = (L.llama_token * (len(text) + 16))()
n = L.llama_tokenize(vocab, text, len(text), buf, len(buf), True, False)
prompt = list(buf[:PROMPT_TOKENS])
cp = L.llama_context_default_params()
cp.n_ctx = 1024
cp.n_batch = 1024
cp.n_ubatch = 1024
cp.n_threads = cp.n_threads_batch = 2
cp.flash_attn_type = 0
ctx = L.llama_init_from_model(model, cp)
n_vocab = L.llama_vocab_n_tokens(vocab)

def argmax_last():
    row = L.llama_get_logits_ith(ctx, -1)
    return max(range(n_vocab), key=lambda i: row[i])

arr = (L.llama_token * len(prompt))(*prompt)   # kept alive while llama_decode reads it
rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(prompt)))
assert rc == 0, "llama_decode returned %d" % rc
out = [argmax_last()]
while len(out) < GENERATE:
    tok = (L.llama_token * 1)(out[-1])
    rc = L.llama_decode(ctx, L.llama_batch_get_one(tok, 1))
    assert rc == 0, "llama_decode returned %d" % rc
    out.append(argmax_last())
json.dump({"source": "llama.cpp via llama-cpp-python 0.3.36 (flash attention off, 2 threads) on gemma-3-270m-q4_k_m.gguf: "
                     "BOS + the first %d tokens of GPL-3 as one batch, then %d greedy tokens" % (PROMPT_TOKENS - 1, GENERATE),
           "prompt_ids": prompt, "greedy_ids": out}, sys.stdout, indent=1)
print()
