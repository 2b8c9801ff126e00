/* Shape-preserving layers without recurrence: Dropout, LayerNorm, and
 * global pooling over time. */
#include "../ops.h"
#include "../../core/rng.h"

/* ---- Dropout ---- */

static llm_status passthrough_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    *out = *in;
    return LLM_OK;
}

static llm_status dropout_backward(llm__graph *g, llm__node *n) {
    float *dx;
    LLM__CHECK(llm__graph_grad(g, n->in[0], &dx));
    return g->be->ops->dropout(g->be, n->in[0]->numel, n->f[0], n->u[0], 0, n->out[0]->grad, dx, 1);
}

static llm_status dropout_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    float rate = l->opt_f[0];
    if (!g->training || rate == 0.0f) { *out = x; return LLM_OK; }
    llm__val *y;
    LLM__CHECK(llm__val_like(g, x, llm__last(x), &y));
    y->mask = x->mask;
    /* a fresh mask each step and layer, reproducible from the model seed */
    uint64_t key = llm__rng_derive(g->dropout_key, l->seed);
    LLM__CHECK(g->be->ops->dropout(g->be, x->numel, rate, key, 0, x->data, y->data, 0));
    if (x->requires_grad) {
        llm__node *n;
        LLM__CHECK(llm__graph_node(g, dropout_backward, &n));
        if (n) { n->in[0] = x; n->out[0] = y; n->f[0] = rate; n->u[0] = key; }
    }
    *out = y;
    return LLM_OK;
}

static const llm__layer_vt dropout_vt = { "dropout", passthrough_build, dropout_forward, NULL };

llm_layer *llm_layer_dropout(float rate) {
    if (!(rate >= 0.0f && rate < 1.0f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_dropout: rate = %g must be in [0, 1)", (double)rate);
    llm_layer *l = llm__layer_new(&dropout_vt);
    if (l->status == LLM_OK) l->opt_f[0] = rate;
    return l;
}

/* ---- LayerNorm ---- */

static llm_status layernorm_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    LLM__CHECK(passthrough_build(l, in, out));
    int64_t F = in->d[in->ndim - 1];
    LLM__CHECK(llm__layer_param(l, "gamma", 1, F, 1, LLM__INIT_ONES, 0));
    LLM__CHECK(llm__layer_param(l, "beta", 1, F, 1, LLM__INIT_ZEROS, 0));
    return LLM_OK;
}

static llm_status layernorm_backward(llm__graph *g, llm__node *n) {
    const llm_layer *l = n->layer;
    llm__val *x = n->in[0], *y = n->out[0];
    float *dx = NULL;
    if (x->requires_grad) LLM__CHECK(llm__graph_grad(g, x, &dx));
    else LLM__CHECK(llm__graph_alloc_zero(g, (size_t)x->numel * 4, (void **)&dx)); /* discarded */
    float *ws;
    LLM__CHECK(llm__graph_alloc(g, (size_t)llm__rows(x) * 8, (void **)&ws));
    return g->be->ops->layernorm_backward(g->be, llm__rows(x), llm__last(x), x->data, l->params[0].data,
                                          n->saved[0], n->saved[1], y->grad, dx, l->params[0].grad,
                                          l->params[1].grad, ws);
}

static llm_status layernorm_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    int64_t rows = llm__rows(x), F = llm__last(x);
    llm__val *y;
    float *mean, *rstd;
    LLM__CHECK(llm__val_like(g, x, F, &y));
    y->requires_grad = 1;
    LLM__CHECK(llm__graph_alloc(g, (size_t)rows * 4, (void **)&mean));
    LLM__CHECK(llm__graph_alloc(g, (size_t)rows * 4, (void **)&rstd));
    LLM__CHECK(g->be->ops->layernorm_forward(g->be, rows, F, x->data, l->params[0].data, l->params[1].data,
                                             l->opt_f[0], y->data, mean, rstd));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, layernorm_backward, &n));
    if (n) { n->layer = l; n->in[0] = x; n->out[0] = y; n->saved[0] = mean; n->saved[1] = rstd; }
    *out = y;
    return LLM_OK;
}

static const llm__layer_vt layernorm_vt = { "layernorm", layernorm_build, layernorm_forward, NULL };

llm_layer *llm_layer_layernorm(float eps) {
    if (!(eps > 0.0f && eps < 1.0f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_layernorm: eps = %g must be in (0, 1)", (double)eps);
    llm_layer *l = llm__layer_new(&layernorm_vt);
    if (l->status == LLM_OK) l->opt_f[0] = eps;
    return l;
}

/* ---- global pooling over time ---- */

static llm_status pool_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    LLM__CHECK(passthrough_build(l, in, out));
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, features], got %d dimensions per sample "
                          "(use LLM_RETURN_SEQUENCES on the recurrent layer before it)", l->name, in->ndim);
    out->ndim = 1;
    out->d[0] = in->d[1];
    return LLM_OK;
}

static llm_status pool_backward(llm__graph *g, llm__node *n) {
    llm__val *x = n->in[0];
    float *dx;
    LLM__CHECK(llm__graph_grad(g, x, &dx));
    return g->be->ops->pool_backward(g->be, (int)n->i[0], x->shape[0], x->shape[1], x->shape[2], x->mask,
                                     n->saved[0], n->out[0]->grad, dx);
}

static llm_status pool_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    int64_t B = x->shape[0], T = x->shape[1], F = x->shape[2];
    int mode = l->opt_i[0] == LLM_POOL_MAX ? LLM__POOL_MAX : LLM__POOL_AVG;
    llm__val *y;
    int32_t *argmax = NULL;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 2, (int64_t[]){B, F}, &y));
    y->requires_grad = x->requires_grad;
    if (mode == LLM__POOL_MAX) LLM__CHECK(llm__graph_alloc(g, (size_t)(B * F) * 4, (void **)&argmax));
    LLM__CHECK(g->be->ops->pool_forward(g->be, mode, B, T, F, x->data, x->mask, y->data, argmax));
    if (x->requires_grad) {
        llm__node *n;
        LLM__CHECK(llm__graph_node(g, pool_backward, &n));
        if (n) { n->in[0] = x; n->out[0] = y; n->i[0] = mode; n->saved[0] = argmax; }
    }
    *out = y;
    return LLM_OK;
}

static const llm__layer_vt pool_vt = { "global_pool", pool_build, pool_forward, NULL };

llm_layer *llm_layer_global_pool(llm_pool_mode mode) {
    if (mode != LLM_POOL_AVERAGE && mode != LLM_POOL_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_global_pool: unknown mode %d", (int)mode);
    llm_layer *l = llm__layer_new(&pool_vt);
    if (l->status == LLM_OK) l->opt_i[0] = mode;
    return l;
}
