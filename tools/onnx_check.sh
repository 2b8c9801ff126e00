#!/bin/sh
# make onnx-check: every architecture spam_train makes, and a GPT from
# lm_train, trained briefly on data/spam-sample, exported with llm_export,
# checked by the ONNX checker (Debian's python3-onnx, with shape inference)
# and run in ONNX Runtime (onnxruntime-node from npm, installed once under
# $BUILD/onnxruntime) on 200 rows of real token ids (tools/onnx_rows.c: every
# length from one token to the full row, pre and post padding, padding
# among the tokens, a row of padding alone). ONNX Runtime's outputs must
# match llm_model_predict's (tools/predict_ids.c) within TOL, in one batch and
# one row at a time (tools/onnx_check.js).
#
#   tools/onnx_check.sh [BUILD]          (BUILD: the build folder, default build)
#
# Needs node and npm (the registry, the first time) and /usr/bin/python3 with
# onnx; `scripts/deps.sh onnx` installs them on Debian.
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=$BUILD/bin
OUT=$BUILD/onnx-check
DATA=data/spam-sample
ROWS=200
TOL=${TOL:-1e-5}
ORT_VERSION=1.30.0
ORT=$BUILD/onnxruntime
mkdir -p "$OUT"

for tool in node npm; do
    command -v $tool >/dev/null || { echo "onnx-check: $tool is missing (scripts/deps.sh onnx)"; exit 1; }
done
/usr/bin/python3 -c 'import onnx' 2>/dev/null || { echo "onnx-check: /usr/bin/python3 has no onnx (scripts/deps.sh onnx)"; exit 1; }
# --ignore-scripts: the package's install script fetches GPU binaries from a
# host outside the registry; the CPU runtime comes in the package itself
if [ ! -f "$ORT/node_modules/onnxruntime-node/package.json" ]; then
    echo "== installing onnxruntime-node@$ORT_VERSION into $ORT (npm)"
    npm install --prefix "$ORT" --ignore-scripts --no-audit --no-fund --loglevel=error \
        "onnxruntime-node@$ORT_VERSION" >/dev/null
fi

# name | program | its options (small and quick: a few seconds each; gpt2_classifier
# starts from the tiny GPT-2 of tests/data/gpt2 and pads with its end-of-text id)
MODELS='lstm|spam_train|--threshold 0.6
gru|spam_train|--gru
bilstm|spam_train|--bidirectional
bigru|spam_train|--bidirectional --gru
lstm_pool_max|spam_train|--pool max
lstm_pool_average|spam_train|--pool average --padding post
gru_dropout|spam_train|--gru --dropout 0.3 --pool max
bag_average|spam_train|--arch bag
bag_max|spam_train|--arch bag --pool max --hidden 0
two_branch|spam_train|--arch two-branch --hidden 16
transformer|spam_train|--arch transformer --embed 32 --layers 2 --heads 4 --bpe-vocab 600 --lr 3e-3
transformer_causal_pre|spam_train|--arch transformer --causal --padding pre --embed 32 --layers 1 --heads 2 --bpe-vocab 600 --lr 3e-3
gpt2_classifier|spam_train|--arch transformer --init tests/data/gpt2/hf --lr 3e-3 --seq 32
gpt|lm_train|--ctx 32 --dim 32 --layers 2 --heads 2 --batch 8 --steps 40 --tokenizer bpe --bpe-vocab 400'
SEQ=48
failed=0
check_model() { # name onnx_file model_file seq
    name=$1 onnx=$2 model=$3 seq=$4
    if ! /usr/bin/python3 - "$onnx" <<'EOF'
import sys, onnx
m = onnx.load(sys.argv[1])
if m.opset_import[0].version <= onnx.defs.onnx_opset_version():
    onnx.checker.check_model(m, full_check=True)
    how = "passes the ONNX checker"
else:
    how = "opset %d: newer than this onnx's checker, ONNX Runtime only" % m.opset_import[0].version
keys = [p.key for p in m.metadata_props]
print("  %s; %d nodes (%s); metadata: %s" % (how, len(m.graph.node),
      ", ".join(sorted({n.op_type for n in m.graph.node} & {"LSTM", "GRU", "LayerNormalization", "Softmax", "Gelu", "MatMul", "Gemm"})),
      ", ".join(k for k in keys if not k.startswith("libllm.vocab") and not k.startswith("libllm.bpe"))))
EOF
    then echo "  FAILED: the ONNX checker"; return 1; fi
    "$BIN/onnx_rows" "$model" "$DATA" "$seq" "$ROWS" > "$OUT/$name.rows" 2>"$OUT/$name.rows.log" || { cat "$OUT/$name.rows.log"; return 1; }
    grep -q "pad id [1-9]" "$OUT/$name.rows.log" && sed 's/.*(pad id/  rows padded with id/; s/)$//' "$OUT/$name.rows.log"
    "$BIN/predict_ids" "$model" < "$OUT/$name.rows" > "$OUT/$name.expected" || return 1
    NODE_PATH="$ORT/node_modules" node tools/onnx_check.js "$onnx" "$OUT/$name.rows" "$OUT/$name.expected" "$TOL" \
        > "$OUT/$name.result" 2>&1 || { cat "$OUT/$name.result"; return 1; }
    sed 's/^onnx_check: //' "$OUT/$name.result" | sed 's/^/  /'
}

echo "== onnx-check: $(echo "$MODELS" | wc -l) models (and one again at opset 21), $ROWS rows of $DATA each, tolerance $TOL"
echo "$MODELS" | while IFS='|' read -r name program opts; do
    model=$OUT/$name.safetensors onnx=$OUT/$name.onnx
    echo "-- $name: $program $opts"
    if [ "$program" = spam_train ]; then
        seq=$SEQ # a later --seq in the options wins (the tiny GPT-2's context is 32)
        case "$opts" in *"--seq "*) seq=$(echo "$opts" | sed 's/.*--seq \([0-9]*\).*/\1/') ;; esac
        # shellcheck disable=SC2086
        "$BIN/spam_train" --data "$DATA" --model "$model" --epochs 2 --seq $SEQ --vocab 2000 --embed 16 \
            --hidden 16 --lr 1e-2 --val-split 0 --quiet --checkpoint none $opts > "$OUT/$name.train.log" 2>&1
    else
        seq=32
        # shellcheck disable=SC2086
        "$BIN/lm_train" --data "$DATA" --model "$model" --quiet --checkpoint none $opts > "$OUT/$name.train.log" 2>&1
    fi || { cat "$OUT/$name.train.log"; echo "  FAILED: training"; exit 1; }
    "$BIN/llm_export" --quiet --model "$model" --onnx "$onnx" || { echo "  FAILED: llm_export"; exit 1; }
    check_model "$name" "$onnx" "$model" "$seq" || { echo "  FAILED: $name"; exit 1; }
    if [ "$name" = transformer_causal_pre ]; then # the same model at opset 21 (GELU as one Gelu operator)
        echo "-- $name at opset 21: llm_export --opset 21"
        "$BIN/llm_export" --quiet --opset 21 --model "$model" --onnx "$OUT/${name}_opset21.onnx" || exit 1
        check_model "${name}_opset21" "$OUT/${name}_opset21.onnx" "$model" "$seq" || { echo "  FAILED: opset 21"; exit 1; }
    fi
done || failed=1
sed -n 1p "$OUT/lstm.rows.log" 2>/dev/null | sed 's/^onnx_rows: /rows (each model): /'
if [ $failed -ne 0 ]; then echo "onnx-check: FAILED"; exit 1; fi
echo "onnx-check: passed"
