/* libllm: CUDA fused multi-head attention (forward and backward).
 *
 * The semantics are the CPU's (src/cpu/kernels_attention.c, llm__attention in
 * src/backend.h). One warp per row: a block of ATT_ROWS warps takes ATT_ROWS
 * consecutive query rows (forward, dq) or key rows (dk, dv) of one (b, head)
 * and walks the other side in tiles of 32 rows staged in shared memory, one
 * row per lane for the scores, one column per lane for the products. The
 * forward keeps a running maximum and sum (online softmax) and saves only
 * the log-sum-exp; the backward recomputes p = exp(s - lse) twice, once in
 * a pass over queries (dq) and once in a pass over keys (dk, dv), so every
 * gradient element is written by exactly one thread: no atomics, and the
 * same bits on every run. D_i = dout_i . out_i comes first, into scratch.
 *
 * Shared memory grows with head_dim (up to ~100 floats per unit of
 * head_dim, the dk/dv pass); beyond the default 48 KiB (head_dim above ~120)
 * the kernels opt in to the device's maximum, which holds head_dim up to
 * ~420 on sm_80 and ~590 on sm_90; wider heads give LLM_ERR_NOT_SUPPORTED.
 *
 * Not tuned: a straightforward reference-quality implementation (float
 * accumulation, expf / logf), checked against the same double-precision
 * reference as the CPU in tests/test_backend_ops.c. */
#include "gpu.h"

#define ATT_T 32    /* rows per shared tile of the other side: one per lane */
#define ATT_ROWS 8  /* warps per block, one row each */
#define ATT_FULL 0xffffffffu

static __device__ __forceinline__ float att_warp_sum(float v) {
    /* butterfly: a + b and b + a are the same float, so every lane ends with
     * the same bits */
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(ATT_FULL, v, o);
    return v;
}

static __device__ __forceinline__ float att_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(ATT_FULL, v, o));
    return v;
}

/* Row stride of a shared tile read one row per lane: odd, so the 32 lanes
 * hit 32 different banks. */
static __host__ __device__ __forceinline__ int att_pad(int d) { return d | 1; }

/* The last key (exclusive) that any of the query rows [i0, i1) sees. */
static __device__ __forceinline__ int64_t att_key_end(const llm__attention &a, int64_t i1) {
    if (!a.causal) return a.Tk;
    int64_t e = (int64_t)a.q_offset + i1;
    return e < a.Tk ? (e > 0 ? e : 0) : a.Tk;
}

/* ---- forward: grid (query blocks, heads, B) ---- */

__global__ static void att_fwd_kernel(llm__attention a) {
    extern __shared__ float sm[];
    const int d = a.head_dim, dk = att_pad(d);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Ks = sm;                        /* [ATT_T][dk] */
    float *Vs = Ks + ATT_T * dk;           /* [ATT_T][d] */
    float *qw = Vs + ATT_T * d + warp * d; /* [ATT_ROWS][d] */
    float *ow = Vs + ATT_T * d + ATT_ROWS * d + warp * d;
    float *pw = Vs + ATT_T * d + 2 * ATT_ROWS * d + warp * ATT_T;
    for (int64_t b = blockIdx.z; b < a.B; b += gridDim.z)
        for (int64_t h = blockIdx.y; h < a.heads; h += gridDim.y)
            for (int64_t i0 = (int64_t)blockIdx.x * ATT_ROWS; i0 < a.Tq; i0 += (int64_t)gridDim.x * ATT_ROWS) {
                const int64_t i = i0 + warp;
                const bool row = i < a.Tq;
                const float *kb = a.k + b * a.bs_kv + h * d, *vb = a.v + b * a.bs_kv + h * d;
                const float *mask = a.mask ? a.mask + b * a.ld_mask : nullptr;
                const int64_t kend = att_key_end(a, i0 + ATT_ROWS < a.Tq ? i0 + ATT_ROWS : a.Tq);
                const int64_t lim = a.causal ? (int64_t)a.q_offset + i : INT64_MAX;
                if (row) {
                    const float *q = a.q + b * a.bs_q + i * a.ld_q + h * d;
                    for (int c = lane; c < d; c += 32) { qw[c] = q[c]; ow[c] = 0.0f; }
                }
                float m = -INFINITY, l = 0.0f;
                for (int64_t j0 = 0; j0 < kend; j0 += ATT_T) {
                    __syncthreads(); /* the previous tile is no longer read */
                    for (int idx = threadIdx.x; idx < ATT_T * d; idx += blockDim.x) {
                        int jj = idx / d, c = idx - jj * d;
                        int64_t j = j0 + jj;
                        float kv = 0.0f, vv = 0.0f;
                        if (j < kend) {
                            kv = kb[j * a.ld_kv + c];
                            vv = vb[j * a.ld_kv + c];
                        }
                        Ks[jj * dk + c] = kv;
                        Vs[jj * d + c] = vv;
                    }
                    __syncthreads();
                    if (!row) continue;
                    const int64_t j = j0 + lane;
                    const bool vis = j < kend && j <= lim && (!mask || mask[j] != 0.0f);
                    float s = -INFINITY;
                    if (vis) {
                        const float *kr = Ks + lane * dk;
                        float acc = 0.0f;
                        for (int c = 0; c < d; c++) acc += qw[c] * kr[c];
                        s = acc * a.scale;
                    }
                    const float tm = att_warp_max(s);
                    if (tm == -INFINITY) continue; /* the same in every lane */
                    const float mn = fmaxf(m, tm);
                    const float alpha = expf(m - mn); /* 0 for the first visible tile */
                    const float p = vis ? expf(s - mn) : 0.0f;
                    l = l * alpha + att_warp_sum(p);
                    m = mn;
                    pw[lane] = p;
                    __syncwarp();
                    for (int c = lane; c < d; c += 32) {
                        float o = ow[c] * alpha;
                        for (int jj = 0; jj < ATT_T; jj++) o += pw[jj] * Vs[jj * d + c];
                        ow[c] = o;
                    }
                    __syncwarp();
                }
                if (row) {
                    float *out = a.out + b * a.bs_out + i * a.ld_out + h * d;
                    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
                    for (int c = lane; c < d; c += 32) out[c] = ow[c] * inv;
                    if (lane == 0 && a.lse)
                        a.lse[(b * a.heads + h) * a.Tq + i] = l > 0.0f ? m + logf(l) : -INFINITY;
                }
                __syncthreads(); /* qw, ow are rewritten for the next rows */
            }
}

/* ---- backward ---- */

/* D[(b, h, i)] = dout_i . out_i, one warp per row. */
__global__ static void att_bwd_dot_kernel(llm__attention a, float *D) {
    const int d = a.head_dim, lane = threadIdx.x & 31;
    const int64_t rows = (int64_t)a.B * a.heads * a.Tq;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
        const int64_t i = r % a.Tq, bh = r / a.Tq, h = bh % a.heads, b = bh / a.heads;
        const float *o = a.out + b * a.bs_out + i * a.ld_out + h * d;
        const float *g = a.dout + b * a.bs_out + i * a.ld_out + h * d;
        float acc = 0.0f;
        for (int c = lane; c < d; c += 32) acc += g[c] * o[c];
        acc = att_warp_sum(acc);
        if (lane == 0) D[r] = acc;
    }
}

/* dq: grid (query blocks, heads, B), a warp per query row over key tiles. */
__global__ static void att_bwd_dq_kernel(llm__attention a, const float *D) {
    extern __shared__ float sm[];
    const int d = a.head_dim, dk = att_pad(d);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Ks = sm;                       /* [ATT_T][dk] */
    float *Vs = Ks + ATT_T * dk;          /* [ATT_T][dk] */
    float *rest = Vs + ATT_T * dk;
    float *qw = rest + warp * d, *gw = rest + ATT_ROWS * d + warp * d;
    float *dqw = rest + 2 * ATT_ROWS * d + warp * d;
    float *pw = rest + 3 * ATT_ROWS * d + warp * ATT_T;
    for (int64_t b = blockIdx.z; b < a.B; b += gridDim.z)
        for (int64_t h = blockIdx.y; h < a.heads; h += gridDim.y)
            for (int64_t i0 = (int64_t)blockIdx.x * ATT_ROWS; i0 < a.Tq; i0 += (int64_t)gridDim.x * ATT_ROWS) {
                const int64_t i = i0 + warp;
                const int64_t r = (b * a.heads + h) * a.Tq + i;
                const float L = i < a.Tq ? a.lse[r] : -INFINITY;
                const bool row = i < a.Tq && L != -INFINITY; /* a row that saw no key adds nothing */
                const float Di = row ? D[r] : 0.0f;
                const float *kb = a.k + b * a.bs_kv + h * d, *vb = a.v + b * a.bs_kv + h * d;
                const float *mask = a.mask ? a.mask + b * a.ld_mask : nullptr;
                const int64_t kend = att_key_end(a, i0 + ATT_ROWS < a.Tq ? i0 + ATT_ROWS : a.Tq);
                const int64_t lim = a.causal ? (int64_t)a.q_offset + i : INT64_MAX;
                if (row) {
                    const float *q = a.q + b * a.bs_q + i * a.ld_q + h * d;
                    const float *g = a.dout + b * a.bs_out + i * a.ld_out + h * d;
                    for (int c = lane; c < d; c += 32) { qw[c] = q[c]; gw[c] = g[c]; dqw[c] = 0.0f; }
                }
                for (int64_t j0 = 0; j0 < kend; j0 += ATT_T) {
                    __syncthreads();
                    for (int idx = threadIdx.x; idx < ATT_T * d; idx += blockDim.x) {
                        int jj = idx / d, c = idx - jj * d;
                        int64_t j = j0 + jj;
                        float kv = 0.0f, vv = 0.0f;
                        if (j < kend) {
                            kv = kb[j * a.ld_kv + c];
                            vv = vb[j * a.ld_kv + c];
                        }
                        Ks[jj * dk + c] = kv;
                        Vs[jj * dk + c] = vv;
                    }
                    __syncthreads();
                    if (!row) continue;
                    const int64_t j = j0 + lane;
                    const bool vis = j < kend && j <= lim && (!mask || mask[j] != 0.0f);
                    float ds = 0.0f;
                    if (vis) {
                        const float *kr = Ks + lane * dk, *vr = Vs + lane * dk;
                        float s = 0.0f, dp = 0.0f;
                        for (int c = 0; c < d; c++) {
                            s += qw[c] * kr[c];
                            dp += gw[c] * vr[c];
                        }
                        const float p = expf(s * a.scale - L);
                        ds = p * (dp - Di) * a.scale;
                    }
                    pw[lane] = ds;
                    __syncwarp();
                    for (int c = lane; c < d; c += 32) {
                        float acc = dqw[c];
                        for (int jj = 0; jj < ATT_T; jj++) acc += pw[jj] * Ks[jj * dk + c];
                        dqw[c] = acc;
                    }
                    __syncwarp();
                }
                if (row) {
                    float *dq = a.dq + b * a.bs_q + i * a.ld_q + h * d;
                    for (int c = lane; c < d; c += 32) dq[c] += dqw[c];
                }
                __syncthreads();
            }
}

/* dk, dv: grid (key blocks, heads, B), a warp per key row over query tiles. */
__global__ static void att_bwd_dkv_kernel(llm__attention a, const float *D) {
    extern __shared__ float sm[];
    const int d = a.head_dim, dk = att_pad(d);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *Qs = sm;                       /* [ATT_T][dk] */
    float *Gs = Qs + ATT_T * dk;          /* [ATT_T][dk] dout */
    float *Ls = Gs + ATT_T * dk;          /* [ATT_T] lse */
    float *Ds = Ls + ATT_T;               /* [ATT_T] D */
    float *rest = Ds + ATT_T;
    float *kw = rest + warp * d, *vw = rest + ATT_ROWS * d + warp * d;
    float *dkw = rest + 2 * ATT_ROWS * d + warp * d, *dvw = rest + 3 * ATT_ROWS * d + warp * d;
    float *pw = rest + 4 * ATT_ROWS * d + warp * ATT_T, *sw = pw + ATT_ROWS * ATT_T;
    for (int64_t b = blockIdx.z; b < a.B; b += gridDim.z)
        for (int64_t h = blockIdx.y; h < a.heads; h += gridDim.y)
            for (int64_t j0b = (int64_t)blockIdx.x * ATT_ROWS; j0b < a.Tk; j0b += (int64_t)gridDim.x * ATT_ROWS) {
                const int64_t j = j0b + warp;
                const float *mask = a.mask ? a.mask + b * a.ld_mask : nullptr;
                const bool key = j < a.Tk && (!mask || mask[j] != 0.0f);
                const float *qb = a.q + b * a.bs_q + h * d, *gb = a.dout + b * a.bs_out + h * d;
                const float *Db = D + (b * a.heads + h) * a.Tq, *Lb = a.lse + (b * a.heads + h) * a.Tq;
                if (key) {
                    const float *k = a.k + b * a.bs_kv + j * a.ld_kv + h * d;
                    const float *v = a.v + b * a.bs_kv + j * a.ld_kv + h * d;
                    for (int c = lane; c < d; c += 32) { kw[c] = k[c]; vw[c] = v[c]; dkw[c] = 0.0f; dvw[c] = 0.0f; }
                }
                /* causal: query i sees key j when q_offset + i >= j */
                int64_t ifirst = 0;
                if (a.causal) {
                    int64_t f = j0b - a.q_offset;
                    ifirst = f > 0 ? f : 0;
                }
                for (int64_t i0 = ifirst; i0 < a.Tq; i0 += ATT_T) {
                    __syncthreads();
                    for (int idx = threadIdx.x; idx < ATT_T * d; idx += blockDim.x) {
                        int ii = idx / d, c = idx - ii * d;
                        int64_t i = i0 + ii;
                        float qv = 0.0f, gv = 0.0f;
                        if (i < a.Tq) {
                            qv = qb[i * a.ld_q + c];
                            gv = gb[i * a.ld_out + c];
                        }
                        Qs[ii * dk + c] = qv;
                        Gs[ii * dk + c] = gv;
                    }
                    for (int ii = threadIdx.x; ii < ATT_T; ii += blockDim.x) {
                        int64_t i = i0 + ii;
                        Ls[ii] = i < a.Tq ? Lb[i] : -INFINITY;
                        Ds[ii] = i < a.Tq ? Db[i] : 0.0f;
                    }
                    __syncthreads();
                    if (!key) continue;
                    const int64_t i = i0 + lane;
                    const float L = Ls[lane];
                    const bool vis = i < a.Tq && L != -INFINITY && (!a.causal || (int64_t)a.q_offset + i >= j);
                    float p = 0.0f, ds = 0.0f;
                    if (vis) {
                        const float *qr = Qs + lane * dk, *gr = Gs + lane * dk;
                        float s = 0.0f, dp = 0.0f;
                        for (int c = 0; c < d; c++) {
                            s += qr[c] * kw[c];
                            dp += gr[c] * vw[c];
                        }
                        p = expf(s * a.scale - L);
                        ds = p * (dp - Ds[lane]) * a.scale;
                    }
                    pw[lane] = p;
                    sw[lane] = ds;
                    __syncwarp();
                    for (int c = lane; c < d; c += 32) {
                        float accv = dvw[c], acck = dkw[c];
                        for (int ii = 0; ii < ATT_T; ii++) {
                            accv += pw[ii] * Gs[ii * dk + c];
                            acck += sw[ii] * Qs[ii * dk + c];
                        }
                        dvw[c] = accv;
                        dkw[c] = acck;
                    }
                    __syncwarp();
                }
                if (key) {
                    float *gk = a.dk + b * a.bs_kv + j * a.ld_kv + h * d;
                    float *gv = a.dv + b * a.bs_kv + j * a.ld_kv + h * d;
                    for (int c = lane; c < d; c += 32) { gk[c] += dkw[c]; gv[c] += dvw[c]; }
                }
                __syncthreads();
            }
}

/* ---- launches ---- */

static size_t att_fwd_smem(int d) {
    return sizeof(float) * ((size_t)ATT_T * att_pad(d) + (size_t)ATT_T * d + 2 * (size_t)ATT_ROWS * d +
                            (size_t)ATT_ROWS * ATT_T);
}
static size_t att_dq_smem(int d) {
    return sizeof(float) * (2 * (size_t)ATT_T * att_pad(d) + 3 * (size_t)ATT_ROWS * d + (size_t)ATT_ROWS * ATT_T);
}
static size_t att_dkv_smem(int d) {
    return sizeof(float) * (2 * (size_t)ATT_T * att_pad(d) + 2 * (size_t)ATT_T + 4 * (size_t)ATT_ROWS * d +
                            2 * (size_t)ATT_ROWS * ATT_T);
}

/* Lets kernel use `bytes` of dynamic shared memory (opting in past 48 KiB). */
static llm_status att_smem(llm_backend *be, const void *kernel, size_t bytes, int d, const char *what) {
    if (bytes <= 48 * 1024) return LLM_OK;
    int optin = 0;
    LLM__GPU_CHECK(llm__gpu_cuda_error(
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, llm__gpu_of(be)->device),
        "cudaDeviceGetAttribute"));
    if (bytes > (size_t)optin)
        return LLM__GPU_ERROR(LLM_ERR_NOT_SUPPORTED,
                              "%s: head_dim %d needs %zu bytes of shared memory per block, the device has %d",
                              what, d, bytes, optin);
    return llm__gpu_cuda_error(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                               "cudaFuncSetAttribute");
}

static dim3 att_grid(int64_t rows, const llm__attention *a) {
    int64_t x = (rows + ATT_ROWS - 1) / ATT_ROWS;
    if (x > 2147483647LL) x = 2147483647LL;
    if (x < 1) x = 1;
    unsigned y = (unsigned)(a->heads < 65535 ? a->heads : 65535);
    unsigned z = (unsigned)(a->B < 65535 ? a->B : 65535);
    return dim3((unsigned)x, y, z);
}

static llm_status att_check(const llm__attention *a, int backward, const char *fn) {
    if (!a) return LLM__GPU_ERROR(LLM_ERR_INVALID_ARGUMENT, "%s: NULL arguments", fn);
    if (a->B < 0 || a->heads < 0 || a->head_dim < 0 || a->Tq < 0 || a->Tk < 0)
        return LLM__GPU_ERROR(LLM_ERR_INVALID_ARGUMENT,
                              "%s: negative size (B %d, heads %d, head_dim %d, Tq %d, Tk %d)", fn, a->B,
                              a->heads, a->head_dim, a->Tq, a->Tk);
    if (a->B == 0 || a->heads == 0 || a->head_dim == 0 || a->Tq == 0) return LLM_OK;
    if (!a->q || !a->out || (a->Tk > 0 && (!a->k || !a->v)))
        return LLM__GPU_ERROR(LLM_ERR_INVALID_ARGUMENT, "%s: q, k, v or out is NULL", fn);
    if (backward && (!a->lse || !a->dout || !a->dq || !a->dk || !a->dv))
        return LLM__GPU_ERROR(LLM_ERR_INVALID_ARGUMENT, "%s: lse, dout, dq, dk or dv is NULL", fn);
    return LLM_OK;
}

llm_status llm__gpu_attention_forward(llm_backend *be, const llm__attention *a) {
    LLM__GPU_CHECK(att_check(a, 0, "attention_forward"));
    if (a->B == 0 || a->heads == 0 || a->head_dim == 0 || a->Tq == 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    size_t smem = att_fwd_smem(a->head_dim);
    LLM__GPU_CHECK(att_smem(be, (const void *)att_fwd_kernel, smem, a->head_dim, "attention_forward"));
    att_fwd_kernel<<<att_grid(a->Tq, a), ATT_ROWS * 32, smem, llm__gpu_stream(be)>>>(*a);
    return llm__gpu_launched("attention_forward");
}

llm_status llm__gpu_attention_backward(llm_backend *be, const llm__attention *a) {
    LLM__GPU_CHECK(att_check(a, 1, "attention_backward"));
    if (a->B == 0 || a->heads == 0 || a->head_dim == 0 || a->Tq == 0 || a->Tk == 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    const int d = a->head_dim;
    size_t smem_dq = att_dq_smem(d), smem_dkv = att_dkv_smem(d);
    LLM__GPU_CHECK(att_smem(be, (const void *)att_bwd_dq_kernel, smem_dq, d, "attention_backward"));
    LLM__GPU_CHECK(att_smem(be, (const void *)att_bwd_dkv_kernel, smem_dkv, d, "attention_backward"));
    const int64_t rows = (int64_t)a->B * a->heads * a->Tq;
    float *D = NULL;
    LLM__GPU_CHECK(llm__gpu_scratch(be, (size_t)rows * sizeof(float), (void **)&D));
    cudaStream_t st = llm__gpu_stream(be);
    int64_t nb = (rows + 7) / 8; /* 8 warps per block */
    att_bwd_dot_kernel<<<(unsigned)(nb < 65536 ? nb : 65536), 256, 0, st>>>(*a, D);
    llm_status s = llm__gpu_launched("attention_backward (D)");
    if (s == LLM_OK) {
        att_bwd_dq_kernel<<<att_grid(a->Tq, a), ATT_ROWS * 32, smem_dq, st>>>(*a, D);
        s = llm__gpu_launched("attention_backward (dq)");
    }
    if (s == LLM_OK) {
        att_bwd_dkv_kernel<<<att_grid(a->Tk, a), ATT_ROWS * 32, smem_dkv, st>>>(*a, D);
        s = llm__gpu_launched("attention_backward (dk, dv)");
    }
    llm__gpu_scratch_free(be, D);
    return s;
}
