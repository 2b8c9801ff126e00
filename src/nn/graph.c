/* The autograd tape and its arena. */
#include "graph.h"
#include "../core/internal.h"

#define ALIGN 64
static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

void llm__graph_init(llm__graph *g, llm_backend *be) {
    memset(g, 0, sizeof *g);
    g->be = be;
}

static void free_overflow(llm__graph *g) {
    for (int i = 0; i < g->arena.n_overflow; i++) g->be->ops->free(g->be, g->arena.overflow[i]);
    g->arena.n_overflow = 0;
    g->arena.overflow_bytes = 0;
}

void llm__graph_release(llm__graph *g) {
    if (!g->be) return;
    free_overflow(g);
    llm__free(g->arena.overflow);
    if (g->arena.base) g->be->ops->free(g->be, g->arena.base);
    for (int i = 0; i < g->n_val_blocks; i++) llm__free(g->vals[i]);
    llm__free(g->vals);
    llm__free(g->nodes);
    memset(g, 0, sizeof *g);
}

llm_status llm__graph_reset(llm__graph *g, int training) {
    llm__arena *a = &g->arena;
    size_t total = a->used + a->overflow_bytes;
    if (total > a->high_water) a->high_water = total;
    if (a->n_overflow > 0 || a->high_water > a->cap) {
        /* Grow once to the high-water mark so the next step fits in one block. */
        free_overflow(g);
        if (a->base) g->be->ops->free(g->be, a->base);
        a->base = NULL;
        a->cap = 0;
        size_t want = align_up(a->high_water + a->high_water / 8);
        void *p;
        LLM__CHECK(g->be->ops->alloc(g->be, want, &p));
        a->base = p;
        a->cap = want;
    }
    a->used = 0;
    g->n_vals = 0;
    g->n_nodes = 0;
    g->training = training;
    return LLM_OK;
}

llm_status llm__graph_alloc(llm__graph *g, size_t bytes, void **out) {
    llm__arena *a = &g->arena;
    size_t n = align_up(bytes ? bytes : 1);
    if (n < bytes) return llm__error(LLM_ERR_OVERFLOW, "workspace request of %zu bytes overflows", bytes);
    if (a->base && a->cap - a->used >= n) {
        *out = (char *)a->base + a->used;
        a->used += n;
        return LLM_OK;
    }
    /* Too small this time: take an extra block; reset consolidates. */
    if (a->n_overflow == a->cap_overflow) {
        int cap = a->cap_overflow ? 2 * a->cap_overflow : 16;
        void **p = llm__realloc(a->overflow, (size_t)cap * sizeof *p);
        if (!p) return llm__oom("workspace");
        a->overflow = p;
        a->cap_overflow = cap;
    }
    void *p;
    LLM__CHECK(g->be->ops->alloc(g->be, n, &p));
    a->overflow[a->n_overflow++] = p;
    a->overflow_bytes += n;
    *out = p;
    return LLM_OK;
}

llm_status llm__graph_alloc_zero(llm__graph *g, size_t bytes, void **out) {
    LLM__CHECK(llm__graph_alloc(g, bytes, out));
    return g->be->ops->memset_zero(g->be, *out, bytes);
}

static llm_status new_val(llm__graph *g, llm__val **out) {
    int block = g->n_vals / LLM__VAL_BLOCK, slot = g->n_vals % LLM__VAL_BLOCK;
    if (block == g->n_val_blocks) {
        llm__val **blocks = llm__realloc(g->vals, (size_t)(block + 1) * sizeof *blocks);
        if (!blocks) return llm__oom("graph");
        g->vals = blocks;
        g->vals[block] = llm__malloc(LLM__VAL_BLOCK * sizeof(llm__val));
        if (!g->vals[block]) return llm__oom("graph");
        g->n_val_blocks++;
    }
    llm__val *v = &g->vals[block][slot];
    memset(v, 0, sizeof *v);
    g->n_vals++;
    *out = v;
    return LLM_OK;
}

static void set_shape(llm__val *v, llm_dtype dtype, int ndim, const int64_t *shape) {
    v->dtype = dtype;
    v->ndim = ndim;
    v->numel = 1;
    for (int i = 0; i < ndim; i++) { v->shape[i] = shape[i]; v->numel *= shape[i]; }
}

llm_status llm__graph_val(llm__graph *g, llm_dtype dtype, int ndim, const int64_t *shape,
                          llm__val **out) {
    llm__val *v;
    LLM__CHECK(new_val(g, &v));
    set_shape(v, dtype, ndim, shape);
    LLM__CHECK(llm__graph_alloc(g, (size_t)v->numel * 4, &v->data));
    *out = v;
    return LLM_OK;
}

llm_status llm__graph_val_view(llm__graph *g, void *data, float *grad, llm_dtype dtype, int ndim,
                               const int64_t *shape, llm__val **out) {
    llm__val *v;
    LLM__CHECK(new_val(g, &v));
    set_shape(v, dtype, ndim, shape);
    v->data = data;
    v->grad = grad;
    v->requires_grad = grad != NULL;
    *out = v;
    return LLM_OK;
}

llm_status llm__graph_grad(llm__graph *g, llm__val *v, float **grad) {
    if (!v->grad) {
        void *p;
        LLM__CHECK(llm__graph_alloc_zero(g, (size_t)v->numel * 4, &p));
        v->grad = p;
    }
    *grad = v->grad;
    return LLM_OK;
}

llm_status llm__graph_node(llm__graph *g, llm__backward_fn backward, llm__node **out) {
    *out = NULL;
    if (!g->training) return LLM_OK;
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
        llm__node *p = llm__realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) return llm__oom("graph");
        g->nodes = p;
        g->cap_nodes = cap;
    }
    llm__node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->backward = backward;
    *out = n;
    return LLM_OK;
}

llm_status llm__graph_backward(llm__graph *g) {
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        llm__node *n = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < 2; k++)
            if (n->out[k] && n->out[k]->grad) any = 1;
        if (!any) continue;
        LLM__CHECK(n->backward(g, n));
    }
    return LLM_OK;
}
