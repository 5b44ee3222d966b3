#!/usr/bin/env python3
"""Per-tensor SHA-256 digests of a GGUF file's tensor data.

Usage: tensor_digests.py FILE.gguf [--types]   -> JSON {name: sha256} on stdout
       tensor_digests.py FILE.gguf --file      -> JSON {"file": {"sha256", "size"},
                                                   "tensors": {name: {"type", "sha256"}}}
A small independent GGUF reader (versions 2 and 3), standard library only.
"""
import hashlib, json, mmap, struct, sys

# ggml type number -> (block size, bytes per block); from ggml.h / ggml-common.h
TYPES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
         9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
         15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
         21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
         27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
         39: (32, 17), 40: (64, 36), 41: (128, 18), 42: (64, 18)}
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read_gguf(buf):
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = bytes(buf[pos:pos + n])
        pos += n
        return s.decode("utf-8", "replace")

    def value(t):
        nonlocal pos
        if t in FIXED:
            fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}[t]
            return take(fmt)
        if t == 8:
            return string()
        if t == 9:
            et = take("I")
            n = take("Q")
            if et in FIXED:
                pos += n * FIXED[et]
                return None
            return [value(et) for _ in range(n)]
        raise ValueError("bad value type %d" % t)

    if bytes(buf[0:4]) != b"GGUF":
        raise ValueError("not a GGUF file")
    pos = 4
    version = take("I")
    if version not in (2, 3):
        raise ValueError("unsupported version %d" % version)
    n_tensors = take("Q")
    n_kv = take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    align = meta.get("general.alignment", 32)
    tensors = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        dims = [take("Q") for _ in range(nd)]
        t = take("I")
        off = take("Q")
        tensors.append((name, t, dims, off))
    data = (pos + align - 1) // align * align
    out = []
    for name, t, dims, off in tensors:
        bs, bpb = TYPES[t]
        n = 1
        for d in dims:
            n *= d
        size = n // bs * bpb
        out.append((name, t, dims, data + off, size))
    return meta, out


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        meta, tensors = read_gguf(buf)
        result = {}
        for name, t, dims, start, size in tensors:
            if start + size > len(buf):
                raise ValueError("tensor %s outside the file" % name)
            result[name] = hashlib.sha256(buf[start:start + size]).hexdigest()
        if "--file" in sys.argv:
            result = {"file": {"sha256": hashlib.sha256(buf).hexdigest(), "size": len(buf)},
                      "tensors": {n: {"type": t, "sha256": result[n]} for n, t, _, _, _ in tensors}}
        elif "--types" in sys.argv:
            result = {n: {"type": t, "shape": d, "sha256": result[n]} for n, t, d, _, _ in tensors}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
