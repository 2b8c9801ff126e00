/* libllm: CUDA pooling over time (GlobalAveragePooling1D /
 * GlobalMaxPooling1D with a padding mask).
 *
 * One thread per (batch row, feature) walks the time steps in order, as the
 * CPU does: averages sum in double, the maximum keeps the earliest step on
 * ties (strict >), rows with no real step give 0 and argmax -1. The backward
 * writes each (b, t, f) from exactly one thread: no atomics. */
#include "gpu.h"

static __device__ __forceinline__ int step_real(const float *mask, int64_t b, int64_t T, int64_t t) {
    return !mask || mask[b * T + t] != 0.0f;
}

static __device__ int64_t count_real(const float *mask, int64_t b, int64_t T) {
    if (!mask) return T;
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) n += mask[b * T + t] != 0.0f;
    return n;
}

#define BF_LOOP(b, f, B, F)                                                                         \
    for (int64_t b = blockIdx.y; b < (B); b += gridDim.y)                                            \
        for (int64_t f = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; f < (F); f += (int64_t)gridDim.x * blockDim.x)

static dim3 bf_grid(int64_t B, int64_t F, int threads) {
    int64_t bx = (F + threads - 1) / threads;
    int64_t by = B < 65535 ? B : 65535;
    return dim3((unsigned)(bx < 1024 ? bx : 1024), (unsigned)(by > 0 ? by : 1));
}

static int bf_threads(int64_t F) {
    int t = 32;
    while (t < 256 && t < F) t <<= 1;
    return t;
}

__global__ static void pool_forward_kernel(int mode, int64_t B, int64_t T, int64_t F, const float *x,
                                           const float *mask, float *y, int32_t *argmax) {
    BF_LOOP(b, f, B, F) {
        const float *xb = x + b * T * F + f;
        if (mode == LLM__POOL_MAX) {
            float best = 0.0f;
            int32_t am = -1;
            for (int64_t t = 0; t < T; t++) {
                if (!step_real(mask, b, T, t)) continue;
                float v = xb[t * F];
                if (am < 0 || v > best) {
                    best = v;
                    am = (int32_t)t;
                }
            }
            y[b * F + f] = best;
            if (argmax) argmax[b * F + f] = am;
        } else {
            int64_t n = count_real(mask, b, T);
            double acc = 0.0;
            for (int64_t t = 0; t < T; t++)
                if (step_real(mask, b, T, t)) acc += xb[t * F];
            y[b * F + f] = n > 0 ? (float)(acc / (double)n) : 0.0f;
        }
    }
}

/* x [B, T, F], mask [B, T] or NULL, y [B, F], argmax [B, F] (MAX; may be NULL) */
llm_status llm__gpu_pool_forward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                 const float *x, const float *mask, float *y, int32_t *argmax) {
    if (B <= 0 || F <= 0) return LLM_OK;
    if (T < 0) T = 0;
    LLM__GPU_ENTER(be);
    int t = bf_threads(F);
    pool_forward_kernel<<<bf_grid(B, F, t), t, 0, llm__gpu_stream(be)>>>(mode, B, T, F, x, mask, y, argmax);
    return llm__gpu_launched("pool_forward");
}

__global__ static void pool_backward_kernel(int mode, int64_t B, int64_t T, int64_t F, const float *mask,
                                            const int32_t *argmax, const float *dy, float *dx) {
    BF_LOOP(b, f, B, F) {
        float d = dy[b * F + f];
        float *dxb = dx + b * T * F + f;
        if (mode == LLM__POOL_MAX) {
            int32_t am = argmax[b * F + f];
            if (am >= 0) dxb[(int64_t)am * F] += d;
        } else {
            int64_t n = count_real(mask, b, T);
            if (n == 0) continue;
            float g = d * (float)(1.0 / (double)n);
            for (int64_t t = 0; t < T; t++)
                if (step_real(mask, b, T, t)) dxb[t * F] += g;
        }
    }
}

/* mask [B, T] or NULL, argmax [B, F] (MAX), dy [B, F], dx [B, T, F] += */
llm_status llm__gpu_pool_backward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                  const float *mask, const int32_t *argmax, const float *dy,
                                  float *dx) {
    if (B <= 0 || T <= 0 || F <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int t = bf_threads(F);
    pool_backward_kernel<<<bf_grid(B, F, t), t, 0, llm__gpu_stream(be)>>>(mode, B, T, F, mask, argmax, dy, dx);
    return llm__gpu_launched("pool_backward");
}
