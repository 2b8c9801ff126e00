/* Incremental decoding with a key/value cache (include/llm/generate.h).
 *
 * The decoder walks the model's layers itself instead of the training graph:
 * each block appends the new rows' keys and values to its cache and attends
 * from the new queries to every cached position, so a token costs O(T D)
 * attention plus the per-row GEMMs. Every buffer is sized for the model's
 * context at creation; feeding allocates nothing. Each block runs its own
 * decode_step (src/nn/layers/transformer_block.c) with its named parameters;
 * the rest reads the layers' states as src/nn/layers/kinds.h declares them. */
#include "model_internal.h"
#include "layers/kinds.h"
#include "llm/generate.h"
#include "../core/backend_internal.h"

typedef struct dec_block {
    const llm_layer *l;
    float *k, *v;          /* [ctx, D] */
} dec_block;

struct llm_decoder {
    llm_model *m;
    llm_backend *be;
    const llm_layer *emb, *final_ln, *head;
    dec_block *blocks;
    int n_blocks;
    int64_t ctx, D, M, V, len;
    int32_t *history;      /* host [ctx] */
    int32_t *ids;          /* backend [ctx] */
    float *x, *h, *qkv, *att, *f, *t, *mean, *rstd, *pos, *logits;
    float *kmask;          /* [ctx] 1 = real key, 0 = padding (mask_zero models), else NULL */
};

static const llm__transformer_embedding_state *emb_state(const llm_decoder *d) { return d->emb->state; }

/* The head's vocabulary: an lm_head's, or a linear dense's units. */
static int64_t head_vocab(const llm_layer *hd) {
    if (hd->vt == &llm__lm_head_kind) return LLM__STATE(const llm__lm_head_state, hd)->opt.vocab;
    return LLM__STATE(const llm__dense_state, hd)->opt.units;
}

void llm_decoder_free(llm_decoder *d) {
    if (!d) return;
    llm_backend *be = d->be;
    float **bufs[] = { &d->x, &d->h, &d->qkv, &d->att, &d->f, &d->t, &d->mean, &d->rstd, &d->pos, &d->logits, &d->kmask };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) be->ops->free(be, *bufs[i]);
    if (d->ids) be->ops->free(be, d->ids);
    for (int i = 0; d->blocks && i < d->n_blocks; i++) {
        if (d->blocks[i].k) be->ops->free(be, d->blocks[i].k);
        if (d->blocks[i].v) be->ops->free(be, d->blocks[i].v);
    }
    llm__free(d->blocks);
    llm__free(d->history);
    llm__backend_release(be);
    llm__free(d);
}

/* Checks the layer sequence and records the parts. */
static llm_status dec_layout(llm_decoder *d, const llm_model *m) {
    static const char fn[] = "llm_decoder_create";
    int i = 0, n = m->n_layers;
    if (m->topo.functional)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: the model is functional (graph.h); generation runs Sequential language models", fn);
    if (n == 0 || m->layers[0]->vt != &llm__transformer_embedding_kind)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: the model must start with a transformer_embedding", fn);
    d->emb = m->layers[i++];
    for (int j = i; j < n; j++) d->n_blocks += m->layers[j]->vt->decode_step != NULL;
    d->blocks = llm__calloc((size_t)(d->n_blocks ? d->n_blocks : 1), sizeof *d->blocks);
    if (!d->blocks) return llm__oom(fn);
    int b = 0;
    for (; i < n; i++) {
        const llm_layer *l = m->layers[i];
        if (l->vt == &llm__dropout_kind) continue;
        if (l->vt->decode_step) {
            if (d->final_ln)
                return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: layer %s follows the final layer norm", fn, l->name);
            if (l->vt == &llm__transformer_block_kind && !LLM__STATE(const llm__transformer_block_state, l)->opt.causal)
                return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: %s is not causal; only a language model can generate", fn,
                                  l->name);
            d->blocks[b++].l = l;
        } else if (l->vt == &llm__layernorm_kind && !d->final_ln) {
            d->final_ln = l;
        } else if ((l->vt == &llm__lm_head_kind ||
                    (l->vt == &llm__dense_kind && LLM__STATE(const llm__dense_state, l)->opt.activation == LLM_ACT_NONE)) &&
                   i == n - 1) {
            d->head = l;
        } else {
            return llm__error(LLM_ERR_NOT_SUPPORTED,
                              "%s: layer %s (%s) does not belong in a language model "
                              "(transformer_embedding, causal blocks, layernorm, lm_head)", fn, l->name, l->vt->kind);
        }
    }
    if (!d->head) return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: the model must end with an lm_head or a linear dense", fn);
    if (head_vocab(d->head) != emb_state(d)->opt.vocab)
        return llm__error(LLM_ERR_SHAPE, "%s: the head predicts %lld ids but the embedding reads %lld", fn,
                          (long long)head_vocab(d->head), (long long)emb_state(d)->opt.vocab);
    return LLM_OK;
}

llm_status llm_decoder_create(llm_decoder **out, llm_model *m) {
    static const char fn[] = "llm_decoder_create";
    if (!out || !m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    if (!m->built) return llm__error(LLM_ERR_STATE, "%s: build the model first (or load a trained one)", fn);
    llm_decoder *d = llm__calloc(1, sizeof *d);
    if (!d) return llm__oom(fn);
    d->m = m;
    d->be = m->be;
    llm__backend_retain(d->be);
    llm_status s = dec_layout(d, m);
    if (s != LLM_OK) { llm_decoder_free(d); return s; }
    const llm__transformer_embedding_state *es = emb_state(d);
    d->ctx = es->opt.context;
    d->D = es->opt.dim;
    d->M = 1;
    for (int i = 0; i < d->n_blocks; i++) {
        int64_t M = LLM__STATE(const llm__transformer_block_state, d->blocks[i].l)->mlp;
        d->M = M > d->M ? M : d->M;
    }
    d->V = head_vocab(d->head);
    llm_backend *be = d->be;
    int64_t C = d->ctx, D = d->D;
    d->history = llm__malloc((size_t)C * sizeof *d->history);
    if (!d->history) s = llm__oom(fn);
    struct { float **p; int64_t n; } bufs[] = {
        { &d->x, C * D }, { &d->h, C * D }, { &d->qkv, 3 * C * D }, { &d->att, C * D }, { &d->f, C * d->M },
        { &d->t, C * D }, { &d->mean, C }, { &d->rstd, C }, { &d->logits, d->V },
    };
    for (size_t i = 0; s == LLM_OK && i < sizeof bufs / sizeof bufs[0]; i++)
        s = be->ops->alloc(be, (size_t)bufs[i].n * 4, (void **)bufs[i].p);
    if (s == LLM_OK) s = be->ops->alloc(be, (size_t)C * 4, (void **)&d->ids);
    if (s == LLM_OK && es->opt.mask_zero) s = be->ops->alloc(be, (size_t)C * 4, (void **)&d->kmask);
    for (int i = 0; s == LLM_OK && i < d->n_blocks; i++) {
        s = be->ops->alloc(be, (size_t)(C * D) * 4, (void **)&d->blocks[i].k);
        if (s == LLM_OK) s = be->ops->alloc(be, (size_t)(C * D) * 4, (void **)&d->blocks[i].v);
    }
    if (s == LLM_OK && es->opt.positional == LLM_POSITIONAL_SINUSOIDAL) {
        s = be->ops->alloc(be, (size_t)(C * D) * 4, (void **)&d->pos);
        if (s == LLM_OK) s = be->ops->copy_h2d(be, d->pos, es->host_table, (size_t)(C * D) * 4);
    }
    if (s != LLM_OK) { llm_decoder_free(d); return s; }
    *out = d;
    return LLM_OK;
}

llm_status llm_decoder_reset(llm_decoder *d) {
    if (!d) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_decoder_reset: decoder is NULL");
    d->len = 0;
    return LLM_OK;
}

llm_status llm_decoder_length(const llm_decoder *d, int64_t *length) {
    if (!d || !length) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_decoder_length: NULL argument");
    *length = d->len;
    return LLM_OK;
}

llm_status llm_decoder_vocab_size(const llm_decoder *d, int64_t *vocab) {
    if (!d || !vocab) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_decoder_vocab_size: NULL argument");
    *vocab = d->V;
    return LLM_OK;
}

/* One block over n new rows at positions [p, p + n); d->x is updated in place. */
static llm_status dec_block_run(llm_decoder *d, const dec_block *blk, int64_t p, int64_t n) {
    llm__decode_ws w = {
        .ctx = d->ctx, .D = d->D, .x = d->x, .h = d->h, .qkv = d->qkv, .att = d->att, .f = d->f, .t = d->t,
        .mean = d->mean, .rstd = d->rstd, .k = blk->k, .v = blk->v, .kmask = d->kmask,
    };
    return blk->l->vt->decode_step(blk->l, d->be, &w, p, n);
}

/* Runs ids (host, n rows) at positions [p, p + n); logits of the last row when wanted. */
static llm_status dec_run(llm_decoder *d, const int32_t *ids, int64_t p, int64_t n, float *logits) {
    llm_backend *be = d->be;
    const llm__backend_ops *op = be->ops;
    int64_t D = d->D;
    LLM__CHECK(op->copy_h2d(be, d->ids, ids, (size_t)n * 4));
    const llm__transformer_embedding_state *es = emb_state(d);
    /* mask_zero: the pad id is padding, hidden from attention as in the full forward */
    LLM__CHECK(op->embedding_forward(be, n, D, d->ids, es->p.token->data, d->kmask ? (int)es->opt.pad_id : -1, d->x,
                                     d->kmask ? d->kmask + p : NULL));
    const float *pos = es->p.position ? es->p.position->data : d->pos;
    if (pos) LLM__CHECK(op->copy_rows(be, n, D, pos + p * D, D, d->x, D, 1));
    if (!op->attention_forward)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "the %s backend has no attention kernel", op->name);
    for (int i = 0; i < d->n_blocks; i++) LLM__CHECK(dec_block_run(d, &d->blocks[i], p, n));
    if (!logits) return LLM_OK;
    const float *last = d->x + (n - 1) * D;
    if (d->final_ln) {
        const llm__layernorm_state *ln = d->final_ln->state;
        LLM__CHECK(op->layernorm_forward(be, 1, D, last, ln->p.gamma->data, ln->p.beta->data, ln->eps, d->h, d->mean,
                                         d->rstd));
        last = d->h;
    }
    const llm_layer *hd = d->head;
    const float *W, *b = NULL;
    if (hd->vt == &llm__lm_head_kind) {
        W = LLM__STATE(const llm__lm_head_state, hd)->p.weight->data;
    } else {
        const llm__dense_state *ds = hd->state;
        W = ds->p.weight->data;
        if (ds->p.bias) b = ds->p.bias->data;
    }
    LLM__CHECK(llm__linear_forward(be, 1, D, d->V, last, W, b, d->logits));
    return op->copy_d2h(be, logits, d->logits, (size_t)d->V * 4);
}

llm_status llm_decoder_feed(llm_decoder *d, const int32_t *ids, int64_t n, float *logits) {
    static const char fn[] = "llm_decoder_feed";
    if (!d || !ids) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (n < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n = %lld must be >= 1", fn, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= emb_state(d)->opt.vocab)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: token %lld is %d, outside the vocabulary [0, %lld)", fn,
                              (long long)i, (int)ids[i], (long long)emb_state(d)->opt.vocab);
    while (n > 0) {
        if (d->len == d->ctx) {
            /* window full: keep the newest half, recompute its cache */
            int64_t keep = d->ctx / 2;
            memmove(d->history, d->history + d->len - keep, (size_t)keep * sizeof *d->history);
            d->len = 0;
            if (keep > 0) {
                llm_status s = dec_run(d, d->history, 0, keep, NULL);
                if (s != LLM_OK) return s;
            }
            d->len = keep;
        }
        int64_t take = n < d->ctx - d->len ? n : d->ctx - d->len;
        llm_status s = dec_run(d, ids, d->len, take, take == n ? logits : NULL);
        if (s != LLM_OK) { d->len = 0; return s; }
        memcpy(d->history + d->len, ids, (size_t)take * sizeof *ids);
        d->len += take;
        ids += take;
        n -= take;
    }
    return LLM_OK;
}
