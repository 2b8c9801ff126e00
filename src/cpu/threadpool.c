/* libllm: the CPU kernels' thread pool (see threadpool.h).
 *
 * One job at a time: the caller publishes (fn, ctx, n, chunks) under the
 * mutex, bumps a generation counter and broadcasts; every worker wakes, runs
 * its chunk (if it has one) and counts itself done. Workers sleep on the
 * condition variable between jobs, so an idle pool costs nothing and never
 * steals cores from OpenBLAS.
 *
 * Chunk c of a job covers [n*c/chunks, n*(c+1)/chunks) (computed without
 * overflow), which depends only on n, grain and the thread count: a kernel
 * that writes each output from one chunk gives the same bits on every run.
 *
 * Every chunk, the caller's included and also when the job runs inline, runs
 * with flush-to-zero and denormals-are-zero set. Denormals cost ~100x on x86
 * and carry no useful precision for training; applying the same mode to every
 * chunk keeps results independent of which thread ran which element. The
 * caller's own floating-point mode is restored before llm__pool_for returns. */
#include <pthread.h>
#include "threadpool.h"
#include "../core/internal.h"

#if defined(__SSE2__)
#  include <xmmintrin.h>
#  include <pmmintrin.h>
#endif

typedef struct llm__pool_worker {
    llm__pool *pool;
    int index;          /* chunk index this worker runs: 1 .. threads-1 */
    pthread_t thread;
} llm__pool_worker;

struct llm__pool {
    int threads;
    int started;        /* worker threads actually running */
    llm__pool_worker *workers;

    pthread_mutex_t call_mu; /* serialises llm__pool_for callers (one job at a time) */
    pthread_mutex_t mu;      /* guards everything below */
    pthread_cond_t work_cv;  /* a new generation or shutdown */
    pthread_cond_t done_cv;  /* pending reached 0 */
    uint64_t generation;
    int pending;        /* workers with a chunk in the current job still running */
    int shutdown;

    /* the current job */
    llm__pool_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
};

/* Bounds of chunk c of `chunks` over [0, n), balanced to within one item. */
static void chunk_bounds(int64_t n, int chunks, int c, int64_t *begin, int64_t *end) {
    int64_t q = n / chunks, r = n % chunks;
    *begin = q * c + (c < r ? c : r);
    *end = *begin + q + (c < r ? 1 : 0);
}

#if defined(__SSE2__)
static unsigned set_ftz_daz(void) {
    unsigned old = _mm_getcsr();
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    return old;
}
static void restore_csr(unsigned old) { _mm_setcsr(old); }
#else
static unsigned set_ftz_daz(void) { return 0; }
static void restore_csr(unsigned old) { (void)old; }
#endif

static void *worker_main(void *arg) {
    llm__pool_worker *w = arg;
    llm__pool *pool = w->pool;
    (void)set_ftz_daz(); /* for the thread's whole life: it only runs kernels */

    /* Generation 0 is "no job yet"; starting from the pool's current value
     * instead could skip a job published before this thread first ran. */
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->generation == seen && !pool->shutdown)
            pthread_cond_wait(&pool->work_cv, &pool->mu);
        if (pool->shutdown) break;
        seen = pool->generation;
        if (w->index >= pool->chunks) continue; /* no chunk for us in this job */
        llm__pool_fn fn = pool->fn;
        void *ctx = pool->ctx;
        int64_t begin, end;
        chunk_bounds(pool->n, pool->chunks, w->index, &begin, &end);
        pthread_mutex_unlock(&pool->mu);

        fn(ctx, begin, end);

        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->done_cv);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void stop_workers(llm__pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pool->shutdown = 1;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->started; i++) pthread_join(pool->workers[i].thread, NULL);
    pool->started = 0;
}

llm_status llm__pool_create(llm__pool **out, int threads) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (threads < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: threads = %d must be >= 1", __func__,
                          threads);
    llm__pool *pool = llm__calloc(1, sizeof *pool);
    if (!pool) return llm__oom(__func__);
    pool->threads = threads;
    if (threads == 1) { *out = pool; return LLM_OK; }

    pool->workers = llm__calloc((size_t)threads - 1, sizeof *pool->workers);
    if (!pool->workers) { llm__free(pool); return llm__oom(__func__); }
    if (pthread_mutex_init(&pool->call_mu, NULL) != 0) goto fail_call_mu;
    if (pthread_mutex_init(&pool->mu, NULL) != 0) goto fail_mu;
    if (pthread_cond_init(&pool->work_cv, NULL) != 0) goto fail_work_cv;
    if (pthread_cond_init(&pool->done_cv, NULL) != 0) goto fail_done_cv;

    for (int i = 0; i < threads - 1; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i + 1;
        int rc = pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]);
        if (rc != 0) {
            stop_workers(pool);
            pthread_cond_destroy(&pool->done_cv);
            pthread_cond_destroy(&pool->work_cv);
            pthread_mutex_destroy(&pool->mu);
            pthread_mutex_destroy(&pool->call_mu);
            llm__free(pool->workers);
            llm__free(pool);
            return llm__error(LLM_ERR_BACKEND, "%s: could not start worker thread %d of %d (error %d)",
                              __func__, i + 1, threads - 1, rc);
        }
        pool->started++;
    }
    *out = pool;
    return LLM_OK;

fail_done_cv:
    pthread_cond_destroy(&pool->work_cv);
fail_work_cv:
    pthread_mutex_destroy(&pool->mu);
fail_mu:
    pthread_mutex_destroy(&pool->call_mu);
fail_call_mu:
    llm__free(pool->workers);
    llm__free(pool);
    return llm__error(LLM_ERR_BACKEND, "%s: could not initialise pthread primitives", __func__);
}

void llm__pool_free(llm__pool *pool) {
    if (!pool) return;
    if (pool->threads > 1) {
        stop_workers(pool);
        pthread_cond_destroy(&pool->done_cv);
        pthread_cond_destroy(&pool->work_cv);
        pthread_mutex_destroy(&pool->mu);
        pthread_mutex_destroy(&pool->call_mu);
        llm__free(pool->workers);
    }
    llm__free(pool);
}

int llm__pool_threads(const llm__pool *pool) {
    return pool ? pool->threads : 1;
}

void llm__pool_for(llm__pool *pool, int64_t n, int64_t grain, llm__pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = n / grain;
    if (pool && chunks > pool->threads) chunks = pool->threads;

    unsigned csr = set_ftz_daz();
    if (!pool || pool->threads < 2 || chunks < 2) {
        fn(ctx, 0, n);
        restore_csr(csr);
        return;
    }

    pthread_mutex_lock(&pool->call_mu);
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->chunks = (int)chunks;
    pool->pending = (int)chunks - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);

    int64_t begin, end;
    chunk_bounds(n, (int)chunks, 0, &begin, &end);
    fn(ctx, begin, end);

    pthread_mutex_lock(&pool->mu);
    while (pool->pending > 0) pthread_cond_wait(&pool->done_cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    pthread_mutex_unlock(&pool->call_mu);
    restore_csr(csr);
}
