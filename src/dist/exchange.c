/* The gradient exchange (src/nn/grad_exchange.h) over the MPI module: what
 * llm_model_fit and the llm_dist_* model calls use to talk to the other
 * ranks. MPI works on host memory; a buffer in a backend's memory that is
 * not host memory (a GPU's) goes through the handle's staging buffer,
 * copied out and back, with no CUDA-aware MPI assumed. */
#include <stdio.h>
#include "../core/internal.h"
#include "../nn/grad_exchange.h"
#include "dist_internal.h"

static int on_host(const llm_backend *be) { return llm__backend_has(be, LLM__BACKEND_HOST_MEMORY); }

static llm_status reserve(void *ctx, llm_backend *be, int64_t n, const char *what) {
    llm_dist *d = ctx;
    if (on_host(be) || d->stage_floats >= (size_t)n) return LLM_OK;
    float *p = llm__realloc(d->stage, (size_t)n * sizeof *p);
    if (!p) return llm__oom(what);
    d->stage = p;
    d->stage_floats = (size_t)n;
    return LLM_OK;
}

/* The staging buffer for n floats; reserve made it large enough. */
static llm_status staged(llm_dist *d, int64_t n, const char *what, float **host) {
    if (d->stage_floats < (size_t)n)
        return llm__error(LLM_ERR_INTERNAL, "%s: %lld floats were not reserved for staging", what, (long long)n);
    *host = d->stage;
    return LLM_OK;
}

static llm_status reduce_f64(void *ctx, double *v, int n, llm__exchange_op op, const char *what) {
    return llm__dist_allreduce(ctx, v, n, LLM__MPI_F64, op == LLM__EXCHANGE_MAX ? LLM__MPI_MAX : LLM__MPI_SUM, what);
}

static llm_status sum_f32(void *ctx, llm_backend *be, float *x, int64_t n, const char *what) {
    llm_dist *d = ctx;
    if (on_host(be)) return llm__dist_allreduce(d, x, n, LLM__MPI_F32, LLM__MPI_SUM, what);
    float *h = NULL;
    size_t bytes = (size_t)n * sizeof *x;
    LLM__CHECK(staged(d, n, what, &h));
    LLM__CHECK(be->ops->copy_d2h(be, h, x, bytes));
    LLM__CHECK(llm__dist_allreduce(d, h, n, LLM__MPI_F32, LLM__MPI_SUM, what));
    return be->ops->copy_h2d(be, x, h, bytes);
}

static llm_status broadcast_f32(void *ctx, llm_backend *be, float *x, int64_t n, const char *what) {
    llm_dist *d = ctx;
    size_t bytes = (size_t)n * sizeof *x;
    if (on_host(be)) return llm__dist_bcast(d, x, bytes, 0, what);
    float *h = NULL;
    LLM__CHECK(staged(d, n, what, &h));
    if (d->rank == 0) LLM__CHECK(be->ops->copy_d2h(be, h, x, bytes));
    LLM__CHECK(llm__dist_bcast(d, h, bytes, 0, what));
    return be->ops->copy_h2d(be, x, h, bytes);
}

/* Each rank's hash and its negation go into one max-reduction: the ranks
 * agree when max == -max(-hash) for both halves. */
static llm_status same_f32(void *ctx, llm_backend *be, const float *x, int64_t n, int *same, const char *what) {
    llm_dist *d = ctx;
    size_t bytes = (size_t)n * sizeof *x;
    const float *h = x;
    if (!on_host(be)) {
        float *stage = NULL;
        LLM__CHECK(staged(d, n, what, &stage));
        LLM__CHECK(be->ops->copy_d2h(be, stage, x, bytes));
        h = stage;
    }
    uint64_t hash = llm__fnv1a(LLM__FNV1A_INIT, h, bytes);
    double v[4] = { (double)(hash & 0xffffffffu), (double)(hash >> 32) };
    v[2] = -v[0];
    v[3] = -v[1];
    LLM__CHECK(llm__dist_allreduce(d, v, 4, LLM__MPI_F64, LLM__MPI_MAX, what));
    *same = v[0] == -v[2] && v[1] == -v[3];
    return LLM_OK;
}

llm_status llm__dist_exchange(llm_dist *d, llm__grad_exchange *out, const char *fn) {
    if (!d->healthy)
        return llm__error(LLM_ERR_DISTRIBUTED, "%s: the distributed handle is unusable after an earlier failure: %s",
                          fn, d->broken);
    out->ctx = d;
    out->rank = d->rank;
    out->size = d->size;
    out->reserve = reserve;
    out->reduce_f64 = reduce_f64;
    out->sum_f32 = sum_f32;
    out->broadcast_f32 = broadcast_f32;
    out->same_f32 = same_f32;
    return LLM_OK;
}
