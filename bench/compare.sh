#!/bin/sh
# libllm's benchmarks against their peers, side by side on this machine, in
# one table: ONNX Runtime (LSTM inference), KANN on OpenBLAS (LSTM
# training), PyTorch (LSTM and GPT training, peak memory) and OpenBLAS's own
# sgemm rate (the machine's GEMM peak). Every round runs each row's libllm
# command and then its peer's, row after row, ROUNDS times (default 3), so
# both sides see the same load; the table shows medians, the spread
# [min-max] of each side, and the ratio of the medians, > 1 meaning libllm
# is faster. A peer that is not installed is skipped with the reason.
#   bench/compare.sh [ROUNDS]     (after `make bench`)
#   PEERS=dir        the peer scripts (default ../shared/peers)
#   PY=python        a Python with torch (default /usr/bin/python3, Debian's)
#   ORT_NODE_PATH=d  node_modules where `npm install --ignore-scripts
#                    onnxruntime-node@1.30.0` ran (default /tmp/ortnode/node_modules)
#   KANN=dir         a KANN checkout (github attractivechaos/kann, default
#                    /tmp/kann): kann_lstm_bench.c is built against it with OpenBLAS
#   QUICK=1          fewer steps (a smoke run, not a measurement)
set -eu
ROUNDS=${1:-3}
PEERS=${PEERS:-../shared/peers}
PY=${PY:-/usr/bin/python3}
BIN=${BIN:-build/bench}
ORT_NODE_PATH=${ORT_NODE_PATH:-/tmp/ortnode/node_modules}
KANN=${KANN:-/tmp/kann}
# steps per measurement: an inference batch takes ~5 ms, so 100 of them (and
# 1000 messages) make a window long enough to average this host's load
STEPS=30; STEPSI=100; STEPS1=1000; [ "${QUICK:-0}" = 1 ] && STEPS=3 && STEPSI=3 && STEPS1=20
[ -x "$BIN/lstm_bench" ] && [ -x "$BIN/gpt_bench" ] || { echo "compare.sh: run 'make bench' first" >&2; exit 2; }
[ -d "$PEERS" ] || { echo "compare.sh: no peer scripts in $PEERS (set PEERS=)" >&2; exit 2; }
PEERS=$(cd "$PEERS" && pwd)
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# ---- which peers are here (each skip says why) ----
skip() { echo "skipped: $1" | tee -a "$TMP/skipped" >&2; }
have_torch=0; have_ort=0; have_kann=0; have_sgemm=0
if "$PY" -c 'import torch' 2>/dev/null; then have_torch=1
else skip "PyTorch: $PY cannot import torch (apt-get install python3-torch)"; fi
if ! command -v node >/dev/null 2>&1; then skip "ONNX Runtime: no node on PATH"
elif [ ! -d "$ORT_NODE_PATH/onnxruntime-node" ]; then
    skip "ONNX Runtime: no onnxruntime-node in $ORT_NODE_PATH (npm install --ignore-scripts onnxruntime-node@1.30.0 there, or set ORT_NODE_PATH)"
elif [ $have_torch = 0 ]; then skip "ONNX Runtime: the seed model is exported with PyTorch, which is missing"
elif "$PY" "$PEERS/export_seed_lstm.py" "$TMP/seed_lstm.onnx" >/dev/null 2>&1; then have_ort=1
else skip "ONNX Runtime: $PEERS/export_seed_lstm.py failed"; fi
if [ ! -f "$KANN/kann.c" ]; then skip "KANN: no checkout in $KANN (fetch github attractivechaos/kann there, or set KANN=)"
elif cc -O2 -DHAVE_PTHREAD -DHAVE_CBLAS -I"$KANN" $(pkg-config --cflags openblas 2>/dev/null) -o "$TMP/kann_bench" \
        "$PEERS/kann_lstm_bench.c" "$KANN/kann.c" "$KANN/kautodiff.c" -lopenblas -lpthread -lm 2>"$TMP/kann.log"; then have_kann=1
else skip "KANN: building $PEERS/kann_lstm_bench.c against $KANN failed ($(head -1 "$TMP/kann.log"))"; fi
if cc -O2 -o "$TMP/sgemm_peak" "$PEERS/sgemm_peak.c" -lopenblas 2>/dev/null; then have_sgemm=1
else skip "OpenBLAS sgemm peak: $PEERS/sgemm_peak.c did not build"; fi

val() { grep -o "$1=[0-9.eE+-]*" | tail -1 | cut -d= -f2; }
ours() { "$BIN/lstm_bench" "$@" 2>/dev/null | val samples_per_s; }
ort() { NODE_PATH="$ORT_NODE_PATH" node "$PEERS/ort_lstm_bench.js" "$TMP/seed_lstm.onnx" "$@" 2>/dev/null | val samples_per_s; }
torch() { (cd "$PEERS" && "$PY" "$@" 2>/dev/null) | val "$KEY"; }
# the faster of two rates (batch 1: each side at its best thread count)
best() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { print (a > b) ? a : b }'; }
rec() { [ -n "$2" ] && echo "$2" >> "$TMP/$1"; return 0; }

T2="--threads 2 --steps $STEPS --warmup 3"
TP="--threads 1 --blas-threads 2 --steps $STEPS --warmup 3" # PyTorch's best setting on 2 cores
for r in $(seq "$ROUNDS"); do
    rec infer32_2t.ours "$(ours --mode infer --threads 2 --steps $STEPSI --warmup 3)"
    [ $have_ort = 1 ] && rec infer32_2t.peer "$(ort 32 2 $STEPSI)"
    rec infer32_1t.ours "$(ours --mode infer --threads 1 --steps $STEPSI --warmup 3)"
    [ $have_ort = 1 ] && rec infer32_1t.peer "$(ort 32 1 $STEPSI)"
    rec infer1.ours "$(best "$(ours --mode infer --batch 1 --threads 1 --steps $STEPS1 --warmup 20)" \
                            "$(ours --mode infer --batch 1 --threads 2 --steps $STEPS1 --warmup 20)")"
    [ $have_ort = 1 ] && rec infer1.peer "$(best "$(ort 1 1 $STEPS1)" "$(ort 1 2 $STEPS1)")"
    rec train.ours "$(ours --mode train $T2)"
    [ $have_kann = 1 ] && rec train_kann.peer "$(OPENBLAS_NUM_THREADS=1 "$TMP/kann_bench" -t 2 -s 10 -w 2 2>/dev/null | val samples_per_s)"
    [ $have_torch = 1 ] && rec train_torch.peer "$(KEY=samples_per_s torch torch_lstm_bench.py --mode train $TP)"
    rec gpt.ours "$("$BIN/gpt_bench" $T2 2>/dev/null | val tokens_per_s)"
    [ $have_torch = 1 ] && rec gpt.peer "$(KEY=tokens_per_s torch torch_gpt_bench.py $TP)"
    if [ $have_sgemm = 1 ]; then
        rec sgemm1 "$(OPENBLAS_NUM_THREADS=1 "$TMP/sgemm_peak" 1024 1024 1024 2>/dev/null | sed -n 's/.*GFLOP\/s median=\([0-9.]*\).*/\1/p')"
        rec sgemm2 "$(OPENBLAS_NUM_THREADS=2 "$TMP/sgemm_peak" 1024 1024 1024 2>/dev/null | sed -n 's/.*GFLOP\/s median=\([0-9.]*\).*/\1/p')"
    fi
done
cp "$TMP/train.ours" "$TMP/train_kann.ours"; cp "$TMP/train.ours" "$TMP/train_torch.ours"

stats() { [ -s "$1" ] && sort -g "$1" | awk '{v[NR]=$1} END { m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print m, v[1], v[NR] }'; }
echo "date: $(date -u '+%Y-%m-%d %H:%M')  cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) cores" \
     " load: $(cut -d' ' -f1-3 /proc/loadavg)  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}  rounds: $ROUNDS"
printf '%-34s %-24s %-26s %-24s %7s\n' workload libllm peer "peer's" ratio
# row: file, label, peer name, unit (rate or ms: batch-1 latency per message)
row() {
    o=$(stats "$TMP/$1.ours") || o=""; p=$(stats "$TMP/$1.peer") || p=""
    [ -n "$o" ] || return 0
    if [ -z "$p" ]; then printf '%-34s %s\n' "$2" "(no $3: see skipped)"; return 0; fi
    echo "$o $p" | awk -v w="$2" -v n="$3" -v u="$4" '{
        if (u == "ms") { o = 1000 / $1; ol = 1000 / $3; oh = 1000 / $2; p = 1000 / $4; pl = 1000 / $6; ph = 1000 / $5; f = "%.3f [%.3f-%.3f]" }
        else { o = $1; ol = $2; oh = $3; p = $4; pl = $5; ph = $6; f = "%.0f [%.0f-%.0f]" }
        printf "%-34s %-24s %-26s %-24s %6.2fx\n", w, sprintf(f, o, ol, oh), n, sprintf(f, p, pl, ph), $1 / $4 }'
}
row infer32_2t "LSTM infer b32 2thr (samples/s)" "ONNX Runtime 1.30" rate
row infer32_1t "LSTM infer b32 1thr (samples/s)" "ONNX Runtime 1.30" rate
row infer1 "LSTM infer b1, best thr (ms/msg)" "ONNX Runtime 1.30" ms
row train_kann "LSTM train b32 2thr (samples/s)" "KANN+OpenBLAS kann_mt 2" rate
row train_torch "LSTM train b32 2thr (samples/s)" "PyTorch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)" rate
row gpt "GPT train 2thr (tokens/s)" "PyTorch" rate

# peak resident memory of one LSTM training run each (from getrusage of the child)
if [ $have_torch = 1 ]; then
    rss() { "$PY" -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }
    ro=$(rss "$BIN/lstm_bench" --mode train $T2)
    rp=$(cd "$PEERS" && rss "$PY" torch_lstm_bench.py --mode train $TP)
    awk -v o="$ro" -v p="$rp" 'BEGIN { printf "%-34s %-24s %-26s %-24s %6.2fx\n", "LSTM train peak RSS (MB)", sprintf("%.1f", o / 1024), "PyTorch", sprintf("%.1f", p / 1024), o / p }'
fi
# OpenBLAS's sgemm 1024^3 on 1 and 2 threads (measured in every round),
# and the LSTM training step's rate against it: FLOPs of one sample (seq
# 200, E 64, H 128) are forward 2*T*4H*(E+H), backward twice that
if [ $have_sgemm = 1 ]; then
    set -- $(stats "$TMP/sgemm1") $(stats "$TMP/sgemm2") $(stats "$TMP/train.ours")
    awk -v g1="$1" -v g1l="$2" -v g1h="$3" -v g2="$4" -v g2l="$5" -v g2h="$6" -v o="$7" 'BEGIN {
        f = 3 * 2 * 200 * 4 * 128 * (64 + 128);
        printf "OpenBLAS sgemm 1024^3 (GFLOP/s): %.1f [%.1f-%.1f] on 1 thread, %.1f [%.1f-%.1f] on 2\n", g1, g1l, g1h, g2, g2l, g2h;
        printf "LSTM training step: %.1f GFLOP/s on 2 threads = %.0f%% of sgemm 1024^3 on 2 threads (80%% = %.0f samples/s)\n",
               o * f / 1e9, 100 * o * f / 1e9 / g2, 0.8 * g2 * 1e9 / f }'
fi
[ -f "$TMP/skipped" ] && cat "$TMP/skipped"
exit 0
