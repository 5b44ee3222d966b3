#!/usr/bin/env bash
# Runs the test suites under AddressSanitizer and ThreadSanitizer (debug builds; the C kernels
# are instrumented too). The real-model suites run in a reduced form: the heavy ones (perplexity,
# llama.cpp logit comparisons, quantizer byte-identity on the real model, every architecture) are
# skipped, and a chosen set of short real-model tests (generation, streaming, cancellation,
# concurrent requests, the HTTP worker) runs instead, with the fuzz targets' short runs
# (FUZZ_SCALE=0.1 by default: a tenth of the CI iterations).
#
#   bash Tests/sanitize.sh [address] [thread]     # default: both
#
# Each sanitizer builds into its own scratch path (.build/sanitize-<name>); logs go to
# .build/sanitize-<name>.log. Exit status 1 when a sanitizer reported anything or a test failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sanitizers=("$@")
[ ${#sanitizers[@]} -eq 0 ] && sanitizers=(address thread)

# Suites skipped whole (real models at full size, or minutes of float work under instrumentation;
# every suite that generates with the real model is here: under TSan one generation takes minutes).
heavy='SmolLM2ModelTests|Gemma3ModelTests|RealModelTests|LlamaQuantizeTests|QuantizerTests|RandomArchTests|OpsPathTests|EdgeAITests\.(GenerationTests|ConcurrencyTests|StreamingTextTests|WorkerTests|SchedulerTests|ServingTests|HybridRoutingTests|JSONModeModelTests|ToolCallModelTests|EmbeddingTests|GatewayTests)|SmolLM2VocabTests|FuzzingTests'
# The reduced real-model set.
reduced='GenerationTests/(testMaxTokens|testSeededSamplingIsReproducible|testStreamingChunksConcatenateToTheAnswer)|ConcurrencyTests/(testCancellingRunStopsWithin3008|testStoppingAStreamStopsGeneration|testConcurrentGreedyRequestsMatchSequentialOnes)|WorkerTests/testWorkerOverHTTP|SchedulerTests/testFullQueueIsCapacityError|ToolCallModelTests/testWorkerRoutes|SmolLM2VocabTests|FuzzingTests'

status=0
summary=()
for san in "${sanitizers[@]}"; do
    log=.build/sanitize-$san.log
    mkdir -p .build
    : > "$log"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:halt_on_error=1}
    export FUZZ_SCALE=${FUZZ_SCALE:-0.1}
    # time bounds in tests (cancellation within 0.5 s, tokenizer speed) scaled for instrumented builds
    export EDGEAI_TIME_SLACK=${EDGEAI_TIME_SLACK:-50}
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1}
    start=$(date +%s)
    swift build --build-tests --sanitize="$san" --scratch-path ".build/sanitize-$san" >>"$log" 2>&1 || { echo "$san: build failed (see $log)"; status=1; continue; }
    built=$(date +%s)
    # stdbuf: line-buffered test output, so the log shows progress while it runs
    stdbuf -oL -eL swift test --skip-build --sanitize="$san" --scratch-path ".build/sanitize-$san" --skip "$heavy" >>"$log" 2>&1
    rc1=$?
    mid=$(date +%s)
    stdbuf -oL -eL swift test --skip-build --sanitize="$san" --scratch-path ".build/sanitize-$san" --filter "$reduced" >>"$log" 2>&1
    rc2=$?
    end=$(date +%s)
    reports=$(grep -cE "ERROR: AddressSanitizer|WARNING: ThreadSanitizer|ERROR: ThreadSanitizer|runtime error:" "$log")
    line="$san: build $((built - start)) s, suites $((mid - built)) s (exit $rc1), reduced real-model set $((end - mid)) s (exit $rc2), sanitizer reports: $reports"
    summary+=("$line")
    echo "$line"
    grep -E "ERROR: AddressSanitizer|WARNING: ThreadSanitizer|SUMMARY: " "$log" | sort | uniq -c | head -20
    if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 0 ] || [ "$reports" -ne 0 ]; then status=1; fi
done
printf '%s\n' "${summary[@]}"
exit $status
