/* C = alpha A B^T + beta C for the few rows of A (m <= LLM__GEMM_SMALL_M)
 * that a batch of a few has (A [m, k], B [n, k], both row-major): a single
 * message through an LSTM, a token of GPT decoding.
 *
 * OpenBLAS packs B for every call, which at m = 1 costs ~5x the arithmetic
 * (29 us for the LSTM's 1 x 512 x 128 step on this Zen, against 6 us here):
 * two hundred such steps were most of a message's 7 ms. Here each group of
 * four rows of B is read once, from cache, and dotted with every row of A.
 * Every product adds in eight interleaved partial sums in a fixed order, so
 * the AVX2 and baseline builds give the same bits; the result is not the
 * bits of OpenBLAS's (a larger batch of the same rows), only within rounding. */
#include "cpu.h"
#include "simd.h"


static inline float finish(float dot, float alpha, float beta, float c) {
    return beta == 0.0f ? alpha * dot : alpha * dot + beta * c;
}

/* static, as every LLM__SIMD_CLONES function here: Clang emits the ifunc of
 * an external multiversioned function only where a caller declares it so */
LLM__SIMD_CLONES
static void gemm_small_m(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc) {
    const int k8 = k & ~7;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *b0 = b + (size_t)j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        for (int i = 0; i < m; i++) {
            const float *ar = a + (size_t)i * lda;
            v8 s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, av, bv;
            for (int kk = 0; kk < k8; kk += 8) {
                V8_LD(av, ar + kk);
                V8_LD(bv, b0 + kk);
                s0 += av * bv;
                V8_LD(bv, b1 + kk);
                s1 += av * bv;
                V8_LD(bv, b2 + kk);
                s2 += av * bv;
                V8_LD(bv, b3 + kk);
                s3 += av * bv;
            }
            float t0 = SUM8(s0), t1 = SUM8(s1), t2 = SUM8(s2), t3 = SUM8(s3);
            for (int kk = k8; kk < k; kk++) {
                t0 += ar[kk] * b0[kk];
                t1 += ar[kk] * b1[kk];
                t2 += ar[kk] * b2[kk];
                t3 += ar[kk] * b3[kk];
            }
            float *cr = c + (size_t)i * ldc + j;
            cr[0] = finish(t0, alpha, beta, cr[0]);
            cr[1] = finish(t1, alpha, beta, cr[1]);
            cr[2] = finish(t2, alpha, beta, cr[2]);
            cr[3] = finish(t3, alpha, beta, cr[3]);
        }
    }
    for (; j < n; j++) {
        const float *b0 = b + (size_t)j * ldb;
        for (int i = 0; i < m; i++) {
            const float *ar = a + (size_t)i * lda;
            v8 s0 = { 0 }, av, bv;
            for (int kk = 0; kk < k8; kk += 8) {
                V8_LD(av, ar + kk);
                V8_LD(bv, b0 + kk);
                s0 += av * bv;
            }
            float t0 = SUM8(s0);
            for (int kk = k8; kk < k; kk++) t0 += ar[kk] * b0[kk];
            float *cr = c + (size_t)i * ldc + j;
            cr[0] = finish(t0, alpha, beta, cr[0]);
        }
    }
}

void llm__cpu_gemm_small_m(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                           float beta, float *c, int ldc) {
    gemm_small_m(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
