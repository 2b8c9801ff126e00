/* libllm: CPU layer normalisation over the last dimension.
 *
 * Row statistics are computed in double with two passes (mean, then the mean
 * of squared deviations), which stays accurate when |mean| >> std where the
 * one-pass E[x^2] - E[x]^2 would cancel. The backward pass runs in two
 * phases: dx row-parallel, then dgamma / dbeta as column reductions split by
 * column blocks, so every sum runs over rows in order on one thread and the
 * result does not depend on the thread count. The backward recomputes each
 * row mean in double around the saved float mean (one extra pass over the
 * row): with |mean| >> std the float mean alone would cost digits. */
#include <math.h>
#include "cpu.h"
#include "simd.h"
#include "../core/internal.h"

#define LN_GRAIN 16384
#define COL_BLOCK 64

static int64_t row_grain(int64_t cols) {
    return cols >= LN_GRAIN ? 1 : LN_GRAIN / (cols > 0 ? cols : 1);
}

typedef struct ln_ctx {
    int64_t rows, cols;
    const float *x, *gamma, *beta, *mean, *rstd, *dy;
    float eps;
    float *y, *mean_out, *rstd_out, *dx, *dgamma, *dbeta;
    double *mean_exact; /* backward: [rows] the row means recomputed in double */
} ln_ctx;

/* The row sums below run in LANES interleaved partial sums, added up in a
 * fixed tree at the end: a single running sum is a dependency chain the
 * compiler may not vectorise, and the order is the same on every thread
 * and in both builds of the clones. */
#define LANES 4
#define LANE_TREE(a) (((a)[0] + (a)[2]) + ((a)[1] + (a)[3]))

/* sum of (x[j] - pivot), in double */
static inline double sum_dev(const float *x, int64_t n, double pivot) {
    double a[LANES] = { 0 };
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int t = 0; t < LANES; t++) a[t] += (double)x[j + t] - pivot;
    for (int t = 0; j + t < n; t++) a[t] += (double)x[j + t] - pivot;
    return LANE_TREE(a);
}

/* sum of (x[j] - mean)^2, in double */
static inline double sum_sq_dev(const float *x, int64_t n, double mean) {
    double a[LANES] = { 0 };
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int t = 0; t < LANES; t++) {
            double d = (double)x[j + t] - mean;
            a[t] += d * d;
        }
    for (int t = 0; j + t < n; t++) {
        double d = (double)x[j + t] - mean;
        a[t] += d * d;
    }
    return LANE_TREE(a);
}

/* The row mean in double, summed around the saved float mean: x - pivot is
 * exact, so this recovers the bits the float mean rounded away. */
static inline double row_mean(const float *x, int64_t cols, float pivot) {
    return pivot + sum_dev(x, cols, pivot) / (double)cols;
}

LLM__SIMD_CLONES
static void ln_forward_chunk(void *p, int64_t begin, int64_t end) {
    const ln_ctx *c = p;
    int64_t cols = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * cols;
        float *y = c->y + r * cols;
        double mean = sum_dev(x, cols, 0.0) / (double)cols;
        double v = sum_sq_dev(x, cols, mean);
        double rstd = 1.0 / sqrt(v / (double)cols + c->eps);
        /* x - mean in double: rounding the mean to float first would cost
         * |mean| / std ulps, e.g. 3 digits for a row at 300 +- 0.01. */
        for (int64_t j = 0; j < cols; j++) {
            float n = (float)((x[j] - mean) * rstd);
            /* gamma NULL = 1 and beta NULL = 0: LayerNorm without affine parameters */
            y[j] = n * (c->gamma ? c->gamma[j] : 1.0f) + (c->beta ? c->beta[j] : 0.0f);
        }
        if (c->mean_out) c->mean_out[r] = (float)mean;
        if (c->rstd_out) c->rstd_out[r] = (float)rstd;
    }
}

/* x [rows, cols], gamma [cols], beta [cols], y [rows, cols] (may equal x),
 * mean [rows], rstd [rows] (either may be NULL when no backward follows) */
llm_status llm__cpu_layernorm_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                      const float *gamma, const float *beta, float eps, float *y,
                                      float *mean, float *rstd) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    ln_ctx c = { .rows = rows, .cols = cols, .x = x, .gamma = gamma, .beta = beta, .eps = eps,
                 .y = y, .mean_out = mean, .rstd_out = rstd };
    llm__pool_for(llm__cpu_pool(be), rows, row_grain(cols), ln_forward_chunk, &c);
    return LLM_OK;
}

/* dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
 * Also records the exact row means for the parameter phase. */
LLM__SIMD_CLONES
static void ln_backward_dx_chunk(void *p, int64_t begin, int64_t end) {
    const ln_ctx *c = p;
    int64_t cols = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * cols, *dy = c->dy + r * cols;
        double mean = row_mean(x, cols, c->mean[r]), rstd = c->rstd[r];
        c->mean_exact[r] = mean;
        if (!c->dx) continue;
        float *dx = c->dx + r * cols;
        double sg[LANES] = { 0 }, sgx[LANES] = { 0 };
        int64_t j = 0;
        for (; j + LANES <= cols; j += LANES)
            for (int t = 0; t < LANES; t++) {
                double xhat = (x[j + t] - mean) * rstd;
                double g = (double)dy[j + t] * (c->gamma ? c->gamma[j + t] : 1.0f);
                sg[t] += g;
                sgx[t] += g * xhat;
            }
        for (int t = 0; j + t < cols; t++) {
            double xhat = (x[j + t] - mean) * rstd;
            double g = (double)dy[j + t] * (c->gamma ? c->gamma[j + t] : 1.0f);
            sg[t] += g;
            sgx[t] += g * xhat;
        }
        double mg = LANE_TREE(sg) / (double)cols, mgx = LANE_TREE(sgx) / (double)cols;
        for (j = 0; j < cols; j++) {
            double xhat = (x[j] - mean) * rstd;
            double g = (double)dy[j] * (c->gamma ? c->gamma[j] : 1.0f);
            dx[j] = (float)(dx[j] + rstd * (g - mg - xhat * mgx));
        }
    }
}

/* [begin, end) are blocks of COL_BLOCK columns */
LLM__SIMD_CLONES
static void ln_backward_params_chunk(void *p, int64_t begin, int64_t end) {
    const ln_ctx *c = p;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t c0 = blk * COL_BLOCK;
        int64_t w = c->cols - c0 < COL_BLOCK ? c->cols - c0 : COL_BLOCK;
        double ag[COL_BLOCK] = { 0 }, ab[COL_BLOCK] = { 0 };
        for (int64_t r = 0; r < c->rows; r++) {
            const float *x = c->x + r * c->cols + c0, *dy = c->dy + r * c->cols + c0;
            double mean = c->mean_exact[r], rstd = c->rstd[r];
            for (int64_t j = 0; j < w; j++) {
                ag[j] += (double)dy[j] * ((x[j] - mean) * rstd);
                ab[j] += dy[j];
            }
        }
        for (int64_t j = 0; j < w; j++) {
            if (c->dgamma) c->dgamma[c0 + j] = (float)(c->dgamma[c0 + j] + ag[j]);
            if (c->dbeta) c->dbeta[c0 + j] = (float)(c->dbeta[c0 + j] + ab[j]);
        }
    }
}

/* x [rows, cols], gamma [cols], mean/rstd [rows] from forward, dy [rows, cols];
 * dx [rows, cols] +=, dgamma [cols] +=, dbeta [cols] += (each may be NULL to skip);
 * workspace [2 * rows] floats, 8-byte aligned, holds the double row means */
llm_status llm__cpu_layernorm_backward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                       const float *gamma, const float *mean, const float *rstd,
                                       const float *dy, float *dx, float *dgamma, float *dbeta,
                                       float *workspace) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    if (!workspace || (uintptr_t)workspace % sizeof(double))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the workspace is NULL or not 8-byte aligned", __func__);
    double *means = (double *)(void *)workspace;
    ln_ctx c = { .rows = rows, .cols = cols, .x = x, .gamma = gamma, .mean = mean, .rstd = rstd,
                 .dy = dy, .dx = dx, .dgamma = dgamma, .dbeta = dbeta, .mean_exact = means };
    llm__pool *pool = llm__cpu_pool(be);
    llm__pool_for(pool, rows, row_grain(cols), ln_backward_dx_chunk, &c);
    if (dgamma || dbeta) {
        int64_t blocks = (cols + COL_BLOCK - 1) / COL_BLOCK;
        int64_t per_block = rows * COL_BLOCK;
        int64_t grain = per_block >= LN_GRAIN ? 1 : LN_GRAIN / per_block;
        llm__pool_for(pool, blocks, grain, ln_backward_params_chunk, &c);
    }
    return LLM_OK;
}
