/* libllm: CUDA point-wise parts of one LSTM / GRU time step.
 *
 * The same work as src/cpu/kernels_recurrent.c, one thread per (batch row,
 * unit): thread (b, j) computes the gates of unit j, the state update and,
 * backward, the gate gradients of unit j. Masked (padding) rows carry the
 * previous state through unchanged and get zero gate gradients. Each thread
 * reads its elements before writing them, so c may equal c_prev and h may
 * equal h_prev, as on the CPU. */
#include "gpu.h"

static __device__ __forceinline__ float sigm(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

static __device__ __forceinline__ int row_real(const float *mask, int64_t ld_mask, int64_t b) {
    return !mask || mask[b * ld_mask] != 0.0f;
}

#define RNN_LOOP(b, j, B, H)                                                                        \
    for (int64_t b = blockIdx.y; b < (B); b += gridDim.y)                                            \
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (H); j += (int64_t)gridDim.x * blockDim.x)

static dim3 rnn_grid(int B, int H, int threads) {
    int64_t bx = ((int64_t)H + threads - 1) / threads;
    int by = B < 65535 ? B : 65535;
    return dim3((unsigned)(bx < 1024 ? bx : 1024), (unsigned)(by > 0 ? by : 1));
}

static int rnn_threads(int H) {
    int t = 32;
    while (t < 256 && t < H) t <<= 1;
    return t;
}

/* ---- LSTM (gates i, f, g, o) ---- */

__global__ static void lstm_forward_kernel(llm__lstm_step s) {
    const int64_t H = s.H;
    RNN_LOOP(b, j, s.B, H) {
        float cp = s.c_prev ? s.c_prev[b * s.ld_cprev + j] : 0.0f;
        float hp = s.h_prev ? s.h_prev[b * s.ld_hprev + j] : 0.0f;
        float *gates = s.gates + b * s.ld_gates;
        float cv, hv;
        if (!row_real(s.mask, s.ld_mask, b)) {
            cv = cp;
            hv = hp;
            gates[j] = gates[H + j] = gates[2 * H + j] = gates[3 * H + j] = 0.0f;
        } else {
            const float *xw = s.xw + b * s.ld_xw;
            float zi = xw[j], zf = xw[H + j], zg = xw[2 * H + j], zo = xw[3 * H + j];
            if (s.gh) { /* else xw already holds the sum */
                const float *gh = s.gh + b * 4 * H;
                zi += gh[j], zf += gh[H + j], zg += gh[2 * H + j], zo += gh[3 * H + j];
            }
            float i = sigm(zi), f = sigm(zf), g = tanhf(zg), o = sigm(zo);
            gates[j] = i;
            gates[H + j] = f;
            gates[2 * H + j] = g;
            gates[3 * H + j] = o;
            cv = s.c_prev ? f * cp + i * g : i * g;
            hv = o * tanhf(cv);
        }
        s.c[b * s.ld_c + j] = cv;
        s.h[b * s.ld_h + j] = hv;
        if (s.h2) s.h2[b * s.ld_h2 + j] = hv;
    }
}

llm_status llm__gpu_lstm_step_forward(llm_backend *be, const llm__lstm_step *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int t = rnn_threads(s->H);
    lstm_forward_kernel<<<rnn_grid(s->B, s->H, t), t, 0, llm__gpu_stream(be)>>>(*s);
    return llm__gpu_launched("lstm_step_forward");
}

__global__ static void lstm_backward_kernel(llm__lstm_step_grad s) {
    const int64_t H = s.H;
    RNN_LOOP(b, j, s.B, H) {
        float *dh_next = s.dh_next + b * H, *dc = s.dc + b * H;
        float *dg = s.dgates + b * s.ld_dgates;
        float dh = dh_next[j] + (s.dy ? s.dy[b * s.ld_dy + j] : 0.0f);
        if (!row_real(s.mask, s.ld_mask, b)) {
            /* the state passed through unchanged, and so does its gradient */
            dh_next[j] = dh;
            dg[j] = dg[H + j] = dg[2 * H + j] = dg[3 * H + j] = 0.0f;
            continue;
        }
        const float *gates = s.gates + b * s.ld_gates;
        float i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
        float tc = tanhf(s.c[b * s.ld_c + j]);
        float d_o = dh * tc;
        float dct = dc[j] + dh * o * (1.0f - tc * tc);
        dc[j] = dct * f;
        dg[j] = dct * g * i * (1.0f - i);
        dg[2 * H + j] = dct * i * (1.0f - g * g);
        dg[3 * H + j] = d_o * o * (1.0f - o);
        dg[H + j] = s.c_prev ? dct * s.c_prev[b * s.ld_cprev + j] * f * (1.0f - f) : 0.0f;
        /* the rest of dL/dh_{t-1} flows through W_hh: the caller's GEMM */
        dh_next[j] = 0.0f;
    }
}

llm_status llm__gpu_lstm_step_backward(llm_backend *be, const llm__lstm_step_grad *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int t = rnn_threads(s->H);
    lstm_backward_kernel<<<rnn_grid(s->B, s->H, t), t, 0, llm__gpu_stream(be)>>>(*s);
    return llm__gpu_launched("lstm_step_backward");
}

/* ---- GRU (gates r, z, n; reset after the recurrent product) ---- */

__global__ static void gru_forward_kernel(llm__gru_step s) {
    const int64_t H = s.H;
    RNN_LOOP(b, j, s.B, H) {
        float hp = s.h_prev ? s.h_prev[b * s.ld_hprev + j] : 0.0f;
        float *gates = s.gates + b * s.ld_gates;
        float hv;
        if (!row_real(s.mask, s.ld_mask, b)) {
            hv = hp;
            gates[j] = gates[H + j] = gates[2 * H + j] = gates[3 * H + j] = 0.0f;
        } else {
            const float *xw = s.xw + b * s.ld_xw, *gh = s.gh + b * 3 * H;
            float r = sigm(xw[j] + gh[j]);
            float z = sigm(xw[H + j] + gh[H + j]);
            float ghn = gh[2 * H + j];
            float n = tanhf(xw[2 * H + j] + r * ghn);
            gates[j] = r;
            gates[H + j] = z;
            gates[2 * H + j] = n;
            gates[3 * H + j] = ghn;
            hv = (1.0f - z) * n + z * hp;
        }
        s.h[b * s.ld_h + j] = hv;
        if (s.h2) s.h2[b * s.ld_h2 + j] = hv;
    }
}

llm_status llm__gpu_gru_step_forward(llm_backend *be, const llm__gru_step *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int t = rnn_threads(s->H);
    gru_forward_kernel<<<rnn_grid(s->B, s->H, t), t, 0, llm__gpu_stream(be)>>>(*s);
    return llm__gpu_launched("gru_step_forward");
}

__global__ static void gru_backward_kernel(llm__gru_step_grad s) {
    const int64_t H = s.H;
    RNN_LOOP(b, j, s.B, H) {
        float *dh_next = s.dh_next + b * H;
        float *dxw = s.dxw + b * s.ld_dxw, *dgh = s.dgh + b * s.ld_dgh;
        float dh = dh_next[j] + (s.dy ? s.dy[b * s.ld_dy + j] : 0.0f);
        if (!row_real(s.mask, s.ld_mask, b)) {
            dh_next[j] = dh;
            dxw[j] = dxw[H + j] = dxw[2 * H + j] = 0.0f;
            dgh[j] = dgh[H + j] = dgh[2 * H + j] = 0.0f;
            continue;
        }
        const float *gates = s.gates + b * s.ld_gates;
        float r = gates[j], z = gates[H + j], n = gates[2 * H + j], ghn = gates[3 * H + j];
        float hp = s.h_prev ? s.h_prev[b * s.ld_hprev + j] : 0.0f;
        float dz = dh * (hp - n);
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

llm_status llm__gpu_gru_step_backward(llm_backend *be, const llm__gru_step_grad *s) {
    if (s->B <= 0 || s->H <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int t = rnn_threads(s->H);
    gru_backward_kernel<<<rnn_grid(s->B, s->H, t), t, 0, llm__gpu_stream(be)>>>(*s);
    return llm__gpu_launched("gru_step_backward");
}
