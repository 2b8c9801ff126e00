/* Multi-head self-attention and the pre-LayerNorm Transformer block (GPT-2):
 *     attention:  y = proj(attend(qkv(x)))
 *     block:      x2 = x + proj(attend(qkv(ln1(x))));  y = x2 + fc2(gelu(fc1(ln2(x2))))
 * with attend over heads as MatMul, Softmax, MatMul.
 *
 * libllm hides padding keys (mask) and, when causal, later keys; a query
 * that sees no key at all (a padding query before the first real token of a
 * pre-padded causal row, or a row of padding alone) gets zeros. The graph
 * adds -1e30 to the hidden scores (exp gives exactly 0 next to any visible
 * score) and multiplies the result by whether any key was visible. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "exporter.h"

#define HIDDEN (-1e30f)

/* The additive score mask [B|1, 1, T|1, T] and, with a padding mask, the
 * float [B, 1, T|1, 1] "some key is visible"; made once per graph. */
static void score_mask(ex_ctx *x, const char *mask, int causal, int64_t T, const char **bias, const char **any) {
    ox *g = x->g;
    *bias = *any = NULL;
    if (!mask && !causal) return;
    if (x->attn_bias && x->attn_bias_causal == causal &&
        ((!mask && !x->attn_bias_of) || (mask && x->attn_bias_of && strcmp(mask, x->attn_bias_of) == 0))) {
        *bias = x->attn_bias;
        *any = x->attn_any;
        return;
    }
    const char *tri = NULL; /* [1, 1, T, T]: 1 where key j <= query i */
    if (causal) {
        float *t = ox_floats(g, (size_t)(T * T));
        for (int64_t i = 0; t && i < T; i++)
            for (int64_t j = 0; j <= i; j++) t[i * T + j] = 1.0f;
        char name[48];
        snprintf(name, sizeof name, "attention.causal_%lld", (long long)T);
        tri = ox_tensor(g, name, OX_FLOAT, 4, (const int64_t[]){ 1, 1, T, T }, t);
    }
    const char *visible = tri;
    if (mask) {
        const char *keys = OX2(g, "Unsqueeze", ex_steps_mf(x, mask), OX_I64S(g, 1, 2)); /* [B, 1, 1, T] */
        visible = tri ? OX2(g, "Mul", keys, tri) : keys;
        *any = ex_reduce(x, "ReduceMax", visible, 3, 1);
    }
    /* visible 1 -> 0, hidden 0 -> -1e30 */
    *bias = OX2(g, "Mul", OX2(g, "Sub", visible, ox_f32(g, 1.0f)), ox_f32(g, -HIDDEN));
    x->attn_bias_of = mask;
    x->attn_bias_causal = causal;
    x->attn_bias = *bias;
    x->attn_any = *any;
}

/* qkv [B, T, 3D] (queries, keys, values) -> [B, T, D] */
static const char *attend(ex_ctx *x, const char *qkv, const char *mask, int64_t T, int64_t D, int64_t heads,
                          int causal) {
    ox *g = x->g;
    const int64_t d = D / heads;
    const char *split = OX2(g, "Reshape", qkv, OX_I64S(g, -1, T, 3, heads, d));
    const char *qkvh = ex_transpose(x, split, 5, (const int64_t[]){ 2, 0, 3, 1, 4 }); /* [3, B, heads, T, d] */
    const char *q = OX2(g, "Gather", qkvh, ox_i64(g, 0));
    const char *k = OX2(g, "Gather", qkvh, ox_i64(g, 1));
    const char *v = OX2(g, "Gather", qkvh, ox_i64(g, 2));
    const char *s = OX2(g, "MatMul", q, ex_transpose(x, k, 4, (const int64_t[]){ 0, 1, 3, 2 }));
    s = OX2(g, "Mul", s, ox_f32(g, (float)(1.0 / sqrt((double)d))));
    const char *bias, *any;
    score_mask(x, mask, causal, T, &bias, &any);
    if (bias) s = OX2(g, "Add", s, bias);
    const char *o = OX2(g, "MatMul", ex_activation(x, s, EX_ACT_SOFTMAX), v); /* [B, heads, T, d] */
    if (any) o = OX2(g, "Mul", o, any);
    o = ex_transpose(x, o, 4, (const int64_t[]){ 0, 2, 1, 3 });
    return OX2(g, "Reshape", o, OX_I64S(g, -1, T, D));
}

/* A linear map of a [T, in] sequence value to [T, units]. */
static const char *linear(ex_ctx *x, const ex_val *v, const char *in, const char *W, const char *b, int64_t units) {
    ex_val t = *v;
    t.name = in;
    return ex_linear(x, &t, W, b, units);
}

static llm_status heads_of(ex_ctx *x, const ex_layer *l, const ex_val *v, int64_t *heads, int *causal) {
    EX_CHECK(ex_expect(x, l, v, 0, 2, "a sequence [T, D]"));
    EX_CHECK(ex_int(x, l, "heads", 1, 4096, heads));
    EX_CHECK(ex_bool(x, l, "causal", causal));
    if (v->dim[1] % *heads)
        return ex_fail(x, l, LLM_ERR_FORMAT, "width %lld is not a multiple of %lld heads", (long long)v->dim[1],
                       (long long)*heads);
    return LLM_OK;
}

llm_status ex_attention(ex_ctx *x, const ex_layer *l, ex_val *v) {
    int64_t H;
    int causal;
    EX_CHECK(heads_of(x, l, v, &H, &causal));
    const int64_t T = v->dim[0], D = v->dim[1];
    const char *qkv_w, *qkv_b, *proj_w, *proj_b;
    EX_CHECK(ex_param(x, l, l->name, "qkv_weight", 2, 3 * D, D, &qkv_w));
    EX_CHECK(ex_param(x, l, l->name, "qkv_bias", 1, 3 * D, 0, &qkv_b));
    EX_CHECK(ex_param(x, l, l->name, "proj_weight", 2, D, D, &proj_w));
    EX_CHECK(ex_param(x, l, l->name, "proj_bias", 1, D, 0, &proj_b));
    const char *a = attend(x, linear(x, v, v->name, qkv_w, qkv_b, 3 * D), v->mask, T, D, H, causal);
    v->name = linear(x, v, a, proj_w, proj_b, D);
    return ex_built(x, l);
}

llm_status ex_transformer_block(ex_ctx *x, const ex_layer *l, ex_val *v) {
    static const char *const names[12] = { "ln1_gamma", "ln1_beta", "qkv_weight", "qkv_bias", "proj_weight",
                                           "proj_bias", "ln2_gamma", "ln2_beta", "fc1_weight", "fc1_bias",
                                           "fc2_weight", "fc2_bias" };
    int64_t H, M;
    int causal;
    float eps;
    EX_CHECK(heads_of(x, l, v, &H, &causal));
    EX_CHECK(ex_int(x, l, "mlp_hidden", 0, 1 << 20, &M));
    EX_CHECK(ex_float(x, l, "eps", 0.0f, 1.0f, &eps));
    const int64_t T = v->dim[0], D = v->dim[1];
    if (M == 0) M = 4 * D;
    const int64_t rows[12] = { D, D, 3 * D, 3 * D, D, D, D, D, M, M, D, D };
    const int64_t cols[12] = { 0, 0, D, 0, D, 0, 0, 0, D, 0, M, 0 };
    const char *p[12];
    for (int i = 0; i < 12; i++) EX_CHECK(ex_param(x, l, l->name, names[i], cols[i] ? 2 : 1, rows[i], cols[i], &p[i]));
    ox *g = x->g;
    const char *h1 = ex_layer_norm(x, v->name, p[0], p[1], eps);
    const char *a = attend(x, linear(x, v, h1, p[2], p[3], 3 * D), v->mask, T, D, H, causal);
    const char *x2 = OX2(g, "Add", v->name, linear(x, v, a, p[4], p[5], D));
    const char *h2 = ex_layer_norm(x, x2, p[6], p[7], eps);
    const char *f = ex_activation(x, linear(x, v, h2, p[8], p[9], M), EX_ACT_GELU);
    ex_val wide = *v;
    wide.dim[1] = M;
    v->name = OX2(g, "Add", x2, linear(x, &wide, f, p[10], p[11], D));
    return ex_built(x, l);
}
