#!/usr/bin/env bash
# Builds llama.cpp's llama-server (and llama-bench) from the llama-cpp-python==0.3.36 sdist
# (vendor/llama.cpp), natively for this CPU, into the cache; prints the binary's path.
#   bash Benchmarks/build-llama-server.sh      (~15 min on 2 cores the first time)
# CMake comes from PyPI (pip install cmake in a venv of the cache). Nothing goes into the repo.
set -euo pipefail
CACHE="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
OUT="$CACHE/llama.cpp-build"
BIN="$OUT/build/bin/llama-server"
if [[ -x "$BIN" && -x "$OUT/build/bin/llama-bench" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$CACHE/pip" "$OUT"
SDIST="$CACHE/pip/llama_cpp_python-0.3.36.tar.gz"
if [[ ! -f "$SDIST" ]]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$CACHE/pip" llama-cpp-python==0.3.36 >&2
fi
if [[ ! -x "$CACHE/venv-cmake/bin/cmake" ]]; then
  python3 -m venv "$CACHE/venv-cmake" >&2
  "$CACHE/venv-cmake/bin/pip" install --quiet cmake >&2
fi
if [[ ! -d "$OUT/src" ]]; then
  rm -rf "$OUT/src.tmp" && mkdir -p "$OUT/src.tmp"
  tar -xzf "$SDIST" -C "$OUT/src.tmp"
  mv "$OUT/src.tmp/llama_cpp_python-0.3.36/vendor/llama.cpp" "$OUT/src" && rm -rf "$OUT/src.tmp"
fi
"$CACHE/venv-cmake/bin/cmake" -S "$OUT/src" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
"$CACHE/venv-cmake/bin/cmake" --build "$OUT/build" --target llama-server llama-bench -j "$(nproc)" >&2
echo "$BIN"
