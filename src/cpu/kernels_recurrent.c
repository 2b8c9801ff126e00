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
#include <math.h>
#include "cpu.h"

#define RNN_GRAIN 8192 /* state elements (B * H) per chunk at least */

static int64_t rnn_grain(int H) {
    return H >= RNN_GRAIN ? 1 : RNN_GRAIN / (H > 0 ? H : 1);
}

static inline float sigm(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

static inline int row_is_real(const float *mask, int64_t ld_mask, int64_t b) {
    return !mask || mask[b * ld_mask] != 0.0f;
}

/* ---- LSTM ---- */

static void lstm_forward_chunk(void *p, int64_t begin, int64_t end) {
    const llm__lstm_step *s = p;
    int64_t H = s->H;
    for (int64_t b = begin; b < end; b++) {
        const float *xw = s->xw + b * s->ld_xw, *gh = s->gh + b * 4 * H;
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
        for (int64_t j = 0; j < H; j++) {
            float i = sigm(xw[j] + gh[j]);
            float f = sigm(xw[H + j] + gh[H + j]);
            float g = tanhf(xw[2 * H + j] + gh[2 * H + j]);
            float o = sigm(xw[3 * H + j] + gh[3 * H + j]);
            float cv = f * (cp ? cp[j] : 0.0f) + i * g;
            float hv = o * tanhf(cv);
            gates[j] = i;
            gates[H + j] = f;
            gates[2 * H + j] = g;
            gates[3 * H + j] = o;
            c[j] = cv;
            h[j] = hv;
            if (h2) h2[j] = hv;
        }
    }
}

llm_status llm__cpu_lstm_step_forward(llm_backend *be, const llm__lstm_step *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), lstm_forward_chunk, (void *)s);
    return LLM_OK;
}

static void lstm_backward_chunk(void *p, int64_t begin, int64_t end) {
    const llm__lstm_step_grad *s = p;
    int64_t H = s->H;
    for (int64_t b = begin; b < end; b++) {
        const float *dy = s->dy ? s->dy + b * s->ld_dy : NULL;
        float *dh_next = s->dh_next + b * H, *dc = s->dc + b * H;
        float *dg = s->dgates + b * s->ld_dgates;
        if (!row_is_real(s->mask, s->ld_mask, b)) {
            /* the state passed through: so does its gradient (dc unchanged) */
            if (dy)
                for (int64_t j = 0; j < H; j++) dh_next[j] += dy[j];
            for (int64_t j = 0; j < 4 * H; j++) dg[j] = 0.0f;
            continue;
        }
        const float *gates = s->gates + b * s->ld_gates, *c = s->c + b * s->ld_c;
        const float *cp = s->c_prev ? s->c_prev + b * s->ld_cprev : NULL;
        for (int64_t j = 0; j < H; j++) {
            float i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
            float dh = dh_next[j] + (dy ? dy[j] : 0.0f);
            float tc = tanhf(c[j]);
            float d_o = dh * tc;
            float dct = dc[j] + dh * o * (1.0f - tc * tc);
            float di = dct * g, dgg = dct * i, df = dct * (cp ? cp[j] : 0.0f);
            dc[j] = dct * f;
            dg[j] = di * i * (1.0f - i);
            dg[H + j] = df * f * (1.0f - f);
            dg[2 * H + j] = dgg * (1.0f - g * g);
            dg[3 * H + j] = d_o * o * (1.0f - o);
            /* the rest of dL/dh_{t-1} flows through W_hh: the caller's GEMM */
            dh_next[j] = 0.0f;
        }
    }
}

llm_status llm__cpu_lstm_step_backward(llm_backend *be, const llm__lstm_step_grad *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), lstm_backward_chunk, (void *)s);
    return LLM_OK;
}

/* ---- GRU ---- */

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
        for (int64_t j = 0; j < H; j++) {
            float r = sigm(xw[j] + gh[j]);
            float z = sigm(xw[H + j] + gh[H + j]);
            float ghn = gh[2 * H + j];
            float n = tanhf(xw[2 * H + j] + r * ghn);
            float hv = (1.0f - z) * n + z * (hp ? hp[j] : 0.0f);
            gates[j] = r;
            gates[H + j] = z;
            gates[2 * H + j] = n;
            gates[3 * H + j] = ghn;
            h[j] = hv;
            if (h2) h2[j] = hv;
        }
    }
}

llm_status llm__cpu_gru_step_forward(llm_backend *be, const llm__gru_step *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    llm__pool_for(llm__cpu_pool(be), s->B, rnn_grain(s->H), gru_forward_chunk, (void *)s);
    return LLM_OK;
}

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
