/* libllm: the CPU kernels' thread pool (see threadpool.h).
 *
 * One job at a time: the caller publishes (fn, ctx, n, chunks) under the
 * mutex, bumps a generation counter and broadcasts; every worker wakes, runs
 * its chunk (if it has one) and counts itself done.
 *
 * Between jobs a worker first spins for up to LLM_POOL_SPIN_US watching the
 * generation, and only then sleeps on the condition variable; the caller
 * likewise spins before sleeping while it waits for the others. A recurrent
 * layer hands out a job every few tens of microseconds (a step's GEMM, its
 * gates), and waking a sleeping thread costs about as much as such a job on
 * a virtual CPU; an idle pool still costs nothing after the spin.
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
#include <time.h>
#include "threadpool.h"
#include "../core/internal.h"

#if defined(__SSE2__)
#  include <xmmintrin.h>
#  include <pmmintrin.h>
#endif

typedef struct llm__pool_worker {
    llm__pool *pool;
    int index;          /* 1 .. threads-1 (chunks are claimed, not assigned) */
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
    uint64_t pending;   /* workers with a chunk in the current job still running */
    int shutdown;

    /* the current job; claim is (job number << 32) | next chunk to run, so
     * a worker late for one job can never take a chunk of the next */
    uint64_t claim;
    llm__pool_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
};

#ifndef LLM_POOL_SPIN_US
#define LLM_POOL_SPIN_US 100
#endif

/* generation, pending and shutdown change under mu, and are also read
 * without it by the spinning threads: atomically, both ways */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static inline void cpu_relax(void) {
#if defined(__SSE2__)
    _mm_pause();
#endif
}

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins while *word == value (for the caller: while *word != 0, with
 * until_zero), stopping early when *stop is set, for LLM_POOL_SPIN_US at
 * most; the caller then takes the lock and checks again. */
static void spin(const uint64_t *word, uint64_t value, int until_zero, const int *stop) {
    int64_t start = 0;
    for (unsigned i = 1;; i++) {
        uint64_t w = LOAD(*word);
        if ((until_zero ? w == 0 : w != value) || (stop && LOAD(*stop))) return;
        cpu_relax();
        if ((i & 31) == 0) {
            int64_t now = mono_ns();
            if (!start) start = now;
            else if (now - start > (int64_t)LLM_POOL_SPIN_US * 1000) return;
        }
    }
}

/* Bounds of chunk c of `chunks` over [0, n), balanced to within one item. */
static void chunk_bounds(int64_t n, int chunks, int c, int64_t *begin, int64_t *end) {
    int64_t q = n / chunks, r = n % chunks;
    *begin = q * c + (c < r ? c : r);
    *end = *begin + q + (c < r ? 1 : 0);
}

/* Runs chunks of job `job` while any is unclaimed; returns how many. A chunk
 * computes the same whichever thread runs it, so who takes which does not
 * change a bit; what it changes is that a descheduled or sleeping worker
 * (this host is often shared) no longer holds up the others: whoever is
 * free takes its chunk. */
static int run_claimed(llm__pool *pool, uint32_t job, int chunks, int64_t n, llm__pool_fn fn, void *ctx) {
    int ran = 0;
    for (;;) {
        uint64_t w = LOAD(pool->claim);
        if ((uint32_t)(w >> 32) != job || (int)(uint32_t)w >= chunks) return ran;
        if (!__atomic_compare_exchange_n(&pool->claim, &w, w + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        int64_t begin, end;
        chunk_bounds(n, chunks, (int)(uint32_t)w, &begin, &end);
        fn(ctx, begin, end);
        ran++;
    }
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
        if (LOAD(pool->generation) == seen && !LOAD(pool->shutdown)) {
            pthread_mutex_unlock(&pool->mu);
            spin(&pool->generation, seen, 0, &pool->shutdown);
            pthread_mutex_lock(&pool->mu);
        }
        while (LOAD(pool->generation) == seen && !LOAD(pool->shutdown))
            pthread_cond_wait(&pool->work_cv, &pool->mu);
        if (LOAD(pool->shutdown)) break;
        seen = LOAD(pool->generation);
        llm__pool_fn fn = pool->fn;
        void *ctx = pool->ctx;
        const int64_t n = pool->n;
        const int chunks = pool->chunks;
        const uint32_t job = (uint32_t)(LOAD(pool->claim) >> 32);
        pthread_mutex_unlock(&pool->mu);

        int ran = run_claimed(pool, job, chunks, n, fn, ctx);

        pthread_mutex_lock(&pool->mu);
        if (ran) {
            uint64_t left = LOAD(pool->pending) - (uint64_t)ran;
            STORE(pool->pending, left);
            if (left == 0) pthread_cond_signal(&pool->done_cv);
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void stop_workers(llm__pool *pool) {
    pthread_mutex_lock(&pool->mu);
    STORE(pool->shutdown, 1);
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
    STORE(pool->pending, (uint64_t)chunks - 1);
    const uint32_t job = (uint32_t)(LOAD(pool->claim) >> 32) + 1;
    STORE(pool->claim, (uint64_t)job << 32 | 1); /* chunk 0 is the caller's */
    STORE(pool->generation, LOAD(pool->generation) + 1);
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);

    int64_t begin, end;
    chunk_bounds(n, (int)chunks, 0, &begin, &end);
    fn(ctx, begin, end);
    /* then any chunk no worker has taken yet */
    int ran = run_claimed(pool, job, (int)chunks, n, fn, ctx);
    if (ran) {
        pthread_mutex_lock(&pool->mu);
        STORE(pool->pending, LOAD(pool->pending) - (uint64_t)ran);
        pthread_mutex_unlock(&pool->mu);
    }

    spin(&pool->pending, 0, 1, NULL);
    pthread_mutex_lock(&pool->mu);
    while (LOAD(pool->pending) > 0) pthread_cond_wait(&pool->done_cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    pthread_mutex_unlock(&pool->call_mu);
    restore_csr(csr);
}
