/* The CUDA backend provider: the CUDA code itself is a separate shared
 * object (libllm-cuda.so, built from src/gpu/) so that libllm has no hard
 * dependency on CUDA. It is dlopen()ed once, on the first request for a
 * CUDA backend, from $LLM_CUDA_MODULE, else beside libllm (its folder, then
 * ../lib), else the dynamic linker's search path (src/core/module.h). The
 * module is never unloaded: the CUDA runtime inside it does not survive
 * being unmapped while the process runs. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "internal.h"
#include "module.h"
#include "backend_internal.h"
#include "../gpu/cuda_module.h"

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static llm__cuda_module cuda_mod;
static int cuda_loaded;
static char cuda_why[512]; /* why the module is unusable, when it is */

static const llm__cuda_host cuda_host = {
    LLM__CUDA_LAYOUT_INIT,
    llm__error,
    llm__log,
};

static void cuda_load(void) {
    void *h = llm__module_open("LLM_CUDA_MODULE", LLM__CUDA_MODULE_FILE, "CUDA",
                               "this libllm was built without it or it was not installed", cuda_why, sizeof cuda_why);
    if (!h) return;
    llm__cuda_module_init_fn init;
    *(void **)&init = dlsym(h, LLM__CUDA_MODULE_ENTRY);
    if (!init) {
        snprintf(cuda_why, sizeof cuda_why, "CUDA module is incompatible with this libllm: it has no %s "
                 "(built for another version?)", LLM__CUDA_MODULE_ENTRY);
        return; /* not unloaded: its constructors (the CUDA runtime's) have run */
    }
    memset(&cuda_mod, 0, sizeof cuda_mod);
    llm_status s = init(&cuda_host, &cuda_mod);
    if (s != LLM_OK || !cuda_mod.ops || !cuda_mod.probe || !cuda_mod.create || !cuda_mod.release ||
        !cuda_mod.describe) {
        snprintf(cuda_why, sizeof cuda_why, "CUDA module refused to load: %s",
                 s != LLM_OK ? llm_last_error() : "incomplete module table");
        return;
    }
    cuda_loaded = 1;
}

/* Loads the module once; LLM_OK or LLM_ERR_UNAVAILABLE with the reason. */
static llm_status cuda_module(const char *fn) {
    pthread_once(&cuda_once, cuda_load);
    if (!cuda_loaded) return llm__error(LLM_ERR_UNAVAILABLE, "%s: %s", fn, cuda_why);
    return LLM_OK;
}

/* Prefixes the module's message with the public function's name. */
static llm_status with_fn(llm_status s, const char *fn) {
    if (s == LLM_OK) return s;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", llm_last_error());
    return llm__error(s, "%s: %s", fn, msg);
}

static llm_status cuda_probe(int device, const char *fn) {
    LLM__CHECK(cuda_module(fn));
    return with_fn(cuda_mod.probe(device), fn);
}

static llm_status cuda_init(llm_backend *be, const llm_backend_options *opts, const char *fn) {
    LLM__CHECK(cuda_module(fn));
    return with_fn(cuda_mod.create(be, opts), fn);
}

static void cuda_release(llm_backend *be) {
    if (cuda_loaded && be->impl) cuda_mod.release(be);
}

static void cuda_describe(const llm_backend *be, char *buf, size_t len) {
    if (cuda_loaded) cuda_mod.describe(be, buf, len);
    else snprintf(buf, len, "cuda (module not loaded)");
}

const llm__backend_provider llm__cuda_provider = {
    LLM_BACKEND_CUDA, cuda_probe, cuda_init, cuda_release, cuda_describe,
};
