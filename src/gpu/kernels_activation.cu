/* libllm: CUDA activation kernels (bias + activation, their backward, bias
 * gradient, softmax).
 *
 * The formulas are the CPU's (src/cpu/kernels_activation.c) with CUDA's
 * expf / tanhf (within 2 ulp). Row statistics (softmax) and the column sums
 * of the bias gradient add in double in a fixed order, so results do not
 * change from run to run. */
#include "gpu.h"
#include "reduce.cuh"

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

static __device__ __forceinline__ float sigmoid_stable(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

static __device__ __forceinline__ float act_apply(int act, float v) {
    switch (act) {
    case LLM__ACT_RELU: return v > 0.0f ? v : 0.0f;
    case LLM__ACT_SIGMOID: return sigmoid_stable(v);
    case LLM__ACT_TANH: return tanhf(v);
    case LLM__ACT_GELU: return v / (1.0f + expf(-2.0f * GELU_K * (v + GELU_A * v * v * v)));
    default: return v;
    }
}

/* GELU in the CPU's form, v sigmoid(2u) with u = k (v + a v^3) (equal to
 * 0.5 v (1 + tanh u)); its derivative has no 1 - tanh^2 cancellation. */
static __device__ __forceinline__ float gelu_grad(float v) {
    float s = 1.0f / (1.0f + expf(-2.0f * GELU_K * (v + GELU_A * v * v * v)));
    return s + v * s * (1.0f - s) * (2.0f * GELU_K) * (1.0f + 3.0f * GELU_A * v * v);
}

__global__ static void bias_act_kernel(int act, int64_t rows, int64_t cols, const float *x,
                                       const float *bias, float *y) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < cols;
             c += (int64_t)gridDim.x * blockDim.x)
            yr[c] = act_apply(act, xr[c] + (bias ? bias[c] : 0.0f));
    }
}

/* x [rows, cols], bias [cols] or NULL, y [rows, cols] (may equal x) */
llm_status llm__gpu_bias_act_forward(llm_backend *be, int act, int64_t rows, int64_t cols,
                                     const float *x, const float *bias, float *y) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int64_t bx = (cols + LLM__GPU_THREADS - 1) / LLM__GPU_THREADS;
    dim3 grid((unsigned)(bx < 1024 ? bx : 1024), (unsigned)(rows < 65535 ? rows : 65535));
    bias_act_kernel<<<grid, LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(act, rows, cols, x, bias, y);
    return llm__gpu_launched("bias_act_forward");
}

__global__ static void act_backward_kernel(int act, int64_t n, const float *x, const float *y,
                                           const float *dy, float *dx) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g;
        switch (act) {
        case LLM__ACT_RELU: g = y[i] > 0.0f ? dy[i] : 0.0f; break;
        case LLM__ACT_SIGMOID: g = dy[i] * y[i] * (1.0f - y[i]); break;
        case LLM__ACT_TANH: g = dy[i] * (1.0f - y[i] * y[i]); break;
        case LLM__ACT_GELU: g = dy[i] * gelu_grad(x[i]); break;
        default: g = dy[i]; break;
        }
        dx[i] += g;
    }
}

/* x [n] (GELU only, else may be NULL), y [n], dy [n], dx [n] += */
llm_status llm__gpu_act_backward(llm_backend *be, int act, int64_t n, const float *x,
                                 const float *y, const float *dy, float *dx) {
    if (n <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    act_backward_kernel<<<llm__gpu_blocks(n, LLM__GPU_THREADS), LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(
        act, n, x, y, dy, dx);
    return llm__gpu_launched("act_backward");
}

struct bias_term {
    const float *d;
    int64_t cols;
    __device__ llm__d2 operator()(int64_t r, int64_t c) const { return llm__d2{ (double)d[r * cols + c], 0.0 }; }
};

struct bias_store {
    float *dbias;
    __device__ void operator()(int64_t c, double a, double) const { dbias[c] = (float)(dbias[c] + a); }
};

/* d [rows, cols], dbias [cols] += column sums */
llm_status llm__gpu_bias_backward(llm_backend *be, int64_t rows, int64_t cols, const float *d,
                                  float *dbias) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    return llm__gpu_colsum(be, rows, cols, bias_term{ d, cols }, bias_store{ dbias }, "bias_backward");
}

/* One block per row (grid-stride over rows). */
__global__ static void softmax_kernel(int64_t rows, int64_t cols, const float *x, float *y) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mx = -INFINITY;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, xr[c]);
        mx = llm__block_max(mx, shf);
        /* every read of the row is done (block_max synchronises): y may be x */
        double s = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            float e = expf(xr[c] - mx);
            yr[c] = e;
            s += e;
        }
        s = llm__block_sum(s, shd);
        float inv = (float)(1.0 / s);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] *= inv;
    }
}

static unsigned row_grid(int64_t rows) { return (unsigned)(rows < 2147483647LL ? rows : 2147483647LL); }

/* x [rows, cols], y [rows, cols] (may equal x) */
llm_status llm__gpu_softmax_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                    float *y) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    softmax_kernel<<<row_grid(rows), llm__gpu_row_threads(cols), 0, llm__gpu_stream(be)>>>(rows, cols, x, y);
    return llm__gpu_launched("softmax_forward");
}

__global__ static void softmax_backward_kernel(int64_t rows, int64_t cols, const float *y,
                                               const float *dy, float *dx) {
    __shared__ double shd[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += (double)dyr[c] * yr[c];
        dot = llm__block_sum(dot, shd);
        float fdot = (float)dot;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dxr[c] += yr[c] * (dyr[c] - fdot);
    }
}

/* y [rows, cols] softmax output, dy [rows, cols], dx [rows, cols] += */
llm_status llm__gpu_softmax_backward(llm_backend *be, int64_t rows, int64_t cols, const float *y,
                                     const float *dy, float *dx) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    softmax_backward_kernel<<<row_grid(rows), llm__gpu_row_threads(cols), 0, llm__gpu_stream(be)>>>(
        rows, cols, y, dy, dx);
    return llm__gpu_launched("softmax_backward");
}
