/* libllm: CPU reductions to one float (sum, sum of squares for gradient
 * norms, count of non-finite values for NaN checks).
 *
 * Determinism: the input is cut into at most RED_MAX_BLOCKS blocks whose size
 * depends only on n, never on the thread count; each block is summed in double
 * in index order and the block partials are then added in block order. The
 * same input gives the same bits with 1 thread or 16. */
#include <string.h>
#include "cpu.h"

#define RED_BLOCK_MIN 4096
#define RED_MAX_BLOCKS 64
#define RED_GRAIN 16384 /* elements per chunk at least */

typedef void (*red_block_fn)(const void *ctx, int64_t begin, int64_t end, double *partial);

typedef struct red_job {
    red_block_fn fn;
    const void *ctx;
    int64_t n, block;
    double *partials;
} red_job;

static void red_chunk(void *p, int64_t b0, int64_t b1) {
    const red_job *j = p;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t begin = blk * j->block;
        int64_t end = begin + j->block < j->n ? begin + j->block : j->n;
        double s = 0.0;
        j->fn(j->ctx, begin, end, &s);
        j->partials[blk] = s;
    }
}

/* Sum over [0, n) of what fn adds per block, in a thread-count-independent order. */
static double det_reduce(llm_backend *be, int64_t n, red_block_fn fn, const void *ctx) {
    if (n <= 0) return 0.0;
    int64_t block = (n + RED_MAX_BLOCKS - 1) / RED_MAX_BLOCKS;
    if (block < RED_BLOCK_MIN) block = RED_BLOCK_MIN;
    int64_t blocks = (n + block - 1) / block;
    double partials[RED_MAX_BLOCKS];
    red_job j = { fn, ctx, n, block, partials };
    int64_t grain = (RED_GRAIN + block - 1) / block;
    llm__pool_for(llm__cpu_pool(be), blocks, grain, red_chunk, &j);
    double s = 0.0;
    for (int64_t b = 0; b < blocks; b++) s += partials[b];
    return s;
}

static void sum_block(const void *ctx, int64_t begin, int64_t end, double *partial) {
    const float *x = ctx;
    double s = 0.0;
    for (int64_t i = begin; i < end; i++) s += x[i];
    *partial = s;
}

/* x [n], out [1] = sum */
llm_status llm__cpu_sum(llm_backend *be, int64_t n, const float *x, float *out) {
    *out = (float)det_reduce(be, n, sum_block, x);
    return LLM_OK;
}

static void sum_squares_block(const void *ctx, int64_t begin, int64_t end, double *partial) {
    const float *x = ctx;
    double s = 0.0;
    for (int64_t i = begin; i < end; i++) s += (double)x[i] * x[i];
    *partial = s;
}

/* x [n], out [1] = sum of squares (global gradient norm for clipping) */
llm_status llm__cpu_sum_squares(llm_backend *be, int64_t n, const float *x, float *out) {
    *out = (float)det_reduce(be, n, sum_squares_block, x);
    return LLM_OK;
}

static void nonfinite_block(const void *ctx, int64_t begin, int64_t end, double *partial) {
    const float *x = ctx;
    int64_t count = 0;
    /* Exponent bits all ones = Inf or NaN. Testing bits rather than isfinite()
     * keeps working if someone builds with -ffast-math, which lets the
     * compiler assume no NaNs exist. */
    for (int64_t i = begin; i < end; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        count += (u & 0x7f800000u) == 0x7f800000u;
    }
    *partial = (double)count;
}

/* x [n], out [1] = number of NaN / Inf elements (as a float) */
llm_status llm__cpu_count_nonfinite(llm_backend *be, int64_t n, const float *x, float *out) {
    *out = (float)det_reduce(be, n, nonfinite_block, x);
    return LLM_OK;
}
