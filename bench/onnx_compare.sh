#!/bin/sh
# The seed model's inference in ONNX Runtime (CPU provider, onnxruntime-node)
# against libllm's own, side by side on this machine: the model lstm_bench
# builds (Embedding(20000, 64) -> LSTM(128) -> Dense(1, sigmoid), 200 ids per
# row) is saved, exported with llm_export and run by bench/onnx_bench.js on
# lstm_bench's inputs; each pair runs alternately ROUNDS times (default 5) at
# batch 32 and batch 1, both at THREADS threads (default 2: libllm's pool,
# ONNX Runtime's intra-op threads), and the table shows medians and the
# ratio libllm / ONNX Runtime (> 1: libllm is faster).
#   bench/onnx_compare.sh [ROUNDS]     (after make bench examples and make onnx-check,
#                                       which installs onnxruntime-node under build/)
set -eu
ROUNDS=${1:-5}
THREADS=${THREADS:-2}
BUILD=${BUILD:-build}
ORT=${ORT:-$BUILD/onnxruntime/node_modules}
STEPS=${STEPS:-30}
[ -x "$BUILD/bench/lstm_bench" ] && [ -x "$BUILD/bin/llm_export" ] || { echo "onnx_compare.sh: run 'make bench examples' first" >&2; exit 2; }
[ -d "$ORT/onnxruntime-node" ] || { echo "onnx_compare.sh: no onnxruntime-node in $ORT (make onnx-check installs it)" >&2; exit 2; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
"$BUILD/bench/lstm_bench" --mode infer --steps 1 --warmup 0 --save "$TMP/seed.safetensors" >/dev/null
"$BUILD/bin/llm_export" --quiet --model "$TMP/seed.safetensors" --onnx "$TMP/seed.onnx"

last() { sed -n "s/^$1=\([0-9.eE+-]*\).*/\1/p" | tail -1; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for batch in 32 1; do
    for r in $(seq "$ROUNDS"); do
        "$BUILD/bench/lstm_bench" --mode infer --batch $batch --threads "$THREADS" --steps "$STEPS" --warmup 3 \
            | last samples_per_s >> "$TMP/llm.$batch"
        NODE_PATH="$ORT" node bench/onnx_bench.js "$TMP/seed.onnx" --batch $batch --threads "$THREADS" \
            --steps "$STEPS" --warmup 3 | last samples_per_s >> "$TMP/ort.$batch"
    done
done
echo "date: $(date -u +%Y-%m-%d)  cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)  threads: $THREADS  rounds: $ROUNDS (medians)"
printf '%-26s %16s %16s %8s\n' "seed model inference" libllm "ONNX Runtime" ratio
for batch in 32 1; do
    o=$(median < "$TMP/llm.$batch"); p=$(median < "$TMP/ort.$batch")
    awk -v b="$batch" -v o="$o" -v p="$p" 'BEGIN { printf "%-26s %9.1f rows/s %9.1f rows/s %7.2fx\n", "batch " b, o, p, o / p;
        printf "%-26s %11.2f ms %14.2f ms\n", "  per batch", 1000 * b / o, 1000 * b / p }'
done
