/* libllm: CUDA optimizer step over the one contiguous parameter buffer.
 * The same per-element math as src/cpu/kernels_optimizer.c (PyTorch's SGD,
 * Adam, AdamW; see llm__opt_update in backend.h), one thread per element. */
#include "gpu.h"

__global__ static void sgd_kernel(llm__opt_update u, float *w, const float *grad, float *v) {
    float lr = u.lr, wd = u.weight_decay, mom = u.momentum, gs = u.grad_scale;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < u.n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = grad[i] * gs + wd * w[i]; /* L2 in the gradient, as torch.optim.SGD */
        float step = g;
        if (mom != 0.0f) {
            float vi = mom * v[i] + g;
            v[i] = vi;
            step = u.nesterov ? g + mom * vi : vi;
        }
        w[i] -= lr * step;
    }
}

__global__ static void adam_kernel(llm__opt_update u, float *w, const float *grad, float *m, float *v) {
    float b1 = u.beta1, b2 = u.beta2, eps = u.eps, gs = u.grad_scale;
    int adamw = u.kind == LLM__OPT_ADAMW;
    float l2 = adamw ? 0.0f : u.weight_decay;
    float decay = adamw ? 1.0f - u.lr * u.weight_decay : 1.0f;
    float step_size = u.lr / u.bc1;
    float sqrt_bc2 = sqrtf(u.bc2);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < u.n; i += (int64_t)gridDim.x * blockDim.x) {
        float wi = w[i];
        float g = grad[i] * gs + l2 * wi;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / sqrt_bc2 + eps;
        w[i] = wi * decay - step_size * mi / denom;
    }
}

/* param, grad [n]; m1 [n] (SGD velocity, unused without momentum; Adam first
 * moment), m2 [n] (Adam second moment) */
llm_status llm__gpu_optimizer_update(llm_backend *be, const llm__opt_update *u, float *param,
                                     const float *grad, float *m1, float *m2) {
    if (u->n <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    unsigned blocks = llm__gpu_blocks(u->n, LLM__GPU_THREADS);
    if (u->kind == LLM__OPT_SGD)
        sgd_kernel<<<blocks, LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(*u, param, grad, m1);
    else
        adam_kernel<<<blocks, LLM__GPU_THREADS, 0, llm__gpu_stream(be)>>>(*u, param, grad, m1, m2);
    return llm__gpu_launched("optimizer_update");
}
