/* libllm private: the register-blocked tile product of the CPU kernels
 * (attention tiles, the LSTM's recurrent products), inlined into each
 * caller's LLM__SIMD_CLONES function so it runs 16 floats wide on AVX-512
 * (4 rows x 16 columns of accumulators, one register each) and 8 on AVX2.
 * Outside AVX-512 the 16 columns are two named v8s per row: GCC lowers a
 * v16 in an AVX2 clone through the stack (spills on every multiply-add,
 * measured at half the speed), so the width is picked at run time; the
 * sums are the same either way. */
#ifndef LLM_PRIVATE_CPU_TILE_MM_H
#define LLM_PRIVATE_CPU_TILE_MM_H

#include <stdint.h>
#include "cpu.h"
#include "simd.h"

/* C[m, n] = (acc ? C : 0) + A[m, k] B[k, n]. A(i, p) is a[i * ars + p * acs]
 * (any strides: A is read a scalar at a time); B row p starts at b + p * ldb,
 * C row i at c + i * ldc; n is a multiple of 8 and B's and C's rows are read
 * and written 8 floats at a time up to n. Each element is
 * (((c0 + a0 b0) + a1 b1) + ...) over p in order, whatever the blocking. */
static inline __attribute__((always_inline)) void llm__tile_mm(int m, int n, int k, const float *a, int64_t ars,
                                                              int64_t acs, const float *b, int64_t ldb, float *c,
                                                              int64_t ldc, int acc) {
    const v8 zero = { 0 };
    const v16 zero16 = { 0 };
    const int wide = llm__cpu_isa_limit >= 2 && __builtin_cpu_supports("avx512f"); /* v16 in registers */
    int i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *a0 = a + i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
        float *c0 = c + i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        int j = 0;
        for (; !wide && j + 16 <= n; j += 16) {
            v8 x0 = zero, x1 = zero, x2 = zero, x3 = zero, y0 = zero, y1 = zero, y2 = zero, y3 = zero;
            if (acc) {
                V8_LD(x0, c0 + j); V8_LD(x1, c1 + j); V8_LD(x2, c2 + j); V8_LD(x3, c3 + j);
                V8_LD(y0, c0 + j + 8); V8_LD(y1, c1 + j + 8); V8_LD(y2, c2 + j + 8); V8_LD(y3, c3 + j + 8);
            }
            const float *bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) {
                v8 b0, b1;
                V8_LD(b0, bp); V8_LD(b1, bp + 8);
                const float s0 = a0[p * acs], s1 = a1[p * acs], s2 = a2[p * acs], s3 = a3[p * acs];
                x0 += s0 * b0; y0 += s0 * b1;
                x1 += s1 * b0; y1 += s1 * b1;
                x2 += s2 * b0; y2 += s2 * b1;
                x3 += s3 * b0; y3 += s3 * b1;
            }
            V8_ST(c0 + j, x0); V8_ST(c1 + j, x1); V8_ST(c2 + j, x2); V8_ST(c3 + j, x3);
            V8_ST(c0 + j + 8, y0); V8_ST(c1 + j + 8, y1); V8_ST(c2 + j + 8, y2); V8_ST(c3 + j + 8, y3);
        }
        for (; wide && j + 16 <= n; j += 16) {
            v16 x0 = zero16, x1 = zero16, x2 = zero16, x3 = zero16;
            if (acc) { V16_LD(x0, c0 + j); V16_LD(x1, c1 + j); V16_LD(x2, c2 + j); V16_LD(x3, c3 + j); }
            const float *bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) {
                v16 b0;
                V16_LD(b0, bp);
                x0 += a0[p * acs] * b0;
                x1 += a1[p * acs] * b0;
                x2 += a2[p * acs] * b0;
                x3 += a3[p * acs] * b0;
            }
            V16_ST(c0 + j, x0); V16_ST(c1 + j, x1); V16_ST(c2 + j, x2); V16_ST(c3 + j, x3);
        }
        if (j < n) {
            v8 x0 = zero, x1 = zero, x2 = zero, x3 = zero;
            if (acc) {
                V8_LD(x0, c0 + j); V8_LD(x1, c1 + j); V8_LD(x2, c2 + j); V8_LD(x3, c3 + j);
            }
            const float *bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) {
                v8 b0;
                V8_LD(b0, bp);
                x0 += a0[p * acs] * b0;
                x1 += a1[p * acs] * b0;
                x2 += a2[p * acs] * b0;
                x3 += a3[p * acs] * b0;
            }
            V8_ST(c0 + j, x0); V8_ST(c1 + j, x1); V8_ST(c2 + j, x2); V8_ST(c3 + j, x3);
        }
    }
    for (; i < m; i++) {
        const float *a0 = a + i * ars;
        float *c0 = c + i * ldc;
        int j = 0;
        for (; wide && j + 16 <= n; j += 16) {
            v16 x0 = zero16;
            if (acc) V16_LD(x0, c0 + j);
            const float *bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) {
                v16 b0;
                V16_LD(b0, bp);
                x0 += a0[p * acs] * b0;
            }
            V16_ST(c0 + j, x0);
        }
        for (; j < n; j += 8) {
            v8 x0 = zero;
            if (acc) V8_LD(x0, c0 + j);
            const float *bp = b + j;
            for (int p = 0; p < k; p++, bp += ldb) {
                v8 b0;
                V8_LD(b0, bp);
                x0 += a0[p * acs] * b0;
            }
            V8_ST(c0 + j, x0);
        }
    }
}

#endif /* LLM_PRIVATE_CPU_TILE_MM_H */
