/* The CPU LSTM layer forward in one pass (llm__lstm_layer), after ONNX
 * Runtime's MLAS / DeepCPU: the weights [W_ih | W_hh] packed once per call
 * into panels of 16 units x 4 gates (64 columns; 8 x 4 on AVX2 and the
 * baseline), so one register tile holds all four gates of the same units
 * and the gate math, the cell and the hidden state run on the product's
 * registers (nothing of size [B, T, 4H] is written for a batch, only what
 * training keeps for backward).
 *
 * Rows (sequences) never interact, so the threads take groups of 8 or
 * LF_GROUP rows from a shared counter, and each group goes through all T
 * steps, one product per step over K = E + H ([x_t | h_{t-1}]): the group's
 * rows share every panel while it is in L1. A group of fewer than
 * LF_TWO_PHASE_ROWS rows (batch 1, a message) first projects all its steps'
 * inputs in one product, then per step streams only W_hh's panels, 8 or 16
 * sums at a time (a GEMV at cache speed).
 *
 * AVX-512 or AVX2 with FMA where the CPU has it (chosen at run time), else
 * the same code in baseline SSE2 without fused multiply-adds (other bits):
 * each gives the same bits for any batch, row grouping and thread count.
 * The backward (llm__cpu_lstm_sequence_backward_fused) is at the end. */
#include <sched.h>
#include <string.h>
#include "cpu.h"
#include "simd.h"

/* the v8 helpers are always inlined: no v8 crosses a call, whatever
 * GCC's note on the AVX calling convention says */
#pragma GCC diagnostic ignored "-Wpsabi"

#define LF_GROUP 16          /* rows taken through the steps together */
#define LF_TWO_PHASE_ROWS 4  /* fewer rows in a group: project all steps first */

typedef int v8i __attribute__((vector_size(32)));
#define V8_SPLAT(s) ((v8){ (s), (s), (s), (s), (s), (s), (s), (s) })
#define V8I_SPLAT(s) ((v8i){ (s), (s), (s), (s), (s), (s), (s), (s) })

typedef struct lf_job {
    const llm__lstm_layer *q;
    const float *packed; /* H / 8 panels of (E + H) x 32 */
    const float *pbias;  /* [H / 8][32] the bias in panel order */
    float *xw;           /* [B, T, 4H] in panel order (groups of few rows) */
    float *abuf0, *abuf1; /* [B, E + H] each: [x_t | h_{t-1}] of every row, ping-pong */
    float *cbuf;          /* [B, H] cell state */
    int vw;               /* units per panel: the vector width */
    int64_t group;        /* rows per group (at most LF_GROUP) */
    int64_t next;         /* the next group to take (atomic) */
    /* batch 1 on several threads (lf_coop), atomic counters: input-row
     * blocks taken and rows projected; step tiles taken and finished */
    int64_t proj_next, proj_done, step_next, step_done;
    int64_t first;        /* lf_coop: the first step run (the ones before are padding) */
} lf_job;

/* Steps before the first real one of every row in [b0, b0 + n), in the
 * forward direction: the state is still zero there and a padded step
 * carries it, so they need no product, only the zeros such a step writes
 * (a pre-padded message of 150 words in a row of 600 runs 150 steps). 0
 * when reversed (padding then comes last) or without a mask. */
int llm__cpu_lstm_skip_leading_padding = 1;

static int64_t lf_leading_pad(const llm__lstm_layer *q, int64_t b0, int64_t n) {
    if (!q->mask || q->reverse || !llm__cpu_lstm_skip_leading_padding) return 0;
    int64_t lead = q->T;
    for (int64_t r = 0; r < n && lead > 0; r++) {
        const float *m = q->mask + (b0 + r) * q->T;
        int64_t k = 0;
        while (k < lead && m[k] == 0.0f) k++;
        lead = k;
    }
    return lead;
}

/* What steps [0, s0) of rows [b0, b0 + n) write as padded steps from the
 * zero state: the bits lf_cell's padded branch would store. */
static void lf_zero_steps(const llm__lstm_layer *q, int64_t b0, int64_t n, int64_t s0) {
    const int64_t T = q->T, H = q->H;
    const size_t hb = (size_t)H * sizeof(float);
    for (int64_t b = b0; b < b0 + n; b++) {
        for (int64_t t = 0; t < s0; t++) {
            const int64_t row = b * T + t;
            if (q->gates) memset(q->gates + row * 4 * H, 0, 4 * hb);
            if (q->c) memset(q->c + row * H, 0, hb);
            if (q->h) memset(q->h + row * H, 0, hb);
            if (q->hprev && t + 1 < T) memset(q->hprev + (row + 1) * H, 0, hb);
        }
        if (q->h_last && s0 == T) memset(q->h_last + b * H, 0, hb);
    }
}

#define LF_COOP_ROWS 16  /* input rows a thread projects at a time */
#define LF_COOP_PANELS 4 /* panels of a step a thread takes at a time */

/* Waits until *counter >= target: spins (the other thread is a step's
 * fraction of a microsecond behind), then yields, for a host whose
 * threads outnumber its free cores. */
static void lf_wait_for(const int64_t *counter, int64_t target) {
    for (unsigned i = 0; __atomic_load_n(counter, __ATOMIC_ACQUIRE) < target; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (i >= 4096) sched_yield();
    }
}

/* one step of one row group, for the epilogue */
typedef struct lf_step {
    const llm__lstm_layer *q;
    int64_t b0, t, tn; /* tn: the next step's t, -1 after the last */
    int last;
    const float *a;    /* this step's A rows ([x_t | h_{t-1}], or h_{t-1}) */
    float *an;         /* the next step's: h_t goes there */
    int64_t lda, hoff; /* row stride of a and an, where h sits in a row */
    float *cbuf;
} lf_step;

#if defined(__x86_64__) && !defined(LLM_NO_SIMD_CLONES) && defined(__GNUC__)
#  include <immintrin.h>
typedef float v16 __attribute__((vector_size(64)));
/* AVX-512: 16 floats a vector, 32 registers (4-row tiles); where the CPU
 * has two 512-bit FMA pipes (Zen 5, Intel server cores) twice AVX2's rate.
 * Every lane does the AVX2 build's operations in the same order (FMA
 * chains, min, max, divide). */
#  define LF_ISA avx512
#  define LF_TARGET __attribute__((target("avx512f,fma")))
#  define LFV v16
#  define LF_VW 16
#  define LF_ROWS4 1
#  define LF_ROWS3 0
#  define LF_LD(dst, p) __builtin_memcpy(&(dst), (p), sizeof(v16))
#  define LF_ST(p, src) __builtin_memcpy((p), &(src), sizeof(v16))
#  define LF_SPLAT(s) ((v16){ (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s), (s) })
#  define LF_MADD(c, a, b) ((v16)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#  define LF_IN_REG(v) __asm__("" : "+v"(v))
#  define LF_MIN(a, b) ((v16)_mm512_min_ps((__m512)(a), (__m512)(b)))
#  define LF_MAX(a, b) ((v16)_mm512_max_ps((__m512)(a), (__m512)(b)))
#  include "lstm_fused_body.h"
#  undef LF_ISA
#  undef LF_TARGET
#  undef LFV
#  undef LF_VW
#  undef LF_ROWS4
#  undef LF_ROWS3
#  undef LF_LD
#  undef LF_ST
#  undef LF_SPLAT
#  undef LF_MADD
#  undef LF_IN_REG
#  undef LF_MIN
#  undef LF_MAX

#  define LF_ISA fma
#  define LF_TARGET __attribute__((target("avx2,fma")))
#  define LFV v8
#  define LF_VW 8
#  define LF_ROWS4 0
#  define LF_ROWS3 1
#  define LF_LD V8_LD
#  define LF_ST V8_ST
#  define LF_SPLAT V8_SPLAT
#  define LF_MADD(c, a, b) ((v8)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
/* GCC otherwise folds a weight vector's load into each multiply-add that
 * uses it, loading it once per row, and the loads become the limit */
#  define LF_IN_REG(v) __asm__("" : "+x"(v))
#  define LF_MIN(a, b) ((v8)_mm256_min_ps((__m256)(a), (__m256)(b)))
#  define LF_MAX(a, b) ((v8)_mm256_max_ps((__m256)(a), (__m256)(b)))
#  include "lstm_fused_body.h"
#  undef LF_ISA
#  undef LF_TARGET
#  undef LF_MADD
#  undef LF_IN_REG
#  undef LF_MIN
#  undef LF_MAX
#  undef LF_ROWS3
#  define LF_HAVE_FMA 1
#else
#  define LFV v8
#  define LF_VW 8
#  define LF_ROWS4 0
#  define LF_LD V8_LD
#  define LF_ST V8_ST
#  define LF_SPLAT V8_SPLAT
#endif

#define LF_ISA generic
#define LF_TARGET
#define LF_ROWS3 0 /* SSE: 16 registers of 4 floats */
#define LF_MADD(c, a, b) ((c) + (a) * (b))
#define LF_IN_REG(v) ((void)0)
/* minps / maxps: a < b ? a : b, and b where either is NaN */
#define LF_SEL(m, a, b) ((v8)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m))))
#define LF_MIN(a, b) LF_SEL((a) < (b), (a), (b))
#define LF_MAX(a, b) LF_SEL((a) > (b), (a), (b))
#include "lstm_fused_body.h"
#undef LF_ISA
#undef LF_TARGET
#undef LF_MADD
#undef LF_IN_REG

/* panels [u0, u1) of vw units each: panel u, row p, column vw g + l =
 * gate g's unit vw u + l, from W_ih for p < E and W_hh after */
static void pack_panels(void *p, int64_t u0, int64_t u1) {
    const lf_job *j = p;
    const llm__lstm_layer *q = j->q;
    const int64_t E = q->E, H = q->H, K = E + H, vw = j->vw, pw = 4 * vw;
    float *packed = (float *)j->packed, *pbias = (float *)j->pbias;
    for (int64_t u = u0; u < u1; u++) {
        float *pan = packed + u * K * pw;
        for (int64_t gl = 0; gl < pw; gl++) {
            const int64_t row = (gl / vw) * H + u * vw + gl % vw;
            const float *wi = q->W_ih + row * E, *wh = q->W_hh + row * H;
            for (int64_t k = 0; k < E; k++) pan[k * pw + gl] = wi[k];
            for (int64_t k = 0; k < H; k++) pan[(E + k) * pw + gl] = wh[k];
            pbias[u * pw + gl] = q->bias[row];
        }
    }
}

/* The instruction set for H units: 2 AVX-512 (panels of 16 units), 1 AVX2
 * with FMA (8 units), 0 the baseline; -1 none (H not a multiple of 8). */
static int pick_isa(int64_t H) {
#ifdef LF_HAVE_FMA
    if (llm__cpu_isa_limit >= 2 && H % 16 == 0 && __builtin_cpu_supports("avx512f")) return 2;
    if (llm__cpu_isa_limit >= 1 && H % 8 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return H % 8 == 0 ? 0 : -1;
}

llm_status llm__cpu_lstm_layer_forward(llm_backend *be, const llm__lstm_layer *q, int *done) {
    *done = 0;
    const int isa = pick_isa(q->H);
    if (q->B <= 0 || q->T <= 0 || q->H <= 0 || isa < 0 || q->E <= 0 || !q->work) return LLM_OK;
    const int64_t B = q->B, T = q->T, E = q->E, H = q->H, K = E + H;
    lf_job j = { .q = q, .packed = q->work, .vw = isa == 2 ? 16 : 8 };
    j.pbias = j.packed + 4 * H * K;
    j.xw = (float *)j.pbias + 4 * H;
    j.abuf0 = j.xw + B * T * 4 * H;
    j.abuf1 = j.abuf0 + B * K;
    j.cbuf = j.abuf1 + B * K;
    llm__pool *pool = llm__cpu_pool(be);
    llm__pool_for(pool, H / j.vw, 1, pack_panels, &j);
    if (q->hprev) /* the first step's entry (the steps write the next one's) */
        for (int64_t b = 0; b < B; b++)
            memset(q->hprev + (b * T + (q->reverse ? T - 1 : 0)) * H, 0, (size_t)H * sizeof(float));
    llm__pool_fn rows = lf_chunk_generic;
#ifdef LF_HAVE_FMA
    if (isa == 2) rows = lf_chunk_avx512;
    else if (isa == 1) rows = lf_chunk_fma;
#endif
    const int threads = llm__pool_threads(pool);
    if (B == 1 && threads > 1 && T > 1) {
        /* one row: the threads split each step's units (see lf_coop) */
        memset(j.abuf0, 0, (size_t)H * sizeof(float));
        memset(j.abuf1, 0, (size_t)H * sizeof(float));
        memset(j.cbuf, 0, (size_t)H * sizeof(float));
        j.first = lf_leading_pad(q, 0, 1);
        lf_zero_steps(q, 0, 1, j.first);
        llm__pool_fn coop = lf_coop_generic;
#ifdef LF_HAVE_FMA
        if (isa == 2) coop = lf_coop_avx512;
        else if (isa == 1) coop = lf_coop_fma;
#endif
        llm__pool_for(pool, threads, 1, coop, &j);
        *done = 1;
        return LLM_OK;
    }
    /* groups of 8 rows unless the batch gives each thread 4 of 16 */
    j.group = B >= 4 * LF_GROUP * threads ? LF_GROUP : 8;
    const int64_t groups = (B + j.group - 1) / j.group;
    llm__pool_for(pool, groups < threads ? groups : threads, 1, rows, &j);
    *done = 1;
    return LLM_OK;
}

/* The LSTM sequence backward with this file's kernels where H is a
 * multiple of a panel's columns (32, or 64 on AVX-512), else
 * kernels_recurrent.c's. Rows split over the threads; each row's sums run
 * in one fixed order, so any thread count gives the same bits. */
llm_status llm__cpu_lstm_sequence_backward_fused(llm_backend *be, const llm__lstm_sequence *q, int *done) {
    int isa = pick_isa(q->H);
    if (isa == 2 && q->H % 64) isa = 1;
    if (q->B <= 0 || q->T <= 0 || q->H <= 0 || q->H % 32 || isa < 0)
        return llm__cpu_lstm_sequence_backward(be, q, done);
    llm__pool_fn rows = lf_back_rows_generic;
#ifdef LF_HAVE_FMA
    if (isa == 2) rows = lf_back_rows_avx512;
    else if (isa == 1) rows = lf_back_rows_fma;
#endif
    llm__pool_for(llm__cpu_pool(be), q->B, 1, rows, (void *)q);
    if (q->dbias && q->dbias_rows) {
        /* the rows' sums (each over its steps in order) in row order: one
         * order for any thread count, and no second pass over dgates */
        const int64_t G4 = 4 * (int64_t)q->H;
        for (int64_t j = 0; j < G4; j++) {
            double s = 0.0;
            for (int64_t b = 0; b < q->B; b++) s += q->dbias_rows[b * G4 + j];
            q->dbias[j] = (float)(q->dbias[j] + s);
        }
        if (q->dbias_added) *q->dbias_added = 1;
    }
    *done = 1;
    return LLM_OK;
}
