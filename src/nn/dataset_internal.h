#ifndef LLM_PRIVATE_DATASET_INTERNAL_H
#define LLM_PRIVATE_DATASET_INTERNAL_H
#include "llm/dataset.h"

struct llm_dataset {
    int64_t n;
    llm_dtype x_dtype, y_dtype;
    int x_ndim, y_ndim;                 /* including the example dimension */
    int64_t x_shape[LLM_MAX_DIMS], y_shape[LLM_MAX_DIMS];
    int64_t x_elems, y_elems;           /* per example */
    void *x, *y;                        /* host copies */
    /* llm_dataset_from_inputs: each example's x is the inputs side by side
     * (x_dtype/x_shape then describe the packed rows); 0 otherwise */
    int n_inputs;
    llm_dtype *in_dtype;
    int *in_ndim;
    int64_t (*in_shape)[LLM_MAX_DIMS];  /* [N, ...] of each input */
};
/* Gives d the input descriptors of src (for a subset of count examples). */
llm_status llm__dataset_copy_inputs(llm_dataset *d, const llm_dataset *src, int64_t count);

/* Copies examples idx[0..count) into contiguous host buffers. */
void llm__dataset_gather(const llm_dataset *ds, const int64_t *idx, int64_t count, void *x, void *y);
/* A new dataset of the listed examples of ds. */
llm_status llm__dataset_subset(const llm_dataset *ds, const int64_t *idx, int64_t count, llm_dataset **out);
/* Deterministic Fisher-Yates permutation of [0, n) for a seed. */
void llm__permutation(int64_t *idx, int64_t n, uint64_t seed);
#endif
