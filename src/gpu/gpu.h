/* libllm private: the CUDA backend's shared declarations.
 *
 * The backend lives in libllm-cuda.so (see cuda_module.h). One llm__gpu per
 * backend object holds its device, its one stream (every kernel, copy and
 * cuBLAS call of the backend goes to it, in order), its cuBLAS handle and
 * its caching allocator. Kernels are split by family into
 * src/gpu/kernels_*.cu and put together into the vtable in cuda_backend.cu.
 *
 * Every function here returns a status; CUDA and cuBLAS errors become
 * LLM_ERR_BACKEND (LLM_ERR_OUT_OF_MEMORY for allocation failures) with the
 * driver's text, through the host's error function. Nothing prints, asserts
 * or exits. */
#ifndef LLM_PRIVATE_GPU_H
#define LLM_PRIVATE_GPU_H

#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include "cuda_module.h"

/* ---- the caching allocator (allocator.cu) ----
 * Freed device blocks go to per-size-class free lists and are handed out
 * again, so a training step that frees and reallocates its workspace never
 * reaches cudaMalloc. Blocks are only given back to the driver when an
 * allocation fails (then the cache is emptied and the cudaMalloc retried) and
 * when the backend is freed. Reuse is safe without events because the
 * backend has a single stream: work queued on a block before its free runs
 * before any work queued after its reuse. */
typedef struct llm__gpu_block {
    void *ptr;
    size_t size; /* rounded size: the class's */
    int cls;
    struct llm__gpu_block *next; /* in a free list or a hash bucket */
} llm__gpu_block;

typedef struct llm__gpu_cache {
    pthread_mutex_t lock;
    llm__gpu_block **free_lists; /* [LLM__GPU_CLASSES] */
    llm__gpu_block **live;       /* hash of blocks in use, by ptr */
    size_t live_buckets, live_count;
    size_t bytes_live, bytes_cached, peak_live;
    uint64_t mallocs, hits;
} llm__gpu_cache;

typedef struct llm__gpu {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    int tf32;
    llm__gpu_cache cache;
    char name[256];
    int cc_major, cc_minor, sm_count;
    size_t total_mem;
} llm__gpu;

/* ---- services from libllm ---- */
extern const llm__cuda_host *llm__gpu_host;
#define LLM__GPU_ERROR(status, ...) (llm__gpu_host->error((status), __VA_ARGS__))

static inline llm__gpu *llm__gpu_of(llm_backend *be) { return (llm__gpu *)be->impl; }
static inline cudaStream_t llm__gpu_stream(llm_backend *be) { return llm__gpu_of(be)->stream; }

/* A CUDA error as a status with the driver's text; cudaSuccess gives LLM_OK. */
llm_status llm__gpu_cuda_error(cudaError_t err, const char *what);
/* The same for cuBLAS. */
llm_status llm__gpu_blas_error(cublasStatus_t st, const char *what);
/* After a kernel launch: reports a launch failure (bad configuration, no
 * kernel image for this device). Errors of the kernel itself show up at the
 * next synchronising call (copy_d2h, synchronize). */
llm_status llm__gpu_launched(const char *what);
/* Makes the backend's device current in the calling thread (CUDA's current
 * device is per thread; a backend may be used from several). */
llm_status llm__gpu_enter(llm_backend *be);

#define LLM__GPU_CHECK(expr) do { llm_status s__ = (expr); if (s__ != LLM_OK) return s__; } while (0)
#define LLM__GPU_ENTER(be) LLM__GPU_CHECK(llm__gpu_enter(be))

/* allocator.cu */
void llm__gpu_cache_init(llm__gpu_cache *c);
llm_status llm__gpu_cache_alloc(llm__gpu *g, size_t bytes, void **out);
void llm__gpu_cache_free(llm__gpu *g, void *ptr);
/* Returns every block, cached or live, to the driver (backend release). */
void llm__gpu_cache_destroy(llm__gpu *g);

/* Temporary device memory for one call (reduction partials, sort buffers).
 * Releasing right after queuing the kernels that use it is safe: the block
 * is only reused by work queued later on the same stream. */
static inline llm_status llm__gpu_scratch(llm_backend *be, size_t bytes, void **out) {
    return llm__gpu_cache_alloc(llm__gpu_of(be), bytes, out);
}
static inline void llm__gpu_scratch_free(llm_backend *be, void *p) {
    if (p) llm__gpu_cache_free(llm__gpu_of(be), p);
}

/* Launch geometry: grid-stride loops over n items with `threads` per block. */
#define LLM__GPU_THREADS 256
static inline unsigned llm__gpu_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return (unsigned)(b < 65536 ? b : 65536);
}

#ifdef __CUDACC__
/* Block-wide sum of a double; every thread gets the result. The order of the
 * additions depends only on blockDim, so the result is the same every run.
 * shared must hold 32 doubles; blockDim.x a multiple of 32, at most 1024. */
static __device__ __forceinline__ double llm__block_sum(double v, double *shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* shared may still be read by a previous call */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float llm__block_max(float v, float *shared) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Threads per block for a kernel that gives one block to a row of `cols`. */
static inline int llm__gpu_row_threads(int64_t cols) {
    int t = 32;
    while (t < 256 && t < cols) t <<= 1;
    return t;
}
#endif

/* ---- kernels (one family per file) ---- */
/* kernels_elementwise.cu */
/* cudaFuncGetAttributes of one kernel: fails when the module has no image
 * the current device can run. */
cudaError_t llm__gpu_kernel_probe(cudaFuncAttributes *attr);
llm_status llm__gpu_fill(llm_backend *be, int64_t n, float value, float *x);
llm_status llm__gpu_fill_i32(llm_backend *be, int64_t n, int32_t value, int32_t *x);
llm_status llm__gpu_axpy(llm_backend *be, int64_t n, float alpha, const float *x, float *y);
llm_status llm__gpu_scale(llm_backend *be, int64_t n, float alpha, float *x);
llm_status llm__gpu_add(llm_backend *be, int64_t n, const float *a, const float *b, float *out);
llm_status llm__gpu_mul(llm_backend *be, int64_t n, const float *a, const float *b, float *out);
llm_status llm__gpu_copy_rows(llm_backend *be, int64_t rows, int64_t cols, const float *src,
                              int64_t ld_src, float *dst, int64_t ld_dst, int accumulate);
llm_status llm__gpu_scale_rows(llm_backend *be, int64_t rows, int64_t cols, float beta, float *x,
                               int64_t ld);
llm_status llm__gpu_dropout(llm_backend *be, int64_t n, float rate, uint64_t seed, uint64_t counter,
                            const float *x, float *y, int accumulate);

/* kernels_activation.cu */
llm_status llm__gpu_bias_act_forward(llm_backend *be, int act, int64_t rows, int64_t cols,
                                     const float *x, const float *bias, float *y);
llm_status llm__gpu_act_backward(llm_backend *be, int act, int64_t n, const float *x,
                                 const float *y, const float *dy, float *dx);
llm_status llm__gpu_bias_backward(llm_backend *be, int64_t rows, int64_t cols, const float *d,
                                  float *dbias);
llm_status llm__gpu_softmax_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                    float *y);
llm_status llm__gpu_softmax_backward(llm_backend *be, int64_t rows, int64_t cols, const float *y,
                                     const float *dy, float *dx);

/* kernels_layernorm.cu */
llm_status llm__gpu_layernorm_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                      const float *gamma, const float *beta, float eps, float *y,
                                      float *mean, float *rstd);
llm_status llm__gpu_layernorm_backward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                       const float *gamma, const float *mean, const float *rstd,
                                       const float *dy, float *dx, float *dgamma, float *dbeta,
                                       float *workspace);

/* kernels_embedding.cu */
llm_status llm__gpu_embedding_forward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                      const float *weight, int pad, float *out, float *mask);
llm_status llm__gpu_embedding_backward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                       const float *dout, int pad, float *dweight);

/* kernels_recurrent.cu */
llm_status llm__gpu_lstm_step_forward(llm_backend *be, const llm__lstm_step *s);
llm_status llm__gpu_lstm_step_backward(llm_backend *be, const llm__lstm_step_grad *s);
/* kernels_lstm_sequence.cu */
llm_status llm__gpu_lstm_sequence_forward(llm_backend *be, const llm__lstm_sequence *s, int *done);
llm_status llm__gpu_lstm_sequence_backward(llm_backend *be, const llm__lstm_sequence *s, int *done);
llm_status llm__gpu_gru_step_forward(llm_backend *be, const llm__gru_step *s);
llm_status llm__gpu_gru_step_backward(llm_backend *be, const llm__gru_step_grad *s);

/* kernels_attention.cu */
llm_status llm__gpu_attention_forward(llm_backend *be, const llm__attention *a);
llm_status llm__gpu_attention_backward(llm_backend *be, const llm__attention *a);

/* kernels_pool.cu */
llm_status llm__gpu_pool_forward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                 const float *x, const float *mask, float *y, int32_t *argmax);
llm_status llm__gpu_pool_backward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                  const float *mask, const int32_t *argmax, const float *dy,
                                  float *dx);

/* kernels_loss.cu */
llm_status llm__gpu_loss_bce_logits(llm_backend *be, int64_t n, const float *z, const float *t,
                                    float grad_scale, float *loss, float *dz);
llm_status llm__gpu_loss_bce_probs(llm_backend *be, int64_t n, const float *p, const float *t,
                                   float grad_scale, float *loss, float *dp);
llm_status llm__gpu_loss_sce_logits(llm_backend *be, int64_t rows, int64_t classes, const float *z,
                                    const int32_t *labels, float grad_scale, float *loss, float *dz);
llm_status llm__gpu_loss_sce_probs(llm_backend *be, int64_t rows, int64_t classes, const float *p,
                                   const int32_t *labels, float grad_scale, float *loss, float *dp);
llm_status llm__gpu_loss_mse(llm_backend *be, int64_t n, const float *y, const float *t,
                             float grad_scale, float *loss, float *dy);

/* kernels_reduce.cu */
llm_status llm__gpu_sum(llm_backend *be, int64_t n, const float *x, float *out);
llm_status llm__gpu_sum_squares(llm_backend *be, int64_t n, const float *x, float *out);
llm_status llm__gpu_count_nonfinite(llm_backend *be, int64_t n, const float *x, float *out);

/* kernels_optimizer.cu */
llm_status llm__gpu_optimizer_update(llm_backend *be, const llm__opt_update *u, float *param,
                                     const float *grad, float *m1, float *m2);

#endif /* LLM_PRIVATE_GPU_H */
