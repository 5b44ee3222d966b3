#!/usr/bin/env bash
# The worker's OpenAI-compatible routes checked with the official `openai` Python package:
# installs it (pinned) into a venv under the cache, starts the worker on a free loopback port
# with an API key, runs Benchmarks/openai-client.py (chat, stream, models, completions, stop,
# cache headers, errors, auth), stops the worker. Needs the worker built:
#   swift build -c release --product worker && bash Tests/openai-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${EDGEAI_CACHE:-$HOME/.cache/edgeai}"
VENV="$CACHE/venv-openai"
OPENAI_VERSION="${OPENAI_VERSION:-3.57.0}"
MODEL="@cf/huggingfacetb/smollm2-135m-instruct"
WORKER="${WORKER:-.build/release/worker}"

[ -x "$WORKER" ] || { echo "openai-check: $WORKER not built; run: swift build -c release --product worker" >&2; exit 2; }
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "openai==$OPENAI_VERSION"
fi

KEY="check-$(date +%s)-$$"
LOG="$(mktemp)"
"$WORKER" --host 127.0.0.1 --port 0 --api-key "$KEY" --threads 2 2>"$LOG" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -f "$LOG"; }
trap cleanup EXIT

PORT=""
for _ in $(seq 1 300); do
    PORT="$(sed -n 's#.*listening on http://127.0.0.1:\([0-9]*\).*#\1#p' "$LOG" | head -1)"
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.1
done
[ -n "$PORT" ] || { echo "openai-check: the worker did not start" >&2; cat "$LOG" >&2; exit 1; }
for _ in $(seq 1 300); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)"
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || { echo "openai-check: /health never became 200 (last $code)" >&2; cat "$LOG" >&2; exit 1; }
echo "openai-check: worker pid $PID on port $PORT, /health 200"
"$VENV/bin/python" Benchmarks/openai-client.py --base-url "http://127.0.0.1:$PORT/v1" --api-key "$KEY" --model "$MODEL"
