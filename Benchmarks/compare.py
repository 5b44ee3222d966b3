#!/usr/bin/env python3
"""Speed of llama.cpp and of our `bench speed` on the same GGUF file, same thread count, one run.

llama.cpp is measured through llama-cpp-python's low-level API (llama.cpp's C API) the way
llama-bench measures it: pp = one batch of -p tokens into an empty KV cache with logits for the
last token only; tg = -n single-token decodes from an empty cache; a warm-up run of each first;
tokens/s as mean ± sample sd over -r repetitions. Then our `bench speed --json` runs with the same
settings, and both results and the ratios (ours / llama.cpp) are printed.

llama-cpp-python (0.3.36, compiled natively by pip, ~10 min on 2 cores) is installed into
$EDGEAI_CACHE/llama-cpp-python (default ~/.cache/edgeai) when it is missing.

With --ttft N: time to first token of a chat prompt of about N tokens through our AI.run (`bench
ttft`: template, tokenizer, prefill, first token; median over -r runs from an empty cache) against
llama.cpp's prompt time for as many tokens (one llama_decode of that many random ids, median).

Usage: Benchmarks/compare.py [--model GGUF] [-p 512] [-n 128] [-t 2] [-r 5] [--bench PATH]
       [--flash-attn auto|on|off] [--order llama-first|ours-first] [--rounds K] [--ttft N] [--json]

With --rounds K (default 1), both are measured K times, the order alternating, and the table gives
medians over the rounds and the median of the rounds' ratios (the machines are shared and noisy:
a single round can be off by 20% either way).
"""
import argparse
import ctypes
import json
import math
import statistics
import os
import random
import resource
import subprocess
import sys
import time

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"


def cache_dir():
    return os.environ.get("EDGEAI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeai")


def import_llama_cpp():
    target = os.path.join(cache_dir(), "llama-cpp-python")
    if not os.path.isdir(os.path.join(target, "llama_cpp")):
        print(f"compare: installing {LLAMA_CPP_PYTHON} into {target} (compiles llama.cpp, ~10 min)",
              file=sys.stderr)
        os.makedirs(target, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", target,
                        LLAMA_CPP_PYTHON], check=True, env=env,
                       stdout=sys.stderr)
    sys.path.insert(0, target)
    import llama_cpp  # noqa: E402
    return llama_cpp


def stats(samples):
    mean = sum(samples) / len(samples)
    sd = math.sqrt(sum((s - mean) ** 2 for s in samples) / (len(samples) - 1)) if len(samples) > 1 else 0.0
    return mean, sd


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_llama_cpp(args):
    """llama.cpp in this process; returns (results, peak RSS in MiB of this process, the
    Python interpreter's own peak before llama.cpp was loaded)."""
    L = import_llama_cpp()
    baseline = peak_rss_mib()
    # Silence llama.cpp's logging (keep a reference to the callback for the process lifetime).
    global _log_cb
    _log_cb = L.llama_log_callback(lambda level, text, user: None)
    L.llama_log_set(_log_cb, ctypes.c_void_p())
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    model = L.llama_model_load_from_file(args.model.encode(), mparams)
    if not model:
        sys.exit(f"compare: llama.cpp could not load {args.model}")
    cparams = L.llama_context_default_params()
    cparams.n_ctx = args.p + args.n          # llama-bench: n_ctx = n_prompt + n_gen
    cparams.n_batch = max(args.p, 1)
    cparams.n_ubatch = max(min(args.p, 512), 1)
    cparams.n_threads = args.t
    cparams.n_threads_batch = args.t
    fa = {"auto": -1, "off": 0, "on": 1}[args.flash_attn]
    cparams.flash_attn_type = fa
    ctx = L.llama_init_from_model(model, cparams)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    mem = L.llama_get_memory(ctx)
    rng = random.Random(1234)

    def prompt(n):
        toks = (L.llama_token * n)(*[rng.randrange(n_vocab) for _ in range(n)])
        L.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        L.llama_decode(ctx, L.llama_batch_get_one(toks, n))
        L.llama_synchronize(ctx)
        return time.perf_counter() - t0

    def gen(n):
        L.llama_memory_clear(mem, True)
        tok = (L.llama_token * 1)(rng.randrange(n_vocab))
        t0 = time.perf_counter()
        for _ in range(n):
            L.llama_decode(ctx, L.llama_batch_get_one(tok, 1))
            L.llama_synchronize(ctx)
            tok[0] = rng.randrange(n_vocab)
        return time.perf_counter() - t0

    results = []
    if args.p > 0:
        prompt(args.p)  # warm-up
        samples = [args.p / prompt(args.p) for _ in range(args.r)]
        results.append({"n_prompt": args.p, "n_gen": 0, "n_threads": args.t, "samples_ts": samples})
    if args.n > 0:
        gen(1)  # warm-up
        samples = [args.n / gen(args.n) for _ in range(args.r)]
        results.append({"n_prompt": 0, "n_gen": args.n, "n_threads": args.t, "samples_ts": samples})
    for r in results:
        r["avg_ts"], r["stddev_ts"] = stats(r["samples_ts"])
    rss = peak_rss_mib()
    L.llama_free(ctx)
    L.llama_model_free(model)
    return results, rss, baseline


def run_ours(args):
    """Our bench in a child process; returns (results, that process's own peak RSS in MiB, as
    it reports it: the child's rusage would include this Python process's pages before exec)."""
    cmd = [args.bench, "speed", "--model", args.model, "-p", str(args.p), "-n", str(args.n),
           "-t", str(args.t), "-r", str(args.r), "--json"]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out, max(r.get("peak_rss_mib", 0) for r in out)


def ttft(args):
    cmd = [args.bench, "ttft", "--model", args.model, "-p", str(args.ttft), "-t", str(args.t), "-r", str(args.r), "--json"]
    rounds = []   # (ours, theirs) medians per round, the order alternating
    n = None
    for k in range(args.rounds):
        def mine():
            return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

        def llama(n):
            args.p, args.n = n, 0
            theirs, _, _ = run_llama_cpp(args)
            return statistics.median(n / ts for ts in theirs[0]["samples_ts"])

        if n is None or (args.order == "ours-first") == (k % 2 == 0):
            ours = mine()
            n = ours["prompt_tokens"]
            theirs_median = llama(n)
        else:
            theirs_median = llama(n)
            ours = mine()
        rounds.append((ours["ttft_seconds_median"], theirs_median))
        if args.rounds > 1:
            print(f"round {k + 1}/{args.rounds}: ttft ratio {rounds[-1][0] / rounds[-1][1]:.3f}", file=sys.stderr)
    ours_s = statistics.median(r[0] for r in rounds)
    theirs_median = statistics.median(r[1] for r in rounds)
    ratios = [a / b for a, b in rounds]
    ratio = statistics.median(ratios)
    if args.json:
        print(json.dumps({"model": args.model, "prompt_tokens": n, "ours_ttft_seconds": ours_s,
                          "llama_cpp_prompt_seconds": theirs_median, "ratio": ratio, "round_ratios": ratios}, indent=1))
        return
    print(f"model: {args.model}   threads: {args.t}   repetitions: {args.r}   rounds: {args.rounds}   llama.cpp flash_attn: {args.flash_attn}")
    print(f"chat prompt of {n} tokens: our time to first token through AI.run {ours_s * 1000:.1f} ms "
          f"(median), llama.cpp's prompt time for {n} tokens {theirs_median * 1000:.1f} ms (median); ours / llama.cpp = {ratio:.3f}"
          + (f" (median of the rounds: {' '.join(f'{x:.3f}' for x in ratios)})" if args.rounds > 1 else ""))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(cache_dir(), "models", "smollm2-135m-instruct-q8_0.gguf"))
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-t", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("--bench", default=None, help="our bench executable (default: build it with swift build -c release)")
    ap.add_argument("--scratch-path", default=os.path.join(root, ".build"), help="swift build scratch path")
    ap.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto",
                    help="llama.cpp flash attention (its default: auto)")
    ap.add_argument("--order", choices=["llama-first", "ours-first"], default="llama-first",
                    help="which runs first (in the first round; later rounds alternate)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure both this many times, alternating the order; report medians (default 1)")
    ap.add_argument("--json", action="store_true", help="print the combined results as JSON")
    ap.add_argument("--ttft", type=int, default=0, help="time to first token of a chat prompt of about this many tokens")
    args = ap.parse_args()
    if args.rounds < 1 or args.r < 1:
        sys.exit("compare: --rounds and -r must be at least 1")
    if not os.path.isfile(args.model):
        sys.exit(f"compare: model {args.model} not found (run Models/fetch.sh)")
    if args.bench is None:
        subprocess.run(["swift", "build", "-c", "release", "--product", "bench", "--scratch-path", args.scratch_path],
                       check=True, cwd=root, stdout=sys.stderr)
        args.bench = os.path.join(args.scratch_path, "release", "bench")

    if args.ttft > 0:
        return ttft(args)

    def name(r):
        return f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"

    # Rounds: each measures both (-r repetitions each), the order alternating from --order, so
    # that a slow spell of the shared machine hits both sides alike across rounds.
    per_test = {}   # test -> list of (theirs mean, theirs sd, ours mean, ours sd) per round
    theirs_rss = python_rss = ours_rss = 0
    for k in range(args.rounds):
        llama_first = (args.order == "llama-first") == (k % 2 == 0)
        if llama_first:
            theirs, theirs_rss, python_rss = run_llama_cpp(args)
            ours, ours_rss = run_ours(args)
        else:
            ours, ours_rss = run_ours(args)
            theirs, theirs_rss, python_rss = run_llama_cpp(args)
        for t in theirs:
            o = next((x for x in ours if x["n_prompt"] == t["n_prompt"] and x["n_gen"] == t["n_gen"]), None)
            if o is not None:
                per_test.setdefault(name(t), []).append((t["avg_ts"], t["stddev_ts"], o["avg_ts"], o["stddev_ts"]))
        if args.rounds > 1:
            print(f"round {k + 1}/{args.rounds} ({'llama.cpp' if llama_first else 'ours'} first): " +
                  ", ".join(f"{n} {v[-1][2] / v[-1][0]:.3f}" for n, v in per_test.items()), file=sys.stderr)

    rows = []
    for test, v in per_test.items():
        ratios = [o / t for t, _, o, _ in v]
        if len(v) == 1:
            t, tsd, o, osd = v[0]
        else:   # medians over rounds; the spread is the range of the rounds' means
            t, o = statistics.median(x[0] for x in v), statistics.median(x[2] for x in v)
            tsd = (max(x[0] for x in v) - min(x[0] for x in v)) / 2
            osd = (max(x[2] for x in v) - min(x[2] for x in v)) / 2
        rows.append({"test": test, "n_threads": args.t, "llama_cpp_ts": t, "llama_cpp_sd": tsd,
                     "ours_ts": o, "ours_sd": osd, "ratio": statistics.median(ratios), "round_ratios": ratios})
    if args.json:
        print(json.dumps({"model": args.model, "flash_attn": args.flash_attn, "rounds": args.rounds, "results": rows,
                          "peak_rss_mib": {"llama_cpp_process": theirs_rss, "python_before_llama_cpp": python_rss,
                                           "ours": ours_rss}}, indent=1))
        return
    print(f"model: {args.model}   threads: {args.t}   repetitions: {args.r}   rounds: {args.rounds}   "
          f"llama.cpp flash_attn: {args.flash_attn}")
    if args.rounds > 1:
        print("(t/s: median over rounds of each round's mean, ± half the range of the rounds; ratio: median of the "
              "rounds' ratios)")
    print("| test   |      llama.cpp t/s |           ours t/s | ours / llama.cpp |" + (" rounds |" if args.rounds > 1 else ""))
    print("| ------ | -----------------: | -----------------: | ---------------: |" + (" ------ |" if args.rounds > 1 else ""))
    for r in rows:
        extra = (" " + " ".join(f"{x:.2f}" for x in r["round_ratios"]) + " |") if args.rounds > 1 else ""
        print(f"| {r['test']:<6} | {r['llama_cpp_ts']:8.2f} ± {r['llama_cpp_sd']:7.2f} | "
              f"{r['ours_ts']:8.2f} ± {r['ours_sd']:7.2f} | {r['ratio']:16.3f} |" + extra)
    print(f"peak RSS: llama.cpp {theirs_rss:.0f} MiB (its Python process; {python_rss:.0f} MiB before llama.cpp was "
          f"loaded), ours {ours_rss:.0f} MiB")


if __name__ == "__main__":
    main()
