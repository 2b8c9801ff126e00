/* libllm: CPU embedding lookup and its gradient.
 *
 * The forward gathers rows and splits by token. The backward scatters with
 * repeated ids (the same word twice in a batch), so splitting by token would
 * race on dweight rows; it splits by blocks of embedding columns instead:
 * every thread visits all tokens in order but owns a disjoint column range,
 * so there are no races and each sum runs in token order whatever the thread
 * count. */
#include "cpu.h"

#define EMB_GRAIN 16384
#define COL_BLOCK 16 /* 64 bytes: threads never share a cache line of dweight */

typedef struct emb_ctx {
    int64_t dim;
    const int32_t *ids;
    const float *weight, *dout;
    int pad;
    float *out, *mask, *dweight;
    int64_t n;
} emb_ctx;

static void emb_forward_chunk(void *p, int64_t begin, int64_t end) {
    const emb_ctx *c = p;
    int64_t dim = c->dim;
    for (int64_t i = begin; i < end; i++) {
        const float *w = c->weight + (int64_t)c->ids[i] * dim;
        float *o = c->out + i * dim;
        for (int64_t j = 0; j < dim; j++) o[j] = w[j];
        if (c->mask) c->mask[i] = (c->pad >= 0 && c->ids[i] == c->pad) ? 0.0f : 1.0f;
    }
}

/* ids [n] in [0, vocab), weight [vocab, dim], out [n, dim], mask [n] or NULL.
 * The pad row is looked up like any other (Keras mask_zero does the same);
 * the mask is what tells later layers to skip it. With pad < 0 a non-NULL mask
 * is set to all ones. */
llm_status llm__cpu_embedding_forward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                      const float *weight, int pad, float *out, float *mask) {
    if (n <= 0 || dim <= 0) return LLM_OK;
    emb_ctx c = { .dim = dim, .ids = ids, .weight = weight, .pad = pad, .out = out, .mask = mask };
    int64_t grain = dim >= EMB_GRAIN ? 1 : EMB_GRAIN / dim;
    llm__pool_for(llm__cpu_pool(be), n, grain, emb_forward_chunk, &c);
    return LLM_OK;
}

/* [begin, end) are blocks of COL_BLOCK columns */
static void emb_backward_chunk(void *p, int64_t begin, int64_t end) {
    const emb_ctx *c = p;
    int64_t dim = c->dim;
    int64_t c0 = begin * COL_BLOCK;
    int64_t c1 = end * COL_BLOCK < dim ? end * COL_BLOCK : dim;
    for (int64_t i = 0; i < c->n; i++) {
        int32_t id = c->ids[i];
        if (c->pad >= 0 && id == c->pad) continue;
        const float *d = c->dout + i * dim;
        float *w = c->dweight + (int64_t)id * dim;
        for (int64_t j = c0; j < c1; j++) w[j] += d[j];
    }
}

/* ids [n], dout [n, dim], dweight [vocab, dim] += (rows of pad skipped) */
llm_status llm__cpu_embedding_backward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                       const float *dout, int pad, float *dweight) {
    if (n <= 0 || dim <= 0) return LLM_OK;
    emb_ctx c = { .dim = dim, .ids = ids, .dout = dout, .pad = pad, .dweight = dweight, .n = n };
    int64_t blocks = (dim + COL_BLOCK - 1) / COL_BLOCK;
    int64_t per_block = n * COL_BLOCK;
    int64_t grain = per_block >= EMB_GRAIN ? 1 : EMB_GRAIN / per_block;
    llm__pool_for(llm__cpu_pool(be), blocks, grain, emb_backward_chunk, &c);
    return LLM_OK;
}
