/* Pre-LayerNorm Transformer block (GPT-2):
 *     x2 = x + drop(proj(attention(qkv(ln1(x)))))
 *     y  = x2 + drop(fc2(gelu(fc1(ln2(x2)))))
 * One coarse node: the forward keeps what backward needs in one workspace
 * (layer-norm inputs and statistics, qkv, the attention output and its
 * log-sum-exp, the MLP pre-activation and activation); no T x T matrix. */
#include <math.h>
#include <cjson/cJSON.h>
#include "kinds.h"
#include "../../core/rng.h"

#define ST(l) LLM__STATE(llm__transformer_block_state, l)

void llm_transformer_block_options_init(llm_transformer_block_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->heads = 4;
    o->mlp_hidden = 0;
    o->causal = 1;
    o->dropout = 0.0f;
    o->eps = 1e-5f;
    o->init_std = 0.02f;
}

static llm_status block_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float (put a transformer_embedding first)", l->name);
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, D], got %d dimensions", l->name, in->ndim);
    llm__transformer_block_state *st = ST(l);
    int64_t D = in->d[1], H = st->opt.heads;
    if (D % H)
        return llm__error(LLM_ERR_SHAPE, "%s: width %lld is not a multiple of %lld heads", l->name, (long long)D,
                          (long long)H);
    int64_t M = st->opt.mlp_hidden ? st->opt.mlp_hidden : 4 * D;
    st->mlp = M;
    float sd = st->opt.init_std;
    LLM__CHECK(llm__layer_param(l, "ln1_gamma", 1, D, 1, LLM__INIT_ONES, 0, &st->p.ln1_gamma));
    LLM__CHECK(llm__layer_param(l, "ln1_beta", 1, D, 1, LLM__INIT_ZEROS, 0, &st->p.ln1_beta));
    LLM__CHECK(llm__layer_param(l, "qkv_weight", 2, 3 * D, D, LLM__INIT_NORMAL, sd, &st->p.qkv_weight));
    LLM__CHECK(llm__layer_param(l, "qkv_bias", 1, 3 * D, 1, LLM__INIT_ZEROS, 0, &st->p.qkv_bias));
    LLM__CHECK(llm__layer_param(l, "proj_weight", 2, D, D, LLM__INIT_NORMAL, sd, &st->p.proj_weight));
    LLM__CHECK(llm__layer_param(l, "proj_bias", 1, D, 1, LLM__INIT_ZEROS, 0, &st->p.proj_bias));
    LLM__CHECK(llm__layer_param(l, "ln2_gamma", 1, D, 1, LLM__INIT_ONES, 0, &st->p.ln2_gamma));
    LLM__CHECK(llm__layer_param(l, "ln2_beta", 1, D, 1, LLM__INIT_ZEROS, 0, &st->p.ln2_beta));
    LLM__CHECK(llm__layer_param(l, "fc1_weight", 2, M, D, LLM__INIT_NORMAL, sd, &st->p.fc1_weight));
    LLM__CHECK(llm__layer_param(l, "fc1_bias", 1, M, 1, LLM__INIT_ZEROS, 0, &st->p.fc1_bias));
    LLM__CHECK(llm__layer_param(l, "fc2_weight", 2, D, M, LLM__INIT_NORMAL, sd, &st->p.fc2_weight));
    LLM__CHECK(llm__layer_param(l, "fc2_bias", 1, D, 1, LLM__INIT_ZEROS, 0, &st->p.fc2_bias));
    *out = *in;
    return LLM_OK;
}

/* The forward's saved tensors, carved from one workspace. */
typedef struct block_ws {
    float *h1, *qkv, *att, *x2, *h2, *f, *g;    /* [R, D|3D|D|D|D|M|M] */
    float *mean1, *rstd1, *mean2, *rstd2;       /* [R] */
    float *lse;                                 /* [B, heads, T] */
} block_ws;

static size_t round16(int64_t n) { return (size_t)((n + 15) & ~(int64_t)15); }

static size_t ws_layout(float *base, int64_t B, int64_t T, int64_t D, int64_t M, int64_t H, block_ws *w) {
    int64_t R = B * T;
    const int64_t sizes[12] = { R * D, 3 * R * D, R * D, R * D, R * D, R * M, R * M, R, R, R, R, B * H * T };
    float **slots[12] = { &w->h1, &w->qkv, &w->att, &w->x2, &w->h2, &w->f, &w->g,
                          &w->mean1, &w->rstd1, &w->mean2, &w->rstd2, &w->lse };
    size_t off = 0;
    for (int i = 0; i < 12; i++) {
        if (base) *slots[i] = base + off;
        off += round16(sizes[i]);
    }
    return off;
}

static llm_status block_backward(llm__graph *g, llm__node *n) {
    const llm__transformer_block_state *st = ST((const llm_layer *)n->layer);
    llm_backend *be = g->be;
    const llm__backend_ops *op = be->ops;
    llm__val *x = n->in[0], *y = n->out[0];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T;
    int64_t H = st->opt.heads, M = st->mlp;
    float rate = st->opt.dropout;
    block_ws w;
    ws_layout(n->saved[0], B, T, D, M, H, &w);

    float *dx2, *dtmp, *dM, *dqkv;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&dx2));
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&dtmp));
    LLM__CHECK(llm__graph_alloc_zero(g, (size_t)(R * M) * 4, (void **)&dM));
    const float *dy = y->grad, *dm = dy;
    if (rate > 0.0f) {
        LLM__CHECK(op->dropout(be, R * D, rate, n->u[1], 0, dy, dtmp, 0));
        dm = dtmp;
    }
    /* MLP: dg = dm W2 (into dqkv's space, reused below), df = gelu'(f) dg */
    float *dg;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * M) * 4, (void **)&dg));
    LLM__CHECK(llm__linear_backward(be, R, M, D, w.g, st->p.fc2_weight->data, dm, st->p.fc2_weight->grad, st->p.fc2_bias->grad, dg, 0));
    LLM__CHECK(op->act_backward(be, LLM__ACT_GELU, R * M, w.f, w.g, dg, dM));
    /* dh2 = df W1, into dtmp (dm is no longer needed) */
    LLM__CHECK(llm__linear_backward(be, R, D, M, w.h2, st->p.fc1_weight->data, dM, st->p.fc1_weight->grad, st->p.fc1_bias->grad, dtmp, 0));
    LLM__CHECK(op->copy_d2d(be, dx2, dy, (size_t)(R * D) * 4));
    float *ln_ws; /* both layer norms' backward workspace */
    LLM__CHECK(llm__graph_alloc(g, (size_t)R * 8, (void **)&ln_ws));
    LLM__CHECK(op->layernorm_backward(be, R, D, w.x2, st->p.ln2_gamma->data, w.mean2, w.rstd2, dtmp, dx2, st->p.ln2_gamma->grad,
                                      st->p.ln2_beta->grad, ln_ws));
    /* attention branch */
    const float *da = dx2;
    if (rate > 0.0f) {
        LLM__CHECK(op->dropout(be, R * D, rate, n->u[0], 0, dx2, dtmp, 0));
        da = dtmp;
    }
    float *datt;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&datt));
    LLM__CHECK(llm__linear_backward(be, R, D, D, w.att, st->p.proj_weight->data, da, st->p.proj_weight->grad, st->p.proj_bias->grad, datt, 0));
    LLM__CHECK(llm__graph_alloc_zero(g, (size_t)(3 * R * D) * 4, (void **)&dqkv));
    LLM__CHECK(llm__self_attention_backward(be, B, T, D, H, st->opt.causal, w.qkv, x->mask, w.att, w.lse,
                                            datt, dqkv));
    LLM__CHECK(llm__linear_backward(be, R, D, 3 * D, w.h1, st->p.qkv_weight->data, dqkv, st->p.qkv_weight->grad, st->p.qkv_bias->grad,
                                    dtmp, 0));
    float *dx;
    if (x->requires_grad) {
        LLM__CHECK(llm__graph_grad(g, x, &dx));
        LLM__CHECK(op->axpy(be, R * D, 1.0f, dx2, dx));
    } else {
        dx = dx2; /* discarded */
    }
    return op->layernorm_backward(be, R, D, x->data, st->p.ln1_gamma->data, w.mean1, w.rstd1, dtmp, dx, st->p.ln1_gamma->grad,
                                  st->p.ln1_beta->grad, ln_ws);
}

static llm_status block_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const llm__transformer_block_state *st = ST(l);
    llm_backend *be = g->be;
    const llm__backend_ops *op = be->ops;
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T;
    int64_t H = st->opt.heads, M = st->mlp;
    float rate = g->training ? st->opt.dropout : 0.0f, eps = st->opt.eps;
    block_ws w;
    float *base;
    LLM__CHECK(llm__graph_alloc(g, ws_layout(NULL, B, T, D, M, H, &w) * 4, (void **)&base));
    ws_layout(base, B, T, D, M, H, &w);
    uint64_t key0 = llm__rng_derive(g->dropout_key, 2 * l->seed), key1 = llm__rng_derive(g->dropout_key, 2 * l->seed + 1);

    LLM__CHECK(op->layernorm_forward(be, R, D, x->data, st->p.ln1_gamma->data, st->p.ln1_beta->data, eps, w.h1, w.mean1, w.rstd1));
    LLM__CHECK(llm__linear_forward(be, R, D, 3 * D, w.h1, st->p.qkv_weight->data, st->p.qkv_bias->data, w.qkv));
    LLM__CHECK(llm__self_attention_forward(be, B, T, D, H, st->opt.causal, w.qkv, x->mask, w.att,
                                           g->training ? w.lse : NULL));
    LLM__CHECK(llm__linear_forward(be, R, D, D, w.att, st->p.proj_weight->data, st->p.proj_bias->data, w.x2));
    if (rate > 0.0f) LLM__CHECK(op->dropout(be, R * D, rate, key0, 0, w.x2, w.x2, 0));
    LLM__CHECK(op->add(be, R * D, x->data, w.x2, w.x2));

    LLM__CHECK(op->layernorm_forward(be, R, D, w.x2, st->p.ln2_gamma->data, st->p.ln2_beta->data, eps, w.h2, w.mean2, w.rstd2));
    LLM__CHECK(llm__linear_act_forward(be, R, D, M, w.h2, st->p.fc1_weight->data, st->p.fc1_bias->data, LLM__ACT_GELU, w.f, w.g));
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, x->shape, &y));
    y->mask = x->mask;
    y->requires_grad = 1;
    LLM__CHECK(llm__linear_forward(be, R, M, D, w.g, st->p.fc2_weight->data, st->p.fc2_bias->data, y->data));
    if (rate > 0.0f) LLM__CHECK(op->dropout(be, R * D, rate, key1, 0, y->data, y->data, 0));
    LLM__CHECK(op->add(be, R * D, w.x2, y->data, y->data));

    llm__node *n;
    LLM__CHECK(llm__graph_node(g, block_backward, &n));
    if (n) {
        n->layer = l;
        n->in[0] = x;
        n->out[0] = y;
        n->saved[0] = base;
        n->u[0] = key0;
        n->u[1] = key1;
    }
    *out = y;
    return LLM_OK;
}

/* Incremental decoding (src/nn/decoder.c): the same block over n new rows
 * at positions [p, p + n), appending their keys and values to the cache and
 * attending from the new queries to every cached position. */
static llm_status block_decode_step(const llm_layer *l, llm_backend *be, const llm__decode_ws *w, int64_t p, int64_t n) {
    const llm__backend_ops *op = be->ops;
    const llm__transformer_block_state *st = ST(l);
    int64_t D = w->D, M = st->mlp, H = st->opt.heads;
    float eps = st->opt.eps;
    LLM__CHECK(op->layernorm_forward(be, n, D, w->x, st->p.ln1_gamma->data, st->p.ln1_beta->data, eps, w->h, w->mean,
                                     w->rstd));
    LLM__CHECK(llm__linear_forward(be, n, D, 3 * D, w->h, st->p.qkv_weight->data, st->p.qkv_bias->data, w->qkv));
    LLM__CHECK(op->copy_rows(be, n, D, w->qkv + D, 3 * D, w->k + p * D, D, 0));
    LLM__CHECK(op->copy_rows(be, n, D, w->qkv + 2 * D, 3 * D, w->v + p * D, D, 0));
    llm__attention a;
    memset(&a, 0, sizeof a);
    a.B = 1;
    a.heads = (int)H;
    a.head_dim = (int)(D / H);
    a.Tq = (int)n;
    a.Tk = (int)(p + n);
    a.q_offset = (int)p;
    a.causal = 1;
    a.scale = (float)(1.0 / sqrt((double)a.head_dim));
    a.q = w->qkv;
    a.ld_q = 3 * D;
    a.bs_q = 3 * D * n;
    a.k = w->k;
    a.v = w->v;
    a.ld_kv = D;
    a.bs_kv = D * w->ctx;
    a.mask = w->kmask;
    a.ld_mask = w->ctx;
    a.out = w->att;
    a.ld_out = D;
    a.bs_out = D * n;
    LLM__CHECK(op->attention_forward(be, &a));
    LLM__CHECK(llm__linear_forward(be, n, D, D, w->att, st->p.proj_weight->data, st->p.proj_bias->data, w->t));
    LLM__CHECK(op->axpy(be, n * D, 1.0f, w->t, w->x));
    LLM__CHECK(op->layernorm_forward(be, n, D, w->x, st->p.ln2_gamma->data, st->p.ln2_beta->data, eps, w->h, w->mean,
                                     w->rstd));
    LLM__CHECK(llm__linear_act_forward(be, n, D, M, w->h, st->p.fc1_weight->data, st->p.fc1_bias->data, LLM__ACT_GELU,
                                       w->f, w->f));
    LLM__CHECK(llm__linear_forward(be, n, M, D, w->f, st->p.fc2_weight->data, st->p.fc2_bias->data, w->t));
    return op->axpy(be, n * D, 1.0f, w->t, w->x);
}

/* init_std is not in the file: loaded weights replace the initial ones */
static llm_status block_to_json(const llm_layer *l, cJSON *o) {
    const llm_transformer_block_options *opt = &ST(l)->opt;
    LLM__CHECK(llm__json_add_int(o, "heads", opt->heads));
    LLM__CHECK(llm__json_add_int(o, "mlp_hidden", opt->mlp_hidden));
    LLM__CHECK(llm__json_add_bool(o, "causal", opt->causal));
    LLM__CHECK(llm__json_add_float(o, "dropout", opt->dropout));
    return llm__json_add_float(o, "eps", opt->eps);
}

static llm_layer *block_from_json(const cJSON *o, int depth) {
    llm_transformer_block_options t;
    llm_transformer_block_options_init(&t);
    if (!llm__json_int(o, "heads", LLM__JSON_I64, &t.heads) || !llm__json_int(o, "mlp_hidden", LLM__JSON_I64, &t.mlp_hidden) ||
        !llm__json_bool(o, "causal", &t.causal) || !llm__json_float(o, "dropout", &t.dropout) ||
        !llm__json_float(o, "eps", &t.eps))
        return llm__json_bad("transformer_block");
    return llm_layer_transformer_block_ex(&t);
}

const llm__layer_vt llm__transformer_block_kind = {
    .kind = "transformer_block", .state_size = sizeof(llm__transformer_block_state), .build = block_build,
    .forward = block_forward, .to_json = block_to_json, .from_json = block_from_json,
    .decode_step = block_decode_step,
};

llm_layer *llm_layer_transformer_block_ex(const llm_transformer_block_options *opts) {
    static const char fn[] = "llm_layer_transformer_block_ex";
    llm_transformer_block_options o;
    llm_transformer_block_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.heads < 1 || o.heads > LLM__MAX_HEADS)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: heads = %lld must be in [1, %d]",
                                (long long)o.heads, LLM__MAX_HEADS);
    if (o.mlp_hidden < 0 || o.mlp_hidden > (1 << 20))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: mlp_hidden = %lld must be in [0, 2^20]",
                                (long long)o.mlp_hidden);
    if (!(o.dropout >= 0.0f && o.dropout < 1.0f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: dropout = %g must be in [0, 1)",
                                (double)o.dropout);
    if (!llm__eps_ok(o.eps))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: eps = %g must be in (0, 1)", (double)o.eps);
    if (!llm__init_std_ok(o.init_std))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: init_std must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__transformer_block_kind);
    if (l->status != LLM_OK) return l;
    o.causal = o.causal != 0;
    ST(l)->opt = o;
    return l;
}

llm_layer *llm_layer_transformer_block(int64_t heads, int causal) {
    llm_transformer_block_options o;
    llm_transformer_block_options_init(&o);
    o.heads = heads;
    o.causal = causal;
    return llm_layer_transformer_block_ex(&o);
}
