/* libllm: CPU optimizer step over the one contiguous parameter buffer.
 *
 * All parameters, gradients and moments of a model live in single buffers
 * with the same layout, so one call updates the whole model. Every element is
 * independent: split by elements, same bits for any thread count. The math
 * follows PyTorch's SGD / Adam / AdamW (see llm__opt_update in backend.h). */
#include <math.h>
#include "cpu.h"
#include "simd.h"

#define OPT_GRAIN 16384

typedef struct opt_ctx {
    const llm__opt_update *u;
    float *param, *m1, *m2;
    const float *grad;
} opt_ctx;

LLM__SIMD_CLONES
static void sgd_chunk(void *p, int64_t begin, int64_t end) {
    const opt_ctx *c = p;
    const llm__opt_update *u = c->u;
    float lr = u->lr, wd = u->weight_decay, mom = u->momentum, gs = u->grad_scale;
    float *w = c->param, *v = c->m1;
    const float *grad = c->grad;
    for (int64_t i = begin; i < end; i++) {
        float g = grad[i] * gs + wd * w[i]; /* L2 in the gradient, as torch.optim.SGD */
        float step = g;
        if (mom != 0.0f) {
            v[i] = mom * v[i] + g;
            step = u->nesterov ? g + mom * v[i] : v[i];
        }
        w[i] -= lr * step;
    }
}

LLM__SIMD_CLONES
static void adam_chunk(void *p, int64_t begin, int64_t end) {
    const opt_ctx *c = p;
    const llm__opt_update *u = c->u;
    float lr = u->lr, b1 = u->beta1, b2 = u->beta2, eps = u->eps, gs = u->grad_scale;
    int adamw = u->kind == LLM__OPT_ADAMW;
    /* Adam adds L2 to the gradient; AdamW decays the weights directly, before
     * the Adam step, as torch.optim.AdamW: p *= 1 - lr * wd. */
    float l2 = adamw ? 0.0f : u->weight_decay;
    float decay = adamw ? 1.0f - lr * u->weight_decay : 1.0f;
    float step_size = lr / u->bc1;
    float sqrt_bc2 = sqrtf(u->bc2);
    float *w = c->param, *m = c->m1, *v = c->m2;
    const float *grad = c->grad;
    for (int64_t i = begin; i < end; i++) {
        float g = grad[i] * gs + l2 * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        /* (m / bc1) / (sqrt(v / bc2) + eps) in PyTorch's arrangement:
         * lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) */
        float denom = sqrtf(v[i]) / sqrt_bc2 + eps;
        w[i] = w[i] * decay - step_size * m[i] / denom;
    }
}

/* param, grad [n]; m1 [n] (SGD velocity, unused without momentum; Adam first
 * moment), m2 [n] (Adam second moment, unused by SGD) */
llm_status llm__cpu_optimizer_update(llm_backend *be, const llm__opt_update *u, float *param,
                                     const float *grad, float *m1, float *m2) {
    opt_ctx c = { u, param, m1, m2, grad };
    llm__pool_fn fn = u->kind == LLM__OPT_SGD ? sgd_chunk : adam_chunk;
    llm__pool_for(llm__cpu_pool(be), u->n, OPT_GRAIN, fn, &c);
    return LLM_OK;
}
