/* libllm: CPU fused multi-head attention (forward and backward).
 *
 * Flash-attention style: the scores of one (batch item, head) are made one
 * tile at a time (at most TILE_MAX queries x TILE_MAX keys) in per-thread
 * scratch and never as a whole Tq x Tk matrix. The forward keeps a running maximum and
 * sum per query row (online softmax) and saves only the log-sum-exp; the
 * backward recomputes p = exp(s - lse) from q, k and that, with
 * D_i = dout_i . out_i, ds = p (dp - D_i), dq += scale ds K,
 * dk += scale ds^T Q, dv += p^T dout.
 *
 * Work split: the forward's items are (batch item, head, query tile), the
 * backward's (batch item, head), the latter because every query row adds to
 * every key row of its head; each (b, head) owns disjoint columns of dq, dk
 * and dv (also when they are interleaved views of one [B, T, 3D] buffer), so
 * no two threads ever write the same element. Items are dealt to the
 * threads' slots in a snake order (causal query tiles cost more the later
 * they come, and this shares them evenly), and every output is computed by
 * one item with the same operations whichever thread runs it: the result is
 * bit-identical for any thread count.
 *
 * The tile products go through one register-blocked kernel (tile_mm.h, 4 rows
 * x 16 columns of accumulators in GCC vector types, AVX-512 or AVX2 with
 * fused multiply-adds through LLM__SIMD_CLONES_FMA); every element of a
 * product is summed over the inner dimension in order from zero, so the
 * result does not depend on how the tiles are blocked. Operands the kernel
 * reads as vectors (the B side) are copied into padded scratch (keys
 * transposed); the A side is read in place through strides. Causal tiles above the diagonal are skipped entirely, and
 * so are key tiles that the padding mask hides completely. Query tiles of
 * fewer than SMALL_M rows (incremental decoding: Tq = 1) take a per-row path
 * with dot products against the keys in place, which avoids transposing the
 * cache for one row.
 *
 * Scratch: a fixed stack buffer per thread (STACK_FLOATS, 64 KiB), the tile
 * shrinking for large head dimensions (head_dim 32: 64 x 64 tiles forward,
 * 32 x 32 backward, which measured no slower than 64 x 64 there); only when
 * even the smallest tile does not fit (backward with head_dim above ~340,
 * forward above ~680) is one heap block per call allocated, in the caller.
 *
 * Exponentials use llm__expf (fastmath.h, within 1 ulp, vectorised); sums
 * are float, in a fixed order. Against a double-precision reference the
 * outputs and gradients agree to ~1e-6 absolute for inputs of order 1. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "cpu.h"
#include "fastmath.h"
#include "simd.h"
#include "tile_mm.h"
#include "../core/internal.h"

#define TILE_MAX 64       /* queries and keys per tile at most */
#define TILE_MIN 8
#define SMALL_M 4         /* query tiles with fewer rows take the per-row path */
#define STACK_FLOATS 16384
#define SLOT_WORK 262144.0 /* multiply-adds per thread at least (~20 us) before another is used */

static inline int round8(int n) { return (n + 7) & ~7; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* ---- tile products ---- */

#if defined(__clang__)
#  define V8_SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shufflevector((a), (b), i0, i1, i2, i3, i4, i5, i6, i7)
#else
typedef int v8i __attribute__((vector_size(32)));
#  define V8_SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle((a), (b), (v8i){ i0, i1, i2, i3, i4, i5, i6, i7 })
#endif

/* dst[c * ldd + jj] = src[jj * lds + c] for jj < n, c < d; zero for n <= jj < np.
 * 8 x 8 blocks go through registers (unpack, shuffle, swap halves: what
 * AVX2's vunpck / vshufps / vperm2f128 do); the edges are copied one float
 * at a time. */
static inline __attribute__((always_inline)) void load_transposed(int n, int np, int d,
                                                                  const float *src, int64_t lds,
                                                                  float *dst, int ldd) {
    int jj = 0;
    for (; jj + 8 <= n; jj += 8) {
        const float *s0 = src + jj * lds;
        int c = 0;
        for (; c + 8 <= d; c += 8) {
            v8 r0, r1, r2, r3, r4, r5, r6, r7;
            V8_LD(r0, s0 + c); V8_LD(r1, s0 + lds + c);
            V8_LD(r2, s0 + 2 * lds + c); V8_LD(r3, s0 + 3 * lds + c);
            V8_LD(r4, s0 + 4 * lds + c); V8_LD(r5, s0 + 5 * lds + c);
            V8_LD(r6, s0 + 6 * lds + c); V8_LD(r7, s0 + 7 * lds + c);
            v8 t0 = V8_SHUF(r0, r1, 0, 8, 1, 9, 4, 12, 5, 13), t1 = V8_SHUF(r0, r1, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 t2 = V8_SHUF(r2, r3, 0, 8, 1, 9, 4, 12, 5, 13), t3 = V8_SHUF(r2, r3, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 t4 = V8_SHUF(r4, r5, 0, 8, 1, 9, 4, 12, 5, 13), t5 = V8_SHUF(r4, r5, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 t6 = V8_SHUF(r6, r7, 0, 8, 1, 9, 4, 12, 5, 13), t7 = V8_SHUF(r6, r7, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 u0 = V8_SHUF(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13), u1 = V8_SHUF(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 u2 = V8_SHUF(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13), u3 = V8_SHUF(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 u4 = V8_SHUF(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13), u5 = V8_SHUF(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 u6 = V8_SHUF(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13), u7 = V8_SHUF(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 o0 = V8_SHUF(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11), o4 = V8_SHUF(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
            v8 o1 = V8_SHUF(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11), o5 = V8_SHUF(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
            v8 o2 = V8_SHUF(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11), o6 = V8_SHUF(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
            v8 o3 = V8_SHUF(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11), o7 = V8_SHUF(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
            float *o = dst + (int64_t)c * ldd + jj;
            V8_ST(o, o0); V8_ST(o + ldd, o1); V8_ST(o + 2 * ldd, o2); V8_ST(o + 3 * ldd, o3);
            V8_ST(o + 4 * ldd, o4); V8_ST(o + 5 * ldd, o5); V8_ST(o + 6 * ldd, o6); V8_ST(o + 7 * ldd, o7);
        }
        for (; c < d; c++)
            for (int t = 0; t < 8; t++) dst[(int64_t)c * ldd + jj + t] = s0[t * lds + c];
    }
    for (; jj < n; jj++)
        for (int c = 0; c < d; c++) dst[(int64_t)c * ldd + jj] = src[jj * lds + c];
    if (n < np)
        for (int c = 0; c < d; c++)
            for (int t = n; t < np; t++) dst[(int64_t)c * ldd + t] = 0.0f;
}

/* dst row jj (stride dp) = src row jj (d floats), zero from d to dp; jj < n. */
static inline __attribute__((always_inline)) void load_rows(int n, int d, int dp, const float *src,
                                                            int64_t lds, float *dst) {
    for (int jj = 0; jj < n; jj++) {
        float *o = dst + (int64_t)jj * dp;
        memcpy(o, src + jj * lds, (size_t)d * sizeof(float));
        for (int c = d; c < dp; c++) o[c] = 0.0f;
    }
}

/* x . y over n, in 8 lanes then a fixed tree: vectorised, same bits on any thread. */
static inline __attribute__((always_inline)) float dot(const float *x, const float *y, int n) {
    float acc[8] = { 0 };
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int t = 0; t < 8; t++) acc[t] += x[c + t] * y[c + t];
    for (int t = 0; c + t < n; t++) acc[t] += x[c + t] * y[c + t];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- shared pieces ---- */

/* kb[jj] = 0 for keys j0 + jj < j0 + n the mask shows, -inf for hidden ones and
 * for the padding up to np. Returns whether any key is visible. */
static inline __attribute__((always_inline)) int key_bias(const float *mask, int j0, int n, int np,
                                                          float *kb) {
    int any = 0;
    for (int jj = 0; jj < np; jj++) {
        int vis = jj < n && (!mask || mask[j0 + jj] != 0.0f);
        kb[jj] = vis ? 0.0f : -INFINITY;
        any |= vis;
    }
    return any;
}

/* Scores of one row in place: row[jj] = row[jj] * scale + kb[jj], -inf past
 * lim (causal); returns the row's maximum. */
static inline __attribute__((always_inline)) float scores_row(float *row, int np, float scale,
                                                              const float *kb, int lim) {
    float mx[8];
    for (int t = 0; t < 8; t++) mx[t] = -INFINITY;
    for (int jj = 0; jj < np; jj += 8)
        for (int t = 0; t < 8; t++) {
            float v = row[jj + t] * scale + kb[jj + t];
            v = jj + t > lim ? -INFINITY : v;
            row[jj + t] = v;
            mx[t] = v > mx[t] ? v : mx[t];
        }
    float m = mx[0];
    for (int t = 1; t < 8; t++) m = mx[t] > m ? mx[t] : m;
    return m;
}

/* row[jj] = exp(row[jj] - mref) (0 where row is -inf); returns the sum. */
static inline __attribute__((always_inline)) float exp_row(float *row, int np, float mref) {
    float acc[8] = { 0 };
    for (int jj = 0; jj < np; jj += 8)
        for (int t = 0; t < 8; t++) {
            float v = row[jj + t];
            float e = llm__expf(v - mref);
            e = v == -INFINITY ? 0.0f : e;
            row[jj + t] = e;
            acc[t] += e;
        }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

typedef struct attn_ctx {
    const llm__attention *a;
    int tile, slots;
    int64_t items, scratch; /* floats per slot */
    float *heap;            /* slots * scratch floats when the stack buffer is too small */
} attn_ctx;

/* Item of slot s in round r: rounds of `slots` consecutive items, dealt
 * alternately forwards and backwards (0 1 1 0 0 1 ...), so a cost that grows
 * along the items (causal query tiles) is shared evenly. */
static inline int64_t snake(int64_t r, int64_t s, int slots) {
    return r * slots + (r & 1 ? slots - 1 - s : s);
}

/* ---- forward ---- */

static inline int64_t fwd_scratch(int tile, int d) {
    int dp = round8(d);
    return (int64_t)d * tile + (int64_t)tile * dp + (int64_t)tile * tile + (int64_t)tile * dp +
           3 * (int64_t)tile;
}

/* One (b, h, query tile). */
static inline __attribute__((always_inline)) void fwd_item(const llm__attention *a, int tile,
                                                           int64_t item, float *scr) {
    const int H = a->heads, d = a->head_dim, dp = round8(d), Tq = a->Tq, Tk = a->Tk;
    const int64_t nqb = (Tq + tile - 1) / tile;
    const int64_t bh = item / nqb, b = bh / H, h = bh % H;
    const int i0 = (int)(item % nqb) * tile, m = imin(tile, Tq - i0);
    const float scale = a->scale;
    const float *qp = a->q + b * a->bs_q + i0 * a->ld_q + h * d;
    const float *kp = a->k + b * a->bs_kv + h * d, *vp = a->v + b * a->bs_kv + h * d;
    const int64_t ldq = a->ld_q, ldkv = a->ld_kv;
    const float *mask = a->mask ? a->mask + b * a->ld_mask : NULL;
    float *op = a->out + b * a->bs_out + i0 * a->ld_out + h * d;
    float *lse = a->lse ? a->lse + bh * Tq + i0 : NULL;

    float *Kt = scr, *Vr = Kt + (int64_t)d * tile, *S = Vr + (int64_t)tile * dp;
    float *O = S + (int64_t)tile * tile, *mrow = O + (int64_t)tile * dp, *lrow = mrow + tile;
    float *kb = lrow + tile;
    const int small = m < SMALL_M;

    for (int i = 0; i < m; i++) { mrow[i] = -INFINITY; lrow[i] = 0.0f; }
    memset(O, 0, (size_t)m * dp * sizeof(float));
    /* causal: no key past the last row's position */
    int kend = Tk;
    if (a->causal) {
        int64_t last = (int64_t)a->q_offset + i0 + m - 1;
        kend = last + 1 < Tk ? (int)(last + 1 > 0 ? last + 1 : 0) : Tk;
    }
    for (int j0 = 0; j0 < kend; j0 += tile) {
        const int n = imin(tile, kend - j0), np = round8(n);
        if (!key_bias(mask, j0, n, np, kb)) continue;
        /* causal: rows before r0 see no key of this tile */
        int r0 = 0;
        if (a->causal) {
            int64_t first = (int64_t)j0 - a->q_offset - i0;
            r0 = first > 0 ? (int)first : 0;
        }
        if (small) {
            for (int i = r0; i < m; i++) {
                float *row = S + (int64_t)i * np;
                for (int jj = 0; jj < n; jj++) row[jj] = dot(qp + i * ldq, kp + (int64_t)(j0 + jj) * ldkv, d);
                for (int jj = n; jj < np; jj++) row[jj] = 0.0f;
            }
        } else {
            load_transposed(n, np, d, kp + (int64_t)j0 * ldkv, ldkv, Kt, np);
            load_rows(n, d, dp, vp + (int64_t)j0 * ldkv, ldkv, Vr);
            llm__tile_mm(m - r0, np, d, qp + r0 * ldq, ldq, 1, Kt, np, S + (int64_t)r0 * np, np, 0);
        }
        for (int i = r0; i < m; i++) {
            float *row = S + (int64_t)i * np;
            int lim = np;
            if (a->causal) {
                int64_t l = (int64_t)a->q_offset + i0 + i - j0;
                lim = l < np ? (int)l : np;
            }
            float mx = scores_row(row, np, scale, kb, lim);
            if (mx == -INFINITY) { /* nothing visible for this row here */
                memset(row, 0, (size_t)np * sizeof(float));
                continue;
            }
            float mnew = mx > mrow[i] ? mx : mrow[i];
            /* the first visible tile: O and l are 0, alpha ~ 1e-38 keeps them so */
            float alpha = llm__expf(mrow[i] - mnew);
            float sum = exp_row(row, np, mnew);
            lrow[i] = lrow[i] * alpha + sum;
            mrow[i] = mnew;
            if (alpha != 1.0f) {
                float *o = O + (int64_t)i * dp;
                for (int c = 0; c < dp; c++) o[c] *= alpha;
            }
        }
        if (small) {
            for (int i = r0; i < m; i++) {
                float *o = O + (int64_t)i * dp;
                const float *p = S + (int64_t)i * np;
                for (int jj = 0; jj < n; jj++) {
                    float pj = p[jj];
                    const float *vr = vp + (int64_t)(j0 + jj) * ldkv;
                    for (int c = 0; c < d; c++) o[c] += pj * vr[c];
                }
            }
        } else {
            llm__tile_mm(m - r0, dp, n, S + (int64_t)r0 * np, np, 1, Vr, dp, O + (int64_t)r0 * dp, dp, 1);
        }
    }
    for (int i = 0; i < m; i++) {
        float *out = op + i * a->ld_out;
        const float *o = O + (int64_t)i * dp;
        if (lrow[i] > 0.0f) {
            float inv = 1.0f / lrow[i];
            for (int c = 0; c < d; c++) out[c] = o[c] * inv;
            if (lse) lse[i] = mrow[i] + logf(lrow[i]);
        } else {
            for (int c = 0; c < d; c++) out[c] = 0.0f;
            if (lse) lse[i] = -INFINITY;
        }
    }
}

LLM__SIMD_CLONES_FMA
static void fwd_slots(void *p, int64_t begin, int64_t end) {
    const attn_ctx *c = p;
    float stack[STACK_FLOATS];
    for (int64_t s = begin; s < end; s++) {
        float *scr = c->heap ? c->heap + s * c->scratch : stack;
        for (int64_t r = 0; r * c->slots < c->items; r++) {
            int64_t it = snake(r, s, c->slots);
            if (it < c->items) fwd_item(c->a, c->tile, it, scr);
        }
    }
}

/* ---- backward ---- */

static inline int64_t bwd_scratch(int tile, int d) {
    int dp = round8(d);
    return 4 * (int64_t)d * tile + (int64_t)tile * dp + 2 * (int64_t)tile * tile +
           (int64_t)tile * dp + 2 * (int64_t)tile;
}

/* One (b, h): key tiles outer (dk, dv gathered in scratch), query tiles inner
 * (dq added per tile). */
static inline __attribute__((always_inline)) void bwd_item(const llm__attention *a, int tile,
                                                           int64_t bh, float *scr) {
    const int H = a->heads, d = a->head_dim, dp = round8(d), Tq = a->Tq, Tk = a->Tk;
    const int64_t b = bh / H, h = bh % H;
    const float scale = a->scale;
    const int64_t ldq = a->ld_q, ldkv = a->ld_kv, ldo = a->ld_out;
    const float *qb = a->q + b * a->bs_q + h * d, *ob = a->out + b * a->bs_out + h * d;
    const float *dob = a->dout + b * a->bs_out + h * d;
    const float *kp = a->k + b * a->bs_kv + h * d, *vp = a->v + b * a->bs_kv + h * d;
    float *dqb = a->dq + b * a->bs_q + h * d;
    float *dkp = a->dk + b * a->bs_kv + h * d, *dvp = a->dv + b * a->bs_kv + h * d;
    const float *mask = a->mask ? a->mask + b * a->ld_mask : NULL;
    const float *lse = a->lse + bh * Tq;

    float *Kt = scr, *Vt = Kt + (int64_t)d * tile, *dKt = Vt + (int64_t)d * tile;
    float *dVt = dKt + (int64_t)d * tile, *Kr = dVt + (int64_t)d * tile;
    float *S = Kr + (int64_t)tile * dp, *dP = S + (int64_t)tile * tile;
    float *dQ = dP + (int64_t)tile * tile, *kb = dQ + (int64_t)tile * dp, *Dv = kb + tile;

    for (int j0 = 0; j0 < Tk; j0 += tile) {
        const int n = imin(tile, Tk - j0), np = round8(n);
        int ifirst = 0;
        if (a->causal) {
            int64_t f = (int64_t)j0 - a->q_offset;
            if (f >= Tq) break; /* no query sees this key or any later one */
            ifirst = f > 0 ? (int)f : 0;
        }
        if (!key_bias(mask, j0, n, np, kb)) continue;
        load_transposed(n, np, d, kp + (int64_t)j0 * ldkv, ldkv, Kt, np);
        load_transposed(n, np, d, vp + (int64_t)j0 * ldkv, ldkv, Vt, np);
        load_rows(n, d, dp, kp + (int64_t)j0 * ldkv, ldkv, Kr);
        memset(dKt, 0, (size_t)d * np * sizeof(float));
        memset(dVt, 0, (size_t)d * np * sizeof(float));
        for (int i0 = ifirst / tile * tile; i0 < Tq; i0 += tile) {
            const int m = imin(tile, Tq - i0);
            int r0 = 0;
            if (a->causal) {
                int64_t f = (int64_t)j0 - a->q_offset - i0;
                r0 = f > 0 ? (int)f : 0;
            }
            const int mr = m - r0;
            const float *qr = qb + (int64_t)(i0 + r0) * ldq, *dor = dob + (int64_t)(i0 + r0) * ldo;
            float *Sr = S + (int64_t)r0 * np, *dPr = dP + (int64_t)r0 * np;
            llm__tile_mm(mr, np, d, qr, ldq, 1, Kt, np, Sr, np, 0);
            llm__tile_mm(mr, np, d, dor, ldo, 1, Vt, np, dPr, np, 0);
            for (int i = r0; i < m; i++)
                Dv[i] = dot(dob + (int64_t)(i0 + i) * ldo, ob + (int64_t)(i0 + i) * ldo, d);
            for (int i = r0; i < m; i++) {
                float *srow = S + (int64_t)i * np, *drow = dP + (int64_t)i * np;
                float L = lse[i0 + i], Di = Dv[i];
                if (L == -INFINITY) { /* the row saw no key (forward gave 0) */
                    memset(srow, 0, (size_t)np * sizeof(float));
                    memset(drow, 0, (size_t)np * sizeof(float));
                    continue;
                }
                int lim = np;
                if (a->causal) {
                    int64_t l = (int64_t)a->q_offset + i0 + i - j0;
                    lim = l < np ? (int)l : np;
                }
                for (int jj = 0; jj < np; jj++) {
                    float v = srow[jj] * scale + kb[jj];
                    float e = llm__expf(v - L);
                    e = v == -INFINITY || jj > lim ? 0.0f : e;
                    srow[jj] = e;
                    drow[jj] = e * (drow[jj] - Di) * scale;
                }
            }
            /* dV^T[c, j] += sum_i dout[i, c] P[i, j]; dK^T += Q^T dS; dQ = dS K */
            llm__tile_mm(d, np, mr, dor, 1, ldo, Sr, np, dVt, np, 1);
            llm__tile_mm(d, np, mr, qr, 1, ldq, dPr, np, dKt, np, 1);
            llm__tile_mm(mr, dp, n, dPr, np, 1, Kr, dp, dQ, dp, 0);
            for (int i = 0; i < mr; i++) {
                float *dq = dqb + (int64_t)(i0 + r0 + i) * ldq;
                const float *g = dQ + (int64_t)i * dp;
                for (int c = 0; c < d; c++) dq[c] += g[c];
            }
        }
        /* dk, dv rows += the transposed tiles, 8 rows at a time so the
         * tiles are read along their rows */
        for (int j8 = 0; j8 < n; j8 += 8) {
            const int w = imin(8, n - j8);
            float *dk = dkp + (int64_t)(j0 + j8) * ldkv, *dv = dvp + (int64_t)(j0 + j8) * ldkv;
            for (int c = 0; c < d; c++) {
                const float *gk = dKt + (int64_t)c * np + j8, *gv = dVt + (int64_t)c * np + j8;
                for (int t = 0; t < w; t++) {
                    dk[t * ldkv + c] += gk[t];
                    dv[t * ldkv + c] += gv[t];
                }
            }
        }
    }
}

LLM__SIMD_CLONES_FMA
static void bwd_slots(void *p, int64_t begin, int64_t end) {
    const attn_ctx *c = p;
    float stack[STACK_FLOATS];
    for (int64_t s = begin; s < end; s++) {
        float *scr = c->heap ? c->heap + s * c->scratch : stack;
        for (int64_t r = 0; r * c->slots < c->items; r++) {
            int64_t it = snake(r, s, c->slots);
            if (it < c->items) bwd_item(c->a, c->tile, it, scr);
        }
    }
}

/* ---- entry points ---- */

static llm_status check_args(const llm__attention *a, int backward, const char *fn) {
    if (!a) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL arguments", fn);
    if (a->B < 0 || a->heads < 0 || a->head_dim < 0 || a->Tq < 0 || a->Tk < 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: negative size (B %d, heads %d, head_dim %d, Tq %d, Tk %d)", fn, a->B,
                          a->heads, a->head_dim, a->Tq, a->Tk);
    if (a->B == 0 || a->heads == 0 || a->head_dim == 0 || a->Tq == 0) return LLM_OK;
    if (!a->q || !a->out || (a->Tk > 0 && (!a->k || !a->v)))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: q, k, v or out is NULL", fn);
    if (backward && (!a->lse || !a->dout || !a->dq || !a->dk || !a->dv))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: lse, dout, dq, dk or dv is NULL", fn);
    return LLM_OK;
}

/* The largest tile (a power of two from TILE_MAX down to TILE_MIN) whose
 * scratch fits the stack buffer; TILE_MIN when none does. */
static int pick_tile(int backward, int d) {
    int tile = TILE_MAX;
    while (tile > TILE_MIN && (backward ? bwd_scratch(tile, d) : fwd_scratch(tile, d)) > STACK_FLOATS)
        tile >>= 1;
    return tile;
}

/* Slots (threads used: one per SLOT_WORK multiply-adds, at most one per
 * item) and heap scratch when the stack buffer is too small. */
static llm_status setup(llm_backend *be, attn_ctx *c, int backward, int64_t items, double madds,
                        const char *fn) {
    c->scratch = backward ? bwd_scratch(c->tile, c->a->head_dim) : fwd_scratch(c->tile, c->a->head_dim);
    c->items = items;
    int threads = llm__pool_threads(llm__cpu_pool(be));
    double slots = madds / SLOT_WORK;
    if (slots > threads) slots = threads;
    if (slots > (double)items) slots = (double)items;
    c->slots = slots < 1.0 ? 1 : (int)slots;
    c->heap = NULL;
    if (c->scratch > STACK_FLOATS) {
        size_t bytes;
        if (!llm__mul_size((size_t)c->slots * (size_t)c->scratch, sizeof(float), &bytes) ||
            !(c->heap = llm__malloc(bytes)))
            return llm__oom(fn);
    }
    return LLM_OK;
}

/* (query, key) pairs that are visible by position (the mask aside), summed
 * over the query rows of one (b, head). */
static double visible_pairs(const llm__attention *a) {
    if (!a->causal) return (double)a->Tq * a->Tk;
    double n = 0.0;
    for (int i = 0; i < a->Tq; i++) {
        int64_t v = (int64_t)a->q_offset + i + 1;
        n += (double)(v < 0 ? 0 : v > a->Tk ? a->Tk : v);
    }
    return n;
}

llm_status llm__cpu_attention_forward(llm_backend *be, const llm__attention *a) {
    LLM__CHECK(check_args(a, 0, __func__));
    if (a->B == 0 || a->heads == 0 || a->head_dim == 0 || a->Tq == 0) return LLM_OK;
    attn_ctx c = { .a = a, .tile = pick_tile(0, a->head_dim) };
    int64_t nqb = (a->Tq + c.tile - 1) / c.tile;
    double madds = 2.0 * a->B * a->heads * visible_pairs(a) * a->head_dim;
    LLM__CHECK(setup(be, &c, 0, (int64_t)a->B * a->heads * nqb, madds, __func__));
    llm__pool_for(llm__cpu_pool(be), c.slots, 1, fwd_slots, &c);
    llm__free(c.heap);
    return LLM_OK;
}

llm_status llm__cpu_attention_backward(llm_backend *be, const llm__attention *a) {
    LLM__CHECK(check_args(a, 1, __func__));
    if (a->B == 0 || a->heads == 0 || a->head_dim == 0 || a->Tq == 0 || a->Tk == 0) return LLM_OK;
    attn_ctx c = { .a = a, .tile = pick_tile(1, a->head_dim) };
    double madds = 5.0 * a->B * a->heads * visible_pairs(a) * a->head_dim;
    LLM__CHECK(setup(be, &c, 1, (int64_t)a->B * a->heads, madds, __func__));
    llm__pool_for(llm__cpu_pool(be), c.slots, 1, bwd_slots, &c);
    llm__free(c.heap);
    return LLM_OK;
}
