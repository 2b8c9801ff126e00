/* libllm: CPU reductions to one float (sum, sum of squares for gradient
 * norms, count of non-finite values for NaN checks).
 *
 * Determinism: the input is cut into at most RED_MAX_BLOCKS blocks whose size
 * depends only on n, never on the thread count; each block is summed in double
 * in a fixed order (8 interleaved lanes, see sum_block) and the block
 * partials are then added in block order. The same input gives the same
 * bits with 1 thread or 16. */
#include <string.h>
#include "cpu.h"


/* A block's sum in 8 interleaved partial sums (lane i % 8), added in a fixed
 * tree: the same bits on every ISA path and thread count, and 8 independent
 * chains instead of one add's latency per element (a gradient norm over an
 * LSTM's 1.4M weights took 2% of a training step). */
#define RED_LANES 8
static double lanes_total(const double *l) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static void sum_block(const void *ctx, int64_t begin, int64_t end, double *partial) {
    const float *x = ctx;
    double l[RED_LANES] = { 0 };
    int64_t i = begin;
    for (; i + RED_LANES <= end; i += RED_LANES)
        for (int k = 0; k < RED_LANES; k++) l[k] += x[i + k];
    for (int k = 0; i < end; i++, k++) l[k] += x[i];
    *partial = lanes_total(l);
}

/* x [n], out [1] = sum */
llm_status llm__cpu_sum(llm_backend *be, int64_t n, const float *x, float *out) {
    *out = (float)llm__cpu_det_reduce(be, n, 1, sum_block, x);
    return LLM_OK;
}

static void sum_squares_block(const void *ctx, int64_t begin, int64_t end, double *partial) {
    const float *x = ctx;
    double l[RED_LANES] = { 0 };
    int64_t i = begin;
    for (; i + RED_LANES <= end; i += RED_LANES)
        for (int k = 0; k < RED_LANES; k++) l[k] += (double)x[i + k] * x[i + k];
    for (int k = 0; i < end; i++, k++) l[k] += (double)x[i] * x[i];
    *partial = lanes_total(l);
}

/* x [n], out [1] = sum of squares (global gradient norm for clipping) */
llm_status llm__cpu_sum_squares(llm_backend *be, int64_t n, const float *x, float *out) {
    *out = (float)llm__cpu_det_reduce(be, n, 1, sum_squares_block, x);
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
    *out = (float)llm__cpu_det_reduce(be, n, 1, nonfinite_block, x);
    return LLM_OK;
}
