/* The losses: targets checked and converted for the compiled loss, the loss
 * of a batch's output on the device (with its gradient into the graph), and
 * the correct predictions that accuracy counts. */
#include <math.h>
#include "model_internal.h"
#include "ops.h"
#include "../core/backend_internal.h"

static int is_categorical(llm_loss l) {
    return l == LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY || l == LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS;
}

static int64_t classes_of(const llm_model *m) { return m->out_shape.d[m->out_shape.ndim - 1]; }

llm_status llm__model_prepare_targets(const llm_model *m, llm_dtype dt, int64_t y_elems, const void *y, int64_t B,
                                      void *out, const char *fn) {
    if (is_categorical(m->loss)) {
        int64_t C = classes_of(m), per = m->out_elems / C;
        if (y_elems != per)
            return llm__error(LLM_ERR_SHAPE, "%s: categorical targets need %lld label(s) per example, got %lld", fn,
                              (long long)per, (long long)y_elems);
        int32_t *lab = out;
        for (int64_t i = 0; i < B * per; i++) {
            double v = dt == LLM_DTYPE_I32 ? ((const int32_t *)y)[i] : ((const float *)y)[i];
            if (!(v >= 0 && v < (double)C) || v != floor(v))
                return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: label %g at %lld is not a class in [0, %lld)", fn, v,
                                  (long long)i, (long long)C);
            lab[i] = (int32_t)v;
        }
        return LLM_OK;
    }
    if (y_elems != m->out_elems)
        return llm__error(LLM_ERR_SHAPE, "%s: targets have %lld value(s) per example, the model outputs %lld", fn,
                          (long long)y_elems, (long long)m->out_elems);
    float *t = out;
    int binary = m->loss == LLM_LOSS_BINARY_CROSSENTROPY || m->loss == LLM_LOSS_BINARY_CROSSENTROPY_LOGITS;
    for (int64_t i = 0; i < B * y_elems; i++) {
        float v = dt == LLM_DTYPE_I32 ? (float)((const int32_t *)y)[i] : ((const float *)y)[i];
        if (!isfinite(v)) return llm__error(LLM_ERR_NUMERIC, "%s: target %lld is %g", fn, (long long)i, (double)v);
        if (binary && !(v >= 0.0f && v <= 1.0f))
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: binary target %g at %lld is outside [0, 1]", fn, (double)v,
                              (long long)i);
        t[i] = v;
    }
    return LLM_OK;
}

/* Loss of the output val y against device targets t; gradient into the
 * right value (the logits when the loss works on them) when grad is set. */
llm_status llm__model_loss(llm_model *m, llm__val *y, const void *t, int grad) {
    llm__graph *g = &m->graph;
    llm_backend *be = m->be;
    const llm__backend_ops *op = be->ops;
    float *d = NULL;
    llm__val *z = y;
    switch (m->loss) {
    case LLM_LOSS_BINARY_CROSSENTROPY:
        if (y->logits && y->logits_act == LLM__ACT_SIGMOID) {
            z = y->logits;
            if (grad) LLM__CHECK(llm__graph_grad(g, z, &d));
            return op->loss_bce_logits(be, z->numel, z->data, t, 1.0f, m->scalars, d);
        }
        if (grad) LLM__CHECK(llm__graph_grad(g, y, &d));
        return op->loss_bce_probs(be, y->numel, y->data, t, 1.0f, m->scalars, d);
    case LLM_LOSS_BINARY_CROSSENTROPY_LOGITS:
        if (grad) LLM__CHECK(llm__graph_grad(g, y, &d));
        return op->loss_bce_logits(be, y->numel, y->data, t, 1.0f, m->scalars, d);
    case LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY:
        if (y->logits && y->logits_act == LLM__ACT_SOFTMAX_MARK) {
            z = y->logits;
            if (grad) LLM__CHECK(llm__graph_grad(g, z, &d));
            return op->loss_sce_logits(be, llm__rows(z), llm__last(z), z->data, t, 1.0f, m->scalars, d);
        }
        if (grad) LLM__CHECK(llm__graph_grad(g, y, &d));
        return op->loss_sce_probs(be, llm__rows(y), llm__last(y), y->data, t, 1.0f, m->scalars, d);
    case LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS:
        if (grad) LLM__CHECK(llm__graph_grad(g, y, &d));
        return op->loss_sce_logits(be, llm__rows(y), llm__last(y), y->data, t, 1.0f, m->scalars, d);
    case LLM_LOSS_MSE:
        if (grad) LLM__CHECK(llm__graph_grad(g, y, &d));
        return op->loss_mse(be, y->numel, y->data, t, 1.0f, m->scalars, d);
    }
    return llm__error(LLM_ERR_INTERNAL, "unknown loss %d", (int)m->loss);
}

llm_status llm__model_upload_targets(llm_model *m, const void *y, int64_t B, void **dev) {
    int64_t n = is_categorical(m->loss) ? B * (m->out_elems / classes_of(m)) : B * m->out_elems;
    LLM__CHECK(llm__graph_alloc(&m->graph, (size_t)n * 4, dev));
    return m->be->ops->copy_h2d(m->be, *dev, y, (size_t)n * 4);
}

double llm__model_count_correct(const llm_model *m, const float *out, const void *y, int64_t B) {
    double correct = 0;
    if (is_categorical(m->loss)) {
        int64_t C = classes_of(m), rows = B * (m->out_elems / C);
        const int32_t *lab = y;
        for (int64_t r = 0; r < rows; r++) {
            const float *p = out + r * C;
            int64_t best = 0;
            for (int64_t c = 1; c < C; c++) if (p[c] > p[best]) best = c;
            correct += best == lab[r];
        }
        return correct / (double)(rows / B);
    }
    if (m->loss == LLM_LOSS_MSE) return NAN;
    float threshold = m->loss == LLM_LOSS_BINARY_CROSSENTROPY_LOGITS ? 0.0f : 0.5f;
    const float *t = y;
    int64_t n = B * m->out_elems;
    for (int64_t i = 0; i < n; i++) correct += (out[i] >= threshold) == (t[i] >= 0.5f);
    return correct / (double)m->out_elems;
}

