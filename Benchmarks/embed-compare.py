#!/usr/bin/env python3
"""Sentence embeddings per second: llama.cpp (llama-cpp-python 0.3.36) and our `bench embed` on the
same GGUF file, same threads, same 32 sentences, one run.

llama.cpp: Llama(embedding=True, pooling_type=MEAN, n_threads=T), embed(texts, normalize=True):
batch 1 = one call per sentence, batch 32 = one call with all 32 (llama-cpp-python packs them as
32 sequences of one llama_decode). Each: a warm-up, then the median of -r runs.

Usage: PYTHONPATH=~/.cache/edgeai/llama-cpp-python Benchmarks/embed-compare.py [--model GGUF] [-t 2] [-r 5]
       [--bench .build/release/bench]
"""
import argparse, json, os, re, statistics, subprocess, sys, time

def sentences(bench_source):
    # The sentences of `bench embed` (Benchmarks/bench/Bench.swift, struct Embed), so both sides run the same text.
    src = open(bench_source, encoding="utf-8").read()
    block = src[src.index("static let sentences: [String] = ["):]
    block = block[:block.index("]\n")]
    return [json.loads(s) for s in re.findall(r'^\s*("(?:[^"\\]|\\.)*"),\s*$', block, re.M)]

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    cache = os.environ.get("EDGEAI_CACHE") or os.path.expanduser("~/.cache/edgeai")
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(cache, "models", "all-minilm-l6-v2-f32.gguf"))
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("--ctx", type=int, default=512, help="llama.cpp n_ctx = n_batch = n_ubatch (the 32 sentences must fit in one batch)")
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(here), ".build", "release", "bench"))
    a = ap.parse_args()
    texts = sentences(os.path.join(here, "bench", "Bench.swift"))
    assert len(texts) == 32, len(texts)

    sys.path.insert(0, os.path.join(cache, "llama-cpp-python"))
    from llama_cpp import Llama, LLAMA_POOLING_TYPE_MEAN
    m = Llama(model_path=a.model, embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN, n_threads=a.t,
              n_threads_batch=a.t, n_ctx=a.ctx, n_batch=a.ctx, n_ubatch=a.ctx, verbose=False)
    m.embed(texts, normalize=True)  # warm-up
    llama = {}
    for b in (1, 32):
        rates = []
        for _ in range(a.r):
            t0 = time.perf_counter()
            for i in range(0, 32, b):
                m.embed(texts[i:i + b], normalize=True)
            rates.append(32 / (time.perf_counter() - t0))
        llama[b] = statistics.median(rates)
    del m

    out = subprocess.run([a.bench, "embed", "--model", a.model, "-t", str(a.t), "-r", str(a.r), "--json"],
                         check=True, capture_output=True, text=True).stdout
    ours = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1])["sentences_per_second"].items()}
    print(f"model {os.path.basename(a.model)}, {a.t} threads, 32 sentences, median of {a.r}")
    print("batch   llama.cpp sent/s   ours sent/s   ours/llama.cpp")
    for b in (1, 32):
        print(f"{b:5d}   {llama[b]:16.1f}   {ours[b]:11.1f}   {ours[b] / llama[b]:13.2f}x")

main()
