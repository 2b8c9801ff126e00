/* Layer normalisation over the last dimension with learned scale (gamma)
 * and shift (beta). */
#include <cjson/cJSON.h>
#include "kinds.h"

#define ST(l) LLM__STATE(llm__layernorm_state, l)

static llm_status layernorm_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    *out = *in;
    llm__layernorm_state *st = ST(l);
    int64_t F = in->d[in->ndim - 1];
    LLM__CHECK(llm__layer_param(l, "gamma", 1, F, 1, LLM__INIT_ONES, 0, &st->p.gamma));
    LLM__CHECK(llm__layer_param(l, "beta", 1, F, 1, LLM__INIT_ZEROS, 0, &st->p.beta));
    return LLM_OK;
}

static llm_status layernorm_backward(llm__graph *g, llm__node *n) {
    const llm__layernorm_state *st = ST((const llm_layer *)n->layer);
    llm__val *x = n->in[0], *y = n->out[0];
    float *dx = NULL;
    if (x->requires_grad) LLM__CHECK(llm__graph_grad(g, x, &dx));
    else LLM__CHECK(llm__graph_alloc_zero(g, (size_t)x->numel * 4, (void **)&dx)); /* discarded */
    float *ws;
    LLM__CHECK(llm__graph_alloc(g, (size_t)llm__rows(x) * 8, (void **)&ws));
    return g->be->ops->layernorm_backward(g->be, llm__rows(x), llm__last(x), x->data, st->p.gamma->data,
                                          n->saved[0], n->saved[1], y->grad, dx, st->p.gamma->grad,
                                          st->p.beta->grad, ws);
}

static llm_status layernorm_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const llm__layernorm_state *st = ST(l);
    int64_t rows = llm__rows(x), F = llm__last(x);
    llm__val *y;
    float *mean, *rstd;
    LLM__CHECK(llm__val_like(g, x, F, &y));
    y->requires_grad = 1;
    LLM__CHECK(llm__graph_alloc(g, (size_t)rows * 4, (void **)&mean));
    LLM__CHECK(llm__graph_alloc(g, (size_t)rows * 4, (void **)&rstd));
    LLM__CHECK(g->be->ops->layernorm_forward(g->be, rows, F, x->data, st->p.gamma->data, st->p.beta->data,
                                             st->eps, y->data, mean, rstd));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, layernorm_backward, &n));
    if (n) { n->layer = l; n->in[0] = x; n->out[0] = y; n->saved[0] = mean; n->saved[1] = rstd; }
    *out = y;
    return LLM_OK;
}

static llm_status layernorm_to_json(const llm_layer *l, cJSON *o) {
    return llm__json_add_float(o, "eps", ST(l)->eps);
}

static llm_layer *layernorm_from_json(const cJSON *o, int depth) {
    float eps;
    if (!llm__json_float(o, "eps", &eps)) return llm__json_bad("layernorm");
    return llm_layer_layernorm(eps);
}

const llm__layer_vt llm__layernorm_kind = {
    .kind = "layernorm", .state_size = sizeof(llm__layernorm_state), .build = layernorm_build,
    .forward = layernorm_forward, .to_json = layernorm_to_json, .from_json = layernorm_from_json,
};

llm_layer *llm_layer_layernorm(float eps) {
    if (!llm__eps_ok(eps))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_layernorm: eps = %g must be in (0, 1)", (double)eps);
    llm_layer *l = llm__layer_new(&llm__layernorm_kind);
    if (l->status == LLM_OK) ST(l)->eps = eps;
    return l;
}
