/* libllm private: the tensor object behind the public handle. */
#ifndef LLM_PRIVATE_TENSOR_INTERNAL_H
#define LLM_PRIVATE_TENSOR_INTERNAL_H

#include "llm/tensor.h"
#include "../backend.h"

struct llm_tensor {
    llm_backend *backend;
    llm_dtype dtype;
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    int64_t numel;
    size_t bytes;
    void *data; /* backend memory, owned */
};

/* Validates ndim/shape and computes numel and bytes; fn names the caller in messages. */
llm_status llm__shape_check(const char *fn, llm_dtype dtype, int ndim, const int64_t *shape,
                            int64_t *numel, size_t *bytes);

#endif
