#!/bin/sh
# libllm's benchmarks against their PyTorch peers, side by side on this
# machine: each pair runs alternately ROUNDS times (default 3) and the table
# shows medians and the ratio libllm / PyTorch (for ms per message, PyTorch /
# libllm, so > 1 always means libllm is faster). PyTorch runs at its best
# thread setting here (--threads 1 --blas-threads 2). Also prints the LSTM
# training step's share of OpenBLAS's own sgemm rate at the model's GEMM
# shapes. Usage: bench/compare.sh [ROUNDS]   (after `make bench`)
#   PEERS=dir   the peer scripts (default ../shared/peers)
#   QUICK=1     fewer steps (a smoke run, not a measurement)
# The last rows: peak resident memory (RSS) of an LSTM training run of each,
# and the training step's share of OpenBLAS's sgemm rate.
set -eu
ROUNDS=${1:-3}
PEERS=${PEERS:-../shared/peers}
PY=${PY:-/usr/bin/python3}
BIN=${BIN:-build/bench}
STEPS=30; [ "${QUICK:-0}" = 1 ] && STEPS=3
[ -x "$BIN/lstm_bench" ] && [ -x "$BIN/gpt_bench" ] || { echo "compare.sh: run 'make bench' first" >&2; exit 2; }
[ -f "$PEERS/torch_lstm_bench.py" ] || { echo "compare.sh: no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

last() { sed -n "s/^$1=\([0-9.eE+-]*\).*/\1/p" | tail -1; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# name | libllm command | peer command | key
run_pair() {
    name=$1; ours=$2; theirs=$3; key=$4
    for r in $(seq "$ROUNDS"); do
        sh -c "$ours" 2>/dev/null | last "$key" >> "$TMP/$name.ours"
        (cd "$PEERS" && sh -c "$theirs") 2>/dev/null | last "$key" >> "$TMP/$name.peer"
    done
}
T="--threads 2 --steps $STEPS --warmup 3"
P="--threads 1 --blas-threads 2 --steps $STEPS --warmup 3"
run_pair lstm_train "$BIN/lstm_bench --mode train $T" "$PY torch_lstm_bench.py --mode train $P" samples_per_s
run_pair lstm_infer32 "$BIN/lstm_bench --mode infer $T" "$PY torch_lstm_bench.py --mode infer $P" samples_per_s
run_pair lstm_infer1 "$BIN/lstm_bench --mode infer --batch 1 $T" "$PY torch_lstm_bench.py --mode infer --batch 1 $P" samples_per_s
run_pair gpt_train "$BIN/gpt_bench $T" "$PY torch_gpt_bench.py $P" tokens_per_s
run_pair lstm_train_1t "$BIN/lstm_bench --mode train --threads 1 --steps $STEPS" "$PY torch_lstm_bench.py --mode train --threads 1 --blas-threads 1 --steps $STEPS" samples_per_s
run_pair gpt_train_1t "$BIN/gpt_bench --threads 1 --steps $STEPS" "$PY torch_gpt_bench.py --threads 1 --blas-threads 1 --steps $STEPS" tokens_per_s

echo "date: $(date -u +%Y-%m-%d)  cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
printf '%-28s %14s %14s %8s\n' workload libllm pytorch ratio
for w in lstm_train lstm_infer32 lstm_infer1 gpt_train lstm_train_1t gpt_train_1t; do
    o=$(median < "$TMP/$w.ours"); p=$(median < "$TMP/$w.peer")
    case $w in
    lstm_infer1) awk -v o="$o" -v p="$p" 'BEGIN { printf "%-28s %11.2f ms %11.2f ms %7.2fx\n", "lstm_infer1 (ms/message)", 1000 / o, 1000 / p, o / p }' ;;
    *) awk -v w="$w" -v o="$o" -v p="$p" 'BEGIN { printf "%-28s %14.1f %14.1f %7.2fx\n", w, o, p, o / p }' ;;
    esac
done
# peak resident memory of one LSTM training run each (KiB, from getrusage of
# the child), and libllm's as a fraction of PyTorch's
rss() { "$PY" -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }
ro=$(rss "$BIN/lstm_bench" --mode train $T)
rp=$(cd "$PEERS" && rss "$PY" torch_lstm_bench.py --mode train $P)
awk -v o="$ro" -v p="$rp" 'BEGIN { printf "%-28s %11.1f MB %11.1f MB %7.2fx\n", "lstm_train peak RSS", o / 1024, p / 1024, o / p }'
# FLOPs of one LSTM training sample (seq 200, E 64, H 128): forward 2*T*4H*(E+H),
# backward twice that (input and weight gradients); OpenBLAS's rate at the
# step's shape [32 x 192] x [192 x 512] on this machine
if [ -f "$PEERS/sgemm_peak.c" ] && cc -O2 -o "$TMP/sgemm_peak" "$PEERS/sgemm_peak.c" -lopenblas 2>/dev/null; then
    peak=$(OPENBLAS_NUM_THREADS=2 "$TMP/sgemm_peak" 32 512 192 2>/dev/null | sed -n 's/.*GFLOP\/s median=\([0-9.]*\).*/\1/p' | head -1)
    o=$(median < "$TMP/lstm_train.ours")
    [ -n "$peak" ] && awk -v o="$o" -v peak="$peak" 'BEGIN { f = 3 * 2 * 200 * 4 * 128 * (64 + 128);
        printf "lstm training step: %.1f GFLOP/s = %.0f%% of OpenBLAS sgemm at 32x512x192 (%.1f GFLOP/s, 2 threads)\n",
               o * f / 1e9, 100 * o * f / 1e9 / peak, peak }'
fi
