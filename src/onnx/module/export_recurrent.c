/* LSTM, GRU and their bidirectional wrapper as the ONNX LSTM and GRU
 * operators.
 *
 * Weights: ONNX stacks the gates in another order than libllm and PyTorch
 * (LSTM: i, o, f, c from libllm's i, f, g, o; GRU: z, r, h from r, z, n),
 * so W, R and B = [Wb, Rb] are new initializers with the blocks reordered.
 * libllm's GRU applies the reset gate to W_hn h + b_hn (PyTorch, Keras
 * reset_after), which is ONNX's linear_before_reset = 1.
 *
 * Padding: libllm carries the state over a padding step unchanged, so a
 * row's result is that of its real steps alone, read in order, wherever the
 * padding stands (before, after or among them). The graph packs each row's
 * real steps first (Gather by ex_steps_order), runs the operator with
 * sequence_lens = their number, and for a sequence output puts back at every
 * step t the state libllm has there (ex_steps_expand): forwards the state
 * after the last real step up to t, backwards after the real steps from t on,
 * zero before any. */
#include <stdio.h>
#include <string.h>
#include "exporter.h"

static const int lstm_blocks[4] = { 0, 3, 1, 2 }; /* ONNX i, o, f, c <- libllm i, f, g, o */
static const int gru_blocks[3] = { 1, 0, 2 };     /* ONNX z, r, h <- libllm r, z, n */

typedef struct rnn {
    int gru;
    int64_t H;
    int sequences;
    int parts;                /* 1, or 2 for bidirectional */
    char prefix[2][96];       /* tensor prefix of libllm's output part k */
    int reverse[2];           /* part k reads the row backwards */
} rnn;

/* The settings of a recurrent entry (a layer's own or a wrapped one). */
static llm_status read_entry(ex_ctx *x, const ex_layer *entry, rnn *r, int *go_backwards) {
    EX_CHECK(ex_int(x, entry, "units", 1, 1 << 20, &r->H));
    EX_CHECK(ex_bool(x, entry, "return_sequences", &r->sequences));
    return ex_bool(x, entry, "go_backwards", go_backwards);
}

/* W [parts, G H, E], R [parts, G H, H], B [parts, 2 G H] in ONNX's gate
 * order, direction d of ONNX (0 forward, 1 reverse) from part `part_of[d]`. */
static llm_status weights(ex_ctx *x, const ex_layer *l, const rnn *r, int64_t E, const int part_of[2],
                          const char *names[3]) {
    const int G = r->gru ? 3 : 4;
    const int *blocks = r->gru ? gru_blocks : lstm_blocks;
    const int64_t H = r->H, GH = G * H;
    float *W = ox_floats(x->g, (size_t)(r->parts * GH * E));
    float *R = ox_floats(x->g, (size_t)(r->parts * GH * H));
    float *B = ox_floats(x->g, (size_t)(r->parts * 2 * GH));
    if (!W || !R || !B) return ex_built(x, l);
    for (int d = 0; d < r->parts; d++) {
        const char *p = r->prefix[part_of[d]];
        const llm__onnx_tensor *wih, *whh, *bih, *bhh;
        EX_CHECK(ex_tensor(x, l, p, "weight_ih", 2, GH, E, &wih));
        EX_CHECK(ex_tensor(x, l, p, "weight_hh", 2, GH, H, &whh));
        EX_CHECK(ex_tensor(x, l, p, "bias_ih", 1, GH, 0, &bih));
        EX_CHECK(ex_tensor(x, l, p, "bias_hh", 1, GH, 0, &bhh));
        for (int j = 0; j < G; j++) {
            int64_t src = blocks[j] * H, dst = j * H;
            memcpy(W + (d * GH + dst) * E, wih->data + src * E, (size_t)(H * E) * sizeof *W);
            memcpy(R + (d * GH + dst) * H, whh->data + src * H, (size_t)(H * H) * sizeof *R);
            memcpy(B + d * 2 * GH + dst, bih->data + src, (size_t)H * sizeof *B);
            memcpy(B + d * 2 * GH + GH + dst, bhh->data + src, (size_t)H * sizeof *B);
        }
    }
    const int64_t n = r->parts;
    char name[96];
    snprintf(name, sizeof name, "%s.W", l->name);
    names[0] = ox_tensor(x->g, name, OX_FLOAT, 3, (const int64_t[]){ n, GH, E }, W);
    snprintf(name, sizeof name, "%s.R", l->name);
    names[1] = ox_tensor(x->g, name, OX_FLOAT, 3, (const int64_t[]){ n, GH, H }, R);
    snprintf(name, sizeof name, "%s.B", l->name);
    names[2] = ox_tensor(x->g, name, OX_FLOAT, 2, (const int64_t[]){ n, 2 * GH }, B);
    return LLM_OK;
}

static const char *gather_axis(ox *g, const char *op, const char *data, const char *index, int64_t axis) {
    Onnx__NodeProto *n = ox_node(g, op, 2, (const char *const[]){ data, index }, 1);
    ox_attr_int(g, n, "axis", axis);
    return ox_out(n, 0);
}

static const char *concat(ox *g, int count, const char *const *in, int64_t axis) {
    if (count == 1) return in[0];
    Onnx__NodeProto *n = ox_node(g, "Concat", count, in, 1);
    ox_attr_int(g, n, "axis", axis);
    return ox_out(n, 0);
}

/* Gathers [B, T, F] along T by an int64 [B, T] index. */
static const char *gather_steps(ox *g, const char *data, const char *index, int64_t T, int64_t F) {
    const char *idx = OX2(g, "Expand", OX2(g, "Unsqueeze", index, OX_I64S(g, 2)), OX_I64S(g, 1, T, F));
    return gather_axis(g, "GatherElements", data, idx, 1);
}

static llm_status recurrent(ex_ctx *x, const ex_layer *l, ex_val *v, const rnn *r) {
    EX_CHECK(ex_expect(x, l, v, 0, 2, "a sequence [T, features]"));
    ox *g = x->g;
    const int64_t T = v->dim[0], E = v->dim[1], H = r->H;
    /* ONNX's direction d runs part part_of[d]; part k is ONNX's dir_of[k] */
    int part_of[2] = { 0, 1 }, dir_of[2] = { 0, 1 };
    if (r->parts == 2 && r->reverse[0]) { part_of[0] = dir_of[0] = 1; part_of[1] = dir_of[1] = 0; }
    if (r->parts == 1) dir_of[0] = 0;
    const char *w[3] = { "", "", "" };
    EX_CHECK(weights(x, l, r, E, part_of, w));

    const char *X = v->name, *lens = "";
    if (v->mask) {
        X = gather_steps(g, X, ex_steps_order(x, v->mask, T), T, E);
        lens = ex_steps_lens(x, v->mask);
    }
    X = ex_transpose(x, X, 3, (const int64_t[]){ 1, 0, 2 }); /* [T, B, E]: ONNX's layout */
    Onnx__NodeProto *n = ox_node(g, r->gru ? "GRU" : "LSTM", 5, (const char *const[]){ X, w[0], w[1], w[2], lens }, 2);
    ox_attr_int(g, n, "hidden_size", H);
    ox_attr_str(g, n, "direction", r->parts == 2 ? "bidirectional" : r->reverse[0] ? "reverse" : "forward");
    if (r->gru) ox_attr_int(g, n, "linear_before_reset", 1);
    if (!r->sequences) ox_name_out(g, n, 0, ""); /* the last states alone: no Y */
    const char *Y = ox_out(n, 0), *Yh = ox_out(n, 1); /* [T, dirs, B, H], [dirs, B, H] */

    const char *part[2];
    if (!r->sequences) {
        for (int k = 0; k < r->parts; k++) part[k] = gather_axis(g, "Gather", Yh, ox_i64(g, dir_of[k]), 0);
        v->name = concat(g, r->parts, part, 1);
        /* a row of padding alone keeps libllm's zero state */
        if (v->mask) v->name = OX2(g, "Mul", v->name, ex_steps_nonempty(x, v->mask));
        v->rank = 1;
        v->dim[0] = r->parts * H;
        v->mask = NULL;
    } else {
        const char *Yb = ex_transpose(x, Y, 4, (const int64_t[]){ 2, 0, 1, 3 }); /* [B, T, dirs, H] */
        for (int k = 0; k < r->parts; k++) {
            part[k] = gather_axis(g, "Gather", Yb, ox_i64(g, dir_of[k]), 2);
            if (v->mask) {
                const char *index, *valid;
                ex_steps_expand(x, v->mask, r->reverse[k], T, &index, &valid);
                part[k] = OX2(g, "Mul", gather_steps(g, part[k], index, T, H), valid);
            }
        }
        v->name = concat(g, r->parts, part, 2);
        v->dim[1] = r->parts * H; /* the mask goes on, as in libllm */
    }
    return ex_built(x, l);
}

static llm_status single(ex_ctx *x, const ex_layer *l, ex_val *v, int gru) {
    rnn r;
    memset(&r, 0, sizeof r);
    r.gru = gru;
    r.parts = 1;
    EX_CHECK(read_entry(x, l, &r, &r.reverse[0]));
    snprintf(r.prefix[0], sizeof r.prefix[0], "%s", l->name);
    return recurrent(x, l, v, &r);
}

llm_status ex_lstm(ex_ctx *x, const ex_layer *l, ex_val *v) { return single(x, l, v, 0); }
llm_status ex_gru(ex_ctx *x, const ex_layer *l, ex_val *v) { return single(x, l, v, 1); }

/* libllm's bidirectional layer holds the wrapped layer as "forward" and a
 * copy reading the other way as "backward", and concatenates their outputs
 * in that order; one ONNX operator with direction "bidirectional" runs both. */
llm_status ex_bidirectional(ex_ctx *x, const ex_layer *l, ex_val *v) {
    ex_layer inner = *l;
    inner.spec = cJSON_GetObjectItemCaseSensitive(l->spec, "layer");
    inner.kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(inner.spec, "kind"));
    if (!cJSON_IsObject(inner.spec) || !inner.kind || (strcmp(inner.kind, "lstm") != 0 && strcmp(inner.kind, "gru") != 0))
        return ex_fail(x, l, LLM_ERR_FORMAT, "its 'layer' must be an lstm or gru entry");
    rnn r;
    memset(&r, 0, sizeof r);
    r.gru = strcmp(inner.kind, "gru") == 0;
    r.parts = 2;
    EX_CHECK(read_entry(x, &inner, &r, &r.reverse[0]));
    r.reverse[1] = !r.reverse[0];
    snprintf(r.prefix[0], sizeof r.prefix[0], "%s.forward", l->name);
    snprintf(r.prefix[1], sizeof r.prefix[1], "%s.backward", l->name);
    return recurrent(x, l, v, &r);
}
