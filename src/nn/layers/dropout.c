/* Dropout: in training, zeroes each element with probability rate and scales
 * the rest by 1/(1-rate); identity in inference. */
#include <cjson/cJSON.h>
#include "kinds.h"
#include "../../core/rng.h"

typedef struct dropout_state { float rate; } dropout_state;
#define ST(l) LLM__STATE(dropout_state, l)

static llm_status dropout_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
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
    float rate = ST(l)->rate;
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

static llm_status dropout_to_json(const llm_layer *l, cJSON *o) {
    return llm__json_add_float(o, "rate", ST(l)->rate);
}

static llm_layer *dropout_from_json(const cJSON *o, int depth) {
    float rate;
    if (!llm__json_float(o, "rate", &rate)) return llm__json_bad("dropout");
    return llm_layer_dropout(rate);
}

const llm__layer_vt llm__dropout_kind = {
    .kind = "dropout", .state_size = sizeof(dropout_state), .build = dropout_build, .forward = dropout_forward,
    .to_json = dropout_to_json, .from_json = dropout_from_json,
};

llm_layer *llm_layer_dropout(float rate) {
    if (!(rate >= 0.0f && rate < 1.0f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_dropout: rate = %g must be in [0, 1)", (double)rate);
    llm_layer *l = llm__layer_new(&llm__dropout_kind);
    if (l->status == LLM_OK) ST(l)->rate = rate;
    return l;
}
