/* Global pooling over time: [T, F] -> [F], average or maximum over the real
 * (unmasked) steps. */
#include <cjson/cJSON.h>
#include "kinds.h"

typedef struct pool_state { llm_pool_mode mode; } pool_state;
#define ST(l) LLM__STATE(pool_state, l)

static const char *const mode_names[2] = { "average", "max" }; /* by llm_pool_mode */

static llm_status pool_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, features], got %d dimensions per sample "
                          "(use LLM_RETURN_SEQUENCES on the recurrent layer before it)", l->name, in->ndim);
    *out = *in;
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
    int mode = ST(l)->mode == LLM_POOL_MAX ? LLM__POOL_MAX : LLM__POOL_AVG;
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

static llm_status pool_to_json(const llm_layer *l, cJSON *o) {
    return llm__json_add_string(o, "mode", mode_names[ST(l)->mode]);
}

static llm_layer *pool_from_json(const cJSON *o, int depth) {
    int mode;
    if (!llm__json_enum(o, "mode", mode_names, 2, &mode)) return llm__json_bad("global_pool");
    return llm_layer_global_pool((llm_pool_mode)mode);
}

const llm__layer_vt llm__global_pool_kind = {
    .kind = "global_pool", .state_size = sizeof(pool_state), .build = pool_build, .forward = pool_forward,
    .to_json = pool_to_json, .from_json = pool_from_json,
};

llm_layer *llm_layer_global_pool(llm_pool_mode mode) {
    if (mode != LLM_POOL_AVERAGE && mode != LLM_POOL_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_global_pool: unknown mode %d", (int)mode);
    llm_layer *l = llm__layer_new(&llm__global_pool_kind);
    if (l->status == LLM_OK) ST(l)->mode = mode;
    return l;
}
