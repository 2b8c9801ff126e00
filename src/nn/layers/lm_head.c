/* Language-model head: logits = x W^T with W [vocab, D], by default the token
 * table of the transformer_embedding before it (weight tying: fewer
 * parameters, and the output space shares the input's geometry). */
#include <cjson/cJSON.h>
#include "kinds.h"

#define ST(l) LLM__STATE(llm__lm_head_state, l)

void llm_lm_head_options_init(llm_lm_head_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->vocab = 2;
    o->tie = 1;
    o->init_std = 0.02f;
}

static llm_status lm_head_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float", l->name);
    llm__lm_head_state *st = ST(l);
    int64_t V = st->opt.vocab, D = in->d[in->ndim - 1];
    if (st->opt.tie) {
        llm__param *t = l->tied;
        if (!t)
            return llm__error(LLM_ERR_STATE, "%s: a tied head needs a transformer_embedding before it", l->name);
        if (t->shape[0] != V || t->shape[1] != D)
            return llm__error(LLM_ERR_SHAPE, "%s: the tied token table is [%lld, %lld] but the head needs [%lld, %lld]",
                              l->name, (long long)t->shape[0], (long long)t->shape[1], (long long)V, (long long)D);
        st->p.weight = t;
    } else {
        LLM__CHECK(llm__layer_param(l, "weight", 2, V, D, LLM__INIT_NORMAL, st->opt.init_std, &st->p.weight));
    }
    *out = *in;
    out->d[out->ndim - 1] = V;
    return LLM_OK;
}

static llm_status lm_head_backward(llm__graph *g, llm__node *n) {
    const llm__lm_head_state *st = ST((const llm_layer *)n->layer);
    const llm__param *W = st->p.weight;
    llm__val *x = n->in[0], *y = n->out[0];
    float *dx = NULL;
    if (x->requires_grad) LLM__CHECK(llm__graph_grad(g, x, &dx));
    return llm__linear_backward(g->be, llm__rows(x), llm__last(x), st->opt.vocab, x->data, W->data, y->grad, W->grad,
                                NULL, dx, 1);
}

static llm_status lm_head_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const llm__lm_head_state *st = ST(l);
    const llm__param *W = st->p.weight;
    llm__val *y;
    LLM__CHECK(llm__val_like(g, x, st->opt.vocab, &y));
    y->requires_grad = 1;
    LLM__CHECK(llm__linear_forward(g->be, llm__rows(x), llm__last(x), st->opt.vocab, x->data, W->data, NULL, y->data));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, lm_head_backward, &n));
    if (n) { n->layer = l; n->in[0] = x; n->out[0] = y; }
    *out = y;
    return LLM_OK;
}

/* Tied: the token table of the nearest transformer_embedding before it. */
static llm__param *lm_head_shared(llm_layer *l, llm_layer *const *before, int n) {
    if (!ST(l)->opt.tie) return NULL;
    for (int j = n - 1; j >= 0; j--)
        if (before[j]->vt == &llm__transformer_embedding_kind)
            return LLM__STATE(llm__transformer_embedding_state, before[j])->p.token;
    return NULL;
}

/* init_std is not in the file: loaded weights replace the initial ones */
static llm_status lm_head_to_json(const llm_layer *l, cJSON *o) {
    LLM__CHECK(llm__json_add_int(o, "vocab", ST(l)->opt.vocab));
    return llm__json_add_bool(o, "tie", ST(l)->opt.tie);
}

static llm_layer *lm_head_from_json(const cJSON *o, int depth) {
    llm_lm_head_options h;
    llm_lm_head_options_init(&h);
    if (!llm__json_int(o, "vocab", LLM__JSON_I64, &h.vocab) || !llm__json_bool(o, "tie", &h.tie))
        return llm__json_bad("lm_head");
    return llm_layer_lm_head_ex(&h);
}

const llm__layer_vt llm__lm_head_kind = {
    .kind = "lm_head", .state_size = sizeof(llm__lm_head_state), .build = lm_head_build, .forward = lm_head_forward,
    .to_json = lm_head_to_json, .from_json = lm_head_from_json, .shared = lm_head_shared,
};

llm_layer *llm_layer_lm_head_ex(const llm_lm_head_options *opts) {
    static const char fn[] = "llm_layer_lm_head_ex";
    llm_lm_head_options o;
    llm_lm_head_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.vocab < 2 || o.vocab > INT32_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "lm_head: vocab = %lld must be in [2, 2^31)", (long long)o.vocab);
    if (!llm__init_std_ok(o.init_std))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "lm_head: init_std must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__lm_head_kind);
    if (l->status != LLM_OK) return l;
    o.tie = o.tie != 0;
    ST(l)->opt = o;
    return l;
}

llm_layer *llm_layer_lm_head(int64_t vocab, int tie) {
    llm_lm_head_options o;
    llm_lm_head_options_init(&o);
    o.vocab = vocab;
    o.tie = tie;
    return llm_layer_lm_head_ex(&o);
}
