/* libllm private: the body of the fused LSTM layer forward
 * (kernels_lstm_fused.c), included once per instruction set. The includer
 * defines
 *   LF_ISA            a name suffix (fma, generic)
 *   LF_TARGET         the function attribute for that instruction set
 *   LF_MADD(c, a, b)  c + a * b on v8 (one fused multiply-add, or two ops)
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

/* select(m, a, b): a where the lane mask m is set, else b */
#define LF_SEL(m, a, b) ((v8)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m))))

/* fastmath.h's llm__expf, sigmoid and tanh, eight lanes at a time (the same
 * clamps, polynomials and bit tricks; NaN passes through the clamps) */
LF_INLINE v8 LF_FN(lf_exp)(v8 x) {
    const v8 lo = V8_SPLAT(-87.0f), hi = V8_SPLAT(88.0f), magic = V8_SPLAT(12582912.0f);
    x = LF_SEL(x < lo, lo, x);
    x = LF_SEL(x > hi, hi, x);
    v8 t = x * 1.44269504088896341f + magic;
    v8 n = t - magic;
    v8 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8 p = V8_SPLAT(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    v8 y = p * (r * r) + r + 1.0f;
    v8i sb = ((v8i)t - 0x4B400000 + 127) << 23;
    return y * (v8)sb;
}

LF_INLINE v8 LF_FN(lf_sigmoid)(v8 x) { return 1.0f / (1.0f + LF_FN(lf_exp)(-x)); }

LF_INLINE v8 LF_FN(lf_tanh)(v8 x) {
    const v8i sign = V8I_SPLAT((int)0x80000000u);
    v8 ax = (v8)((v8i)x & ~sign);
    v8 s = x * x;
    v8 p = V8_SPLAT(-5.70498872745e-3f);
    p = p * s + 2.06390887954e-2f;
    p = p * s - 5.37397155531e-2f;
    p = p * s + 1.33314422036e-1f;
    p = p * s - 3.33332819422e-1f;
    v8 small = p * s * x + x;
    v8 big = 1.0f - 2.0f / (LF_FN(lf_exp)(2.0f * ax) + 1.0f);
    big = (v8)((v8i)big | ((v8i)x & sign));
    return LF_SEL(ax < 0.625f, small, big);
}

/* acc[r][q] = init_r[q] + sum over p < k of a_r[p] w_q[p], for R rows and P
 * panels of 32 columns (q < 4P: panel q / 4, its 8 columns q % 4). Row r
 * of A at a + r * lda; panel i's row p at w + i * wstride + 32 p; row r's
 * initial values at init + r * init_ld, panel after panel (32 floats each).
 * R and P are constants at every call, so acc stays in registers. */
LF_INLINE void LF_FN(lf_tile)(int R, int P, int k, const float *a, int64_t lda, const float *w, int64_t wstride,
                              const float *init, int64_t init_ld, v8 acc[2][8]) {
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4 * P; q++) V8_LD(acc[r][q], init + r * init_ld + q * 8);
    for (int p = 0; p < k; p++) {
        v8 bv[8];
        for (int q = 0; q < 4 * P; q++) V8_LD(bv[q], w + (q / 4) * wstride + p * 32 + (q % 4) * 8);
        for (int r = 0; r < R; r++) {
            float s = a[r * lda + p];
            v8 av = V8_SPLAT(s);
            for (int q = 0; q < 4 * P; q++) acc[r][q] = LF_MADD(acc[r][q], av, bv[q]);
        }
    }
}

/* The gate math on one row's pre-activations of 8 units (acc = i, f, g, o
 * in panel order) and its outputs; a padded step carries the state over. */
LF_INLINE void LF_FN(lf_cell)(const lf_step *st, int64_t r, int u, const v8 *acc) {
    const llm__lstm_layer *q = st->q;
    const int64_t H = q->H, b = st->b0 + r, j = (int64_t)u * 8;
    const int64_t row = b * q->T + st->t;
    float *cs = st->cbuf + r * H + j;
    const float *hp = st->a + r * st->lda + st->hoff + j;
    float *hn = st->an + r * st->lda + st->hoff + j;
    v8 c, h;
    if (!q->mask || q->mask[row] != 0.0f) {
        v8 ig = LF_FN(lf_sigmoid)(acc[0]), fg = LF_FN(lf_sigmoid)(acc[1]);
        v8 gg = LF_FN(lf_tanh)(acc[2]), og = LF_FN(lf_sigmoid)(acc[3]), cp;
        V8_LD(cp, cs);
        c = fg * cp + ig * gg;
        h = og * LF_FN(lf_tanh)(c);
        if (q->gates) {
            float *gt = q->gates + row * 4 * H + j;
            V8_ST(gt, ig); V8_ST(gt + H, fg); V8_ST(gt + 2 * H, gg); V8_ST(gt + 3 * H, og);
        }
    } else {
        V8_LD(c, cs);
        V8_LD(h, hp);
        if (q->gates) {
            const v8 z = V8_SPLAT(0.0f);
            float *gt = q->gates + row * 4 * H + j;
            V8_ST(gt, z); V8_ST(gt + H, z); V8_ST(gt + 2 * H, z); V8_ST(gt + 3 * H, z);
        }
    }
    V8_ST(cs, c);
    V8_ST(hn, h);
    if (q->c) V8_ST(q->c + row * H + j, c);
    if (q->h) V8_ST(q->h + row * H + j, h);
    if (q->hprev && st->tn >= 0) V8_ST(q->hprev + (b * q->T + st->tn) * H + j, h);
    if (q->h_last && st->last) V8_ST(q->h_last + b * H + j, h);
}

/* Rows b0 .. b0 + n - 1 through all steps (see kernels_lstm_fused.c) */
LF_TARGET static void LF_FN(lf_rows)(const lf_job *jb, int64_t b0, int64_t n) {
    const llm__lstm_layer *q = jb->q;
    const int64_t E = q->E, H = q->H, K = E + H, T = q->T, G4 = 4 * H, wst = K * 32;
    const int U = (int)(H / 8);
    const int two = n < LF_TWO_PHASE_ROWS;
    const int64_t lda = two ? H : K;
    float *abuf[2] = { jb->abuf0 + b0 * K, jb->abuf1 + b0 * K };
    float *cbuf = jb->cbuf + b0 * H;
    memset(abuf[0], 0, (size_t)(n * lda) * sizeof(float));
    memset(cbuf, 0, (size_t)(n * H) * sizeof(float));
    v8 acc[2][8];
    if (two) {
        /* few rows: every step's x W_ih^T + bias first, one product over the
         * rows' T * n inputs (contiguous in x); the steps then stream only
         * W_hh from cache */
        const float *x = q->x + b0 * T * E;
        float *xw = jb->xw + b0 * T * G4;
        const int64_t m = n * T;
        for (int64_t i = 0; i < m; i += 2) {
            const int R = m - i >= 2 ? 2 : 1;
            for (int u = 0; u < U; u++) {
                if (R == 2) LF_FN(lf_tile)(2, 1, (int)E, x + i * E, E, jb->packed + u * wst, wst, jb->pbias + u * 32, 0, acc);
                else LF_FN(lf_tile)(1, 1, (int)E, x + i * E, E, jb->packed + u * wst, wst, jb->pbias + u * 32, 0, acc);
                for (int r = 0; r < R; r++)
                    for (int g = 0; g < 4; g++) V8_ST(xw + (i + r) * G4 + u * 32 + g * 8, acc[r][g]);
            }
        }
    }
    for (int64_t s = 0; s < T; s++) {
        const int64_t t = q->reverse ? T - 1 - s : s;
        lf_step st = {
            .q = q, .b0 = b0, .t = t, .tn = s < T - 1 ? (q->reverse ? t - 1 : t + 1) : -1, .last = s == T - 1,
            .a = abuf[s & 1], .an = abuf[(s + 1) & 1], .lda = lda, .hoff = two ? 0 : E, .cbuf = cbuf,
        };
        const float *w = jb->packed + (two ? E * 32 : 0), *init = jb->pbias;
        int64_t init_ld = 0, u_ld = 32;
        const int k = (int)(two ? H : K);
        if (two) {
            init = jb->xw + (b0 * T + t) * G4;
            init_ld = T * G4;
        } else {
            for (int64_t r = 0; r < n; r++)
                memcpy(abuf[s & 1] + r * K, q->x + ((b0 + r) * T + t) * E, (size_t)E * sizeof(float));
        }
        if (n == 1) {
            /* one row: two panels at a time, for eight independent sums */
            int u = 0;
            for (; u + 2 <= U; u += 2) {
                LF_FN(lf_tile)(1, 2, k, st.a, lda, w + u * wst, wst, init + u * u_ld, init_ld, acc);
                LF_FN(lf_cell)(&st, 0, u, acc[0]);
                LF_FN(lf_cell)(&st, 0, u + 1, acc[0] + 4);
            }
            if (u < U) {
                LF_FN(lf_tile)(1, 1, k, st.a, lda, w + u * wst, wst, init + u * u_ld, init_ld, acc);
                LF_FN(lf_cell)(&st, 0, u, acc[0]);
            }
        } else {
            for (int u = 0; u < U; u++) {
                int64_t r = 0;
                for (; r + 2 <= n; r += 2) {
                    LF_FN(lf_tile)(2, 1, k, st.a + r * lda, lda, w + u * wst, wst, init + r * init_ld + u * u_ld,
                                   init_ld, acc);
                    LF_FN(lf_cell)(&st, r, u, acc[0]);
                    LF_FN(lf_cell)(&st, r + 1, u, acc[1]);
                }
                if (r < n) {
                    LF_FN(lf_tile)(1, 1, k, st.a + r * lda, lda, w + u * wst, wst, init + r * init_ld + u * u_ld,
                                   init_ld, acc);
                    LF_FN(lf_cell)(&st, r, u, acc[0]);
                }
            }
        }
    }
}

LF_TARGET static void LF_FN(lf_chunk)(void *p, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b += LF_GROUP) LF_FN(lf_rows)(p, b, b1 - b < LF_GROUP ? b1 - b : LF_GROUP);
}

#undef LF_CAT2
#undef LF_CAT
#undef LF_FN
#undef LF_INLINE
