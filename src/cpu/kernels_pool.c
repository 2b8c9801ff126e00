/* libllm: CPU pooling over time (GlobalAveragePooling1D / GlobalMaxPooling1D
 * with a padding mask).
 *
 * Split by batch row: each row's output depends only on that row, so the
 * result does not depend on the thread count. Averages sum in double, in
 * blocks of features so the accumulators stay on the stack. */
#include "cpu.h"

#define POOL_GRAIN 16384
#define F_BLOCK 64

typedef struct pool_ctx {
    int mode;
    int64_t T, F;
    const float *x, *mask, *dy;
    float *y, *dx;
    int32_t *argmax;
    const int32_t *argmax_in;
} pool_ctx;

static inline int step_is_real(const float *mask, int64_t b, int64_t T, int64_t t) {
    return !mask || mask[b * T + t] != 0.0f;
}

static int64_t count_real(const float *mask, int64_t b, int64_t T) {
    if (!mask) return T;
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) n += mask[b * T + t] != 0.0f;
    return n;
}

static void pool_forward_chunk(void *p, int64_t begin, int64_t end) {
    const pool_ctx *c = p;
    int64_t T = c->T, F = c->F;
    for (int64_t b = begin; b < end; b++) {
        const float *xb = c->x + b * T * F;
        float *y = c->y + b * F;
        if (c->mode == LLM__POOL_MAX) {
            int32_t *am = c->argmax ? c->argmax + b * F : NULL;
            for (int64_t f = 0; f < F; f++) {
                y[f] = 0.0f; /* rows with no real step */
                if (am) am[f] = -1;
            }
            int first = 1;
            for (int64_t t = 0; t < T; t++) {
                if (!step_is_real(c->mask, b, T, t)) continue;
                const float *xt = xb + t * F;
                for (int64_t f = 0; f < F; f++) {
                    /* strict >: ties keep the earliest step, as argmax does */
                    if (first || xt[f] > y[f]) {
                        y[f] = xt[f];
                        if (am) am[f] = (int32_t)t;
                    }
                }
                first = 0;
            }
            continue;
        }
        int64_t n = count_real(c->mask, b, T);
        for (int64_t f0 = 0; f0 < F; f0 += F_BLOCK) {
            int64_t w = F - f0 < F_BLOCK ? F - f0 : F_BLOCK;
            double acc[F_BLOCK] = { 0 };
            for (int64_t t = 0; t < T; t++) {
                if (!step_is_real(c->mask, b, T, t)) continue;
                const float *xt = xb + t * F + f0;
                for (int64_t f = 0; f < w; f++) acc[f] += xt[f];
            }
            for (int64_t f = 0; f < w; f++) y[f0 + f] = n > 0 ? (float)(acc[f] / (double)n) : 0.0f;
        }
    }
}

/* x [B, T, F], mask [B, T] or NULL, y [B, F], argmax [B, F] (MAX only; may be
 * NULL when no backward follows) */
llm_status llm__cpu_pool_forward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                 const float *x, const float *mask, float *y, int32_t *argmax) {
    if (B <= 0 || F <= 0) return LLM_OK;
    if (T <= 0) T = 0;
    pool_ctx c = { .mode = mode, .T = T, .F = F, .x = x, .mask = mask, .y = y, .argmax = argmax };
    int64_t per_row = T * F > 0 ? T * F : 1;
    int64_t grain = per_row >= POOL_GRAIN ? 1 : POOL_GRAIN / per_row;
    llm__pool_for(llm__cpu_pool(be), B, grain, pool_forward_chunk, &c);
    return LLM_OK;
}

static void pool_backward_chunk(void *p, int64_t begin, int64_t end) {
    const pool_ctx *c = p;
    int64_t T = c->T, F = c->F;
    for (int64_t b = begin; b < end; b++) {
        const float *dy = c->dy + b * F;
        float *dxb = c->dx + b * T * F;
        if (c->mode == LLM__POOL_MAX) {
            const int32_t *am = c->argmax_in + b * F;
            for (int64_t f = 0; f < F; f++)
                if (am[f] >= 0) dxb[(int64_t)am[f] * F + f] += dy[f];
            continue;
        }
        int64_t n = count_real(c->mask, b, T);
        if (n == 0) continue;
        float inv = (float)(1.0 / (double)n);
        for (int64_t t = 0; t < T; t++) {
            if (!step_is_real(c->mask, b, T, t)) continue;
            float *dxt = dxb + t * F;
            for (int64_t f = 0; f < F; f++) dxt[f] += dy[f] * inv;
        }
    }
}

/* mask [B, T] or NULL, argmax [B, F] (MAX), dy [B, F], dx [B, T, F] += */
llm_status llm__cpu_pool_backward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                  const float *mask, const int32_t *argmax, const float *dy,
                                  float *dx) {
    if (B <= 0 || T <= 0 || F <= 0) return LLM_OK;
    pool_ctx c = { .mode = mode, .T = T, .F = F, .mask = mask, .dy = dy, .dx = dx,
                   .argmax_in = argmax };
    int64_t per_row = T * F;
    int64_t grain = per_row >= POOL_GRAIN ? 1 : POOL_GRAIN / per_row;
    llm__pool_for(llm__cpu_pool(be), B, grain, pool_backward_chunk, &c);
    return LLM_OK;
}
