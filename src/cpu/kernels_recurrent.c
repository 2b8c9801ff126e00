/* libllm: CPU point-wise parts of one LSTM / GRU time step.
 *
 * The matrix products (x W_ih^T for all steps at once, h W_hh^T per step) are
 * GEMMs done by the caller; these kernels do everything between them for one
 * step: gate activations, the state update, masking, and the backward of the
 * same. They split by batch rows; rows are independent, so the result does
 * not depend on the thread count.
 *
 * Masked (padding) rows carry the previous state through unchanged, which is
 * what Keras does for masked steps, so a padded sequence ends with the state
 * of its last real step. Every element is read before its own output is
 * written, so c may equal c_prev and h may equal h_prev. */
#include "cpu.h"
#include "fastmath.h"
#include "simd.h"
#include <cblas.h>

#ifndef RNN_GRAIN
#define RNN_GRAIN 2048 /* state elements (B * H) per chunk at least */
#endif

static int64_t rnn_grain(int H) {
    return H >= RNN_GRAIN ? 1 : RNN_GRAIN / (H > 0 ? H : 1);
}

static inline int row_is_real(const float *mask, int64_t ld_mask, int64_t b) {
    return !mask || mask[b * ld_mask] != 0.0f;
}

/* The inner loops below are kept to a few pointers each and use the
 * branch-free llm__sigmoidf / llm__tanhf, so GCC vectorises every one of
 * them (check with -fopt-info-vec); the per-row branches (mask, first step)
 * sit outside them. */

/* y[j] = sigmoid(a[j] + b[j]) for j < n */
static inline void sigmoid_sum(const float *a, const float *b, float *y, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] = llm__sigmoidf(a[j] + b[j]);
}

/* y[j] = tanh(a[j] + b[j]) for j < n */
static inline void tanh_sum(const float *a, const float *b, float *y, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] = llm__tanhf(a[j] + b[j]);
}

/* ---- LSTM ---- */

LLM__SIMD_CLONES
static void lstm_forward_chunk(void *p, int64_t begin, int64_t end) {
    const llm__lstm_step *s = p;
    int64_t H = s->H;
    for (int64_t b = begin; b < end; b++) {
        const float *xw = s->xw + b * s->ld_xw, *gh = s->gh ? s->gh + b * 4 * H : NULL;
        const float *hp = s->h_prev ? s->h_prev + b * s->ld_hprev : NULL;
        const float *cp = s->c_prev ? s->c_prev + b * s->ld_cprev : NULL;
        float *gates = s->gates + b * s->ld_gates;
        float *c = s->c + b * s->ld_c, *h = s->h + b * s->ld_h;
        float *h2 = s->h2 ? s->h2 + b * s->ld_h2 : NULL;
        if (!row_is_real(s->mask, s->ld_mask, b)) {
            for (int64_t j = 0; j < H; j++) {
                float cv = cp ? cp[j] : 0.0f, hv = hp ? hp[j] : 0.0f;
                c[j] = cv;
                h[j] = hv;
                if (h2) h2[j] = hv;
            }
            for (int64_t j = 0; j < 4 * H; j++) gates[j] = 0.0f;
            continue;
        }
        /* gates = [i f | g | o]: sigmoid, tanh, sigmoid of xw + gh (of xw
         * alone when the caller's GEMM already added h W_hh^T into it) */
        if (s->gh) {
            sigmoid_sum(xw, gh, gates, 2 * H);
            tanh_sum(xw + 2 * H, gh + 2 * H, gates + 2 * H, H);
            sigmoid_sum(xw + 3 * H, gh + 3 * H, gates + 3 * H, H);
        } else {
            for (int64_t j = 0; j < 2 * H; j++) gates[j] = llm__sigmoidf(xw[j]);
            for (int64_t j = 2 * H; j < 3 * H; j++) gates[j] = llm__tanhf(xw[j]);
            for (int64_t j = 3 * H; j < 4 * H; j++) gates[j] = llm__sigmoidf(xw[j]);
        }
        const float *gi = gates, *gf = gates + H, *gg = gates + 2 * H, *go = gates + 3 * H;
        /* c, then h in a loop of its own: with both in one loop GCC needs more
         * run-time alias checks than it will version for, and runs it scalar */
        if (cp)
            for (int64_t j = 0; j < H; j++) c[j] = gf[j] * cp[j] + gi[j] * gg[j];
        else /* first step: c_prev = 0 */
            for (int64_t j = 0; j < H; j++) c[j] = gi[j] * gg[j];
        for (int64_t j = 0; j < H; j++) h[j] = go[j] * llm__tanhf(c[j]);
        if (h2) memcpy(h2, h, (size_t)H * sizeof *h2);
    }
}

llm_status llm__cpu_lstm_step_forward(llm_backend *be, const llm__lstm_step *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), lstm_forward_chunk, (void *)s);
    return LLM_OK;
}

LLM__SIMD_CLONES
static void lstm_backward_chunk(void *p, int64_t begin, int64_t end) {
    const llm__lstm_step_grad *s = p;
    int64_t H = s->H;
    for (int64_t b = begin; b < end; b++) {
        const float *dy = s->dy ? s->dy + b * s->ld_dy : NULL;
        float *dh_next = s->dh_next + b * H, *dc = s->dc + b * H;
        float *dg = s->dgates + b * s->ld_dgates;
        /* dh = dh_next + dy: the state passed through a masked row, so does
         * its gradient (dc unchanged); a real row uses dh below */
        if (dy)
            for (int64_t j = 0; j < H; j++) dh_next[j] += dy[j];
        if (!row_is_real(s->mask, s->ld_mask, b)) {
            for (int64_t j = 0; j < 4 * H; j++) dg[j] = 0.0f;
            continue;
        }
        const float *gates = s->gates + b * s->ld_gates, *c = s->c + b * s->ld_c;
        const float *cp = s->c_prev ? s->c_prev + b * s->ld_cprev : NULL;
        const float *gi = gates, *gf = gates + H, *gg = gates + 2 * H, *go = gates + 3 * H;
        float *di_ = dg, *df_ = dg + H, *dg_ = dg + 2 * H, *do_ = dg + 3 * H;
        for (int64_t j = 0; j < H; j++) {
            float i = gi[j], f = gf[j], g = gg[j], o = go[j];
            float dh = dh_next[j];
            float tc = llm__tanhf(c[j]);
            float d_o = dh * tc;
            float dct = dc[j] + dh * o * (1.0f - tc * tc);
            float di = dct * g, dgg = dct * i;
            dc[j] = dct * f;
            di_[j] = di * i * (1.0f - i);
            dg_[j] = dgg * (1.0f - g * g);
            do_[j] = d_o * o * (1.0f - o);
            /* df needs c_prev; kept as dct for the loop below */
            df_[j] = dct;
            /* the rest of dL/dh_{t-1} flows through W_hh: the caller's GEMM */
            dh_next[j] = 0.0f;
        }
        if (cp) {
            for (int64_t j = 0; j < H; j++) {
                float f = gf[j];
                df_[j] = df_[j] * cp[j] * f * (1.0f - f);
            }
        } else {
            for (int64_t j = 0; j < H; j++) df_[j] = 0.0f;
        }
    }
}

llm_status llm__cpu_lstm_step_backward(llm_backend *be, const llm__lstm_step_grad *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), lstm_backward_chunk, (void *)s);
    return LLM_OK;
}

/* ---- a whole LSTM sequence, rows split over the threads ----
 *
 * Rows (sequences of the batch) never interact in an LSTM, so each thread
 * takes a block of rows through all T steps, its own recurrent GEMMs
 * included: one pool job for the whole layer instead of a GEMM and a gate
 * job per step, and no thread ever waits for another in between (on virtual
 * CPUs a descheduled thread otherwise stalls every step). The arithmetic is
 * the per-step path's; the recurrent products go through
 * kernels_recurrent_product.c where it takes H (W_hh^T packed once per
 * sequence instead of by OpenBLAS at every step), else through OpenBLAS. */

#define SEQ_MIN_ROWS 8 /* fewer rows: the per-step path, whose GEMMs split B's rows instead */

static void lstm_seq_forward_rows(void *p, int64_t b0, int64_t b1) {
    const llm__lstm_sequence *q = p;
    const int64_t T = q->T, H = q->H, GH = 4 * H, rows = b1 - b0;
    const int64_t ld4 = T * GH, ld1 = T * H;
    float *xw = q->xw + b0 * ld4, *gates = q->gates + b0 * ld4;
    float *c = q->c + b0 * ld1, *h = q->h + b0 * ld1, *hprev = q->hprev ? q->hprev + b0 * ld1 : NULL;
    const float *mask = q->mask ? q->mask + b0 * T : NULL;
    const int own = q->scratch && llm__cpu_lstm_recurrent_ok((int)H); /* W_hh^T packed by seq_split */
    for (int64_t s = 0; s < T; s++) {
        int64_t t = q->reverse ? T - 1 - s : s, tp = q->reverse ? t + 1 : t - 1, tn = q->reverse ? t - 1 : t + 1;
        if (s && own) /* xw_t += h_{t-1} W_hh^T (zero before the first step) */
            llm__cpu_lstm_recurrent_forward_add((int)rows, (int)H, q->scratch, h + tp * H, ld1, xw + t * GH, ld4);
        else if (s)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)GH, (int)H, 1.0f, h + tp * H,
                        (int)ld1, q->W_hh, (int)H, 1.0f, xw + t * GH, (int)ld4);
        llm__lstm_step a = {
            .B = (int)rows, .H = (int)H, .xw = xw + t * GH, .ld_xw = ld4, .gh = NULL,
            .h_prev = s ? h + tp * H : NULL, .ld_hprev = ld1, .c_prev = s ? c + tp * H : NULL, .ld_cprev = ld1,
            .mask = mask ? mask + t : NULL, .ld_mask = T, .gates = gates + t * GH, .ld_gates = ld4,
            .c = c + t * H, .ld_c = ld1, .h = h + t * H, .ld_h = ld1,
            .h2 = hprev && s < T - 1 ? hprev + tn * H : NULL, .ld_h2 = ld1,
        };
        lstm_forward_chunk(&a, 0, rows);
    }
}

static void lstm_seq_backward_rows(void *p, int64_t b0, int64_t b1) {
    const llm__lstm_sequence *q = p;
    const int64_t T = q->T, H = q->H, GH = 4 * H, rows = b1 - b0;
    const int64_t ld4 = T * GH, ld1 = T * H;
    const float *gates = q->gates + b0 * ld4, *c = q->c + b0 * ld1;
    const float *mask = q->mask ? q->mask + b0 * T : NULL, *dy = q->dy ? q->dy + b0 * ld1 : NULL;
    float *dh = q->dh + b0 * H, *dc = q->dc + b0 * H, *dg = q->dgates + b0 * ld4;
    const int own = llm__cpu_lstm_recurrent_ok((int)H);
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t t = q->reverse ? T - 1 - s : s, tp = q->reverse ? t + 1 : t - 1;
        llm__lstm_step_grad a = {
            .B = (int)rows, .H = (int)H, .gates = gates + t * GH, .ld_gates = ld4, .c = c + t * H, .ld_c = ld1,
            .c_prev = s ? c + tp * H : NULL, .ld_cprev = ld1, .mask = mask ? mask + t : NULL, .ld_mask = T,
            .dy = dy ? dy + t * H : NULL, .ld_dy = ld1, .dh_next = dh, .dc = dc, .dgates = dg + t * GH,
            .ld_dgates = ld4,
        };
        lstm_backward_chunk(&a, 0, rows);
        if (s && own) /* dh_{t-1} += dgates_t W_hh */
            llm__cpu_lstm_recurrent_backward_add((int)rows, (int)H, q->W_hh, dg + t * GH, ld4, dh, H);
        else if (s)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)H, (int)GH, 1.0f, dg + t * GH,
                        (int)ld4, q->W_hh, (int)H, 1.0f, dh, (int)H);
    }
}

/* Row blocks start on multiples of 8, which keeps OpenBLAS's row tiles whole.
 * Where OpenBLAS does the products, its sums depend on how many rows a call
 * has (its kernels and their edges change with the sizes), so, as for any
 * GEMM here, the same thread count gives the same bits and another one
 * agrees to rounding; the own products give the same bits for any. */
typedef struct seq_job {
    const llm__lstm_sequence *q;
    void (*rows)(void *q, int64_t b0, int64_t b1);
} seq_job;

static void seq_units(void *p, int64_t u0, int64_t u1) {
    const seq_job *j = p;
    int64_t b1 = u1 * 8 < j->q->B ? u1 * 8 : j->q->B;
    j->rows((void *)j->q, u0 * 8, b1);
}

static void seq_split(llm_backend *be, const llm__lstm_sequence *q, void (*rows)(void *, int64_t, int64_t),
                      int *done) {
    *done = 0;
    if (q->B < SEQ_MIN_ROWS || q->T <= 0 || q->H <= 0) return;
    seq_job j = { q, rows };
    llm__pool_for(llm__cpu_pool(be), (q->B + 7) / 8, 1, seq_units, &j);
    *done = 1;
}

llm_status llm__cpu_lstm_sequence_forward(llm_backend *be, const llm__lstm_sequence *q, int *done) {
    if (q->scratch && q->B >= SEQ_MIN_ROWS && llm__cpu_lstm_recurrent_ok(q->H))
        llm__cpu_lstm_pack_w_hh(q->H, q->W_hh, q->scratch);
    seq_split(be, q, lstm_seq_forward_rows, done);
    return LLM_OK;
}

llm_status llm__cpu_lstm_sequence_backward(llm_backend *be, const llm__lstm_sequence *q, int *done) {
    seq_split(be, q, lstm_seq_backward_rows, done);
    return LLM_OK;
}

/* ---- GRU ---- */

LLM__SIMD_CLONES
static void gru_forward_chunk(void *p, int64_t begin, int64_t end) {
    const llm__gru_step *s = p;
    int64_t H = s->H;
    for (int64_t b = begin; b < end; b++) {
        const float *xw = s->xw + b * s->ld_xw, *gh = s->gh + b * 3 * H;
        const float *hp = s->h_prev ? s->h_prev + b * s->ld_hprev : NULL;
        float *gates = s->gates + b * s->ld_gates, *h = s->h + b * s->ld_h;
        float *h2 = s->h2 ? s->h2 + b * s->ld_h2 : NULL;
        if (!row_is_real(s->mask, s->ld_mask, b)) {
            for (int64_t j = 0; j < H; j++) {
                float hv = hp ? hp[j] : 0.0f;
                h[j] = hv;
                if (h2) h2[j] = hv;
            }
            for (int64_t j = 0; j < 4 * H; j++) gates[j] = 0.0f;
            continue;
        }
        /* gates = [r z | n | W_hn h]: r, z = sigmoid(xw + gh) */
        sigmoid_sum(xw, gh, gates, 2 * H);
        const float *gr = gates, *gz = gates + H, *ghn = gh + 2 * H, *xn = xw + 2 * H;
        float *gn = gates + 2 * H, *gs = gates + 3 * H;
        for (int64_t j = 0; j < H; j++) {
            float g = ghn[j];
            gn[j] = llm__tanhf(xn[j] + gr[j] * g);
            gs[j] = g;
        }
        if (hp) {
            for (int64_t j = 0; j < H; j++) h[j] = (1.0f - gz[j]) * gn[j] + gz[j] * hp[j];
        } else { /* first step: h_prev = 0 */
            for (int64_t j = 0; j < H; j++) h[j] = (1.0f - gz[j]) * gn[j] + gz[j] * 0.0f;
        }
        if (h2) memcpy(h2, h, (size_t)H * sizeof *h2);
    }
}

llm_status llm__cpu_gru_step_forward(llm_backend *be, const llm__gru_step *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), gru_forward_chunk, (void *)s);
    return LLM_OK;
}

LLM__SIMD_CLONES
static void gru_backward_chunk(void *p, int64_t begin, int64_t end) {
    const llm__gru_step_grad *s = p;
    int64_t H = s->H;
    for (int64_t b = begin; b < end; b++) {
        const float *dy = s->dy ? s->dy + b * s->ld_dy : NULL;
        float *dh_next = s->dh_next + b * H;
        float *dxw = s->dxw + b * s->ld_dxw, *dgh = s->dgh + b * s->ld_dgh;
        if (!row_is_real(s->mask, s->ld_mask, b)) {
            if (dy)
                for (int64_t j = 0; j < H; j++) dh_next[j] += dy[j];
            for (int64_t j = 0; j < 3 * H; j++) dxw[j] = dgh[j] = 0.0f;
            continue;
        }
        const float *gates = s->gates + b * s->ld_gates;
        const float *hp = s->h_prev ? s->h_prev + b * s->ld_hprev : NULL;
        for (int64_t j = 0; j < H; j++) {
            float r = gates[j], z = gates[H + j], n = gates[2 * H + j], ghn = gates[3 * H + j];
            float dh = dh_next[j] + (dy ? dy[j] : 0.0f);
            float dz = dh * ((hp ? hp[j] : 0.0f) - n);
            float dan = dh * (1.0f - z) * (1.0f - n * n);
            float dar = dan * ghn * r * (1.0f - r);
            float daz = dz * z * (1.0f - z);
            dxw[j] = dar;
            dxw[H + j] = daz;
            dxw[2 * H + j] = dan;
            dgh[j] = dar;
            dgh[H + j] = daz;
            dgh[2 * H + j] = dan * r;
            dh_next[j] = dh * z;
        }
    }
}

llm_status llm__cpu_gru_step_backward(llm_backend *be, const llm__gru_step_grad *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), gru_backward_chunk, (void *)s);
    return LLM_OK;
}
