#!/usr/bin/env python3
"""Soak test: runs the worker example under mixed load for a given time and reports requests,
errors by kind, p50/p95 latency and the worker's resident memory over time (from /proc).

    python3 Benchmarks/soak.py --minutes 10                # builds and starts the worker itself
    python3 Benchmarks/soak.py --seconds 60 --clients 3    # a short run
    python3 Benchmarks/soak.py --url http://127.0.0.1:8787 --pid 1234   # an already running worker

The load mixes: non-streaming requests (REST route and the seed route), streaming requests read
to the end, streaming requests whose client disconnects after the first event, and bad bodies
(invalid JSON, wrong types, out-of-range values, an unknown model) that must get their Workers AI
error codes. Anything else (a 5xx, a dropped connection, a wrong code) counts as unexpected.
Python standard library only.
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

MODEL = "@cf/huggingfacetb/smollm2-135m-instruct"

PROMPTS = [
    "What is edge computing?",
    "List three colors.",
    "Explain the edge to me using only emojis?",
    "Write a haiku about servers.",
    "Say hello in French.",
    "What is 2 + 2?",
]

# (label, path kind, body, expected HTTP status, expected Workers AI error code or None)
BAD_BODIES = [
    ("bad-json", b'{"prompt": "unterminated', 400, 5006),
    ("bad-type", b'{"prompt": 42}', 400, 5006),
    ("bad-range", b'{"prompt": "hi", "temperature": 9}', 400, 5006),
    ("bad-both", b'{"prompt": "hi", "messages": [{"role": "user", "content": "x"}]}', 400, 5006),
    ("bad-role", b'{"messages": [{"role": "robot", "content": "x"}]}', 400, 5006),
    ("bad-empty", b'{}', 400, 5006),
    ("bad-not-object", b'[1, 2, 3]', 400, 5006),
]


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}        # kind -> count
        self.unexpected = {}    # description -> count
        self.latency = {}       # kind -> [seconds]
        self.first_event = []   # streaming: seconds to the first event

    def ok(self, kind, seconds):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.latency.setdefault(kind, []).append(seconds)

    def bad(self, what):
        with self.lock:
            self.unexpected[what] = self.unexpected.get(what, 0) + 1


def request(host, port, path, body, timeout):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def metric(host, port, name):
    """A gauge of the worker's /metrics (None when unavailable)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def client_loop(host, port, deadline, stats, rng, timeout, max_tokens, disconnect_share=0.15):
    # shares: bad bodies 0.20, disconnecting streams `disconnect_share`, the rest split 30:10:25
    # between REST, the seed route and streams read to the end
    good = 0.80 - disconnect_share
    t_rest, t_seed, t_stream = good * 30 / 65, good * 40 / 65, good
    rest = "/ai/run/" + urllib.parse.quote(MODEL)
    while time.time() < deadline:
        r = rng.random()
        prompt = rng.choice(PROMPTS)
        t0 = time.time()
        try:
            if r < t_rest:
                kind = "rest"
                body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                                   "temperature": rng.choice([0, 0.7])}).encode()
                conn, resp = request(host, port, rest, body, timeout)
                data = resp.read()
                conn.close()
                if resp.status != 200:
                    stats.bad(f"{kind}: HTTP {resp.status} {data[:120]!r}")
                    continue
                doc = json.loads(data)
                if not doc.get("success") or "response" not in doc.get("result", {}):
                    stats.bad(f"{kind}: bad envelope {data[:120]!r}")
                    continue
                stats.ok(kind, time.time() - t0)
            elif r < t_seed:
                kind = "seed-route"
                conn, resp = request(host, port, "/", json.dumps({"prompt": prompt}).encode(), timeout)
                data = resp.read()
                conn.close()
                if resp.status != 200 or "generated_text" not in json.loads(data):
                    stats.bad(f"{kind}: HTTP {resp.status} {data[:120]!r}")
                    continue
                stats.ok(kind, time.time() - t0)
            elif r < t_stream:
                kind = "stream"
                body = json.dumps({"prompt": prompt, "stream": True, "max_tokens": max_tokens}).encode()
                conn, resp = request(host, port, rest, body, timeout)
                if resp.status != 200:
                    stats.bad(f"{kind}: HTTP {resp.status} {resp.read()[:120]!r}")
                    conn.close()
                    continue
                done = False
                first = None
                while True:
                    line = resp.fp.readline()
                    if not line:
                        break
                    if line.startswith(b"data:"):
                        if first is None:
                            first = time.time() - t0
                        if line.strip() == b"data: [DONE]":
                            done = True
                            break
                conn.close()
                if not done:
                    stats.bad(f"{kind}: stream ended without [DONE]")
                    continue
                with stats.lock:
                    if first is not None:
                        stats.first_event.append(first)
                stats.ok(kind, time.time() - t0)
            elif r < 0.80:   # disconnecting streams
                kind = "stream-disconnect"
                body = json.dumps({"prompt": prompt, "stream": True, "max_tokens": 256}).encode()
                conn, resp = request(host, port, rest, body, timeout)
                if resp.status != 200:
                    stats.bad(f"{kind}: HTTP {resp.status}")
                    conn.close()
                    continue
                got = False
                while not got:
                    line = resp.fp.readline()
                    if not line:
                        break
                    got = line.startswith(b"data:")
                # hang up mid-stream: the worker must cancel the generation
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
                if not got:
                    stats.bad(f"{kind}: no event before disconnect")
                    continue
                stats.ok(kind, time.time() - t0)
            else:
                label, body, status, code = rng.choice(BAD_BODIES)
                kind = "bad-body"
                path = rest
                if rng.random() < 0.15:
                    label, path, body, status, code = "unknown-model", "/ai/run/@cf/no/such-model", b'{"prompt": "x"}', 400, 5007
                conn, resp = request(host, port, path, body, timeout)
                data = resp.read()
                conn.close()
                try:
                    doc = json.loads(data)
                    got = doc["errors"][0]["code"]
                except (ValueError, KeyError, IndexError, TypeError):
                    got = None
                if resp.status != status or got != code:
                    stats.bad(f"{label}: HTTP {resp.status} code {got}, expected {status}/{code}")
                    continue
                stats.ok(kind, time.time() - t0)
        except (OSError, http.client.HTTPException, ValueError) as e:
            stats.bad(f"{type(e).__name__}: {str(e)[:100]}")
            time.sleep(0.2)


def wait_for_port(host, port, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.5)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--port", type=int, default=18787)
    ap.add_argument("--threads", type=int, default=0, help="worker compute threads (0: all cores)")
    ap.add_argument("--url", help="use a running worker instead of starting one")
    ap.add_argument("--no-build", action="store_true", help="start the worker already built in .build/release")
    ap.add_argument("--pid", type=int, help="pid of the running worker (for its memory)")
    ap.add_argument("--sample", type=float, default=10, help="seconds between memory samples")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--disconnect-share", type=float, default=0.15,
                    help="share of requests that are streams whose client disconnects after the first event (0-0.8)")
    ap.add_argument("--json", help="also write the report as JSON here")
    a = ap.parse_args()
    duration = a.seconds if a.seconds is not None else 60 * (a.minutes if a.minutes is not None else 1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    proc = None
    if a.url:
        u = urllib.parse.urlparse(a.url)
        host, port, pid = u.hostname, u.port or 80, a.pid
    else:
        host, port = "127.0.0.1", a.port
        if not a.no_build:
            print("building the worker (swift build -c release --product worker) ...", flush=True)
            subprocess.run(["swift", "build", "-c", "release", "--product", "worker"], cwd=root, check=True,
                           stdout=subprocess.DEVNULL)
        binpath = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, check=True,
                                 capture_output=True, text=True).stdout.strip()
        log = open(os.path.join(root, ".build", "soak-worker.log"), "w")
        proc = subprocess.Popen([os.path.join(binpath, "worker"), "--port", str(port), "--threads", str(a.threads)],
                                cwd=root, stdout=log, stderr=subprocess.STDOUT)
        pid = proc.pid
        if not wait_for_port(host, port, proc, 300):
            print("the worker did not start; see .build/soak-worker.log")
            if proc.poll() is None:
                proc.kill()
            return 2

    stats = Stats()
    start = time.time()
    deadline = start + duration
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(host, port, deadline, stats, random.Random(a.seed * 1000 + i), 120, a.max_tokens,
                                      a.disconnect_share))
               for i in range(a.clients)]
    for t in threads:
        t.start()
    memory = []   # (seconds since start, RSS KiB, requests so far)
    while time.time() < deadline:
        if pid:
            with stats.lock:
                n = sum(stats.counts.values()) + sum(stats.unexpected.values())
            memory.append((round(time.time() - start), rss_kib(pid), n))
            print(f"  t={memory[-1][0]:5d} s  rss={memory[-1][1]} KiB  requests={n}", flush=True)
        if proc is not None and proc.poll() is not None:
            stats.bad(f"worker exited with status {proc.returncode}")
            break
        time.sleep(min(a.sample, max(0.1, deadline - time.time())))
    for t in threads:
        t.join(timeout=180)
    if pid:
        memory.append((round(time.time() - start), rss_kib(pid), None))
    worker_alive = proc is None or proc.poll() is None
    # every slot free and no request queued once the clients are gone (disconnected streams
    # included): seconds until /metrics shows an idle worker
    idle_after = None
    t_end = time.time()
    while worker_alive and time.time() - t_end < 30:
        busy, queued = metric(host, port, "edgeai_busy_slots"), metric(host, port, "edgeai_queue_depth")
        if busy == 0 and queued == 0:
            idle_after = round(time.time() - t_end, 2)
            break
        time.sleep(0.05)
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    all_lat = [x for v in stats.latency.values() for x in v]
    report = {
        "seconds": round(time.time() - start, 1),
        "clients": a.clients,
        "requests": sum(stats.counts.values()) + sum(stats.unexpected.values()),
        "by_kind": stats.counts,
        "unexpected": stats.unexpected,
        "latency_s": {k: {"p50": round(percentile(v, 50), 3), "p95": round(percentile(v, 95), 3), "n": len(v)}
                      for k, v in sorted(stats.latency.items())},
        "latency_all_s": {"p50": round(percentile(all_lat, 50), 3), "p95": round(percentile(all_lat, 95), 3)},
        "stream_first_event_s": {"p50": round(percentile(stats.first_event, 50), 3),
                                 "p95": round(percentile(stats.first_event, 95), 3)},
        "rss_kib": memory,
        "worker_alive": worker_alive,
        "idle_after_clients_s": idle_after,
    }
    rss = [m[1] for m in memory if m[1]]
    if len(rss) >= 4:
        warm = rss[len(rss) // 4:]
        report["rss_after_warmup_kib"] = {"min": min(warm), "max": max(warm), "first": warm[0], "last": warm[-1]}
    print(json.dumps({k: v for k, v in report.items() if k != "rss_kib"}, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if not stats.unexpected and worker_alive else 1


if __name__ == "__main__":
    sys.exit(main())
