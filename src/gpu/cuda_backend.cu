/* libllm: the CUDA backend. Module entry point, device probing, backend
 * creation, memory and copies, cuBLAS GEMM, and the vtable.
 *
 * Built into libllm-cuda.so, which libllm loads with dlopen (see
 * cuda_module.h and src/core/backend_cuda.c). Row-major GEMM goes to column-major
 * cuBLAS by swapping the operands: C^T = op(B)^T op(A)^T, so the same memory
 * is passed with m and n exchanged and no data moves. TF32 tensor cores are
 * off (full FP32 products, as on the CPU) unless LLM_CUDA_TF32=1 is set in the
 * environment when the backend is created. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpu.h"

const llm__cuda_host *llm__gpu_host = NULL;

/* ---- errors ---- */

llm_status llm__gpu_cuda_error(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return LLM_OK;
    (void)cudaGetLastError(); /* clears a non-sticky error so later calls start clean */
    llm_status st = LLM_ERR_BACKEND;
    switch (err) {
    case cudaErrorMemoryAllocation: st = LLM_ERR_OUT_OF_MEMORY; break;
    /* the GPU cannot be used here at all: the same answer as a missing one */
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorStubLibrary: st = LLM_ERR_UNAVAILABLE; break;
    default: break;
    }
    return LLM__GPU_ERROR(st, "cuda: %s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

llm_status llm__gpu_blas_error(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return LLM_OK;
    llm_status s = (st == CUBLAS_STATUS_ALLOC_FAILED) ? LLM_ERR_OUT_OF_MEMORY : LLM_ERR_BACKEND;
    return LLM__GPU_ERROR(s, "cublas: %s: %s (%s)", what, cublasGetStatusString(st), cublasGetStatusName(st));
}

llm_status llm__gpu_launched(const char *what) {
    cudaError_t err = cudaGetLastError();
    if (err == cudaSuccess) return LLM_OK;
    char buf[160];
    snprintf(buf, sizeof buf, "kernel %s", what);
    return llm__gpu_cuda_error(err, buf);
}

llm_status llm__gpu_enter(llm_backend *be) {
    llm__gpu *g = llm__gpu_of(be);
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur == g->device) return LLM_OK;
    return llm__gpu_cuda_error(cudaSetDevice(g->device), "cudaSetDevice");
}

/* ---- memory ---- */

static llm_status gpu_alloc(llm_backend *be, size_t bytes, void **out) {
    LLM__GPU_ENTER(be);
    return llm__gpu_cache_alloc(llm__gpu_of(be), bytes, out);
}

static void gpu_free(llm_backend *be, void *ptr) {
    if (!ptr) return;
    llm__gpu_cache_free(llm__gpu_of(be), ptr);
}

static llm_status gpu_memset_zero(llm_backend *be, void *dst, size_t bytes) {
    if (!bytes) return LLM_OK;
    LLM__GPU_ENTER(be);
    return llm__gpu_cuda_error(cudaMemsetAsync(dst, 0, bytes, llm__gpu_stream(be)), "cudaMemsetAsync");
}

/* From pageable memory cudaMemcpyAsync returns once the source has been
 * staged, so the caller may reuse it at once; from page-locked memory the
 * copy is truly asynchronous and the caller's buffer must stay untouched
 * until it completes, so that case waits. */
static llm_status gpu_copy_h2d(llm_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return LLM_OK;
    LLM__GPU_ENTER(be);
    cudaStream_t st = llm__gpu_stream(be);
    LLM__GPU_CHECK(llm__gpu_cuda_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st),
                                       "cudaMemcpyAsync host to device"));
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, src) != cudaSuccess) {
        (void)cudaGetLastError();
        return LLM_OK;
    }
    if (attr.type == cudaMemoryTypeHost)
        return llm__gpu_cuda_error(cudaStreamSynchronize(st), "cudaStreamSynchronize after a pinned copy");
    return LLM_OK;
}

/* Waits for the copy (and everything queued before it): the caller reads
 * the host buffer right after. Errors of earlier kernels surface here. */
static llm_status gpu_copy_d2h(llm_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return LLM_OK;
    LLM__GPU_ENTER(be);
    cudaStream_t st = llm__gpu_stream(be);
    LLM__GPU_CHECK(llm__gpu_cuda_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st),
                                       "cudaMemcpyAsync device to host"));
    return llm__gpu_cuda_error(cudaStreamSynchronize(st), "cudaStreamSynchronize (device to host copy)");
}

/* memmove semantics, like the CPU backend: overlapping ranges go through a
 * temporary block. */
static llm_status gpu_copy_d2d(llm_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return LLM_OK;
    LLM__GPU_ENTER(be);
    cudaStream_t st = llm__gpu_stream(be);
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        void *tmp = NULL;
        LLM__GPU_CHECK(llm__gpu_scratch(be, bytes, &tmp));
        llm_status r = llm__gpu_cuda_error(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, st),
                                           "cudaMemcpyAsync device to device");
        if (r == LLM_OK)
            r = llm__gpu_cuda_error(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, st),
                                    "cudaMemcpyAsync device to device");
        llm__gpu_scratch_free(be, tmp);
        return r;
    }
    return llm__gpu_cuda_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st),
                               "cudaMemcpyAsync device to device");
}

static llm_status gpu_synchronize(llm_backend *be) {
    LLM__GPU_ENTER(be);
    return llm__gpu_cuda_error(cudaStreamSynchronize(llm__gpu_stream(be)), "cudaStreamSynchronize");
}

/* ---- BLAS ---- */

static inline cublasOperation_t op_of(int trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

static llm_status gpu_sgemm(llm_backend *be, int ta, int tb, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta,
                            float *c, int ldc) {
    if (m <= 0 || n <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    /* k = 0: C = beta C (0 when beta = 0, whatever C held), as on the CPU */
    if (k <= 0) return llm__gpu_scale_rows(be, m, n, beta, c, ldc);
    return llm__gpu_blas_error(cublasSgemm(llm__gpu_of(be)->blas, op_of(tb), op_of(ta), n, m, k, &alpha,
                                           b, ldb, a, lda, &beta, c, ldc),
                               "cublasSgemm");
}

static llm_status gpu_sgemm_batched(llm_backend *be, int ta, int tb, int m, int n, int k,
                                    float alpha, const float *a, int lda, int64_t sa,
                                    const float *b, int ldb, int64_t sb, float beta, float *c,
                                    int ldc, int64_t sc, int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    if (k <= 0) {
        for (int i = 0; i < batch; i++)
            LLM__GPU_CHECK(llm__gpu_scale_rows(be, m, n, beta, c + i * sc, ldc));
        return LLM_OK;
    }
    return llm__gpu_blas_error(cublasSgemmStridedBatched(llm__gpu_of(be)->blas, op_of(tb), op_of(ta), n, m, k,
                                                         &alpha, b, ldb, (long long)sb, a, lda,
                                                         (long long)sa, &beta, c, ldc, (long long)sc,
                                                         batch),
                               "cublasSgemmStridedBatched");
}

static const llm__backend_ops gpu_ops = {
    .name = "cuda",
    .caps = 0, /* device memory: the core stages it through copy_d2h / copy_h2d */
    .alloc = gpu_alloc,
    .free = gpu_free,
    .memset_zero = gpu_memset_zero,
    .copy_h2d = gpu_copy_h2d,
    .copy_d2h = gpu_copy_d2h,
    .copy_d2d = gpu_copy_d2d,
    .synchronize = gpu_synchronize,
    .sgemm = gpu_sgemm,
    .sgemm_batched = gpu_sgemm_batched,
    .fill = llm__gpu_fill,
    .fill_i32 = llm__gpu_fill_i32,
    .axpy = llm__gpu_axpy,
    .scale = llm__gpu_scale,
    .add = llm__gpu_add,
    .mul = llm__gpu_mul,
    .copy_rows = llm__gpu_copy_rows,
    .bias_act_forward = llm__gpu_bias_act_forward,
    .linear_forward = NULL, /* optional: cuBLAS GEMM, then the bias/activation kernel */
    .act_backward = llm__gpu_act_backward,
    .bias_backward = llm__gpu_bias_backward,
    .softmax_forward = llm__gpu_softmax_forward,
    .softmax_backward = llm__gpu_softmax_backward,
    .layernorm_forward = llm__gpu_layernorm_forward,
    .layernorm_backward = llm__gpu_layernorm_backward,
    .embedding_forward = llm__gpu_embedding_forward,
    .embedding_backward = llm__gpu_embedding_backward,
    .lstm_step_forward = llm__gpu_lstm_step_forward,
    .lstm_step_backward = llm__gpu_lstm_step_backward,
    .gru_step_forward = llm__gpu_gru_step_forward,
    .gru_step_backward = llm__gpu_gru_step_backward,
    .lstm_sequence_forward = llm__gpu_lstm_sequence_forward,
    .lstm_sequence_backward = llm__gpu_lstm_sequence_backward,
    .lstm_layer_forward = NULL,
    .attention_forward = llm__gpu_attention_forward,
    .attention_backward = llm__gpu_attention_backward,
    .pool_forward = llm__gpu_pool_forward,
    .pool_backward = llm__gpu_pool_backward,
    .dropout = llm__gpu_dropout,
    .loss_bce_logits = llm__gpu_loss_bce_logits,
    .loss_bce_probs = llm__gpu_loss_bce_probs,
    .loss_sce_logits = llm__gpu_loss_sce_logits,
    .loss_sce_probs = llm__gpu_loss_sce_probs,
    .loss_mse = llm__gpu_loss_mse,
    .sum = llm__gpu_sum,
    .sum_squares = llm__gpu_sum_squares,
    .count_nonfinite = llm__gpu_count_nonfinite,
    .optimizer_update = llm__gpu_optimizer_update,
};

/* ---- probing, creation, release, description ---- */

/* The lowest architecture this module has code for (nvcc's list of the
 * -gencode targets); older devices cannot run any of its kernels. */
static int min_arch(void) {
#ifdef __CUDA_ARCH_LIST__
    static const int archs[] = { __CUDA_ARCH_LIST__ };
    int lo = archs[0];
    for (size_t i = 1; i < sizeof archs / sizeof archs[0]; i++) lo = archs[i] < lo ? archs[i] : lo;
    return lo;
#else
    return 0;
#endif
}

static llm_status gpu_probe(int device) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        int drv = 0;
        cudaDriverGetVersion(&drv);
        (void)cudaGetLastError();
        if (err == cudaErrorNoDevice)
            return LLM__GPU_ERROR(LLM_ERR_UNAVAILABLE, "no CUDA device: the driver found none (%s)",
                                  cudaGetErrorName(err));
        return LLM__GPU_ERROR(LLM_ERR_UNAVAILABLE, "CUDA driver missing or unusable%s: cudaGetDeviceCount: %s (%s)",
                              drv == 0 ? " (no NVIDIA driver, libcuda.so.1, was found)" : "",
                              cudaGetErrorString(err), cudaGetErrorName(err));
    }
    if (n <= 0) return LLM__GPU_ERROR(LLM_ERR_UNAVAILABLE, "no CUDA device: the driver reports 0 devices");
    if (device < 0 || device >= n)
        return LLM__GPU_ERROR(LLM_ERR_UNAVAILABLE, "CUDA device %d out of range: %d device%s present", device, n,
                              n == 1 ? "" : "s");
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
        return llm__gpu_cuda_error(cudaGetLastError(), "cudaDeviceGetAttribute");
    }
    int lo = min_arch();
    if (major * 100 + minor * 10 < lo) {
        cudaDeviceProp prop;
        const char *name = cudaGetDeviceProperties(&prop, device) == cudaSuccess ? prop.name : "?";
        return LLM__GPU_ERROR(LLM_ERR_UNAVAILABLE,
                              "CUDA device %d (%s) has compute capability %d.%d; this libllm-cuda has "
                              "kernels for %d.%d and newer (rebuild with NVCC_ARCH for this device)",
                              device, name, major, minor, lo / 100, (lo / 10) % 10);
    }
    return LLM_OK;
}

static void gpu_release(llm_backend *be) {
    llm__gpu *g = llm__gpu_of(be);
    if (!g) return;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != g->device) cudaSetDevice(g->device);
    if (g->stream) cudaStreamSynchronize(g->stream);
    llm__gpu_cache_destroy(g);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    (void)cudaGetLastError();
    free(g);
    be->impl = NULL;
}

static llm_status gpu_create(llm_backend *be, const llm_backend_options *opts) {
    int device = opts->device;
    LLM__GPU_CHECK(gpu_probe(device));
    llm__gpu *g = (llm__gpu *)calloc(1, sizeof *g);
    if (!g) return LLM__GPU_ERROR(LLM_ERR_OUT_OF_MEMORY, "llm_backend_create: out of memory");
    g->device = device;
    llm__gpu_cache_init(&g->cache);
    be->impl = g;
    llm_status s = llm__gpu_cuda_error(cudaSetDevice(device), "cudaSetDevice");
    cudaDeviceProp prop;
    if (s == LLM_OK) s = llm__gpu_cuda_error(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    if (s == LLM_OK) {
        snprintf(g->name, sizeof g->name, "%s", prop.name);
        g->cc_major = prop.major;
        g->cc_minor = prop.minor;
        g->sm_count = prop.multiProcessorCount;
        g->total_mem = prop.totalGlobalMem;
        /* A non-blocking stream: no implicit synchronisation with other
         * libraries' work on the legacy default stream. */
        s = llm__gpu_cuda_error(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking),
                                "cudaStreamCreateWithFlags");
    }
    /* The kernels must have an image this device can run. */
    if (s == LLM_OK) {
        cudaFuncAttributes fa;
        cudaError_t err = llm__gpu_kernel_probe(&fa);
        if (err != cudaSuccess)
            s = LLM__GPU_ERROR(LLM_ERR_UNAVAILABLE, "CUDA device %d (%s, compute capability %d.%d): "
                               "libllm-cuda has no kernel it can run: %s", device, g->name, g->cc_major,
                               g->cc_minor, cudaGetErrorString(err));
        (void)cudaGetLastError();
    }
    if (s == LLM_OK) s = llm__gpu_blas_error(cublasCreate(&g->blas), "cublasCreate");
    if (s == LLM_OK) s = llm__gpu_blas_error(cublasSetStream(g->blas, g->stream), "cublasSetStream");
    if (s == LLM_OK) {
        const char *tf = getenv("LLM_CUDA_TF32");
        g->tf32 = tf && strcmp(tf, "1") == 0;
        s = llm__gpu_blas_error(cublasSetMathMode(g->blas, g->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                   : CUBLAS_DEFAULT_MATH),
                                "cublasSetMathMode");
    }
    if (s != LLM_OK) {
        gpu_release(be);
        return s;
    }
    be->ops = &gpu_ops;
    be->threads = 1;
    return LLM_OK;
}

static void gpu_describe(const llm_backend *be, char *buf, size_t len) {
    const llm__gpu *g = (const llm__gpu *)be->impl;
    int drv = 0, rt = 0, blas = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    if (g->blas) cublasGetVersion(g->blas, &blas);
    snprintf(buf, len,
             "cuda device=%d (%s, compute %d.%d, %d SMs, %.1f GiB) driver=%d.%d runtime=%d.%d cublas=%d "
             "tf32=%s cache=%.1f MiB live + %.1f MiB free, %llu cudaMalloc",
             g->device, g->name, g->cc_major, g->cc_minor, g->sm_count,
             g->total_mem / (1024.0 * 1024.0 * 1024.0), drv / 1000, (drv % 1000) / 10, rt / 1000,
             (rt % 1000) / 10, blas, g->tf32 ? "on" : "off", g->cache.bytes_live / 1048576.0,
             g->cache.bytes_cached / 1048576.0, (unsigned long long)g->cache.mallocs);
}

/* ---- the module's one export ---- */

static int same_layout(const llm__cuda_layout *a, const llm__cuda_layout *b) {
    return a->ops == b->ops && a->backend == b->backend && a->options == b->options &&
           a->lstm_step == b->lstm_step && a->lstm_grad == b->lstm_grad && a->lstm_seq == b->lstm_seq && a->gru_step == b->gru_step &&
           a->gru_grad == b->gru_grad && a->opt_update == b->opt_update && a->version == b->version;
}

extern "C" __attribute__((visibility("default")))
llm_status llm_cuda_module_init_v1(const llm__cuda_host *host, llm__cuda_module *out) {
    static const llm__cuda_layout mine = LLM__CUDA_LAYOUT_INIT;
    if (!host || !out || !host->error) return LLM_ERR_INVALID_ARGUMENT;
    if (!same_layout(&host->layout, &mine)) {
        int v = host->layout.version;
        return host->error(LLM_ERR_UNAVAILABLE,
                           "libllm-cuda was built with libllm %d.%d.%d and does not match this libllm "
                           "(%d.%d.%d or other internal layouts): install the module built with it",
                           mine.version / 10000, (mine.version / 100) % 100, mine.version % 100,
                           v / 10000, (v / 100) % 100, v % 100);
    }
    llm__gpu_host = host;
    memset(out, 0, sizeof *out);
    out->layout = mine;
    out->ops = &gpu_ops;
    out->probe = gpu_probe;
    out->create = gpu_create;
    out->release = gpu_release;
    out->describe = gpu_describe;
    return LLM_OK;
}
