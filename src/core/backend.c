/* Backend handles: creation by kind, availability, description. */
#include <stdio.h>
#include "internal.h"
#include "backend_internal.h"

void llm_backend_options_init(llm_backend_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

static llm_status check_kind(llm_backend_kind kind, const char *fn) {
    if (kind != LLM_BACKEND_CPU && kind != LLM_BACKEND_CUDA)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown backend kind %d", fn, (int)kind);
    return LLM_OK;
}

llm_status llm_backend_is_available(llm_backend_kind kind, int *available) {
    if (!available) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_backend_is_available: available is NULL");
    *available = 0;
    LLM__CHECK(check_kind(kind, "llm_backend_is_available"));
    if (kind == LLM_BACKEND_CPU) { *available = 1; return LLM_OK; }
    llm__error(LLM_ERR_UNAVAILABLE, "llm_backend_is_available: this libllm was built without the CUDA backend");
    return LLM_OK;
}

llm_status llm_backend_create(llm_backend **out, llm_backend_kind kind, const llm_backend_options *opts) {
    static const char fn[] = "llm_backend_create";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    LLM__CHECK(check_kind(kind, fn));
    llm_backend_options o;
    llm_backend_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    if (o.threads < 0 || o.threads > 1024)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: threads = %d must be in [0, 1024]", fn, o.threads);
    if (o.device < 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: device = %d must be >= 0", fn, o.device);
    if (kind == LLM_BACKEND_CUDA)
        return llm__error(LLM_ERR_UNAVAILABLE, "%s: this libllm was built without the CUDA backend", fn);

    llm_backend *be = llm__calloc(1, sizeof *be);
    if (!be) return llm__oom(fn);
    be->kind = kind;
    llm_status s = llm__cpu_backend_init(be, &o);
    if (s != LLM_OK) { llm__free(be); return s; }
    *out = be;
    return LLM_OK;
}

void llm_backend_free(llm_backend *backend) {
    if (!backend) return;
    if (backend->kind == LLM_BACKEND_CPU) llm__cpu_backend_release(backend);
    llm__free(backend);
}

llm_status llm_backend_kind_of(const llm_backend *backend, llm_backend_kind *kind) {
    if (!backend || !kind) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_backend_kind_of: NULL argument");
    *kind = backend->kind;
    return LLM_OK;
}

llm_status llm_backend_threads(const llm_backend *backend, int *threads) {
    if (!backend || !threads) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_backend_threads: NULL argument");
    *threads = backend->threads;
    return LLM_OK;
}

llm_status llm_backend_describe(const llm_backend *backend, char *buf, size_t len, size_t *needed) {
    if (!backend) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_backend_describe: backend is NULL");
    if (!buf && len) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_backend_describe: buf is NULL but len is %zu", len);
    char text[512];
    llm__cpu_backend_describe(backend, text, sizeof text);
    size_t n = strlen(text);
    if (needed) *needed = n;
    if (len) snprintf(buf, len, "%s", text);
    return LLM_OK;
}
