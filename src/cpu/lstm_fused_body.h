/* libllm private: the body of the fused LSTM layer forward
 * (kernels_lstm_fused.c), included once per instruction set. The includer
 * defines
 *   LF_ISA            a name suffix (avx512, fma, generic)
 *   LFV, LF_VW        the vector type and its width in floats (8 or 16);
 *                     LF_PW = 4 LF_VW, a panel's columns (4 gates of LF_VW units)
 *   LF_LD, LF_ST, LF_SPLAT  load / store (unaligned) and broadcast
 *   LF_ROWS4          1 where 4-row tiles fit the registers (32 of them)
 *   LF_ROWS3          1 where 3-row tiles do (16 registers of 8 floats)
 *   LF_TARGET         the function attribute for that instruction set
 *   LF_MADD(c, a, b)  c + a * b on v8 (one fused multiply-add, or two ops)
 *   LF_IN_REG(v)      keeps the v8 v in a register (or nothing)
 *   LF_MIN, LF_MAX    lane-wise min / max returning the second operand where
 *                     either is NaN (minps / maxps)
 * and the types and helpers of kernels_lstm_fused.c (lf_job, v8i).
 *
 * Every gate pre-activation is bias + x_t W_ih^T + h_{t-1} W_hh^T summed
 * as one chain of LF_MADD in the inner index's order, whatever tile, row
 * group, batch size or thread computes it: a row's result is the same bits
 * alone or inside any batch, on any thread count (on one instruction set). */

#define LF_CAT2(a, b) a##_##b
#define LF_CAT(a, b) LF_CAT2(a, b)
#define LF_FN(name) LF_CAT(name, LF_ISA)
#define LF_INLINE static inline __attribute__((always_inline)) LF_TARGET
#define LF_PW (4 * LF_VW)

/* tanh as a rational function (Eigen's float tanh: odd degree 13 over even
 * degree 6, within a few ulp, NaN in gives NaN out), clamped where it
 * reaches +-1 in float; sigmoid(x) = (1 + tanh(x / 2)) / 2. One division
 * and a dozen multiply-adds each, about half of what the exp-based
 * fastmath.h forms cost: the gate math is the part of a step that is not
 * the product. */
LF_INLINE LFV LF_FN(lf_tanh)(LFV x) {
    const LFV lim = LF_SPLAT(7.90531110763549805f), nlim = LF_SPLAT(-7.90531110763549805f);
    x = LF_MIN(lim, x);
    x = LF_MAX(nlim, x);
    LFV x2 = x * x;
    LFV p = LF_SPLAT(-2.76076847742355e-16f);
    p = LF_MADD(LF_SPLAT(2.00018790482477e-13f), p, x2);
    p = LF_MADD(LF_SPLAT(-8.60467152213735e-11f), p, x2);
    p = LF_MADD(LF_SPLAT(5.12229709037114e-08f), p, x2);
    p = LF_MADD(LF_SPLAT(1.48572235717979e-05f), p, x2);
    p = LF_MADD(LF_SPLAT(6.37261928875436e-04f), p, x2);
    p = LF_MADD(LF_SPLAT(4.89352455891786e-03f), p, x2);
    p = p * x;
    LFV q = LF_SPLAT(1.19825839466702e-06f);
    q = LF_MADD(LF_SPLAT(1.18534705686654e-04f), q, x2);
    q = LF_MADD(LF_SPLAT(2.26843463243900e-03f), q, x2);
    q = LF_MADD(LF_SPLAT(4.89352518554385e-03f), q, x2);
    return p / q;
}

LF_INLINE LFV LF_FN(lf_sigmoid)(LFV x) {
    const LFV half = LF_SPLAT(0.5f);
    return LF_MADD(half, half, LF_FN(lf_tanh)(half * x));
}

/* acc[r][q] = init_r[q] + sum over p < k of a_r[p] w_q[p], for R rows and P
 * panels of 32 columns (q < 4P: panel q / 4, its 8 columns q % 4): the
 * shapes 2 x 1, 1 x 2 and 1 x 1. Row r of A at a + r * lda; panel i's row p
 * at w + i * wstride + 32 p; row r's initial values at init + r * init_ld,
 * panel after panel (32 floats each). Named registers, no arrays: GCC keeps
 * an indexed LFV array on the stack. */
LF_INLINE void LF_FN(lf_tile_2x1_ld)(int k, const float *a, int64_t lda, const float *w, int64_t ldw,
                                     const float *init, int64_t init_ld, LFV acc[4][8]) {
    LFV c0, c1, c2, c3, d0, d1, d2, d3, b0, b1, b2, b3;
    LF_LD(c0, init); LF_LD(c1, init + LF_VW); LF_LD(c2, init + 2 * LF_VW); LF_LD(c3, init + 3 * LF_VW);
    LF_LD(d0, init + init_ld); LF_LD(d1, init + init_ld + LF_VW);
    LF_LD(d2, init + init_ld + 2 * LF_VW); LF_LD(d3, init + init_ld + 3 * LF_VW);
    const float *a1 = a + lda;
    for (int p = 0; p < k; p++, w += ldw) {
        LF_LD(b0, w); LF_LD(b1, w + LF_VW); LF_LD(b2, w + 2 * LF_VW); LF_LD(b3, w + 3 * LF_VW);
        LF_IN_REG(b0); LF_IN_REG(b1); LF_IN_REG(b2); LF_IN_REG(b3);
        LFV s = LF_SPLAT(a[p]), t = LF_SPLAT(a1[p]);
        c0 = LF_MADD(c0, s, b0); c1 = LF_MADD(c1, s, b1); c2 = LF_MADD(c2, s, b2); c3 = LF_MADD(c3, s, b3);
        d0 = LF_MADD(d0, t, b0); d1 = LF_MADD(d1, t, b1); d2 = LF_MADD(d2, t, b2); d3 = LF_MADD(d3, t, b3);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
    acc[1][0] = d0; acc[1][1] = d1; acc[1][2] = d2; acc[1][3] = d3;
}

LF_INLINE void LF_FN(lf_tile_1x2)(int k, const float *a, const float *w, int64_t wstride, const float *init,
                                  LFV acc[4][8]) {
    LFV c0, c1, c2, c3, c4, c5, c6, c7, b;
    LF_LD(c0, init); LF_LD(c1, init + LF_VW); LF_LD(c2, init + 2 * LF_VW); LF_LD(c3, init + 3 * LF_VW);
    LF_LD(c4, init + 4 * LF_VW); LF_LD(c5, init + 5 * LF_VW); LF_LD(c6, init + 6 * LF_VW); LF_LD(c7, init + 7 * LF_VW);
    const float *w2 = w + wstride;
    for (int p = 0; p < k; p++, w += LF_PW, w2 += LF_PW) {
        LFV s = LF_SPLAT(a[p]);
        LF_LD(b, w); c0 = LF_MADD(c0, s, b);
        LF_LD(b, w + LF_VW); c1 = LF_MADD(c1, s, b);
        LF_LD(b, w + 2 * LF_VW); c2 = LF_MADD(c2, s, b);
        LF_LD(b, w + 3 * LF_VW); c3 = LF_MADD(c3, s, b);
        LF_LD(b, w2); c4 = LF_MADD(c4, s, b);
        LF_LD(b, w2 + LF_VW); c5 = LF_MADD(c5, s, b);
        LF_LD(b, w2 + 2 * LF_VW); c6 = LF_MADD(c6, s, b);
        LF_LD(b, w2 + 3 * LF_VW); c7 = LF_MADD(c7, s, b);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
    acc[0][4] = c4; acc[0][5] = c5; acc[0][6] = c6; acc[0][7] = c7;
}

LF_INLINE void LF_FN(lf_tile_1x1_ld)(int k, const float *a, const float *w, int64_t ldw, const float *init,
                                     LFV acc[4][8]) {
    LFV c0, c1, c2, c3, b;
    LF_LD(c0, init); LF_LD(c1, init + LF_VW); LF_LD(c2, init + 2 * LF_VW); LF_LD(c3, init + 3 * LF_VW);
    for (int p = 0; p < k; p++, w += ldw) {
        LFV s = LF_SPLAT(a[p]);
        LF_LD(b, w); c0 = LF_MADD(c0, s, b);
        LF_LD(b, w + LF_VW); c1 = LF_MADD(c1, s, b);
        LF_LD(b, w + 2 * LF_VW); c2 = LF_MADD(c2, s, b);
        LF_LD(b, w + 3 * LF_VW); c3 = LF_MADD(c3, s, b);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
}

#if LF_ROWS4
/* 4 rows x 1 panel: 16 accumulators, for the 32 registers of AVX-512 */
LF_INLINE void LF_FN(lf_tile_4x1_ld)(int k, const float *a, int64_t lda, const float *w, int64_t ldw,
                                     const float *init, int64_t init_ld, LFV acc[4][8]) {
    LFV c[4][4], b0, b1, b2, b3;
    for (int r = 0; r < 4; r++)
        for (int g = 0; g < 4; g++) LF_LD(c[r][g], init + r * init_ld + g * LF_VW);
    const float *a1 = a + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    LFV c00 = c[0][0], c01 = c[0][1], c02 = c[0][2], c03 = c[0][3], c10 = c[1][0], c11 = c[1][1], c12 = c[1][2],
        c13 = c[1][3], c20 = c[2][0], c21 = c[2][1], c22 = c[2][2], c23 = c[2][3], c30 = c[3][0], c31 = c[3][1],
        c32 = c[3][2], c33 = c[3][3];
    for (int p = 0; p < k; p++, w += ldw) {
        LF_LD(b0, w); LF_LD(b1, w + LF_VW); LF_LD(b2, w + 2 * LF_VW); LF_LD(b3, w + 3 * LF_VW);
        LF_IN_REG(b0); LF_IN_REG(b1); LF_IN_REG(b2); LF_IN_REG(b3);
        LFV s = LF_SPLAT(a[p]);
        c00 = LF_MADD(c00, s, b0); c01 = LF_MADD(c01, s, b1); c02 = LF_MADD(c02, s, b2); c03 = LF_MADD(c03, s, b3);
        s = LF_SPLAT(a1[p]);
        c10 = LF_MADD(c10, s, b0); c11 = LF_MADD(c11, s, b1); c12 = LF_MADD(c12, s, b2); c13 = LF_MADD(c13, s, b3);
        s = LF_SPLAT(a2[p]);
        c20 = LF_MADD(c20, s, b0); c21 = LF_MADD(c21, s, b1); c22 = LF_MADD(c22, s, b2); c23 = LF_MADD(c23, s, b3);
        s = LF_SPLAT(a3[p]);
        c30 = LF_MADD(c30, s, b0); c31 = LF_MADD(c31, s, b1); c32 = LF_MADD(c32, s, b2); c33 = LF_MADD(c33, s, b3);
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[0][2] = c02; acc[0][3] = c03;
    acc[1][0] = c10; acc[1][1] = c11; acc[1][2] = c12; acc[1][3] = c13;
    acc[2][0] = c20; acc[2][1] = c21; acc[2][2] = c22; acc[2][3] = c23;
    acc[3][0] = c30; acc[3][1] = c31; acc[3][2] = c32; acc[3][3] = c33;
}
#endif

#if LF_ROWS3
/* 3 rows x 1 panel: 12 accumulators, 3 broadcasts and one weight vector,
 * AVX2's 16 registers exactly. Each weight vector is loaded once for three
 * rows instead of two: 7 loads per 12 multiply-adds, not 6 per 8, which
 * leaves the FMA pipes, not the loads, as the limit. */
LF_INLINE void LF_FN(lf_tile_3x1_ld)(int k, const float *a, int64_t lda, const float *w, int64_t ldw,
                                     const float *init, int64_t init_ld, LFV acc[4][8]) {
    LFV c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, b;
    const float *i1 = init + init_ld, *i2 = i1 + init_ld;
    LF_LD(c00, init); LF_LD(c01, init + LF_VW); LF_LD(c02, init + 2 * LF_VW); LF_LD(c03, init + 3 * LF_VW);
    LF_LD(c10, i1); LF_LD(c11, i1 + LF_VW); LF_LD(c12, i1 + 2 * LF_VW); LF_LD(c13, i1 + 3 * LF_VW);
    LF_LD(c20, i2); LF_LD(c21, i2 + LF_VW); LF_LD(c22, i2 + 2 * LF_VW); LF_LD(c23, i2 + 3 * LF_VW);
    const float *a1 = a + lda, *a2 = a1 + lda;
    for (int p = 0; p < k; p++, w += ldw) {
        LFV s = LF_SPLAT(a[p]), t = LF_SPLAT(a1[p]), v = LF_SPLAT(a2[p]);
        LF_LD(b, w); c00 = LF_MADD(c00, s, b); c10 = LF_MADD(c10, t, b); c20 = LF_MADD(c20, v, b);
        LF_LD(b, w + LF_VW); c01 = LF_MADD(c01, s, b); c11 = LF_MADD(c11, t, b); c21 = LF_MADD(c21, v, b);
        LF_LD(b, w + 2 * LF_VW); c02 = LF_MADD(c02, s, b); c12 = LF_MADD(c12, t, b); c22 = LF_MADD(c22, v, b);
        LF_LD(b, w + 3 * LF_VW); c03 = LF_MADD(c03, s, b); c13 = LF_MADD(c13, t, b); c23 = LF_MADD(c23, v, b);
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[0][2] = c02; acc[0][3] = c03;
    acc[1][0] = c10; acc[1][1] = c11; acc[1][2] = c12; acc[1][3] = c13;
    acc[2][0] = c20; acc[2][1] = c21; acc[2][2] = c22; acc[2][3] = c23;
}
#endif

#if LF_ROWS4
/* 1 row x 4 panels: 16 independent sums and four weight streams in flight,
 * for the one-row step, whose limit is reading W_hh from L2 */
LF_INLINE void LF_FN(lf_tile_1x4)(int k, const float *a, const float *w, int64_t wstride, const float *init,
                                  LFV acc[4][8]) {
    LFV c[16];
    for (int q = 0; q < 16; q++) LF_LD(c[q], init + q * LF_VW);
    LFV c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4], c5 = c[5], c6 = c[6], c7 = c[7];
    LFV c8 = c[8], c9 = c[9], c10 = c[10], c11 = c[11], c12 = c[12], c13 = c[13], c14 = c[14], c15 = c[15];
    const float *w1 = w + wstride, *w2 = w1 + wstride, *w3 = w2 + wstride;
    for (int p = 0; p < k; p++, w += LF_PW, w1 += LF_PW, w2 += LF_PW, w3 += LF_PW) {
        LFV s = LF_SPLAT(a[p]), b;
        LF_LD(b, w); c0 = LF_MADD(c0, s, b);
        LF_LD(b, w + LF_VW); c1 = LF_MADD(c1, s, b);
        LF_LD(b, w + 2 * LF_VW); c2 = LF_MADD(c2, s, b);
        LF_LD(b, w + 3 * LF_VW); c3 = LF_MADD(c3, s, b);
        LF_LD(b, w1); c4 = LF_MADD(c4, s, b);
        LF_LD(b, w1 + LF_VW); c5 = LF_MADD(c5, s, b);
        LF_LD(b, w1 + 2 * LF_VW); c6 = LF_MADD(c6, s, b);
        LF_LD(b, w1 + 3 * LF_VW); c7 = LF_MADD(c7, s, b);
        LF_LD(b, w2); c8 = LF_MADD(c8, s, b);
        LF_LD(b, w2 + LF_VW); c9 = LF_MADD(c9, s, b);
        LF_LD(b, w2 + 2 * LF_VW); c10 = LF_MADD(c10, s, b);
        LF_LD(b, w2 + 3 * LF_VW); c11 = LF_MADD(c11, s, b);
        LF_LD(b, w3); c12 = LF_MADD(c12, s, b);
        LF_LD(b, w3 + LF_VW); c13 = LF_MADD(c13, s, b);
        LF_LD(b, w3 + 2 * LF_VW); c14 = LF_MADD(c14, s, b);
        LF_LD(b, w3 + 3 * LF_VW); c15 = LF_MADD(c15, s, b);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
    acc[0][4] = c4; acc[0][5] = c5; acc[0][6] = c6; acc[0][7] = c7;
    acc[1][0] = c8; acc[1][1] = c9; acc[1][2] = c10; acc[1][3] = c11;
    acc[1][4] = c12; acc[1][5] = c13; acc[1][6] = c14; acc[1][7] = c15;
}
#endif

LF_INLINE void LF_FN(lf_tile_2x1)(int k, const float *a, int64_t lda, const float *w, const float *init,
                                  int64_t init_ld, LFV acc[4][8]) {
    LF_FN(lf_tile_2x1_ld)(k, a, lda, w, LF_PW, init, init_ld, acc);
}

LF_INLINE void LF_FN(lf_tile_1x1)(int k, const float *a, const float *w, const float *init, LFV acc[4][8]) {
    LF_FN(lf_tile_1x1_ld)(k, a, w, LF_PW, init, acc);
}

/* The gate math on one row's pre-activations of 8 units (acc = i, f, g, o
 * in panel order) and its outputs; a padded step carries the state over. */
LF_INLINE void LF_FN(lf_cell)(const lf_step *st, int64_t r, int u, const LFV *acc) {
    const llm__lstm_layer *q = st->q;
    const int64_t H = q->H, b = st->b0 + r, j = (int64_t)u * LF_VW;
    const int64_t row = b * q->T + st->t;
    float *cs = st->cbuf + r * H + j;
    const float *hp = st->a + r * st->lda + st->hoff + j;
    float *hn = st->an + r * st->lda + st->hoff + j;
    LFV c, h;
    if (!q->mask || q->mask[row] != 0.0f) {
        LFV ig = LF_FN(lf_sigmoid)(acc[0]), fg = LF_FN(lf_sigmoid)(acc[1]);
        LFV gg = LF_FN(lf_tanh)(acc[2]), og = LF_FN(lf_sigmoid)(acc[3]), cp;
        LF_LD(cp, cs);
        c = fg * cp + ig * gg;
        h = og * LF_FN(lf_tanh)(c);
        if (q->gates) {
            float *gt = q->gates + row * 4 * H + j;
            LF_ST(gt, ig); LF_ST(gt + H, fg); LF_ST(gt + 2 * H, gg); LF_ST(gt + 3 * H, og);
        }
    } else {
        LF_LD(c, cs);
        LF_LD(h, hp);
        if (q->gates) {
            const LFV z = LF_SPLAT(0.0f);
            float *gt = q->gates + row * 4 * H + j;
            LF_ST(gt, z); LF_ST(gt + H, z); LF_ST(gt + 2 * H, z); LF_ST(gt + 3 * H, z);
        }
    }
    LF_ST(cs, c);
    LF_ST(hn, h);
    if (q->c) LF_ST(q->c + row * H + j, c);
    if (q->h) LF_ST(q->h + row * H + j, h);
    if (q->hprev && st->tn >= 0) LF_ST(q->hprev + (b * q->T + st->tn) * H + j, h);
    if (q->h_last && st->last) LF_ST(q->h_last + b * H + j, h);
}

/* x W_ih^T + bias of input rows [i0, i1) (row b * T + t) into xw: a row's
 * sums are the same chain whichever tile takes it */
LF_TARGET static void LF_FN(lf_project)(const lf_job *jb, int64_t i0, int64_t i1) {
    const llm__lstm_layer *q = jb->q;
    const int64_t E = q->E, H = q->H, K = E + H, G4 = 4 * H, wst = K * LF_PW;
    const int U = (int)(H / LF_VW);
    const float *x = q->x;
    float *xw = jb->xw;
    LFV acc[4][8];
    for (int64_t i = i0; i < i1;) {
        const int R = i1 - i >= 4 && LF_ROWS4 ? 4 : i1 - i >= 3 && i1 - i != 4 && LF_ROWS3 ? 3 : i1 - i >= 2 ? 2 : 1;
        for (int u = 0; u < U; u++) {
#if LF_ROWS4
            if (R == 4)
                LF_FN(lf_tile_4x1_ld)((int)E, x + i * E, E, jb->packed + u * wst, LF_PW, jb->pbias + u * LF_PW, 0, acc);
            else
#endif
#if LF_ROWS3
            if (R == 3)
                LF_FN(lf_tile_3x1_ld)((int)E, x + i * E, E, jb->packed + u * wst, LF_PW, jb->pbias + u * LF_PW, 0, acc);
            else
#endif
            if (R == 2) LF_FN(lf_tile_2x1)((int)E, x + i * E, E, jb->packed + u * wst, jb->pbias + u * LF_PW, 0, acc);
            else LF_FN(lf_tile_1x1)((int)E, x + i * E, jb->packed + u * wst, jb->pbias + u * LF_PW, acc);
            for (int r = 0; r < R; r++)
                for (int g = 0; g < 4; g++) LF_ST(xw + (i + r) * G4 + u * LF_PW + g * LF_VW, acc[r][g]);
        }
        i += R;
    }
}

/* One row's step over panels [u0, u1): four (AVX-512) or two panels at a
 * time, for 16 or 8 independent sums */
LF_TARGET static void LF_FN(lf_one_row)(const lf_step *st, int k, const float *w, int64_t wst, const float *init,
                                        int u0, int u1) {
    LFV acc[4][8];
    int u = u0;
#if LF_ROWS4
    for (; u + 4 <= u1; u += 4) {
        LF_FN(lf_tile_1x4)(k, st->a, w + u * wst, wst, init + u * LF_PW, acc);
        LF_FN(lf_cell)(st, 0, u, acc[0]);
        LF_FN(lf_cell)(st, 0, u + 1, acc[0] + 4);
        LF_FN(lf_cell)(st, 0, u + 2, acc[1]);
        LF_FN(lf_cell)(st, 0, u + 3, acc[1] + 4);
    }
#endif
    for (; u + 2 <= u1; u += 2) {
        LF_FN(lf_tile_1x2)(k, st->a, w + u * wst, wst, init + u * LF_PW, acc);
        LF_FN(lf_cell)(st, 0, u, acc[0]);
        LF_FN(lf_cell)(st, 0, u + 1, acc[0] + 4);
    }
    if (u < u1) {
        LF_FN(lf_tile_1x1)(k, st->a, w + u * wst, init + u * LF_PW, acc);
        LF_FN(lf_cell)(st, 0, u, acc[0]);
    }
}

/* Rows b0 .. b0 + n - 1 through all steps (see kernels_lstm_fused.c) */
LF_TARGET static void LF_FN(lf_rows)(const lf_job *jb, int64_t b0, int64_t n) {
    const llm__lstm_layer *q = jb->q;
    const int64_t E = q->E, H = q->H, K = E + H, T = q->T, G4 = 4 * H, wst = K * LF_PW;
    const int U = (int)(H / LF_VW);
    const int two = n < LF_TWO_PHASE_ROWS;
    const int64_t lda = two ? H : K;
    float *abuf[2] = { jb->abuf0 + b0 * K, jb->abuf1 + b0 * K };
    float *cbuf = jb->cbuf + b0 * H;
    memset(abuf[0], 0, (size_t)(n * lda) * sizeof(float));
    memset(cbuf, 0, (size_t)(n * H) * sizeof(float));
    /* steps that are padding in every row of the group from the start */
    const int64_t first = lf_leading_pad(q, b0, n);
    if (first > 0) {
        lf_zero_steps(q, b0, n, first);
        memset(abuf[1], 0, (size_t)(n * lda) * sizeof(float));
    }
    LFV acc[4][8];
    if (two) {
        /* few rows: every step's x W_ih^T + bias first, one product over the
         * rows' inputs (contiguous in x); the steps then stream only W_hh
         * from cache */
        for (int64_t r = 0; r < n; r++) LF_FN(lf_project)(jb, (b0 + r) * T + first, (b0 + r + 1) * T);
    }
    for (int64_t s = first; s < T; s++) {
        const int64_t t = q->reverse ? T - 1 - s : s;
        lf_step st = {
            .q = q, .b0 = b0, .t = t, .tn = s < T - 1 ? (q->reverse ? t - 1 : t + 1) : -1, .last = s == T - 1,
            .a = abuf[s & 1], .an = abuf[(s + 1) & 1], .lda = lda, .hoff = two ? 0 : E, .cbuf = cbuf,
        };
        const float *w = jb->packed + (two ? E * LF_PW : 0), *init = jb->pbias;
        int64_t init_ld = 0, u_ld = LF_PW;
        const int k = (int)(two ? H : K);
        if (two) {
            init = jb->xw + (b0 * T + t) * G4;
            init_ld = T * G4;
        } else {
            for (int64_t r = 0; r < n; r++)
                memcpy(abuf[s & 1] + r * K, q->x + ((b0 + r) * T + t) * E, (size_t)E * sizeof(float));
        }
        if (n == 1) {
            LF_FN(lf_one_row)(&st, k, w, wst, init, 0, U);
        } else {
            /* a panel's products for all the group's rows first, then their
             * gate math: independent cells, so the out-of-order core
             * overlaps their long exp / divide chains */
            float pre[LF_GROUP * LF_PW];
            for (int u = 0; u < U; u++) {
                int64_t r = 0;
#if LF_ROWS4
                for (; r + 4 <= n; r += 4) {
                    LF_FN(lf_tile_4x1_ld)(k, st.a + r * lda, lda, w + u * wst, LF_PW, init + r * init_ld + u * u_ld,
                                          init_ld, acc);
                    for (int i = 0; i < 4; i++)
                        for (int g = 0; g < 4; g++) LF_ST(pre + (r + i) * LF_PW + g * LF_VW, acc[i][g]);
                }
#endif
#if LF_ROWS3
                for (; r + 3 <= n && n - r != 4; r += 3) { /* 4 left: 2 + 2, not 3 + 1 */
                    LF_FN(lf_tile_3x1_ld)(k, st.a + r * lda, lda, w + u * wst, LF_PW, init + r * init_ld + u * u_ld,
                                          init_ld, acc);
                    for (int i = 0; i < 3; i++)
                        for (int g = 0; g < 4; g++) LF_ST(pre + (r + i) * LF_PW + g * LF_VW, acc[i][g]);
                }
#endif
                for (; r + 2 <= n; r += 2) {
                    LF_FN(lf_tile_2x1)(k, st.a + r * lda, lda, w + u * wst, init + r * init_ld + u * u_ld, init_ld, acc);
                    for (int g = 0; g < 4; g++) {
                        LF_ST(pre + r * LF_PW + g * LF_VW, acc[0][g]);
                        LF_ST(pre + (r + 1) * LF_PW + g * LF_VW, acc[1][g]);
                    }
                }
                if (r < n) {
                    LF_FN(lf_tile_1x1)(k, st.a + r * lda, w + u * wst, init + r * init_ld + u * u_ld, acc);
                    for (int g = 0; g < 4; g++) LF_ST(pre + r * LF_PW + g * LF_VW, acc[0][g]);
                }
                for (r = 0; r < n; r++) {
                    LFV g4[4];
                    LF_LD(g4[0], pre + r * LF_PW); LF_LD(g4[1], pre + r * LF_PW + LF_VW);
                    LF_LD(g4[2], pre + r * LF_PW + 2 * LF_VW); LF_LD(g4[3], pre + r * LF_PW + 3 * LF_VW);
                    LF_FN(lf_cell)(&st, r, u, g4);
                }
            }
        }
    }
}

/* One thread's share: row groups taken from a shared counter until none is
 * left, so a thread the OS runs late leaves its groups to the others (rows
 * are independent: who takes a group does not change a bit) */
LF_TARGET static void LF_FN(lf_chunk)(void *p, int64_t t0, int64_t t1) {
    lf_job *jb = p;
    (void)t0; (void)t1;
    for (;;) {
        const int64_t b = __atomic_fetch_add(&jb->next, 1, __ATOMIC_RELAXED) * jb->group;
        if (b >= jb->q->B) break;
        LF_FN(lf_rows)(jb, b, jb->q->B - b < jb->group ? jb->q->B - b : jb->group);
    }
}


/* Batch 1 on several threads (kernels_lstm_fused.c): the input rows in
 * blocks, then each step in tiles of LF_COOP_PANELS panels, all taken from
 * shared counters. A tile of step s waits until every tile of step s - 1 is
 * done (it reads their h); a thread only ever waits for tiles another thread
 * has taken and is running, so one thread alone still finishes the job. */
LF_TARGET static void LF_FN(lf_coop)(void *p, int64_t t0, int64_t t1) {
    lf_job *jb = p;
    (void)t0; (void)t1;
    const llm__lstm_layer *q = jb->q;
    const int64_t E = q->E, H = q->H, K = E + H, T = q->T, G4 = 4 * H, wst = K * LF_PW;
    const int U = (int)(H / LF_VW);
    const int64_t first = jb->first; /* steps before it are padding (kernels_lstm_fused.c) */
    for (;;) {
        const int64_t i = first + __atomic_fetch_add(&jb->proj_next, 1, __ATOMIC_RELAXED) * LF_COOP_ROWS;
        if (i >= T) break;
        const int64_t e = T - i < LF_COOP_ROWS ? T : i + LF_COOP_ROWS;
        LF_FN(lf_project)(jb, i, e);
        __atomic_fetch_add(&jb->proj_done, e - i, __ATOMIC_RELEASE);
    }
    lf_wait_for(&jb->proj_done, T - first);
    const int64_t tiles = (U + LF_COOP_PANELS - 1) / LF_COOP_PANELS;
    for (;;) {
        const int64_t idx = __atomic_fetch_add(&jb->step_next, 1, __ATOMIC_RELAXED);
        if (idx >= (T - first) * tiles) break;
        const int64_t s = first + idx / tiles, c = idx % tiles, t = q->reverse ? T - 1 - s : s;
        lf_wait_for(&jb->step_done, (s - first) * tiles);
        const lf_step st = {
            .q = q, .b0 = 0, .t = t, .tn = s < T - 1 ? (q->reverse ? t - 1 : t + 1) : -1, .last = s == T - 1,
            .a = s & 1 ? jb->abuf1 : jb->abuf0, .an = s & 1 ? jb->abuf0 : jb->abuf1, .lda = H, .hoff = 0,
            .cbuf = jb->cbuf,
        };
        const int u0 = (int)c * LF_COOP_PANELS, u1 = u0 + LF_COOP_PANELS < U ? u0 + LF_COOP_PANELS : U;
        LF_FN(lf_one_row)(&st, (int)H, jb->packed + E * LF_PW, wst, jb->xw + t * G4, u0, u1);
        __atomic_fetch_add(&jb->step_done, 1, __ATOMIC_RELEASE);
    }
}

/* ---- backward (llm__lstm_sequence), rows b0 .. b0 + n - 1, H a multiple of 32 ----
 * Per step, the element-wise backward of each row (what lstm_backward_chunk
 * in kernels_recurrent.c does, 8 units at a time, with this file's tanh),
 * then dh_{t-1} += dgates_t W_hh for the rows: 2 rows x 32 columns of
 * multiply-adds over the 4H gate gradients in order, from dh's old value. */
LF_INLINE void LF_FN(lf_cell_back)(const llm__lstm_sequence *q, int64_t b, int64_t t, int64_t tp, int first) {
    const int64_t H = q->H, T = q->T, row = b * T + t;
    const float *gates = q->gates + row * 4 * H, *c = q->c + row * H;
    const float *cp = first ? NULL : q->c + (b * T + tp) * H;
    const float *dy = q->dy ? q->dy + row * H : NULL;
    float *dh = q->dh + b * H, *dc = q->dc + b * H, *dg = q->dgates + row * 4 * H;
    const int real = !q->mask || q->mask[row] != 0.0f;
    const LFV one = LF_SPLAT(1.0f), zero = LF_SPLAT(0.0f);
    for (int64_t j = 0; j < H; j += LF_VW) {
        LFV dhv, v;
        LF_LD(dhv, dh + j);
        if (dy) { LF_LD(v, dy + j); dhv = dhv + v; }
        if (!real) { /* the state passed through, so does its gradient */
            LF_ST(dh + j, dhv);
            LF_ST(dg + j, zero); LF_ST(dg + H + j, zero); LF_ST(dg + 2 * H + j, zero); LF_ST(dg + 3 * H + j, zero);
            continue;
        }
        LFV i, f, g, o, cv, dcv, cpv = zero;
        LF_LD(i, gates + j); LF_LD(f, gates + H + j); LF_LD(g, gates + 2 * H + j); LF_LD(o, gates + 3 * H + j);
        LF_LD(cv, c + j); LF_LD(dcv, dc + j);
        if (cp) LF_LD(cpv, cp + j);
        LFV tc = LF_FN(lf_tanh)(cv);
        LFV d_o = dhv * tc;
        LFV dct = dcv + dhv * o * (one - tc * tc);
        LFV di = dct * g, dgg = dct * i;
        LFV dcn = dct * f;
        LF_ST(dc + j, dcn);
        LFV ri = di * i * (one - i), rg = dgg * (one - g * g), ro = d_o * o * (one - o);
        LFV rf = cp ? dct * cpv * f * (one - f) : zero;
        LF_ST(dg + j, ri); LF_ST(dg + H + j, rf); LF_ST(dg + 2 * H + j, rg); LF_ST(dg + 3 * H + j, ro);
        LF_ST(dh + j, zero); /* the rest of dL/dh_{t-1} flows through W_hh, below */
        if (q->dbias && q->dbias_rows) { /* the row's bias gradient, while the gate gradients are in registers */
            float *db = q->dbias_rows + b * 4 * H + j;
            LFV s0, s1, s2, s3;
            LF_LD(s0, db); LF_LD(s1, db + H); LF_LD(s2, db + 2 * H); LF_LD(s3, db + 3 * H);
            s0 = s0 + ri; s1 = s1 + rf; s2 = s2 + rg; s3 = s3 + ro;
            LF_ST(db, s0); LF_ST(db + H, s1); LF_ST(db + 2 * H, s2); LF_ST(db + 3 * H, s3);
        }
    }
}

LF_TARGET static void LF_FN(lf_back_rows)(void *p, int64_t b0, int64_t b1) {
    const llm__lstm_sequence *q = p;
    const int64_t T = q->T, H = q->H, G4 = 4 * H;
    if (q->dbias && q->dbias_rows) memset(q->dbias_rows + b0 * G4, 0, (size_t)((b1 - b0) * G4) * sizeof(float));
    for (int64_t s = T - 1; s >= 0; s--) {
        const int64_t t = q->reverse ? T - 1 - s : s, tp = q->reverse ? t + 1 : t - 1;
        for (int64_t b = b0; b < b1; b++) LF_FN(lf_cell_back)(q, b, t, tp, s == 0);
        if (!s) break;
        const int64_t ld = T * G4;
        const float *dg = q->dgates + (b0 * T + t) * G4;
        float *dh = q->dh + b0 * H;
        const int64_t n = b1 - b0;
        /* in blocks of 128 gate gradients: a block's 32 columns of W_hh
         * (16 KiB) stay in L1 for all the rows; the sums go on in order
         * through dh between blocks */
        for (int64_t k0 = 0; k0 < G4; k0 += 128) {
            const int kb = (int)(G4 - k0 < 128 ? G4 - k0 : 128);
            for (int64_t j = 0; j < H; j += LF_PW) {
                const float *w = q->W_hh + k0 * H + j;
                int64_t r = 0;
                LFV acc[4][8];
#if LF_ROWS4
                for (; r + 4 <= n; r += 4) {
                    float *o = dh + r * H + j;
                    LF_FN(lf_tile_4x1_ld)(kb, dg + r * ld + k0, ld, w, H, o, H, acc);
                    for (int i = 0; i < 4; i++)
                        for (int g = 0; g < 4; g++) LF_ST(o + i * H + g * LF_VW, acc[i][g]);
                }
#endif
#if LF_ROWS3
                for (; r + 3 <= n && n - r != 4; r += 3) { /* 4 left: 2 + 2, not 3 + 1 */
                    float *o = dh + r * H + j;
                    LF_FN(lf_tile_3x1_ld)(kb, dg + r * ld + k0, ld, w, H, o, H, acc);
                    for (int i = 0; i < 3; i++)
                        for (int g = 0; g < 4; g++) LF_ST(o + i * H + g * LF_VW, acc[i][g]);
                }
#endif
                for (; r + 2 <= n; r += 2) {
                    float *o = dh + r * H + j;
                    LF_FN(lf_tile_2x1_ld)(kb, dg + r * ld + k0, ld, w, H, o, H, acc);
                    for (int g = 0; g < 4; g++) { LF_ST(o + g * LF_VW, acc[0][g]); LF_ST(o + H + g * LF_VW, acc[1][g]); }
                }
                if (r < n) {
                    float *o = dh + r * H + j;
                    LF_FN(lf_tile_1x1_ld)(kb, dg + r * ld + k0, w, H, o, acc);
                    for (int g = 0; g < 4; g++) LF_ST(o + g * LF_VW, acc[0][g]);
                }
            }
        }
    }
}

#undef LF_CAT2
#undef LF_CAT
#undef LF_FN
#undef LF_INLINE
#undef LF_PW
