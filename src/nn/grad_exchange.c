/* The exchange of a process training alone, and the helpers every
 * exchange shares (grad_exchange.h). */
#include <stdarg.h>
#include <stdio.h>
#include "../core/internal.h"
#include "grad_exchange.h"

static llm_status solo_reserve(void *ctx, llm_backend *be, int64_t n, const char *what) {
    (void)ctx; (void)be; (void)n; (void)what;
    return LLM_OK;
}

static llm_status solo_reduce_f64(void *ctx, double *v, int n, llm__exchange_op op, const char *what) {
    (void)ctx; (void)v; (void)n; (void)op; (void)what;
    return LLM_OK;
}

static llm_status solo_sum_f32(void *ctx, llm_backend *be, float *x, int64_t n, const char *what) {
    (void)ctx; (void)be; (void)x; (void)n; (void)what;
    return LLM_OK;
}

static llm_status solo_same_f32(void *ctx, llm_backend *be, const float *x, int64_t n, int *same, const char *what) {
    (void)ctx; (void)be; (void)x; (void)n; (void)what;
    *same = 1;
    return LLM_OK;
}

/* a broadcast from rank 0 to itself, like a sum over one rank, is the identity */
const llm__grad_exchange llm__solo_exchange = {
    NULL, 0, 1, solo_reserve, solo_reduce_f64, solo_sum_f32, solo_sum_f32, solo_same_f32,
};

void llm__exchange_slice(const llm__grad_exchange *ex, int64_t n, int64_t *off, int64_t *len) {
    int64_t p = ex->size, r = ex->rank;
    *off = n / p * r + (r < n % p ? r : n % p);
    *len = n / p + (r < n % p ? 1 : 0);
}

const char *llm__exchange_what(const llm__grad_exchange *ex, char *buf, size_t len, const char *fmt, ...) {
    buf[0] = '\0';
    if (!ex->ctx) return buf; /* llm__solo_exchange: nothing to fail */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return buf;
}

llm_status llm__exchange_agree(const llm__grad_exchange *ex, llm_status local_s, int *flag, const char *what) {
    double v[2] = { local_s != LLM_OK, flag && *flag };
    LLM__CHECK(ex->reduce_f64(ex->ctx, v, 2, LLM__EXCHANGE_MAX, what));
    if (flag) *flag = v[1] > 0;
    if (local_s != LLM_OK) return local_s; /* its message is still the last error */
    if (v[0] > 0) return llm__error(LLM_ERR_DISTRIBUTED, "%s: another rank failed (its own error says why)", what);
    return LLM_OK;
}
