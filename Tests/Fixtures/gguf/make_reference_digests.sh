#!/bin/sh
# Regenerates the llama-quantize reference digests used by QuantizerTests:
#
#   smollm2-q8_0-tensor-sha256.json   Q4_1 -> Q8_0, {tensor: sha256}
#   smollm2-llama-<conv>.json         {"file": {sha256, size}, "tensors": {name: {type, sha256}}}
#     f16            Q4_1 -> F16      (the input of the conversions below)
#     q4_k_m         F16  -> Q4_K_M
#     q4_k_m-requant Q4_1 -> Q4_K_M   (requantization of the quantized file)
#     q4_k_s         F16  -> Q4_K_S
#     q5_k_m         F16  -> Q5_K_M
#     q6_k           F16  -> Q6_K
#     q4_0           F16  -> Q4_0
#     q5_0           F16  -> Q5_0
#
# It quantizes the cached SmolLM2 Q4_1 file with llama.cpp's llama_model_quantize
# (llama-cpp-python 0.3.36, installed with
# `pip install --target $CACHE/llama-cpp-python llama-cpp-python==0.3.36`;
# default parameters, allow_requantize, 2 threads, no importance matrix) and
# records the SHA-256 of every tensor's data and of the whole file. Run once;
# the JSON files are committed (the test suite does not need llama.cpp).
# The Q4_K_M output is kept as $CACHE/models/smollm2-135m-instruct-q4_k_m.llama.gguf
# for speed comparisons.
set -eu
CACHE="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
HERE="$(cd "$(dirname "$0")" && pwd)"
IN="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
WORK="$CACHE/llama-quantize-work"
mkdir -p "$WORK"

# quantize IN OUT FTYPE: llama_model_quantize with llama-quantize's defaults
quantize() {
    PYTHONPATH="$CACHE/llama-cpp-python" python3 - "$1" "$2" "$3" <<'PY'
import sys, time, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = int(sys.argv[3])   # llama_ftype
params.allow_requantize = True
params.nthread = 2
t = time.monotonic()
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params)
print("llama_model_quantize %s ftype %s rc=%d in %.3f s" % (sys.argv[2], sys.argv[3], rc, time.monotonic() - t), file=sys.stderr)
sys.exit(rc)
PY
}

quantize "$IN" "$WORK/q8_0.gguf" 7            # LLAMA_FTYPE_MOSTLY_Q8_0
python3 "$HERE/tensor_digests.py" "$WORK/q8_0.gguf" > "$HERE/smollm2-q8_0-tensor-sha256.json"

F16="$WORK/f16.gguf"
quantize "$IN" "$F16" 1                       # LLAMA_FTYPE_MOSTLY_F16
python3 "$HERE/tensor_digests.py" "$F16" --file > "$HERE/smollm2-llama-f16.json"

# name input ftype
while read -r name input ftype; do
    quantize "$input" "$WORK/$name.gguf" "$ftype"
    python3 "$HERE/tensor_digests.py" "$WORK/$name.gguf" --file > "$HERE/smollm2-llama-$name.json"
done <<LIST
q4_k_m $F16 15
q4_k_m-requant $IN 15
q4_k_s $F16 14
q5_k_m $F16 17
q6_k $F16 18
q4_0 $F16 2
q5_0 $F16 8
LIST

cp "$WORK/q4_k_m.gguf" "$CACHE/models/smollm2-135m-instruct-q4_k_m.llama.gguf"
rm -rf "$WORK"
echo "wrote $HERE/smollm2-*.json" >&2
