/* libllm private: the body of the fused LSTM layer forward
 * (kernels_lstm_fused.c), included once per instruction set. The includer
 * defines
 *   LF_ISA            a name suffix (fma, generic)
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

/* tanh as a rational function (Eigen's float tanh: odd degree 13 over even
 * degree 6, within a few ulp, NaN in gives NaN out), clamped where it
 * reaches +-1 in float; sigmoid(x) = (1 + tanh(x / 2)) / 2. One division
 * and a dozen multiply-adds each, about half of what the exp-based
 * fastmath.h forms cost: the gate math is the part of a step that is not
 * the product. */
LF_INLINE v8 LF_FN(lf_tanh)(v8 x) {
    const v8 lim = V8_SPLAT(7.90531110763549805f), nlim = V8_SPLAT(-7.90531110763549805f);
    x = LF_MIN(lim, x);
    x = LF_MAX(nlim, x);
    v8 x2 = x * x;
    v8 p = V8_SPLAT(-2.76076847742355e-16f);
    p = LF_MADD(V8_SPLAT(2.00018790482477e-13f), p, x2);
    p = LF_MADD(V8_SPLAT(-8.60467152213735e-11f), p, x2);
    p = LF_MADD(V8_SPLAT(5.12229709037114e-08f), p, x2);
    p = LF_MADD(V8_SPLAT(1.48572235717979e-05f), p, x2);
    p = LF_MADD(V8_SPLAT(6.37261928875436e-04f), p, x2);
    p = LF_MADD(V8_SPLAT(4.89352455891786e-03f), p, x2);
    p = p * x;
    v8 q = V8_SPLAT(1.19825839466702e-06f);
    q = LF_MADD(V8_SPLAT(1.18534705686654e-04f), q, x2);
    q = LF_MADD(V8_SPLAT(2.26843463243900e-03f), q, x2);
    q = LF_MADD(V8_SPLAT(4.89352518554385e-03f), q, x2);
    return p / q;
}

LF_INLINE v8 LF_FN(lf_sigmoid)(v8 x) {
    const v8 half = V8_SPLAT(0.5f);
    return LF_MADD(half, half, LF_FN(lf_tanh)(half * x));
}

/* acc[r][q] = init_r[q] + sum over p < k of a_r[p] w_q[p], for R rows and P
 * panels of 32 columns (q < 4P: panel q / 4, its 8 columns q % 4): the
 * shapes 2 x 1, 1 x 2 and 1 x 1. Row r of A at a + r * lda; panel i's row p
 * at w + i * wstride + 32 p; row r's initial values at init + r * init_ld,
 * panel after panel (32 floats each). Named registers, no arrays: GCC keeps
 * an indexed v8 array on the stack. */
LF_INLINE void LF_FN(lf_tile_2x1_ld)(int k, const float *a, int64_t lda, const float *w, int64_t ldw,
                                     const float *init, int64_t init_ld, v8 acc[2][8]) {
    v8 c0, c1, c2, c3, d0, d1, d2, d3, b0, b1, b2, b3;
    V8_LD(c0, init); V8_LD(c1, init + 8); V8_LD(c2, init + 16); V8_LD(c3, init + 24);
    V8_LD(d0, init + init_ld); V8_LD(d1, init + init_ld + 8);
    V8_LD(d2, init + init_ld + 16); V8_LD(d3, init + init_ld + 24);
    const float *a1 = a + lda;
    for (int p = 0; p < k; p++, w += ldw) {
        V8_LD(b0, w); V8_LD(b1, w + 8); V8_LD(b2, w + 16); V8_LD(b3, w + 24);
        LF_IN_REG(b0); LF_IN_REG(b1); LF_IN_REG(b2); LF_IN_REG(b3);
        v8 s = V8_SPLAT(a[p]), t = V8_SPLAT(a1[p]);
        c0 = LF_MADD(c0, s, b0); c1 = LF_MADD(c1, s, b1); c2 = LF_MADD(c2, s, b2); c3 = LF_MADD(c3, s, b3);
        d0 = LF_MADD(d0, t, b0); d1 = LF_MADD(d1, t, b1); d2 = LF_MADD(d2, t, b2); d3 = LF_MADD(d3, t, b3);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
    acc[1][0] = d0; acc[1][1] = d1; acc[1][2] = d2; acc[1][3] = d3;
}

LF_INLINE void LF_FN(lf_tile_1x2)(int k, const float *a, const float *w, int64_t wstride, const float *init,
                                  v8 acc[2][8]) {
    v8 c0, c1, c2, c3, c4, c5, c6, c7, b;
    V8_LD(c0, init); V8_LD(c1, init + 8); V8_LD(c2, init + 16); V8_LD(c3, init + 24);
    V8_LD(c4, init + 32); V8_LD(c5, init + 40); V8_LD(c6, init + 48); V8_LD(c7, init + 56);
    const float *w2 = w + wstride;
    for (int p = 0; p < k; p++, w += 32, w2 += 32) {
        v8 s = V8_SPLAT(a[p]);
        V8_LD(b, w); c0 = LF_MADD(c0, s, b);
        V8_LD(b, w + 8); c1 = LF_MADD(c1, s, b);
        V8_LD(b, w + 16); c2 = LF_MADD(c2, s, b);
        V8_LD(b, w + 24); c3 = LF_MADD(c3, s, b);
        V8_LD(b, w2); c4 = LF_MADD(c4, s, b);
        V8_LD(b, w2 + 8); c5 = LF_MADD(c5, s, b);
        V8_LD(b, w2 + 16); c6 = LF_MADD(c6, s, b);
        V8_LD(b, w2 + 24); c7 = LF_MADD(c7, s, b);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
    acc[0][4] = c4; acc[0][5] = c5; acc[0][6] = c6; acc[0][7] = c7;
}

LF_INLINE void LF_FN(lf_tile_1x1_ld)(int k, const float *a, const float *w, int64_t ldw, const float *init,
                                     v8 acc[2][8]) {
    v8 c0, c1, c2, c3, b;
    V8_LD(c0, init); V8_LD(c1, init + 8); V8_LD(c2, init + 16); V8_LD(c3, init + 24);
    for (int p = 0; p < k; p++, w += ldw) {
        v8 s = V8_SPLAT(a[p]);
        V8_LD(b, w); c0 = LF_MADD(c0, s, b);
        V8_LD(b, w + 8); c1 = LF_MADD(c1, s, b);
        V8_LD(b, w + 16); c2 = LF_MADD(c2, s, b);
        V8_LD(b, w + 24); c3 = LF_MADD(c3, s, b);
    }
    acc[0][0] = c0; acc[0][1] = c1; acc[0][2] = c2; acc[0][3] = c3;
}

LF_INLINE void LF_FN(lf_tile_2x1)(int k, const float *a, int64_t lda, const float *w, const float *init,
                                  int64_t init_ld, v8 acc[2][8]) {
    LF_FN(lf_tile_2x1_ld)(k, a, lda, w, 32, init, init_ld, acc);
}

LF_INLINE void LF_FN(lf_tile_1x1)(int k, const float *a, const float *w, const float *init, v8 acc[2][8]) {
    LF_FN(lf_tile_1x1_ld)(k, a, w, 32, init, acc);
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
                if (R == 2) LF_FN(lf_tile_2x1)((int)E, x + i * E, E, jb->packed + u * wst, jb->pbias + u * 32, 0, acc);
                else LF_FN(lf_tile_1x1)((int)E, x + i * E, jb->packed + u * wst, jb->pbias + u * 32, acc);
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
                LF_FN(lf_tile_1x2)(k, st.a, w + u * wst, wst, init + u * u_ld, acc);
                LF_FN(lf_cell)(&st, 0, u, acc[0]);
                LF_FN(lf_cell)(&st, 0, u + 1, acc[0] + 4);
            }
            if (u < U) {
                LF_FN(lf_tile_1x1)(k, st.a, w + u * wst, init + u * u_ld, acc);
                LF_FN(lf_cell)(&st, 0, u, acc[0]);
            }
        } else {
            /* a panel's products for all the group's rows first, then their
             * gate math: independent cells, so the out-of-order core
             * overlaps their long exp / divide chains */
            float pre[LF_GROUP * 32];
            for (int u = 0; u < U; u++) {
                int64_t r = 0;
                for (; r + 2 <= n; r += 2) {
                    LF_FN(lf_tile_2x1)(k, st.a + r * lda, lda, w + u * wst, init + r * init_ld + u * u_ld, init_ld, acc);
                    for (int g = 0; g < 4; g++) {
                        V8_ST(pre + r * 32 + g * 8, acc[0][g]);
                        V8_ST(pre + (r + 1) * 32 + g * 8, acc[1][g]);
                    }
                }
                if (r < n) {
                    LF_FN(lf_tile_1x1)(k, st.a + r * lda, w + u * wst, init + r * init_ld + u * u_ld, acc);
                    for (int g = 0; g < 4; g++) V8_ST(pre + r * 32 + g * 8, acc[0][g]);
                }
                for (r = 0; r < n; r++) {
                    v8 g4[4];
                    V8_LD(g4[0], pre + r * 32); V8_LD(g4[1], pre + r * 32 + 8);
                    V8_LD(g4[2], pre + r * 32 + 16); V8_LD(g4[3], pre + r * 32 + 24);
                    LF_FN(lf_cell)(&st, r, u, g4);
                }
            }
        }
    }
}

LF_TARGET static void LF_FN(lf_chunk)(void *p, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b += LF_GROUP) LF_FN(lf_rows)(p, b, b1 - b < LF_GROUP ? b1 - b : LF_GROUP);
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
    const v8 one = V8_SPLAT(1.0f), zero = V8_SPLAT(0.0f);
    for (int64_t j = 0; j < H; j += 8) {
        v8 dhv, v;
        V8_LD(dhv, dh + j);
        if (dy) { V8_LD(v, dy + j); dhv = dhv + v; }
        if (!real) { /* the state passed through, so does its gradient */
            V8_ST(dh + j, dhv);
            V8_ST(dg + j, zero); V8_ST(dg + H + j, zero); V8_ST(dg + 2 * H + j, zero); V8_ST(dg + 3 * H + j, zero);
            continue;
        }
        v8 i, f, g, o, cv, dcv, cpv = zero;
        V8_LD(i, gates + j); V8_LD(f, gates + H + j); V8_LD(g, gates + 2 * H + j); V8_LD(o, gates + 3 * H + j);
        V8_LD(cv, c + j); V8_LD(dcv, dc + j);
        if (cp) V8_LD(cpv, cp + j);
        v8 tc = LF_FN(lf_tanh)(cv);
        v8 d_o = dhv * tc;
        v8 dct = dcv + dhv * o * (one - tc * tc);
        v8 di = dct * g, dgg = dct * i;
        v8 dcn = dct * f;
        V8_ST(dc + j, dcn);
        v8 ri = di * i * (one - i), rg = dgg * (one - g * g), ro = d_o * o * (one - o);
        v8 rf = cp ? dct * cpv * f * (one - f) : zero;
        V8_ST(dg + j, ri); V8_ST(dg + H + j, rf); V8_ST(dg + 2 * H + j, rg); V8_ST(dg + 3 * H + j, ro);
        V8_ST(dh + j, zero); /* the rest of dL/dh_{t-1} flows through W_hh, below */
    }
}

LF_TARGET static void LF_FN(lf_back_rows)(void *p, int64_t b0, int64_t b1) {
    const llm__lstm_sequence *q = p;
    const int64_t T = q->T, H = q->H, G4 = 4 * H;
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
            for (int64_t j = 0; j < H; j += 32) {
                const float *w = q->W_hh + k0 * H + j;
                int64_t r = 0;
                v8 acc[2][8];
                for (; r + 2 <= n; r += 2) {
                    float *o = dh + r * H + j;
                    LF_FN(lf_tile_2x1_ld)(kb, dg + r * ld + k0, ld, w, H, o, H, acc);
                    for (int g = 0; g < 4; g++) { V8_ST(o + g * 8, acc[0][g]); V8_ST(o + H + g * 8, acc[1][g]); }
                }
                if (r < n) {
                    float *o = dh + r * H + j;
                    LF_FN(lf_tile_1x1_ld)(kb, dg + r * ld + k0, w, H, o, acc);
                    for (int g = 0; g < 4; g++) V8_ST(o + g * 8, acc[0][g]);
                }
            }
        }
    }
}

#undef LF_CAT2
#undef LF_CAT
#undef LF_FN
#undef LF_INLINE
