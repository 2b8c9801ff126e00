/* libllm: CPU activation kernels (bias + activation, their backward, bias
 * gradient, softmax).
 *
 * Row-parallel kernels split by rows; the column reduction (bias gradient)
 * splits by blocks of columns so every output is summed by one thread, over
 * the rows in order, in double: the same bits for every thread count. */
#include <math.h>
#include "cpu.h"
#include "fastmath.h"
#include "simd.h"

#define ACT_GRAIN 16384 /* elements per chunk at least */
#define COL_BLOCK 64    /* columns per block in column reductions: 256 B of floats per row */

/* Split at least ACT_GRAIN elements of rows of `cols` elements per chunk. */
static int64_t row_grain(int64_t cols) {
    return cols >= ACT_GRAIN ? 1 : ACT_GRAIN / (cols > 0 ? cols : 1);
}

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* GELU, tanh form: 0.5 v (1 + tanh(u)) with u = k (v + a v^3), computed as
 * v sigmoid(2u) (the same function: 0.5 (1 + tanh(u)) = sigmoid(2u)), one
 * exponential and no branch, so the loops vectorise. */
static inline float gelu_tanh(float v) {
    float u2 = 2.0f * GELU_K * (v + GELU_A * v * v * v);
    return v / (1.0f + llm__expf(-u2));
}

static inline float gelu_tanh_grad(float v) {
    float u2 = 2.0f * GELU_K * (v + GELU_A * v * v * v);
    float s = 1.0f / (1.0f + llm__expf(-u2));
    return s + v * s * (1.0f - s) * (2.0f * GELU_K) * (1.0f + 3.0f * GELU_A * v * v);
}

static inline float relu_f(float v) { return v > 0.0f ? v : 0.0f; }
static inline float identity_f(float v) { return v; }

typedef struct act_ctx {
    int act;
    int64_t cols;
    const float *x, *bias, *y, *dy;
    float *out;
} act_ctx;

LLM__SIMD_CLONES
static void bias_act_chunk(void *p, int64_t begin, int64_t end) {
    const act_ctx *c = p;
    int64_t cols = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * cols;
        float *y = c->out + r * cols;
        /* one loop per (activation, bias or not): no test inside a loop, so
         * each vectorises */
#define ACT_LOOPS(F)                                                             \
        if (c->bias) for (int64_t j = 0; j < cols; j++) y[j] = F(x[j] + c->bias[j]); \
        else for (int64_t j = 0; j < cols; j++) y[j] = F(x[j]);
        switch (c->act) {
        case LLM__ACT_RELU: ACT_LOOPS(relu_f) break;
        case LLM__ACT_SIGMOID: ACT_LOOPS(llm__sigmoidf) break;
        case LLM__ACT_TANH: ACT_LOOPS(llm__tanhf) break;
        case LLM__ACT_GELU: ACT_LOOPS(gelu_tanh) break;
        default: ACT_LOOPS(identity_f) break; /* LLM__ACT_NONE */
        }
#undef ACT_LOOPS
    }
}

/* ---- fused linear: GEMM in row blocks, bias and activation on each block
 * while it is still in L2 ---- */

#include <cblas.h>

typedef struct linear_ctx {
    int64_t rows, in, out, block;
    const float *x, *W, *b;
    int act;
    float *z, *y;
} linear_ctx;

static void linear_chunk(void *p, int64_t begin, int64_t end) {
    const linear_ctx *c = p;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * c->block, r1 = r0 + c->block < c->rows ? r0 + c->block : c->rows;
        float *z = (c->z ? c->z : c->y) + r0 * c->out;
        const float *xr = c->x + r0 * c->in;
        const int m = (int)(r1 - r0), n = (int)c->out, k = (int)c->in;
        const int own = c->rows > LLM__GEMM_SMALL_M && llm__cpu_gemm_own_ok(n, 1.0f, 0.0f);
        if (own && c->b) {
            /* each row starts from the bias inside the GEMM: the bits of
             * the copy below, without writing and reading the rows */
            llm__cpu_gemm_own_bias(0, 1, m, n, k, xr, k, c->W, k, c->b, z, n);
        } else {
            /* the GEMM adds into rows of bias (beta 1): what OpenBLAS would
             * spend zeroing them (beta 0) is spent copying the bias, and the
             * separate bias pass goes away; the sums are the same */
            float beta = 0.0f;
            if (c->b) {
                for (int64_t r = 0; r < m; r++) memcpy(z + r * n, c->b, (size_t)n * sizeof *z);
                beta = 1.0f;
            }
            if (c->rows <= LLM__GEMM_SMALL_M) /* a token or two: decoding */
                llm__cpu_gemm_small_m(m, n, k, 1.0f, xr, k, c->W, k, beta, z, n);
            else if (own)
                llm__cpu_gemm_own(0, 1, m, n, k, xr, k, c->W, k, beta, z, n);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, xr, k, c->W, k, beta, z, n);
        }
        if (c->act != LLM__ACT_NONE || (c->z && c->y != c->z)) {
            act_ctx a = { .act = c->act, .cols = c->out, .x = c->z ? c->z : c->y, .bias = NULL, .out = c->y };
            bias_act_chunk(&a, r0, r1);
        }
    }
}

llm_status llm__cpu_linear_forward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                   const float *W, const float *b, int act, float *z, float *y) {
    if (rows <= 0 || out <= 0 || in <= 0) return LLM_OK; /* the core checks shapes */
    /* blocks of up to 512 KiB of output: big enough for an efficient GEMM
     * (the own GEMM packs all of W for each block: 64 rows of a 128 x 512
     * product ran at 165 GFLOP/s, 256 rows at 220-237), small enough to
     * stay in L2 for the bias rows and the activation pass */
    int64_t block = (131072 / out) & ~(int64_t)15;
    if (block < 16) block = 16;
    if (block > 256) block = 256;
    linear_ctx c = { rows, in, out, block, x, W, b, act, z, y };
    int64_t blocks = (rows + block - 1) / block;
    /* at least ~2M multiply-adds per chunk before a second thread helps */
    int64_t grain = (int64_t)(2e6 / ((double)block * (double)in * (double)out)) + 1;
    llm__pool_for(llm__cpu_pool(be), blocks, grain, linear_chunk, &c);
    return LLM_OK;
}

/* x [rows, cols], bias [cols] or NULL, y [rows, cols] (may equal x). */
llm_status llm__cpu_bias_act_forward(llm_backend *be, int act, int64_t rows, int64_t cols,
                                     const float *x, const float *bias, float *y) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    act_ctx c = { .act = act, .cols = cols, .x = x, .bias = bias, .out = y };
    llm__pool_for(llm__cpu_pool(be), rows, row_grain(cols), bias_act_chunk, &c);
    return LLM_OK;
}

LLM__SIMD_CLONES
static void act_backward_chunk(void *p, int64_t begin, int64_t end) {
    const act_ctx *c = p;
    const float *x = c->x, *y = c->y, *dy = c->dy;
    float *dx = c->out;
    switch (c->act) {
    case LLM__ACT_RELU:
        for (int64_t i = begin; i < end; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case LLM__ACT_SIGMOID:
        for (int64_t i = begin; i < end; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        break;
    case LLM__ACT_TANH:
        for (int64_t i = begin; i < end; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
        break;
    case LLM__ACT_GELU: /* the output alone does not determine the input: needs x */
        for (int64_t i = begin; i < end; i++) dx[i] += dy[i] * gelu_tanh_grad(x[i]);
        break;
    default:
        for (int64_t i = begin; i < end; i++) dx[i] += dy[i];
        break;
    }
}

/* x [n] (GELU only, else may be NULL), y [n] activation output, dy [n], dx [n] += */
llm_status llm__cpu_act_backward(llm_backend *be, int act, int64_t n, const float *x,
                                 const float *y, const float *dy, float *dx) {
    act_ctx c = { .act = act, .x = x, .y = y, .dy = dy, .out = dx };
    llm__pool_for(llm__cpu_pool(be), n, ACT_GRAIN, act_backward_chunk, &c);
    return LLM_OK;
}

typedef struct colsum_ctx {
    int64_t rows, cols;
    const float *d;
    float *dbias;
} colsum_ctx;

/* [begin, end) are blocks of COL_BLOCK columns. */
LLM__SIMD_CLONES
static void bias_backward_chunk(void *p, int64_t begin, int64_t end) {
    const colsum_ctx *c = p;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t c0 = blk * COL_BLOCK;
        int64_t w = c->cols - c0 < COL_BLOCK ? c->cols - c0 : COL_BLOCK;
        double acc[COL_BLOCK] = { 0 };
        for (int64_t r = 0; r < c->rows; r++) {
            const float *d = c->d + r * c->cols + c0;
            for (int64_t j = 0; j < w; j++) acc[j] += d[j];
        }
        for (int64_t j = 0; j < w; j++) c->dbias[c0 + j] = (float)(c->dbias[c0 + j] + acc[j]);
    }
}

/* d [rows, cols], dbias [cols] += column sums */
llm_status llm__cpu_bias_backward(llm_backend *be, int64_t rows, int64_t cols, const float *d,
                                  float *dbias) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    colsum_ctx c = { rows, cols, d, dbias };
    int64_t blocks = (cols + COL_BLOCK - 1) / COL_BLOCK;
    int64_t per_block = rows * COL_BLOCK;
    int64_t grain = per_block >= ACT_GRAIN ? 1 : ACT_GRAIN / per_block;
    llm__pool_for(llm__cpu_pool(be), blocks, grain, bias_backward_chunk, &c);
    return LLM_OK;
}

static void softmax_chunk(void *p, int64_t begin, int64_t end) {
    const act_ctx *c = p;
    int64_t cols = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * cols;
        float *y = c->out + r * cols;
        float mx = x[0];
        for (int64_t j = 1; j < cols; j++) mx = x[j] > mx ? x[j] : mx;
        /* exp(x - max) <= 1: no overflow; the sum is >= 1: no division by 0 */
        double sum = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            float e = expf(x[j] - mx);
            y[j] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < cols; j++) y[j] *= inv;
    }
}

/* x [rows, cols], y [rows, cols] (may equal x) */
llm_status llm__cpu_softmax_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                    float *y) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    act_ctx c = { .cols = cols, .x = x, .out = y };
    llm__pool_for(llm__cpu_pool(be), rows, row_grain(cols), softmax_chunk, &c);
    return LLM_OK;
}

static void softmax_backward_chunk(void *p, int64_t begin, int64_t end) {
    const act_ctx *c = p;
    int64_t cols = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *y = c->y + r * cols, *dy = c->dy + r * cols;
        float *dx = c->out + r * cols;
        double dot = 0.0;
        for (int64_t j = 0; j < cols; j++) dot += (double)dy[j] * y[j];
        float fdot = (float)dot;
        for (int64_t j = 0; j < cols; j++) dx[j] += y[j] * (dy[j] - fdot);
    }
}

/* y [rows, cols] softmax output, dy [rows, cols], dx [rows, cols] += */
llm_status llm__cpu_softmax_backward(llm_backend *be, int64_t rows, int64_t cols, const float *y,
                                     const float *dy, float *dx) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    act_ctx c = { .cols = cols, .y = y, .dy = dy, .out = dx };
    llm__pool_for(llm__cpu_pool(be), rows, row_grain(cols), softmax_backward_chunk, &c);
    return LLM_OK;
}
