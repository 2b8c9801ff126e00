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

/* GEMMs below this many multiply-adds (m n k) run on one OpenBLAS thread.
 * A recurrent layer's per-step GEMMs ([32, 128] x [128, 512]: 2.1M) take
 * ~60 us on one core; split over two, OpenBLAS's hand-off (its worker spins
 * on sched_yield between calls and must be woken, and competes with our pool
 * and anything else on the machine) cost more than it saved when measured
 * on a 2-core Zen machine (training ~10% faster with one thread here). */
#ifndef LLM_CPU_GEMM_MT_MIN
#define LLM_CPU_GEMM_MT_MIN (8.0 * 1024 * 1024)
#endif

/* OpenBLAS's thread count is process-wide, and OpenBLAS 0.3.21 does not
 * promise that changing it is safe while another thread is inside a GEMM.
 * GEMMs hold this lock shared; changing the count takes it exclusively, so
 * concurrent callers that want the same count (e.g. inference threads, all
 * small GEMMs on one BLAS thread) run in parallel, and a change waits for
 * the GEMMs in flight. A single trainer never contends. */
static pthread_rwlock_t blas_lock = PTHREAD_RWLOCK_INITIALIZER;

static void blas_enter(llm_backend *be, double madds) {
    int want = madds < LLM_CPU_GEMM_MT_MIN || !be || be->threads < 1 ? 1 : be->threads;
    for (;;) {
        pthread_rwlock_rdlock(&blas_lock);
        if (openblas_get_num_threads() == want) return; /* leaves the read lock held */
        pthread_rwlock_unlock(&blas_lock);
        pthread_rwlock_wrlock(&blas_lock);
        if (openblas_get_num_threads() != want) openblas_set_num_threads(want);
        pthread_rwlock_unlock(&blas_lock);
    }
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
    blas_enter(be, (double)m * n * k);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    pthread_rwlock_unlock(&blas_lock);
    return LLM_OK;
}

static llm_status cpu_sgemm_batched(llm_backend *be, int ta, int tb, int m, int n, int k,
                                    float alpha, const float *a, int lda, int64_t sa,
                                    const float *b, int ldb, int64_t sb, float beta, float *c,
                                    int ldc, int64_t sc, int batch) {
    /* OpenBLAS 0.3.21 has no batched sgemm; one call per matrix, each
     * threaded by OpenBLAS itself. */
    for (int i = 0; i < batch; i++)
        LLM__CHECK(cpu_sgemm(be, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb, beta,
                             c + i * sc, ldc));
    return LLM_OK;
}

const llm__backend_ops llm__cpu_ops = {
    .name = "cpu",
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

llm_status llm__cpu_backend_init(llm_backend *be, const llm_backend_options *opts) {
    int threads = opts->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    llm__cpu *cpu = llm__calloc(1, sizeof *cpu);
    if (!cpu) return llm__oom("llm_backend_create");
    llm_status s = llm__pool_create(&cpu->pool, threads);
    if (s != LLM_OK) { llm__free(cpu); return s; }
    be->ops = &llm__cpu_ops;
    be->impl = cpu;
    be->threads = threads;
    /* OpenBLAS's thread count is process-wide; cpu_sgemm sets it per call
     * from the GEMM's size and this backend's thread count. Our pool's
     * workers sleep while BLAS runs, so the two never oversubscribe the
     * cores. */
    const char *core = openblas_get_corename();
    if (core && (strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0 ||
                 strcmp(core, "Nehalem") == 0) && __builtin_cpu_supports("avx2"))
        llm__log(LLM_LOG_WARN, "OpenBLAS chose its generic '%s' kernels on a CPU with AVX2; "
                 "set OPENBLAS_CORETYPE (e.g. Haswell or SkylakeX) for much faster GEMM", core);
    return LLM_OK;
}

void llm__cpu_backend_release(llm_backend *be) {
    llm__cpu *cpu = be->impl;
    if (!cpu) return;
    llm__pool_free(cpu->pool);
    llm__free(cpu);
    be->impl = NULL;
}

void llm__cpu_backend_describe(const llm_backend *be, char *buf, size_t len) {
    const char *core = openblas_get_corename();
    const char *config = openblas_get_config();
    int generic = core && (strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0) &&
                  __builtin_cpu_supports("avx2");
    snprintf(buf, len, "cpu threads=%d blas=%s core=%s%s", be->threads,
             config ? config : "OpenBLAS", core ? core : "unknown",
             generic ? " (generic kernels on an AVX2 CPU: set OPENBLAS_CORETYPE)" : "");
}
