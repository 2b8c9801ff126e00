/* An sgemm of libllm's own for CPUs with AVX-512: C = op(A) op(B) + beta C
 * (alpha 1, beta 0 or 1, n a multiple of 16), the products of dense layers,
 * attention projections and weight gradients.
 *
 * Why: OpenBLAS 0.3.21 does not know recent CPUs; told Haswell (as this
 * project's machines are) it runs AVX2 kernels, half the rate of a core
 * with two 512-bit FMA pipes (Zen 5, Intel's server cores). Here B is
 * packed in blocks of KC x 64 (32 KiB, in L1) and 6 rows x 64 columns of C
 * are 24 registers of accumulators, fed by 4 vector loads and 6 broadcasts
 * per 24 multiply-adds.
 *
 * Every element of C is its start value (0, or C's own for beta 1) plus
 * the products over k in order, one fused multiply-add each, carried
 * through C between blocks of k: the same bits whatever the row or column
 * blocks, the batch size or the thread count. */
#include <string.h>
#include "cpu.h"

#if defined(__x86_64__) && !defined(LLM_NO_SIMD_CLONES) && defined(__GNUC__)
#include <immintrin.h>

#define KC 128 /* inner-dimension block: 128 x 64 packed floats = 32 KiB */
#define NC 64  /* columns of a packed block: 4 vectors of 16 */
#define TARGET __attribute__((target("avx512f")))

/* the rows' start values: C (nv of the 4 vectors), the bias row bi, or zeros */
#define LOAD_ROW(r)                                                                                       \
    __m512 c##r##0 = zero, c##r##1 = zero, c##r##2 = zero, c##r##3 = zero;                                \
    if (init || bi) {                                                                                     \
        const float *s_ = init ? c + r * ldc : bi;                                                        \
        c##r##0 = _mm512_loadu_ps(s_);                                                                    \
        if (nv > 1) c##r##1 = _mm512_loadu_ps(s_ + 16);                                                   \
        if (nv > 2) c##r##2 = _mm512_loadu_ps(s_ + 32);                                                   \
        if (nv > 3) c##r##3 = _mm512_loadu_ps(s_ + 48);                                                   \
    }
#define FMA_ROW(r)                                                                                        \
    {                                                                                                     \
        __m512 s = _mm512_set1_ps(a[r * ars + p * acs]);                                                  \
        c##r##0 = _mm512_fmadd_ps(s, b0, c##r##0);                                                        \
        c##r##1 = _mm512_fmadd_ps(s, b1, c##r##1);                                                        \
        c##r##2 = _mm512_fmadd_ps(s, b2, c##r##2);                                                        \
        c##r##3 = _mm512_fmadd_ps(s, b3, c##r##3);                                                        \
    }
#define STORE_ROW(r)                                                                                      \
    _mm512_storeu_ps(c + r * ldc, c##r##0);                                                               \
    if (nv > 1) _mm512_storeu_ps(c + r * ldc + 16, c##r##1);                                              \
    if (nv > 2) _mm512_storeu_ps(c + r * ldc + 32, c##r##2);                                              \
    if (nv > 3) _mm512_storeu_ps(c + r * ldc + 48, c##r##3);

/* 6 rows of C (A's element (r, p) at a[r * ars + p * acs]) times a packed
 * block bp [kb][64]; nv of the 4 column vectors are C's; each row starts
 * from C (init), else from bi (NULL: zeros); pf (or NULL): a column of A to
 * prefetch, row by row */
TARGET static void tile6(int kb, const float *a, int64_t ars, int64_t acs, const float *bp, float *c, int64_t ldc,
                         int nv, int init, const float *bi, const float *pf) {
    const __m512 zero = _mm512_setzero_ps();
    LOAD_ROW(0) LOAD_ROW(1) LOAD_ROW(2) LOAD_ROW(3) LOAD_ROW(4) LOAD_ROW(5)
    for (int p = 0; p < kb; p++, bp += NC) {
        if (pf) __builtin_prefetch(pf + p * acs);
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        __m512 b2 = _mm512_loadu_ps(bp + 32), b3 = _mm512_loadu_ps(bp + 48);
        FMA_ROW(0) FMA_ROW(1) FMA_ROW(2) FMA_ROW(3) FMA_ROW(4) FMA_ROW(5)
    }
    STORE_ROW(0) STORE_ROW(1) STORE_ROW(2) STORE_ROW(3) STORE_ROW(4) STORE_ROW(5)
}

TARGET static void tile1(int kb, const float *a, int64_t acs, const float *bp, float *c, int nv, int init,
                         const float *bi) {
    const __m512 zero = _mm512_setzero_ps();
    const int64_t ars = 0, ldc = 0;
    (void)ars;
    LOAD_ROW(0)
    for (int p = 0; p < kb; p++, bp += NC) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        __m512 b2 = _mm512_loadu_ps(bp + 32), b3 = _mm512_loadu_ps(bp + 48);
        FMA_ROW(0)
    }
    STORE_ROW(0)
}

/* dst[r * ldd + c] = src[c * lds + r] for a 16 x 16 block, in registers */
TARGET static void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]); /* r[i]: source column i */
}

/* op(B)'s rows p0 .. p0 + kb - 1, columns j0 .. j0 + nb - 1 into bp [kb][64],
 * zeros in the columns past nb */
TARGET static void pack_b(int tb, const float *b, int ldb, int p0, int kb, int j0, int nb, float *bp) {
    if (!tb) {
        for (int p = 0; p < kb; p++) {
            memcpy(bp + p * NC, b + (int64_t)(p0 + p) * ldb + j0, (size_t)nb * sizeof *bp);
            if (nb < NC) memset(bp + p * NC + nb, 0, (size_t)(NC - nb) * sizeof *bp);
        }
    } else {
        /* B is W^T: 16 x 16 blocks of W transposed in registers (a
         * float-at-a-time transpose cost as much as the products of a
         * 64-row block), the rows of kb past a multiple of 16 one by one */
        const int kb16 = kb & ~15;
        for (int j = 0; j + 16 <= nb; j += 16)
            for (int p = 0; p < kb16; p += 16)
                transpose16(b + (int64_t)(j0 + j) * ldb + p0 + p, ldb, bp + p * NC + j, NC);
        for (int j = 0; j < nb; j++) {
            const float *col = b + (int64_t)(j0 + j) * ldb + p0;
            for (int p = kb16; p < kb; p++) bp[p * NC + j] = col[p];
        }
        for (int p = 0; p < kb && nb < NC; p++) memset(bp + p * NC + nb, 0, (size_t)(NC - nb) * sizeof *bp);
    }
}

TARGET static void gemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                        float beta, const float *bias, float *c, int ldc) {
    float bp[KC * NC] __attribute__((aligned(64)));
    const int64_t ars = ta ? 1 : lda, acs = ta ? lda : 1;
    for (int j0 = 0; j0 < n; j0 += NC) {
        const int nb = n - j0 < NC ? n - j0 : NC, nv = nb / 16;
        for (int p0 = 0; p0 < k; p0 += KC) {
            const int kb = k - p0 < KC ? k - p0 : KC, init = p0 > 0 || beta != 0.0f;
            const float *bi = !init && bias ? bias + j0 : NULL;
            pack_b(tb, b, ldb, p0, kb, j0, nb, bp);
            const float *ap = a + p0 * acs;
            float *cp = c + j0;
            int i = 0;
            /* with A transposed a tile reads one float-sextet per row of A,
             * kb rows a row length apart, which no hardware prefetcher
             * follows: each tile fetches the next 16 columns' lines ahead of
             * the tiles that need them (a 512 x 64 x 6400 weight gradient
             * 70 -> 104 GFLOP/s on one Zen 4 core, near its FMA peak) */
            for (; i + 6 <= m; i += 6)
                tile6(kb, ap + i * ars, ars, acs, bp, cp + (int64_t)i * ldc, ldc, nv, init, bi,
                      ta && i + 16 < m ? ap + i + 16 : NULL);
            for (; i < m; i++) tile1(kb, ap + i * ars, acs, bp, cp + (int64_t)i * ldc, nv, init, bi);
        }
    }
}

int llm__cpu_gemm_own_ok(int n, float alpha, float beta) {
    return n > 0 && n % 16 == 0 && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && llm__cpu_isa_limit >= 2 &&
           __builtin_cpu_supports("avx512f");
}

void llm__cpu_gemm_own(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc) {
    if (m > 0 && n > 0 && k > 0) gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, NULL, c, ldc);
}

void llm__cpu_gemm_own_bias(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                            const float *bias, float *c, int ldc) {
    if (m > 0 && n > 0 && k > 0) gemm(ta, tb, m, n, k, a, lda, b, ldb, 0.0f, bias, c, ldc);
}

#else /* no AVX-512 build: OpenBLAS does every product */

int llm__cpu_gemm_own_ok(int n, float alpha, float beta) {
    (void)n; (void)alpha; (void)beta;
    return 0;
}

void llm__cpu_gemm_own(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc) {
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c;
    (void)ldc;
}

void llm__cpu_gemm_own_bias(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                            const float *bias, float *c, int ldc) {
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)bias; (void)c;
    (void)ldc;
}
#endif
