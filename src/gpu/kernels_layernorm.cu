/* libllm: CUDA layer normalisation over the last dimension.
 *
 * As on the CPU (src/cpu/kernels_layernorm.c): row statistics in double with
 * two passes (mean, then mean squared deviation), x - mean in double before
 * rounding, and a backward that recomputes each row mean in double around
 * the saved float mean. One block per row; dgamma / dbeta are column sums in
 * double with a fixed order (reduce.cuh). */
#include "gpu.h"
#include "reduce.cuh"

__global__ static void ln_forward_kernel(int64_t rows, int64_t cols, const float *x, const float *gamma,
                                         const float *beta, float eps, float *y, float *mean_out,
                                         float *rstd_out) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        double s = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
        double mean = llm__block_sum(s, sh) / (double)cols;
        double v = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double d = xr[c] - mean;
            v += d * d;
        }
        v = llm__block_sum(v, sh);
        double rstd = 1.0 / sqrt(v / (double)cols + eps);
        /* all reads for the statistics are done (block_sum synchronises): y may be x */
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            float n = (float)((xr[c] - mean) * rstd);
            yr[c] = n * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
        }
        if (threadIdx.x == 0) {
            if (mean_out) mean_out[r] = (float)mean;
            if (rstd_out) rstd_out[r] = (float)rstd;
        }
    }
}

static unsigned row_grid(int64_t rows) { return (unsigned)(rows < 2147483647LL ? rows : 2147483647LL); }

/* x [rows, cols], gamma/beta [cols] or NULL (1 / 0), y [rows, cols] (may
 * equal x), mean/rstd [rows] or NULL */
llm_status llm__gpu_layernorm_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                      const float *gamma, const float *beta, float eps, float *y,
                                      float *mean, float *rstd) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    ln_forward_kernel<<<row_grid(rows), llm__gpu_row_threads(cols), 0, llm__gpu_stream(be)>>>(
        rows, cols, x, gamma, beta, eps, y, mean, rstd);
    return llm__gpu_launched("layernorm_forward");
}

/* Per row: the exact mean (kept for the parameter pass) and, if dx, dx +=
 * rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. */
__global__ static void ln_backward_dx_kernel(int64_t rows, int64_t cols, const float *x, const float *gamma,
                                             const float *mean, const float *rstd, const float *dy,
                                             float *dx, double *mean_exact) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        float pivot = mean[r];
        double s = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += (double)xr[c] - pivot;
        double m = pivot + llm__block_sum(s, sh) / (double)cols;
        double rs = rstd[r];
        if (threadIdx.x == 0) mean_exact[r] = m;
        if (!dx) continue;
        double sg = 0.0, sgx = 0.0;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double xhat = (xr[c] - m) * rs;
            double g = (double)dyr[c] * (gamma ? gamma[c] : 1.0f);
            sg += g;
            sgx += g * xhat;
        }
        sg = llm__block_sum(sg, sh);
        sgx = llm__block_sum(sgx, sh);
        double mg = sg / (double)cols, mgx = sgx / (double)cols;
        float *dxr = dx + r * cols;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            double xhat = (xr[c] - m) * rs;
            double g = (double)dyr[c] * (gamma ? gamma[c] : 1.0f);
            dxr[c] = (float)(dxr[c] + rs * (g - mg - xhat * mgx));
        }
    }
}

struct ln_param_term {
    const float *x, *dy, *rstd;
    const double *mean;
    int64_t cols;
    __device__ llm__d2 operator()(int64_t r, int64_t c) const {
        double d = dy[r * cols + c];
        return llm__d2{ d * ((x[r * cols + c] - mean[r]) * (double)rstd[r]), d };
    }
};

struct ln_param_store {
    float *dgamma, *dbeta;
    __device__ void operator()(int64_t c, double a, double b) const {
        if (dgamma) dgamma[c] = (float)(dgamma[c] + a);
        if (dbeta) dbeta[c] = (float)(dbeta[c] + b);
    }
};

/* x [rows, cols], gamma [cols] or NULL, mean/rstd [rows] from forward, dy
 * [rows, cols]; dx [rows, cols] +=, dgamma [cols] +=, dbeta [cols] += (each
 * may be NULL to skip). The workspace goes unused: the backend's caching
 * allocator below reuses a block once warm. */
llm_status llm__gpu_layernorm_backward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                       const float *gamma, const float *mean, const float *rstd,
                                       const float *dy, float *dx, float *dgamma, float *dbeta,
                                       float * /* workspace */) {
    if (rows <= 0 || cols <= 0) return LLM_OK;
    LLM__GPU_ENTER(be);
    double *m = NULL;
    LLM__GPU_CHECK(llm__gpu_scratch(be, (size_t)rows * sizeof(double), (void **)&m));
    ln_backward_dx_kernel<<<row_grid(rows), llm__gpu_row_threads(cols), 0, llm__gpu_stream(be)>>>(
        rows, cols, x, gamma, mean, rstd, dy, dx, m);
    llm_status s = llm__gpu_launched("layernorm_backward");
    if (s == LLM_OK && (dgamma || dbeta))
        s = llm__gpu_colsum(be, rows, cols, ln_param_term{ x, dy, rstd, m, cols },
                            ln_param_store{ dgamma, dbeta }, "layernorm_backward");
    llm__gpu_scratch_free(be, m);
    return s;
}
