/* Datasets for models with several inputs (include/llm/graph.h): each
 * example's inputs are kept side by side in one row, the layout the model
 * stages a batch in, with a descriptor per input. */
#include <math.h>
#include "llm/graph.h"
#include "dataset_internal.h"
#include "../core/internal.h"
#include "../core/tensor_internal.h"

llm_status llm__dataset_copy_inputs(llm_dataset *d, const llm_dataset *src, int64_t count) {
    if (!src->n_inputs) return LLM_OK;
    int n = src->n_inputs;
    d->in_dtype = llm__malloc((size_t)n * sizeof *d->in_dtype);
    d->in_ndim = llm__malloc((size_t)n * sizeof *d->in_ndim);
    d->in_shape = llm__malloc((size_t)n * sizeof *d->in_shape);
    if (!d->in_dtype || !d->in_ndim || !d->in_shape) return llm__oom("dataset");
    memcpy(d->in_dtype, src->in_dtype, (size_t)n * sizeof *d->in_dtype);
    memcpy(d->in_ndim, src->in_ndim, (size_t)n * sizeof *d->in_ndim);
    memcpy(d->in_shape, src->in_shape, (size_t)n * sizeof *d->in_shape);
    for (int k = 0; k < n; k++) d->in_shape[k][0] = count;
    d->n_inputs = n;
    return LLM_OK;
}

llm_status llm_dataset_from_inputs(llm_dataset **out, int n, const llm_tensor *const *xs, const llm_tensor *y) {
    static const char fn[] = "llm_dataset_from_inputs";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (n < 1 || n > 64 || !xs) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: give 1 to 64 input tensors", fn);
    if (!y) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: y is NULL", fn);
    int64_t row = 0, N = 0;
    for (int k = 0; k < n; k++) {
        if (!xs[k]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: input tensor %d is NULL", fn, k);
        if (xs[k]->ndim < 2) return llm__error(LLM_ERR_SHAPE, "%s: input %d must be [N, ...]", fn, k);
        if (k == 0) N = xs[0]->shape[0];
        if (xs[k]->shape[0] != N)
            return llm__error(LLM_ERR_SHAPE, "%s: input 0 has %lld examples but input %d has %lld", fn, (long long)N, k,
                              (long long)xs[k]->shape[0]);
        row += xs[k]->numel / N;
    }
    char *packed = llm__malloc((size_t)(N * row) * 4), *tmp = NULL, *ty = llm__malloc(y->bytes);
    llm_status s = packed && ty ? LLM_OK : llm__oom(fn);
    int64_t off = 0;
    for (int k = 0; k < n && s == LLM_OK; k++) {
        int64_t e = xs[k]->numel / N;
        char *t = llm__realloc(tmp, xs[k]->bytes);
        if (!t) { s = llm__oom(fn); break; }
        tmp = t;
        s = llm_tensor_to_host(xs[k], tmp, xs[k]->bytes);
        for (int64_t i = 0; s == LLM_OK && xs[k]->dtype == LLM_DTYPE_F32 && i < xs[k]->numel; i++)
            if (!isfinite(((const float *)tmp)[i]))
                s = llm__error(LLM_ERR_NUMERIC, "%s: input %d element %lld is %g", fn, k, (long long)i, (double)((const float *)tmp)[i]);
        for (int64_t b = 0; s == LLM_OK && b < N; b++)
            memcpy(packed + (size_t)(b * row + off) * 4, tmp + (size_t)(b * e) * 4, (size_t)e * 4);
        off += e;
    }
    if (s == LLM_OK) s = llm_tensor_to_host(y, ty, y->bytes);
    llm_dataset *d = NULL;
    int64_t xshape[2] = { N, row };
    /* int32 rows: the packed floats are checked above, per input */
    if (s == LLM_OK) s = llm_dataset_from_host(&d, LLM_DTYPE_I32, 2, xshape, packed, y->dtype, y->ndim, y->shape, ty);
    if (s == LLM_OK) {
        llm_dataset src = { 0 };
        llm_dtype dts[64];
        int nds[64];
        int64_t shapes[64][LLM_MAX_DIMS];
        for (int k = 0; k < n; k++) {
            dts[k] = xs[k]->dtype;
            nds[k] = xs[k]->ndim;
            memcpy(shapes[k], xs[k]->shape, sizeof shapes[k]);
        }
        src.n_inputs = n;
        src.in_dtype = dts;
        src.in_ndim = nds;
        src.in_shape = shapes;
        s = llm__dataset_copy_inputs(d, &src, N);
    }
    llm__free(packed);
    llm__free(tmp);
    llm__free(ty);
    if (s != LLM_OK) { llm_dataset_free(d); return s; }
    *out = d;
    return LLM_OK;
}
