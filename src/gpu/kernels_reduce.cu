/* libllm: CUDA reductions to one float in device memory (sum, sum of
 * squares for gradient norms, count of non-finite values for NaN checks),
 * in double with a fixed order (reduce.cuh). */
#include "gpu.h"
#include "reduce.cuh"

struct sum_term {
    const float *x;
    __device__ double operator()(int64_t i) const { return x[i]; }
};

struct sumsq_term {
    const float *x;
    __device__ double operator()(int64_t i) const { return (double)x[i] * x[i]; }
};

/* Exponent bits all ones = Inf or NaN, tested on the bits so that fast-math
 * flags could never optimise the test away. */
struct nonfinite_term {
    const float *x;
    __device__ double operator()(int64_t i) const {
        return (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u ? 1.0 : 0.0;
    }
};

/* x [n], out [1] = sum */
llm_status llm__gpu_sum(llm_backend *be, int64_t n, const float *x, float *out) {
    LLM__GPU_ENTER(be);
    return llm__gpu_reduce(be, n, sum_term{ x }, 1.0, out, "sum");
}

/* x [n], out [1] = sum of squares */
llm_status llm__gpu_sum_squares(llm_backend *be, int64_t n, const float *x, float *out) {
    LLM__GPU_ENTER(be);
    return llm__gpu_reduce(be, n, sumsq_term{ x }, 1.0, out, "sum_squares");
}

/* x [n], out [1] = number of NaN / Inf elements (as a float) */
llm_status llm__gpu_count_nonfinite(llm_backend *be, int64_t n, const float *x, float *out) {
    LLM__GPU_ENTER(be);
    return llm__gpu_reduce(be, n, nonfinite_term{ x }, 1.0, out, "count_nonfinite");
}
