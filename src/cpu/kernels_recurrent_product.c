/* The recurrent products of the CPU LSTM sequence path, for one thread's
 * block of batch rows at one time step:
 *   forward   xw_t[r] += h_{t-1}[r] W_hh^T      (W_hh [4H, H])
 *   backward  dh[r]   += dgates_t[r] W_hh
 *
 * OpenBLAS packs W_hh into its panel layout on every call: at H = 128 that is
 * 256 KiB per step, 18% of batch-32 inference. Here the forward's W_hh^T is
 * packed once per sequence (llm__cpu_lstm_pack_w_hh, into 16-column panels
 * read front to back), and the backward reads W_hh's rows in place, which
 * already are its panels' rows. The products go through one register block
 * of 4 batch rows x 16 columns (8 vectors of 8 floats), then are added into
 * the rows' outputs. Every output element is summed over the inner dimension
 * in order from zero and then added once, so the result depends neither on
 * the block of rows, the batch size nor the thread count, and the AVX2 and
 * baseline builds give the same bits (no FMA contraction under -std=c11). */
#include <string.h>
#include "cpu.h"
#include "simd.h"

typedef float v8 __attribute__((vector_size(32)));
#define LD8(v, p) __builtin_memcpy(&(v), (p), sizeof(v8))
#define ST8(p, v) __builtin_memcpy((p), &(v), sizeof(v8))
#define ADD8(p, v)            \
    do {                      \
        v8 t_;                \
        LD8(t_, (p));         \
        t_ += (v);            \
        ST8((p), t_);         \
    } while (0)

/* out[r][0..16) += sum_p a[r * lda + p] * b[p * ldb + 0..16) for rows r < m
 * (m <= 4; missing rows read row 0 and are not stored) and p < k. */
static inline __attribute__((always_inline)) void block(int m, int k, const float *a, int64_t lda, const float *b,
                                                        int64_t ldb, float *out, int64_t ldo) {
    const float *a0 = a, *a1 = m > 1 ? a + lda : a, *a2 = m > 2 ? a + 2 * lda : a, *a3 = m > 3 ? a + 3 * lda : a;
    v8 x00 = { 0 }, x01 = { 0 }, x10 = { 0 }, x11 = { 0 };
    v8 x20 = { 0 }, x21 = { 0 }, x30 = { 0 }, x31 = { 0 };
    for (int p = 0; p < k; p++, b += ldb) {
        v8 b0, b1;
        LD8(b0, b);
        LD8(b1, b + 8);
        float s0 = a0[p], s1 = a1[p], s2 = a2[p], s3 = a3[p];
        x00 += s0 * b0; x01 += s0 * b1;
        x10 += s1 * b0; x11 += s1 * b1;
        x20 += s2 * b0; x21 += s2 * b1;
        x30 += s3 * b0; x31 += s3 * b1;
    }
    ADD8(out, x00); ADD8(out + 8, x01);
    if (m > 1) { ADD8(out + ldo, x10); ADD8(out + ldo + 8, x11); }
    if (m > 2) { ADD8(out + 2 * ldo, x20); ADD8(out + 2 * ldo + 8, x21); }
    if (m > 3) { ADD8(out + 3 * ldo, x30); ADD8(out + 3 * ldo + 8, x31); }
}

/* out [rows, n] += a [rows, k] B, B's columns in 16-wide panels: column
 * j's value for inner index p at b + (j / 16) * panel + p * ldb + j % 16.
 * Panel by panel, so a panel is read from memory once and from L1 for the
 * other row blocks. */
LLM__SIMD_CLONES
static void panels(int rows, int n, int k, const float *a, int64_t lda, const float *b, int64_t panel, int64_t ldb,
                   float *out, int64_t ldo) {
    for (int j = 0; j < n; j += 16)
        for (int r = 0; r < rows; r += 4)
            block(rows - r < 4 ? rows - r : 4, k, a + r * lda, lda, b + (j / 16) * panel, ldb, out + r * ldo + j,
                  ldo);
}

int llm__cpu_lstm_recurrent_ok(int H) { return H > 0 && H % 16 == 0 && H <= LLM__RECURRENT_MAX_H; }

void llm__cpu_lstm_pack_w_hh(int H, const float *W_hh, float *packed) {
    const int64_t G = 4 * (int64_t)H;
    for (int64_t j = 0; j < G; j++)
        for (int64_t p = 0; p < H; p++) packed[(j / 16) * 16 * H + p * 16 + j % 16] = W_hh[j * H + p];
}

/* The rows of a step sit T * H (or T * 4H) floats apart, a multiple of 4 KiB
 * for the usual sizes, so all of them fall into the same L1 sets and evict
 * each other while a block reads them: each group of ROWS is first copied
 * into a contiguous buffer. */
#define ROWS 16

void llm__cpu_lstm_recurrent_forward_add(int rows, int H, const float *packed, const float *h, int64_t ld_h,
                                         float *xw, int64_t ld_xw) {
    float buf[ROWS * LLM__RECURRENT_MAX_H];
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        int m = rows - r0 < ROWS ? rows - r0 : ROWS;
        for (int r = 0; r < m; r++) memcpy(buf + (int64_t)r * H, h + (r0 + r) * ld_h, (size_t)H * sizeof *buf);
        panels(m, 4 * H, H, buf, H, packed, 16 * (int64_t)H, 16, xw + r0 * ld_xw, ld_xw);
    }
}

void llm__cpu_lstm_recurrent_backward_add(int rows, int H, const float *W_hh, const float *dgates,
                                          int64_t ld_dgates, float *dh, int64_t ld_dh) {
    float buf[ROWS * 4 * LLM__RECURRENT_MAX_H];
    for (int r0 = 0; r0 < rows; r0 += ROWS) {
        int m = rows - r0 < ROWS ? rows - r0 : ROWS;
        for (int r = 0; r < m; r++)
            memcpy(buf + (int64_t)r * 4 * H, dgates + (r0 + r) * ld_dgates, (size_t)4 * H * sizeof *buf);
        /* B = W_hh [4H, H]: its rows hold the 16-wide panels side by side */
        panels(m, H, 4 * H, buf, 4 * H, W_hh, 16, H, dh + r0 * ld_dh, ld_dh);
    }
}
