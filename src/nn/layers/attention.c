/* Multi-head self-attention layer [T, D] -> [T, D]: a fused QKV projection,
 * the backend's blockwise attention kernel, and the output projection. The
 * Transformer block uses the same pieces inline. */
#include <cjson/cJSON.h>
#include "kinds.h"

typedef struct attention_state {
    llm_attention_options opt;
    struct { llm__param *qkv_weight, *qkv_bias, *proj_weight, *proj_bias; } p;
} attention_state;

#define ST(l) LLM__STATE(attention_state, l)

void llm_attention_options_init(llm_attention_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->heads = 4;
    o->causal = 1;
    o->init_std = 0.02f;
}

static llm_status attention_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, D], got %d dimensions", l->name, in->ndim);
    attention_state *st = ST(l);
    int64_t D = in->d[1];
    float sd = st->opt.init_std;
    if (D % st->opt.heads)
        return llm__error(LLM_ERR_SHAPE, "%s: width %lld is not a multiple of %lld heads", l->name, (long long)D,
                          (long long)st->opt.heads);
    LLM__CHECK(llm__layer_param(l, "qkv_weight", 2, 3 * D, D, LLM__INIT_NORMAL, sd, &st->p.qkv_weight));
    LLM__CHECK(llm__layer_param(l, "qkv_bias", 1, 3 * D, 1, LLM__INIT_ZEROS, 0, &st->p.qkv_bias));
    LLM__CHECK(llm__layer_param(l, "proj_weight", 2, D, D, LLM__INIT_NORMAL, sd, &st->p.proj_weight));
    LLM__CHECK(llm__layer_param(l, "proj_bias", 1, D, 1, LLM__INIT_ZEROS, 0, &st->p.proj_bias));
    *out = *in;
    return LLM_OK;
}

/* saved[0] qkv [R, 3D], saved[1] att [R, D], saved[2] lse */
static llm_status attention_backward(llm__graph *g, llm__node *n) {
    const attention_state *st = ST((const llm_layer *)n->layer);
    llm_backend *be = g->be;
    llm__val *x = n->in[0], *y = n->out[0];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T;
    float *datt, *dqkv, *dx = NULL;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&datt));
    LLM__CHECK(llm__graph_alloc_zero(g, (size_t)(3 * R * D) * 4, (void **)&dqkv));
    LLM__CHECK(llm__linear_backward(be, R, D, D, n->saved[1], st->p.proj_weight->data, y->grad, st->p.proj_weight->grad,
                                    st->p.proj_bias->grad, datt, 0));
    LLM__CHECK(llm__self_attention_backward(be, B, T, D, st->opt.heads, st->opt.causal, n->saved[0], x->mask,
                                            n->saved[1], n->saved[2], datt, dqkv));
    if (x->requires_grad) LLM__CHECK(llm__graph_grad(g, x, &dx));
    return llm__linear_backward(be, R, D, 3 * D, x->data, st->p.qkv_weight->data, dqkv, st->p.qkv_weight->grad,
                                st->p.qkv_bias->grad, dx, 1);
}

static llm_status attention_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const attention_state *st = ST(l);
    llm_backend *be = g->be;
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T, H = st->opt.heads;
    float *qkv, *att, *lse = NULL;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(3 * R * D) * 4, (void **)&qkv));
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&att));
    if (g->training) LLM__CHECK(llm__graph_alloc(g, (size_t)(B * H * T) * 4, (void **)&lse));
    LLM__CHECK(llm__linear_forward(be, R, D, 3 * D, x->data, st->p.qkv_weight->data, st->p.qkv_bias->data, qkv));
    LLM__CHECK(llm__self_attention_forward(be, B, T, D, H, st->opt.causal, qkv, x->mask, att, lse));
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, x->shape, &y));
    y->mask = x->mask;
    y->requires_grad = 1;
    LLM__CHECK(llm__linear_forward(be, R, D, D, att, st->p.proj_weight->data, st->p.proj_bias->data, y->data));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, attention_backward, &n));
    if (n) {
        n->layer = l;
        n->in[0] = x;
        n->out[0] = y;
        n->saved[0] = qkv;
        n->saved[1] = att;
        n->saved[2] = lse;
    }
    *out = y;
    return LLM_OK;
}

/* init_std is not in the file: loaded weights replace the initial ones */
static llm_status attention_to_json(const llm_layer *l, cJSON *o) {
    LLM__CHECK(llm__json_add_int(o, "heads", ST(l)->opt.heads));
    return llm__json_add_bool(o, "causal", ST(l)->opt.causal);
}

static llm_layer *attention_from_json(const cJSON *o, int depth) {
    llm_attention_options a;
    llm_attention_options_init(&a);
    if (!llm__json_int(o, "heads", LLM__JSON_I64, &a.heads) || !llm__json_bool(o, "causal", &a.causal))
        return llm__json_bad("attention");
    return llm_layer_attention_ex(&a);
}

const llm__layer_vt llm__attention_kind = {
    .kind = "attention", .state_size = sizeof(attention_state), .build = attention_build,
    .forward = attention_forward, .to_json = attention_to_json, .from_json = attention_from_json,
};

llm_layer *llm_layer_attention_ex(const llm_attention_options *opts) {
    static const char fn[] = "llm_layer_attention_ex";
    llm_attention_options o;
    llm_attention_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.heads < 1 || o.heads > LLM__MAX_HEADS)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "attention: heads = %lld must be in [1, %d]",
                                (long long)o.heads, LLM__MAX_HEADS);
    if (!llm__init_std_ok(o.init_std))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "attention: init_std must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__attention_kind);
    if (l->status != LLM_OK) return l;
    o.causal = o.causal != 0;
    ST(l)->opt = o;
    return l;
}

llm_layer *llm_layer_attention(int64_t heads, int causal) {
    llm_attention_options o;
    llm_attention_options_init(&o);
    o.heads = heads;
    o.causal = causal;
    return llm_layer_attention_ex(&o);
}
