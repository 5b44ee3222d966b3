#!/usr/bin/env bash
# Runs the fuzz targets as seeded mutation loops (in-process, release build).
#
#   bash Tests/fuzz.sh [GGUF_N] [REQUEST_N] [TEMPLATE_N] [TOKENIZER_N] [SEED]
#   bash Tests/fuzz.sh 100000 100000 20000 5000       # the issue's figures
#   FUZZ_TARGETS="gguf request" bash Tests/fuzz.sh ... # a subset
#
# Seeds: Tests/Fuzz/corpus/{gguf,request,template}, the real chat templates and llama.cpp's
# vocabularies from Tests/fetch-fixtures.sh. Every input must end in a result or a typed error,
# within a second; a crash leaves the input that caused it in .build/fuzz/crash-<target>.
#
# libFuzzer (coverage-guided) works with this toolchain too:
#   swift build -c release --product fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER --scratch-path .build/libfuzzer
#   FUZZ_TARGET=gguf .build/libfuzzer/release/fuzz -max_total_time=60 Tests/Fuzz/corpus/gguf
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
gguf_n=${1:-100000}; request_n=${2:-100000}; template_n=${3:-20000}; tokenizer_n=${4:-5000}; seed=${5:-1}
targets=${FUZZ_TARGETS:-gguf request template tokenizer}

bin=$(swift build -c release --show-bin-path)/fuzz
# FUZZ_NO_BUILD=1: use the fuzz binary already built (e.g. by `swift test -c release`)
if [ -z "${FUZZ_NO_BUILD:-}" ] || [ ! -x "$bin" ]; then
    swift build -c release --product fuzz >/dev/null || { echo "build failed"; exit 2; }
fi
mkdir -p .build/fuzz
export FUZZ_CRASH_DIR=$PWD/.build/fuzz
status=0
for t in $targets; do
    case $t in
        gguf) n=$gguf_n ;; request) n=$request_n ;; template) n=$template_n ;; tokenizer*) n=$tokenizer_n ;; *) n=10000 ;;
    esac
    start=$(date +%s)
    "$bin" "$t" "$n" "$seed"
    rc=$?
    if [ $rc -gt 1 ]; then
        # killed by a signal (crash) or a trap: keep the input that was running
        for f in .build/fuzz/current-*; do
            [ -e "$f" ] && mv "$f" ".build/fuzz/crash-${f##*/current-}" && echo "CRASH in $t (exit $rc): input saved as .build/fuzz/crash-${f##*/current-}"
        done
        status=1
    elif [ $rc -eq 1 ]; then
        status=1
    fi
    echo "$t: $(( $(date +%s) - start )) s"
done
exit $status
