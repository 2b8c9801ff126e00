/* libllm: CPU losses. Each writes the mean loss to *loss and, when d is not
 * NULL, adds grad_scale * dL/dinput to d in the same pass.
 *
 * The loss is accumulated in double over blocks whose size depends only on the
 * problem size (not the thread count), and the block partials are added in
 * order, so the loss is the same bits with any number of threads. Per-element
 * log / exp of the loss value use double: the mean of many small terms is
 * what a user compares against Keras or PyTorch. */
#include <math.h>
#include "cpu.h"
#include "fastmath.h"
#include "simd.h"

/* Keras's epsilon: probabilities are clamped to [PROB_LO, PROB_HI] before the log. */
#define PROB_LO 1e-7f
#define PROB_HI (1.0f - 1e-7f)


typedef struct loss_ctx {
    int64_t classes;
    const float *x, *t;
    const int32_t *labels;
    float gscale; /* grad_scale / n: the mean's 1/n folded in */
    float *d;
} loss_ctx;

static float gscale_of(float grad_scale, int64_t n) {
    return (float)((double)grad_scale / (double)n);
}

static inline float sigm(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

/* l = max(z, 0) - z t + log(1 + e^-|z|): never exponentiates a positive number */
static void bce_logits_block(const void *p, int64_t begin, int64_t end, double *partial) {
    const loss_ctx *c = p;
    double s = 0.0;
    for (int64_t i = begin; i < end; i++) {
        double z = c->x[i], t = c->t[i];
        s += (z > 0.0 ? z : 0.0) - z * t + log1p(exp(-fabs(z)));
        if (c->d) c->d[i] += c->gscale * (sigm(c->x[i]) - c->t[i]);
    }
    *partial = s;
}

/* z [n] logits, t [n] targets in [0, 1], loss [1], dz [n] += or NULL */
llm_status llm__cpu_loss_bce_logits(llm_backend *be, int64_t n, const float *z, const float *t,
                                    float grad_scale, float *loss, float *dz) {
    if (n <= 0) { *loss = 0.0f; return LLM_OK; }
    loss_ctx c = { .x = z, .t = t, .gscale = gscale_of(grad_scale, n), .d = dz };
    *loss = (float)(llm__cpu_det_reduce(be, n, 1, bce_logits_block, &c) / (double)n);
    return LLM_OK;
}

/* The clamp is part of the function: outside [PROB_LO, PROB_HI] the loss is
 * flat in p and the gradient is 0, as with Keras's clip_by_value. */
static void bce_probs_block(const void *p, int64_t begin, int64_t end, double *partial) {
    const loss_ctx *c = p;
    double s = 0.0;
    for (int64_t i = begin; i < end; i++) {
        float pf = c->x[i];
        float pc = pf < PROB_LO ? PROB_LO : (pf > PROB_HI ? PROB_HI : pf);
        double pd = pc, t = c->t[i];
        s -= t * log(pd) + (1.0 - t) * log(1.0 - pd);
        if (c->d && pf >= PROB_LO && pf <= PROB_HI)
            c->d[i] += c->gscale * (float)((1.0 - t) / (1.0 - pd) - t / pd);
    }
    *partial = s;
}

/* p [n] probabilities, t [n] targets in [0, 1], loss [1], dp [n] += or NULL */
llm_status llm__cpu_loss_bce_probs(llm_backend *be, int64_t n, const float *p, const float *t,
                                   float grad_scale, float *loss, float *dp) {
    if (n <= 0) { *loss = 0.0f; return LLM_OK; }
    loss_ctx c = { .x = p, .t = t, .gscale = gscale_of(grad_scale, n), .d = dp };
    *loss = (float)(llm__cpu_det_reduce(be, n, 1, bce_probs_block, &c) / (double)n);
    return LLM_OK;
}

/* Per row: l = log sum_j e^{z_j} - z_label, with the row max subtracted
 * before exponentiating; dz = softmax(z) - onehot(label). The max and the
 * sum run in 8 interleaved lanes combined in a fixed tree, and the
 * exponentials are fastmath.h's, so the row loops vectorise (a vocabulary
 * of exponentials per token of a language model) with the same result on
 * every thread and in both builds. */
#define SCE_LANES 8
LLM__SIMD_CLONES
static void sce_logits_block(const void *p, int64_t begin, int64_t end, double *partial) {
    const loss_ctx *c = p;
    int64_t K = c->classes;
    double s = 0.0;
    for (int64_t r = begin; r < end; r++) {
        const float *z = c->x + r * K;
        int32_t label = c->labels[r];
        float m8[SCE_LANES];
        double s8[SCE_LANES]; /* double: a large vocabulary's sum keeps its digits */
        for (int t = 0; t < SCE_LANES; t++) { m8[t] = z[0]; s8[t] = 0.0; }
        int64_t j = 0;
        for (; j + SCE_LANES <= K; j += SCE_LANES)
            for (int t = 0; t < SCE_LANES; t++) m8[t] = z[j + t] > m8[t] ? z[j + t] : m8[t];
        for (int t = 0; j + t < K; t++) m8[t] = z[j + t] > m8[t] ? z[j + t] : m8[t];
        float mx = m8[0];
        for (int t = 1; t < SCE_LANES; t++) mx = m8[t] > mx ? m8[t] : mx;
        for (j = 0; j + SCE_LANES <= K; j += SCE_LANES)
            for (int t = 0; t < SCE_LANES; t++) s8[t] += llm__expf(z[j + t] - mx);
        for (int t = 0; j + t < K; t++) s8[t] += llm__expf(z[j + t] - mx);
        double sum = SUM8(s8);
        s += (double)mx + log(sum) - (double)z[label];
        if (c->d) {
            float *d = c->d + r * K;
            float inv = (float)(1.0 / sum), g = c->gscale;
            for (j = 0; j < K; j++) d[j] += g * (llm__expf(z[j] - mx) * inv);
            d[label] -= g;
        }
    }
    *partial = s;
}

/* z [rows, classes] logits, labels [rows] in [0, classes) (validated by the
 * core), loss [1] = mean over rows, dz [rows, classes] += or NULL */
llm_status llm__cpu_loss_sce_logits(llm_backend *be, int64_t rows, int64_t classes, const float *z,
                                    const int32_t *labels, float grad_scale, float *loss, float *dz) {
    if (rows <= 0 || classes <= 0) { *loss = 0.0f; return LLM_OK; }
    loss_ctx c = { .classes = classes, .x = z, .labels = labels,
                   .gscale = gscale_of(grad_scale, rows), .d = dz };
    *loss = (float)(llm__cpu_det_reduce(be, rows, classes, sce_logits_block, &c) / (double)rows);
    return LLM_OK;
}

/* Per row: l = -log(clamp(p_label)); only p_label gets a gradient. */
static void sce_probs_block(const void *p, int64_t begin, int64_t end, double *partial) {
    const loss_ctx *c = p;
    int64_t K = c->classes;
    double s = 0.0;
    for (int64_t r = begin; r < end; r++) {
        int32_t label = c->labels[r];
        float pf = c->x[r * K + label];
        float pc = pf < PROB_LO ? PROB_LO : (pf > PROB_HI ? PROB_HI : pf);
        s -= log((double)pc);
        if (c->d && pf >= PROB_LO && pf <= PROB_HI)
            c->d[r * K + label] += c->gscale * (float)(-1.0 / (double)pc);
    }
    *partial = s;
}

/* p [rows, classes] probabilities, labels [rows], loss [1], dp [rows, classes] += or NULL */
llm_status llm__cpu_loss_sce_probs(llm_backend *be, int64_t rows, int64_t classes, const float *p,
                                   const int32_t *labels, float grad_scale, float *loss, float *dp) {
    if (rows <= 0 || classes <= 0) { *loss = 0.0f; return LLM_OK; }
    loss_ctx c = { .classes = classes, .x = p, .labels = labels,
                   .gscale = gscale_of(grad_scale, rows), .d = dp };
    /* one element read per row: cost 1 per row, like an element-wise loss */
    *loss = (float)(llm__cpu_det_reduce(be, rows, 1, sce_probs_block, &c) / (double)rows);
    return LLM_OK;
}

static void mse_block(const void *p, int64_t begin, int64_t end, double *partial) {
    const loss_ctx *c = p;
    double s = 0.0;
    for (int64_t i = begin; i < end; i++) {
        double e = (double)c->x[i] - c->t[i];
        s += e * e;
        if (c->d) c->d[i] += c->gscale * 2.0f * (c->x[i] - c->t[i]);
    }
    *partial = s;
}

/* y [n] predictions, t [n] targets, loss [1], dy [n] += or NULL */
llm_status llm__cpu_loss_mse(llm_backend *be, int64_t n, const float *y, const float *t,
                             float grad_scale, float *loss, float *dy) {
    if (n <= 0) { *loss = 0.0f; return LLM_OK; }
    loss_ctx c = { .x = y, .t = t, .gscale = gscale_of(grad_scale, n), .d = dy };
    *loss = (float)(llm__cpu_det_reduce(be, n, 1, mse_block, &c) / (double)n);
    return LLM_OK;
}
