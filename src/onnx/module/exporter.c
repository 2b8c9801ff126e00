/* Helpers shared by the exporters (exporter.h): messages, the layer's entry
 * and tensors, linear layers, activations, reductions, and what the padding
 * mask gives. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "exporter.h"

/* ---- errors ---- */

llm_status ex_fail(ex_ctx *x, const ex_layer *l, llm_status status, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l) return x->host->error(status, "%s: layer %s: %s", x->set->fn, l->name, msg);
    return x->host->error(status, "%s: %s", x->set->fn, msg);
}

llm_status ex_built(ex_ctx *x, const ex_layer *l) {
    if (!ox_failed(x->g)) return LLM_OK;
    return ex_fail(x, l, LLM_ERR_OUT_OF_MEMORY, "out of memory building the ONNX graph");
}

/* ---- the layer's entry ---- */

llm_status ex_int(ex_ctx *x, const ex_layer *l, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l->spec, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != floor(v->valuedouble))
        return ex_fail(x, l, LLM_ERR_FORMAT, "'%s' must be an integer in [%lld, %lld] in libllm.architecture", key,
                       (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return LLM_OK;
}

llm_status ex_bool(ex_ctx *x, const ex_layer *l, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l->spec, key);
    if (!cJSON_IsBool(v)) return ex_fail(x, l, LLM_ERR_FORMAT, "'%s' must be true or false in libllm.architecture", key);
    *out = cJSON_IsTrue(v);
    return LLM_OK;
}

llm_status ex_float(ex_ctx *x, const ex_layer *l, const char *key, float lo, float hi, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l->spec, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return ex_fail(x, l, LLM_ERR_FORMAT, "'%s' must be a number in [%g, %g] in libllm.architecture", key,
                       (double)lo, (double)hi);
    /* the file holds the float libllm used, printed as a double */
    *out = (float)v->valuedouble;
    return LLM_OK;
}

llm_status ex_choice(ex_ctx *x, const ex_layer *l, const char *key, const char *const *names, int n, int *out) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l->spec, key));
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) { *out = i; return LLM_OK; }
    return ex_fail(x, l, LLM_ERR_FORMAT, "'%s' is %s%s%s, which this exporter does not know", key, s ? "'" : "",
                   s ? s : "missing", s ? "'" : "");
}

/* ---- tensors ---- */

static int find_tensor(const ex_ctx *x, const char *name) {
    for (int i = 0; i < x->view->n_tensors; i++)
        if (strcmp(x->view->tensors[i].name, name) == 0) return i;
    return -1;
}

static llm_status tensor_index(ex_ctx *x, const ex_layer *l, const char *prefix, const char *local, int ndim,
                               int64_t d0, int64_t d1, int *index) {
    char name[192];
    snprintf(name, sizeof name, "%s.%s", prefix, local);
    int i = find_tensor(x, name);
    const llm__onnx_tensor *t = i >= 0 ? &x->view->tensors[i] : NULL;
    if (!t) return ex_fail(x, l, LLM_ERR_FORMAT, "the model has no tensor %s", name);
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char want[64], have[96] = "";
        snprintf(want, sizeof want, ndim == 2 ? "[%lld, %lld]" : "[%lld]", (long long)d0, (long long)d1);
        for (int k = 0, n = 0; k < t->ndim && n < (int)sizeof have - 24; k++)
            n += snprintf(have + n, sizeof have - (size_t)n, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
        return ex_fail(x, l, LLM_ERR_FORMAT, "tensor %s is [%s], not %s", name, have, want);
    }
    *index = i;
    return LLM_OK;
}

llm_status ex_tensor(ex_ctx *x, const ex_layer *l, const char *prefix, const char *local, int ndim, int64_t d0,
                     int64_t d1, const llm__onnx_tensor **out) {
    int i;
    EX_CHECK(tensor_index(x, l, prefix, local, ndim, d0, d1, &i));
    *out = &x->view->tensors[i];
    return LLM_OK;
}

llm_status ex_param(ex_ctx *x, const ex_layer *l, const char *prefix, const char *local, int ndim, int64_t d0,
                    int64_t d1, const char **name) {
    int i;
    EX_CHECK(tensor_index(x, l, prefix, local, ndim, d0, d1, &i));
    if (!x->param_names[i]) {
        const llm__onnx_tensor *t = &x->view->tensors[i];
        x->param_names[i] = ox_tensor(x->g, t->name, OX_FLOAT, t->ndim, t->shape, t->data);
    }
    *name = x->param_names[i];
    return LLM_OK;
}

llm_status ex_expect(ex_ctx *x, const ex_layer *l, const ex_val *v, int ids, int rank, const char *what) {
    if (v->ids != ids || (rank >= 0 && v->rank != rank))
        return ex_fail(x, l, LLM_ERR_FORMAT, "its input must be %s", what);
    return LLM_OK;
}

/* ---- shared pieces ---- */

const char *ex_linear(ex_ctx *x, const ex_val *v, const char *W, const char *b, int64_t units) {
    ox *g = x->g;
    int64_t in = v->dim[v->rank - 1];
    const char *rows = v->rank == 1 ? v->name : OX2(g, "Reshape", v->name, OX_I64S(g, -1, in));
    const char *ins[3] = { rows, W, b };
    Onnx__NodeProto *n = ox_node(g, "Gemm", b ? 3 : 2, ins, 1);
    ox_attr_int(g, n, "transB", 1);
    if (v->rank == 1) return ox_out(n, 0);
    int64_t shape[EX_MAX_RANK + 1] = { -1 };
    for (int i = 0; i < v->rank - 1; i++) shape[1 + i] = v->dim[i];
    shape[v->rank] = units;
    return OX2(g, "Reshape", ox_out(n, 0), ox_i64s(g, v->rank + 1, shape));
}

const char *const ex_act_names[6] = { "none", "relu", "sigmoid", "tanh", "gelu", "softmax" };

/* libllm's GELU is the tanh form, 0.5 v (1 + tanh(k (v + a v^3))), which it
 * computes as v sigmoid(2 k (v + a v^3)); opset 20 has it as one operator. */
static const char *gelu_tanh(ex_ctx *x, const char *v) {
    ox *g = x->g;
    if (ox_opset(g) >= 20) {
        Onnx__NodeProto *n = ox_node(g, "Gelu", 1, &v, 1);
        ox_attr_str(g, n, "approximate", "tanh");
        return ox_out(n, 0);
    }
    const float k = 0.7978845608028654f, a = 0.044715f;
    const char *v3 = OX2(g, "Mul", OX2(g, "Mul", v, v), v);
    const char *u2 = OX2(g, "Mul", OX2(g, "Add", v, OX2(g, "Mul", v3, ox_f32(g, a))), ox_f32(g, 2.0f * k));
    return OX2(g, "Mul", v, OX1(g, "Sigmoid", u2));
}

const char *ex_activation(ex_ctx *x, const char *in, int act) {
    ox *g = x->g;
    switch (act) {
    case EX_ACT_RELU: return OX1(g, "Relu", in);
    case EX_ACT_SIGMOID: return OX1(g, "Sigmoid", in);
    case EX_ACT_TANH: return OX1(g, "Tanh", in);
    case EX_ACT_GELU: return gelu_tanh(x, in);
    case EX_ACT_SOFTMAX: {
        Onnx__NodeProto *n = ox_node(g, "Softmax", 1, &in, 1);
        ox_attr_int(g, n, "axis", -1);
        return ox_out(n, 0);
    }
    default: return in;
    }
}

const char *ex_transpose(ex_ctx *x, const char *in, int rank, const int64_t *perm) {
    Onnx__NodeProto *n = ox_node(x->g, "Transpose", 1, &in, 1);
    ox_attr_ints(x->g, n, "perm", rank, perm);
    return ox_out(n, 0);
}

const char *ex_layer_norm(ex_ctx *x, const char *in, const char *gamma, const char *beta, float eps) {
    Onnx__NodeProto *n = ox_node(x->g, "LayerNormalization", 3, (const char *const[]){ in, gamma, beta }, 1);
    ox_attr_int(x->g, n, "axis", -1);
    ox_attr_float(x->g, n, "epsilon", eps);
    return ox_out(n, 0);
}

const char *ex_reduce(ex_ctx *x, const char *op, const char *in, int64_t axis, int keepdims) {
    ox *g = x->g;
    /* ReduceSum takes its axes as an input from opset 13, the others from 18 */
    int as_input = strcmp(op, "ReduceSum") == 0 || ox_opset(g) >= 18;
    const char *ins[2] = { in, as_input ? ox_i64s(g, 1, &axis) : NULL };
    Onnx__NodeProto *n = ox_node(g, op, as_input ? 2 : 1, ins, 1);
    if (!as_input) ox_attr_ints(g, n, "axes", 1, &axis);
    ox_attr_int(g, n, "keepdims", keepdims);
    return ox_out(n, 0);
}

/* ---- the padding mask ---- */

/* The steps' values are made under the scope "mask", then the layer's again. */
static ex_steps *steps(ex_ctx *x, const char *mask) {
    if (!x->steps.of || strcmp(x->steps.of, mask) != 0) {
        memset(&x->steps, 0, sizeof x->steps);
        x->steps.of = mask;
    }
    ox_scope(x->g, "mask");
    return &x->steps;
}

static const char *done(ex_ctx *x, const char *value) {
    ox_scope(x->g, x->layers[x->at].name);
    return value;
}

static const char *cast(ox *g, const char *in, int to) {
    Onnx__NodeProto *n = ox_node(g, "Cast", 1, &in, 1);
    ox_attr_int(g, n, "to", to);
    return ox_out(n, 0);
}

static const char *steps_m64(ex_ctx *x, const char *mask) {
    ex_steps *s = steps(x, mask);
    if (!s->m64) s->m64 = cast(x->g, mask, OX_INT64);
    return done(x, s->m64);
}

const char *ex_steps_mf(ex_ctx *x, const char *mask) {
    ex_steps *s = steps(x, mask);
    if (!s->mf) s->mf = cast(x->g, mask, OX_FLOAT);
    return done(x, s->mf);
}

static const char *steps_count(ex_ctx *x, const char *mask) {
    const char *m64 = steps_m64(x, mask);
    ex_steps *s = steps(x, mask);
    if (!s->count) s->count = ex_reduce(x, "ReduceSum", m64, 1, 1);
    return done(x, s->count);
}

const char *ex_steps_nonempty(ex_ctx *x, const char *mask) {
    const char *count = steps_count(x, mask);
    ex_steps *s = steps(x, mask);
    if (!s->nonempty) s->nonempty = cast(x->g, OX2(x->g, "Greater", count, ox_i64(x->g, 0)), OX_FLOAT);
    return done(x, s->nonempty);
}

static const char *cumulative(ex_ctx *x, const char *mask) {
    const char *m64 = steps_m64(x, mask);
    ex_steps *s = steps(x, mask);
    if (!s->cum) s->cum = OX2(x->g, "CumSum", m64, ox_i64(x->g, 1));
    return done(x, s->cum);
}

/* The real steps first, in order, then the padding: the positions sorted by
 * t + T (1 - mask), all distinct, by TopK (smallest first). */
const char *ex_steps_order(ex_ctx *x, const char *mask, int64_t T) {
    const char *m64 = steps_m64(x, mask);
    ex_steps *s = steps(x, mask);
    if (!s->order) {
        ox *g = x->g;
        int64_t *pos = ox_alloc(g, (size_t)T * sizeof *pos);
        if (pos)
            for (int64_t t = 0; t < T; t++) pos[t] = t;
        const char *positions = pos ? ox_i64s(g, (int)T, pos) : "";
        const char *pad = OX2(g, "Sub", ox_i64(g, 1), m64);
        const char *key = OX2(g, "Add", positions, OX2(g, "Mul", pad, ox_i64(g, T)));
        Onnx__NodeProto *n = ox_node(g, "TopK", 2, (const char *const[]){ key, ox_i64s(g, 1, &T) }, 2);
        ox_attr_int(g, n, "axis", 1);
        ox_attr_int(g, n, "largest", 0);
        ox_attr_int(g, n, "sorted", 1);
        s->order = ox_out(n, 1);
    }
    return done(x, s->order);
}

/* sequence_lens: at least 1, since the ONNX spec does not promise what an
 * empty sequence gives; an empty row's outputs are zeroed instead. */
const char *ex_steps_lens(ex_ctx *x, const char *mask) {
    const char *count = steps_count(x, mask);
    ex_steps *s = steps(x, mask);
    if (!s->lens) {
        ox *g = x->g;
        const char *flat = OX2(g, "Squeeze", count, ox_i64s(g, 1, (const int64_t[]){ 1 }));
        s->lens = cast(g, OX2(g, "Max", flat, ox_i64(g, 1)), OX_INT32);
    }
    return done(x, s->lens);
}

/* Forwards, step t holds the state after the real steps up to t: packed
 * index cum[t] - 1, none while cum[t] = 0. Backwards, after the real steps
 * from t on: packed index cum[t] - mask[t] (the real steps before t), none
 * when that reaches count. */
void ex_steps_expand(ex_ctx *x, const char *mask, int reverse, int64_t T, const char **index, const char **valid) {
    const char *cum = cumulative(x, mask), *m64 = steps_m64(x, mask), *count = steps_count(x, mask);
    ex_steps *s = steps(x, mask);
    ox *g = x->g;
    const int64_t axis2[1] = { 2 };
    if (!reverse && !s->fwd_index) {
        s->fwd_index = OX2(g, "Max", OX2(g, "Sub", cum, ox_i64(g, 1)), ox_i64(g, 0));
        s->fwd_valid = OX2(g, "Unsqueeze", cast(g, OX2(g, "Greater", cum, ox_i64(g, 0)), OX_FLOAT),
                           ox_i64s(g, 1, axis2));
    }
    if (reverse && !s->rev_index) {
        const char *before = OX2(g, "Sub", cum, m64);
        s->rev_index = OX2(g, "Min", before, ox_i64(g, T - 1));
        s->rev_valid = OX2(g, "Unsqueeze", cast(g, OX2(g, "Less", before, count), OX_FLOAT), ox_i64s(g, 1, axis2));
    }
    *index = reverse ? s->rev_index : s->fwd_index;
    *valid = reverse ? s->rev_valid : s->fwd_valid;
    done(x, NULL);
}
