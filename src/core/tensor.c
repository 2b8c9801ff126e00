/* Tensors: shape bookkeeping over backend memory. */
#include <math.h>
#include "internal.h"
#include "tensor_internal.h"
#include "backend_internal.h"

size_t llm_dtype_size(llm_dtype dtype) {
    switch (dtype) {
    case LLM_DTYPE_F32: return 4;
    case LLM_DTYPE_I32: return 4;
    }
    return 0;
}

llm_status llm__shape_check(const char *fn, llm_dtype dtype, int ndim, const int64_t *shape,
                            int64_t *numel, size_t *bytes) {
    size_t esize = llm_dtype_size(dtype);
    if (esize == 0) return llm__error(LLM_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    if (ndim < 1 || ndim > LLM_MAX_DIMS)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ndim = %d must be in [1, %d]", fn, ndim, LLM_MAX_DIMS);
    if (!shape) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: shape is NULL", fn);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: shape[%d] = %lld must be positive", fn, i,
                              (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX || !llm__mul_size(count, (size_t)shape[i], &count) ||
            count > (size_t)INT64_MAX)
            return llm__error(LLM_ERR_OVERFLOW, "%s: element count overflows at shape[%d]", fn, i);
    }
    size_t b;
    if (!llm__mul_size(count, esize, &b))
        return llm__error(LLM_ERR_OVERFLOW, "%s: byte size of %zu elements overflows", fn, count);
    *numel = (int64_t)count;
    *bytes = b;
    return LLM_OK;
}

static llm_status tensor_new(llm_tensor **out, llm_backend *be, llm_dtype dtype, int ndim,
                             const int64_t *shape, const char *fn) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!be) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: backend is NULL", fn);
    int64_t numel;
    size_t bytes;
    LLM__CHECK(llm__shape_check(fn, dtype, ndim, shape, &numel, &bytes));
    llm_tensor *t = llm__calloc(1, sizeof *t);
    if (!t) return llm__oom(fn);
    llm_status s = be->ops->alloc(be, bytes, &t->data);
    if (s != LLM_OK) { llm__free(t); return s; }
    t->backend = be;
    llm__backend_retain(be);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = numel;
    t->bytes = bytes;
    *out = t;
    return LLM_OK;
}

llm_status llm_tensor_create(llm_tensor **out, llm_backend *be, llm_dtype dtype, int ndim,
                             const int64_t *shape) {
    LLM__CHECK(tensor_new(out, be, dtype, ndim, shape, "llm_tensor_create"));
    llm_status s = be->ops->memset_zero(be, (*out)->data, (*out)->bytes);
    if (s != LLM_OK) { llm_tensor_free(*out); *out = NULL; }
    return s;
}

llm_status llm_tensor_zeros(llm_tensor **out, llm_backend *be, llm_dtype dtype, int ndim,
                            const int64_t *shape) {
    return llm_tensor_create(out, be, dtype, ndim, shape);
}

llm_status llm_tensor_from_host(llm_tensor **out, llm_backend *be, llm_dtype dtype, int ndim,
                                const int64_t *shape, const void *data, size_t bytes) {
    static const char fn[] = "llm_tensor_from_host";
    if (out) *out = NULL;
    if (!data) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: data is NULL", fn);
    LLM__CHECK(tensor_new(out, be, dtype, ndim, shape, fn));
    llm_tensor *t = *out;
    llm_status s = LLM_OK;
    if (bytes != t->bytes)
        s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buffer has %zu bytes, the shape needs %zu", fn,
                       bytes, t->bytes);
    else
        s = be->ops->copy_h2d(be, t->data, data, bytes);
    if (s != LLM_OK) { llm_tensor_free(t); *out = NULL; }
    return s;
}

llm_status llm_tensor_to_host(const llm_tensor *t, void *dst, size_t bytes) {
    static const char fn[] = "llm_tensor_to_host";
    if (!t) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", fn);
    if (!dst) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: dst is NULL", fn);
    if (bytes != t->bytes)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buffer has %zu bytes, the tensor has %zu", fn,
                          bytes, t->bytes);
    return t->backend->ops->copy_d2h(t->backend, dst, t->data, bytes);
}

llm_status llm_tensor_copy_from_host(llm_tensor *t, const void *src, size_t bytes) {
    static const char fn[] = "llm_tensor_copy_from_host";
    if (!t) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", fn);
    if (!src) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: src is NULL", fn);
    if (bytes != t->bytes)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buffer has %zu bytes, the tensor has %zu", fn,
                          bytes, t->bytes);
    return t->backend->ops->copy_h2d(t->backend, t->data, src, bytes);
}

llm_status llm_tensor_fill(llm_tensor *t, double value) {
    static const char fn[] = "llm_tensor_fill";
    if (!t) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", fn);
    llm_backend *be = t->backend;
    if (t->dtype == LLM_DTYPE_I32) {
        if (!(value >= (double)INT32_MIN && value <= (double)INT32_MAX) || value != floor(value))
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %g is not an int32 value", fn, value);
        return be->ops->fill_i32(be, t->numel, (int32_t)value, t->data);
    }
    if (isnan(value) == 0 && isinf(value) == 0 && fabs(value) > 3.4028234663852886e38)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %g is out of float range", fn, value);
    return be->ops->fill(be, t->numel, (float)value, t->data);
}

llm_status llm_tensor_reshape(llm_tensor *t, int ndim, const int64_t *shape) {
    static const char fn[] = "llm_tensor_reshape";
    if (!t) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", fn);
    int64_t numel;
    size_t bytes;
    LLM__CHECK(llm__shape_check(fn, t->dtype, ndim, shape, &numel, &bytes));
    if (numel != t->numel)
        return llm__error(LLM_ERR_SHAPE, "%s: new shape has %lld elements, the tensor has %lld", fn,
                          (long long)numel, (long long)t->numel);
    t->ndim = ndim;
    for (int i = 0; i < LLM_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 0;
    return LLM_OK;
}

#define NEED(t, p, fn) do { if (!(t) || !(p)) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn); } while (0)

llm_status llm_tensor_ndim(const llm_tensor *t, int *ndim) {
    NEED(t, ndim, "llm_tensor_ndim");
    *ndim = t->ndim;
    return LLM_OK;
}

llm_status llm_tensor_shape(const llm_tensor *t, int64_t *shape) {
    NEED(t, shape, "llm_tensor_shape");
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    return LLM_OK;
}

llm_status llm_tensor_dim(const llm_tensor *t, int axis, int64_t *dim) {
    NEED(t, dim, "llm_tensor_dim");
    if (axis < -t->ndim || axis >= t->ndim)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_tensor_dim: axis %d out of range for %d dims", axis, t->ndim);
    *dim = t->shape[axis < 0 ? axis + t->ndim : axis];
    return LLM_OK;
}

llm_status llm_tensor_numel(const llm_tensor *t, int64_t *numel) {
    NEED(t, numel, "llm_tensor_numel");
    *numel = t->numel;
    return LLM_OK;
}

llm_status llm_tensor_dtype(const llm_tensor *t, llm_dtype *dtype) {
    NEED(t, dtype, "llm_tensor_dtype");
    *dtype = t->dtype;
    return LLM_OK;
}

llm_status llm_tensor_backend(const llm_tensor *t, llm_backend **backend) {
    NEED(t, backend, "llm_tensor_backend");
    *backend = t->backend;
    return LLM_OK;
}

void llm_tensor_free(llm_tensor *t) {
    if (!t) return;
    if (t->data) t->backend->ops->free(t->backend, t->data);
    llm__backend_release(t->backend);
    llm__free(t);
}
