/* Status strings, the per-thread last error, and the log callback. */
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include "internal.h"

/* Thread-local so that concurrent callers (e.g. inference threads) each see
 * their own failure; fixed size so that setting it never allocates. */
static _Thread_local char last_error[512];

const char *llm_status_string(llm_status status) {
    switch (status) {
    case LLM_OK: return "ok";
    case LLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LLM_ERR_OUT_OF_MEMORY: return "out of memory";
    case LLM_ERR_SHAPE: return "shape mismatch";
    case LLM_ERR_DTYPE: return "wrong dtype";
    case LLM_ERR_UNAVAILABLE: return "unavailable";
    case LLM_ERR_IO: return "i/o error";
    case LLM_ERR_FORMAT: return "bad format";
    case LLM_ERR_STATE: return "invalid state";
    case LLM_ERR_NUMERIC: return "non-finite number";
    case LLM_ERR_BACKEND: return "backend failure";
    case LLM_ERR_OVERFLOW: return "size overflow";
    case LLM_ERR_NOT_SUPPORTED: return "not supported";
    case LLM_ERR_INTERNAL: return "internal error";
    case LLM_ERR_CANCELLED: return "cancelled";
    case LLM_ERR_DISTRIBUTED: return "distributed training failure";
    }
    return "unknown status";
}

const char *llm_last_error(void) { return last_error; }

void llm_clear_error(void) { last_error[0] = '\0'; }

llm_status llm__error(llm_status status, const char *fmt, ...) {
    /* format aside first: callers may pass llm_last_error() itself as an
     * argument to add context to a failure from below */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return status;
}

llm_status llm__oom(const char *where) {
    snprintf(last_error, sizeof last_error, "%s: out of memory", where ? where : "libllm");
    return LLM_ERR_OUT_OF_MEMORY;
}

llm_status llm__options_merge(void *dst, size_t dst_size, const void *src, const char *fn) {
    if (!src) return LLM_OK;
    size_t given = *(const size_t *)src;
    if (given < sizeof(size_t))
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: options.size is %zu; call the options' _init function first",
                          fn, given);
    /* the size field itself stays as the library's */
    size_t n = given < dst_size ? given : dst_size;
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
    return LLM_OK;
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static llm_log_fn log_fn;
static void *log_user;

void llm_set_log_callback(llm_log_fn fn, void *user) {
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user = user;
    pthread_mutex_unlock(&log_lock);
}

void llm__log(llm_log_level level, const char *fmt, ...) {
    pthread_mutex_lock(&log_lock);
    llm_log_fn fn = log_fn;
    void *user = log_user;
    pthread_mutex_unlock(&log_lock);
    if (!fn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(level, msg, user);
}
