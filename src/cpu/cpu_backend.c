/* The CPU backend: host memory, OpenBLAS for GEMM, plain-C kernels with a
 * small thread pool for the rest. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cblas.h>
#include "cpu.h"
#include "../core/internal.h"
#include "../core/backend_internal.h"

/* Aligned to 64 bytes (a cache line, an AVX-512 vector). */
static llm_status cpu_alloc(llm_backend *be, size_t bytes, void **out) {
    (void)be;
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || llm__alloc_should_fail() ||
        posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        return llm__oom("cpu backend");
    *out = p;
    return LLM_OK;
}

static void cpu_free(llm_backend *be, void *ptr) { (void)be; free(ptr); }

static llm_status cpu_memset_zero(llm_backend *be, void *dst, size_t bytes) {
    (void)be;
    if (bytes) memset(dst, 0, bytes);
    return LLM_OK;
}

static llm_status cpu_copy(llm_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
    return LLM_OK;
}

/* GEMMs run on OpenBLAS with one thread each; this backend splits a large
 * GEMM into row (or column) blocks on its own pool. Measured on a 2-core
 * Zen machine: OpenBLAS's own workers spin on sched_yield between calls and
 * then compete with our pool's kernels for the same cores, which cost a
 * small GPT's training step ~30% of its time in the kernel; one set of
 * threads for everything removes that. Splitting along m or n leaves every
 * element's k-sum intact, so results do not depend on the thread count.
 * With the pool's workers spinning between jobs, splitting pays from about
 * 1M multiply-adds: the LSTM's per-step 32 x 512 x 128 product is one. */
#ifndef LLM_CPU_GEMM_MT_MIN
#define LLM_CPU_GEMM_MT_MIN (1024.0 * 1024)
#endif

typedef struct gemm_job {
    int ta, tb, m, n, k, lda, ldb, ldc, split_m, parts;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int own; /* gemm_avx512.c takes the whole product (decided for all of it, so
                every block sums the same way whatever the thread count) */
} gemm_job;

static void gemm_block(const gemm_job *j, int r0, int r1) {
    if (r1 <= r0) return;
    if (j->own && j->split_m)
        llm__cpu_gemm_own(j->ta, j->tb, r1 - r0, j->n, j->k, j->ta ? j->a + r0 : j->a + (size_t)r0 * j->lda, j->lda,
                          j->b, j->ldb, j->beta, j->c + (size_t)r0 * j->ldc, j->ldc);
    else if (j->own)
        llm__cpu_gemm_own(j->ta, j->tb, j->m, r1 - r0, j->k, j->a, j->lda,
                          j->tb ? j->b + (size_t)r0 * j->ldb : j->b + r0, j->ldb, j->beta, j->c + r0, j->ldc);
    else if (j->split_m)
        cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, r1 - r0,
                    j->n, j->k, j->alpha, j->ta ? j->a + r0 : j->a + (size_t)r0 * j->lda, j->lda, j->b, j->ldb,
                    j->beta, j->c + (size_t)r0 * j->ldc, j->ldc);
    else
        cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->m,
                    r1 - r0, j->k, j->alpha, j->a, j->lda, j->tb ? j->b + (size_t)r0 * j->ldb : j->b + r0, j->ldb,
                    j->beta, j->c + r0, j->ldc);
}

static void gemm_chunk(void *p, int64_t begin, int64_t end) {
    const gemm_job *j = p;
    int len = j->split_m ? j->m : j->n;
    for (int64_t i = begin; i < end; i++) {
        /* block edges on multiples of 16 keep the vector kernels' full tiles */
        int r0 = (int)(((int64_t)len * i / j->parts) & ~(int64_t)15);
        int r1 = i + 1 == j->parts ? len : (int)(((int64_t)len * (i + 1) / j->parts) & ~(int64_t)15);
        gemm_block(j, r0, r1);
    }
}

#ifndef LLM_CPU_SMALL_MT_MIN
#define LLM_CPU_SMALL_MT_MIN (32.0 * 1024)
#endif

/* groups [begin, end) of 4 rows of B, for llm__cpu_gemm_small_m */
static void small_m_chunk(void *p, int64_t begin, int64_t end) {
    const gemm_job *j = p;
    int r0 = (int)begin * 4, r1 = (int)end * 4 < j->n ? (int)end * 4 : j->n;
    llm__cpu_gemm_small_m(j->m, r1 - r0, j->k, j->alpha, j->a, j->lda, j->b + (size_t)r0 * j->ldb, j->ldb,
                          j->beta, j->c + r0, j->ldc);
}

static llm_status cpu_sgemm(llm_backend *be, int ta, int tb, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta,
                            float *c, int ldc) {
    if (m <= 0 || n <= 0) return LLM_OK;
    if (k <= 0) { /* BLAS leaves C alone for k = 0 only when beta = 1 */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return LLM_OK;
    }
    gemm_job j = { ta, tb, m, n, k, lda, ldb, ldc, m >= n, 1, alpha, beta, a, b, c, 0 };
    int threads = be && be->impl ? llm__pool_threads(llm__cpu_pool(be)) : 1;
    if (!ta && tb && m <= LLM__GEMM_SMALL_M) {
        /* bound by reading B: its rows, in groups of 4, split over the threads */
        if (threads > 1 && (double)n * k >= LLM_CPU_SMALL_MT_MIN)
            llm__pool_for(llm__cpu_pool(be), (n + 3) / 4, 1, small_m_chunk, &j);
        else
            llm__cpu_gemm_small_m(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return LLM_OK;
    }
    j.own = llm__cpu_gemm_own_ok(n, alpha, beta);
    /* weight gradients (A transposed, long k): gemm_avx512.c packs all of
     * its block's B, so halving B (split n) rather than A's rows halves each
     * thread's packing; measured 10-20% faster for 128..512 x 128 x 2048 */
    if (j.own && ta && !tb && n >= 64 * threads) j.split_m = 0;
    int len = j.split_m ? m : n;
    if (threads > 1 && (double)m * n * k >= LLM_CPU_GEMM_MT_MIN && len >= 32 * threads) {
        j.parts = threads;
        llm__pool_for(llm__cpu_pool(be), threads, 1, gemm_chunk, &j);
    } else {
        gemm_block(&j, 0, len);
    }
    return LLM_OK;
}

static llm_status cpu_sgemm_batched(llm_backend *be, int ta, int tb, int m, int n, int k,
                                    float alpha, const float *a, int lda, int64_t sa,
                                    const float *b, int ldb, int64_t sb, float beta, float *c,
                                    int ldc, int64_t sc, int batch) {
    /* OpenBLAS 0.3.21 has no batched sgemm; one call per matrix */
    for (int i = 0; i < batch; i++)
        LLM__CHECK(cpu_sgemm(be, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb, beta,
                             c + i * sc, ldc));
    return LLM_OK;
}

const llm__backend_ops llm__cpu_ops = {
    .name = "cpu",
    .caps = LLM__BACKEND_HOST_MEMORY,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memset_zero = cpu_memset_zero,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .copy_d2d = cpu_copy,
    .synchronize = NULL,
    .sgemm = cpu_sgemm,
    .sgemm_batched = cpu_sgemm_batched,
    .fill = llm__cpu_fill,
    .fill_i32 = llm__cpu_fill_i32,
    .axpy = llm__cpu_axpy,
    .scale = llm__cpu_scale,
    .add = llm__cpu_add,
    .mul = llm__cpu_mul,
    .copy_rows = llm__cpu_copy_rows,
    .bias_act_forward = llm__cpu_bias_act_forward,
    .linear_forward = llm__cpu_linear_forward,
    .act_backward = llm__cpu_act_backward,
    .bias_backward = llm__cpu_bias_backward,
    .softmax_forward = llm__cpu_softmax_forward,
    .softmax_backward = llm__cpu_softmax_backward,
    .layernorm_forward = llm__cpu_layernorm_forward,
    .layernorm_backward = llm__cpu_layernorm_backward,
    .embedding_forward = llm__cpu_embedding_forward,
    .embedding_backward = llm__cpu_embedding_backward,
    .lstm_step_forward = llm__cpu_lstm_step_forward,
    .lstm_step_backward = llm__cpu_lstm_step_backward,
    .gru_step_forward = llm__cpu_gru_step_forward,
    .gru_step_backward = llm__cpu_gru_step_backward,
    .lstm_sequence_forward = llm__cpu_lstm_sequence_forward,
    .lstm_sequence_backward = llm__cpu_lstm_sequence_backward_fused,
    .lstm_layer_forward = llm__cpu_lstm_layer_forward,
    .attention_forward = llm__cpu_attention_forward,
    .attention_backward = llm__cpu_attention_backward,
    .pool_forward = llm__cpu_pool_forward,
    .pool_backward = llm__cpu_pool_backward,
    .dropout = llm__cpu_dropout,
    .loss_bce_logits = llm__cpu_loss_bce_logits,
    .loss_bce_probs = llm__cpu_loss_bce_probs,
    .loss_sce_logits = llm__cpu_loss_sce_logits,
    .loss_sce_probs = llm__cpu_loss_sce_probs,
    .loss_mse = llm__cpu_loss_mse,
    .sum = llm__cpu_sum,
    .sum_squares = llm__cpu_sum_squares,
    .count_nonfinite = llm__cpu_count_nonfinite,
    .optimizer_update = llm__cpu_optimizer_update,
};

/* OpenBLAS fell back to kernels older than the CPU: DYNAMIC_ARCH builds that
 * do not know a CPU (Debian's 0.3.21 on Sapphire Rapids and later) pick
 * these pre-AVX cores. The warning at creation and llm_backend_describe
 * both ask here. */
static int blas_core_is_generic(void) {
    const char *core = openblas_get_corename();
    return core && (strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0 || strcmp(core, "Nehalem") == 0) &&
           __builtin_cpu_supports("avx2");
}

int llm__cpu_isa_limit = 2;

static llm_status cpu_probe(int device, const char *fn) {
    (void)device; (void)fn;
    return LLM_OK;
}

static llm_status cpu_init(llm_backend *be, const llm_backend_options *opts, const char *fn) {
    int threads = opts->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    llm__cpu *cpu = llm__calloc(1, sizeof *cpu);
    if (!cpu) return llm__oom(fn);
    llm_status s = llm__pool_create(&cpu->pool, threads);
    if (s != LLM_OK) { llm__free(cpu); return s; }
    be->ops = &llm__cpu_ops;
    be->impl = cpu;
    be->threads = threads;
    /* every GEMM runs on one OpenBLAS thread; cpu_sgemm splits large ones
     * over our pool (the setting is process-wide) */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    if (blas_core_is_generic())
        llm__log(LLM_LOG_WARN, "OpenBLAS chose its generic '%s' kernels on a CPU with AVX2; "
                 "set OPENBLAS_CORETYPE (e.g. Haswell or SkylakeX) for much faster GEMM", openblas_get_corename());
    return LLM_OK;
}

static void cpu_release(llm_backend *be) {
    llm__cpu *cpu = be->impl;
    if (!cpu) return;
    llm__pool_free(cpu->pool);
    llm__free(cpu);
    be->impl = NULL;
}

static void cpu_describe(const llm_backend *be, char *buf, size_t len) {
    const char *core = openblas_get_corename();
    const char *config = openblas_get_config();
    int generic = blas_core_is_generic();
    snprintf(buf, len, "cpu threads=%d blas=%s core=%s%s", be->threads,
             config ? config : "OpenBLAS", core ? core : "unknown",
             generic ? " (generic kernels on an AVX2 CPU: set OPENBLAS_CORETYPE)" : "");
}

const llm__backend_provider llm__cpu_provider = {
    LLM_BACKEND_CPU, cpu_probe, cpu_init, cpu_release, cpu_describe,
};
