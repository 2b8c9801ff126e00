/* Activation functions: the shared forward/backward and the Activation layer. */
#include <cjson/cJSON.h>
#include "kinds.h"

typedef struct activation_state { llm_activation act; } activation_state;
#define ST(l) LLM__STATE(activation_state, l)

llm_status llm__val_like(llm__graph *g, const llm__val *x, int64_t last, llm__val **out) {
    int64_t shape[LLM_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = last;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, x->ndim, shape, out));
    (*out)->mask = x->ndim >= 3 ? x->mask : NULL;
    (*out)->requires_grad = x->requires_grad;
    return LLM_OK;
}

llm_status llm__act_apply(llm_backend *be, int act, int64_t rows, int64_t cols, const float *z,
                          float *y) {
    if (act == LLM_ACT_SOFTMAX) return be->ops->softmax_forward(be, rows, cols, z, y);
    if (act == LLM_ACT_NONE && y == z) return LLM_OK;
    return be->ops->bias_act_forward(be, act, rows, cols, z, NULL, y);
}

llm_status llm__act_grad(llm_backend *be, int act, int64_t rows, int64_t cols, const float *z,
                         const float *y, const float *dy, float *dz) {
    if (act == LLM_ACT_SOFTMAX) return be->ops->softmax_backward(be, rows, cols, y, dy, dz);
    if (act == LLM_ACT_NONE) return be->ops->axpy(be, rows * cols, 1.0f, dy, dz);
    return be->ops->act_backward(be, act, rows * cols, z, y, dy, dz);
}

static llm_status activation_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "activation: input must be float (put an embedding first)");
    *out = *in;
    return LLM_OK;
}

static llm_status activation_backward(llm__graph *g, llm__node *n) {
    llm__val *x = n->in[0], *y = n->out[0];
    float *dx;
    LLM__CHECK(llm__graph_grad(g, x, &dx));
    return llm__act_grad(g->be, (int)n->i[0], llm__rows(x), llm__last(x), x->data, y->data,
                         y->grad, dx);
}

static llm_status activation_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    int act = (int)ST(l)->act;
    llm__val *y;
    LLM__CHECK(llm__val_like(g, x, llm__last(x), &y));
    LLM__CHECK(llm__act_apply(g->be, act, llm__rows(x), llm__last(x), x->data, y->data));
    if (act == LLM_ACT_SIGMOID || act == LLM_ACT_SOFTMAX) {
        y->logits = x;
        y->logits_act = act == LLM_ACT_SIGMOID ? LLM__ACT_SIGMOID : LLM__ACT_SOFTMAX_MARK;
    }
    if (x->requires_grad) {
        llm__node *n;
        LLM__CHECK(llm__graph_node(g, activation_backward, &n));
        if (n) { n->in[0] = x; n->out[0] = y; n->i[0] = act; }
    }
    *out = y;
    return LLM_OK;
}

static llm_status activation_to_json(const llm_layer *l, cJSON *o) {
    return llm__json_add_string(o, "activation", llm__activation_names[ST(l)->act]);
}

static llm_layer *activation_from_json(const cJSON *o, int depth) {
    int act;
    if (!llm__json_enum(o, "activation", llm__activation_names, 6, &act)) return llm__json_bad("activation");
    return llm_layer_activation((llm_activation)act);
}

const llm__layer_vt llm__activation_kind = {
    .kind = "activation", .state_size = sizeof(activation_state), .build = activation_build,
    .forward = activation_forward, .to_json = activation_to_json, .from_json = activation_from_json,
};

llm_layer *llm_layer_activation(llm_activation act) {
    if ((int)act < LLM_ACT_NONE || (int)act > LLM_ACT_SOFTMAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_activation: unknown activation %d", (int)act);
    llm_layer *l = llm__layer_new(&llm__activation_kind);
    if (l->status == LLM_OK) ST(l)->act = act;
    return l;
}
