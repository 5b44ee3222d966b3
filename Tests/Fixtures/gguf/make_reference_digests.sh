#!/bin/sh
# Regenerates smollm2-q8_0-tensor-sha256.json: quantizes the cached SmolLM2
# Q4_1 file to Q8_0 with llama.cpp (llama-cpp-python 0.3.36, installed with
# `pip install --target $CACHE/llama-cpp-python llama-cpp-python==0.3.36`)
# and records the SHA-256 of every tensor's data. Run once; the JSON is committed.
set -eu
CACHE="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
HERE="$(cd "$(dirname "$0")" && pwd)"
IN="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT="$CACHE/llama-quantize-q8_0.gguf"
PYTHONPATH="$CACHE/llama-cpp-python" python3 - "$IN" "$OUT" <<'PY'
import sys, time, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = 7            # LLAMA_FTYPE_MOSTLY_Q8_0
params.allow_requantize = True
params.nthread = 2
t = time.monotonic()
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params)
print("llama_model_quantize rc=%d in %.3f s" % (rc, time.monotonic() - t), file=sys.stderr)
sys.exit(rc)
PY
python3 "$HERE/tensor_digests.py" "$OUT" > "$HERE/smollm2-q8_0-tensor-sha256.json"
echo "wrote $HERE/smollm2-q8_0-tensor-sha256.json" >&2
