/* Embedding: token ids [T] -> vectors [T, dim]; id 0 marks padding. */
#include "../ops.h"

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
    LLM__CHECK(llm__layer_param(l, "weight", 2, l->opt_i[0], l->opt_i[1], LLM__INIT_UNIFORM, l->opt_f[0]));
    out->dtype = LLM_DTYPE_F32;
    out->ndim = 2;
    out->d[0] = in->d[0];
    out->d[1] = l->opt_i[1];
    return LLM_OK;
}

static llm_status embedding_backward(llm__graph *g, llm__node *n) {
    const llm_layer *l = n->layer;
    llm__val *ids = n->in[0], *y = n->out[0];
    return g->be->ops->embedding_backward(g->be, ids->numel, l->opt_i[1], ids->data, y->grad,
                                          l->opt_i[2] ? 0 : -1, l->params[0].grad);
}

static llm_status embedding_forward(llm_layer *l, llm__graph *g, llm__val *ids, llm__val **out) {
    int64_t shape[3] = { ids->shape[0], ids->shape[1], l->opt_i[1] };
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, shape, &y));
    y->requires_grad = 1;
    float *mask = NULL;
    if (l->opt_i[2]) {
        LLM__CHECK(llm__graph_alloc(g, (size_t)ids->numel * 4, (void **)&mask));
        y->mask = mask;
    }
    LLM__CHECK(g->be->ops->embedding_forward(g->be, ids->numel, l->opt_i[1], ids->data,
                                             l->params[0].data, l->opt_i[2] ? 0 : -1, y->data, mask));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, embedding_backward, &n));
    if (n) { n->layer = l; n->in[0] = ids; n->out[0] = y; }
    *out = y;
    return LLM_OK;
}

const llm__layer_vt llm__embedding_vt = { "embedding", embedding_build, embedding_forward, NULL };

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
    llm_layer *l = llm__layer_new(&llm__embedding_vt);
    if (l->status != LLM_OK) return l;
    l->opt_i[0] = o.vocab;
    l->opt_i[1] = o.dim;
    l->opt_i[2] = o.mask_zero != 0;
    l->opt_f[0] = o.init_scale;
    return l;
}

llm_layer *llm_layer_embedding(int64_t vocab, int64_t dim) {
    llm_embedding_options o;
    llm_embedding_options_init(&o);
    o.vocab = vocab;
    o.dim = dim;
    return llm_layer_embedding_ex(&o);
}
