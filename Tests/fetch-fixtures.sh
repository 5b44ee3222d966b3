#!/usr/bin/env bash
# Fetches the test fixtures into the git-ignored cache (idempotent):
#   $EDGEAI_CACHE/fixtures/llama.cpp/models/   llama.cpp's tokenizer test vocabs (.gguf/.inp/.out)
#                                              and chat templates (templates/*.jinja), from the
#                                              PyPI sdist llama-cpp-python==0.3.36
#   $EDGEAI_CACHE/models/gemma-3-270m-q4_k_m.gguf
#                                              the second real model of the tests (Gemma 3 270M,
#                                              Q4_K_M), through Models/fetch.sh
#   $EDGEAI_CACHE/models/all-minilm-l6-v2-f32.gguf (+ all-minilm-l6-v2-hf/)
#                                              the embedding model of EmbeddingTests, converted from
#                                              its Hugging Face directory by `gguf convert`
#   $EDGEAI_CACHE/fixtures/chat-templates-expected.json
#                                              those templates rendered by Python jinja2 configured
#                                              like Hugging Face apply_chat_template
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
sdist_version="0.3.36"
pipdir="$cache/pip"
fixtures="$cache/fixtures"
mkdir -p "$pipdir" "$fixtures"

sdist="$pipdir/llama_cpp_python-$sdist_version.tar.gz"
if [ ! -f "$sdist" ]; then
  echo "fetch-fixtures: downloading llama-cpp-python==$sdist_version sdist (76 MB)" >&2
  # pip prepares the sdist's metadata (it fetches scikit-build-core for that); nothing is compiled.
  pip download --no-deps --no-binary llama-cpp-python "llama-cpp-python==$sdist_version" -d "$pipdir" >&2
fi

models="$fixtures/llama.cpp/models"
if [ ! -f "$models/.complete" ]; then
  echo "fetch-fixtures: extracting vendor/llama.cpp/models from the sdist" >&2
  rm -rf "$fixtures/llama.cpp"; mkdir -p "$fixtures/llama.cpp"
  tar -xzf "$sdist" -C "$fixtures/llama.cpp" --strip-components=3 \
    "llama_cpp_python-$sdist_version/vendor/llama.cpp/models"
  touch "$models/.complete"
fi

expected="$fixtures/chat-templates-expected.json"
renderer="$here/Fixtures/render-templates.py"
if [ -f "$renderer" ] && { [ ! -f "$expected" ] || [ "$renderer" -nt "$expected" ]; }; then
  echo "fetch-fixtures: rendering chat templates with Python jinja2" >&2
  python3 -c 'import jinja2' 2>/dev/null || pip install -q 'jinja2>=3.1' >&2
  python3 "$renderer" "$models/templates" "$here/Fixtures/chat-conversations.json" > "$expected.tmp"
  mv "$expected.tmp" "$expected"
fi
bash "$here/../Models/fetch.sh" @cf/google/gemma-3-270m
bash "$here/../Models/fetch.sh" @cf/sentence-transformers/all-minilm-l6-v2
echo "fetch-fixtures: ready in $fixtures" >&2
