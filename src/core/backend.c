/* Backend handles: creation by kind, availability, description, and the
 * loading of the CUDA module.
 *
 * The CUDA backend is a separate shared object (libllm-cuda.so, built from
 * src/gpu/) so that libllm has no hard dependency on CUDA. It is dlopen()ed
 * once, on the first request for a CUDA backend, from the first of:
 *   1. $LLM_CUDA_MODULE, if set (then only there);
 *   2. the directory of the object that holds libllm (libllm.so, or the
 *      program when libllm is linked statically), then ../lib beside it
 *      (build/bin/x and build/tests/x find build/lib/; /usr/bin/x finds
 *      /usr/lib/);
 *   3. the dynamic linker's search path (LD_LIBRARY_PATH, ld.so.cache).
 * The module is never unloaded: the CUDA runtime inside it does not survive
 * being unmapped while the process runs. */
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include "internal.h"
#include "backend_internal.h"
#include "../gpu/cuda_module.h"

void llm_backend_options_init(llm_backend_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

/* ---- the CUDA module ---- */

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static llm__cuda_module cuda_mod;
static int cuda_loaded;
static char cuda_why[512]; /* why the module is unusable, when it is */

static const llm__cuda_host cuda_host = {
    LLM__CUDA_LAYOUT_INIT,
    llm__error,
    llm__log,
};

/* The directory of the file that holds this code, into dir (no trailing /).
 * Also used to find the MPI module (src/dist/dist.c). */
int llm__self_dir(char *dir, size_t len) {
    Dl_info info;
    char path[PATH_MAX];
    path[0] = '\0';
    if (dladdr((void *)&llm_backend_create, &info) && info.dli_fname && strchr(info.dli_fname, '/'))
        snprintf(path, sizeof path, "%s", info.dli_fname);
    if (!strchr(path, '/')) { /* a program's own name may come without a path */
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) return 0;
        path[n] = '\0';
    }
    char *slash = strrchr(path, '/');
    if (!slash) return 0;
    *slash = '\0';
    snprintf(dir, len, "%s", path[0] ? path : "/");
    return 1;
}

/* dlopen()s path if the file exists. Returns the handle; on failure appends
 * why to `tried` and sets *fatal when the file exists but cannot be loaded
 * (a missing cuBLAS, a wrong architecture): searching further would only hide
 * that. */
void *llm__module_try_open(const char *path, char *tried, size_t len, int *fatal) {
    if (access(path, F_OK) != 0) {
        size_t used = strlen(tried);
        snprintf(tried + used, len - used, "%s%s", used ? ", " : "", path);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(tried, len, "%s exists but cannot be loaded: %s", path, e ? e : "unknown dlopen error");
        *fatal = 1;
    }
    return h;
}

void *llm__module_open(const char *env_var, const char *file, const char *what, const char *hint, char *why,
                       size_t why_len) {
    char tried[300] = "";
    int fatal = 0;
    void *h = NULL;
    const char *env = getenv(env_var);
    if (env && env[0]) {
        h = llm__module_try_open(env, tried, sizeof tried, &fatal);
        if (!h)
            snprintf(why, why_len, "%s module not loaded: %s%s%s%s", what, fatal ? "" : env_var, fatal ? "" : "=",
                     tried, fatal ? "" : " does not exist");
        return h;
    }
    char dir[PATH_MAX], path[PATH_MAX + 64];
    if (llm__self_dir(dir, sizeof dir)) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        h = llm__module_try_open(path, tried, sizeof tried, &fatal);
        if (!h && !fatal) {
            snprintf(path, sizeof path, "%s/../lib/%s", dir, file);
            h = llm__module_try_open(path, tried, sizeof tried, &fatal);
        }
    }
    if (!h && !fatal) {
        h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            /* "not found" on the search path is the common case; any other
             * error means a module was found and failed */
            if (e && !strstr(e, "cannot open shared object file")) {
                snprintf(tried, sizeof tried, "%s", e);
                fatal = 1;
            }
        }
    }
    if (!h) {
        if (fatal)
            snprintf(why, why_len, "%s module not loaded: %s", what, tried);
        else
            snprintf(why, why_len, "%s module %s not found (looked in %s and the library search path; %s; %s can name it)",
                     what, file, tried[0] ? tried : "no directory", hint, env_var);
    }
    return h;
}

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

llm_status llm__cuda_available(int device, const char *fn) {
    LLM__CHECK(cuda_module(fn));
    return with_fn(cuda_mod.probe(device), fn);
}

llm_status llm__cuda_backend_init(llm_backend *be, const llm_backend_options *opts, const char *fn) {
    LLM__CHECK(cuda_module(fn));
    return with_fn(cuda_mod.create(be, opts), fn);
}

void llm__cuda_backend_release(llm_backend *be) {
    if (cuda_loaded && be->impl) cuda_mod.release(be);
}

void llm__cuda_backend_describe(const llm_backend *be, char *buf, size_t len) {
    if (cuda_loaded) cuda_mod.describe(be, buf, len);
    else snprintf(buf, len, "cuda (module not loaded)");
}

/* ---- public API ---- */

static llm_status check_kind(llm_backend_kind kind, const char *fn) {
    if (kind != LLM_BACKEND_CPU && kind != LLM_BACKEND_CUDA)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown backend kind %d", fn, (int)kind);
    return LLM_OK;
}

llm_status llm_backend_is_available(llm_backend_kind kind, int *available) {
    static const char fn[] = "llm_backend_is_available";
    if (!available) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: available is NULL", fn);
    *available = 0;
    LLM__CHECK(check_kind(kind, fn));
    if (kind == LLM_BACKEND_CPU) { *available = 1; return LLM_OK; }
    /* not available is an answer, not an error: the reason stays in llm_last_error() */
    if (llm__cuda_available(0, fn) == LLM_OK) *available = 1;
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

    llm_backend *be = llm__calloc(1, sizeof *be);
    if (!be) return llm__oom(fn);
    be->kind = kind;
    be->refs = 1; /* the caller's, dropped by llm_backend_free */
    llm_status s = kind == LLM_BACKEND_CUDA ? llm__cuda_backend_init(be, &o, fn) : llm__cpu_backend_init(be, &o);
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
    if (be->kind == LLM_BACKEND_CPU) llm__cpu_backend_release(be);
    else llm__cuda_backend_release(be);
    llm__free(be);
}

void llm_backend_free(llm_backend *backend) {
    llm__backend_release(backend);
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
    if (backend->kind == LLM_BACKEND_CUDA) llm__cuda_backend_describe(backend, text, sizeof text);
    else llm__cpu_backend_describe(backend, text, sizeof text);
    size_t n = strlen(text);
    if (needed) *needed = n;
    if (len) snprintf(buf, len, "%s", text);
    return LLM_OK;
}
