/* Embeddings: ids [T] -> vectors [T, D] by Gather, and the padding mask
 * (id 0) when the layer has mask_zero. libllm looks padding ids up like any
 * other (row 0 of the table) and lets the mask tell later layers to skip
 * them; so does the graph. */
#include <math.h>
#include <stdio.h>
#include "exporter.h"

/* Gathers the rows of table for v's ids; with mask_zero, the mask hides the
 * ids equal to pad_id (0, or GPT-2's end-of-text for its classifiers). */
static void lookup(ex_ctx *x, ex_val *v, const char *table, int64_t dim, int mask_zero, int64_t pad_id) {
    ox *g = x->g;
    const char *ids = v->name;
    v->name = OX2(g, "Gather", table, ids);
    v->mask = mask_zero ? OX1(g, "Not", OX2(g, "Equal", ids, ox_i64(g, pad_id))) : NULL;
    v->ids = 0;
    v->rank = 2;
    v->dim[1] = dim;
}

llm_status ex_embedding(ex_ctx *x, const ex_layer *l, ex_val *v) {
    int64_t V, D;
    int mask_zero;
    const char *W;
    EX_CHECK(ex_expect(x, l, v, 1, 1, "the token ids [T]"));
    EX_CHECK(ex_int(x, l, "vocab", 2, INT32_MAX, &V));
    EX_CHECK(ex_int(x, l, "dim", 1, INT32_MAX, &D));
    EX_CHECK(ex_bool(x, l, "mask_zero", &mask_zero));
    EX_CHECK(ex_param(x, l, l->name, "weight", 2, V, D, &W));
    lookup(x, v, W, D, mask_zero, 0);
    return ex_built(x, l);
}

/* Token embedding plus positions counted from the row's first id (padding
 * included, as libllm does): learned rows of `position`, or the sinusoids
 * libllm computes, here a constant of their first T rows. */
llm_status ex_transformer_embedding(ex_ctx *x, const ex_layer *l, ex_val *v) {
    static const char *const positionals[] = { "learned", "sinusoidal", "none" };
    ox *g = x->g;
    int64_t V, ctx, D, T = v->dim[0];
    int mask_zero, positional;
    const char *W, *P = NULL;
    EX_CHECK(ex_expect(x, l, v, 1, 1, "the token ids [T]"));
    EX_CHECK(ex_int(x, l, "vocab", 2, INT32_MAX, &V));
    EX_CHECK(ex_int(x, l, "context", 1, INT32_MAX, &ctx));
    EX_CHECK(ex_int(x, l, "dim", 1, 1 << 16, &D));
    EX_CHECK(ex_choice(x, l, "positional", positionals, 3, &positional));
    EX_CHECK(ex_bool(x, l, "mask_zero", &mask_zero));
    int64_t pad_id = 0; /* written only when not 0 (libllm 1.3) */
    if (cJSON_GetObjectItemCaseSensitive(l->spec, "pad_id")) EX_CHECK(ex_int(x, l, "pad_id", 0, V - 1, &pad_id));
    if (T > ctx) return ex_fail(x, l, LLM_ERR_FORMAT, "rows of %lld ids exceed its context of %lld", (long long)T,
                                (long long)ctx);
    EX_CHECK(ex_param(x, l, l->name, "token", 2, V, D, &W));
    if (positional == 0) {
        const char *table;
        EX_CHECK(ex_param(x, l, l->name, "position", 2, ctx, D, &table));
        P = ox_op(g, "Slice", 4, (const char *const[]){ table, OX_I64S(g, 0), OX_I64S(g, T), OX_I64S(g, 0) });
    } else if (positional == 1) {
        float *t = ox_floats(g, (size_t)(T * D));
        /* the formula of src/nn/layers/transformer_embedding.c, in double as there */
        for (int64_t p = 0; t && p < T; p++)
            for (int64_t i = 0; i < D; i++) {
                double freq = pow(10000.0, -(double)(i & ~(int64_t)1) / (double)D);
                t[p * D + i] = (float)((i & 1) ? cos((double)p * freq) : sin((double)p * freq));
            }
        char name[96];
        snprintf(name, sizeof name, "%s.sinusoids", l->name);
        P = ox_tensor(g, name, OX_FLOAT, 2, (const int64_t[]){ T, D }, t);
    }
    lookup(x, v, W, D, mask_zero, pad_id);
    if (P) v->name = OX2(g, "Add", v->name, P);
    return ex_built(x, l);
}
