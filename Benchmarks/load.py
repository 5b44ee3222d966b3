#!/usr/bin/env python3
"""Concurrent-client load: aggregate tokens/s and latency of our worker beside llama-server.

    python3 Benchmarks/load.py                          # clients 1,2,4,8,16 on both servers
    python3 Benchmarks/load.py --clients 8 --skip-llama-server
    python3 Benchmarks/load.py --repeat 3                # 3 passes, the servers' order alternating

Starts `worker` (built with swift build -c release) with --parallel, waits for /health, then
for each client count runs that many threads, each sending --requests chat requests of
--tokens new tokens (temperature 0, a distinct prompt each, so no answer comes from a cache)
to /v1/chat/completions, and measures aggregate completion tokens per second of wall time and
per-request latency (p50, p95). Then the same against llama.cpp's `llama-server -np 4` on the
same GGUF file (built by Benchmarks/build-llama-server.sh), with the same route and bodies.
Only one server runs at a time. Python standard library only; prints a Markdown table.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("EDGEAI_CACHE", os.path.expanduser("~/.cache/edgeai"))
MODEL_ID = "@cf/huggingfacetb/smollm2-135m-instruct"
TOPICS = ["a lighthouse keeper", "a robot learning to paint", "the first city on Mars", "a dragon who hates gold",
          "a lost umbrella", "two rival bakers", "a train that never stops", "a cat that runs a library",
          "the last tree on Earth", "a time-travelling postman", "a shy volcano", "an astronaut's dog",
          "a detective snail", "a haunted piano", "a village under the sea", "a clock that runs backwards"]


def post(port, path, body, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def wait_health(port, proc, seconds=300):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("server did not become healthy")


def run_load(port, model, clients, requests, tokens, round_no):
    latencies, completion, errors = [], [], []
    lock = threading.Lock()

    def client(i):
        for k in range(requests):
            topic = TOPICS[(i + k * 7) % len(TOPICS)]
            body = {"model": model, "max_tokens": tokens, "temperature": 0,
                    "messages": [{"role": "user", "content": f"Write a long story about {topic}. (request {round_no}.{i}.{k})"}]}
            t0 = time.perf_counter()
            status, data = post(port, "/v1/chat/completions", body)
            dt = time.perf_counter() - t0
            with lock:
                if status != 200:
                    errors.append((status, data[:200]))
                    continue
                latencies.append(dt)
                completion.append(json.loads(data)["usage"]["completion_tokens"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else float("nan")
    return {"tps": sum(completion) / wall, "p50": statistics.median(lat) if lat else float("nan"), "p95": p95,
            "tokens": sum(completion), "requests": len(lat), "errors": errors, "wall": wall}


def bench_server(name, cmd, port, model, args):
    print(f"# {name}: {' '.join(cmd)}", file=sys.stderr)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_health(port, proc)
        post(port, "/v1/chat/completions", {"model": model, "max_tokens": 8, "temperature": 0,
                                            "messages": [{"role": "user", "content": "warm up"}]})
        out = {}
        for n in args.clients:
            runs = [run_load(port, model, n, args.requests, args.tokens, r) for r in range(args.rounds)]
            best = sorted(runs, key=lambda r: r["tps"])[len(runs) // 2]   # the median round
            out[n] = best
            errs = sum(len(r["errors"]) for r in runs)
            print(f"#   {n:2d} clients: {best['tps']:7.1f} tok/s, p50 {best['p50']:.2f} s, p95 {best['p95']:.2f} s, "
                  f"{best['tokens']} tokens in {best['requests']} requests, {errs} errors", file=sys.stderr)
            for r in runs:
                for e in r["errors"][:3]:
                    print(f"#     error {e}", file=sys.stderr)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="1,2,4,8,16", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--requests", type=int, default=2, help="requests per client per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per client count (the median round is reported)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=16, help="our worker's slots")
    ap.add_argument("--llama-parallel", type=int, default=4, help="llama-server -np")
    ap.add_argument("--model-file", default=os.path.join(CACHE, "models", "smollm2-135m-instruct-q8_0.gguf"))
    ap.add_argument("--skip-llama-server", action="store_true")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--repeat", type=int, default=1,
                    help="passes over both servers, alternating which goes first; medians reported (default 1)")
    args = ap.parse_args()
    if args.repeat < 1 or args.rounds < 1 or args.requests < 1:
        sys.exit("load: --repeat, --rounds and --requests must be at least 1")

    servers = []
    if not args.skip_ours:
        subprocess.run(["swift", "build", "-c", "release", "--product", "worker"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        worker = os.path.join(ROOT, ".build", "release", "worker")
        servers.append(("ours", "EdgeAI worker", [worker, "--port", "18787", "--threads", str(args.threads),
                        "--parallel", str(args.parallel), "--model", args.model_file], 18787, args.model_file))
    if not args.skip_llama_server:
        binary = subprocess.run(["bash", os.path.join(ROOT, "Benchmarks", "build-llama-server.sh")], check=True,
                                capture_output=True, text=True).stdout.strip()
        # -c: llama-server splits the context among its slots; 4096 per slot as ours have 8192 (prompts are short).
        servers.append(("llama", "llama-server", [binary, "-m", args.model_file, "--port", "18788",
                        "-t", str(args.threads), "-np", str(args.llama_parallel),
                        "-c", str(4096 * args.llama_parallel), "--no-webui"], 18788, "model"))

    # Passes: each runs every server once, the order alternating from pass to pass, so that a slow
    # spell of the shared machine does not fall on one server only.
    passes = []
    for k in range(args.repeat):
        order = servers if k % 2 == 0 else list(reversed(servers))
        one = {}
        for key, name, cmd, port, model in order:
            one[key] = bench_server(name + (f" (pass {k + 1}/{args.repeat})" if args.repeat > 1 else ""),
                                    cmd, port, model, args)
        passes.append(one)
        if args.repeat > 1 and len(one) == 2:
            print("# pass %d ratios: %s" % (k + 1, ", ".join(f"{n}: {one['ours'][n]['tps'] / one['llama'][n]['tps']:.2f}×"
                                                              for n in args.clients)), file=sys.stderr)
    # Per server and client count: the pass with the median tok/s; ratios: median over passes.
    results, ratios = {}, {}
    for key in passes[0]:
        results[key] = {n: sorted((p[key][n] for p in passes), key=lambda r: r["tps"])[len(passes) // 2]
                        for n in args.clients}
    if "ours" in results and "llama" in results:
        ratios = {n: [p["ours"][n]["tps"] / p["llama"][n]["tps"] for p in passes] for n in args.clients}

    print(f"\n{args.tokens} new tokens per request, temperature 0, {args.requests} requests per client, "
          f"median of {args.rounds} rounds, {args.threads} threads; ours --parallel {args.parallel}, "
          f"llama-server -np {args.llama_parallel}" +
          (f"; {args.repeat} passes alternating the order (tok/s, p50, p95: the median pass; ratio: the median of "
           f"the passes' ratios)" if args.repeat > 1 else "") + "\n")
    head = "| clients | ours tok/s | ours p50 s | ours p95 s |"
    if "llama" in results:
        head += " llama-server tok/s | p50 s | p95 s | tok/s ratio |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for n in args.clients:
        row = f"| {n} |"
        o = results.get("ours", {}).get(n)
        row += f" {o['tps']:.0f} | {o['p50']:.2f} | {o['p95']:.2f} |" if o else " - | - | - |"
        l = results.get("llama", {}).get(n)
        if "llama" in results:
            row += f" {l['tps']:.0f} | {l['p50']:.2f} | {l['p95']:.2f} |" if l else " - | - | - |"
            if o and l:
                r = ratios[n]
                row += f" {statistics.median(r):.2f}× |" + (f" ({' '.join(f'{x:.2f}' for x in r)})" if len(r) > 1 else "")
            else:
                row += " - |"
        print(row)
    if "ours" in results and 1 in results["ours"]:
        one = results["ours"][1]["tps"]
        print("\nours, aggregate over single client: " +
              ", ".join(f"{n}: {results['ours'][n]['tps'] / one:.2f}×" for n in args.clients if n in results["ours"]))


if __name__ == "__main__":
    main()
