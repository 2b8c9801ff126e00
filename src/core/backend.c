/* Backend handles: the table of backend providers, and the public calls
 * (creation, availability, description), which go through it. A backend is
 * recognised by its provider here and nowhere else: the rest of the library
 * asks its vtable and capability flags (src/backend.h). */
#include <stdio.h>
#include "internal.h"
#include "backend_internal.h"

void llm_backend_options_init(llm_backend_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

/* One line per kind; the CPU is built in, the others load their modules on
 * first use. */
static const llm__backend_provider *const providers[] = {
    &llm__cpu_provider,
    &llm__cuda_provider,
};

/* The provider of a kind, NULL for a kind that none provides. */
static const llm__backend_provider *provider_of(llm_backend_kind kind) {
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
        if (providers[i]->kind == kind) return providers[i];
    return NULL;
}

static llm_status unknown_kind(llm_backend_kind kind, const char *fn) {
    return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown backend kind %d", fn, (int)kind);
}

/* ---- public API ---- */

llm_status llm_backend_is_available(llm_backend_kind kind, int *available) {
    static const char fn[] = "llm_backend_is_available";
    if (!available) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: available is NULL", fn);
    *available = 0;
    const llm__backend_provider *p = provider_of(kind);
    if (!p) return unknown_kind(kind, fn);
    /* not available is an answer, not an error: the reason stays in llm_last_error() */
    if (p->probe(0, fn) == LLM_OK) *available = 1;
    return LLM_OK;
}

llm_status llm_backend_create(llm_backend **out, llm_backend_kind kind, const llm_backend_options *opts) {
    static const char fn[] = "llm_backend_create";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    const llm__backend_provider *p = provider_of(kind);
    if (!p) return unknown_kind(kind, fn);
    llm_backend_options o;
    llm_backend_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    if (o.threads < 0 || o.threads > 1024)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: threads = %d must be in [0, 1024]", fn, o.threads);
    if (o.device < 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: device = %d must be >= 0", fn, o.device);

    llm_backend *be = llm__calloc(1, sizeof *be);
    if (!be) return llm__oom(fn);
    be->provider = p;
    be->refs = 1; /* the caller's, dropped by llm_backend_free */
    llm_status s = p->init(be, &o, fn);
    if (s != LLM_OK) { llm__free(be); return s; }
    *out = be;
    return LLM_OK;
}

void llm__backend_retain(llm_backend *be) {
    __atomic_fetch_add(&be->refs, 1, __ATOMIC_RELAXED);
}

/* The last release tears the backend down. acq_rel: every use of the
 * backend by a thread that released before happens-before the teardown. */
void llm__backend_release(llm_backend *be) {
    if (!be || __atomic_sub_fetch(&be->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    be->provider->release(be);
    llm__free(be);
}

void llm_backend_free(llm_backend *backend) {
    llm__backend_release(backend);
}

llm_status llm_backend_kind_of(const llm_backend *backend, llm_backend_kind *kind) {
    if (!backend || !kind) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_backend_kind_of: NULL argument");
    *kind = backend->provider->kind;
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
    backend->provider->describe(backend, text, sizeof text);
    size_t n = strlen(text);
    if (needed) *needed = n;
    if (len) snprintf(buf, len, "%s", text);
    return LLM_OK;
}
