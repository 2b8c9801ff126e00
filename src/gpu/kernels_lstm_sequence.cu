/* libllm: a whole LSTM recurrence in one persistent CUDA kernel.
 *
 * The per-step path launches a cuBLAS GEMM and a gate kernel for every time
 * step, forward and backward: at the spam model's sizes (B = 32, H = 128) each
 * launch does a few microseconds of work, so launch latency is most of the
 * step. Here one cooperative kernel runs all T steps. Block x owns the units
 * j0 = 8x .. j0 + 7 and keeps their rows of W_hh (forward: the 4 gate rows of
 * each unit; backward: the columns) in shared memory for the whole sequence;
 * block y owns a group of 32 batch rows. Thread (row, unit) computes its own
 * four gate dot products from h_{t-1} staged in shared memory, then the gate
 * and state update, so the recurrent GEMM and the point-wise kernel are one.
 * A grid-wide barrier separates the steps (the next step needs every unit's
 * h_t); backward needs one barrier per step too, between the point-wise gate
 * gradients and dh_{t-1} = dgates W_hh.
 *
 * Each (row, unit) belongs to one thread for the whole run, so the cell state
 * and the gradients dh, dc it carries are only ever read back by the thread
 * that wrote them. Values written by other blocks (h_{t-1}, dgates) are read
 * with __ldcg, from L2, past the SM's non-coherent L1. The dot products add
 * in a fixed order, so results are the same every run; they differ from the
 * CPU's (and cuBLAS's) order by rounding only. */
#include <cooperative_groups.h>
#include "gpu.h"

namespace cg = cooperative_groups;

enum { SEQ_U = 8, SEQ_RB = 32, SEQ_THREADS = SEQ_U * SEQ_RB };

static __device__ __forceinline__ float sigm(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

/* Rows of the shared-memory tiles are padded to a multiple of 4 floats plus 4:
 * the dot products read them as float4 (a quarter of the shared-memory
 * instructions), and the +4 puts the 8 units' rows that a warp reads at
 * once in different banks. */
static __host__ __device__ __forceinline__ int seq_ld(int n) { return ((n + 3) & ~3) + 4; }

/* forward shared memory: W [4 * U][ld] (gate g of unit u in row g * U + u), h [RB][ld] */
__global__ static void __launch_bounds__(SEQ_THREADS) lstm_seq_forward_kernel(llm__lstm_sequence s) {
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    const int H = s.H, B = s.B, T = s.T, H4 = (H + 3) & ~3, LD = seq_ld(H);
    const int64_t G4 = 4 * (int64_t)H;
    float *w = sm, *hs = sm + 4 * SEQ_U * LD;
    const int tid = threadIdx.x, u = tid % SEQ_U, rb = tid / SEQ_U;
    const int j0 = blockIdx.x * SEQ_U, j = j0 + u;
    for (int i = tid; i < 4 * SEQ_U * H4; i += SEQ_THREADS) {
        int k = i % H4, r = i / H4, g = r / SEQ_U, jj = j0 + r % SEQ_U;
        w[r * LD + k] = jj < H && k < H ? s.W_hh[((int64_t)g * H + jj) * H + k] : 0.0f;
    }
    const float4 *w0 = (const float4 *)(w + u * LD), *w1 = (const float4 *)(w + (SEQ_U + u) * LD),
                 *w2 = (const float4 *)(w + (2 * SEQ_U + u) * LD), *w3 = (const float4 *)(w + (3 * SEQ_U + u) * LD);
    cg::grid_group grid = cg::this_grid();
    for (int step = 0; step < T; step++) {
        const int t = s.reverse ? T - 1 - step : step;
        const int tp = s.reverse ? t + 1 : t - 1, tn = s.reverse ? t - 1 : t + 1;
        for (int b0 = blockIdx.y * SEQ_RB; b0 < B; b0 += gridDim.y * SEQ_RB) {
            const int rows = B - b0 < SEQ_RB ? B - b0 : SEQ_RB;
            __syncthreads(); /* the weights are in; the last group's readers are done */
            for (int i = tid; i < rows * H4; i += SEQ_THREADS) {
                int r = i / H4, k = i % H4;
                hs[r * LD + k] = step && k < H ? __ldcg(&s.h[((int64_t)(b0 + r) * T + tp) * H + k]) : 0.0f;
            }
            __syncthreads();
            if (rb >= rows || j >= H) continue;
            const int64_t b = b0 + rb, bt = b * T + t;
            const float4 *h4 = (const float4 *)(hs + rb * LD);
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            if (step)
#pragma unroll 2
                for (int k = 0; k < H4 / 4; k++) {
                    float4 hv = h4[k], x0 = w0[k], x1 = w1[k], x2 = w2[k], x3 = w3[k];
                    a0 = fmaf(x0.x, hv.x, a0), a0 = fmaf(x0.y, hv.y, a0), a0 = fmaf(x0.z, hv.z, a0), a0 = fmaf(x0.w, hv.w, a0);
                    a1 = fmaf(x1.x, hv.x, a1), a1 = fmaf(x1.y, hv.y, a1), a1 = fmaf(x1.z, hv.z, a1), a1 = fmaf(x1.w, hv.w, a1);
                    a2 = fmaf(x2.x, hv.x, a2), a2 = fmaf(x2.y, hv.y, a2), a2 = fmaf(x2.z, hv.z, a2), a2 = fmaf(x2.w, hv.w, a2);
                    a3 = fmaf(x3.x, hv.x, a3), a3 = fmaf(x3.y, hv.y, a3), a3 = fmaf(x3.z, hv.z, a3), a3 = fmaf(x3.w, hv.w, a3);
                }
            float *gates = s.gates + bt * G4;
            float cp = step ? s.c[(b * T + tp) * H + j] : 0.0f, hp = hs[rb * LD + j], cv, hv;
            if (s.mask && s.mask[bt] == 0.0f) {
                cv = cp;
                hv = hp;
                gates[j] = gates[H + j] = gates[2 * H + j] = gates[3 * H + j] = 0.0f;
            } else {
                const float *xw = s.xw + bt * G4;
                float i = sigm(xw[j] + a0), f = sigm(xw[H + j] + a1);
                float g = tanhf(xw[2 * H + j] + a2), o = sigm(xw[3 * H + j] + a3);
                gates[j] = i;
                gates[H + j] = f;
                gates[2 * H + j] = g;
                gates[3 * H + j] = o;
                cv = step ? f * cp + i * g : i * g;
                hv = o * tanhf(cv);
            }
            s.c[bt * H + j] = cv;
            s.h[bt * H + j] = hv;
            if (s.hprev && step < T - 1) s.hprev[(b * T + tn) * H + j] = hv;
        }
        grid.sync();
    }
}

/* backward shared memory: W^T [U][ld] (column j0 + u of W_hh), dgates [RB][ld] */
__global__ static void __launch_bounds__(SEQ_THREADS) lstm_seq_backward_kernel(llm__lstm_sequence s) {
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    const int H = s.H, B = s.B, T = s.T, G4 = 4 * H, LD = seq_ld(G4);
    float *wt = sm, *dgs = sm + SEQ_U * LD;
    const int tid = threadIdx.x, u = tid % SEQ_U, rb = tid / SEQ_U;
    const int j0 = blockIdx.x * SEQ_U, j = j0 + u;
    for (int i = tid; i < SEQ_U * G4; i += SEQ_THREADS) {
        int uu = i % SEQ_U, r = i / SEQ_U;
        wt[uu * LD + r] = j0 + uu < H ? s.W_hh[(int64_t)r * H + j0 + uu] : 0.0f;
    }
    const float4 *wr = (const float4 *)(wt + u * LD);
    cg::grid_group grid = cg::this_grid();
    for (int step = T - 1; step >= 0; step--) {
        const int t = s.reverse ? T - 1 - step : step, tp = s.reverse ? t + 1 : t - 1;
        /* the gate gradients of this block's units */
        if (j < H)
            for (int64_t b = (int64_t)blockIdx.y * SEQ_RB + rb; b < B; b += (int64_t)gridDim.y * SEQ_RB) {
                const int64_t bt = b * T + t;
                float *dg = s.dgates + bt * G4;
                float dh = s.dh[b * H + j] + (s.dy ? s.dy[bt * H + j] : 0.0f);
                if (s.mask && s.mask[bt] == 0.0f) {
                    s.dh[b * H + j] = dh; /* the state passed through, and so does its gradient */
                    dg[j] = dg[H + j] = dg[2 * H + j] = dg[3 * H + j] = 0.0f;
                    continue;
                }
                const float *gt = s.gates + bt * G4;
                float i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];
                float tc = tanhf(s.c[bt * H + j]);
                float d_o = dh * tc;
                float dct = s.dc[b * H + j] + dh * o * (1.0f - tc * tc);
                s.dc[b * H + j] = dct * f;
                dg[j] = dct * g * i * (1.0f - i);
                dg[2 * H + j] = dct * i * (1.0f - g * g);
                dg[3 * H + j] = d_o * o * (1.0f - o);
                dg[H + j] = step ? dct * s.c[(b * T + tp) * H + j] * f * (1.0f - f) : 0.0f;
                s.dh[b * H + j] = 0.0f;
            }
        if (step == 0) break; /* dL/dh before the first step is not wanted */
        grid.sync();
        /* dh_{t-1}[b, j] += sum_r dgates[b, t, r] W_hh[r, j] */
        for (int b0 = blockIdx.y * SEQ_RB; b0 < B; b0 += gridDim.y * SEQ_RB) {
            const int rows = B - b0 < SEQ_RB ? B - b0 : SEQ_RB;
            __syncthreads();
            for (int i = tid; i < rows * G4; i += SEQ_THREADS) {
                int r = i / G4, q = i % G4;
                dgs[r * LD + q] = __ldcg(&s.dgates[((int64_t)(b0 + r) * T + t) * G4 + q]);
            }
            __syncthreads();
            if (rb >= rows || j >= H) continue;
            /* four partial sums over quarters of the 4H products: four
             * independent FMA chains instead of one 4H long */
            const float4 *dr = (const float4 *)(dgs + rb * LD);
            float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
#pragma unroll
            for (int gi = 0; gi < 4; gi++)
                for (int q = gi * H / 4; q < (gi + 1) * H / 4; q++) {
                    float4 a = dr[q], x = wr[q];
                    acc[gi] = fmaf(a.x, x.x, acc[gi]), acc[gi] = fmaf(a.y, x.y, acc[gi]);
                    acc[gi] = fmaf(a.z, x.z, acc[gi]), acc[gi] = fmaf(a.w, x.w, acc[gi]);
                }
            s.dh[(int64_t)(b0 + rb) * H + j] += (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }
        /* no barrier here: the next gate-gradient pass reads only this
         * thread's own dh, dc and the forward's values, and writes dgates of
         * another step than the one other blocks may still be reading */
    }
}

/* The launch shape, or 0 when this device cannot hold the kernel's blocks
 * all at once (a cooperative launch needs that) or its shared memory. */
static int seq_grid(llm_backend *be, const void *kernel, size_t smem, int B, int H, dim3 *grid) {
    llm__gpu *g = llm__gpu_of(be);
    int coop = 0, optin = 0;
    if (cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, g->device) != cudaSuccess || !coop) return 0;
    if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, g->device) != cudaSuccess ||
        smem > (size_t)optin)
        return 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, SEQ_THREADS, smem) != cudaSuccess ||
        per_sm < 1) {
        cudaGetLastError();
        return 0;
    }
    int resident = per_sm * g->sm_count, units = (H + SEQ_U - 1) / SEQ_U, groups = (B + SEQ_RB - 1) / SEQ_RB;
    if (units > resident) return 0;
    if (groups > resident / units) groups = resident / units;
    *grid = dim3((unsigned)units, (unsigned)groups);
    return 1;
}

static llm_status seq_launch(llm_backend *be, const void *kernel, size_t smem, const llm__lstm_sequence *s,
                             int *done, const char *what) {
    *done = 0;
    if (s->B <= 0 || s->T <= 0 || s->H <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    dim3 grid;
    if (!seq_grid(be, kernel, smem, s->B, s->H, &grid)) return LLM_OK;
    llm__lstm_sequence arg = *s;
    void *args[] = { &arg };
    cudaError_t err = cudaLaunchCooperativeKernel(kernel, grid, dim3(SEQ_THREADS), args, smem, llm__gpu_stream(be));
    if (err != cudaSuccess) {
        cudaGetLastError();
        /* too large for what is free on the device right now: the per-step path */
        if (err == cudaErrorCooperativeLaunchTooLarge) return LLM_OK;
        return llm__gpu_cuda_error(err, what);
    }
    *done = 1;
    return LLM_OK;
}

llm_status llm__gpu_lstm_sequence_forward(llm_backend *be, const llm__lstm_sequence *s, int *done) {
    size_t smem = (size_t)(4 * SEQ_U + SEQ_RB) * (size_t)seq_ld(s->H) * sizeof(float);
    return seq_launch(be, (const void *)lstm_seq_forward_kernel, smem, s, done, "lstm_sequence_forward");
}

llm_status llm__gpu_lstm_sequence_backward(llm_backend *be, const llm__lstm_sequence *s, int *done) {
    size_t smem = (size_t)(SEQ_U + SEQ_RB) * (size_t)seq_ld(4 * s->H) * sizeof(float);
    return seq_launch(be, (const void *)lstm_seq_backward_kernel, smem, s, done, "lstm_sequence_backward");
}
