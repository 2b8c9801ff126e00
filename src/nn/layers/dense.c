/* Dense: y = act(x W^T + b) over the last dimension. W is [units, in] as in PyTorch. */
#include <cjson/cJSON.h>
#include "kinds.h"

#define ST(l) LLM__STATE(llm__dense_state, l)

void llm_dense_options_init(llm_dense_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->units = 1;
    o->activation = LLM_ACT_NONE;
    o->use_bias = 1;
}

static llm_status dense_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float; token ids need an embedding first", l->name);
    llm__dense_state *st = ST(l);
    int64_t units = st->opt.units, fan_in = in->d[in->ndim - 1];
    st->p.bias = NULL;
    LLM__CHECK(llm__layer_param(l, "weight", 2, units, fan_in, LLM__INIT_GLOROT, 0, &st->p.weight));
    if (st->opt.use_bias) LLM__CHECK(llm__layer_param(l, "bias", 1, units, 1, LLM__INIT_ZEROS, 0, &st->p.bias));
    *out = *in;
    out->d[out->ndim - 1] = units;
    return LLM_OK;
}

/* in[0] x [rows, F]; out[0] y, out[1] z (pre-activation) when distinct */
static llm_status dense_backward(llm__graph *g, llm__node *n) {
    const llm__dense_state *st = ST((const llm_layer *)n->layer);
    llm_backend *be = g->be;
    llm__val *x = n->in[0], *y = n->out[0], *z = n->out[1];
    int act = (int)st->opt.activation;
    int64_t rows = llm__rows(x), F = llm__last(x), units = st->opt.units;
    float *dz;
    if (!z) {
        dz = y->grad;
    } else {
        LLM__CHECK(llm__graph_alloc_zero(g, (size_t)(rows * units) * 4, (void **)&dz));
        if (y->grad) LLM__CHECK(llm__act_grad(be, act, rows, units, z->data, y->data, y->grad, dz));
        if (z->grad) LLM__CHECK(be->ops->axpy(be, rows * units, 1.0f, z->grad, dz));
    }
    const llm__param *W = st->p.weight;
    LLM__CHECK(be->ops->sgemm(be, 1, 0, (int)units, (int)F, (int)rows, 1.0f, dz, (int)units,
                              x->data, (int)F, 1.0f, W->grad, (int)F));
    if (st->p.bias) LLM__CHECK(be->ops->bias_backward(be, rows, units, dz, st->p.bias->grad));
    if (x->requires_grad) {
        float *dx;
        LLM__CHECK(llm__graph_grad(g, x, &dx));
        LLM__CHECK(be->ops->sgemm(be, 0, 0, (int)rows, (int)F, (int)units, 1.0f, dz, (int)units,
                                  W->data, (int)F, 1.0f, dx, (int)F));
    }
    return LLM_OK;
}

static llm_status dense_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    llm_backend *be = g->be;
    const llm__dense_state *st = ST(l);
    int64_t rows = llm__rows(x), F = llm__last(x), units = st->opt.units;
    int act = (int)st->opt.activation;
    const float *W = st->p.weight->data, *bias = st->p.bias ? st->p.bias->data : NULL;
    llm__val *z, *y;
    LLM__CHECK(llm__val_like(g, x, units, &z));
    z->requires_grad = 1;
    if (act == LLM_ACT_NONE) {
        LLM__CHECK(llm__linear_forward(be, rows, F, units, x->data, W, bias, z->data));
        y = z;
    } else {
        LLM__CHECK(llm__val_like(g, z, units, &y));
        if (act == LLM_ACT_SOFTMAX) {
            LLM__CHECK(llm__linear_forward(be, rows, F, units, x->data, W, bias, z->data));
            LLM__CHECK(llm__act_apply(be, act, rows, units, z->data, y->data));
        } else {
            LLM__CHECK(llm__linear_act_forward(be, rows, F, units, x->data, W, bias, act, z->data,
                                               y->data));
        }
        if (act == LLM_ACT_SIGMOID || act == LLM_ACT_SOFTMAX) {
            y->logits = z;
            y->logits_act = act == LLM_ACT_SIGMOID ? LLM__ACT_SIGMOID : LLM__ACT_SOFTMAX_MARK;
        }
    }
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, dense_backward, &n));
    if (n) {
        n->layer = l;
        n->in[0] = x;
        n->out[0] = y;
        n->out[1] = y == z ? NULL : z;
    }
    *out = y;
    return LLM_OK;
}

static llm_status dense_to_json(const llm_layer *l, cJSON *o) {
    const llm_dense_options *opt = &ST(l)->opt;
    LLM__CHECK(llm__json_add_int(o, "units", opt->units));
    LLM__CHECK(llm__json_add_string(o, "activation", llm__activation_names[opt->activation]));
    return llm__json_add_bool(o, "use_bias", opt->use_bias);
}

static llm_layer *dense_from_json(const cJSON *o, int depth) {
    llm_dense_options d;
    llm_dense_options_init(&d);
    int act;
    if (!llm__json_int(o, "units", LLM__JSON_I64, &d.units) || !llm__json_enum(o, "activation", llm__activation_names, 6, &act) ||
        !llm__json_bool(o, "use_bias", &d.use_bias))
        return llm__json_bad("dense");
    d.activation = (llm_activation)act;
    return llm_layer_dense_ex(&d);
}

const llm__layer_vt llm__dense_kind = {
    .kind = "dense", .state_size = sizeof(llm__dense_state), .build = dense_build, .forward = dense_forward,
    .to_json = dense_to_json, .from_json = dense_from_json,
};

llm_layer *llm_layer_dense_ex(const llm_dense_options *opts) {
    llm_dense_options o;
    llm_dense_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_dense_ex: opts is NULL");
    if (LLM__OPTIONS_MERGE(&o, opts, "llm_layer_dense_ex") != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.units < 1 || o.units > INT32_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "dense: units = %lld must be in [1, 2^31)", (long long)o.units);
    if ((int)o.activation < LLM_ACT_NONE || (int)o.activation > LLM_ACT_SOFTMAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "dense: unknown activation %d", (int)o.activation);
    llm_layer *l = llm__layer_new(&llm__dense_kind);
    if (l->status != LLM_OK) return l;
    o.use_bias = o.use_bias != 0;
    ST(l)->opt = o;
    return l;
}

llm_layer *llm_layer_dense(int64_t units, llm_activation activation) {
    llm_dense_options o;
    llm_dense_options_init(&o);
    o.units = units;
    o.activation = activation;
    return llm_layer_dense_ex(&o);
}
