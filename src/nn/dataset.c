/* In-memory datasets: host copies of (input, target) pairs. */
#include <math.h>
#include "dataset_internal.h"
#include "../core/internal.h"
#include "../core/rng.h"
#include "../core/tensor_internal.h"

static llm_status check_finite(const char *fn, const char *what, llm_dtype dt, const void *p, int64_t n) {
    if (dt != LLM_DTYPE_F32) return LLM_OK;
    const float *f = p;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(f[i]))
            return llm__error(LLM_ERR_NUMERIC, "%s: %s element %lld is %g", fn, what, (long long)i, (double)f[i]);
    return LLM_OK;
}

static llm_status dataset_new(llm_dataset **out, llm_dtype xd, int xn, const int64_t *xs, llm_dtype yd, int yn,
                              const int64_t *ys, const char *fn) {
    int64_t xnum, ynum;
    size_t xb, yb;
    LLM__CHECK(llm__shape_check(fn, xd, xn, xs, &xnum, &xb));
    LLM__CHECK(llm__shape_check(fn, yd, yn, ys, &ynum, &yb));
    if (xs[0] != ys[0])
        return llm__error(LLM_ERR_SHAPE, "%s: %lld inputs but %lld targets", fn, (long long)xs[0], (long long)ys[0]);
    llm_dataset *d = llm__calloc(1, sizeof *d);
    if (!d) return llm__oom(fn);
    d->n = xs[0];
    d->x_dtype = xd;
    d->y_dtype = yd;
    d->x_ndim = xn;
    d->y_ndim = yn;
    for (int i = 0; i < xn; i++) d->x_shape[i] = xs[i];
    for (int i = 0; i < yn; i++) d->y_shape[i] = ys[i];
    d->x_elems = xnum / d->n;
    d->y_elems = ynum / d->n;
    d->x = llm__malloc(xb);
    d->y = llm__malloc(yb);
    if (!d->x || !d->y) { llm_dataset_free(d); return llm__oom(fn); }
    *out = d;
    return LLM_OK;
}

llm_status llm_dataset_from_host(llm_dataset **out, llm_dtype x_dtype, int x_ndim, const int64_t *x_shape,
                                 const void *x, llm_dtype y_dtype, int y_ndim, const int64_t *y_shape,
                                 const void *y) {
    static const char fn[] = "llm_dataset_from_host";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!x || !y) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, x ? "y" : "x");
    llm_dataset *d;
    LLM__CHECK(dataset_new(&d, x_dtype, x_ndim, x_shape, y_dtype, y_ndim, y_shape, fn));
    llm_status s = check_finite(fn, "input", x_dtype, x, d->n * d->x_elems);
    if (s == LLM_OK) s = check_finite(fn, "target", y_dtype, y, d->n * d->y_elems);
    if (s != LLM_OK) { llm_dataset_free(d); return s; }
    memcpy(d->x, x, (size_t)(d->n * d->x_elems) * 4);
    memcpy(d->y, y, (size_t)(d->n * d->y_elems) * 4);
    *out = d;
    return LLM_OK;
}

llm_status llm_dataset_from_tensors(llm_dataset **out, const llm_tensor *x, const llm_tensor *y) {
    static const char fn[] = "llm_dataset_from_tensors";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!x || !y) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, x ? "y" : "x");
    llm_dataset *d;
    LLM__CHECK(dataset_new(&d, x->dtype, x->ndim, x->shape, y->dtype, y->ndim, y->shape, fn));
    llm_status s = llm_tensor_to_host(x, d->x, x->bytes);
    if (s == LLM_OK) s = llm_tensor_to_host(y, d->y, y->bytes);
    if (s == LLM_OK) s = check_finite(fn, "input", d->x_dtype, d->x, d->n * d->x_elems);
    if (s == LLM_OK) s = check_finite(fn, "target", d->y_dtype, d->y, d->n * d->y_elems);
    if (s != LLM_OK) { llm_dataset_free(d); return s; }
    *out = d;
    return LLM_OK;
}

llm_status llm_dataset_size(const llm_dataset *ds, int64_t *count) {
    if (!ds || !count) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dataset_size: NULL argument");
    *count = ds->n;
    return LLM_OK;
}

void llm__permutation(int64_t *idx, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(llm__rng_u64(seed, (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

void llm__dataset_gather(const llm_dataset *ds, const int64_t *idx, int64_t count, void *x, void *y) {
    size_t xb = (size_t)ds->x_elems * 4, yb = (size_t)ds->y_elems * 4;
    for (int64_t i = 0; i < count; i++) {
        memcpy((char *)x + (size_t)i * xb, (const char *)ds->x + (size_t)idx[i] * xb, xb);
        memcpy((char *)y + (size_t)i * yb, (const char *)ds->y + (size_t)idx[i] * yb, yb);
    }
}

llm_status llm__dataset_subset(const llm_dataset *ds, const int64_t *idx, int64_t count, llm_dataset **out) {
    int64_t xs[LLM_MAX_DIMS], ys[LLM_MAX_DIMS];
    memcpy(xs, ds->x_shape, sizeof xs);
    memcpy(ys, ds->y_shape, sizeof ys);
    xs[0] = ys[0] = count;
    llm_dataset *d;
    LLM__CHECK(dataset_new(&d, ds->x_dtype, ds->x_ndim, xs, ds->y_dtype, ds->y_ndim, ys, "llm_dataset_split"));
    llm_status s = llm__dataset_copy_inputs(d, ds, count);
    if (s != LLM_OK) { llm_dataset_free(d); return s; }
    llm__dataset_gather(ds, idx, count, d->x, d->y);
    *out = d;
    return LLM_OK;
}

/* A class label when the target is one integral value per example. */
static int class_of(const llm_dataset *ds, int64_t i, int32_t *cls) {
    if (ds->y_elems != 1) return 0;
    if (ds->y_dtype == LLM_DTYPE_I32) { *cls = ((const int32_t *)ds->y)[i]; return 1; }
    float v = ((const float *)ds->y)[i];
    if (v != floorf(v) || v < 0 || v > 1000) return 0;
    *cls = (int32_t)v;
    return 1;
}

llm_status llm_dataset_split(const llm_dataset *ds, float fraction, uint64_t seed, llm_dataset **first,
                             llm_dataset **second) {
    static const char fn[] = "llm_dataset_split";
    if (!ds || !first || !second) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *first = *second = NULL;
    if (!(fraction > 0.0f && fraction < 1.0f))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: fraction = %g must be in (0, 1)", fn, (double)fraction);
    int64_t n = ds->n;
    int64_t *perm = llm__malloc((size_t)n * sizeof *perm), *order = llm__malloc((size_t)n * sizeof *order);
    if (!perm || !order) { llm__free(perm); llm__free(order); return llm__oom(fn); }
    llm__permutation(perm, n, seed);
    /* Stratify: walk the shuffled examples class by class, sending each
     * class's last `fraction` to the second part. Non-class targets: one class. */
    int stratified = 1;
    int32_t c;
    int32_t n_classes = 1;
    for (int64_t i = 0; i < n && stratified; i++) {
        stratified = class_of(ds, i, &c) && c >= 0 && c < 1000;
        if (stratified && c >= n_classes) n_classes = c + 1;
    }
    int64_t n1 = 0, n2 = 0;
    int64_t *second_idx = order + n; /* filled backwards from the end of order */
    for (int32_t cls = 0; cls < (stratified ? n_classes : 1); cls++) {
        int64_t count = 0;
        for (int64_t i = 0; i < n; i++)
            if (!stratified || (class_of(ds, perm[i], &c), c == cls)) count++;
        if (!count) continue;
        int64_t take = (int64_t)llround((double)count * fraction), seen = 0;
        for (int64_t i = 0; i < n; i++) {
            if (stratified && (class_of(ds, perm[i], &c), c != cls)) continue;
            if (seen++ < count - take) order[n1++] = perm[i];
            else { second_idx--; n2++; *second_idx = perm[i]; }
        }
    }
    llm_status s = LLM_OK;
    if (n1 == 0 || n2 == 0)
        s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: fraction %g of %lld examples leaves a part empty", fn,
                       (double)fraction, (long long)n);
    if (s == LLM_OK) s = llm__dataset_subset(ds, order, n1, first);
    if (s == LLM_OK) s = llm__dataset_subset(ds, order + n - n2, n2, second);
    if (s != LLM_OK) { llm_dataset_free(*first); *first = NULL; }
    llm__free(perm);
    llm__free(order);
    return s;
}

llm_status llm_dataset_get(const llm_dataset *ds, int64_t index, void *x, size_t x_bytes, void *y, size_t y_bytes) {
    static const char fn[] = "llm_dataset_get";
    if (!ds || !x || !y) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (index < 0 || index >= ds->n)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: index %lld outside [0, %lld)", fn, (long long)index, (long long)ds->n);
    if (x_bytes != (size_t)ds->x_elems * 4 || y_bytes != (size_t)ds->y_elems * 4)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buffers must be %lld and %lld bytes", fn,
                          (long long)ds->x_elems * 4, (long long)ds->y_elems * 4);
    llm__dataset_gather(ds, &index, 1, x, y);
    return LLM_OK;
}

void llm_dataset_free(llm_dataset *ds) {
    if (!ds) return;
    llm__free(ds->x);
    llm__free(ds->y);
    llm__free(ds->in_dtype);
    llm__free(ds->in_ndim);
    llm__free(ds->in_shape);
    llm__free(ds);
}
