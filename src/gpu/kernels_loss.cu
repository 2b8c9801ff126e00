/* libllm: CUDA losses. Each writes the mean loss to *loss (one float in
 * device memory) and, when d is not NULL, adds grad_scale * dL/dinput to d in
 * the same pass. The per-element terms are those of src/cpu/kernels_loss.c,
 * in double, summed by the deterministic reduction of reduce.cuh. */
#include "gpu.h"
#include "reduce.cuh"

/* Keras's epsilon: probabilities are clamped to [PROB_LO, PROB_HI] before the log. */
#define PROB_LO 1e-7f
#define PROB_HI (1.0f - 1e-7f)

static float gscale_of(float grad_scale, int64_t n) { return (float)((double)grad_scale / (double)n); }

static __device__ __forceinline__ float sigm(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

/* l = max(z, 0) - z t + log(1 + e^-|z|) */
struct bce_logits_term {
    const float *z, *t;
    float gscale;
    float *d;
    __device__ double operator()(int64_t i) const {
        double zd = z[i], td = t[i];
        if (d) d[i] += gscale * (sigm(z[i]) - t[i]);
        return (zd > 0.0 ? zd : 0.0) - zd * td + log1p(exp(-fabs(zd)));
    }
};

/* z [n] logits, t [n] targets, loss [1], dz [n] += or NULL */
llm_status llm__gpu_loss_bce_logits(llm_backend *be, int64_t n, const float *z, const float *t,
                                    float grad_scale, float *loss, float *dz) {
    LLM__GPU_ENTER(be);
    bce_logits_term f{ z, t, n > 0 ? gscale_of(grad_scale, n) : 0.0f, dz };
    return llm__gpu_reduce(be, n, f, (double)(n > 0 ? n : 1), loss, "loss_bce_logits");
}

/* Outside [PROB_LO, PROB_HI] the loss is flat in p and the gradient is 0. */
struct bce_probs_term {
    const float *p, *t;
    float gscale;
    float *d;
    __device__ double operator()(int64_t i) const {
        float pf = p[i];
        float pc = pf < PROB_LO ? PROB_LO : (pf > PROB_HI ? PROB_HI : pf);
        double pd = pc, td = t[i];
        if (d && pf >= PROB_LO && pf <= PROB_HI) d[i] += gscale * (float)((1.0 - td) / (1.0 - pd) - td / pd);
        return -(td * log(pd) + (1.0 - td) * log(1.0 - pd));
    }
};

/* p [n] probabilities, t [n], loss [1], dp [n] += or NULL */
llm_status llm__gpu_loss_bce_probs(llm_backend *be, int64_t n, const float *p, const float *t,
                                   float grad_scale, float *loss, float *dp) {
    LLM__GPU_ENTER(be);
    bce_probs_term f{ p, t, n > 0 ? gscale_of(grad_scale, n) : 0.0f, dp };
    return llm__gpu_reduce(be, n, f, (double)(n > 0 ? n : 1), loss, "loss_bce_probs");
}

/* One block per row: the row's loss log sum e^{z - max} + max - z_label into
 * row_loss[r], and dz += gscale (softmax - onehot). */
__global__ static void sce_logits_kernel(int64_t rows, int64_t K, const float *z, const int32_t *labels,
                                         float gscale, float *d, double *row_loss) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *zr = z + r * K;
        int32_t label = labels[r];
        float mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x) mx = fmaxf(mx, zr[j]);
        mx = llm__block_max(mx, shf);
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < K; j += blockDim.x) s += expf(zr[j] - mx);
        s = llm__block_sum(s, shd);
        if (threadIdx.x == 0) row_loss[r] = (double)mx + log(s) - (double)zr[label];
        if (d) {
            float *dr = d + r * K;
            float inv = (float)(1.0 / s);
            for (int64_t j = threadIdx.x; j < K; j += blockDim.x)
                dr[j] += gscale * (expf(zr[j] - mx) * inv - (j == label ? 1.0f : 0.0f));
        }
    }
}

struct array_term {
    const double *v;
    __device__ double operator()(int64_t i) const { return v[i]; }
};

/* z [rows, classes] logits, labels [rows] (validated by the core), loss [1]
 * = mean over rows, dz [rows, classes] += or NULL */
llm_status llm__gpu_loss_sce_logits(llm_backend *be, int64_t rows, int64_t classes, const float *z,
                                    const int32_t *labels, float grad_scale, float *loss, float *dz) {
    LLM__GPU_ENTER(be);
    if (rows <= 0 || classes <= 0)
        return llm__gpu_cuda_error(cudaMemsetAsync(loss, 0, sizeof(float), llm__gpu_stream(be)), "loss_sce_logits");
    double *row_loss = NULL;
    LLM__GPU_CHECK(llm__gpu_scratch(be, (size_t)rows * sizeof(double), (void **)&row_loss));
    unsigned grid = (unsigned)(rows < 2147483647LL ? rows : 2147483647LL);
    sce_logits_kernel<<<grid, llm__gpu_row_threads(classes), 0, llm__gpu_stream(be)>>>(
        rows, classes, z, labels, gscale_of(grad_scale, rows), dz, row_loss);
    llm_status s = llm__gpu_launched("loss_sce_logits");
    if (s == LLM_OK) s = llm__gpu_reduce(be, rows, array_term{ row_loss }, (double)rows, loss, "loss_sce_logits");
    llm__gpu_scratch_free(be, row_loss);
    return s;
}

/* Per row: l = -log(clamp(p_label)); only p_label gets a gradient. */
struct sce_probs_term {
    const float *p;
    const int32_t *labels;
    int64_t K;
    float gscale;
    float *d;
    __device__ double operator()(int64_t r) const {
        int64_t k = r * K + labels[r];
        float pf = p[k];
        float pc = pf < PROB_LO ? PROB_LO : (pf > PROB_HI ? PROB_HI : pf);
        if (d && pf >= PROB_LO && pf <= PROB_HI) d[k] += gscale * (float)(-1.0 / (double)pc);
        return -log((double)pc);
    }
};

/* p [rows, classes] probabilities, labels [rows], loss [1], dp += or NULL */
llm_status llm__gpu_loss_sce_probs(llm_backend *be, int64_t rows, int64_t classes, const float *p,
                                   const int32_t *labels, float grad_scale, float *loss, float *dp) {
    LLM__GPU_ENTER(be);
    if (rows <= 0 || classes <= 0)
        return llm__gpu_cuda_error(cudaMemsetAsync(loss, 0, sizeof(float), llm__gpu_stream(be)), "loss_sce_probs");
    sce_probs_term f{ p, labels, classes, gscale_of(grad_scale, rows), dp };
    return llm__gpu_reduce(be, rows, f, (double)rows, loss, "loss_sce_probs");
}

struct mse_term {
    const float *y, *t;
    float gscale;
    float *d;
    __device__ double operator()(int64_t i) const {
        double e = (double)y[i] - t[i];
        if (d) d[i] += gscale * 2.0f * (y[i] - t[i]);
        return e * e;
    }
};

/* y [n] predictions, t [n] targets, loss [1], dy [n] += or NULL */
llm_status llm__gpu_loss_mse(llm_backend *be, int64_t n, const float *y, const float *t,
                             float grad_scale, float *loss, float *dy) {
    LLM__GPU_ENTER(be);
    mse_term f{ y, t, n > 0 ? gscale_of(grad_scale, n) : 0.0f, dy };
    return llm__gpu_reduce(be, n, f, (double)(n > 0 ? n : 1), loss, "loss_mse");
}
