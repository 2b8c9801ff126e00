/* The recurrent products of the CPU LSTM sequence path, for one thread's
 * block of batch rows at one time step:
 *   forward   xw_t[r] += h_{t-1}[r] W_hh^T      (W_hh [4H, H])
 *   backward  dh[r]   += dgates_t[r] W_hh
 *
 * OpenBLAS packs W_hh into its panel layout on every call: at H = 128 that is
 * 256 KiB per step, 18% of batch-32 inference. Here the forward's W_hh^T is
 * packed once per sequence (llm__cpu_lstm_pack_w_hh, into 16-column panels
 * read front to back), and the backward reads W_hh's rows in place, which
 * already are its panels' rows. The products are the attention's tile
 * product (tile_mm.h: 4 rows x 16 columns of accumulators), adding into the
 * rows' outputs. Every output element is summed over the inner dimension in
 * order, starting from its old value, so the result depends neither on the
 * block of rows, the batch size nor the thread count, and the AVX2 and
 * baseline builds give the same bits (no FMA contraction under -std=c11). */
#include <string.h>
#include "cpu.h"
#include "simd.h"
#include "tile_mm.h"

/* out [rows, n] += a [rows, k] B, rows <= ROWS, B's columns in 16-wide
 * panels: column j's value for inner index p at b + (j / 16) * panel + p *
 * ldb + j % 16. Panel by panel, so a panel is read from memory once and from
 * L1 for the other row blocks. */
LLM__SIMD_CLONES
static void panels(int rows, int n, int k, const float *a, int64_t lda, const float *b, int64_t panel, int64_t ldb,
                   float *out, int64_t ldo) {
    for (int j = 0; j < n; j += 16) llm__tile_mm(rows, 16, k, a, lda, 1, b + (j / 16) * panel, ldb, out + j, ldo, 1);
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
