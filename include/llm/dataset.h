/* libllm: in-memory datasets of (input, target) examples for training.
 *
 * A dataset owns a host copy of its examples; fit, evaluate and predict copy
 * one mini-batch at a time to the model's backend. Inputs are int32 token ids
 * [N, T] or float features [N, ...]; targets are float [N] / [N, k] (binary
 * cross-entropy, MSE) or int32 class labels [N]. */
#ifndef LLM_DATASET_H
#define LLM_DATASET_H

#include "common.h"
#include "status.h"
#include "tensor.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_dataset llm_dataset;

/* Copies N examples from host arrays. x_shape[0] == y_shape[0] == N >= 1.
 * Float inputs and targets must be finite (LLM_ERR_NUMERIC otherwise).
 * Byte sizes are computed from the shapes (x and y must be that large). */
LLM_API llm_status llm_dataset_from_host(llm_dataset **out, llm_dtype x_dtype, int x_ndim,
                                         const int64_t *x_shape, const void *x,
                                         llm_dtype y_dtype, int y_ndim,
                                         const int64_t *y_shape, const void *y);

/* The same from tensors (copied; the tensors may be freed afterwards). */
LLM_API llm_status llm_dataset_from_tensors(llm_dataset **out, const llm_tensor *x,
                                            const llm_tensor *y);

/* Number of examples. */
LLM_API llm_status llm_dataset_size(const llm_dataset *ds, int64_t *count);

/* Shuffles (deterministically for a seed) and splits off round(fraction *
 * N) examples, fraction in (0, 1), as *second; both parts are new datasets.
 * When every target is one class label in [0, 1000) (int32, or a float with
 * an integral value) the split is stratified: each class gives that share of
 * its own examples. LLM_ERR_INVALID_ARGUMENT when a part would be empty. */
LLM_API llm_status llm_dataset_split(const llm_dataset *ds, float fraction, uint64_t seed,
                                     llm_dataset **first, llm_dataset **second);

/* Copies example i's input / target into caller buffers of exactly
 * the per-example byte size. */
LLM_API llm_status llm_dataset_get(const llm_dataset *ds, int64_t index, void *x, size_t x_bytes,
                                   void *y, size_t y_bytes);

/* Frees a dataset. NULL is a no-op. */
LLM_API void llm_dataset_free(llm_dataset *ds);

LLM_EXTERN_C_END

#endif /* LLM_DATASET_H */
