/* The llm_dist handle and the loading of the MPI module.
 *
 * libllm never links MPI: the MPI code is libllm-mpi.so (src/dist/mpi/,
 * built with mpicc), dlopen()ed once, on the first llm_dist_init or
 * llm_dist_from_comm, from the first of
 *   1. $LLM_MPI_MODULE, if set (then only there);
 *   2. the folder of the file that holds libllm, then ../lib beside it;
 *   3. the dynamic linker's search path;
 * the same order as the CUDA module (src/core/module.h). The module stays
 * loaded: MPI cannot be unloaded and initialised again in one process. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "../core/internal.h"
#include "../core/module.h"
#include "dist_internal.h"

/* ---- the module ---- */

static pthread_once_t mpi_once = PTHREAD_ONCE_INIT;
static llm__mpi_module mpi_mod;
static int mpi_loaded;
static char mpi_why[1024];

static const llm__mpi_host mpi_host = {
    sizeof(llm__mpi_host), sizeof(llm__mpi_module), LLM_VERSION_NUMBER, llm__error, llm__log,
};

static void mpi_load(void) {
    void *h = llm__module_open("LLM_MPI_MODULE", LLM__MPI_MODULE_FILE, "MPI",
                               "libllm was built without MPI (build it with mpicc present, e.g. Debian's libopenmpi-dev) "
                               "or the module was not installed", mpi_why, sizeof mpi_why);
    if (!h) return;
    llm__mpi_module_init_fn init;
    *(void **)&init = dlsym(h, LLM__MPI_MODULE_ENTRY);
    if (!init) {
        snprintf(mpi_why, sizeof mpi_why, "MPI module is incompatible with this libllm: it has no %s",
                 LLM__MPI_MODULE_ENTRY);
        return;
    }
    memset(&mpi_mod, 0, sizeof mpi_mod);
    llm_status s = init(&mpi_host, &mpi_mod);
    if (s != LLM_OK || mpi_mod.host_size != sizeof(llm__mpi_host) || mpi_mod.module_size != sizeof(llm__mpi_module) ||
        !mpi_mod.init || !mpi_mod.from_comm || !mpi_mod.rank_size || !mpi_mod.allreduce || !mpi_mod.bcast ||
        !mpi_mod.barrier || !mpi_mod.release || !mpi_mod.describe) {
        snprintf(mpi_why, sizeof mpi_why, "MPI module refused to load: %s",
                 s != LLM_OK ? llm_last_error() : "incomplete module table");
        return;
    }
    mpi_loaded = 1;
}

static llm_status mpi_module(const char *fn) {
    pthread_once(&mpi_once, mpi_load);
    if (!mpi_loaded) return llm__error(LLM_ERR_UNAVAILABLE, "%s: %s", fn, mpi_why);
    return LLM_OK;
}

/* ---- the handle ---- */

static llm_status make(llm_dist **out, void *comm, int owns, const char *fn) {
    llm_dist *d = llm__calloc(1, sizeof *d);
    if (!d) {
        mpi_mod.release(comm, 1, owns);
        return llm__oom(fn);
    }
    d->comm = comm;
    d->owns_mpi = owns;
    d->healthy = 1;
    d->timeout_s = 60.0;
    const char *env = getenv("LLM_DIST_TIMEOUT");
    if (env && env[0]) {
        char *end = NULL;
        double t = strtod(env, &end);
        if (end != env && *end == '\0' && t >= 0 && t <= 1e9) d->timeout_s = t;
        else llm__log(LLM_LOG_WARN, "%s: LLM_DIST_TIMEOUT='%s' is not a number of seconds; using 60", fn, env);
    }
    mpi_mod.rank_size(comm, &d->rank, &d->size);
    char desc[160];
    mpi_mod.describe(desc, sizeof desc);
    llm__log(LLM_LOG_DEBUG, "%s: rank %d of %d (%s), timeout %g s", fn, d->rank, d->size, desc, d->timeout_s);
    *out = d;
    return LLM_OK;
}

llm_status llm_dist_init(llm_dist **out, int *argc, char ***argv) {
    static const char fn[] = "llm_dist_init";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if ((argc == NULL) != (argv == NULL))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: argc and argv must both be given or both be NULL", fn);
    LLM__CHECK(mpi_module(fn));
    void *comm = NULL;
    int owns = 0;
    LLM__CHECK(mpi_mod.init(argc, argv, &comm, &owns));
    return make(out, comm, owns, fn);
}

llm_status llm_dist_from_comm(llm_dist **out, const void *mpi_comm) {
    static const char fn[] = "llm_dist_from_comm";
    if (!out || !mpi_comm) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, out ? "mpi_comm" : "out");
    *out = NULL;
    LLM__CHECK(mpi_module(fn));
    void *comm = NULL;
    LLM__CHECK(mpi_mod.from_comm(mpi_comm, &comm));
    return make(out, comm, 0, fn);
}

llm_status llm_dist_rank(const llm_dist *d, int *rank) {
    if (!d || !rank) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dist_rank: NULL argument");
    *rank = d->rank;
    return LLM_OK;
}

llm_status llm_dist_size(const llm_dist *d, int *size) {
    if (!d || !size) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dist_size: NULL argument");
    *size = d->size;
    return LLM_OK;
}

llm_status llm_dist_set_timeout(llm_dist *d, double seconds) {
    if (!d) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dist_set_timeout: dist is NULL");
    if (!(seconds >= 0 && seconds <= 1e9))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dist_set_timeout: %g s must be in [0, 1e9] (0 = no limit)",
                          seconds);
    d->timeout_s = seconds;
    return LLM_OK;
}

static llm_status usable(llm_dist *d, const char *what) {
    if (d->healthy) return LLM_OK;
    return llm__error(LLM_ERR_DISTRIBUTED, "%s: this llm_dist is unusable after an earlier failure: %s", what,
                      d->broken);
}

static llm_status note(llm_dist *d, llm_status s) {
    if (s != LLM_OK && d->healthy) {
        d->healthy = 0;
        snprintf(d->broken, sizeof d->broken, "%s", llm_last_error());
    }
    return s;
}

llm_status llm_dist_barrier(llm_dist *d) {
    static const char fn[] = "llm_dist_barrier";
    if (!d) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: dist is NULL", fn);
    LLM__CHECK(usable(d, fn));
    return note(d, mpi_mod.barrier(d->comm, d->timeout_s, fn));
}

llm_status llm_dist_launched(int *world_size) {
    if (!world_size) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dist_launched: world_size is NULL");
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE" };
    *world_size = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !v[0]) continue;
        char *end = NULL;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n > 0 && n <= INT_MAX) { *world_size = (int)n; break; }
    }
    return LLM_OK;
}

void llm_dist_free(llm_dist *d) {
    if (!d) return;
    mpi_mod.release(d->comm, d->healthy, d->owns_mpi);
    llm__free(d->stage);
    llm__free(d);
}

llm_status llm__dist_allreduce(llm_dist *d, void *buf, int64_t n, int type, int op, const char *what) {
    LLM__CHECK(usable(d, what));
    return note(d, mpi_mod.allreduce(d->comm, buf, n, type, op, d->timeout_s, what));
}

llm_status llm__dist_bcast(llm_dist *d, void *buf, size_t bytes, int root, const char *what) {
    LLM__CHECK(usable(d, what));
    return note(d, mpi_mod.bcast(d->comm, buf, bytes, root, d->timeout_s, what));
}
