/* Every backend kernel against a naive double-precision reference, on every
 * available backend.
 *
 * Each check runs the kernel once per target in k_targets (CPU with 1 and 2
 * threads, CUDA when available), compares the result with a reference written
 * here in double, and compares every target with the first: bit for bit
 * between CPU targets for the kernels that promise determinism, within the
 * tolerance otherwise (BLAS, GPU). Sizes are awkward on purpose: 1, odd
 * shapes like 7x13 with strides larger than the rows, and shapes big enough
 * (1000x300) that the thread pool splits them. Gradients are also checked
 * against finite differences of the forward. */
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include "testutil.h"
#include "backend.h"
#include "core/rng.h"
#include "cpu/cpu.h"
#include "cpu/threadpool.h"

#if defined(__SSE2__)
#  include <xmmintrin.h>
#  include <pmmintrin.h>
#endif

#define SENT 7.0f /* written around outputs: a kernel must not touch it */

/* ------------------------------------------------------------------------ */
/* Targets                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct target {
    llm_backend_kind kind;
    int threads;
    const char *name;
} target;

static const target k_targets[] = {
    { LLM_BACKEND_CPU, 1, "cpu threads=1" },
    { LLM_BACKEND_CPU, 2, "cpu threads=2" },
    { LLM_BACKEND_CUDA, 0, "cuda" },
};
#define N_TARGETS ((int)(sizeof k_targets / sizeof k_targets[0]))

/* Set once in suite_backend_ops (the parent), inherited by forked tests. */
static int g_target_ok[N_TARGETS];

/* Availability from a child process (tests/testutil.c); reason gets why not. */
static int probe_available(llm_backend_kind kind, char *reason, size_t len) {
    int avail = 0;
    tu_probe_backend(kind, 0, 0, NULL, NULL, reason, len, &avail);
    return avail;
}

static void probe_targets(void) {
    for (int i = 0; i < N_TARGETS; i++) {
        if (k_targets[i].kind == LLM_BACKEND_CPU) { g_target_ok[i] = 1; continue; }
        char reason[600];
        g_target_ok[i] = probe_available(k_targets[i].kind, reason, sizeof reason);
        if (!g_target_ok[i])
            fprintf(stderr, "backend_ops: skipping target '%s': %s\n", k_targets[i].name,
                    reason[0] ? reason : "not available");
    }
}

/* One backend plus the device buffers allocated on it, freed together. */
typedef struct dev {
    llm_backend *be;
    void *ptr[64];
    int n;
} dev;

#define OPS(d) ((d)->be->ops)

static void dev_open(dev *d, int ti) {
    memset(d, 0, sizeof *d);
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = k_targets[ti].threads;
    ck_assert_ok(llm_backend_create(&d->be, k_targets[ti].kind, &o));
    ck_assert_ptr_nonnull(d->be->ops);
}

static void dev_close(dev *d) {
    for (int i = 0; i < d->n; i++) OPS(d)->free(d->be, d->ptr[i]);
    llm_backend_free(d->be);
    d->be = NULL;
    d->n = 0;
}

static void *dalloc(dev *d, size_t bytes) {
    ck_assert_int_lt(d->n, 64);
    void *p = NULL;
    ck_assert_ok(OPS(d)->alloc(d->be, bytes ? bytes : 4, &p));
    ck_assert_ptr_nonnull(p);
    d->ptr[d->n++] = p;
    return p;
}

static void dsync(dev *d) {
    if (OPS(d)->synchronize) ck_assert_ok(OPS(d)->synchronize(d->be));
}

/* Device copy of h[n] (zeros when h is NULL). */
static float *dput(dev *d, const float *h, int64_t n) {
    float *p = dalloc(d, (size_t)n * sizeof(float));
    if (h) ck_assert_ok(OPS(d)->copy_h2d(d->be, p, h, (size_t)n * sizeof(float)));
    else ck_assert_ok(OPS(d)->memset_zero(d->be, p, (size_t)n * sizeof(float)));
    return p;
}

static int32_t *dput_i32(dev *d, const int32_t *h, int64_t n) {
    int32_t *p = dalloc(d, (size_t)n * sizeof(int32_t));
    ck_assert_ok(OPS(d)->copy_h2d(d->be, p, h, (size_t)n * sizeof(int32_t)));
    return p;
}

/* Device buffer of n copies of value. */
static float *dput_const(dev *d, float value, int64_t n) {
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(h);
    for (int64_t i = 0; i < n; i++) h[i] = value;
    float *p = dput(d, h, n);
    free(h);
    return p;
}

static void dget(dev *d, float *h, const float *p, int64_t n) {
    dsync(d);
    ck_assert_ok(OPS(d)->copy_d2h(d->be, h, p, (size_t)n * sizeof(float)));
}

static void dget_i32(dev *d, int32_t *h, const int32_t *p, int64_t n) {
    dsync(d);
    ck_assert_ok(OPS(d)->copy_d2h(d->be, h, p, (size_t)n * sizeof(int32_t)));
}

static float *hf(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *hd(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *hrand(int64_t n, uint64_t seed, float lo, float hi) {
    float *p = hf(n);
    tu_fill(p, n, seed, lo, hi);
    return p;
}

static double *hd_const(int64_t n, double v) {
    double *p = hd(n);
    for (int64_t i = 0; i < n; i++) p[i] = v;
    return p;
}

/* Fails unless |got - want| <= atol + rtol |want| everywhere. */
static void expect_close(const char *what, const char *tname, const float *got, const double *want,
                         int64_t n, double atol, double rtol) {
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - want[i]);
        if (!(diff <= atol + rtol * fabs(want[i])))
            ck_abort_msg("%s [%s]: element %lld of %lld: got %.9g, want %.9g (|diff| %.3g, atol %g, rtol %g)",
                         what, tname, (long long)i, (long long)n, (double)got[i], want[i], diff,
                         atol, rtol);
    }
}

static void expect_same(const char *what, const char *tname, const char *ref_name, const float *got,
                        const float *ref, int64_t n) {
    if (memcmp(got, ref, (size_t)n * sizeof(float)) == 0) return;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0)
            ck_abort_msg("%s: [%s] differs from [%s] at element %lld: %.9g vs %.9g (results must be "
                         "identical for any thread count)", what, tname, ref_name, (long long)i,
                         (double)got[i], (double)ref[i]);
    }
}

/* Runs `run` on every available target: it uploads its inputs, calls the
 * kernel and downloads nout floats into out. Checks each result against ref
 * (if not NULL) and against the first target's: bitwise between CPU targets
 * when `deterministic`, within tolerance otherwise. */
typedef void (*run_fn)(dev *d, const void *cs, float *out);

static void check_targets(const char *what, run_fn run, const void *cs, int64_t nout,
                          const double *ref, double atol, double rtol, int deterministic) {
    float *first = NULL;
    int first_ti = -1;
    float *out = hf(nout);
    for (int ti = 0; ti < N_TARGETS; ti++) {
        if (!g_target_ok[ti]) continue;
        dev d;
        dev_open(&d, ti);
        for (int64_t i = 0; i < nout; i++) out[i] = NAN;
        run(&d, cs, out);
        dev_close(&d);
        if (ref) expect_close(what, k_targets[ti].name, out, ref, nout, atol, rtol);
        if (!first) {
            first = out;
            first_ti = ti;
            out = hf(nout);
        } else if (deterministic && k_targets[ti].kind == LLM_BACKEND_CPU &&
                   k_targets[first_ti].kind == LLM_BACKEND_CPU) {
            expect_same(what, k_targets[ti].name, k_targets[first_ti].name, out, first, nout);
        } else {
            double *fd = hd(nout);
            for (int64_t i = 0; i < nout; i++) fd[i] = first[i];
            expect_close(what, k_targets[ti].name, out, fd, nout, atol, rtol);
            free(fd);
        }
    }
    free(out);
    free(first);
}

/* Runs `run` on the first target only (finite-difference checks). */
static void run_first(run_fn run, const void *cs, float *out) {
    dev d;
    dev_open(&d, 0);
    run(&d, cs, out);
    dev_close(&d);
}

static double ref_sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* ------------------------------------------------------------------------ */
/* Thread pool                                                               */
/* ------------------------------------------------------------------------ */

typedef struct pool_probe {
    int *hits;
    atomic_int nchunks;
    int64_t begins[64], ends[64];
    pthread_t threads[64];
    int ftz_ok[64];
} pool_probe;

static void probe_chunk(void *p, int64_t begin, int64_t end) {
    pool_probe *pp = p;
    int k = atomic_fetch_add(&pp->nchunks, 1);
    if (k < 64) {
        pp->begins[k] = begin;
        pp->ends[k] = end;
        pp->threads[k] = pthread_self();
#if defined(__SSE2__)
        pp->ftz_ok[k] = _MM_GET_FLUSH_ZERO_MODE() == _MM_FLUSH_ZERO_ON &&
                        _MM_GET_DENORMALS_ZERO_MODE() == _MM_DENORMALS_ZERO_ON;
#else
        pp->ftz_ok[k] = 1;
#endif
    }
    for (int64_t i = begin; i < end; i++) pp->hits[i]++;
}

static void pool_run_and_check(llm__pool *pool, int64_t n, int64_t grain, int expect_chunks) {
    pool_probe pp;
    memset(&pp, 0, sizeof pp);
    atomic_init(&pp.nchunks, 0);
    pp.hits = calloc((size_t)n + 1, sizeof(int));
    ck_assert_ptr_nonnull(pp.hits);
#if defined(__SSE2__)
    unsigned csr = _mm_getcsr();
#endif
    llm__pool_for(pool, n, grain, probe_chunk, &pp);
#if defined(__SSE2__)
    ck_assert_msg(_mm_getcsr() == csr, "llm__pool_for must restore the caller's MXCSR");
#endif
    for (int64_t i = 0; i < n; i++)
        if (pp.hits[i] != 1)
            ck_abort_msg("n=%lld grain=%lld: item %lld ran %d times", (long long)n,
                         (long long)grain, (long long)i, pp.hits[i]);
    int nc = atomic_load(&pp.nchunks);
    if (n > 0) ck_assert_int_eq(nc, expect_chunks);
    /* chunks are contiguous, ordered by index, each at least `grain` long when split */
    for (int c = 0; c < nc; c++) {
        ck_assert(pp.ftz_ok[c]);
        int64_t expect_begin = 0;
        for (int e = 0; e < nc; e++)
            if (pp.ends[e] <= pp.begins[c] && pp.ends[e] > expect_begin) expect_begin = pp.ends[e];
        ck_assert_int_eq(pp.begins[c], expect_begin);
        if (nc > 1) ck_assert_int_ge(pp.ends[c] - pp.begins[c], grain);
        /* the chunk starting at 0 runs on the caller's thread */
        if (pp.begins[c] == 0) ck_assert(pthread_equal(pp.threads[c], pthread_self()));
    }
    free(pp.hits);
}

START_TEST(pool_splits_contiguously) {
    llm__pool *pool = NULL;
    ck_assert_ok(llm__pool_create(&pool, 3));
    ck_assert_int_eq(llm__pool_threads(pool), 3);
    pool_run_and_check(pool, 100003, 1000, 3);
    pool_run_and_check(pool, 1999, 1000, 1);  /* < 2 grains: inline */
    pool_run_and_check(pool, 2000, 1000, 2);  /* exactly 2 grains: 2 chunks */
    pool_run_and_check(pool, 0, 1, 0);
    pool_run_and_check(pool, 1, 1, 1);
    pool_run_and_check(NULL, 5000, 1, 1);    /* no pool: inline */
    /* many short jobs in a row: lost wake-ups would hang here */
    for (int i = 0; i < 3000; i++) pool_run_and_check(pool, 3 + i % 7, 1, 3);
    llm__pool_free(pool);
    llm__pool_free(NULL);

    ck_assert_ok(llm__pool_create(&pool, 1));
    ck_assert_int_eq(llm__pool_threads(pool), 1);
    pool_run_and_check(pool, 100000, 1, 1);
    llm__pool_free(pool);
    ck_assert_int_eq(llm__pool_threads(NULL), 1);
}
END_TEST

START_TEST(pool_rejects_bad_arguments) {
    llm__pool *pool = (llm__pool *)&pool;
    ck_assert_fails(llm__pool_create(&pool, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(pool);
    ck_assert_fails(llm__pool_create(NULL, 2), LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

/* Create and free quickly, with and without work: no hang, no leak. */
START_TEST(pool_create_free_cycles) {
    for (int i = 0; i < 50; i++) {
        llm__pool *pool = NULL;
        ck_assert_ok(llm__pool_create(&pool, 1 + i % 4));
        if (i % 2) pool_run_and_check(pool, 64, 1, 1 + i % 4);
        llm__pool_free(pool);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Vtable and memory                                                         */
/* ------------------------------------------------------------------------ */

START_TEST(vtable_is_complete) {
    for (int ti = 0; ti < N_TARGETS; ti++) {
        if (!g_target_ok[ti]) continue;
        dev d;
        dev_open(&d, ti);
        const llm__backend_ops *o = OPS(&d);
        ck_assert_ptr_nonnull(o->name);
        /* every slot but synchronize is required */
        const void *slots[] = {
            (const void *)o->alloc, (const void *)o->free, (const void *)o->memset_zero,
            (const void *)o->copy_h2d, (const void *)o->copy_d2h, (const void *)o->copy_d2d,
            (const void *)o->sgemm, (const void *)o->sgemm_batched, (const void *)o->fill,
            (const void *)o->fill_i32, (const void *)o->axpy, (const void *)o->scale,
            (const void *)o->add, (const void *)o->mul, (const void *)o->copy_rows,
            (const void *)o->bias_act_forward, (const void *)o->act_backward,
            (const void *)o->bias_backward, (const void *)o->softmax_forward,
            (const void *)o->softmax_backward, (const void *)o->layernorm_forward,
            (const void *)o->layernorm_backward, (const void *)o->embedding_forward,
            (const void *)o->embedding_backward, (const void *)o->lstm_step_forward,
            (const void *)o->lstm_step_backward, (const void *)o->gru_step_forward,
            (const void *)o->gru_step_backward, (const void *)o->attention_forward,
            (const void *)o->attention_backward, (const void *)o->pool_forward,
            (const void *)o->pool_backward, (const void *)o->dropout,
            (const void *)o->loss_bce_logits, (const void *)o->loss_bce_probs,
            (const void *)o->loss_sce_logits, (const void *)o->loss_sce_probs,
            (const void *)o->loss_mse, (const void *)o->sum, (const void *)o->sum_squares,
            (const void *)o->count_nonfinite, (const void *)o->optimizer_update,
        };
        for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
            ck_assert_msg(slots[i] != NULL, "[%s] vtable slot %zu is NULL", k_targets[ti].name, i);
        dev_close(&d);
    }
}
END_TEST

START_TEST(memory_ops) {
    const size_t sizes[] = { 1, 4, 13, 4096, 1 << 20 };
    for (int ti = 0; ti < N_TARGETS; ti++) {
        if (!g_target_ok[ti]) continue;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t bytes = sizes[si];
            dev d;
            dev_open(&d, ti);
            unsigned char *src = malloc(bytes), *back = malloc(bytes);
            ck_assert(src && back);
            for (size_t i = 0; i < bytes; i++) src[i] = (unsigned char)(i * 131u + 7u);
            unsigned char *a = dalloc(&d, bytes), *b = dalloc(&d, bytes);
            ck_assert_ok(OPS(&d)->copy_h2d(d.be, a, src, bytes));
            ck_assert_ok(OPS(&d)->copy_d2d(d.be, b, a, bytes));
            memset(back, 0xAB, bytes);
            dsync(&d);
            ck_assert_ok(OPS(&d)->copy_d2h(d.be, back, b, bytes));
            ck_assert_mem_eq(back, src, bytes);
            /* zero a middle range of b; the rest is untouched */
            size_t off = bytes / 3, len = bytes - off - bytes / 4;
            ck_assert_ok(OPS(&d)->memset_zero(d.be, b + off, len));
            /* copy part of a to an offset in b (device to device, offsets) */
            if (bytes >= 8) ck_assert_ok(OPS(&d)->copy_d2d(d.be, b, a + 4, 4));
            dsync(&d);
            ck_assert_ok(OPS(&d)->copy_d2h(d.be, back, b, bytes));
            for (size_t i = 0; i < bytes; i++) {
                unsigned char want = (i >= off && i < off + len) ? 0 : src[i];
                if (bytes >= 8 && i < 4) want = src[4 + i];
                if (back[i] != want)
                    ck_abort_msg("[%s] %zu bytes: byte %zu is %d, want %d", k_targets[ti].name,
                                 bytes, i, back[i], want);
            }
            /* d2h into the middle of a host buffer */
            memset(back, 0, bytes);
            ck_assert_ok(OPS(&d)->copy_d2h(d.be, back + bytes / 2, a, bytes - bytes / 2));
            ck_assert_mem_eq(back + bytes / 2, src, bytes - bytes / 2);
            free(src);
            free(back);
            dev_close(&d);
        }
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* BLAS                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct gemm_case {
    int ta, tb, m, n, k, lda, ldb, ldc, batch; /* batch 0: plain sgemm */
    int64_t sa, sb, sc;
    float alpha, beta;
    float *a, *b, *c0;
    int64_t na, nb, nc;
} gemm_case;

static void run_gemm(dev *d, const void *p, float *out) {
    const gemm_case *g = p;
    float *a = dput(d, g->a, g->na), *b = dput(d, g->b, g->nb), *c = dput(d, g->c0, g->nc);
    if (g->batch == 0)
        ck_assert_ok(OPS(d)->sgemm(d->be, g->ta, g->tb, g->m, g->n, g->k, g->alpha, a, g->lda, b,
                                   g->ldb, g->beta, c, g->ldc));
    else
        ck_assert_ok(OPS(d)->sgemm_batched(d->be, g->ta, g->tb, g->m, g->n, g->k, g->alpha, a,
                                           g->lda, g->sa, b, g->ldb, g->sb, g->beta, c, g->ldc,
                                           g->sc, g->batch));
    dget(d, out, c, g->nc);
}

static void ref_gemm(const gemm_case *g, double *c) {
    for (int64_t i = 0; i < g->nc; i++) c[i] = g->c0[i];
    int batches = g->batch ? g->batch : 1;
    for (int bi = 0; bi < batches; bi++) {
        const float *a = g->a + bi * g->sa, *b = g->b + bi * g->sb;
        int64_t coff = bi * g->sc;
        for (int i = 0; i < g->m; i++)
            for (int j = 0; j < g->n; j++) {
                double s = 0.0;
                for (int p = 0; p < g->k; p++) {
                    double av = g->ta ? a[(int64_t)p * g->lda + i] : a[(int64_t)i * g->lda + p];
                    double bv = g->tb ? b[(int64_t)j * g->ldb + p] : b[(int64_t)p * g->ldb + j];
                    s += av * bv;
                }
                int64_t ci = coff + (int64_t)i * g->ldc + j;
                c[ci] = g->alpha * s + g->beta * (double)g->c0[ci];
            }
    }
}

static void gemm_check_alpha(int ta, int tb, int m, int n, int k, int batch, float alpha, float beta,
                             int deterministic, uint64_t seed) {
    gemm_case g = { .ta = ta, .tb = tb, .m = m, .n = n, .k = k, .batch = batch,
                    .alpha = alpha, .beta = beta };
    /* leading dimensions larger than needed: the kernel must honour them */
    g.lda = (ta ? m : k) + 3;
    g.ldb = (tb ? k : n) + 2;
    g.ldc = n + 5;
    int64_t arows = ta ? k : m, brows = tb ? n : k;
    int64_t asz = arows * g.lda, bsz = brows * g.ldb, csz = (int64_t)m * g.ldc;
    int nb = batch ? batch : 1;
    g.sa = asz + 7;
    g.sb = bsz + 1;
    g.sc = csz + 9;
    g.na = g.sa * nb;
    g.nb = g.sb * nb;
    g.nc = g.sc * nb;
    g.a = hrand(g.na, seed, -1, 1);
    g.b = hrand(g.nb, seed + 1, -1, 1);
    g.c0 = hrand(g.nc, seed + 2, -1, 1);
    double *ref = hd(g.nc);
    ref_gemm(&g, ref);
    char what[96];
    snprintf(what, sizeof what, "sgemm%s ta=%d tb=%d m=%d n=%d k=%d", batch ? "_batched" : "", ta,
             tb, m, n, k);
    check_targets(what, run_gemm, &g, g.nc, ref, 2e-6 * (k + 1), 1e-5, deterministic);
    free(ref);
    free(g.a);
    free(g.b);
    free(g.c0);
}

static void gemm_check_ex(int ta, int tb, int m, int n, int k, int batch, float beta, int deterministic,
                          uint64_t seed) {
    gemm_check_alpha(ta, tb, m, n, k, batch, 0.75f, beta, deterministic, seed);
}

static void gemm_check(int ta, int tb, int m, int n, int k, int batch, uint64_t seed) {
    gemm_check_ex(ta, tb, m, n, k, batch, -0.5f, 0, seed);
}

/* The CPU's own kernel for A B^T with up to 4 rows of A (batch-1 steps,
 * decoding): rows of B not a multiple of its 4, k not of its 8, beta 0 and
 * not, and big enough that 2 threads split B; the same bits on 1 and 2. */
START_TEST(sgemm_small_m) {
    for (int m = 1; m <= 5; m++)
        for (int bz = 0; bz < 2; bz++) {
            gemm_check_ex(0, 1, m, 515, 131, 0, bz ? 0.0f : -0.5f, 1, 150 + (uint64_t)m * 2 + bz);
            gemm_check_ex(0, 1, m, 6, 9, 0, bz ? 0.0f : -0.5f, 1, 170 + (uint64_t)m * 2 + bz);
        }
}
END_TEST

START_TEST(sgemm_all_transposes) {
    static const int shapes[][3] = { { 1, 1, 1 }, { 7, 13, 5 }, { 13, 7, 1 }, { 97, 130, 300 } };
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                gemm_check(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0,
                           100 + (uint64_t)(ta * 2 + tb) * 10 + s);
}
END_TEST

/* alpha 1, beta 0 and 1, n a multiple of 16: the CPU's own AVX-512 GEMM
 * where the CPU has it (rows past its 6-row tiles, a part-filled 64-column
 * block, k over several of its 128 blocks), and then the same bits on 1
 * and 2 threads (elsewhere OpenBLAS, which gives them for one thread count) */
START_TEST(sgemm_own_shapes) {
    static const int shapes[][3] = { { 13, 48, 300 }, { 70, 128, 129 }, { 5, 16, 7 }, { 200, 96, 64 } };
#if defined(__x86_64__) && !defined(LLM_NO_SIMD_CLONES) && defined(__GNUC__)
    const int own = __builtin_cpu_supports("avx512f");
#else
    const int own = 0;
#endif
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int bz = 0; bz < 2; bz++)
                    gemm_check_alpha(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0, 1.0f, bz ? 0.0f : 1.0f, own,
                                     300 + (uint64_t)(ta * 2 + tb) * 20 + s * 2 + bz);
}
END_TEST

START_TEST(sgemm_batched_all_transposes) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_check(ta, tb, 7, 13, 5, 3, 200 + (uint64_t)(ta * 2 + tb));
            gemm_check(ta, tb, 1, 1, 1, 1, 210 + (uint64_t)(ta * 2 + tb));
            gemm_check(ta, tb, 33, 64, 47, 4, 220 + (uint64_t)(ta * 2 + tb));
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Element-wise                                                              */
/* ------------------------------------------------------------------------ */

static const int64_t k_sizes_1d[] = { 1, 91, 300000 };
#define N_SIZES_1D ((int)(sizeof k_sizes_1d / sizeof k_sizes_1d[0]))
static const int64_t k_shapes_2d[][2] = { { 1, 1 }, { 7, 13 }, { 1000, 300 } };
#define N_SHAPES_2D ((int)(sizeof k_shapes_2d / sizeof k_shapes_2d[0]))

typedef struct ew_case {
    int64_t n;
    float *a, *b;
} ew_case;

/* out: fill | fill_i32 | axpy | scale | add | mul | add in place | mul in place */
static void run_elementwise(dev *d, const void *p, float *out) {
    const ew_case *c = p;
    int64_t n = c->n;
    float *buf = dput(d, c->b, n);
    ck_assert_ok(OPS(d)->fill(d->be, n, 0.375f, buf));
    dget(d, out, buf, n);

    int32_t *ib = dalloc(d, (size_t)n * sizeof(int32_t));
    ck_assert_ok(OPS(d)->fill_i32(d->be, n, -123456, ib));
    int32_t *ih = malloc((size_t)n * sizeof(int32_t));
    ck_assert_ptr_nonnull(ih);
    dget_i32(d, ih, ib, n);
    for (int64_t i = 0; i < n; i++) out[n + i] = (float)ih[i];
    free(ih);

    float *a = dput(d, c->a, n), *y = dput(d, c->b, n);
    ck_assert_ok(OPS(d)->axpy(d->be, n, -1.25f, a, y));
    dget(d, out + 2 * n, y, n);

    y = dput(d, c->b, n);
    ck_assert_ok(OPS(d)->scale(d->be, n, 0.3f, y));
    dget(d, out + 3 * n, y, n);

    float *b = dput(d, c->b, n), *o = dput_const(d, SENT, n);
    ck_assert_ok(OPS(d)->add(d->be, n, a, b, o));
    dget(d, out + 4 * n, o, n);
    ck_assert_ok(OPS(d)->mul(d->be, n, a, b, o));
    dget(d, out + 5 * n, o, n);

    float *a2 = dput(d, c->a, n);
    ck_assert_ok(OPS(d)->add(d->be, n, a2, b, a2));
    dget(d, out + 6 * n, a2, n);
    float *b2 = dput(d, c->b, n);
    ck_assert_ok(OPS(d)->mul(d->be, n, a, b2, b2));
    dget(d, out + 7 * n, b2, n);
}

START_TEST(elementwise_ops) {
    for (int si = 0; si < N_SIZES_1D; si++) {
        int64_t n = k_sizes_1d[si];
        ew_case c = { n, hrand(n, 1 + si, -2, 2), hrand(n, 50 + si, -2, 2) };
        double *ref = hd(8 * n);
        for (int64_t i = 0; i < n; i++) {
            double a = c.a[i], b = c.b[i];
            ref[i] = 0.375;
            ref[n + i] = -123456;
            ref[2 * n + i] = b - 1.25 * a;
            ref[3 * n + i] = (double)0.3f * b;
            ref[4 * n + i] = a + b;
            ref[5 * n + i] = a * b;
            ref[6 * n + i] = a + b;
            ref[7 * n + i] = a * b;
        }
        check_targets("elementwise", run_elementwise, &c, 8 * n, ref, 1e-6, 1e-6, 1);
        free(ref);
        free(c.a);
        free(c.b);
    }
}
END_TEST

typedef struct copy_rows_case {
    int64_t rows, cols, ld_src, ld_dst;
    float *src, *dst0;
    int accumulate;
} copy_rows_case;

static void run_copy_rows(dev *d, const void *p, float *out) {
    const copy_rows_case *c = p;
    float *s = dput(d, c->src, c->rows * c->ld_src), *t = dput(d, c->dst0, c->rows * c->ld_dst);
    ck_assert_ok(OPS(d)->copy_rows(d->be, c->rows, c->cols, s, c->ld_src, t, c->ld_dst,
                                   c->accumulate));
    dget(d, out, t, c->rows * c->ld_dst);
}

START_TEST(copy_rows_strided) {
    for (int si = 0; si < N_SHAPES_2D; si++)
        for (int acc = 0; acc < 2; acc++) {
            copy_rows_case c = { k_shapes_2d[si][0], k_shapes_2d[si][1], 0, 0, NULL, NULL, acc };
            c.ld_src = c.cols + 3;
            c.ld_dst = 2 * c.cols + 1; /* like writing one time step of a [B, T, F] sequence */
            c.src = hrand(c.rows * c.ld_src, 7 + si, -1, 1);
            c.dst0 = hrand(c.rows * c.ld_dst, 17 + si, -1, 1);
            double *ref = hd(c.rows * c.ld_dst);
            for (int64_t r = 0; r < c.rows; r++)
                for (int64_t j = 0; j < c.ld_dst; j++) {
                    double v = c.dst0[r * c.ld_dst + j];
                    if (j < c.cols) v = (acc ? v : 0.0) + c.src[r * c.ld_src + j];
                    ref[r * c.ld_dst + j] = v;
                }
            check_targets(acc ? "copy_rows accumulate" : "copy_rows", run_copy_rows, &c,
                          c.rows * c.ld_dst, ref, 1e-7, 1e-6, 1);
            free(ref);
            free(c.src);
            free(c.dst0);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Activations and softmax                                                   */
/* ------------------------------------------------------------------------ */

static double ref_act(int act, double v) {
    switch (act) {
    case LLM__ACT_RELU: return v > 0 ? v : 0;
    case LLM__ACT_SIGMOID: return ref_sigmoid(v);
    case LLM__ACT_TANH: return tanh(v);
    case LLM__ACT_GELU:
        return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    default: return v;
    }
}

/* derivative at pre-activation x with output y */
static double ref_act_grad(int act, double x, double y) {
    switch (act) {
    case LLM__ACT_RELU: return y > 0 ? 1 : 0;
    case LLM__ACT_SIGMOID: return y * (1 - y);
    case LLM__ACT_TANH: return 1 - y * y;
    case LLM__ACT_GELU: {
        double k = sqrt(2.0 / M_PI), u = k * (x + 0.044715 * x * x * x), t = tanh(u);
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }
    default: return 1;
    }
}

typedef struct act_case {
    int act, inplace;
    int64_t rows, cols;
    float *x, *bias, *y, *dy, *dx0;
} act_case;

static void run_bias_act(dev *d, const void *p, float *out) {
    const act_case *c = p;
    int64_t n = c->rows * c->cols;
    float *x = dput(d, c->x, n), *b = c->bias ? dput(d, c->bias, c->cols) : NULL;
    float *y = c->inplace ? x : dput_const(d, SENT, n);
    ck_assert_ok(OPS(d)->bias_act_forward(d->be, c->act, c->rows, c->cols, x, b, y));
    dget(d, out, y, n);
}

START_TEST(bias_act_forward_all) {
    for (int si = 0; si < N_SHAPES_2D; si++)
        for (int act = 0; act <= LLM__ACT_GELU; act++)
            for (int variant = 0; variant < 3; variant++) { /* bias, no bias, bias in place */
                act_case c = { .act = act, .inplace = variant == 2, .rows = k_shapes_2d[si][0],
                               .cols = k_shapes_2d[si][1] };
                int64_t n = c.rows * c.cols;
                c.x = hrand(n, 300 + si * 7 + act, -4, 4);
                /* extreme inputs: the logistic must not overflow */
                if (n >= 2) { c.x[0] = -100.0f; c.x[1] = 100.0f; }
                c.bias = variant == 1 ? NULL : hrand(c.cols, 400 + si, -1, 1);
                double *ref = hd(n);
                for (int64_t r = 0; r < c.rows; r++)
                    for (int64_t j = 0; j < c.cols; j++)
                        ref[r * c.cols + j] = ref_act(act, (double)(c.x[r * c.cols + j] +
                                                                    (c.bias ? c.bias[j] : 0.0f)));
                char what[64];
                snprintf(what, sizeof what, "bias_act_forward act=%d variant=%d", act, variant);
                check_targets(what, run_bias_act, &c, n, ref, 1e-6, 1e-5, 1);
                free(ref);
                free(c.x);
                free(c.bias);
            }
}
END_TEST

/* The optional fused linear (x W^T + b, then the activation): against a
 * double reference, several row blocks, with and without a separate z. */
typedef struct linear_case {
    int64_t rows, in, out;
    int act, with_z;
    float *x, *w, *b;
} linear_case;

static void run_linear(dev *d, const void *p, float *out) {
    const linear_case *c = p;
    if (!OPS(d)->linear_forward) { /* optional slot: check the fallback's pieces instead */
        float *x = dput(d, c->x, c->rows * c->in), *w = dput(d, c->w, c->out * c->in);
        float *b = c->b ? dput(d, c->b, c->out) : NULL, *z = dalloc(d, (size_t)(c->rows * c->out) * 4);
        ck_assert_ok(OPS(d)->sgemm(d->be, 0, 1, (int)c->rows, (int)c->out, (int)c->in, 1.0f, x, (int)c->in, w,
                                   (int)c->in, 0.0f, z, (int)c->out));
        ck_assert_ok(OPS(d)->bias_act_forward(d->be, c->act, c->rows, c->out, z, b, z));
        dget(d, out, z, c->rows * c->out);
        return;
    }
    float *x = dput(d, c->x, c->rows * c->in), *w = dput(d, c->w, c->out * c->in);
    float *b = c->b ? dput(d, c->b, c->out) : NULL;
    float *z = c->with_z ? dalloc(d, (size_t)(c->rows * c->out) * 4) : NULL;
    float *y = dalloc(d, (size_t)(c->rows * c->out) * 4);
    ck_assert_ok(OPS(d)->linear_forward(d->be, c->rows, c->in, c->out, x, w, b, c->act, z, y));
    dget(d, out, y, c->rows * c->out);
    if (z) { /* z is the pre-activation */
        float *hz = malloc((size_t)(c->rows * c->out) * 4);
        ck_assert_ptr_nonnull(hz);
        dget(d, hz, z, c->rows * c->out);
        for (int64_t r = 0; r < c->rows; r++)
            for (int64_t j = 0; j < c->out; j++) {
                double v = c->b ? c->b[j] : 0.0;
                for (int64_t k = 0; k < c->in; k++) v += (double)c->x[r * c->in + k] * c->w[j * c->in + k];
                ck_assert_msg(fabs(hz[r * c->out + j] - v) <= 1e-4 + 1e-4 * fabs(v), "linear z[%lld,%lld] %g vs %g",
                              (long long)r, (long long)j, (double)hz[r * c->out + j], v);
            }
        free(hz);
    }
}

START_TEST(linear_forward_fused) {
    /* {rows, in, out}: the last, the own GEMM's bias start over 3 blocks of
     * k, a part-filled column panel and rows past a multiple of 6 */
    static const int64_t shapes[][3] = {
        { 1, 5, 3 }, { 300, 37, 130 }, { 513, 64, 512 }, { 20, 8, 4096 }, { 100, 300, 48 },
    };
    for (int si = 0; si < 5; si++)
        for (int act = 0; act <= LLM__ACT_GELU; act++)
            for (int variant = 0; variant < 3; variant++) { /* bias + z, no bias + z, bias without z */
                linear_case c = { shapes[si][0], shapes[si][1], shapes[si][2], act, variant != 2, NULL, NULL, NULL };
                c.x = hrand(c.rows * c.in, 900 + si, -1, 1);
                c.w = hrand(c.out * c.in, 910 + si, -0.5f, 0.5f);
                c.b = variant == 1 ? NULL : hrand(c.out, 920 + si, -1, 1);
                int64_t n = c.rows * c.out;
                double *ref = hd(n);
                for (int64_t r = 0; r < c.rows; r++)
                    for (int64_t j = 0; j < c.out; j++) {
                        double v = c.b ? c.b[j] : 0.0;
                        for (int64_t k = 0; k < c.in; k++) v += (double)c.x[r * c.in + k] * c.w[j * c.in + k];
                        ref[r * c.out + j] = ref_act(act, v);
                    }
                char what[96];
                snprintf(what, sizeof what, "linear_forward %lldx%lldx%lld act=%d variant=%d", (long long)c.rows,
                         (long long)c.in, (long long)c.out, act, variant);
                check_targets(what, run_linear, &c, n, ref, 1e-4, 1e-4, 1);
                free(ref);
                free(c.x);
                free(c.w);
                free(c.b);
            }
}
END_TEST

static void run_act_backward(dev *d, const void *p, float *out) {
    const act_case *c = p;
    int64_t n = c->rows;
    float *x = c->act == LLM__ACT_GELU ? dput(d, c->x, n) : NULL;
    float *y = dput(d, c->y, n), *dy = dput(d, c->dy, n), *dx = dput(d, c->dx0, n);
    ck_assert_ok(OPS(d)->act_backward(d->be, c->act, n, x, y, dy, dx));
    dget(d, out, dx, n);
}

START_TEST(act_backward_all) {
    for (int si = 0; si < N_SIZES_1D; si++)
        for (int act = 0; act <= LLM__ACT_GELU; act++) {
            int64_t n = k_sizes_1d[si];
            act_case c = { .act = act, .rows = n };
            c.x = hrand(n, 500 + si + act, -4, 4);
            c.y = hf(n);
            for (int64_t i = 0; i < n; i++) c.y[i] = (float)ref_act(act, c.x[i]);
            c.dy = hrand(n, 600 + si, -1, 1);
            c.dx0 = hrand(n, 700 + si, -1, 1);
            double *ref = hd(n);
            for (int64_t i = 0; i < n; i++)
                ref[i] = c.dx0[i] + (double)c.dy[i] * ref_act_grad(act, c.x[i], c.y[i]);
            char what[64];
            snprintf(what, sizeof what, "act_backward act=%d n=%lld", act, (long long)n);
            check_targets(what, run_act_backward, &c, n, ref, 1e-6, 1e-5, 1);
            free(ref);
            free(c.x);
            free(c.y);
            free(c.dy);
            free(c.dx0);
        }
}
END_TEST

/* GELU's derivative against finite differences of the reference GELU, so a
 * wrong derivative formula in both the kernel and ref_act_grad is caught. */
START_TEST(gelu_derivative_matches_finite_differences) {
    for (double x = -5.0; x <= 5.0; x += 0.37) {
        double h = 1e-6;
        double fd = (ref_act(LLM__ACT_GELU, x + h) - ref_act(LLM__ACT_GELU, x - h)) / (2 * h);
        ck_assert_double_eq_tol(ref_act_grad(LLM__ACT_GELU, x, 0), fd, 1e-7);
    }
}
END_TEST

typedef struct rows_case {
    int64_t rows, cols;
    float *x, *dy, *d0, *gamma, *beta;
} rows_case;

static void run_bias_backward(dev *d, const void *p, float *out) {
    const rows_case *c = p;
    float *g = dput(d, c->x, c->rows * c->cols), *db = dput(d, c->d0, c->cols);
    ck_assert_ok(OPS(d)->bias_backward(d->be, c->rows, c->cols, g, db));
    dget(d, out, db, c->cols);
}

START_TEST(bias_backward_sums_columns) {
    static const int64_t shapes[][2] = { { 1, 1 }, { 7, 13 }, { 1000, 300 }, { 5000, 3 }, { 2, 1000 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        rows_case c = { .rows = shapes[si][0], .cols = shapes[si][1] };
        c.x = hrand(c.rows * c.cols, 800 + si, -1, 1);
        c.d0 = hrand(c.cols, 900 + si, -1, 1);
        double *ref = hd(c.cols);
        for (int64_t j = 0; j < c.cols; j++) {
            ref[j] = c.d0[j];
            for (int64_t r = 0; r < c.rows; r++) ref[j] += c.x[r * c.cols + j];
        }
        check_targets("bias_backward", run_bias_backward, &c, c.cols, ref, 1e-5, 1e-6, 1);
        free(ref);
        free(c.x);
        free(c.d0);
    }
}
END_TEST

static void ref_softmax_row(const float *x, int64_t cols, double *y) {
    double mx = x[0], s = 0;
    for (int64_t j = 1; j < cols; j++) mx = x[j] > mx ? x[j] : mx;
    for (int64_t j = 0; j < cols; j++) s += exp(x[j] - mx);
    for (int64_t j = 0; j < cols; j++) y[j] = exp(x[j] - mx) / s;
}

static void run_softmax(dev *d, const void *p, float *out) {
    const rows_case *c = p;
    int64_t n = c->rows * c->cols;
    float *x = dput(d, c->x, n), *y = dput_const(d, SENT, n);
    ck_assert_ok(OPS(d)->softmax_forward(d->be, c->rows, c->cols, x, y));
    dget(d, out, y, n);
    /* in place gives the same */
    ck_assert_ok(OPS(d)->softmax_forward(d->be, c->rows, c->cols, x, x));
    dget(d, out + n, x, n);
    /* backward: dx0 + y (dy - sum(dy y)), with y from the forward */
    float *dy = dput(d, c->dy, n), *dx = dput(d, c->d0, n);
    ck_assert_ok(OPS(d)->softmax_backward(d->be, c->rows, c->cols, y, dy, dx));
    dget(d, out + 2 * n, dx, n);
}

START_TEST(softmax_forward_backward) {
    for (int si = 0; si < N_SHAPES_2D; si++) {
        rows_case c = { .rows = k_shapes_2d[si][0], .cols = k_shapes_2d[si][1] };
        int64_t n = c.rows * c.cols;
        c.x = hrand(n, 1000 + si, -5, 5);
        /* a row of huge logits: only stable if the max is subtracted */
        if (c.rows > 1)
            for (int64_t j = 0; j < c.cols; j++) c.x[c.cols + j] = 1000.0f + (float)(j % 5);
        c.dy = hrand(n, 1100 + si, -1, 1);
        c.d0 = hrand(n, 1200 + si, -1, 1);
        double *ref = hd(3 * n);
        for (int64_t r = 0; r < c.rows; r++) {
            double *y = ref + r * c.cols;
            ref_softmax_row(c.x + r * c.cols, c.cols, y);
            memcpy(ref + n + r * c.cols, y, (size_t)c.cols * sizeof(double));
            double dot = 0;
            for (int64_t j = 0; j < c.cols; j++) dot += c.dy[r * c.cols + j] * y[j];
            for (int64_t j = 0; j < c.cols; j++)
                ref[2 * n + r * c.cols + j] = c.d0[r * c.cols + j] + y[j] * (c.dy[r * c.cols + j] - dot);
        }
        check_targets("softmax", run_softmax, &c, 3 * n, ref, 1e-6, 1e-5, 1);
        free(ref);
        free(c.x);
        free(c.dy);
        free(c.d0);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Layer normalisation                                                       */
/* ------------------------------------------------------------------------ */

#define LN_EPS 1e-5f

/* out: y | mean | rstd | dx | dgamma | dbeta */
static void run_layernorm(dev *d, const void *p, float *out) {
    const rows_case *c = p;
    int64_t R = c->rows, C = c->cols, n = R * C;
    float *x = dput(d, c->x, n), *g = dput(d, c->gamma, C), *b = dput(d, c->beta, C);
    float *y = dput_const(d, SENT, n), *mean = dput_const(d, SENT, R), *rstd = dput_const(d, SENT, R);
    ck_assert_ok(OPS(d)->layernorm_forward(d->be, R, C, x, g, b, LN_EPS, y, mean, rstd));
    dget(d, out, y, n);
    dget(d, out + n, mean, R);
    dget(d, out + n + R, rstd, R);
    float *dy = dput(d, c->dy, n), *dx = dput(d, c->d0, n);
    float *dg = dput(d, c->d0, C), *db = dput(d, c->d0 + C, C);
    float *ws = dput_const(d, SENT, 2 * R);
    ck_assert_ok(OPS(d)->layernorm_backward(d->be, R, C, x, g, mean, rstd, dy, dx, dg, db, ws));
    dget(d, out + n + 2 * R, dx, n);
    dget(d, out + 2 * n + 2 * R, dg, C);
    dget(d, out + 2 * n + 2 * R + C, db, C);
}

START_TEST(layernorm_forward_backward) {
    for (int si = 0; si < N_SHAPES_2D; si++) {
        rows_case c = { .rows = k_shapes_2d[si][0], .cols = k_shapes_2d[si][1] };
        int64_t R = c.rows, C = c.cols, n = R * C;
        c.x = hrand(n, 1300 + si, -2, 2);
        /* a row far from zero: a one-pass variance would cancel here */
        if (R > 1)
            for (int64_t j = 0; j < C; j++) c.x[C + j] = 300.0f + c.x[C + j] * 0.01f;
        c.gamma = hrand(C, 1400 + si, 0.5f, 1.5f);
        c.beta = hrand(C, 1500 + si, -0.5f, 0.5f);
        c.dy = hrand(n, 1600 + si, -1, 1);
        c.d0 = hrand(n > 2 * C ? n : 2 * C, 1700 + si, -1, 1);
        int64_t nout = 2 * n + 2 * R + 2 * C;
        double *ref = hd(nout);
        double *yr = ref, *mr = ref + n, *rr = ref + n + R, *dxr = ref + n + 2 * R;
        double *dgr = ref + 2 * n + 2 * R, *dbr = dgr + C;
        for (int64_t j = 0; j < C; j++) { dgr[j] = c.d0[j]; dbr[j] = c.d0[C + j]; }
        for (int64_t r = 0; r < R; r++) {
            const float *x = c.x + r * C, *dy = c.dy + r * C;
            double m = 0, v = 0;
            for (int64_t j = 0; j < C; j++) m += x[j];
            m /= C;
            for (int64_t j = 0; j < C; j++) v += (x[j] - m) * (x[j] - m);
            v /= C;
            double rs = 1.0 / sqrt(v + LN_EPS);
            mr[r] = m;
            rr[r] = rs;
            double sg = 0, sgx = 0;
            for (int64_t j = 0; j < C; j++) {
                double xh = (x[j] - m) * rs;
                yr[r * C + j] = xh * c.gamma[j] + c.beta[j];
                sg += dy[j] * c.gamma[j];
                sgx += dy[j] * c.gamma[j] * xh;
                dgr[j] += dy[j] * xh;
                dbr[j] += dy[j];
            }
            for (int64_t j = 0; j < C; j++) {
                double xh = (x[j] - m) * rs;
                dxr[r * C + j] = c.d0[r * C + j] + rs * (dy[j] * c.gamma[j] - sg / C - xh * sgx / C);
            }
        }
        /* C = 1: the row is its own mean, xhat = 0 and rstd = 1/sqrt(eps) = 316:
         * tolerances scale with rstd. */
        check_targets("layernorm", run_layernorm, &c, nout, ref, C == 1 ? 1e-3 : 1e-4, 1e-4, 1);
        free(ref);
        free(c.x);
        free(c.gamma);
        free(c.beta);
        free(c.dy);
        free(c.d0);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Embedding                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct emb_case {
    int64_t n, dim, vocab;
    int pad, with_mask;
    int32_t *ids;
    float *weight, *dout, *dw0;
} emb_case;

/* out: out | mask | dweight */
static void run_embedding(dev *d, const void *p, float *out) {
    const emb_case *c = p;
    int32_t *ids = dput_i32(d, c->ids, c->n);
    float *w = dput(d, c->weight, c->vocab * c->dim), *o = dput_const(d, SENT, c->n * c->dim);
    float *mask = c->with_mask ? dput_const(d, SENT, c->n) : NULL;
    ck_assert_ok(OPS(d)->embedding_forward(d->be, c->n, c->dim, ids, w, c->pad, o, mask));
    dget(d, out, o, c->n * c->dim);
    if (mask) dget(d, out + c->n * c->dim, mask, c->n);
    else for (int64_t i = 0; i < c->n; i++) out[c->n * c->dim + i] = SENT;
    float *dout = dput(d, c->dout, c->n * c->dim), *dw = dput(d, c->dw0, c->vocab * c->dim);
    ck_assert_ok(OPS(d)->embedding_backward(d->be, c->n, c->dim, ids, dout, c->pad, dw));
    dget(d, out + c->n * c->dim + c->n, dw, c->vocab * c->dim);
}

START_TEST(embedding_repeated_ids_and_pad) {
    static const int64_t cases[][3] = { { 1, 1, 1 }, { 7, 13, 5 }, { 1000, 300, 50 }, { 20000, 3, 4 } };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int variant = 0; variant < 3; variant++) { /* pad 0 + mask, no pad + mask, pad 1 no mask */
            emb_case c = { .n = cases[ci][0], .dim = cases[ci][1], .vocab = cases[ci][2] };
            c.pad = variant == 0 ? 0 : variant == 1 ? -1 : (c.vocab > 1 ? 1 : 0);
            c.with_mask = variant != 2;
            c.ids = malloc((size_t)c.n * sizeof(int32_t));
            ck_assert_ptr_nonnull(c.ids);
            uint64_t st = 1800 + ci * 3 + (uint64_t)variant;
            for (int64_t i = 0; i < c.n; i++) c.ids[i] = (int32_t)(tu_next(&st) % (uint64_t)c.vocab);
            c.weight = hrand(c.vocab * c.dim, 1900 + ci, -1, 1);
            c.dout = hrand(c.n * c.dim, 2000 + ci, -1, 1);
            c.dw0 = hrand(c.vocab * c.dim, 2100 + ci, -1, 1);
            int64_t nout = c.n * c.dim + c.n + c.vocab * c.dim;
            double *ref = hd(nout);
            double *dw = ref + c.n * c.dim + c.n;
            for (int64_t k = 0; k < c.vocab * c.dim; k++) dw[k] = c.dw0[k];
            for (int64_t i = 0; i < c.n; i++) {
                int32_t id = c.ids[i];
                int is_pad = c.pad >= 0 && id == c.pad;
                for (int64_t j = 0; j < c.dim; j++) {
                    ref[i * c.dim + j] = c.weight[id * c.dim + j];
                    if (!is_pad) dw[id * c.dim + j] += c.dout[i * c.dim + j];
                }
                ref[c.n * c.dim + i] = !c.with_mask ? SENT : is_pad ? 0.0 : 1.0;
            }
            char what[80];
            snprintf(what, sizeof what, "embedding n=%lld dim=%lld pad=%d", (long long)c.n,
                     (long long)c.dim, c.pad);
            /* dweight rows sum n / vocab float terms in place: allow their rounding */
            double atol = 1e-5 + 2e-8 * (double)c.n / (double)c.vocab;
            check_targets(what, run_embedding, &c, nout, ref, atol, 1e-6, 1);
            free(ref);
            free(c.ids);
            free(c.weight);
            free(c.dout);
            free(c.dw0);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Recurrent steps                                                           */
/* ------------------------------------------------------------------------ */

enum { RNN_HPREV = 1, RNN_CPREV = 2, RNN_MASK = 4, RNN_H2 = 8, RNN_DY = 16,
       RNN_NOGH = 32 /* LSTM: gh already added into xw, passed as NULL */ };

/* One LSTM or GRU step with every input, strides larger than needed, and the
 * forward's outputs (from the double reference) for the backward. */
typedef struct rnn_sc {
    int gru, B, H, G, flags;
    int64_t ld_xw, ld_hprev, ld_cprev, ld_mask, ld_gates, ld_c, ld_h, ld_h2, ld_dy, ld_dg, ld_dgh;
    float *xw, *gh, *hprev, *cprev, *mask;
    float *gates, *c, *h; /* forward results, inputs of the backward */
    float *dy, *dh_next0, *dc0;
} rnn_sc;

static double *to_double(const float *x, int64_t n) {
    if (!x) return NULL;
    double *d = hd(n);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static int sc_real(const rnn_sc *s, int b) {
    return !s->mask || s->mask[(int64_t)b * s->ld_mask] != 0.0f;
}

/* Double reference forward on arrays with the scenario's layouts; outputs
 * are written only where the kernel writes (callers prefill SENT). */
static void ref_rnn_forward(const rnn_sc *s, const double *xw, const double *gh, const double *hp,
                            const double *cp, double *gates, double *c, double *h) {
    int64_t H = s->H;
    for (int b = 0; b < s->B; b++) {
        const double *x = xw + b * s->ld_xw, *g = gh + b * s->G * H;
        double *gt = gates + b * s->ld_gates;
        for (int64_t j = 0; j < H; j++) {
            double hpv = hp ? hp[b * s->ld_hprev + j] : 0, cpv = cp ? cp[b * s->ld_cprev + j] : 0;
            if (!sc_real(s, b)) {
                h[b * s->ld_h + j] = hpv;
                if (c) c[b * s->ld_c + j] = cpv;
                continue;
            }
            if (!s->gru) {
                double i = ref_sigmoid(x[j] + g[j]), f = ref_sigmoid(x[H + j] + g[H + j]);
                double gg = tanh(x[2 * H + j] + g[2 * H + j]), o = ref_sigmoid(x[3 * H + j] + g[3 * H + j]);
                double cv = f * cpv + i * gg;
                gt[j] = i; gt[H + j] = f; gt[2 * H + j] = gg; gt[3 * H + j] = o;
                c[b * s->ld_c + j] = cv;
                h[b * s->ld_h + j] = o * tanh(cv);
            } else {
                double r = ref_sigmoid(x[j] + g[j]), z = ref_sigmoid(x[H + j] + g[H + j]);
                double n = tanh(x[2 * H + j] + r * g[2 * H + j]);
                gt[j] = r; gt[H + j] = z; gt[2 * H + j] = n; gt[3 * H + j] = g[2 * H + j];
                h[b * s->ld_h + j] = (1 - z) * n + z * hpv;
            }
        }
        if (!sc_real(s, b))
            for (int64_t k = 0; k < 4 * H; k++) gt[k] = 0;
    }
}

static void rnn_build(rnn_sc *s, int gru, int B, int H, int flags, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->gru = gru;
    s->B = B;
    s->H = H;
    s->G = gru ? 3 : 4;
    s->flags = flags;
    s->ld_xw = s->G * H + 3;
    s->ld_hprev = H + 1;
    s->ld_cprev = H + 2;
    s->ld_mask = 3; /* column 1 of a [B, 3] mask, as for step t = 1 of 3 */
    s->ld_gates = 4 * H + 1;
    s->ld_c = H + 3;
    s->ld_h = H + 2;
    s->ld_h2 = 2 * H;
    s->ld_dy = 2 * H + 1;
    s->ld_dg = s->G * H + 2;
    s->ld_dgh = 3 * H + 1;
    s->xw = hrand(B * s->ld_xw, seed, -2, 2);
    s->gh = hrand((int64_t)B * s->G * H, seed + 1, -1, 1);
    if ((flags & RNN_NOGH) && !gru)
        for (int64_t b = 0; b < B; b++)
            for (int64_t r = 0; r < 4 * H; r++) {
                s->xw[b * s->ld_xw + r] += s->gh[b * 4 * H + r];
                s->gh[b * 4 * H + r] = 0.0f; /* the reference adds it as 0 */
            }
    if (flags & RNN_HPREV) s->hprev = hrand(B * s->ld_hprev, seed + 2, -1, 1);
    if ((flags & RNN_CPREV) && !gru) s->cprev = hrand(B * s->ld_cprev, seed + 3, -2, 2);
    if (flags & RNN_MASK) {
        /* only column 1 matters; the others are 0, so reading the wrong
         * column would mark every row as padding */
        s->mask = hf(B * s->ld_mask);
        for (int64_t i = 0; i < B * s->ld_mask; i++) s->mask[i] = 0.0f;
        for (int b = 0; b < B; b++) s->mask[(int64_t)b * s->ld_mask + 1] = b % 3 == 1 ? 0.0f : 1.0f;
    }
    if (flags & RNN_DY) s->dy = hrand(B * s->ld_dy, seed + 4, -1, 1);
    s->dh_next0 = hrand((int64_t)B * H, seed + 5, -1, 1);
    s->dc0 = hrand((int64_t)B * H, seed + 6, -1, 1);

    double *xw = to_double(s->xw, B * s->ld_xw), *gh = to_double(s->gh, (int64_t)B * s->G * H);
    double *hp = to_double(s->hprev, B * s->ld_hprev), *cp = to_double(s->cprev, B * s->ld_cprev);
    double *gates = hd_const(B * s->ld_gates, SENT), *c = hd_const(B * s->ld_c, SENT);
    double *h = hd_const(B * s->ld_h, SENT);
    ref_rnn_forward(s, xw, gh, hp, cp, gates, gru ? NULL : c, h);
    s->gates = hf(B * s->ld_gates);
    s->c = hf(B * s->ld_c);
    s->h = hf(B * s->ld_h);
    for (int64_t i = 0; i < B * s->ld_gates; i++) s->gates[i] = (float)gates[i];
    for (int64_t i = 0; i < B * s->ld_c; i++) s->c[i] = (float)c[i];
    for (int64_t i = 0; i < B * s->ld_h; i++) s->h[i] = (float)h[i];
    free(xw); free(gh); free(hp); free(cp); free(gates); free(c); free(h);
}

static void rnn_free(rnn_sc *s) {
    free(s->xw); free(s->gh); free(s->hprev); free(s->cprev); free(s->mask);
    free(s->gates); free(s->c); free(s->h); free(s->dy); free(s->dh_next0); free(s->dc0);
}

/* Sizes of the forward output: gates | c (LSTM) | h | h2 */
static int64_t rnn_fwd_nout(const rnn_sc *s) {
    return s->B * (s->ld_gates + (s->gru ? 0 : s->ld_c) + s->ld_h + s->ld_h2);
}

static void run_rnn_forward(dev *d, const void *p, float *out) {
    const rnn_sc *s = p;
    int B = s->B, H = s->H;
    float *xw = dput(d, s->xw, B * s->ld_xw), *gh = dput(d, s->gh, (int64_t)B * s->G * H);
    float *hp = s->hprev ? dput(d, s->hprev, B * s->ld_hprev) : NULL;
    float *cp = s->cprev ? dput(d, s->cprev, B * s->ld_cprev) : NULL;
    float *mask = s->mask ? dput(d, s->mask, B * s->ld_mask) : NULL;
    float *gates = dput_const(d, SENT, B * s->ld_gates), *c = dput_const(d, SENT, B * s->ld_c);
    float *h = dput_const(d, SENT, B * s->ld_h), *h2 = dput_const(d, SENT, B * s->ld_h2);
    int use_h2 = s->flags & RNN_H2;
    if (!s->gru) {
        llm__lstm_step st = { .B = B, .H = H, .xw = xw, .ld_xw = s->ld_xw,
                              .gh = (s->flags & RNN_NOGH) ? NULL : gh, .h_prev = hp,
                              .ld_hprev = s->ld_hprev, .c_prev = cp, .ld_cprev = s->ld_cprev,
                              .mask = mask, .ld_mask = s->ld_mask, .gates = gates,
                              .ld_gates = s->ld_gates, .c = c, .ld_c = s->ld_c, .h = h,
                              .ld_h = s->ld_h, .h2 = use_h2 ? h2 : NULL, .ld_h2 = s->ld_h2 };
        ck_assert_ok(OPS(d)->lstm_step_forward(d->be, &st));
    } else {
        llm__gru_step st = { .B = B, .H = H, .xw = xw, .ld_xw = s->ld_xw, .gh = gh, .h_prev = hp,
                             .ld_hprev = s->ld_hprev, .mask = mask, .ld_mask = s->ld_mask,
                             .gates = gates, .ld_gates = s->ld_gates, .h = h, .ld_h = s->ld_h,
                             .h2 = use_h2 ? h2 : NULL, .ld_h2 = s->ld_h2 };
        ck_assert_ok(OPS(d)->gru_step_forward(d->be, &st));
    }
    float *o = out;
    dget(d, o, gates, B * s->ld_gates);
    o += B * s->ld_gates;
    if (!s->gru) { dget(d, o, c, B * s->ld_c); o += B * s->ld_c; }
    dget(d, o, h, B * s->ld_h);
    o += B * s->ld_h;
    dget(d, o, h2, B * s->ld_h2);
}

static void ref_rnn_forward_out(const rnn_sc *s, double *ref) {
    int64_t B = s->B, H = s->H;
    double *o = ref;
    for (int64_t i = 0; i < B * s->ld_gates; i++) *o++ = s->gates[i];
    if (!s->gru)
        for (int64_t i = 0; i < B * s->ld_c; i++) *o++ = s->c[i];
    for (int64_t i = 0; i < B * s->ld_h; i++) *o++ = s->h[i];
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < s->ld_h2; j++)
            *o++ = (s->flags & RNN_H2) && j < H ? s->h[b * s->ld_h + j] : SENT;
}

/* LSTM: dgates | dc | dh_next.  GRU: dxw | dgh | dh_next. */
static int64_t rnn_bwd_nout(const rnn_sc *s) {
    return s->B * (s->ld_dg + (s->gru ? s->ld_dgh : s->H) + s->H);
}

static void run_rnn_backward(dev *d, const void *p, float *out) {
    const rnn_sc *s = p;
    int B = s->B, H = s->H;
    float *gates = dput(d, s->gates, B * s->ld_gates);
    float *mask = s->mask ? dput(d, s->mask, B * s->ld_mask) : NULL;
    float *dy = s->dy ? dput(d, s->dy, B * s->ld_dy) : NULL;
    float *dh = dput(d, s->dh_next0, (int64_t)B * H);
    float *dg = dput_const(d, SENT, B * s->ld_dg);
    float *o = out;
    if (!s->gru) {
        float *c = dput(d, s->c, B * s->ld_c);
        float *cp = s->cprev ? dput(d, s->cprev, B * s->ld_cprev) : NULL;
        float *dc = dput(d, s->dc0, (int64_t)B * H);
        llm__lstm_step_grad st = { .B = B, .H = H, .gates = gates, .ld_gates = s->ld_gates, .c = c,
                                   .ld_c = s->ld_c, .c_prev = cp, .ld_cprev = s->ld_cprev,
                                   .mask = mask, .ld_mask = s->ld_mask, .dy = dy, .ld_dy = s->ld_dy,
                                   .dh_next = dh, .dc = dc, .dgates = dg, .ld_dgates = s->ld_dg };
        ck_assert_ok(OPS(d)->lstm_step_backward(d->be, &st));
        dget(d, o, dg, B * s->ld_dg);
        o += B * s->ld_dg;
        dget(d, o, dc, (int64_t)B * H);
        o += (int64_t)B * H;
    } else {
        float *hp = s->hprev ? dput(d, s->hprev, B * s->ld_hprev) : NULL;
        float *dgh = dput_const(d, SENT, B * s->ld_dgh);
        llm__gru_step_grad st = { .B = B, .H = H, .gates = gates, .ld_gates = s->ld_gates,
                                  .h_prev = hp, .ld_hprev = s->ld_hprev, .mask = mask,
                                  .ld_mask = s->ld_mask, .dy = dy, .ld_dy = s->ld_dy, .dh_next = dh,
                                  .dxw = dg, .ld_dxw = s->ld_dg, .dgh = dgh, .ld_dgh = s->ld_dgh };
        ck_assert_ok(OPS(d)->gru_step_backward(d->be, &st));
        dget(d, o, dg, B * s->ld_dg);
        o += B * s->ld_dg;
        dget(d, o, dgh, B * s->ld_dgh);
        o += B * s->ld_dgh;
    }
    dget(d, o, dh, (int64_t)B * H);
}

/* The backward formulas of backend.h, in double, from the float forward results. */
static void ref_rnn_backward(const rnn_sc *s, double *ref) {
    int64_t B = s->B, H = s->H;
    double *dg = ref, *second = ref + B * s->ld_dg;
    double *dh_out = second + B * (s->gru ? s->ld_dgh : H);
    for (int64_t i = 0; i < B * s->ld_dg; i++) dg[i] = SENT;
    if (s->gru)
        for (int64_t i = 0; i < B * s->ld_dgh; i++) second[i] = SENT;
    for (int64_t b = 0; b < B; b++) {
        double *dgb = dg + b * s->ld_dg;
        const float *gt = s->gates + b * s->ld_gates;
        for (int64_t j = 0; j < H; j++) {
            double dy = s->dy ? s->dy[b * s->ld_dy + j] : 0.0;
            double dh = s->dh_next0[b * H + j] + dy;
            if (!sc_real(s, (int)b)) {
                for (int64_t k = 0; k < s->G; k++) dgb[k * H + j] = 0;
                if (s->gru)
                    for (int64_t k = 0; k < 3; k++) second[b * s->ld_dgh + k * H + j] = 0;
                else
                    second[b * H + j] = s->dc0[b * H + j];
                dh_out[b * H + j] = dh;
                continue;
            }
            if (!s->gru) {
                double i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];
                double tc = tanh((double)s->c[b * s->ld_c + j]);
                double cp = s->cprev ? s->cprev[b * s->ld_cprev + j] : 0.0;
                double dct = s->dc0[b * H + j] + dh * o * (1 - tc * tc);
                dgb[j] = dct * g * i * (1 - i);
                dgb[H + j] = dct * cp * f * (1 - f);
                dgb[2 * H + j] = dct * i * (1 - g * g);
                dgb[3 * H + j] = dh * tc * o * (1 - o);
                second[b * H + j] = dct * f;
                dh_out[b * H + j] = 0;
            } else {
                double r = gt[j], z = gt[H + j], n = gt[2 * H + j], ghn = gt[3 * H + j];
                double hp = s->hprev ? s->hprev[b * s->ld_hprev + j] : 0.0;
                double dz = dh * (hp - n), dan = dh * (1 - z) * (1 - n * n);
                double dar = dan * ghn * r * (1 - r), daz = dz * z * (1 - z);
                double *dghb = second + b * s->ld_dgh;
                dgb[j] = dar; dgb[H + j] = daz; dgb[2 * H + j] = dan;
                dghb[j] = dar; dghb[H + j] = daz; dghb[2 * H + j] = dan * r;
                dh_out[b * H + j] = dh * z;
            }
        }
    }
}

static const int k_rnn_flags[] = {
    0,                                                  /* zero state, no mask */
    RNN_HPREV | RNN_CPREV,
    RNN_HPREV | RNN_CPREV | RNN_MASK | RNN_H2 | RNN_DY,
    RNN_MASK | RNN_DY,                                  /* NULL prev states with padding */
    RNN_HPREV | RNN_MASK | RNN_H2,                      /* h_prev only (c_prev NULL) */
    RNN_HPREV | RNN_CPREV | RNN_MASK | RNN_NOGH,        /* LSTM: the recurrent product in xw */
};

static void rnn_parity(int gru) {
    static const int shapes[][2] = { { 1, 1 }, { 5, 7 }, { 64, 256 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t fi = 0; fi < sizeof k_rnn_flags / sizeof k_rnn_flags[0]; fi++) {
            rnn_sc s;
            rnn_build(&s, gru, shapes[si][0], shapes[si][1], k_rnn_flags[fi],
                      3000 + si * 10 + fi + (uint64_t)gru * 100);
            char what[96];
            snprintf(what, sizeof what, "%s forward B=%d H=%d flags=%d", gru ? "gru" : "lstm",
                     s.B, s.H, s.flags);
            int64_t nf = rnn_fwd_nout(&s), nb = rnn_bwd_nout(&s);
            double *ref = hd(nf > nb ? nf : nb);
            ref_rnn_forward_out(&s, ref);
            check_targets(what, run_rnn_forward, &s, nf, ref, 2e-6, 1e-5, 1);
            snprintf(what, sizeof what, "%s backward B=%d H=%d flags=%d", gru ? "gru" : "lstm",
                     s.B, s.H, s.flags);
            ref_rnn_backward(&s, ref);
            check_targets(what, run_rnn_backward, &s, nb, ref, 1e-5, 1e-4, 1);
            free(ref);
            rnn_free(&s);
        }
}

START_TEST(lstm_step_parity) { rnn_parity(0); }
END_TEST

/* ---- a whole LSTM recurrence: the sequence slots (CUDA's persistent
 * kernel, the CPU's row blocks) or, where they decline, the per-step loop of
 * src/nn/layers/recurrent.c; against a double-precision recurrence (its GEMMs,
 * like every GEMM here, agree across thread counts to rounding only) ---- */

typedef struct lseq {
    int B, T, H, reverse, masked, with_dy;
    float *W, *xw, *mask, *dy, *dh0;
    float *gates, *c; /* the reference forward's, as floats, for backward */
} lseq;

static void lseq_build(lseq *q, int B, int T, int H, int reverse, int masked, int with_dy, uint64_t seed) {
    memset(q, 0, sizeof *q);
    q->B = B, q->T = T, q->H = H, q->reverse = reverse, q->masked = masked, q->with_dy = with_dy;
    q->W = hrand((int64_t)4 * H * H, seed, -0.4f, 0.4f);
    q->xw = hrand((int64_t)B * T * 4 * H, seed + 1, -1.5f, 1.5f);
    q->dh0 = hrand((int64_t)B * H, seed + 2, -1.0f, 1.0f);
    if (with_dy) q->dy = hrand((int64_t)B * T * H, seed + 3, -1.0f, 1.0f);
    if (masked) {
        /* row b: pre-padded by b % (T + 1) steps (all padding when b % (T + 1) == T),
         * and every fifth row with a hole in the middle */
        q->mask = hf((int64_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                q->mask[b * T + t] = t >= b % (T + 1) && !(b % 5 == 4 && t == T / 2) ? 1.0f : 0.0f;
    }
}

static void lseq_free(lseq *q) {
    free(q->W); free(q->xw); free(q->mask); free(q->dy); free(q->dh0); free(q->gates); free(q->c);
}

static int lseq_real(const lseq *q, int b, int t) { return !q->mask || q->mask[b * q->T + t] != 0.0f; }

/* gates | c | h | hprev, in double */
static void lseq_ref_forward(lseq *q, double *ref) {
    const int B = q->B, T = q->T, H = q->H;
    const int64_t BT = (int64_t)B * T;
    double *gates = ref, *c = gates + BT * 4 * H, *h = c + BT * H, *hprev = h + BT * H;
    for (int64_t i = 0; i < BT * H; i++) hprev[i] = 0.0;
    double *hp = hd(H), *cp = hd(H);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < H; j++) hp[j] = cp[j] = 0.0;
        for (int step = 0; step < T; step++) {
            int t = q->reverse ? T - 1 - step : step, tn = q->reverse ? t - 1 : t + 1;
            int64_t bt = (int64_t)b * T + t;
            double *g = gates + bt * 4 * H;
            if (!lseq_real(q, b, t)) {
                for (int j = 0; j < 4 * H; j++) g[j] = 0.0;
            } else {
                for (int r = 0; r < 4 * H; r++) {
                    double a = q->xw[bt * 4 * H + r];
                    for (int k = 0; k < H; k++) a += (double)q->W[(int64_t)r * H + k] * hp[k];
                    g[r] = r >= 2 * H && r < 3 * H ? tanh(a) : ref_sigmoid(a);
                }
                for (int j = 0; j < H; j++) {
                    cp[j] = g[H + j] * cp[j] + g[j] * g[2 * H + j];
                    hp[j] = g[3 * H + j] * tanh(cp[j]);
                }
            }
            for (int j = 0; j < H; j++) {
                c[bt * H + j] = cp[j];
                h[bt * H + j] = hp[j];
                if (step < T - 1) hprev[((int64_t)b * T + tn) * H + j] = hp[j];
            }
        }
    }
    free(hp);
    free(cp);
    /* the backward check starts from these, rounded to float */
    q->gates = hf(BT * 4 * H);
    q->c = hf(BT * H);
    for (int64_t i = 0; i < BT * 4 * H; i++) q->gates[i] = (float)gates[i];
    for (int64_t i = 0; i < BT * H; i++) q->c[i] = (float)c[i];
}

/* The sequence slots must take these sizes: CUDA all of them, the CPU from
 * 8 rows (below that its per-step path splits the GEMMs instead). */
static int lseq_slot_expected(dev *d, int B) {
    llm_backend_kind kind = LLM_BACKEND_CPU;
    llm_backend_kind_of(d->be, &kind);
    return kind == LLM_BACKEND_CUDA || B >= 8;
}

static void run_lseq_forward(dev *d, const void *p, float *out) {
    const lseq *q = p;
    const int B = q->B, T = q->T, H = q->H, GH = 4 * H;
    const int64_t BT = (int64_t)B * T;
    float *W = dput(d, q->W, (int64_t)GH * H), *xw = dput(d, q->xw, BT * GH);
    float *mask = q->mask ? dput(d, q->mask, BT) : NULL;
    float *gates = dput_const(d, SENT, BT * GH), *c = dput_const(d, SENT, BT * H);
    float *h = dput_const(d, SENT, BT * H), *hprev = dput(d, NULL, BT * H);
    int done = 0;
    if (OPS(d)->lstm_sequence_forward) {
        llm__lstm_sequence a = { .B = B, .T = T, .H = H, .reverse = q->reverse, .W_hh = W, .mask = mask,
                                 .xw = xw, .gates = gates, .c = c, .h = h, .hprev = hprev,
                                 .scratch = dalloc(d, (size_t)GH * H * 4) };
        ck_assert_ok(OPS(d)->lstm_sequence_forward(d->be, &a, &done));
    }
    if (lseq_slot_expected(d, B)) ck_assert_msg(done, "the sequence slot declined B=%d H=%d", B, H);
    float *gh = done ? NULL : dalloc(d, (size_t)B * GH * 4);
    for (int s = 0; !done && s < T; s++) {
        int t = q->reverse ? T - 1 - s : s, tp = q->reverse ? t + 1 : t - 1, tn = q->reverse ? t - 1 : t + 1;
        ck_assert_ok(OPS(d)->sgemm(d->be, 0, 1, B, GH, H, 1.0f, hprev + (int64_t)t * H, T * H, W, H, 0.0f, gh, GH));
        llm__lstm_step a = {
            .B = B, .H = H, .xw = xw + (int64_t)t * GH, .ld_xw = (int64_t)T * GH, .gh = gh,
            .h_prev = s ? h + (int64_t)tp * H : NULL, .ld_hprev = (int64_t)T * H,
            .c_prev = s ? c + (int64_t)tp * H : NULL, .ld_cprev = (int64_t)T * H,
            .mask = mask ? mask + t : NULL, .ld_mask = T,
            .gates = gates + (int64_t)t * GH, .ld_gates = (int64_t)T * GH,
            .c = c + (int64_t)t * H, .ld_c = (int64_t)T * H, .h = h + (int64_t)t * H, .ld_h = (int64_t)T * H,
            .h2 = s < T - 1 ? hprev + (int64_t)tn * H : NULL, .ld_h2 = (int64_t)T * H,
        };
        ck_assert_ok(OPS(d)->lstm_step_forward(d->be, &a));
    }
    dget(d, out, gates, BT * GH);
    dget(d, out + BT * GH, c, BT * H);
    dget(d, out + BT * (GH + H), h, BT * H);
    dget(d, out + BT * (GH + 2 * H), hprev, BT * H);
}

/* dgates, in double, from the float forward */
static void lseq_ref_backward(const lseq *q, double *ref) {
    const int B = q->B, T = q->T, H = q->H;
    double *dh = hd(H), *dc = hd(H), *dhn = hd(H);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < H; j++) dh[j] = q->dh0[b * H + j], dc[j] = 0.0;
        for (int step = T - 1; step >= 0; step--) {
            int t = q->reverse ? T - 1 - step : step, tp = q->reverse ? t + 1 : t - 1;
            int64_t bt = (int64_t)b * T + t;
            double *dg = ref + bt * 4 * H;
            const float *g = q->gates + bt * 4 * H;
            for (int j = 0; j < H; j++) {
                double dhj = dh[j] + (q->dy ? q->dy[bt * H + j] : 0.0);
                if (!lseq_real(q, b, t)) {
                    dg[j] = dg[H + j] = dg[2 * H + j] = dg[3 * H + j] = 0.0;
                    dhn[j] = dhj;
                    continue;
                }
                double i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
                double tc = tanh((double)q->c[bt * H + j]);
                double cp = step ? q->c[((int64_t)b * T + tp) * H + j] : 0.0;
                double dct = dc[j] + dhj * o * (1 - tc * tc);
                dc[j] = dct * f;
                dg[j] = dct * gg * i * (1 - i);
                dg[H + j] = dct * cp * f * (1 - f);
                dg[2 * H + j] = dct * i * (1 - gg * gg);
                dg[3 * H + j] = dhj * tc * o * (1 - o);
                dhn[j] = 0.0;
            }
            for (int k = 0; k < H; k++) {
                double a = dhn[k];
                for (int r = 0; r < 4 * H; r++) a += dg[r] * q->W[(int64_t)r * H + k];
                dh[k] = a;
            }
        }
    }
    free(dh);
    free(dc);
    free(dhn);
}

static void run_lseq_backward(dev *d, const void *p, float *out) {
    const lseq *q = p;
    const int B = q->B, T = q->T, H = q->H, GH = 4 * H;
    const int64_t BT = (int64_t)B * T;
    float *W = dput(d, q->W, (int64_t)GH * H), *mask = q->mask ? dput(d, q->mask, BT) : NULL;
    float *gates = dput(d, q->gates, BT * GH), *c = dput(d, q->c, BT * H);
    float *dy = q->dy ? dput(d, q->dy, BT * H) : NULL, *dh = dput(d, q->dh0, (int64_t)B * H);
    float *dc = dput(d, NULL, (int64_t)B * H), *dg = dput_const(d, SENT, BT * GH);
    int done = 0, dbias_added = 0;
    /* the bias gradient a backend may add on the way: 0.25 + column sums */
    float *dbias = dput_const(d, 0.25f, GH), *dbias_rows = dput(d, NULL, (int64_t)B * GH);
    if (OPS(d)->lstm_sequence_backward) {
        llm__lstm_sequence a = { .B = B, .T = T, .H = H, .reverse = q->reverse, .W_hh = W, .mask = mask,
                                 .gates = gates, .c = c, .dy = dy, .dh = dh, .dc = dc, .dgates = dg,
                                 .dbias = dbias, .dbias_rows = dbias_rows, .dbias_added = &dbias_added };
        ck_assert_ok(OPS(d)->lstm_sequence_backward(d->be, &a, &done));
    }
    ck_assert_msg(done || !dbias_added, "bias sums reported added by a slot that declined");
    if (lseq_slot_expected(d, B)) ck_assert_msg(done, "the sequence slot declined B=%d H=%d", B, H);
    for (int s = T - 1; !done && s >= 0; s--) {
        int t = q->reverse ? T - 1 - s : s, tp = q->reverse ? t + 1 : t - 1;
        llm__lstm_step_grad a = {
            .B = B, .H = H, .gates = gates + (int64_t)t * GH, .ld_gates = (int64_t)T * GH,
            .c = c + (int64_t)t * H, .ld_c = (int64_t)T * H,
            .c_prev = s ? c + (int64_t)tp * H : NULL, .ld_cprev = (int64_t)T * H,
            .mask = mask ? mask + t : NULL, .ld_mask = T,
            .dy = dy ? dy + (int64_t)t * H : NULL, .ld_dy = (int64_t)T * H,
            .dh_next = dh, .dc = dc, .dgates = dg + (int64_t)t * GH, .ld_dgates = (int64_t)T * GH,
        };
        ck_assert_ok(OPS(d)->lstm_step_backward(d->be, &a));
        if (s) ck_assert_ok(OPS(d)->sgemm(d->be, 0, 0, B, H, GH, 1.0f, dg + (int64_t)t * GH, T * GH, W, H, 1.0f, dh, H));
    }
    dget(d, out, dg, BT * GH);
    /* added: 0.25 + the column sums of the dgates just returned (summed
     * in another order: to float rounding); else dbias untouched */
    float *db = malloc((size_t)GH * sizeof(float));
    ck_assert_ptr_nonnull(db);
    dget(d, db, dbias, GH);
    for (int j = 0; j < GH; j++) {
        double want = 0.25, mag = 0.25;
        for (int64_t r = 0; dbias_added && r < BT; r++) { want += out[r * GH + j]; mag += fabs(out[r * GH + j]); }
        ck_assert_msg(fabs(db[j] - want) <= 1e-6 * mag + 1e-7, "bias sum %d: %g, want %g (added %d, B=%d T=%d H=%d)",
                      j, db[j], want, dbias_added, B, T, H);
    }
    free(db);
}

START_TEST(lstm_sequence_matches_recurrence) {
    /* {B, T, H}: one of each; a batch over two row groups with H not a
     * multiple of the kernel's 8 units; the spam model's H = 128; on the
     * CPU, H = 20 takes OpenBLAS, the others the recurrent product, here
     * with a last block of 3 rows and three column panels */
    static const int shapes[][3] = { { 1, 1, 1 }, { 37, 6, 20 }, { 70, 5, 128 }, { 11, 4, 48 } };
    /* and the CPU's kernels of each instruction set: AVX-512 where the CPU
     * has it, AVX2, the baseline (limit 2, 1, 0) */
    for (int limit = 2; limit >= 0; limit--)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int variant = 0; variant < 4; variant++) {
                llm__cpu_isa_limit = limit;
                int reverse = variant & 1, masked = variant >> 1, with_dy = variant != 1;
                lseq q;
                lseq_build(&q, shapes[si][0], shapes[si][1], shapes[si][2], reverse, masked, with_dy,
                           7100 + 10 * si + (uint64_t)variant);
                const int64_t BT = (int64_t)q.B * q.T, nf = BT * 7 * q.H, nb = BT * 4 * q.H;
                /* the CPU's own recurrent products (H a multiple of 16 up to
                 * 256, 8 rows or more) sum in a fixed order whatever the row
                 * blocks: 1 and 2 threads must give the same bits */
                const int same_bits = q.B >= 8 && q.H % 16 == 0 && q.H <= 256;
                double *ref = hd(nf);
                lseq_ref_forward(&q, ref);
                char what[128];
                snprintf(what, sizeof what, "lstm sequence forward B=%d T=%d H=%d reverse=%d masked=%d isa limit %d",
                         q.B, q.T, q.H, reverse, masked, limit);
                check_targets(what, run_lseq_forward, &q, nf, ref, 1e-5, 1e-4, same_bits);
                lseq_ref_backward(&q, ref);
                snprintf(what, sizeof what,
                         "lstm sequence backward B=%d T=%d H=%d reverse=%d masked=%d dy=%d isa limit %d", q.B, q.T,
                         q.H, reverse, masked, with_dy, limit);
                check_targets(what, run_lseq_backward, &q, nb, ref, 1e-5, 1e-4, same_bits);
                free(ref);
                lseq_free(&q);
            }
    llm__cpu_isa_limit = 2;
}
END_TEST

START_TEST(gru_step_parity) { rnn_parity(1); }
END_TEST

/* L = sum(wh * h) + sum(wc * c) of the double reference forward, where
 * wh = dh_next + dy and wc = dc are the backward's incoming gradients. */
static double rnn_loss(const rnn_sc *s, const double *xw, const double *gh, const double *hp,
                       const double *cp) {
    int64_t B = s->B, H = s->H;
    double *gates = hd(B * s->ld_gates), *c = hd(B * s->ld_c), *h = hd(B * s->ld_h);
    ref_rnn_forward(s, xw, gh, hp, cp, gates, s->gru ? NULL : c, h);
    double L = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < H; j++) {
            double wh = s->dh_next0[b * H + j] + (s->dy ? s->dy[b * s->ld_dy + j] : 0.0);
            L += wh * h[b * s->ld_h + j];
            if (!s->gru) L += s->dc0[b * H + j] * c[b * s->ld_c + j];
        }
    free(gates); free(c); free(h);
    return L;
}

/* Central difference of rnn_loss in element k of arr (one of the inputs). */
static double rnn_fd(const rnn_sc *s, double *xw, double *gh, double *hp, double *cp, double *arr,
                     int64_t k) {
    const double h = 1e-6;
    double keep = arr[k];
    arr[k] = keep + h;
    double lp = rnn_loss(s, xw, gh, hp, cp);
    arr[k] = keep - h;
    double lm = rnn_loss(s, xw, gh, hp, cp);
    arr[k] = keep;
    return (lp - lm) / (2 * h);
}

/* The backward kernel against finite differences of the forward: checks the
 * formulas themselves, including masking, not only their transcription. */
static void rnn_gradcheck(int gru) {
    static const int flag_sets[] = { RNN_HPREV | RNN_CPREV | RNN_MASK | RNN_DY,
                                     RNN_HPREV | RNN_CPREV };
    for (size_t fi = 0; fi < sizeof flag_sets / sizeof flag_sets[0]; fi++) {
        rnn_sc s;
        rnn_build(&s, gru, 5, 4, flag_sets[fi], 4000 + fi + (uint64_t)gru * 10);
        int64_t B = s.B, H = s.H;
        float *out = hf(rnn_bwd_nout(&s));
        run_first(run_rnn_backward, &s, out);
        const float *kdx = out; /* dgates (LSTM) or dxw (GRU), ld_dg */
        const float *ksecond = out + B * s.ld_dg;
        const float *kdh = ksecond + B * (gru ? s.ld_dgh : H);
        double *xw = to_double(s.xw, B * s.ld_xw), *gh = to_double(s.gh, B * s.G * H);
        double *hp = to_double(s.hprev, B * s.ld_hprev);
        double *cp = gru ? NULL : to_double(s.cprev, B * s.ld_cprev);
        const double atol = 5e-5, rtol = 5e-4;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t k = 0; k < s.G * H; k++) {
                double fd = rnn_fd(&s, xw, gh, hp, cp, xw, b * s.ld_xw + k);
                double got = kdx[b * s.ld_dg + k];
                ck_assert_msg(fabs(got - fd) <= atol + rtol * fabs(fd),
                              "%s d/dxw[%lld,%lld]: kernel %.8g, finite difference %.8g",
                              gru ? "gru" : "lstm", (long long)b, (long long)k, got, fd);
                if (gru) {
                    double fdg = rnn_fd(&s, xw, gh, hp, cp, gh, b * s.G * H + k);
                    double gotg = ksecond[b * s.ld_dgh + k];
                    ck_assert_msg(fabs(gotg - fdg) <= atol + rtol * fabs(fdg),
                                  "gru d/dgh[%lld,%lld]: kernel %.8g, finite difference %.8g",
                                  (long long)b, (long long)k, gotg, fdg);
                }
            }
            for (int64_t j = 0; j < H; j++) {
                /* with gh held fixed, dL/dh_prev is exactly the direct part */
                double fdh = rnn_fd(&s, xw, gh, hp, cp, hp, b * s.ld_hprev + j);
                ck_assert_msg(fabs(kdh[b * H + j] - fdh) <= atol + rtol * fabs(fdh),
                              "%s dh_next[%lld,%lld]: kernel %.8g, finite difference %.8g",
                              gru ? "gru" : "lstm", (long long)b, (long long)j,
                              (double)kdh[b * H + j], fdh);
                if (!gru) {
                    double fdc = rnn_fd(&s, xw, gh, hp, cp, cp, b * s.ld_cprev + j);
                    ck_assert_msg(fabs(ksecond[b * H + j] - fdc) <= atol + rtol * fabs(fdc),
                                  "lstm dc[%lld,%lld]: kernel %.8g, finite difference %.8g",
                                  (long long)b, (long long)j, (double)ksecond[b * H + j], fdc);
                }
            }
        }
        free(xw); free(gh); free(hp); free(cp); free(out);
        rnn_free(&s);
    }
}

START_TEST(lstm_backward_matches_finite_differences) { rnn_gradcheck(0); }
END_TEST

START_TEST(gru_backward_matches_finite_differences) { rnn_gradcheck(1); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Pooling over time                                                         */
/* ------------------------------------------------------------------------ */

typedef struct pool_case {
    int mode;
    int64_t B, T, F;
    float *x, *mask, *dy, *dx0;
    int32_t *argmax; /* reference argmax, input of the max backward */
} pool_case;

/* out: y | argmax (as float, MAX only) | dx */
static void run_pool(dev *d, const void *p, float *out) {
    const pool_case *c = p;
    int64_t B = c->B, T = c->T, F = c->F;
    float *x = dput(d, c->x, B * T * F), *mask = c->mask ? dput(d, c->mask, B * T) : NULL;
    float *y = dput_const(d, SENT, B * F);
    int32_t *am = NULL;
    if (c->mode == LLM__POOL_MAX) {
        am = dalloc(d, (size_t)(B * F) * sizeof(int32_t));
        ck_assert_ok(OPS(d)->fill_i32(d->be, B * F, 12345, am));
    }
    ck_assert_ok(OPS(d)->pool_forward(d->be, c->mode, B, T, F, x, mask, y, am));
    dget(d, out, y, B * F);
    if (am) {
        int32_t *h = malloc((size_t)(B * F) * sizeof(int32_t));
        ck_assert_ptr_nonnull(h);
        dget_i32(d, h, am, B * F);
        for (int64_t i = 0; i < B * F; i++) out[B * F + i] = (float)h[i];
        free(h);
    } else {
        for (int64_t i = 0; i < B * F; i++) out[B * F + i] = 0.0f;
    }
    float *dy = dput(d, c->dy, B * F), *dx = dput(d, c->dx0, B * T * F);
    int32_t *am_ref = c->mode == LLM__POOL_MAX ? dput_i32(d, c->argmax, B * F) : NULL;
    ck_assert_ok(OPS(d)->pool_backward(d->be, c->mode, B, T, F, mask, am_ref, dy, dx));
    dget(d, out + 2 * B * F, dx, B * T * F);
}

START_TEST(pool_avg_max_masked) {
    static const int64_t shapes[][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 4, 1, 13 }, { 64, 50, 100 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int mode = 0; mode < 2; mode++)
            for (int masked = 0; masked < 2; masked++) {
                pool_case c = { .mode = mode, .B = shapes[si][0], .T = shapes[si][1], .F = shapes[si][2] };
                int64_t B = c.B, T = c.T, F = c.F;
                c.x = hrand(B * T * F, 5000 + si, -3, 3);
                if (masked) {
                    /* row 0 real only at t = 0 and t = T-1, row 1 fully padded (when
                     * B > 1), others random */
                    c.mask = hf(B * T);
                    uint64_t st = 5100 + si;
                    for (int64_t b = 0; b < B; b++)
                        for (int64_t t = 0; t < T; t++) {
                            float m = (tu_next(&st) >> 63) ? 1.0f : 0.0f;
                            if (b == 0) m = (t == 0 || t == T - 1) ? 1.0f : 0.0f;
                            if (b == 1) m = 0.0f;
                            c.mask[b * T + t] = m;
                        }
                }
                c.dy = hrand(B * F, 5200 + si, -1, 1);
                c.dx0 = hrand(B * T * F, 5300 + si, -1, 1);
                c.argmax = malloc((size_t)(B * F) * sizeof(int32_t));
                ck_assert_ptr_nonnull(c.argmax);
                int64_t nout = 2 * B * F + B * T * F;
                double *ref = hd(nout);
                double *dxr = ref + 2 * B * F;
                for (int64_t i = 0; i < B * T * F; i++) dxr[i] = c.dx0[i];
                for (int64_t b = 0; b < B; b++) {
                    int64_t cnt = 0;
                    for (int64_t t = 0; t < T; t++) cnt += !c.mask || c.mask[b * T + t] != 0.0f;
                    for (int64_t f = 0; f < F; f++) {
                        double s = 0, best = 0;
                        int32_t arg = -1;
                        for (int64_t t = 0; t < T; t++) {
                            if (c.mask && c.mask[b * T + t] == 0.0f) continue;
                            double v = c.x[(b * T + t) * F + f];
                            s += v;
                            if (arg < 0 || v > best) { best = v; arg = (int32_t)t; }
                        }
                        c.argmax[b * F + f] = arg;
                        double dyv = c.dy[b * F + f];
                        if (mode == LLM__POOL_AVG) {
                            ref[b * F + f] = cnt ? s / cnt : 0.0;
                            ref[B * F + b * F + f] = 0.0;
                            for (int64_t t = 0; t < T; t++)
                                if (cnt && (!c.mask || c.mask[b * T + t] != 0.0f))
                                    dxr[(b * T + t) * F + f] += dyv / cnt;
                        } else {
                            ref[b * F + f] = arg >= 0 ? best : 0.0;
                            ref[B * F + b * F + f] = arg;
                            if (arg >= 0) dxr[(b * T + arg) * F + f] += dyv;
                        }
                    }
                }
                char what[96];
                snprintf(what, sizeof what, "pool %s B=%lld T=%lld F=%lld mask=%d",
                         mode ? "max" : "avg", (long long)B, (long long)T, (long long)F, masked);
                check_targets(what, run_pool, &c, nout, ref, 1e-6, 1e-5, 1);
                free(ref);
                free(c.x);
                free(c.mask);
                free(c.dy);
                free(c.dx0);
                free(c.argmax);
            }
}
END_TEST

/* Ties go to the earliest real step, on every backend, so argmax (and where
 * the gradient lands) does not depend on the implementation. */
START_TEST(pool_max_ties_pick_first_real_step) {
    const int64_t B = 2, T = 4, F = 3;
    float x[24], mask[8] = { 1, 1, 1, 1, 0, 1, 1, 1 };
    for (int i = 0; i < 24; i++) x[i] = 0.5f;
    for (int ti = 0; ti < N_TARGETS; ti++) {
        if (!g_target_ok[ti]) continue;
        dev d;
        dev_open(&d, ti);
        float *xd = dput(&d, x, 24), *md = dput(&d, mask, 8), *y = dput(&d, NULL, B * F);
        int32_t *am = dalloc(&d, (size_t)(B * F) * sizeof(int32_t)), amh[6];
        ck_assert_ok(OPS(&d)->pool_forward(d.be, LLM__POOL_MAX, B, T, F, xd, md, y, am));
        dget_i32(&d, amh, am, B * F);
        for (int i = 0; i < 6; i++)
            ck_assert_msg(amh[i] == (i < 3 ? 0 : 1), "[%s] tie argmax[%d] = %d", k_targets[ti].name,
                          i, amh[i]);
        dev_close(&d);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Dropout                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct drop_case {
    int64_t n;
    float rate;
    uint64_t seed, counter;
    float *x, *dy, *dx0;
} drop_case;

static int ref_keep(uint64_t seed, uint64_t counter, int64_t i, float rate) {
    return llm__rng_uniform(seed, counter + (uint64_t)i) >= rate;
}

/* out: forward y | backward dx0 + dy * mask / (1 - rate) */
static void run_dropout(dev *d, const void *p, float *out) {
    const drop_case *c = p;
    float *x = dput(d, c->x, c->n), *y = dput_const(d, SENT, c->n);
    ck_assert_ok(OPS(d)->dropout(d->be, c->n, c->rate, c->seed, c->counter, x, y, 0));
    dget(d, out, y, c->n);
    float *dy = dput(d, c->dy, c->n), *dx = dput(d, c->dx0, c->n);
    ck_assert_ok(OPS(d)->dropout(d->be, c->n, c->rate, c->seed, c->counter, dy, dx, 1));
    dget(d, out + c->n, dx, c->n);
}

START_TEST(dropout_matches_counter_rng) {
    static const float rates[] = { 0.0f, 0.3f, 0.9f };
    for (int si = 0; si < N_SIZES_1D; si++)
        for (size_t ri = 0; ri < sizeof rates / sizeof rates[0]; ri++) {
            drop_case c = { .n = k_sizes_1d[si], .rate = rates[ri], .seed = 42 + (uint64_t)si,
                            .counter = 1000 + ri * 77 };
            c.x = hrand(c.n, 6000 + si, 0.5f, 1.5f);
            c.dy = hrand(c.n, 6100 + si, -1, 1);
            c.dx0 = hrand(c.n, 6200 + si, -1, 1);
            double *ref = hd(2 * c.n);
            for (int64_t i = 0; i < c.n; i++) {
                int k = ref_keep(c.seed, c.counter, i, c.rate);
                ref[i] = k ? c.x[i] / (1.0 - c.rate) : 0.0;
                ref[c.n + i] = c.dx0[i] + (k ? c.dy[i] / (1.0 - c.rate) : 0.0);
            }
            check_targets("dropout", run_dropout, &c, 2 * c.n, ref, 1e-7, 1e-6, 1);
            free(ref);
            free(c.x);
            free(c.dy);
            free(c.dx0);
        }
}
END_TEST

static void dropout_mask(dev *d, int64_t n, float rate, uint64_t seed, uint64_t counter,
                         const float *x_dev, float *y_dev, unsigned char *mask) {
    float *y = hf(n);
    ck_assert_ok(OPS(d)->dropout(d->be, n, rate, seed, counter, x_dev, y_dev, 0));
    dget(d, y, y_dev, n);
    for (int64_t i = 0; i < n; i++) mask[i] = y[i] != 0.0f;
    free(y);
}

START_TEST(dropout_statistics_and_reuse) {
    const int64_t n = 100000;
    const float rate = 0.3f;
    dev d;
    dev_open(&d, N_TARGETS > 1 && g_target_ok[1] ? 1 : 0);
    float *ones = dput_const(&d, 1.0f, n), *y = dput(&d, NULL, n);
    unsigned char *m1 = malloc((size_t)n), *m2 = malloc((size_t)n), *m3 = malloc((size_t)n);
    ck_assert(m1 && m2 && m3);

    dropout_mask(&d, n, rate, 7, 0, ones, y, m1);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += m1[i];
    /* binomial: sd of the fraction is sqrt(0.21 / 1e5) = 0.0014; 0.01 is 7 sd */
    double frac = (double)kept / (double)n;
    ck_assert_msg(fabs(frac - (1.0 - rate)) < 0.01, "keep fraction %.4f, want %.2f", frac, 1.0 - rate);

    dropout_mask(&d, n, rate, 7, 0, ones, y, m2); /* same seed and counter: same mask */
    ck_assert_mem_eq(m1, m2, (size_t)n);

    dropout_mask(&d, n, rate, 7, (uint64_t)n, ones, y, m3); /* next counter range: new mask */
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += m1[i] != m3[i];
    /* independent masks differ with probability 2 * 0.7 * 0.3 = 0.42 */
    ck_assert_msg(differ > n / 3, "masks for different counters differ at only %lld of %lld",
                  (long long)differ, (long long)n);

    dropout_mask(&d, n, rate, 8, 0, ones, y, m3); /* another seed: new mask */
    differ = 0;
    for (int64_t i = 0; i < n; i++) differ += m1[i] != m3[i];
    ck_assert_int_gt(differ, n / 3);

    /* a counter offset shifts the stream: element i at counter 5 is element i+5 at counter 0 */
    dropout_mask(&d, n, rate, 7, 5, ones, y, m3);
    ck_assert_mem_eq(m3, m1 + 5, (size_t)(n - 5));

    /* backward with the same (seed, counter) drops the same elements */
    float *g = dput_const(&d, 2.0f, n), *dx = dput_const(&d, 0.5f, n);
    ck_assert_ok(OPS(&d)->dropout(d.be, n, rate, 7, 0, g, dx, 1));
    float *h = hf(n);
    dget(&d, h, dx, n);
    for (int64_t i = 0; i < n; i++) {
        float want = m1[i] ? 0.5f + 2.0f / (1.0f - rate) : 0.5f;
        if (!(fabsf(h[i] - want) <= 1e-6f))
            ck_abort_msg("backward element %lld: %g, want %g", (long long)i, (double)h[i],
                         (double)want);
    }
    free(h);
    free(m1);
    free(m2);
    free(m3);
    dev_close(&d);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Losses                                                                    */
/* ------------------------------------------------------------------------ */

enum { L_BCE_LOGITS, L_BCE_PROBS, L_SCE_LOGITS, L_SCE_PROBS, L_MSE, L_COUNT };
static const char *const k_loss_names[] = { "bce_logits", "bce_probs", "sce_logits", "sce_probs", "mse" };

#define P_LO 1e-7f
#define P_HI (1.0f - 1e-7f)

typedef struct loss_case {
    int kind;
    int64_t n, classes; /* n rows; classes for the sce losses, else 1 */
    float *x, *t, *d0;  /* d0 NULL: the gradient is not requested */
    int32_t *labels;
    float gs;
} loss_case;

static int64_t loss_numel(const loss_case *c) { return c->n * c->classes; }

static void call_loss(dev *d, const loss_case *c, const float *x, const void *t, float *loss,
                      float *dx) {
    const llm__backend_ops *o = OPS(d);
    switch (c->kind) {
    case L_BCE_LOGITS: ck_assert_ok(o->loss_bce_logits(d->be, c->n, x, t, c->gs, loss, dx)); break;
    case L_BCE_PROBS: ck_assert_ok(o->loss_bce_probs(d->be, c->n, x, t, c->gs, loss, dx)); break;
    case L_SCE_LOGITS:
        ck_assert_ok(o->loss_sce_logits(d->be, c->n, c->classes, x, t, c->gs, loss, dx));
        break;
    case L_SCE_PROBS:
        ck_assert_ok(o->loss_sce_probs(d->be, c->n, c->classes, x, t, c->gs, loss, dx));
        break;
    default: ck_assert_ok(o->loss_mse(d->be, c->n, x, t, c->gs, loss, dx)); break;
    }
}

/* out: loss without gradient | loss with gradient | d0 + gs * dL/dx */
static void run_loss(dev *d, const void *p, float *out) {
    const loss_case *c = p;
    int64_t N = loss_numel(c);
    float *x = dput(d, c->x, N);
    const void *t = c->labels ? (const void *)dput_i32(d, c->labels, c->n) : (const void *)dput(d, c->t, N);
    float *loss = dput_const(d, SENT, 1);
    call_loss(d, c, x, t, loss, NULL);
    dget(d, out, loss, 1);
    float *dx = dput(d, c->d0, N);
    call_loss(d, c, x, t, loss, dx);
    dget(d, out + 1, loss, 1);
    dget(d, out + 2, dx, N);
}

/* Reference loss and gradient (of the mean, before grad_scale) in double. */
static double ref_loss(const loss_case *c, double *grad) {
    int64_t n = c->n, K = c->classes;
    double L = 0;
    for (int64_t i = 0; i < n * K; i++) grad[i] = 0;
    for (int64_t i = 0; i < n; i++) {
        switch (c->kind) {
        case L_BCE_LOGITS: {
            double z = c->x[i], t = c->t[i];
            L += (z > 0 ? z : 0) - z * t + log1p(exp(-fabs(z)));
            grad[i] = (ref_sigmoid(z) - t) / n;
            break;
        }
        case L_BCE_PROBS: {
            float pf = c->x[i];
            double p = pf < P_LO ? P_LO : pf > P_HI ? P_HI : pf, t = c->t[i];
            L -= t * log(p) + (1 - t) * log(1 - p);
            if (pf >= P_LO && pf <= P_HI) grad[i] = ((1 - t) / (1 - p) - t / p) / n;
            break;
        }
        case L_SCE_LOGITS: {
            const float *z = c->x + i * K;
            double mx = z[0], s = 0;
            for (int64_t j = 1; j < K; j++) mx = z[j] > mx ? z[j] : mx;
            for (int64_t j = 0; j < K; j++) s += exp(z[j] - mx);
            L += mx + log(s) - z[c->labels[i]];
            for (int64_t j = 0; j < K; j++)
                grad[i * K + j] = (exp(z[j] - mx) / s - (j == c->labels[i])) / n;
            break;
        }
        case L_SCE_PROBS: {
            float pf = c->x[i * K + c->labels[i]];
            double p = pf < P_LO ? P_LO : pf > P_HI ? P_HI : pf;
            L -= log(p);
            if (pf >= P_LO && pf <= P_HI) grad[i * K + c->labels[i]] = -1.0 / p / n;
            break;
        }
        default: {
            double e = (double)c->x[i] - c->t[i];
            L += e * e;
            grad[i] = 2 * e / n;
            break;
        }
        }
    }
    return L / n;
}

static void loss_case_make(loss_case *c, int kind, int64_t n, int64_t classes, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->n = n;
    c->classes = (kind == L_SCE_LOGITS || kind == L_SCE_PROBS) ? classes : 1;
    c->gs = 0.5f;
    int64_t N = loss_numel(c);
    int probs = kind == L_BCE_PROBS || kind == L_SCE_PROBS;
    c->x = probs ? hrand(N, seed, 0.02f, 0.98f) : hrand(N, seed, -4, 4);
    if (kind == L_SCE_LOGITS || kind == L_SCE_PROBS) {
        c->labels = malloc((size_t)n * sizeof(int32_t));
        ck_assert_ptr_nonnull(c->labels);
        uint64_t st = seed + 1;
        for (int64_t i = 0; i < n; i++) c->labels[i] = (int32_t)(tu_next(&st) % (uint64_t)c->classes);
    } else {
        c->t = kind == L_MSE ? hrand(N, seed + 1, -4, 4) : hrand(N, seed + 1, 0, 1);
        /* hard 0/1 targets in half the elements, soft ones elsewhere */
        if (kind != L_MSE)
            for (int64_t i = 0; i < N; i += 2) c->t[i] = c->t[i] > 0.5f ? 1.0f : 0.0f;
    }
    c->d0 = hrand(N, seed + 2, -1, 1);
}

static void loss_case_free(loss_case *c) {
    free(c->x); free(c->t); free(c->d0); free(c->labels);
}

static void loss_check(loss_case *c, const char *label) {
    int64_t N = loss_numel(c);
    double *ref = hd(2 + N);
    ref[0] = ref[1] = ref_loss(c, ref + 2);
    for (int64_t i = 0; i < N; i++) ref[2 + i] = c->d0[i] + c->gs * ref[2 + i];
    char what[96];
    snprintf(what, sizeof what, "loss %s %s n=%lld classes=%lld", k_loss_names[c->kind], label,
             (long long)c->n, (long long)c->classes);
    check_targets(what, run_loss, c, 2 + N, ref, 2e-7, 1e-5, 1);
    free(ref);
}

START_TEST(losses_against_reference) {
    static const int64_t shapes[][2] = { { 1, 1 }, { 7, 13 }, { 1000, 300 }, { 300000, 2 } };
    for (int kind = 0; kind < L_COUNT; kind++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int sce = kind == L_SCE_LOGITS || kind == L_SCE_PROBS;
            if (!sce && si == 2) continue;               /* element-wise: 1, 7 and 300000 */
            if (sce && si == 3) continue;                /* rows x classes: 1x1, 7x13, 1000x300 */
            loss_case c;
            loss_case_make(&c, kind, shapes[si][0], shapes[si][1], 7000 + (uint64_t)kind * 10 + si);
            loss_check(&c, "random");
            loss_case_free(&c);
        }
}
END_TEST

/* Values where a naive formula overflows or takes log(0). */
START_TEST(losses_extreme_inputs) {
    loss_case c;
    loss_case_make(&c, L_BCE_LOGITS, 6, 1, 7100);
    const float z[6] = { -100, 100, -100, 100, 88.7f, -1000 }, t[6] = { 0, 1, 1, 0, 0.5f, 1 };
    memcpy(c.x, z, sizeof z);
    memcpy(c.t, t, sizeof t);
    loss_check(&c, "extreme logits");
    loss_case_free(&c);

    loss_case_make(&c, L_BCE_PROBS, 6, 1, 7200);
    const float p[6] = { 0, 1, 0, 1, 1e-9f, 0.5f }, tp[6] = { 1, 0, 0, 1, 1, 0.5f };
    memcpy(c.x, p, sizeof p);
    memcpy(c.t, tp, sizeof tp);
    loss_check(&c, "probabilities 0 and 1");
    loss_case_free(&c);

    loss_case_make(&c, L_SCE_LOGITS, 3, 4, 7300);
    const float zs[12] = { 1000, -1000, 0, 500, -1000, -1000, -1000, -1000, 80, 80, 80, 80.5f };
    memcpy(c.x, zs, sizeof zs);
    c.labels[0] = 1; c.labels[1] = 2; c.labels[2] = 3;
    loss_check(&c, "huge logits");
    loss_case_free(&c);

    loss_case_make(&c, L_SCE_PROBS, 3, 4, 7400);
    const float ps[12] = { 0, 1, 0, 0, 0.25f, 0.25f, 0.25f, 0.25f, 1, 0, 0, 0 };
    memcpy(c.x, ps, sizeof ps);
    c.labels[0] = 0; c.labels[1] = 3; c.labels[2] = 0;
    loss_check(&c, "probabilities 0 and 1");
    loss_case_free(&c);
}
END_TEST

/* The kernel's gradient against central differences of the kernel's own loss. */
START_TEST(losses_match_finite_differences) {
    for (int kind = 0; kind < L_COUNT; kind++) {
        loss_case c;
        int sce = kind == L_SCE_LOGITS || kind == L_SCE_PROBS;
        loss_case_make(&c, kind, sce ? 5 : 7, 6, 7500 + (uint64_t)kind);
        int probs = kind == L_BCE_PROBS || kind == L_SCE_PROBS;
        if (probs) tu_fill(c.x, loss_numel(&c), 7600 + (uint64_t)kind, 0.1f, 0.9f);
        c.gs = 1.0f;
        int64_t N = loss_numel(&c);
        for (int64_t i = 0; i < N; i++) c.d0[i] = 0.0f;
        float *out = hf(2 + N);
        run_first(run_loss, &c, out);
        float *grad = hf(N);
        memcpy(grad, out + 2, (size_t)N * sizeof(float));
        const float h = probs ? 1e-3f : 1e-2f;
        for (int64_t i = 0; i < N; i++) {
            float keep = c.x[i];
            c.x[i] = keep + h;
            run_first(run_loss, &c, out);
            double lp = out[0];
            c.x[i] = keep - h;
            run_first(run_loss, &c, out);
            double lm = out[0];
            c.x[i] = keep;
            double fd = (lp - lm) / ((double)(keep + h) - (double)(keep - h));
            ck_assert_msg(fabs(grad[i] - fd) <= 2e-4 + 1e-2 * fabs(fd),
                          "loss %s: d/dx[%lld] kernel %.7g, finite difference %.7g",
                          k_loss_names[kind], (long long)i, (double)grad[i], fd);
        }
        free(out);
        free(grad);
        loss_case_free(&c);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reductions                                                                */
/* ------------------------------------------------------------------------ */

typedef struct red_case {
    int64_t n;
    float *x;
} red_case;

/* out: sum | sum of squares | non-finite count */
static void run_reduce(dev *d, const void *p, float *out) {
    const red_case *c = p;
    float *x = dput(d, c->x, c->n), *o = dput_const(d, SENT, 3);
    ck_assert_ok(OPS(d)->sum(d->be, c->n, x, o));
    ck_assert_ok(OPS(d)->sum_squares(d->be, c->n, x, o + 1));
    ck_assert_ok(OPS(d)->count_nonfinite(d->be, c->n, x, o + 2));
    dget(d, out, o, 3);
}

START_TEST(reductions) {
    static const int64_t sizes[] = { 1, 91, 4097, 300000, 1000003 };
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        red_case c = { sizes[si], hrand(sizes[si], 8000 + si, -1, 1) };
        double ref[3] = { 0, 0, 0 }, sabs = 0;
        for (int64_t i = 0; i < c.n; i++) {
            ref[0] += c.x[i];
            ref[1] += (double)c.x[i] * c.x[i];
            sabs += fabs(c.x[i]);
        }
        /* the sum cancels: bound its error by the sum of magnitudes */
        double atol = 1e-7 * sabs + 1e-30;
        double *r = hd(3);
        memcpy(r, ref, sizeof ref);
        check_targets("reductions", run_reduce, &c, 3, r, atol, 1e-6, 1);
        /* now with non-finite values spread around */
        int64_t bad = 0;
        if (c.n >= 3) {
            c.x[0] = NAN;
            c.x[c.n / 2] = INFINITY;
            c.x[c.n - 1] = -INFINITY;
            bad = 3;
        } else {
            c.x[0] = NAN;
            bad = 1;
        }
        float *o = hf(3);
        for (int ti = 0; ti < N_TARGETS; ti++) {
            if (!g_target_ok[ti]) continue;
            dev d;
            dev_open(&d, ti);
            run_reduce(&d, &c, o);
            dev_close(&d);
            ck_assert_msg(o[2] == (float)bad, "[%s] count_nonfinite = %g, want %lld",
                          k_targets[ti].name, (double)o[2], (long long)bad);
            ck_assert(isnan(o[0]));
        }
        free(o);
        free(r);
        free(c.x);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Optimizer                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct opt_case {
    llm__opt_update u; /* n, kind and hyper-parameters; bc1/bc2 set per step */
    float *p0, *g1, *g2;
    int null_moments;  /* plain SGD: m1, m2 NULL */
} opt_case;

static void opt_bias_corrections(llm__opt_update *u, int t) {
    u->bc1 = 1.0f - powf(u->beta1, (float)t);
    u->bc2 = 1.0f - powf(u->beta2, (float)t);
}

/* out: param | m1 | m2 after two steps with gradients g1 then g2 */
static void run_opt(dev *d, const void *p, float *out) {
    const opt_case *c = p;
    int64_t n = c->u.n;
    float *w = dput(d, c->p0, n), *g = dput(d, c->g1, n);
    float *m1 = c->null_moments ? NULL : dput(d, NULL, n), *m2 = c->null_moments ? NULL : dput(d, NULL, n);
    llm__opt_update u = c->u;
    opt_bias_corrections(&u, 1);
    ck_assert_ok(OPS(d)->optimizer_update(d->be, &u, w, g, m1, m2));
    ck_assert_ok(OPS(d)->copy_h2d(d->be, g, c->g2, (size_t)n * sizeof(float)));
    opt_bias_corrections(&u, 2);
    ck_assert_ok(OPS(d)->optimizer_update(d->be, &u, w, g, m1, m2));
    dget(d, out, w, n);
    if (m1) dget(d, out + n, m1, n); else memset(out + n, 0, (size_t)n * sizeof(float));
    if (m2) dget(d, out + 2 * n, m2, n); else memset(out + 2 * n, 0, (size_t)n * sizeof(float));
}

/* The update rules of backend.h in double, two steps. */
static void ref_opt(const opt_case *c, double *out) {
    int64_t n = c->u.n;
    double *p = out, *m = out + n, *v = out + 2 * n;
    for (int64_t i = 0; i < n; i++) { p[i] = c->p0[i]; m[i] = v[i] = 0; }
    for (int t = 1; t <= 2; t++) {
        llm__opt_update u = c->u;
        opt_bias_corrections(&u, t);
        const float *g = t == 1 ? c->g1 : c->g2;
        for (int64_t i = 0; i < n; i++) {
            double gi = (double)g[i] * u.grad_scale;
            if (u.kind == LLM__OPT_SGD) {
                gi += (double)u.weight_decay * p[i];
                double step = gi;
                if (u.momentum != 0) {
                    m[i] = u.momentum * m[i] + gi;
                    step = u.nesterov ? gi + u.momentum * m[i] : m[i];
                }
                p[i] -= u.lr * step;
            } else {
                if (u.kind == LLM__OPT_ADAM) gi += (double)u.weight_decay * p[i];
                else p[i] *= 1.0 - (double)u.lr * u.weight_decay;
                m[i] = u.beta1 * m[i] + (1.0 - u.beta1) * gi;
                v[i] = u.beta2 * v[i] + (1.0 - u.beta2) * gi * gi;
                p[i] -= u.lr * (m[i] / u.bc1) / (sqrt(v[i] / u.bc2) + u.eps);
            }
        }
    }
}

static llm__opt_update opt_template(int kind, float lr, float wd, float mom, int nesterov) {
    llm__opt_update u;
    memset(&u, 0, sizeof u);
    u.kind = kind;
    u.lr = lr;
    u.beta1 = 0.9f;
    u.beta2 = 0.999f;
    u.eps = 1e-8f;
    u.weight_decay = wd;
    u.momentum = mom;
    u.nesterov = nesterov;
    u.grad_scale = 1.0f;
    return u;
}

/* One parameter p = 1 with gradient 1 at both steps: values worked out by
 * hand from the PyTorch update rules. */
START_TEST(optimizer_hand_computed) {
    static const struct {
        const char *name;
        int kind;
        float lr, wd, mom, gs;
        int nesterov;
        double p1, p2;
    } cases[] = {
        /* p1 = 1 - 0.1; p2 = 0.9 - 0.1 */
        { "sgd", LLM__OPT_SGD, 0.1f, 0, 0, 1, 0, 0.9, 0.8 },
        /* grad_scale 0.5 halves each step */
        { "sgd scaled", LLM__OPT_SGD, 0.1f, 0, 0, 0.5f, 0, 0.95, 0.9 },
        /* g = 1 + 0.1 p: 1.1 -> p1 = 0.89; g = 1.089 -> p2 = 0.7811 */
        { "sgd wd", LLM__OPT_SGD, 0.1f, 0.1f, 0, 1, 0, 0.89, 0.7811 },
        /* v1 = 1, p1 = 0.9; v2 = 1.9, p2 = 0.71 */
        { "sgd momentum", LLM__OPT_SGD, 0.1f, 0, 0.9f, 1, 0, 0.9, 0.71 },
        /* v1 = 1, step 1.9, p1 = 0.81; v2 = 1.9, step 1 + 0.9 * 1.9 = 2.71, p2 = 0.539 */
        { "sgd nesterov", LLM__OPT_SGD, 0.1f, 0, 0.9f, 1, 1, 0.81, 0.539 },
        /* constant gradient: m/bc1 = 1 and v/bc2 = 1, each step moves lr (minus eps) */
        { "adam", LLM__OPT_ADAM, 0.1f, 0, 0, 1, 0, 0.9, 0.8 },
        /* g1 = 1.1: mhat 1.1, vhat 1.21, p1 = 0.9; g2 = 1.09: m = 0.208,
         * v = 0.00239689, mhat = 1.0947368, vhat = 1.1990445, p2 = 0.80002468 */
        { "adam l2", LLM__OPT_ADAM, 0.1f, 0.1f, 0, 1, 0, 0.9, 0.80002468 },
        /* p1 = 1 * (1 - 0.01) - 0.1 = 0.89; p2 = 0.89 * 0.99 - 0.1 = 0.7811 */
        { "adamw", LLM__OPT_ADAMW, 0.1f, 0.1f, 0, 1, 0, 0.89, 0.7811 },
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        float p0 = 1.0f, g = 1.0f;
        opt_case c = { opt_template(cases[ci].kind, cases[ci].lr, cases[ci].wd, cases[ci].mom,
                                    cases[ci].nesterov), &p0, &g, &g, 0 };
        c.u.n = 1;
        c.u.grad_scale = cases[ci].gs;
        for (int ti = 0; ti < N_TARGETS; ti++) {
            if (!g_target_ok[ti]) continue;
            dev d;
            dev_open(&d, ti);
            float out[3];
            /* after one step: run with g2 = 0 is not one step, so do step 1 alone */
            float *w = dput(&d, &p0, 1), *gd = dput(&d, &g, 1), *m1 = dput(&d, NULL, 1), *m2 = dput(&d, NULL, 1);
            llm__opt_update u = c.u;
            opt_bias_corrections(&u, 1);
            ck_assert_ok(OPS(&d)->optimizer_update(d.be, &u, w, gd, m1, m2));
            dget(&d, out, w, 1);
            ck_assert_msg(fabs(out[0] - cases[ci].p1) < 2e-6, "[%s] %s step 1: p = %.8g, want %.8g",
                          k_targets[ti].name, cases[ci].name, (double)out[0], cases[ci].p1);
            opt_bias_corrections(&u, 2);
            ck_assert_ok(OPS(&d)->optimizer_update(d.be, &u, w, gd, m1, m2));
            dget(&d, out, w, 1);
            ck_assert_msg(fabs(out[0] - cases[ci].p2) < 2e-6, "[%s] %s step 2: p = %.8g, want %.8g",
                          k_targets[ti].name, cases[ci].name, (double)out[0], cases[ci].p2);
            dev_close(&d);
        }
        /* and the double reference agrees with the hand values */
        double ref[3];
        ref_opt(&c, ref);
        ck_assert_msg(fabs(ref[0] - cases[ci].p2) < 1e-6, "reference %s: %.8g vs %.8g",
                      cases[ci].name, ref[0], cases[ci].p2);
    }
}
END_TEST

START_TEST(optimizer_against_reference) {
    static const int64_t sizes[] = { 1, 91, 300000 };
    struct { int kind; float lr, wd, mom; int nesterov, null_moments; float gs; } kinds[] = {
        { LLM__OPT_SGD, 0.05f, 0, 0, 0, 1, 1.0f },
        { LLM__OPT_SGD, 0.05f, 0.01f, 0.9f, 0, 0, 0.7f },
        { LLM__OPT_SGD, 0.05f, 0.01f, 0.9f, 1, 0, 1.0f },
        { LLM__OPT_ADAM, 1e-3f, 0, 0, 0, 0, 1.0f },
        { LLM__OPT_ADAM, 1e-3f, 0.01f, 0, 0, 0, 0.3f },
        { LLM__OPT_ADAMW, 1e-3f, 0.01f, 0, 0, 0, 1.0f },
    };
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
            int64_t n = sizes[si];
            opt_case c = { opt_template(kinds[ki].kind, kinds[ki].lr, kinds[ki].wd, kinds[ki].mom,
                                        kinds[ki].nesterov),
                           hrand(n, 9000 + si, -1, 1), hrand(n, 9100 + si, -1, 1),
                           hrand(n, 9200 + si, -1, 1), kinds[ki].null_moments };
            c.u.n = n;
            c.u.grad_scale = kinds[ki].gs;
            double *ref = hd(3 * n);
            ref_opt(&c, ref);
            if (c.null_moments)
                for (int64_t i = n; i < 3 * n; i++) ref[i] = 0;
            char what[64];
            snprintf(what, sizeof what, "optimizer kind=%d variant=%zu n=%lld", c.u.kind, ki,
                     (long long)n);
            check_targets(what, run_opt, &c, 3 * n, ref, 1e-6, 1e-5, 1);
            free(ref);
            free(c.p0);
            free(c.g1);
            free(c.g2);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Attention                                                                 */
/* ------------------------------------------------------------------------ */

#define LSE_NONE -12345.0f /* stands for lse = -inf in the compared outputs */

/* Layouts: interleaved = one [B, T, 3D] qkv buffer (and one for its
 * gradients) as a fused projection makes it, Tq = Tk; otherwise separate q,
 * k, v buffers with row strides wider than D and batch strides wider than
 * T rows, so the kernels must honour both and leave the gaps alone. */
typedef struct attn_case {
    const char *name;
    int B, H, hd, Tq, Tk, q_offset, causal, interleaved, masked;
    float scale;
    int64_t ld_q, bs_q, ld_kv, bs_kv, ld_o, bs_o, ld_mask;
    int64_t nq, nkv, no, nl; /* floats in the q, k (= v), out and lse buffers; interleaved: nq = qkv */
    float *q, *k, *v, *mask, *dout, *dq0, *dk0, *dv0;
} attn_case;

static void attn_make(attn_case *c, const char *name, int B, int H, int hd, int Tq, int Tk,
                      int q_offset, int causal, int interleaved, int masked, uint64_t seed) {
    *c = (attn_case){ .name = name, .B = B, .H = H, .hd = hd, .Tq = Tq, .Tk = Tk,
                      .q_offset = q_offset, .causal = causal, .interleaved = interleaved,
                      .masked = masked, .scale = 1.0f / sqrtf((float)hd) };
    int64_t D = (int64_t)H * hd;
    if (interleaved) {
        ck_assert_int_eq(Tq, Tk);
        c->ld_q = c->ld_kv = 3 * D;
        c->bs_q = c->bs_kv = (int64_t)Tq * 3 * D;
        c->nq = B * c->bs_q;
    } else {
        c->ld_q = D + 3;
        c->bs_q = (int64_t)Tq * c->ld_q + 5;
        c->ld_kv = D + 1;
        c->bs_kv = (int64_t)Tk * c->ld_kv + 2;
        c->nq = B * c->bs_q;
        c->nkv = B * c->bs_kv;
    }
    c->ld_o = D + 2;
    c->bs_o = (int64_t)Tq * c->ld_o + 1;
    c->no = B * c->bs_o;
    c->nl = (int64_t)B * H * Tq;
    c->ld_mask = Tk + 2;
    /* scores up to ~ +-3 so the softmax is far from uniform */
    c->q = hrand(c->nq, seed, -2, 2);
    c->dq0 = hrand(c->nq, seed + 1, -1, 1);
    if (!interleaved) {
        c->k = hrand(c->nkv, seed + 2, -1.5f, 1.5f);
        c->v = hrand(c->nkv, seed + 3, -1, 1);
        c->dk0 = hrand(c->nkv, seed + 4, -1, 1);
        c->dv0 = hrand(c->nkv, seed + 5, -1, 1);
    }
    c->dout = hrand(c->no, seed + 6, -1, 1);
    if (masked) {
        /* row 0 all real; row 1 hides its first two keys (a causal row 0 or 1
         * then sees none), one in the middle and the last three; row 2 hides
         * every key; the rest hide a pseudo-random quarter */
        c->mask = hf((int64_t)B * c->ld_mask);
        uint64_t st = seed + 7;
        for (int b = 0; b < B; b++)
            for (int64_t j = 0; j < c->ld_mask; j++) {
                float m = 1.0f;
                if (b == 1) m = (j < 2 || j == Tk / 2 || j >= Tk - 3) ? 0.0f : 1.0f;
                else if (b == 2) m = 0.0f;
                else if (b > 2) m = (tu_next(&st) & 3) == 0 ? 0.0f : 1.0f;
                if (j >= Tk) m = 0.5f; /* past Tk: must never be read as a key */
                c->mask[(int64_t)b * c->ld_mask + j] = m;
            }
    }
}

static void attn_free(attn_case *c) {
    free(c->q); free(c->k); free(c->v); free(c->mask); free(c->dout);
    free(c->dq0); free(c->dk0); free(c->dv0);
}

static int64_t attn_ngrad(const attn_case *c) { return c->interleaved ? c->nq : c->nq + 2 * c->nkv; }
/* out: out | out again with lse = NULL | lse | gradients (dqkv, or dq | dk | dv) */
static int64_t attn_nout(const attn_case *c) { return 2 * c->no + c->nl + attn_ngrad(c); }

static void run_attention(dev *d, const void *p, float *out) {
    const attn_case *c = p;
    int64_t D = (int64_t)c->H * c->hd;
    llm__attention a;
    memset(&a, 0, sizeof a);
    a.B = c->B; a.heads = c->H; a.head_dim = c->hd;
    a.Tq = c->Tq; a.Tk = c->Tk; a.q_offset = c->q_offset; a.causal = c->causal;
    a.scale = c->scale;
    a.ld_q = c->ld_q; a.bs_q = c->bs_q; a.ld_kv = c->ld_kv; a.bs_kv = c->bs_kv;
    a.ld_out = c->ld_o; a.bs_out = c->bs_o; a.ld_mask = c->ld_mask;
    float *g = NULL, *dq = NULL, *dk = NULL, *dv = NULL;
    if (c->interleaved) {
        float *qkv = dput(d, c->q, c->nq);
        a.q = qkv; a.k = qkv + D; a.v = qkv + 2 * D;
        g = dput(d, c->dq0, c->nq);
    } else {
        a.q = dput(d, c->q, c->nq);
        a.k = dput(d, c->k, c->nkv);
        a.v = dput(d, c->v, c->nkv);
        dq = dput(d, c->dq0, c->nq);
        dk = dput(d, c->dk0, c->nkv);
        dv = dput(d, c->dv0, c->nkv);
    }
    a.mask = c->mask ? dput(d, c->mask, (int64_t)c->B * c->ld_mask) : NULL;
    a.out = dput_const(d, SENT, c->no);
    a.lse = dput_const(d, SENT, c->nl);
    ck_assert_ok(OPS(d)->attention_forward(d->be, &a));
    dget(d, out, a.out, c->no);
    float *lse_h = out + 2 * c->no;
    dget(d, lse_h, a.lse, c->nl);
    /* inference: no lse */
    llm__attention a2 = a;
    a2.out = dput_const(d, SENT, c->no);
    a2.lse = NULL;
    ck_assert_ok(OPS(d)->attention_forward(d->be, &a2));
    dget(d, out + c->no, a2.out, c->no);
    /* backward on the forward's out and lse, onto nonzero gradients */
    a.dout = dput(d, c->dout, c->no);
    if (c->interleaved) {
        a.dq = g; a.dk = g + D; a.dv = g + 2 * D;
    } else {
        a.dq = dq; a.dk = dk; a.dv = dv;
    }
    ck_assert_ok(OPS(d)->attention_backward(d->be, &a));
    float *go = out + 2 * c->no + c->nl;
    if (c->interleaved) {
        dget(d, go, g, c->nq);
    } else {
        dget(d, go, dq, c->nq);
        dget(d, go + c->nq, dk, c->nkv);
        dget(d, go + c->nq + c->nkv, dv, c->nkv);
    }
    for (int64_t i = 0; i < c->nl; i++)
        if (isinf(lse_h[i]) && lse_h[i] < 0) lse_h[i] = LSE_NONE;
}

/* The reference in double, in the layout of run_attention's output. */
static void ref_attention(const attn_case *c, double *ref) {
    int64_t D = (int64_t)c->H * c->hd;
    int dh = c->hd, Tk = c->Tk;
    double *ro = ref, *ro2 = ref + c->no, *rl = ref + 2 * c->no, *rg = rl + c->nl;
    for (int64_t i = 0; i < c->no; i++) ro[i] = ro2[i] = SENT;
    const float *kbuf = c->interleaved ? c->q + D : c->k, *vbuf = c->interleaved ? c->q + 2 * D : c->v;
    /* gradients start at their initial values (in the gaps too) */
    for (int64_t i = 0; i < c->nq; i++) rg[i] = c->dq0[i];
    for (int64_t i = 0; i < c->nkv; i++) {
        rg[c->nq + i] = c->dk0[i];
        rg[c->nq + c->nkv + i] = c->dv0[i];
    }
    double *rdq = rg, *rdk = c->interleaved ? rg + D : rg + c->nq;
    double *rdv = c->interleaved ? rg + 2 * D : rg + c->nq + c->nkv;
    double *s = hd(Tk), *pr = hd(Tk), *o = hd(dh);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->Tq; i++) {
                const float *q = c->q + b * c->bs_q + (int64_t)i * c->ld_q + (int64_t)h * dh;
                const float *dout = c->dout + b * c->bs_o + (int64_t)i * c->ld_o + (int64_t)h * dh;
                int64_t oo = b * c->bs_o + (int64_t)i * c->ld_o + (int64_t)h * dh;
                int64_t li = ((int64_t)b * c->H + h) * c->Tq + i;
                double mx = -INFINITY;
                int any = 0;
                for (int j = 0; j < Tk; j++) {
                    int vis = (!c->mask || c->mask[(int64_t)b * c->ld_mask + j] != 0.0f) &&
                              (!c->causal || j <= c->q_offset + i);
                    if (!vis) { s[j] = -INFINITY; continue; }
                    const float *k = kbuf + b * c->bs_kv + (int64_t)j * c->ld_kv + (int64_t)h * dh;
                    double acc = 0;
                    for (int e = 0; e < dh; e++) acc += (double)q[e] * k[e];
                    s[j] = acc * c->scale;
                    if (s[j] > mx) mx = s[j];
                    any = 1;
                }
                if (!any) {
                    for (int e = 0; e < dh; e++) ro[oo + e] = ro2[oo + e] = 0.0;
                    rl[li] = LSE_NONE;
                    continue;
                }
                double sum = 0;
                for (int j = 0; j < Tk; j++) {
                    pr[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - mx);
                    sum += pr[j];
                }
                for (int e = 0; e < dh; e++) o[e] = 0;
                for (int j = 0; j < Tk; j++) {
                    pr[j] /= sum;
                    if (pr[j] == 0.0) continue;
                    const float *v = vbuf + b * c->bs_kv + (int64_t)j * c->ld_kv + (int64_t)h * dh;
                    for (int e = 0; e < dh; e++) o[e] += pr[j] * v[e];
                }
                for (int e = 0; e < dh; e++) ro[oo + e] = ro2[oo + e] = o[e];
                rl[li] = mx + log(sum);
                double Di = 0;
                for (int e = 0; e < dh; e++) Di += (double)dout[e] * o[e];
                double *dq = rdq + b * c->bs_q + (int64_t)i * c->ld_q + (int64_t)h * dh;
                for (int j = 0; j < Tk; j++) {
                    if (pr[j] == 0.0) continue;
                    int64_t ko = b * c->bs_kv + (int64_t)j * c->ld_kv + (int64_t)h * dh;
                    const float *k = kbuf + ko, *v = vbuf + ko;
                    double dp = 0;
                    for (int e = 0; e < dh; e++) dp += (double)dout[e] * v[e];
                    double ds = pr[j] * (dp - Di) * c->scale;
                    for (int e = 0; e < dh; e++) {
                        dq[e] += ds * k[e];
                        rdk[ko + e] += ds * q[e];
                        rdv[ko + e] += pr[j] * dout[e];
                    }
                }
            }
    free(s);
    free(pr);
    free(o);
}

static void attn_check(attn_case *c, double atol, double rtol) {
    int64_t nout = attn_nout(c);
    double *ref = hd(nout);
    ref_attention(c, ref);
    check_targets(c->name, run_attention, c, nout, ref, atol, rtol, 1);
    free(ref);
}

START_TEST(attention_against_reference) {
    static const struct {
        const char *name;
        int B, H, hd, Tq, Tk, q_offset, causal, interleaved, masked;
    } cases[] = {
        /* odd sizes, fused qkv buffer */
        { "attn causal T=37 hd=8 heads=3 qkv", 4, 3, 8, 37, 37, 0, 1, 1, 1 },
        { "attn full T=37 hd=8 heads=3 qkv", 4, 3, 8, 37, 37, 0, 0, 1, 1 },
        { "attn causal T=37 hd=8 heads=3 separate", 3, 3, 8, 37, 37, 0, 1, 0, 1 },
        { "attn full T=37 separate no mask", 3, 3, 8, 37, 37, 0, 0, 0, 0 },
        /* decoding against a cache: one and three new rows */
        { "attn decode Tq=1", 4, 3, 8, 1, 37, 36, 1, 0, 1 },
        { "attn decode Tq=3", 4, 3, 8, 3, 40, 37, 1, 0, 1 },
        { "attn decode Tq=1 no mask", 2, 4, 32, 1, 200, 199, 1, 0, 0 },
        /* a chunk of rows against a longer cache; cross-attention shapes */
        { "attn chunk Tq=20 Tk=90 offset 70", 3, 2, 16, 20, 90, 70, 1, 0, 1 },
        { "attn full Tq=5 Tk=70", 3, 2, 16, 5, 70, 0, 0, 0, 1 },
        { "attn full Tq=70 Tk=9", 3, 2, 16, 70, 9, 0, 0, 0, 1 },
        /* head_dim not a multiple of 8, several tiles */
        { "attn causal T=70 hd=37", 3, 2, 37, 70, 70, 0, 1, 1, 1 },
        { "attn full T=70 hd=37", 3, 2, 37, 70, 70, 0, 0, 0, 1 },
        /* the GPT shape, several tiles each way */
        { "attn causal T=128 hd=32 heads=4", 3, 4, 32, 128, 128, 0, 1, 1, 1 },
        { "attn full T=150 hd=64 heads=2", 3, 2, 64, 150, 150, 0, 0, 1, 1 },
        /* a head too wide for the CPU's stack tiles (heap scratch) */
        { "attn causal hd=400", 3, 1, 400, 19, 19, 0, 1, 0, 1 },
        /* no keys at all: zero output, lse = -inf, gradients untouched */
        { "attn Tk=0", 2, 2, 8, 3, 0, 0, 0, 0, 0 },
        { "attn head_dim=1", 3, 2, 1, 9, 9, 0, 1, 1, 1 },
    };
    /* the CPU's tile products with 16-float registers where the CPU has
     * them (limit 2), and with the 8-float ones of AVX2 (limit 1) */
    for (int limit = 2; limit >= 1; limit--)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            llm__cpu_isa_limit = limit;
            char name[96];
            snprintf(name, sizeof name, "%s, isa limit %d", cases[i].name, limit);
            attn_case c;
            attn_make(&c, name, cases[i].B, cases[i].H, cases[i].hd, cases[i].Tq, cases[i].Tk, cases[i].q_offset,
                      cases[i].causal, cases[i].interleaved, cases[i].masked, 9000 + 17 * i);
            attn_check(&c, 1e-5, 1e-5);
            attn_free(&c);
        }
    llm__cpu_isa_limit = 2;
}
END_TEST

/* The training shape at full batch, where both CPU threads get work: the
 * results must be bit-identical for 1 and 2 threads (check_targets compares
 * CPU targets bitwise), and match the reference. */
START_TEST(attention_threads_bit_identical) {
    attn_case c;
    attn_make(&c, "attn B=16 T=128 heads=4 hd=32 causal", 16, 4, 32, 128, 128, 0, 1, 1, 1, 9900);
    attn_check(&c, 1e-5, 1e-5);
    attn_free(&c);
    attn_make(&c, "attn decode B=16 Tq=1 Tk=300", 16, 4, 32, 1, 300, 299, 1, 0, 1, 9901);
    attn_check(&c, 1e-5, 1e-5);
    attn_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */

Suite *suite_backend_ops(void) {
    probe_targets();
    Suite *s = suite_create("backend_ops");
    struct { const char *name; const TTest *tests[8]; } groups[] = {
        { "threadpool", { pool_splits_contiguously, pool_rejects_bad_arguments, pool_create_free_cycles } },
        { "memory", { vtable_is_complete, memory_ops } },
        { "blas", { sgemm_all_transposes, sgemm_own_shapes, sgemm_batched_all_transposes, sgemm_small_m, linear_forward_fused } },
        { "elementwise", { elementwise_ops, copy_rows_strided, dropout_matches_counter_rng,
                           dropout_statistics_and_reuse } },
        { "activation", { bias_act_forward_all, act_backward_all,
                          gelu_derivative_matches_finite_differences, bias_backward_sums_columns,
                          softmax_forward_backward } },
        { "layernorm", { layernorm_forward_backward } },
        { "embedding", { embedding_repeated_ids_and_pad } },
        { "recurrent", { lstm_step_parity, gru_step_parity, lstm_backward_matches_finite_differences,
                         gru_backward_matches_finite_differences, lstm_sequence_matches_recurrence } },
        { "attention", { attention_against_reference, attention_threads_bit_identical } },
        { "pool", { pool_avg_max_masked, pool_max_ties_pick_first_real_step } },
        { "loss", { losses_against_reference, losses_extreme_inputs, losses_match_finite_differences } },
        { "reduce", { reductions } },
        { "optimizer", { optimizer_hand_computed, optimizer_against_reference } },
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_set_timeout(tc, 120); /* sanitizer builds are ~10x slower */
        for (size_t i = 0; i < 8 && groups[g].tests[i]; i++) tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}
