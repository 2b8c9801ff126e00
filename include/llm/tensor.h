/* libllm: tensors.
 *
 * An llm_tensor is a dense, row-major array of up to LLM_MAX_DIMS dimensions
 * that lives on one backend. Its memory is owned by the tensor and released by
 * llm_tensor_free. Data moves in and out only through host buffers, so the
 * same code works whether the backend is the CPU or a GPU. */
#ifndef LLM_TENSOR_H
#define LLM_TENSOR_H

#include "common.h"
#include "status.h"
#include "backend.h"

LLM_EXTERN_C_BEGIN

#define LLM_MAX_DIMS 4

typedef struct llm_tensor llm_tensor;

typedef enum llm_dtype {
    LLM_DTYPE_F32 = 0, /* 32-bit IEEE float */
    LLM_DTYPE_I32 = 1  /* 32-bit signed integer (token ids, class labels) */
} llm_dtype;

/* Size in bytes of one element of dtype, or 0 for an unknown dtype. */
LLM_API size_t llm_dtype_size(llm_dtype dtype);

/* Creates a tensor of the given shape, filled with zeros. Every dimension
 * must be >= 1, 1 <= ndim <= LLM_MAX_DIMS, and the byte size must fit in
 * size_t (LLM_ERR_OVERFLOW otherwise). The tensor holds a reference to the
 * backend until it is freed (backend.h, Lifetime). */
LLM_API llm_status llm_tensor_create(llm_tensor **out, llm_backend *backend, llm_dtype dtype,
                                     int ndim, const int64_t *shape);

/* Same as llm_tensor_create; the name says what the contents are. */
LLM_API llm_status llm_tensor_zeros(llm_tensor **out, llm_backend *backend, llm_dtype dtype,
                                    int ndim, const int64_t *shape);

/* Creates a tensor and copies `bytes` bytes from the host buffer `data`,
 * which must be exactly the tensor's size (LLM_ERR_INVALID_ARGUMENT otherwise). */
LLM_API llm_status llm_tensor_from_host(llm_tensor **out, llm_backend *backend, llm_dtype dtype,
                                        int ndim, const int64_t *shape, const void *data,
                                        size_t bytes);

/* Copies the whole tensor into the host buffer dst of `bytes` bytes, which
 * must be exactly the tensor's size. */
LLM_API llm_status llm_tensor_to_host(const llm_tensor *tensor, void *dst, size_t bytes);

/* Copies `bytes` bytes from the host into an existing tensor (exact size). */
LLM_API llm_status llm_tensor_copy_from_host(llm_tensor *tensor, const void *src, size_t bytes);

/* Sets every element to value (converted to the tensor's dtype; for I32 the
 * value must be integral and in range). */
LLM_API llm_status llm_tensor_fill(llm_tensor *tensor, double value);

/* Changes the shape in place; the element count must stay the same. */
LLM_API llm_status llm_tensor_reshape(llm_tensor *tensor, int ndim, const int64_t *shape);

/* Shape queries. llm_tensor_shape writes ndim entries into shape, which must
 * have room for LLM_MAX_DIMS. */
LLM_API llm_status llm_tensor_ndim(const llm_tensor *tensor, int *ndim);
LLM_API llm_status llm_tensor_shape(const llm_tensor *tensor, int64_t *shape);
LLM_API llm_status llm_tensor_dim(const llm_tensor *tensor, int axis, int64_t *dim);
LLM_API llm_status llm_tensor_numel(const llm_tensor *tensor, int64_t *numel);
LLM_API llm_status llm_tensor_dtype(const llm_tensor *tensor, llm_dtype *dtype);
/* *backend is borrowed: valid while the tensor lives (backend.h, Lifetime). */
LLM_API llm_status llm_tensor_backend(const llm_tensor *tensor, llm_backend **backend);

/* Frees a tensor and its memory, and drops its reference to its backend.
 * NULL is a no-op. */
LLM_API void llm_tensor_free(llm_tensor *tensor);

LLM_EXTERN_C_END

#endif /* LLM_TENSOR_H */
