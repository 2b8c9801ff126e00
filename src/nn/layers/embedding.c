/* Embedding: token ids [T] -> vectors [T, dim]; id 0 marks padding. */
#include <cjson/cJSON.h>
#include "kinds.h"

typedef struct embedding_state {
    llm_embedding_options opt;
    struct { llm__param *weight; } p;
} embedding_state;

#define ST(l) LLM__STATE(embedding_state, l)

void llm_embedding_options_init(llm_embedding_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->vocab = 2;
    o->dim = 1;
    o->mask_zero = 1;
    o->init_scale = 0.05f;
}

static llm_status embedding_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_I32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be int32 token ids", l->name);
    if (in->ndim != 1)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence of ids [T], got %d dimensions", l->name, in->ndim);
    embedding_state *st = ST(l);
    LLM__CHECK(llm__layer_param(l, "weight", 2, st->opt.vocab, st->opt.dim, LLM__INIT_UNIFORM, st->opt.init_scale,
                                &st->p.weight));
    out->dtype = LLM_DTYPE_F32;
    out->ndim = 2;
    out->d[0] = in->d[0];
    out->d[1] = st->opt.dim;
    return LLM_OK;
}

static llm_status embedding_backward(llm__graph *g, llm__node *n) {
    const embedding_state *st = ST((const llm_layer *)n->layer);
    llm__val *ids = n->in[0], *y = n->out[0];
    return g->be->ops->embedding_backward(g->be, ids->numel, st->opt.dim, ids->data, y->grad,
                                          st->opt.mask_zero ? 0 : -1, st->p.weight->grad);
}

static llm_status embedding_forward(llm_layer *l, llm__graph *g, llm__val *ids, llm__val **out) {
    const embedding_state *st = ST(l);
    int64_t shape[3] = { ids->shape[0], ids->shape[1], st->opt.dim };
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, shape, &y));
    y->requires_grad = 1;
    float *mask = NULL;
    if (st->opt.mask_zero) {
        LLM__CHECK(llm__graph_alloc(g, (size_t)ids->numel * 4, (void **)&mask));
        y->mask = mask;
    }
    LLM__CHECK(g->be->ops->embedding_forward(g->be, ids->numel, st->opt.dim, ids->data,
                                             st->p.weight->data, st->opt.mask_zero ? 0 : -1, y->data, mask));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, embedding_backward, &n));
    if (n) { n->layer = l; n->in[0] = ids; n->out[0] = y; }
    *out = y;
    return LLM_OK;
}

static int64_t embedding_input_vocab(const llm_layer *l) { return ST(l)->opt.vocab; }

/* init_scale is not in the file: loaded weights replace the initial ones */
static llm_status embedding_to_json(const llm_layer *l, cJSON *o) {
    const llm_embedding_options *opt = &ST(l)->opt;
    LLM__CHECK(llm__json_add_int(o, "vocab", opt->vocab));
    LLM__CHECK(llm__json_add_int(o, "dim", opt->dim));
    return llm__json_add_bool(o, "mask_zero", opt->mask_zero);
}

static llm_layer *embedding_from_json(const cJSON *o, int depth) {
    llm_embedding_options e;
    llm_embedding_options_init(&e);
    if (!llm__json_int(o, "vocab", LLM__JSON_I64, &e.vocab) || !llm__json_int(o, "dim", LLM__JSON_I64, &e.dim) ||
        !llm__json_bool(o, "mask_zero", &e.mask_zero))
        return llm__json_bad("embedding");
    return llm_layer_embedding_ex(&e);
}

const llm__layer_vt llm__embedding_kind = {
    .kind = "embedding", .state_size = sizeof(embedding_state), .build = embedding_build,
    .forward = embedding_forward, .to_json = embedding_to_json, .from_json = embedding_from_json,
    .input_vocab = embedding_input_vocab,
};

llm_layer *llm_layer_embedding_ex(const llm_embedding_options *opts) {
    llm_embedding_options o;
    llm_embedding_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_embedding_ex: opts is NULL");
    if (LLM__OPTIONS_MERGE(&o, opts, "llm_layer_embedding_ex") != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.vocab < 2 || o.vocab > INT32_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "embedding: vocab = %lld must be in [2, 2^31)", (long long)o.vocab);
    if (o.dim < 1 || o.dim > INT32_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "embedding: dim = %lld must be in [1, 2^31)", (long long)o.dim);
    if (!(o.init_scale >= 0.0f && o.init_scale < 1e6f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "embedding: init_scale must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__embedding_kind);
    if (l->status != LLM_OK) return l;
    o.mask_zero = o.mask_zero != 0;
    ST(l)->opt = o;
    return l;
}

llm_layer *llm_layer_embedding(int64_t vocab, int64_t dim) {
    llm_embedding_options o;
    llm_embedding_options_init(&o);
    o.vocab = vocab;
    o.dim = dim;
    return llm_layer_embedding_ex(&o);
}
