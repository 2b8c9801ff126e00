/* Transformer input: token embedding plus a positional embedding (learned,
 * sinusoidal or none). ids [T] -> [T, D]; id 0 marks padding when mask_zero. */
#include <math.h>
#include <cjson/cJSON.h>
#include "kinds.h"

#define ST(l) LLM__STATE(llm__transformer_embedding_state, l)

void llm_transformer_embedding_options_init(llm_transformer_embedding_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->vocab = 2;
    o->context = 128;
    o->dim = 128;
    o->positional = LLM_POSITIONAL_LEARNED;
    o->mask_zero = 1;
    o->init_std = 0.02f;
    o->pad_id = 0;
}

static const char *const positional_names[3] = { "learned", "sinusoidal", "none" }; /* by llm_positional */

static llm_status temb_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_I32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be int32 token ids", l->name);
    if (in->ndim != 1)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence of ids [T], got %d dimensions", l->name, in->ndim);
    llm__transformer_embedding_state *st = ST(l);
    int64_t V = st->opt.vocab, ctx = st->opt.context, D = st->opt.dim;
    if (in->d[0] > ctx)
        return llm__error(LLM_ERR_SHAPE, "%s: sequences of %lld tokens exceed the context of %lld positions", l->name,
                          (long long)in->d[0], (long long)ctx);
    st->p.position = NULL;
    LLM__CHECK(llm__layer_param(l, "token", 2, V, D, LLM__INIT_NORMAL, st->opt.init_std, &st->p.token));
    if (st->opt.positional == LLM_POSITIONAL_LEARNED)
        LLM__CHECK(llm__layer_param(l, "position", 2, ctx, D, LLM__INIT_NORMAL, st->opt.init_std, &st->p.position));
    if (st->opt.positional == LLM_POSITIONAL_SINUSOIDAL && !st->host_table) {
        float *t = llm__malloc((size_t)(ctx * D) * sizeof *t);
        if (!t) return llm__oom(l->name);
        for (int64_t p = 0; p < ctx; p++)
            for (int64_t i = 0; i < D; i++) {
                double freq = pow(10000.0, -(double)(i & ~(int64_t)1) / (double)D);
                t[p * D + i] = (float)((i & 1) ? cos((double)p * freq) : sin((double)p * freq));
            }
        st->host_table = t;
    }
    out->dtype = LLM_DTYPE_F32;
    out->ndim = 2;
    out->d[0] = in->d[0];
    out->d[1] = D;
    return LLM_OK;
}

static llm_status temb_backward(llm__graph *g, llm__node *n) {
    const llm__transformer_embedding_state *st = ST((const llm_layer *)n->layer);
    llm_backend *be = g->be;
    llm__val *ids = n->in[0], *y = n->out[0];
    int64_t B = ids->shape[0], T = ids->shape[1], D = st->opt.dim;
    LLM__CHECK(be->ops->embedding_backward(be, ids->numel, D, ids->data, y->grad, st->opt.mask_zero ? st->opt.pad_id : -1,
                                           st->p.token->grad));
    if (st->p.position)
        for (int64_t b = 0; b < B; b++)
            LLM__CHECK(be->ops->copy_rows(be, T, D, y->grad + b * T * D, D, st->p.position->grad, D, 1));
    return LLM_OK;
}

llm_status llm__add_positions(llm_layer *l, llm__graph *g, float *y, int64_t B, int64_t T, int64_t first) {
    llm_backend *be = g->be;
    const llm__transformer_embedding_state *st = ST(l);
    int64_t D = st->opt.dim;
    const float *pos;
    if (st->opt.positional == LLM_POSITIONAL_NONE) return LLM_OK;
    if (st->opt.positional == LLM_POSITIONAL_LEARNED) {
        pos = st->p.position->data + first * D;
    } else {
        float *dev;
        LLM__CHECK(llm__graph_alloc(g, (size_t)(T * D) * 4, (void **)&dev));
        LLM__CHECK(be->ops->copy_h2d(be, dev, st->host_table + first * D, (size_t)(T * D) * 4));
        pos = dev;
    }
    for (int64_t b = 0; b < B; b++) LLM__CHECK(be->ops->copy_rows(be, T, D, pos, D, y + b * T * D, D, 1));
    return LLM_OK;
}

static llm_status temb_forward(llm_layer *l, llm__graph *g, llm__val *ids, llm__val **out) {
    const llm__transformer_embedding_state *st = ST(l);
    int64_t B = ids->shape[0], T = ids->shape[1], D = st->opt.dim;
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, (int64_t[]){ B, T, D }, &y));
    y->requires_grad = 1;
    float *mask = NULL;
    if (st->opt.mask_zero) {
        LLM__CHECK(llm__graph_alloc(g, (size_t)ids->numel * 4, (void **)&mask));
        y->mask = mask;
    }
    LLM__CHECK(g->be->ops->embedding_forward(g->be, ids->numel, D, ids->data, st->p.token->data,
                                             st->opt.mask_zero ? st->opt.pad_id : -1, y->data, mask));
    LLM__CHECK(llm__add_positions(l, g, y->data, B, T, 0));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, temb_backward, &n));
    if (n) { n->layer = l; n->in[0] = ids; n->out[0] = y; }
    *out = y;
    return LLM_OK;
}

static void temb_destroy(llm_layer *l) { llm__free(ST(l)->host_table); }

static int64_t temb_input_vocab(const llm_layer *l) { return ST(l)->opt.vocab; }

/* init_std is not in the file: loaded weights replace the initial ones */
static llm_status temb_to_json(const llm_layer *l, cJSON *o) {
    const llm_transformer_embedding_options *opt = &ST(l)->opt;
    LLM__CHECK(llm__json_add_int(o, "vocab", opt->vocab));
    LLM__CHECK(llm__json_add_int(o, "context", opt->context));
    LLM__CHECK(llm__json_add_int(o, "dim", opt->dim));
    LLM__CHECK(llm__json_add_string(o, "positional", positional_names[opt->positional]));
    LLM__CHECK(llm__json_add_bool(o, "mask_zero", opt->mask_zero));
    if (opt->pad_id) LLM__CHECK(llm__json_add_int(o, "pad_id", opt->pad_id)); /* absent: 0 (files before pad_id) */
    return LLM_OK;
}

static llm_layer *temb_from_json(const cJSON *o, int depth) {
    llm_transformer_embedding_options e;
    llm_transformer_embedding_options_init(&e);
    int positional;
    int64_t pad = 0;
    if (!llm__json_int(o, "vocab", LLM__JSON_I64, &e.vocab) || !llm__json_int(o, "context", LLM__JSON_I64, &e.context) ||
        !llm__json_int(o, "dim", LLM__JSON_I64, &e.dim) || !llm__json_bool(o, "mask_zero", &e.mask_zero) ||
        !llm__json_enum(o, "positional", positional_names, 3, &positional) ||
        (cJSON_GetObjectItemCaseSensitive(o, "pad_id") && !llm__json_int(o, "pad_id", INT32_MIN, INT32_MAX, &pad)))
        return llm__json_bad("transformer_embedding");
    e.positional = (llm_positional)positional;
    e.pad_id = (int32_t)pad;
    return llm_layer_transformer_embedding_ex(&e);
}

const llm__layer_vt llm__transformer_embedding_kind = {
    .kind = "transformer_embedding", .state_size = sizeof(llm__transformer_embedding_state), .build = temb_build,
    .forward = temb_forward, .destroy = temb_destroy, .to_json = temb_to_json, .from_json = temb_from_json,
    .input_vocab = temb_input_vocab,
};

llm_layer *llm_layer_transformer_embedding_ex(const llm_transformer_embedding_options *opts) {
    static const char fn[] = "llm_layer_transformer_embedding_ex";
    llm_transformer_embedding_options o;
    llm_transformer_embedding_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.vocab < 2 || o.vocab > INT32_MAX)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_embedding: vocab = %lld must be in [2, 2^31)",
                                (long long)o.vocab);
    if (o.context < 1 || o.context > (1 << 20))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_embedding: context = %lld must be in [1, 2^20]",
                                (long long)o.context);
    if (o.dim < 1 || o.dim > (1 << 16) || (o.positional == LLM_POSITIONAL_SINUSOIDAL && o.dim % 2))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT,
                                "transformer_embedding: dim = %lld must be in [1, 65536] (and even for sinusoidal positions)",
                                (long long)o.dim);
    if ((int)o.positional < LLM_POSITIONAL_LEARNED || (int)o.positional > LLM_POSITIONAL_NONE)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_embedding: unknown positional kind %d",
                                (int)o.positional);
    if (!llm__init_std_ok(o.init_std))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_embedding: init_std must be finite and >= 0");
    if (o.pad_id < 0 || o.pad_id >= o.vocab)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_embedding: pad_id = %d must be in [0, vocab)",
                                (int)o.pad_id);
    llm_layer *l = llm__layer_new(&llm__transformer_embedding_kind);
    if (l->status != LLM_OK) return l;
    o.mask_zero = o.mask_zero != 0;
    ST(l)->opt = o;
    return l;
}

llm_layer *llm_layer_transformer_embedding(int64_t vocab, int64_t context, int64_t dim) {
    llm_transformer_embedding_options o;
    llm_transformer_embedding_options_init(&o);
    o.vocab = vocab;
    o.context = context;
    o.dim = dim;
    return llm_layer_transformer_embedding_ex(&o);
}
