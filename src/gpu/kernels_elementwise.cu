/* libllm: CUDA element-wise kernels (fill, axpy, scale, add, mul, strided
 * row copies and scaling, dropout).
 *
 * Grid-stride loops, one thread per element; every output element depends
 * only on inputs at the same index, so aliasing (out == a) is safe as on the
 * CPU. Dropout draws from the same counter-based generator as the CPU
 * (src/core/rng.h), so both backends drop the same elements. */
#include "gpu.h"
#include "../core/rng.h"

#define GRID_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Launches kernel<<<blocks(n), 256>>> on the backend's stream and reports a
 * launch failure. */
#define LAUNCH_1D(be, what, n, kernel, ...) do {                                                   \
        if ((n) <= 0) return LLM_OK;                                                               \
        LLM__GPU_ENTER(be);                                                                        \
        kernel<<<llm__gpu_blocks((n), LLM__GPU_THREADS), LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(__VA_ARGS__); \
        return llm__gpu_launched(what);                                                            \
    } while (0)

__global__ static void fill_kernel(int64_t n, float v, float *x) { GRID_LOOP(i, n) x[i] = v; }
__global__ static void fill_i32_kernel(int64_t n, int32_t v, int32_t *x) { GRID_LOOP(i, n) x[i] = v; }

cudaError_t llm__gpu_kernel_probe(cudaFuncAttributes *attr) {
    return cudaFuncGetAttributes(attr, fill_kernel);
}

/* x [n] */
llm_status llm__gpu_fill(llm_backend *be, int64_t n, float value, float *x) {
    LAUNCH_1D(be, "fill", n, fill_kernel, n, value, x);
}

/* x [n] int32 */
llm_status llm__gpu_fill_i32(llm_backend *be, int64_t n, int32_t value, int32_t *x) {
    LAUNCH_1D(be, "fill_i32", n, fill_i32_kernel, n, value, x);
}

__global__ static void axpy_kernel(int64_t n, float alpha, const float *x, float *y) {
    GRID_LOOP(i, n) y[i] += alpha * x[i];
}

/* x [n], y [n]: y += alpha x */
llm_status llm__gpu_axpy(llm_backend *be, int64_t n, float alpha, const float *x, float *y) {
    LAUNCH_1D(be, "axpy", n, axpy_kernel, n, alpha, x, y);
}

__global__ static void scale_kernel(int64_t n, float alpha, float *x) { GRID_LOOP(i, n) x[i] *= alpha; }

/* x [n]: x *= alpha */
llm_status llm__gpu_scale(llm_backend *be, int64_t n, float alpha, float *x) {
    LAUNCH_1D(be, "scale", n, scale_kernel, n, alpha, x);
}

__global__ static void add_kernel(int64_t n, const float *a, const float *b, float *out) {
    GRID_LOOP(i, n) out[i] = a[i] + b[i];
}

/* a, b, out [n]; out may alias a or b */
llm_status llm__gpu_add(llm_backend *be, int64_t n, const float *a, const float *b, float *out) {
    LAUNCH_1D(be, "add", n, add_kernel, n, a, b, out);
}

__global__ static void mul_kernel(int64_t n, const float *a, const float *b, float *out) {
    GRID_LOOP(i, n) out[i] = a[i] * b[i];
}

/* a, b, out [n]; out may alias a or b */
llm_status llm__gpu_mul(llm_backend *be, int64_t n, const float *a, const float *b, float *out) {
    LAUNCH_1D(be, "mul", n, mul_kernel, n, a, b, out);
}

/* 2-D launches: blockIdx.y walks rows (grid-stride past 65535), x walks
 * columns; consecutive threads touch consecutive columns of one row. */
static dim3 grid_2d(int64_t rows, int64_t cols) {
    int64_t bx = (cols + LLM__GPU_THREADS - 1) / LLM__GPU_THREADS;
    if (bx > 1024) bx = 1024;
    int64_t by = rows < 65535 ? rows : 65535;
    return dim3((unsigned)(bx > 0 ? bx : 1), (unsigned)(by > 0 ? by : 1));
}

#define ROW_LOOP(r, rows) for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)
#define COL_LOOP(c, cols) \
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < (cols); c += (int64_t)gridDim.x * blockDim.x)

__global__ static void copy_rows_kernel(int64_t rows, int64_t cols, const float *src, int64_t ld_src,
                                        float *dst, int64_t ld_dst, int accumulate) {
    ROW_LOOP(r, rows) {
        const float *s = src + r * ld_src;
        float *d = dst + r * ld_dst;
        if (accumulate) COL_LOOP(c, cols) d[c] += s[c];
        else COL_LOOP(c, cols) d[c] = s[c];
    }
}

/* src [rows, cols] row stride ld_src, dst [rows, cols] row stride ld_dst: dst (+)= src */
llm_status llm__gpu_copy_rows(llm_backend *be, int64_t rows, int64_t cols, const float *src,
                              int64_t ld_src, float *dst, int64_t ld_dst, int accumulate) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    copy_rows_kernel<<<grid_2d(rows, cols), LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(
        rows, cols, src, ld_src, dst, ld_dst, accumulate);
    return llm__gpu_launched("copy_rows");
}

__global__ static void scale_rows_kernel(int64_t rows, int64_t cols, float beta, float *x, int64_t ld) {
    ROW_LOOP(r, rows) {
        float *p = x + r * ld;
        if (beta == 0.0f) COL_LOOP(c, cols) p[c] = 0.0f;
        else COL_LOOP(c, cols) p[c] *= beta;
    }
}

/* x [rows, cols] row stride ld: x = beta x, exactly 0 when beta = 0 (the
 * sgemm k = 0 case: BLAS never reads C then, so NaN in C does not survive) */
llm_status llm__gpu_scale_rows(llm_backend *be, int64_t rows, int64_t cols, float beta, float *x,
                               int64_t ld) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    scale_rows_kernel<<<grid_2d(rows, cols), LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(rows, cols, beta, x, ld);
    return llm__gpu_launched("scale_rows");
}

__global__ static void dropout_kernel(int64_t n, float rate, float inv_keep, uint64_t seed, uint64_t counter,
                                      const float *x, float *y, int accumulate) {
    GRID_LOOP(i, n) {
        int keep = llm__rng_uniform(seed, counter + (uint64_t)i) >= rate;
        float v = keep ? x[i] * inv_keep : 0.0f;
        if (accumulate) y[i] += v;
        else y[i] = v;
    }
}

/* x [n], y [n]: y (+)= x * keep / (1 - rate) */
llm_status llm__gpu_dropout(llm_backend *be, int64_t n, float rate, uint64_t seed, uint64_t counter,
                            const float *x, float *y, int accumulate) {
    float inv_keep = 1.0f / (1.0f - rate); /* computed on the host, as on the CPU */
    LAUNCH_1D(be, "dropout", n, dropout_kernel, n, rate, inv_keep, seed, counter, x, y, accumulate);
}
