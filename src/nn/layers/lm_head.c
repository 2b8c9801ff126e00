/* Language-model head: logits = x W^T with W [vocab, D], by default the token
 * table of the transformer_embedding before it (weight tying: fewer
 * parameters, and the output space shares the input's geometry). */
#include "../ops.h"

void llm_lm_head_options_init(llm_lm_head_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->vocab = 2;
    o->tie = 1;
    o->init_std = 0.02f;
}

static const llm__param *head_weight(const llm_layer *l) { return l->opt_i[1] ? l->tied : &l->params[0]; }

static llm_status lm_head_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    int64_t V = l->opt_i[0], D = in->d[in->ndim - 1];
    if (l->opt_i[1]) {
        const llm__param *t = l->tied;
        if (!t)
            return llm__error(LLM_ERR_STATE, "%s: a tied head needs a transformer_embedding before it", l->name);
        if (t->shape[0] != V || t->shape[1] != D)
            return llm__error(LLM_ERR_SHAPE, "%s: the tied token table is [%lld, %lld] but the head needs [%lld, %lld]",
                              l->name, (long long)t->shape[0], (long long)t->shape[1], (long long)V, (long long)D);
    } else {
        LLM__CHECK(llm__layer_param(l, "weight", 2, V, D, LLM__INIT_NORMAL, l->opt_f[0]));
    }
    *out = *in;
    out->d[out->ndim - 1] = V;
    return LLM_OK;
}

static llm_status lm_head_backward(llm__graph *g, llm__node *n) {
    const llm_layer *l = n->layer;
    const llm__param *W = head_weight(l);
    llm__val *x = n->in[0], *y = n->out[0];
    float *dx = NULL;
    if (x->requires_grad) LLM__CHECK(llm__graph_grad(g, x, &dx));
    return llm__linear_backward(g->be, llm__rows(x), llm__last(x), l->opt_i[0], x->data, W->data, y->grad, W->grad,
                                NULL, dx, 1);
}

static llm_status lm_head_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const llm__param *W = head_weight(l);
    llm__val *y;
    LLM__CHECK(llm__val_like(g, x, l->opt_i[0], &y));
    y->requires_grad = 1;
    LLM__CHECK(llm__linear_forward(g->be, llm__rows(x), llm__last(x), l->opt_i[0], x->data, W->data, NULL, y->data));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, lm_head_backward, &n));
    if (n) { n->layer = l; n->in[0] = x; n->out[0] = y; }
    *out = y;
    return LLM_OK;
}

const llm__layer_vt llm__lm_head_vt = { "lm_head", lm_head_build, lm_head_forward, NULL };

llm_layer *llm_layer_lm_head_ex(const llm_lm_head_options *opts) {
    static const char fn[] = "llm_layer_lm_head_ex";
    llm_lm_head_options o;
    llm_lm_head_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.vocab < 2 || o.vocab > INT32_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "lm_head: vocab = %lld must be in [2, 2^31)", (long long)o.vocab);
    if (!(o.init_std >= 0.0f && o.init_std < 1e3f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "lm_head: init_std must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__lm_head_vt);
    if (l->status != LLM_OK) return l;
    l->opt_i[0] = o.vocab;
    l->opt_i[1] = o.tie != 0;
    l->opt_f[0] = o.init_std;
    return l;
}

llm_layer *llm_layer_lm_head(int64_t vocab, int tie) {
    llm_lm_head_options o;
    llm_lm_head_options_init(&o);
    o.vocab = vocab;
    o.tie = tie;
    return llm_layer_lm_head_ex(&o);
}
