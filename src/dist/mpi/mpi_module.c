/* libllm-mpi.so: the MPI module (see ../mpi_module.h). Built with mpicc
 * into its own shared object; libllm loads it with dlopen, so libllm never
 * links MPI.
 *
 * Collectives with a timeout are the non-blocking MPI-3 calls
 * (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) completed by polling MPI_Test
 * against a deadline: a rank that died or hangs makes the others fail after
 * the timeout instead of blocking forever in MPI. The poll spins for the
 * first second (MPI progresses only inside MPI calls, so spinning is what
 * keeps a large allreduce fast, as a blocking call would), then sleeps
 * 100 us between tests. The communicator's error handler is
 * MPI_ERRORS_RETURN, so an MPI failure is a status, not an abort. */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mpi.h>
#include "../mpi_module.h"

#define EXPORT __attribute__((visibility("default")))

static const llm__mpi_host *host;

typedef struct comm {
    MPI_Comm c;
    int rank, size;
} comm;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static llm_status mpi_fail(int rc, const char *what, const comm *c) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len < 0 ? 0 : len] = '\0';
    if (c)
        return host->error(LLM_ERR_DISTRIBUTED, "%s failed on rank %d of %d: MPI error %d: %s", what, c->rank,
                           c->size, rc, msg);
    return host->error(LLM_ERR_DISTRIBUTED, "%s failed: MPI error %d: %s", what, rc, msg);
}

/* Completes *req, or fails after timeout_s seconds (0: no limit). */
static llm_status wait_req(const comm *c, MPI_Request *req, double timeout_s, const char *what) {
    int rc;
    if (!(timeout_s > 0)) {
        rc = MPI_Wait(req, MPI_STATUS_IGNORE);
        return rc == MPI_SUCCESS ? LLM_OK : mpi_fail(rc, what, c);
    }
    double t0 = now_s();
    for (;;) {
        int done = 0;
        rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what, c);
        if (done) return LLM_OK;
        double waited = now_s() - t0;
        if (waited >= timeout_s)
            /* the request stays pending: MPI has no way to cancel a
               collective; the caller marks the communicator unusable */
            return host->error(LLM_ERR_DISTRIBUTED,
                               "%s timed out after %g s on rank %d of %d: another rank died, hangs or is that "
                               "far behind (the limit is llm_dist_set_timeout or LLM_DIST_TIMEOUT)",
                               what, timeout_s, c->rank, c->size);
        if (waited > 1.0) nanosleep(&(struct timespec){ 0, 100000 }, NULL);
        else sched_yield(); /* to a thread of this rank's, or another rank on an oversubscribed node */
    }
}

static llm_status new_comm(MPI_Comm from, void **out, const char *what) {
    comm *c = calloc(1, sizeof *c);
    if (!c) return host->error(LLM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    int rc = MPI_Comm_dup(from, &c->c);
    if (rc != MPI_SUCCESS) { free(c); return mpi_fail(rc, what, NULL); }
    MPI_Comm_set_errhandler(c->c, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->c, &c->rank);
    MPI_Comm_size(c->c, &c->size);
    *out = c;
    return LLM_OK;
}

static llm_status m_init(int *argc, char ***argv, void **out, int *initialised_here) {
    static const char what[] = "llm_dist_init";
    int inited = 0, finalized = 0;
    *initialised_here = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return host->error(LLM_ERR_STATE, "%s: MPI has been finalised in this process and cannot start again", what);
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        /* MPI_Init's errors are fatal by the standard's default; what comes
           back is a status only where the library allows it */
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "llm_dist_init: MPI_Init_thread", NULL);
        *initialised_here = 1;
    }
    /* errors on MPI_COMM_WORLD itself (the dup below) come back as codes */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    llm_status s = new_comm(MPI_COMM_WORLD, out, "llm_dist_init: MPI_Comm_dup");
    if (s != LLM_OK && *initialised_here) {
        MPI_Finalize();
        *initialised_here = 0;
    }
    return s;
}

static llm_status m_from_comm(const void *user_comm, void **out) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized)
        return host->error(LLM_ERR_STATE, "llm_dist_from_comm: MPI is %s; the program must initialise it first",
                           finalized ? "finalised" : "not initialised");
    MPI_Comm uc = *(const MPI_Comm *)user_comm;
    if (uc == MPI_COMM_NULL) return host->error(LLM_ERR_INVALID_ARGUMENT, "llm_dist_from_comm: MPI_COMM_NULL");
    return new_comm(uc, out, "llm_dist_from_comm: MPI_Comm_dup");
}

static llm_status m_rank_size(void *cv, int *rank, int *size) {
    comm *c = cv;
    *rank = c->rank;
    *size = c->size;
    return LLM_OK;
}

/* Counts above this go in several operations (MPI counts are int). */
#define CHUNK (1 << 28)

static llm_status m_allreduce(void *cv, void *buf, int64_t n, int type, int op, double timeout_s, const char *what) {
    comm *c = cv;
    MPI_Datatype dt = type == LLM__MPI_F64 ? MPI_DOUBLE : MPI_FLOAT;
    size_t esize = type == LLM__MPI_F64 ? 8 : 4;
    MPI_Op mop = op == LLM__MPI_MAX ? MPI_MAX : MPI_SUM;
    for (int64_t done = 0; done < n;) {
        int count = (int)(n - done < CHUNK ? n - done : CHUNK);
        void *p = (char *)buf + (size_t)done * esize;
        int rc;
        if (timeout_s > 0) {
            MPI_Request req;
            rc = MPI_Iallreduce(MPI_IN_PLACE, p, count, dt, mop, c->c, &req);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, what, c);
            llm_status s = wait_req(c, &req, timeout_s, what);
            if (s != LLM_OK) return s;
        } else {
            rc = MPI_Allreduce(MPI_IN_PLACE, p, count, dt, mop, c->c);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, what, c);
        }
        done += count;
    }
    return LLM_OK;
}

static llm_status m_bcast(void *cv, void *buf, size_t bytes, int root, double timeout_s, const char *what) {
    comm *c = cv;
    for (size_t done = 0; done < bytes;) {
        int count = (int)(bytes - done < (size_t)CHUNK ? bytes - done : (size_t)CHUNK);
        void *p = (char *)buf + done;
        int rc;
        if (timeout_s > 0) {
            MPI_Request req;
            rc = MPI_Ibcast(p, count, MPI_BYTE, root, c->c, &req);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, what, c);
            llm_status s = wait_req(c, &req, timeout_s, what);
            if (s != LLM_OK) return s;
        } else {
            rc = MPI_Bcast(p, count, MPI_BYTE, root, c->c);
            if (rc != MPI_SUCCESS) return mpi_fail(rc, what, c);
        }
        done += (size_t)count;
    }
    return LLM_OK;
}

static llm_status m_barrier(void *cv, double timeout_s, const char *what) {
    comm *c = cv;
    int rc;
    if (timeout_s > 0) {
        MPI_Request req;
        rc = MPI_Ibarrier(c->c, &req);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what, c);
        return wait_req(c, &req, timeout_s, what);
    }
    rc = MPI_Barrier(c->c);
    return rc == MPI_SUCCESS ? LLM_OK : mpi_fail(rc, what, c);
}

static void m_release(void *cv, int healthy, int finalize) {
    comm *c = cv;
    if (!c) return;
    /* after a failed or timed-out collective, MPI_Comm_free and
       MPI_Finalize could wait for the lost rank forever */
    if (healthy) {
        MPI_Comm_free(&c->c);
        if (finalize) MPI_Finalize();
    }
    free(c);
}

static void m_describe(char *buf, size_t len) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING + 1];
    int n = 0;
    if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) n = 0;
    v[n < 0 ? 0 : n] = '\0';
    char *nl = strpbrk(v, "\r\n,");
    if (nl) *nl = '\0';
    snprintf(buf, len, "%s", v);
}

EXPORT llm_status llm_mpi_module_init_v1(const llm__mpi_host *h, llm__mpi_module *out);
EXPORT llm_status llm_mpi_module_init_v1(const llm__mpi_host *h, llm__mpi_module *out) {
    if (!h || !out || !h->error) return LLM_ERR_INVALID_ARGUMENT;
    if (h->host_size != sizeof(llm__mpi_host) || h->module_size != sizeof(llm__mpi_module) ||
        h->version != LLM_VERSION_NUMBER)
        return h->error(LLM_ERR_UNAVAILABLE, "%s is from another libllm build (version %d, libllm %d)",
                        LLM__MPI_MODULE_FILE, LLM_VERSION_NUMBER, h->version);
    host = h;
    memset(out, 0, sizeof *out);
    out->host_size = sizeof(llm__mpi_host);
    out->module_size = sizeof(llm__mpi_module);
    out->version = LLM_VERSION_NUMBER;
    out->init = m_init;
    out->from_comm = m_from_comm;
    out->rank_size = m_rank_size;
    out->allreduce = m_allreduce;
    out->bcast = m_bcast;
    out->barrier = m_barrier;
    out->release = m_release;
    out->describe = m_describe;
    return LLM_OK;
}
