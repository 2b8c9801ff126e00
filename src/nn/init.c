/* Parameter initialisers (Keras defaults), drawn from the counter-based RNG
 * so that a seed gives the same weights on every machine and backend. */
#include <math.h>
#include "init.h"
#include "../core/rng.h"

static double normal(uint64_t key, uint64_t i) {
    /* Box-Muller on two uniforms in (0, 1] */
    double u1 = 1.0 - (double)(llm__rng_u64(key, 2 * i) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(llm__rng_u64(key, 2 * i + 1) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static float uniform(uint64_t key, uint64_t i, float limit) {
    return (2.0f * llm__rng_uniform(key, i) - 1.0f) * limit;
}

/* Orthonormalises the columns (rows >= cols) or rows of a [rows, cols]
 * Gaussian matrix by modified Gram-Schmidt in double precision. */
static llm_status orthogonal(float *w, int64_t rows, int64_t cols, uint64_t key) {
    int by_cols = rows >= cols;
    int64_t nvec = by_cols ? cols : rows, len = by_cols ? rows : cols;
    double *q = llm__malloc((size_t)(nvec * len) * sizeof *q);
    if (!q) return llm__oom("orthogonal initialiser");
    for (int64_t v = 0; v < nvec; v++)
        for (int64_t k = 0; k < len; k++) q[v * len + k] = normal(key, (uint64_t)(v * len + k));
    for (int64_t v = 0; v < nvec; v++) {
        double *a = q + v * len;
        for (int64_t u = 0; u < v; u++) {
            const double *b = q + u * len;
            double dot = 0;
            for (int64_t k = 0; k < len; k++) dot += a[k] * b[k];
            for (int64_t k = 0; k < len; k++) a[k] -= dot * b[k];
        }
        double norm = 0;
        for (int64_t k = 0; k < len; k++) norm += a[k] * a[k];
        norm = sqrt(norm);
        for (int64_t k = 0; k < len; k++) a[k] = norm > 0 ? a[k] / norm : 0;
    }
    for (int64_t v = 0; v < nvec; v++)
        for (int64_t k = 0; k < len; k++) {
            float x = (float)q[v * len + k];
            if (by_cols) w[k * cols + v] = x; else w[v * cols + k] = x;
        }
    llm__free(q);
    return LLM_OK;
}

llm_status llm__init_param(const llm__param *p, float *w, uint64_t key) {
    int64_t n = p->numel;
    switch (p->init) {
    case LLM__INIT_ZEROS:
        for (int64_t i = 0; i < n; i++) w[i] = 0.0f;
        return LLM_OK;
    case LLM__INIT_ONES:
        for (int64_t i = 0; i < n; i++) w[i] = 1.0f;
        return LLM_OK;
    case LLM__INIT_UNIFORM:
        for (int64_t i = 0; i < n; i++) w[i] = uniform(key, (uint64_t)i, p->init_arg);
        return LLM_OK;
    case LLM__INIT_GLOROT: {
        /* shape [fan_out, fan_in] */
        float limit = (float)sqrt(6.0 / (double)(p->shape[0] + p->shape[1]));
        for (int64_t i = 0; i < n; i++) w[i] = uniform(key, (uint64_t)i, limit);
        return LLM_OK;
    }
    case LLM__INIT_ORTHOGONAL:
        return orthogonal(w, p->shape[0], p->shape[1], key);
    case LLM__INIT_NORMAL:
        for (int64_t i = 0; i < n; i++) w[i] = (float)(p->init_arg * normal(key, (uint64_t)i));
        return LLM_OK;
    case LLM__INIT_LSTM_BIAS: {
        int64_t H = n / 4;
        for (int64_t i = 0; i < n; i++) w[i] = (i >= H && i < 2 * H) ? 1.0f : 0.0f;
        return LLM_OK;
    }
    }
    return llm__error(LLM_ERR_INTERNAL, "unknown initialiser %d", p->init);
}
