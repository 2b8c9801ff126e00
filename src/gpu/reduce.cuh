/* libllm private: deterministic reductions for the CUDA kernels.
 *
 * Sums are taken in double, and the split into blocks depends only on the
 * problem size (never on the device or on timing), with partials added in a
 * fixed order: the same input gives the same bits on every run, and results
 * agree with the CPU backend (which also sums in double) to float rounding.
 * No atomics: an atomicAdd-based sum would change in the last bits from run
 * to run. */
#ifndef LLM_PRIVATE_GPU_REDUCE_CUH
#define LLM_PRIVATE_GPU_REDUCE_CUH

#include "gpu.h"

#define LLM__RED_THREADS 256
#define LLM__RED_MAX_BLOCKS 512
#define LLM__RED_PER_THREAD 8 /* items per thread at least before another block is used */

/* Pass 1: block b sums f(i) over its grid-stride share into partials[b]. */
template <class F>
__global__ void llm__reduce_partial(F f, int64_t n, double *partials) {
    __shared__ double sh[32];
    double acc = 0.0;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) acc += f(i);
    acc = llm__block_sum(acc, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

/* Pass 2: one block adds the partials and writes (float)(sum / div). */
__global__ static void llm__reduce_final(const double *partials, int nparts, double div, float *out) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += partials[i];
    acc = llm__block_sum(acc, sh);
    if (threadIdx.x == 0) *out = (float)(acc / div);
}

/* *out = (float)(sum over i < n of f(i) / div), out in device memory. f is a
 * device functor double operator()(int64_t) const, called exactly once per
 * i (losses use that to write their gradient in the same pass). */
template <class F>
static llm_status llm__gpu_reduce(llm_backend *be, int64_t n, F f, double div, float *out,
                                  const char *what) {
    cudaStream_t st = llm__gpu_stream(be);
    if (n <= 0) return llm__gpu_cuda_error(cudaMemsetAsync(out, 0, sizeof(float), st), what);
    int64_t want = (n + LLM__RED_THREADS * LLM__RED_PER_THREAD - 1) / (LLM__RED_THREADS * LLM__RED_PER_THREAD);
    int blocks = (int)(want < LLM__RED_MAX_BLOCKS ? want : LLM__RED_MAX_BLOCKS);
    double *partials = NULL;
    LLM__GPU_CHECK(llm__gpu_scratch(be, (size_t)blocks * sizeof(double), (void **)&partials));
    llm__reduce_partial<F><<<blocks, LLM__RED_THREADS, 0, st>>>(f, n, partials);
    llm_status s = llm__gpu_launched(what);
    if (s == LLM_OK) {
        llm__reduce_final<<<1, LLM__RED_THREADS, 0, st>>>(partials, blocks, div, out);
        s = llm__gpu_launched(what);
    }
    llm__gpu_scratch_free(be, partials);
    return s;
}

/* ---- column sums of [rows, cols] (bias and layernorm parameter gradients) ----
 * Rows are cut into chunks that depend only on rows; block (x, y) sums 32
 * columns over chunk y with 8 threads per column, then one thread per column
 * adds the chunks in order. Two sums at once (layernorm: dgamma and dbeta). */
struct llm__d2 { double a, b; };

#define LLM__COL_X 32
#define LLM__COL_Y 8
#define LLM__COL_ROWS 64   /* rows per chunk at least */
#define LLM__COL_CHUNKS 256 /* chunks at most */

template <class F>
__global__ void llm__colsum_partial(F f, int64_t rows, int64_t cols, int64_t chunk_rows,
                                    llm__d2 *partials) {
    __shared__ double sa[LLM__COL_Y][LLM__COL_X], sb[LLM__COL_Y][LLM__COL_X];
    int64_t c = (int64_t)blockIdx.x * LLM__COL_X + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * chunk_rows;
    int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    double a = 0.0, b = 0.0;
    if (c < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += LLM__COL_Y) {
            llm__d2 v = f(r, c);
            a += v.a;
            b += v.b;
        }
    sa[threadIdx.y][threadIdx.x] = a;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        for (int k = 1; k < LLM__COL_Y; k++) {
            a += sa[k][threadIdx.x];
            b += sb[k][threadIdx.x];
        }
        partials[(int64_t)blockIdx.y * cols + c] = llm__d2{ a, b };
    }
}

template <class G>
__global__ void llm__colsum_final(G g, const llm__d2 *partials, int chunks, int64_t cols) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double a = 0.0, b = 0.0;
    for (int k = 0; k < chunks; k++) {
        llm__d2 v = partials[(int64_t)k * cols + c];
        a += v.a;
        b += v.b;
    }
    g(c, a, b);
}

/* f(r, c) -> llm__d2 terms; g(c, sum_a, sum_b) stores the result. */
template <class F, class G>
static llm_status llm__gpu_colsum(llm_backend *be, int64_t rows, int64_t cols, F f, G g,
                                  const char *what) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    cudaStream_t st = llm__gpu_stream(be);
    int64_t chunks = (rows + LLM__COL_ROWS - 1) / LLM__COL_ROWS;
    if (chunks > LLM__COL_CHUNKS) chunks = LLM__COL_CHUNKS;
    int64_t chunk_rows = (rows + chunks - 1) / chunks;
    chunks = (rows + chunk_rows - 1) / chunk_rows;
    int64_t xblocks = (cols + LLM__COL_X - 1) / LLM__COL_X;
    if (xblocks > 2147483647LL)
        return LLM__GPU_ERROR(LLM_ERR_NOT_SUPPORTED, "cuda %s: %lld columns is too many", what, (long long)cols);
    llm__d2 *partials = NULL;
    LLM__GPU_CHECK(llm__gpu_scratch(be, (size_t)(chunks * cols) * sizeof(llm__d2), (void **)&partials));
    dim3 grid((unsigned)xblocks, (unsigned)chunks), block(LLM__COL_X, LLM__COL_Y);
    llm__colsum_partial<F><<<grid, block, 0, st>>>(f, rows, cols, chunk_rows, partials);
    llm_status s = llm__gpu_launched(what);
    if (s == LLM_OK) {
        unsigned fblocks = (unsigned)((cols + LLM__GPU_THREADS - 1) / LLM__GPU_THREADS);
        llm__colsum_final<G><<<fblocks, LLM__GPU_THREADS, 0, st>>>(g, partials, (int)chunks, cols);
        s = llm__gpu_launched(what);
    }
    llm__gpu_scratch_free(be, partials);
    return s;
}

#endif /* LLM_PRIVATE_GPU_REDUCE_CUH */
