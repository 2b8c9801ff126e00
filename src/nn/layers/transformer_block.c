/* Pre-LayerNorm Transformer block (GPT-2):
 *     x2 = x + drop(proj(attention(qkv(ln1(x)))))
 *     y  = x2 + drop(fc2(gelu(fc1(ln2(x2)))))
 * One coarse node: the forward keeps what backward needs in one workspace
 * (layer-norm inputs and statistics, qkv, the attention output and its
 * log-sum-exp, the MLP pre-activation and activation); no T x T matrix. */
#include "../ops.h"
#include "../../core/rng.h"

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

enum { HEADS, MLP_REQUESTED, CAUSAL, MLP };             /* opt_i */
enum { DROPOUT, EPS, INIT_STD };                        /* opt_f */
enum { LN1_G, LN1_B, QKV_W, QKV_B, PROJ_W, PROJ_B, LN2_G, LN2_B, FC1_W, FC1_B, FC2_W, FC2_B };

static llm_status block_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float (put a transformer_embedding first)", l->name);
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, D], got %d dimensions", l->name, in->ndim);
    int64_t D = in->d[1], H = l->opt_i[HEADS];
    if (D % H)
        return llm__error(LLM_ERR_SHAPE, "%s: width %lld is not a multiple of %lld heads", l->name, (long long)D,
                          (long long)H);
    int64_t M = l->opt_i[MLP_REQUESTED] ? l->opt_i[MLP_REQUESTED] : 4 * D;
    l->opt_i[MLP] = M;
    float sd = l->opt_f[INIT_STD];
    LLM__CHECK(llm__layer_param(l, "ln1_gamma", 1, D, 1, LLM__INIT_ONES, 0));
    LLM__CHECK(llm__layer_param(l, "ln1_beta", 1, D, 1, LLM__INIT_ZEROS, 0));
    LLM__CHECK(llm__layer_param(l, "qkv_weight", 2, 3 * D, D, LLM__INIT_NORMAL, sd));
    LLM__CHECK(llm__layer_param(l, "qkv_bias", 1, 3 * D, 1, LLM__INIT_ZEROS, 0));
    LLM__CHECK(llm__layer_param(l, "proj_weight", 2, D, D, LLM__INIT_NORMAL, sd));
    LLM__CHECK(llm__layer_param(l, "proj_bias", 1, D, 1, LLM__INIT_ZEROS, 0));
    LLM__CHECK(llm__layer_param(l, "ln2_gamma", 1, D, 1, LLM__INIT_ONES, 0));
    LLM__CHECK(llm__layer_param(l, "ln2_beta", 1, D, 1, LLM__INIT_ZEROS, 0));
    LLM__CHECK(llm__layer_param(l, "fc1_weight", 2, M, D, LLM__INIT_NORMAL, sd));
    LLM__CHECK(llm__layer_param(l, "fc1_bias", 1, M, 1, LLM__INIT_ZEROS, 0));
    LLM__CHECK(llm__layer_param(l, "fc2_weight", 2, D, M, LLM__INIT_NORMAL, sd));
    LLM__CHECK(llm__layer_param(l, "fc2_bias", 1, D, 1, LLM__INIT_ZEROS, 0));
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
    const llm_layer *l = n->layer;
    const llm__param *P = l->params;
    llm_backend *be = g->be;
    const llm__backend_ops *op = be->ops;
    llm__val *x = n->in[0], *y = n->out[0];
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T;
    int64_t H = l->opt_i[HEADS], M = l->opt_i[MLP];
    float rate = l->opt_f[DROPOUT];
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
    LLM__CHECK(llm__linear_backward(be, R, M, D, w.g, P[FC2_W].data, dm, P[FC2_W].grad, P[FC2_B].grad, dg, 0));
    LLM__CHECK(op->act_backward(be, LLM__ACT_GELU, R * M, w.f, w.g, dg, dM));
    /* dh2 = df W1, into dtmp (dm is no longer needed) */
    LLM__CHECK(llm__linear_backward(be, R, D, M, w.h2, P[FC1_W].data, dM, P[FC1_W].grad, P[FC1_B].grad, dtmp, 0));
    LLM__CHECK(op->copy_d2d(be, dx2, dy, (size_t)(R * D) * 4));
    float *ln_ws; /* both layer norms' backward workspace */
    LLM__CHECK(llm__graph_alloc(g, (size_t)R * 8, (void **)&ln_ws));
    LLM__CHECK(op->layernorm_backward(be, R, D, w.x2, P[LN2_G].data, w.mean2, w.rstd2, dtmp, dx2, P[LN2_G].grad,
                                      P[LN2_B].grad, ln_ws));
    /* attention branch */
    const float *da = dx2;
    if (rate > 0.0f) {
        LLM__CHECK(op->dropout(be, R * D, rate, n->u[0], 0, dx2, dtmp, 0));
        da = dtmp;
    }
    float *datt;
    LLM__CHECK(llm__graph_alloc(g, (size_t)(R * D) * 4, (void **)&datt));
    LLM__CHECK(llm__linear_backward(be, R, D, D, w.att, P[PROJ_W].data, da, P[PROJ_W].grad, P[PROJ_B].grad, datt, 0));
    LLM__CHECK(llm__graph_alloc_zero(g, (size_t)(3 * R * D) * 4, (void **)&dqkv));
    LLM__CHECK(llm__self_attention_backward(be, B, T, D, H, (int)l->opt_i[CAUSAL], w.qkv, x->mask, w.att, w.lse,
                                            datt, dqkv));
    LLM__CHECK(llm__linear_backward(be, R, D, 3 * D, w.h1, P[QKV_W].data, dqkv, P[QKV_W].grad, P[QKV_B].grad,
                                    dtmp, 0));
    float *dx;
    if (x->requires_grad) {
        LLM__CHECK(llm__graph_grad(g, x, &dx));
        LLM__CHECK(op->axpy(be, R * D, 1.0f, dx2, dx));
    } else {
        dx = dx2; /* discarded */
    }
    return op->layernorm_backward(be, R, D, x->data, P[LN1_G].data, w.mean1, w.rstd1, dtmp, dx, P[LN1_G].grad,
                                  P[LN1_B].grad, ln_ws);
}

static llm_status block_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    const llm__param *P = l->params;
    llm_backend *be = g->be;
    const llm__backend_ops *op = be->ops;
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2], R = B * T;
    int64_t H = l->opt_i[HEADS], M = l->opt_i[MLP];
    float rate = g->training ? l->opt_f[DROPOUT] : 0.0f, eps = l->opt_f[EPS];
    block_ws w;
    float *base;
    LLM__CHECK(llm__graph_alloc(g, ws_layout(NULL, B, T, D, M, H, &w) * 4, (void **)&base));
    ws_layout(base, B, T, D, M, H, &w);
    uint64_t key0 = llm__rng_derive(g->dropout_key, 2 * l->seed), key1 = llm__rng_derive(g->dropout_key, 2 * l->seed + 1);

    LLM__CHECK(op->layernorm_forward(be, R, D, x->data, P[LN1_G].data, P[LN1_B].data, eps, w.h1, w.mean1, w.rstd1));
    LLM__CHECK(llm__linear_forward(be, R, D, 3 * D, w.h1, P[QKV_W].data, P[QKV_B].data, w.qkv));
    LLM__CHECK(llm__self_attention_forward(be, B, T, D, H, (int)l->opt_i[CAUSAL], w.qkv, x->mask, w.att,
                                           g->training ? w.lse : NULL));
    LLM__CHECK(llm__linear_forward(be, R, D, D, w.att, P[PROJ_W].data, P[PROJ_B].data, w.x2));
    if (rate > 0.0f) LLM__CHECK(op->dropout(be, R * D, rate, key0, 0, w.x2, w.x2, 0));
    LLM__CHECK(op->add(be, R * D, x->data, w.x2, w.x2));

    LLM__CHECK(op->layernorm_forward(be, R, D, w.x2, P[LN2_G].data, P[LN2_B].data, eps, w.h2, w.mean2, w.rstd2));
    LLM__CHECK(llm__linear_act_forward(be, R, D, M, w.h2, P[FC1_W].data, P[FC1_B].data, LLM__ACT_GELU, w.f, w.g));
    llm__val *y;
    LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 3, x->shape, &y));
    y->mask = x->mask;
    y->requires_grad = 1;
    LLM__CHECK(llm__linear_forward(be, R, M, D, w.g, P[FC2_W].data, P[FC2_B].data, y->data));
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

const llm__layer_vt llm__transformer_block_vt = { "transformer_block", block_build, block_forward, NULL };

llm_layer *llm_layer_transformer_block_ex(const llm_transformer_block_options *opts) {
    static const char fn[] = "llm_layer_transformer_block_ex";
    llm_transformer_block_options o;
    llm_transformer_block_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.heads < 1 || o.heads > 4096)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: heads = %lld must be in [1, 4096]",
                                (long long)o.heads);
    if (o.mlp_hidden < 0 || o.mlp_hidden > (1 << 20))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: mlp_hidden = %lld must be in [0, 2^20]",
                                (long long)o.mlp_hidden);
    if (!(o.dropout >= 0.0f && o.dropout < 1.0f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: dropout = %g must be in [0, 1)",
                                (double)o.dropout);
    if (!(o.eps > 0.0f && o.eps < 1.0f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: eps = %g must be in (0, 1)", (double)o.eps);
    if (!(o.init_std >= 0.0f && o.init_std < 1e3f))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "transformer_block: init_std must be finite and >= 0");
    llm_layer *l = llm__layer_new(&llm__transformer_block_vt);
    if (l->status != LLM_OK) return l;
    l->opt_i[HEADS] = o.heads;
    l->opt_i[MLP_REQUESTED] = o.mlp_hidden;
    l->opt_i[CAUSAL] = o.causal != 0;
    l->opt_f[DROPOUT] = o.dropout;
    l->opt_f[EPS] = o.eps;
    l->opt_f[INIT_STD] = o.init_std;
    return l;
}

llm_layer *llm_layer_transformer_block(int64_t heads, int causal) {
    llm_transformer_block_options o;
    llm_transformer_block_options_init(&o);
    o.heads = heads;
    o.causal = causal;
    return llm_layer_transformer_block_ex(&o);
}
