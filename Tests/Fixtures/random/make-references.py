#!/usr/bin/env python3
"""llama.cpp reference logits for the synthetic random-weight models (one per architecture).

For each architecture: `gguf synth` writes the F32 model (deterministic), llama.cpp's
llama_model_quantize makes Q8_0 (ftype 7) and Q4_K_M (ftype 15) from it, and llama.cpp (C API
through llama-cpp-python 0.3.36: n_ctx 64, flash attention off, 2 threads,
default F16 KV cache) decodes a fixed 32-token sequence one token at a time from an empty cache
(llama.cpp's decode arithmetic, which EdgeAI uses for every batch size), logits for every token. Writes, next to this script:

  <arch>-<f32|q8_0|q4_k_m>.logits   little-endian float32, 32 x 2048 (row = position), nothing else
  manifest.json                      token ids, shapes, seeds, sha256s, llama.cpp version, per-file
                                     statistics (logit std, fraction argmax == input token, ...)

The F32 files and quantized models are written to --work-dir (default: a temporary directory)
and not kept. The script fails if a model is degenerate: too many positions whose argmax is the
input token, a logit standard deviation below 2, or too few distinct argmax tokens.

Usage: Tests/Fixtures/random/make-references.py [--gguf PATH] [--arch ARCH ...] [--work-dir DIR]
       [--seed N]
Needs llama-cpp-python (installed into ~/.cache/edgeai/llama-cpp-python, see Benchmarks/compare.py)
and the tokenizer sources ~/.cache/edgeai/models/smollm2-135m-instruct-q8_0.gguf and
~/.cache/edgeai/models/gemma-3-270m-q4_k_m.gguf.
"""
import argparse
import ctypes
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

ARCHS = ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
BPE_SOURCE = "smollm2-135m-instruct-q8_0.gguf"    # tokenizer for llama, qwen2, qwen3
SPM_SOURCE = "gemma-3-270m-q4_k_m.gguf"           # tokenizer for gemma2, gemma3, phi3
TOKENIZER_FROM = {"llama": BPE_SOURCE, "qwen2": BPE_SOURCE, "qwen3": BPE_SOURCE,
                  "gemma2": SPM_SOURCE, "gemma3": SPM_SOURCE, "phi3": SPM_SOURCE}
N_VOCAB = 2048
N_TOKENS = 32
QUANTS = [("q8_0", 7), ("q4_k_m", 15)]
# Acceptance limits for a non-degenerate model (checked on every file).
MAX_COPY_FRACTION = 0.25
MIN_LOGIT_STD = 2.0
MIN_DISTINCT_ARGMAX = 8


def base_sequence():
    """32 fixed token ids in 3..2047 (a permutation walk, no repeats)."""
    return [3 + (i * 1237 + 91) % (N_VOCAB - 3) for i in range(N_TOKENS)]


def cache_dir():
    return os.environ.get("EDGEAI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeai")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_llama_cpp():
    sys.path.insert(0, os.path.join(cache_dir(), "llama-cpp-python"))
    import llama_cpp  # noqa: E402
    return llama_cpp


class LlamaCpp:
    def __init__(self):
        self.L = L = import_llama_cpp()
        self._log_cb = L.llama_log_callback(lambda level, text, user: None)
        L.llama_log_set(self._log_cb, ctypes.c_void_p())
        L.llama_backend_init()
        self.version = getattr(L, "__version__", None) or "0.3.36"

    def quantize(self, src, dst, ftype):
        L = self.L
        p = L.llama_model_quantize_default_params()
        p.nthread = 2
        p.ftype = ftype
        rc = L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
        if rc != 0:
            sys.exit(f"make-references: llama_model_quantize({src} -> {dst}, ftype {ftype}) failed: {rc}")

    def tokens_for(self, path, base):
        """Loads the model; returns the token ids to evaluate (BOS first if the vocab adds one)."""
        L = self.L
        model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
        if not model:
            sys.exit(f"make-references: llama.cpp could not load {path}")
        vocab = L.llama_model_get_vocab(model)
        n_vocab = L.llama_vocab_n_tokens(vocab)
        if n_vocab != N_VOCAB:
            sys.exit(f"make-references: {path} has {n_vocab} tokens, expected {N_VOCAB}")
        if L.llama_vocab_get_add_bos(vocab):
            ids = [L.llama_vocab_bos(vocab)] + base[:N_TOKENS - 1]
        else:
            ids = list(base)
        buf = ctypes.create_string_buffer(256)
        L.llama_model_desc(model, buf, 256)
        info = {"desc": buf.value.decode(), "n_params": L.llama_model_n_params(model),
                "n_layer": L.llama_model_n_layer(model), "n_embd": L.llama_model_n_embd(model),
                "n_head": L.llama_model_n_head(model), "n_head_kv": L.llama_model_n_head_kv(model),
                "n_swa": L.llama_model_n_swa(model), "n_ctx_train": L.llama_model_n_ctx_train(model),
                "add_bos": bool(L.llama_vocab_get_add_bos(vocab))}
        L.llama_model_free(model)
        return ids, info

    def logits(self, path, ids):
        """Logits (N_TOKENS rows of N_VOCAB floats) for `ids` decoded one token at a time."""
        L = self.L
        model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
        if not model:
            sys.exit(f"make-references: llama.cpp could not load {path}")
        cp = L.llama_context_default_params()
        cp.n_ctx = 64
        cp.n_batch = N_TOKENS
        cp.n_ubatch = N_TOKENS
        cp.n_threads = 2
        cp.n_threads_batch = 2
        cp.flash_attn_type = 0
        ctx = L.llama_init_from_model(model, cp)
        if not ctx:
            sys.exit(f"make-references: llama.cpp could not create a context for {path}")
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        # One token per llama_decode: llama.cpp's decode arithmetic (vec_dot products, the
        # single-row attention), which EdgeAI uses for every batch size.
        batch = L.llama_batch_init(1, 0, 1)
        rows = []
        for i, t in enumerate(ids):
            batch.token[0] = t
            batch.pos[0] = i
            batch.n_seq_id[0] = 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = 1
            batch.n_tokens = 1
            rc = L.llama_decode(ctx, batch)
            if rc != 0:
                sys.exit(f"make-references: llama_decode failed on {path}: {rc}")
            p = L.llama_get_logits_ith(ctx, 0)
            rows.append([p[j] for j in range(N_VOCAB)])
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(model)
        return rows


def statistics(rows, ids):
    flat = [x for r in rows for x in r]
    mean = sum(flat) / len(flat)
    std = math.sqrt(sum((x - mean) ** 2 for x in flat) / len(flat))
    # per-position std, averaged
    pos_std = sum(math.sqrt(sum((x - sum(r) / len(r)) ** 2 for x in r) / len(r)) for r in rows) / len(rows)
    argmax = [max(range(len(r)), key=r.__getitem__) for r in rows]
    copy = sum(1 for a, t in zip(argmax, ids) if a == t) / len(ids)
    margins = []
    for r in rows:
        s = sorted(r, reverse=True)
        margins.append(s[0] - s[1])
    return {"logit_std": round(std, 4), "mean_position_logit_std": round(pos_std, 4),
            "argmax_equals_input_fraction": copy, "distinct_argmax": len(set(argmax)),
            "min_top1_top2_margin": round(min(margins), 5), "argmax": argmax}


def gguf_summary(path):
    """(metadata, tokenizer arrays summarised; {tensor name: "TYPE [ggml shape]"}) of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read(1 << 22)
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("Q")
        s = data[off:off + n].decode("utf-8", "replace")
        off += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert take("I") == 0x46554747
    take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        v = value(take("I"))
        if not k.startswith("tokenizer."):
            meta[k] = round(v, 9) if isinstance(v, float) else v
        elif isinstance(v, list):
            meta[k] = f"[{len(v)} values]"
        else:
            meta[k] = v
    types = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K",
             12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16"}
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        t = take("I")
        take("Q")
        tensors[name] = f"{types.get(t, t)} {dims}"
    return meta, tensors


def difference(rows, ref):
    """Relative RMS ||rows - ref|| / ||ref|| per position (max, mean) and argmax agreement."""
    rel = [math.sqrt(sum((x - y) ** 2 for x, y in zip(r, q)) / sum(y * y for y in q)) for r, q in zip(rows, ref)]
    agree = sum(1 for r, q in zip(rows, ref) if max(range(len(r)), key=r.__getitem__) == max(range(len(q)), key=q.__getitem__))
    return {"max_relative_rms": round(max(rel), 5), "mean_relative_rms": round(sum(rel) / len(rel), 5),
            "argmax_agreement": agree / len(rows)}


def write_logits(path, rows):
    with open(path, "wb") as f:
        for r in rows:
            f.write(struct.pack(f"<{len(r)}f", *r))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=None, help="our gguf executable (default: swift build -c release --product gguf)")
    ap.add_argument("--arch", action="append", choices=ARCHS, help="only these architectures (repeatable)")
    ap.add_argument("--work-dir", default=None, help="where to write the models (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default=here)
    args = ap.parse_args()
    archs = args.arch or ARCHS
    t_start = time.perf_counter()
    if args.gguf is None:
        subprocess.run(["swift", "build", "-c", "release", "--product", "gguf"], check=True, cwd=root, stdout=sys.stderr)
        args.gguf = os.path.join(root, ".build", "release", "gguf")
    models = os.path.join(cache_dir(), "models")
    work = args.work_dir or tempfile.mkdtemp(prefix="edgeai-random-")
    os.makedirs(work, exist_ok=True)
    os.makedirs(args.out_dir, exist_ok=True)
    llama = LlamaCpp()

    manifest_path = os.path.join(args.out_dir, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path) and args.arch:
        with open(manifest_path) as f:
            manifest = json.load(f)
    base = base_sequence()
    manifest.update({
        "description": "llama.cpp logits for the synthetic random-weight models (Sources/GGUF/SyntheticModel.swift); "
                       "made by make-references.py",
        "llama_cpp": f"llama-cpp-python {llama.version} (vendored llama.cpp), CPU",
        "settings": {"n_ctx": 64, "n_batch": N_TOKENS, "n_ubatch": N_TOKENS, "flash_attn_type": 0, "n_threads": 2,
                     "kv_cache_type": "f16 (llama.cpp default)", "one token per llama_decode from an empty cache": True,
                     "logits for every token": True},
        "logits_format": "little-endian float32, n_tokens rows of n_vocab, row i = logits after token i",
        "n_tokens": N_TOKENS, "n_vocab": N_VOCAB,
        "base_sequence": base,
        "seed": args.seed,
        "tokenizer_sources": {"bpe": BPE_SOURCE, "spm": SPM_SOURCE},
        "quantize": {"q8_0": "llama_model_quantize ftype 7, nthread 2", "q4_k_m": "llama_model_quantize ftype 15, nthread 2"},
    })
    manifest.setdefault("architectures", {})
    failures = []
    for arch in archs:
        t0 = time.perf_counter()
        f32 = os.path.join(work, f"{arch}-f32.gguf")
        src = os.path.join(models, TOKENIZER_FROM[arch])
        subprocess.run([args.gguf, "synth", "--arch", arch, "--tokenizer-from", src, "--out", f32,
                        "--seed", str(args.seed)], check=True, stdout=subprocess.DEVNULL)
        t_gen = time.perf_counter() - t0
        entry = {"tokenizer_from": TOKENIZER_FROM[arch], "generate_seconds": round(t_gen, 2),
                 "f32": {"sha256": sha256(f32), "bytes": os.path.getsize(f32)}}
        paths = {"f32": f32}
        for name, ftype in QUANTS:
            q = os.path.join(work, f"{arch}-{name}.gguf")
            llama.quantize(f32, q, ftype)
            paths[name] = q
            entry[name] = {"sha256": sha256(q), "bytes": os.path.getsize(q), "ftype": ftype,
                           "tensor_types": {k: v.split(" ")[0] for k, v in gguf_summary(q)[1].items()}}
        ids, info = llama.tokens_for(f32, base)
        entry["tokens"] = ids
        entry["llama_cpp_model"] = info
        entry["metadata"], entry["tensors"] = gguf_summary(f32)
        all_rows = {}
        for name in ["f32"] + [n for n, _ in QUANTS]:
            rows = all_rows[name] = llama.logits(paths[name], ids)
            out = os.path.join(args.out_dir, f"{arch}-{name}.logits")
            write_logits(out, rows)
            st = statistics(rows, ids)
            entry[name].update({"logits_file": os.path.basename(out), "logits_sha256": sha256(out), **st})
            if st["argmax_equals_input_fraction"] > MAX_COPY_FRACTION:
                failures.append(f"{arch} {name}: argmax == input token at {st['argmax_equals_input_fraction']:.0%} of positions")
            if st["logit_std"] < MIN_LOGIT_STD:
                failures.append(f"{arch} {name}: logit std {st['logit_std']:.2f} < {MIN_LOGIT_STD}")
            if st["distinct_argmax"] < MIN_DISTINCT_ARGMAX:
                failures.append(f"{arch} {name}: only {st['distinct_argmax']} distinct argmax tokens")
        # How far quantization moves llama.cpp's own logits: the scale against which an error
        # in our forward pass (same file, different arithmetic) should be judged.
        entry["quantization_effect"] = {f"{n}_vs_f32": difference(all_rows[n], all_rows["f32"]) for n, _ in QUANTS}
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        manifest["architectures"][arch] = entry
        e = entry
        print(f"{arch:7s} f32 std {e['f32']['logit_std']:6.2f} copy {e['f32']['argmax_equals_input_fraction']:.2f} "
              f"distinct {e['f32']['distinct_argmax']:2d} | q8_0 copy {e['q8_0']['argmax_equals_input_fraction']:.2f} "
              f"| q4_k_m copy {e['q4_k_m']['argmax_equals_input_fraction']:.2f} | {e['seconds']:.1f} s", file=sys.stderr)
    manifest["architectures"] = {a: manifest["architectures"][a] for a in ARCHS if a in manifest["architectures"]}
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"make-references: {len(archs)} architectures in {time.perf_counter() - t_start:.1f} s; wrote {manifest_path}",
          file=sys.stderr)
    if failures:
        sys.exit("make-references: degenerate model(s):\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
