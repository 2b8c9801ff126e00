/* libllm: CUDA embedding lookup and its gradient.
 *
 * The forward gathers rows, one thread per output element. The backward is a
 * scatter-add with repeated ids (the same word many times in a batch). Rather
 * than atomicAdd, whose order (and so whose float rounding) changes from run
 * to run, the token positions are sorted by id with a stable radix sort
 * (CUB), and one thread per (id, column) adds its tokens' rows in position
 * order: exactly the CPU's sequence of float additions, so the result is the
 * CPU's to the bit, and the same on every run. */
#include <cub/device/device_radix_sort.cuh>
#include "gpu.h"

__global__ static void emb_forward_kernel(int64_t n, int64_t dim, const int32_t *ids, const float *weight,
                                          int pad, float *out, float *mask) {
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        int32_t id = ids[i];
        const float *w = weight + (int64_t)id * dim;
        float *o = out + i * dim;
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < dim; j += (int64_t)gridDim.x * blockDim.x)
            o[j] = w[j];
        /* with pad < 0 a mask is all ones, as on the CPU */
        if (mask && blockIdx.x == 0 && threadIdx.x == 0) mask[i] = (pad >= 0 && id == pad) ? 0.0f : 1.0f;
    }
}

static dim3 grid_2d(int64_t rows, int64_t cols, int threads) {
    int64_t bx = (cols + threads - 1) / threads;
    if (bx > 1024) bx = 1024;
    int64_t by = rows < 65535 ? rows : 65535;
    return dim3((unsigned)(bx > 0 ? bx : 1), (unsigned)(by > 0 ? by : 1));
}

static int col_threads(int64_t dim) {
    int t = 32;
    while (t < 256 && t < dim) t <<= 1;
    return t;
}

/* ids [n] in [0, vocab), weight [vocab, dim], out [n, dim], mask [n] or NULL */
llm_status llm__gpu_embedding_forward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                      const float *weight, int pad, float *out, float *mask) {
    if (n <= 0 || dim <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    int t = col_threads(dim);
    emb_forward_kernel<<<grid_2d(n, dim, t), t, 0, llm__gpu_stream(be)>>>(n, dim, ids, weight, pad, out, mask);
    return llm__gpu_launched("embedding_forward");
}

__global__ static void iota_kernel(int n, int32_t *v) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v[i] = i;
}

/* Block row p handles sorted position p if it starts a run of equal ids:
 * dweight[id, j] += dout[pos, j] for the run's positions, in order. */
__global__ static void emb_backward_kernel(int n, int64_t dim, const uint32_t *keys, const int32_t *pos,
                                           const float *dout, int pad, float *dweight) {
    for (int64_t p = blockIdx.y; p < n; p += gridDim.y) {
        uint32_t id = keys[p];
        if (p > 0 && keys[p - 1] == id) continue;
        if (pad >= 0 && id == (uint32_t)pad) continue;
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < dim; j += (int64_t)gridDim.x * blockDim.x) {
            float *w = dweight + (int64_t)id * dim + j;
            float acc = *w;
            for (int64_t q = p; q < n && keys[q] == id; q++) acc += dout[(int64_t)pos[q] * dim + j];
            *w = acc;
        }
    }
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* ids [n], dout [n, dim], dweight [vocab, dim] += (rows of pad skipped) */
llm_status llm__gpu_embedding_backward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                       const float *dout, int pad, float *dweight) {
    if (n <= 0 || dim <= 0) return LLM_OK;
    if (n > 2147483647LL)
        return LLM__GPU_ERROR(LLM_ERR_NOT_SUPPORTED, "cuda embedding_backward: %lld tokens is too many for one call",
                              (long long)n);
    LLM__GPU_ENTER(be);
    cudaStream_t st = llm__gpu_stream(be);
    int ni = (int)n;
    /* ids are validated non-negative by the core: sort them as unsigned */
    const uint32_t *keys_in = (const uint32_t *)ids;
    size_t temp_bytes = 0;
    LLM__GPU_CHECK(llm__gpu_cuda_error(
        cub::DeviceRadixSort::SortPairs((void *)NULL, temp_bytes, keys_in, (uint32_t *)NULL, (const int32_t *)NULL,
                                        (int32_t *)NULL, ni, 0, 32, st),
        "cub::DeviceRadixSort::SortPairs (size query)"));
    size_t kb = align256((size_t)n * 4);
    char *buf = NULL;
    LLM__GPU_CHECK(llm__gpu_scratch(be, 3 * kb + align256(temp_bytes), (void **)&buf));
    uint32_t *keys = (uint32_t *)buf;
    int32_t *pos_in = (int32_t *)(buf + kb), *pos = (int32_t *)(buf + 2 * kb);
    void *temp = buf + 3 * kb;
    iota_kernel<<<llm__gpu_blocks(n, LLM__GPU_THREADS), LLM__GPU_THREADS, 0, st>>>(ni, pos_in);
    llm_status s = llm__gpu_launched("embedding_backward iota");
    if (s == LLM_OK)
        s = llm__gpu_cuda_error(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys, pos_in, pos, ni,
                                                                0, 32, st),
                                "cub::DeviceRadixSort::SortPairs");
    if (s == LLM_OK) {
        int t = col_threads(dim);
        emb_backward_kernel<<<grid_2d(n, dim, t), t, 0, st>>>(ni, dim, keys, pos, dout, pad, dweight);
        s = llm__gpu_launched("embedding_backward");
    }
    llm__gpu_scratch_free(be, buf);
    return s;
}
