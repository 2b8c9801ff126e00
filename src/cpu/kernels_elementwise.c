/* libllm: CPU element-wise kernels (fill, axpy, scale, add, mul, strided
 * row copies, dropout).
 *
 * Each output element is written by exactly one chunk from inputs at the same
 * index, so the result is the same whatever the thread count. Arrays below
 * ~32K elements run inline: waking the pool costs a few microseconds, more
 * than the loop itself. */
#include "cpu.h"
#include "../core/rng.h"

#define EW_GRAIN 16384 /* elements per chunk at least: threads start at 2 * EW_GRAIN */

/* One context for all the simple [n] loops; unused fields stay 0. */
typedef struct ew_ctx {
    float value, alpha;
    int32_t ivalue;
    const float *a, *b;
    float *out;
    int32_t *iout;
} ew_ctx;

static void fill_chunk(void *p, int64_t begin, int64_t end) {
    const ew_ctx *c = p;
    for (int64_t i = begin; i < end; i++) c->out[i] = c->value;
}

/* x [n] */
llm_status llm__cpu_fill(llm_backend *be, int64_t n, float value, float *x) {
    ew_ctx c = { .value = value, .out = x };
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN, fill_chunk, &c);
    return LLM_OK;
}

static void fill_i32_chunk(void *p, int64_t begin, int64_t end) {
    const ew_ctx *c = p;
    for (int64_t i = begin; i < end; i++) c->iout[i] = c->ivalue;
}

/* x [n] int32 */
llm_status llm__cpu_fill_i32(llm_backend *be, int64_t n, int32_t value, int32_t *x) {
    ew_ctx c = { .ivalue = value, .iout = x };
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN, fill_i32_chunk, &c);
    return LLM_OK;
}

static void axpy_chunk(void *p, int64_t begin, int64_t end) {
    const ew_ctx *c = p;
    const float *x = c->a;
    float *y = c->out, alpha = c->alpha;
    for (int64_t i = begin; i < end; i++) y[i] += alpha * x[i];
}

/* x [n], y [n]: y += alpha x */
llm_status llm__cpu_axpy(llm_backend *be, int64_t n, float alpha, const float *x, float *y) {
    ew_ctx c = { .alpha = alpha, .a = x, .out = y };
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN, axpy_chunk, &c);
    return LLM_OK;
}

static void scale_chunk(void *p, int64_t begin, int64_t end) {
    const ew_ctx *c = p;
    float *x = c->out, alpha = c->alpha;
    for (int64_t i = begin; i < end; i++) x[i] *= alpha;
}

/* x [n]: x *= alpha */
llm_status llm__cpu_scale(llm_backend *be, int64_t n, float alpha, float *x) {
    ew_ctx c = { .alpha = alpha, .out = x };
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN, scale_chunk, &c);
    return LLM_OK;
}

static void add_chunk(void *p, int64_t begin, int64_t end) {
    const ew_ctx *c = p;
    for (int64_t i = begin; i < end; i++) c->out[i] = c->a[i] + c->b[i];
}

/* a, b, out [n]; out may alias a or b (same index read before written) */
llm_status llm__cpu_add(llm_backend *be, int64_t n, const float *a, const float *b, float *out) {
    ew_ctx c = { .a = a, .b = b, .out = out };
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN, add_chunk, &c);
    return LLM_OK;
}

static void mul_chunk(void *p, int64_t begin, int64_t end) {
    const ew_ctx *c = p;
    for (int64_t i = begin; i < end; i++) c->out[i] = c->a[i] * c->b[i];
}

/* a, b, out [n]; out may alias a or b */
llm_status llm__cpu_mul(llm_backend *be, int64_t n, const float *a, const float *b, float *out) {
    ew_ctx c = { .a = a, .b = b, .out = out };
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN, mul_chunk, &c);
    return LLM_OK;
}

typedef struct copy_rows_ctx {
    int64_t cols, ld_src, ld_dst;
    const float *src;
    float *dst;
    int accumulate;
} copy_rows_ctx;

static void copy_rows_chunk(void *p, int64_t begin, int64_t end) {
    const copy_rows_ctx *c = p;
    for (int64_t r = begin; r < end; r++) {
        const float *s = c->src + r * c->ld_src;
        float *d = c->dst + r * c->ld_dst;
        if (c->accumulate)
            for (int64_t j = 0; j < c->cols; j++) d[j] += s[j];
        else
            for (int64_t j = 0; j < c->cols; j++) d[j] = s[j];
    }
}

/* src [rows, cols] row stride ld_src, dst [rows, cols] row stride ld_dst.
 * Used to move time-step slices in and out of [B, T, F] sequences, so the
 * rows are short and many: split by rows. */
llm_status llm__cpu_copy_rows(llm_backend *be, int64_t rows, int64_t cols, const float *src,
                              int64_t ld_src, float *dst, int64_t ld_dst, int accumulate) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    copy_rows_ctx c = { cols, ld_src, ld_dst, src, dst, accumulate };
    int64_t grain = cols >= EW_GRAIN ? 1 : EW_GRAIN / cols;
    llm__pool_for(llm__cpu_pool(be), rows, grain, copy_rows_chunk, &c);
    return LLM_OK;
}

typedef struct dropout_ctx {
    float rate, inv_keep;
    uint64_t seed, counter;
    const float *x;
    float *y;
    int accumulate;
} dropout_ctx;

static void dropout_chunk(void *p, int64_t begin, int64_t end) {
    const dropout_ctx *c = p;
    /* The mask of element i depends only on (seed, counter + i), so forward
     * and backward (and the GPU) agree without storing it. */
    for (int64_t i = begin; i < end; i++) {
        int keep = llm__rng_uniform(c->seed, c->counter + (uint64_t)i) >= c->rate;
        float v = keep ? c->x[i] * c->inv_keep : 0.0f;
        if (c->accumulate) c->y[i] += v;
        else c->y[i] = v;
    }
}

/* x [n], y [n]: y (+)= x * keep / (1 - rate), rate in [0, 1) (checked by the core). */
llm_status llm__cpu_dropout(llm_backend *be, int64_t n, float rate, uint64_t seed, uint64_t counter,
                            const float *x, float *y, int accumulate) {
    dropout_ctx c = { rate, 1.0f / (1.0f - rate), seed, counter, x, y, accumulate };
    /* A hash per element makes this ~10x the work of an add: split sooner. */
    llm__pool_for(llm__cpu_pool(be), n, EW_GRAIN / 8, dropout_chunk, &c);
    return LLM_OK;
}
