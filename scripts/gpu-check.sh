#!/usr/bin/env bash
# `make gpu-check`: everything the CUDA backend promises, on a machine with an
# NVIDIA GPU and nvcc, in one run of under 8 minutes:
#   1. build libllm, the CUDA module, the examples, the benchmarks and the
#      tests (warnings as errors; retried without if only a newer compiler's
#      new warnings stop it);
#   2. run the GPU test suites with the CUDA backend required (a skipped GPU
#      is a failure here): op-by-op parity with the CPU and model-level parity;
#   3. spam_train for one epoch on data/spam-sample, on the GPU and on the
#      CPU, and compare;
#   4. bench/lstm_bench on the GPU (train and inference) and the CPU, bench/gpt_bench, and
#      PyTorch's cuDNN LSTM (the peer script) on the same GPU if available;
#   5. compute-sanitizer (memcheck) on the model-level parity runs, then every
#      test suite with this build, while the time budget lasts;
#   6. print a summary; the exit status is 0 only if everything passed.
#
# Self-sufficient on a GPU machine without a package registry: when the
# system lacks OpenBLAS, Check, cJSON or libmicrohttpd, the .deb files that
# `make gpu-deps` fetched into gpu-deps/ are unpacked (dpkg -x, or ar + tar)
# into build/gpu-prefix/ and the build points there; nothing is installed.
#
# Environment: CUDA_HOME or PATH for nvcc; PEERS_DIR for the peer benchmark
# scripts (default ../shared/peers); GPU_CHECK_JOBS for make -j;
# GPU_CHECK_BUILD for the build tree (default build); GPU_CHECK_FORCE_DEBS=1
# uses gpu-deps/ even where the system has the packages (to test that path);
# GPU_CHECK_LOGS_TO=dir copies the summary and the main logs there at the
# end; LLM_CUDA_TF32 is passed through. Logs go to $GPU_CHECK_BUILD/gpu-check/.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
BUILD=${GPU_CHECK_BUILD:-build}
OUT=$ROOT/$BUILD/gpu-check
mkdir -p "$OUT"
JOBS=${GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 4)}
START=$(date +%s)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
FAILED=0

say() { echo "gpu-check: $*"; }
note() { echo "$*" >>"$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - START )); }
finish() {
    {
        echo
        echo "================ gpu-check summary ($(elapsed) s) ================"
        cat "$SUMMARY"
        if [ "$FAILED" = 0 ]; then echo "gpu-check: PASSED"; else echo "gpu-check: FAILED"; fi
    } | tee "$OUT/report.txt"
    if [ -n "${GPU_CHECK_LOGS_TO:-}" ]; then
        mkdir -p "$GPU_CHECK_LOGS_TO"
        cp "$OUT/report.txt" "$GPU_CHECK_LOGS_TO/gpu-check-report.txt"
        (cd "$OUT" && tar -czf "$GPU_CHECK_LOGS_TO/gpu-check-logs.tar.gz" --exclude=cublas --exclude='*.safetensors' \
            --exclude=deps_probe ./*.log ./*.txt 2>/dev/null)
    fi
    exit "${1:-$FAILED}"
}
# The whole run should stay under 8 minutes: optional steps are skipped
# (and reported) once this many seconds have gone.
BUDGET=${GPU_CHECK_BUDGET:-420}
in_budget() {
    if [ "$(elapsed)" -lt "$BUDGET" ]; then return 0; fi
    fail "out of time budget ($BUDGET s): skipped $1"
    return 1
}
fail() { note "FAIL  $*"; FAILED=1; }

# ---- 0. the toolchain ----
NVCC=""
for c in ${CUDA_HOME:+$CUDA_HOME/bin/nvcc} "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc; do
    if [ -n "$c" ] && [ -x "$c" ]; then NVCC=$c; break; fi
done
if [ -z "$NVCC" ]; then
    say "no nvcc (looked in \$CUDA_HOME/bin, PATH and /usr/local/cuda/bin): cannot build the CUDA backend"
    fail "toolchain: no nvcc"
    finish 2
fi
note "nvcc  $NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
CC=${CC:-cc}
MAKEVARS=()

# cuBLAS: the toolkit's, else the one a pip wheel brought (PyTorch's
# nvidia-cublas), through a folder of links that the module's rpath names.
CUDA_ROOT=${NVCC%/bin/nvcc}
CUBLAS_DIR=""
for d in "$CUDA_ROOT/lib64" "$CUDA_ROOT/targets/x86_64-linux/lib" "$CUDA_ROOT/lib"; do
    if [ -e "$d/libcublas.so" ]; then CUBLAS_DIR=$d; break; fi
done
if [ -z "$CUBLAS_DIR" ] && command -v python3 >/dev/null 2>&1; then
    sites=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
    # shellcheck disable=SC2086
    f=$(find $sites -path '*nvidia*' -name 'libcublas.so.*' 2>/dev/null | head -1)
    if [ -n "$f" ]; then
        CUBLAS_DIR=$OUT/cublas
        mkdir -p "$CUBLAS_DIR"
        ln -sf "$f" "$CUBLAS_DIR/libcublas.so"
        ln -sf "$f" "$CUBLAS_DIR/$(basename "$f")"
        note "cublas from $f"
    fi
fi
if [ -z "$CUBLAS_DIR" ]; then
    fail "toolchain: no libcublas.so beside $NVCC nor in python's nvidia packages"
    finish 2
fi
MAKEVARS+=(CUDA_LIBDIR="$CUBLAS_DIR")

# ---- 1. dependencies: the system's, else the unpacked gpu-deps/ ----
probe_deps() {
    printf '#include <cblas.h>\n#include <check.h>\n#include <cjson/cJSON.h>\n#include <microhttpd.h>\nint main(void) { return 0; }\n' |
        "$CC" -x c - -o "$OUT/deps_probe" "$@" -lopenblas -lcheck -lsubunit -lcjson -lmicrohttpd -lm -lrt -lpthread \
        >"$OUT/deps_probe.log" 2>&1
}
if [ "${GPU_CHECK_FORCE_DEBS:-0}" != 1 ] && probe_deps; then
    note "deps  system packages"
else
    debs=(gpu-deps/*.deb)
    if [ ! -e "${debs[0]}" ]; then
        say "OpenBLAS/Check/cJSON/libmicrohttpd are missing (or GPU_CHECK_FORCE_DEBS=1) and gpu-deps/ holds no .deb files:"
        say "run 'make gpu-deps' on a machine with Debian's mirrors and bring gpu-deps/ along"
        fail "deps: missing (see $OUT/deps_probe.log)"
        finish 2
    fi
    P=$ROOT/$BUILD/gpu-prefix
    rm -rf "$P"
    mkdir -p "$P"
    for d in "${debs[@]}"; do
        if command -v dpkg-deb >/dev/null 2>&1; then
            dpkg-deb -x "$d" "$P" || { fail "deps: cannot unpack $d"; finish 2; }
        else
            t=$(mktemp -d)
            (cd "$t" && ar x "$ROOT/$d" && tar -xf data.tar.* -C "$P") || { fail "deps: cannot unpack $d"; finish 2; }
            rm -rf "$t"
        fi
    done
    MA=x86_64-linux-gnu
    L1=$P/usr/lib/$MA
    L2=$P/usr/lib/$MA/openblas-pthread
    DEP_CFLAGS="-isystem $P/usr/include -isystem $P/usr/include/$MA -isystem $P/usr/include/$MA/openblas-pthread"
    # DT_RPATH (not RUNPATH) so that libopenblas finds libgfortran in the
    # prefix too; LD_LIBRARY_PATH covers the rest (e.g. tests that exec).
    DEP_LDFLAGS="-L$L2 -L$L1 -Wl,--disable-new-dtags -Wl,-rpath,$L2 -Wl,-rpath,$L1 -Wl,-rpath-link,$L1"
    export LD_LIBRARY_PATH=$L2:$L1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # shellcheck disable=SC2086
    if ! probe_deps $DEP_CFLAGS $DEP_LDFLAGS; then
        fail "deps: the unpacked gpu-deps/ do not link (see $OUT/deps_probe.log)"
        finish 2
    fi
    MAKEVARS+=(PKG_CONFIG=false "CFLAGS=$DEP_CFLAGS" "LDFLAGS=$DEP_LDFLAGS")
    note "deps  ${#debs[@]} packages from gpu-deps/ unpacked in $BUILD/gpu-prefix"
fi

# ---- 2. build ----
say "building with $JOBS jobs (log: $OUT/build.log)"
T0=$(date +%s)
TARGETS=(lib examples bench "$BUILD/tests/run_tests")
MAKEVARS+=(BUILD="$BUILD" NVCC="$NVCC")
if make -j"$JOBS" "${MAKEVARS[@]}" "${TARGETS[@]}" >"$OUT/build.log" 2>&1; then
    note "build ok in $(( $(date +%s) - T0 )) s (warnings as errors)"
else
    say "the build with warnings as errors failed; retrying without -Werror"
    grep -E 'error|warning' "$OUT/build.log" | head -20
    if make -j"$JOBS" "${MAKEVARS[@]}" WARN="-Wall -Wextra -Wno-unused-parameter" NVCC_WERROR= \
        "${TARGETS[@]}" >>"$OUT/build.log" 2>&1; then
        fail "build: only without warnings as errors (see $OUT/build.log)"
    else
        tail -30 "$OUT/build.log"
        fail "build: failed (see $OUT/build.log)"
        finish 2
    fi
fi
if [ ! -f "$BUILD/lib/libllm-cuda.so" ]; then fail "build: no $BUILD/lib/libllm-cuda.so"; finish 2; fi

# ---- 3. is there a GPU? (after the build: the build path is checked either way) ----
cat >"$OUT/probe.c" <<'EOF'
#include <stdio.h>
#include <llm/llm.h>
int main(void) {
    int avail = 0;
    llm_backend_is_available(LLM_BACKEND_CUDA, &avail);
    if (!avail) { printf("%s\n", llm_last_error()); return 1; }
    llm_backend *be;
    if (llm_backend_create(&be, LLM_BACKEND_CUDA, NULL) != LLM_OK) { printf("%s\n", llm_last_error()); return 1; }
    char d[512];
    llm_backend_describe(be, d, sizeof d, NULL);
    printf("%s\n", d);
    llm_backend_free(be);
    return 0;
}
EOF
# shellcheck disable=SC2086
"$CC" -std=c11 -Iinclude ${DEP_CFLAGS:-} "$OUT/probe.c" -o "$BUILD/bin/gpu_probe" "$BUILD/lib/libllm.a" ${DEP_LDFLAGS:-} \
    -lopenblas -lcjson -lm -lpthread -ldl >"$OUT/probe_build.log" 2>&1 || { fail "probe: does not build"; finish 2; }
if ! DEVICE=$("$BUILD/bin/gpu_probe"); then
    say "the self-contained build worked, but there is no usable CUDA GPU here:"
    say "  $DEVICE"
    note "device NONE: $DEVICE"
    fail "no usable GPU: nothing GPU-side was checked"
    finish 3
fi
note "device $DEVICE"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    >"$OUT/nvidia-smi.txt" 2>&1 && note "       nvidia-smi: $(head -1 "$OUT/nvidia-smi.txt")"

# ---- 4. the GPU test suites, GPU required ----
# First the suites that run on the GPU (op-by-op parity in backend_ops, device
# and model-level parity in gpu); the CPU-only suites come last (step 8).
run_suites() { # log timeout [suite] -> Check's exit status
    local log=$1 limit=$2
    (cd tests && env LLM_BIN_DIR="../$BUILD/bin" LLM_TEST_REQUIRE_CUDA=1 ${3:+CK_RUN_SUITE=$3} \
        timeout "$limit" "../$BUILD/tests/run_tests") >"$OUT/$log" 2>&1
}
say "running the GPU test suites (log: $OUT/tests-gpu-suites.log)"
: >"$OUT/tests-gpu-suites.log"
for suite in gpu backend_ops; do
    T0=$(date +%s)
    run_suites "tests-$suite.log" 300 "$suite"
    rc=$?
    cat "$OUT/tests-$suite.log" >>"$OUT/tests-gpu-suites.log"
    line=$(grep -E '^[0-9]+%: Checks:' "$OUT/tests-$suite.log" | tail -1)
    note "tests $suite: ${line:-no Check summary} (exit $rc, $(( $(date +%s) - T0 )) s)"
    [ "$rc" = 0 ] || { fail "tests $suite (see $OUT/tests-$suite.log)"; grep -E ':[EF]:' "$OUT/tests-$suite.log" | head -40 | tee -a "$SUMMARY"; }
done
if grep -q "skipping target 'cuda'" "$OUT/tests-gpu-suites.log"; then fail "tests: backend_ops skipped the CUDA target"; fi
grep -E '^gpu parity|^backend_ops .*cuda' "$OUT/tests-gpu-suites.log" | sed 's/^/      /' >>"$SUMMARY"

# ---- 5. spam_train, one epoch, GPU and CPU ----
spam() { # backend -> log
    timeout 240 "$BUILD/bin/spam_train" --data data/spam-sample --model "$OUT/spam-$1.safetensors" --epochs 1 \
        --test-split 0.2 --backend "$1" --threads "$JOBS" >"$OUT/spam-$1.log" 2>&1
}
if [ ! -d data/spam-sample ]; then
    fail "spam: no data/spam-sample"
elif in_budget "spam_train"; then
    for b in cuda cpu; do
        T0=$(date +%s%N)
        if spam $b; then
            dt=$(( ($(date +%s%N) - T0) / 1000000 ))
            ep=$(grep -E '^epoch 1/1 loss=' "$OUT/spam-$b.log" | sed 's/ (best.*//')
            ta=$(grep -E '^test accuracy=' "$OUT/spam-$b.log")
            note "spam  $b: $ep; $ta; wall ${dt} ms"
        else
            fail "spam_train --backend $b (see $OUT/spam-$b.log)"
            tail -5 "$OUT/spam-$b.log"
        fi
    done
    lc=$(sed -n 's/^epoch 1\/1 loss=\([0-9.]*\).*/\1/p' "$OUT/spam-cuda.log")
    lp=$(sed -n 's/^epoch 1\/1 loss=\([0-9.]*\).*/\1/p' "$OUT/spam-cpu.log")
    if [ -n "$lc" ] && [ -n "$lp" ]; then
        if awk -v a="$lc" -v b="$lp" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 2e-3 + 2e-3 * b) }'; then
            note "      epoch loss cpu $lp vs cuda $lc: agree"
        else
            fail "spam_train: epoch loss cpu $lp vs cuda $lc differ"
        fi
    fi
fi

# ---- 5b. the real corpus on the GPU, when gpu-deps packed it ----
if [ -f gpu-data/spamassassin.tar.gz ] && in_budget "spam_train on the corpus"; then
    rm -rf "$OUT/corpus" && mkdir -p "$OUT/corpus" && tar -xzf gpu-data/spamassassin.tar.gz -C "$OUT/corpus"
    T0=$(date +%s%N)
    if timeout 180 "$BUILD/bin/spam_train" --data "$OUT/corpus/spamassassin/train" --model "$OUT/spam-corpus.safetensors" \
        --epochs 3 --test-split 0.2 --backend cuda >"$OUT/spam-corpus-cuda.log" 2>&1; then
        dt=$(( ($(date +%s%N) - T0) / 1000000 ))
        note "spam  corpus, cuda, 3 epochs: $(grep -E '^epoch 3/3 loss=' "$OUT/spam-corpus-cuda.log" | sed 's/ (best.*//'); $(grep -E '^test accuracy=' "$OUT/spam-corpus-cuda.log"); wall ${dt} ms"
    else
        fail "spam_train on the corpus (see $OUT/spam-corpus-cuda.log)"
        tail -5 "$OUT/spam-corpus-cuda.log"
    fi
    rm -rf "$OUT/corpus"
fi

# ---- 6. benchmarks ----
bench() { # label args... -> samples_per_s or tokens_per_s
    local label=$1
    shift
    if timeout 180 "$@" >"$OUT/bench-$label.log" 2>&1; then
        note "bench $label: $(sed -n 's/^samples_per_s=\(.*\)/\1 samples\/s/p; s/^tokens_per_s=\(.*\)/\1 tokens\/s/p' "$OUT/bench-$label.log") ($(grep -E '^steps=|^step_ms' "$OUT/bench-$label.log"))"
    else
        fail "bench $label (see $OUT/bench-$label.log)"
    fi
}
LB=$BUILD/bench/lstm_bench
# a GPT of a size where the GPU's arithmetic, not launch latency, sets the pace
GPT_LARGE="--vocab 256 --ctx 256 --dim 512 --layers 6 --heads 8 --batch 32"
if [ ! -x "$LB" ]; then
    fail "bench: no $LB"
elif in_budget "the benchmarks"; then
    bench cuda-train "$LB" --backend cuda --mode train --steps 50
    bench cuda-infer "$LB" --backend cuda --mode infer --steps 50
    bench cuda-train-b256 "$LB" --backend cuda --mode train --batch 256 --steps 20
    bench cpu-train "$LB" --backend cpu --mode train --threads "$JOBS" --steps 10 --warmup 2
    bench cpu-train-t4 "$LB" --backend cpu --mode train --threads 4 --steps 10 --warmup 2
    bench cuda-gpt "$BUILD/bench/gpt_bench" --backend cuda --steps 30
    bench cuda-gpt-large "$BUILD/bench/gpt_bench" --backend cuda $GPT_LARGE --steps 20
fi
PEERS=${PEERS_DIR:-../shared/peers}
[ -z "${PEERS_DIR:-}" ] && [ -d gpu-deps/peers ] && PEERS=gpu-deps/peers
PY=$(command -v python3 || true)
if [ -f "$PEERS/torch_lstm_bench.py" ] && [ -n "$PY" ] && "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    if in_budget "the PyTorch peer"; then
        bench torch-cuda-train "$PY" "$PEERS/torch_lstm_bench.py" --device cuda --mode train --steps 50
        bench torch-cuda-infer "$PY" "$PEERS/torch_lstm_bench.py" --device cuda --mode infer --steps 50
        bench torch-cuda-train-b256 "$PY" "$PEERS/torch_lstm_bench.py" --device cuda --mode train --batch 256 --steps 20
        bench torch-cuda-gpt "$PY" "$PEERS/torch_gpt_bench.py" --device cuda --steps 30
        bench torch-cuda-gpt-large "$PY" "$PEERS/torch_gpt_bench.py" --device cuda $GPT_LARGE --steps 20
        # the CPU side by side too, on this machine's cores
        bench torch-cpu-train "$PY" "$PEERS/torch_lstm_bench.py" --device cpu --mode train --threads "$JOBS" --steps 10 --warmup 2
        bench torch-cpu-train-t4 "$PY" "$PEERS/torch_lstm_bench.py" --device cpu --mode train --threads 4 --steps 10 --warmup 2
    fi
else
    note "peer  PyTorch LSTM skipped: needs $PEERS/torch_lstm_bench.py (set PEERS_DIR) and python3 with CUDA torch"
fi


# ---- 7. compute-sanitizer on the model-level parity runs ----
CS=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" "${NVCC%/nvcc}/compute-sanitizer"; do
    if [ -n "$c" ] && [ -x "$c" ]; then CS=$c; break; fi
done
if [ -z "$CS" ]; then
    note "sanitizer skipped: no compute-sanitizer beside $NVCC or on PATH"
elif in_budget "compute-sanitizer"; then
    T0=$(date +%s)
    (cd tests && LLM_BIN_DIR="../$BUILD/bin" LLM_TEST_REQUIRE_CUDA=1 CK_RUN_SUITE=gpu CK_RUN_CASE=parity CK_FORK=no \
        timeout 150 "$CS" --tool memcheck --leak-check full --error-exitcode 9 "../$BUILD/tests/run_tests") \
        >"$OUT/sanitizer.log" 2>&1
    rc=$?
    if [ "$rc" = 0 ]; then
        note "sanitizer memcheck on the gpu parity case: clean ($(( $(date +%s) - T0 )) s)"
    else
        fail "compute-sanitizer memcheck (exit $rc, see $OUT/sanitizer.log)"
        grep -E '^=========' "$OUT/sanitizer.log" | head -12 | tee -a "$SUMMARY"
    fi
fi

# ---- 8. the CPU test suites, with this build ----
if in_budget "the CPU test suites"; then
    say "running every test suite (log: $OUT/tests.log)"
    T0=$(date +%s)
    run_suites tests.log 360
    rc=$?
    line=$(grep -E '^[0-9]+%: Checks:' "$OUT/tests.log" | tail -1)
    note "tests all suites: ${line:-no Check summary} (exit $rc, $(( $(date +%s) - T0 )) s)"
    [ "$rc" = 0 ] || { fail "tests (see $OUT/tests.log)"; grep -E ':[EF]:' "$OUT/tests.log" | head -20 | tee -a "$SUMMARY"; }
fi

finish
