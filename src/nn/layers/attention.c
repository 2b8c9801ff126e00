/* Multi-head self-attention layer [T, D] -> [T, D]: a fused QKV projection,
 * the backend's blockwise attention kernel, and the output projection. The
 * Transformer block uses the same pieces inline. */
#include "../ops.h"

void llm_attention_options_init(llm_attention_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->heads = 4;
    o->causal = 1;
    o->init_std = 0.02f;
}

enum { QKV_W, QKV_B, PROJ_W, PROJ_B };

static llm_status attention_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, D], got %d dimensions", l->name, in->ndim);
    int64_t D = in->d[1];
    if (D % l->opt_i[0])
        return llm__error(LLM_ERR_SHAPE, "%s: width %lld is not a multiple of %lld heads", l->name, (long long)D,
                          (long long)l->opt_i[0]);
    LLM__CHECK(llm__layer_param(l, "qkv_weight", 2, 3 * D, D, LLM__INIT_NORMAL, l->opt_f[0]));
    LLM__CHECK(llm__layer_param(l, "qkv_bias", 1, 3 * D, 1, LLM__INIT_ZEROS, 0));
    LLM__CHECK(llm__layer_param(l, "proj_weight", 2, D, D, LLM__INIT_NORMAL, l->opt_f[0]));
    LLM__CHECK(llm__layer_param(l, "proj_bias", 1, D, 1, LLM__INIT_ZEROS, 0));
    *out = *in;
    return LLM_OK;
}

/* saved[0] qkv [R, 3D], saved[1] att [R, D], saved[2] lse */
static llm_status attention_backward(llm__graph *g, llm__node *n) {
    const llm_layer *l = n->layer;
    const llm__param *P = l->params;
    llm_backend *be = g->be;
    llm__val *x = n->in[0], *y = n->out[0];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T;
    float *datt, *dqkv, *dx = NULL;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&datt));
    LLM__CHECK(llm__graph_alloc_zero(g, (size_t)(3 * R * D) * 4, (void **)&dqkv));
    LLM__CHECK(llm__linear_backward(be, R, D, D, n->saved[1], P[PROJ_W].data, y->grad, P[PROJ_W].grad,
                                    P[PROJ_B].grad, datt, 0));
    LLM__CHECK(llm__self_attention_backward(be, B, T, D, l->opt_i[0], (int)l->opt_i[1], n->saved[0], x->mask,
                                            n->saved[1], n->saved[2], datt, dqkv));
    if (x->requires_grad) LLM__CHECK(llm__graph_grad(g, x, &dx));
    return llm__linear_backward(be, R, D, 3 * D, x->data, P[QKV_W].data, dqkv, P[QKV_W].grad, P[QKV_B].grad, dx, 1);
}

static llm_status attention_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const llm__param *P = l->params;
    llm_backend *be = g->be;
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T, H = l->opt_i[0];
    float *qkv, *att, *lse = NULL;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(3 * R * D) * 4, (void **)&qkv));
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&att));
    if (g->training) LLM__CHECK(llm__graph_alloc(g, (size_t)(B * H * T) * 4, (void **)&lse));
    LLM__CHECK(llm__linear_forward(be, R, D, 3 * D, x->data, P[QKV_W].data, P[QKV_B].data, qkv));
    LLM__CHECK(llm__self_attention_forward(be, B, T, D, H, (int)l->opt_i[1], qkv, x->mask, att, lse));
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, x->shape, &y));
    y->mask = x->mask;
    y->requires_grad = 1;
    LLM__CHECK(llm__linear_forward(be, R, D, D, att, P[PROJ_W].data, P[PROJ_B].data, y->data));
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

const llm__layer_vt llm__attention_vt = { "attention", attention_build, attention_forward, NULL };

llm_layer *llm_layer_attention_ex(const llm_attention_options *opts) {
    static const char fn[] = "llm_layer_attention_ex";
    llm_attention_options o;
    llm_attention_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.heads < 1 || o.heads > 4096)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "attention: heads = %lld must be in [1, 4096]",
                                (long long)o.heads);
    if (!(o.init_std >= 0.0f && o.init_std < 1e3f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "attention: init_std must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__attention_vt);
    if (l->status != LLM_OK) return l;
    l->opt_i[0] = o.heads;
    l->opt_i[1] = o.causal != 0;
    l->opt_f[0] = o.init_std;
    return l;
}

llm_layer *llm_layer_attention(int64_t heads, int causal) {
    llm_attention_options o;
    llm_attention_options_init(&o);
    o.heads = heads;
    o.causal = causal;
    return llm_layer_attention_ex(&o);
}
