/* The Sequential model: layers, parameters in one buffer, one training step. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include "model_internal.h"
#include "init.h"
#include "ops.h"
#include "../core/tensor_internal.h"
#include "../core/rng.h"
#include "../core/backend_internal.h"



llm_status llm_model_sequential(llm_model **out, llm_backend *be) {
    static const char fn[] = "llm_model_sequential";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!be) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: backend is NULL", fn);
    llm_model *m = llm__calloc(1, sizeof *m);
    if (!m) return llm__oom(fn);
    m->be = be;
    llm__backend_retain(be); /* released last in llm_model_free */
    m->seed = 1;
    llm__graph_init(&m->graph, be);
    pthread_mutex_init(&m->infer_lock, NULL);
    *out = m;
    return LLM_OK;
}

llm_status llm__model_take_layer(llm_model *m, llm_layer *l, const char *fn) {
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 8;
        llm_layer **p = llm__realloc(m->layers, (size_t)cap * sizeof *p);
        if (!p) { llm_layer_free(l); return llm__oom(fn); }
        m->layers = p;
        m->cap_layers = cap;
    }
    int same = 0;
    for (int i = 0; i < m->n_layers; i++) same += m->layers[i]->vt == l->vt;
    snprintf(l->name, sizeof l->name, "%s_%d", l->vt->kind, same);
    l->seed = llm__rng_derive(0x6c6c6d, (uint64_t)m->n_layers);
    l->owner = m;
    m->layers[m->n_layers++] = l;
    return LLM_OK;
}

void llm__model_bind_tied(llm_model *m, llm_layer *l, int pos) {
    l->tied = l->vt->shared ? l->vt->shared(l, m->layers, pos) : NULL;
}

/* Sequential: the layer reads the one added before it (a chain of nodes). */
llm_status llm_model_add(llm_model *m, llm_layer *l) {
    static const char fn[] = "llm_model_add";
    if (!l) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: layer is NULL", fn);
    if (l->owner == m && m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: this layer is already in the model", fn);
    if (l->owner) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: this layer belongs to another model", fn);
    if (!m) { llm_layer_free(l); return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn); }
    if (m->ensemble) { llm_layer_free(l); return llm__refuse_ensemble(m, fn); }
    if (l->status != LLM_OK) {
        llm_status s = llm__error(l->status, "%s: %s", fn, llm_layer_error(l));
        llm_layer_free(l);
        return s;
    }
    if (m->built) {
        llm_layer_free(l);
        return llm__error(LLM_ERR_STATE, "%s: the model is already built; add every layer before build/fit", fn);
    }
    if (m->topo.functional) {
        llm_layer_free(l);
        return llm__error(LLM_ERR_STATE, "%s: the model is functional (llm_model_functional); apply layers with llm_model_apply", fn);
    }
    if (llm__layer_is_merge(l)) {
        llm_layer_free(l);
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: a merge layer needs several inputs; build a functional model (graph.h)", fn);
    }
    llm_status s = llm__topo_chain_input(m);
    if (s != LLM_OK) { llm_layer_free(l); return s; }
    llm_node *prev = m->topo.nodes[m->topo.n_nodes - 1];
    LLM__CHECK(llm__model_take_layer(m, l, fn));
    s = llm__topo_apply(m, l, 1, &prev, NULL, fn);
    if (s != LLM_OK) { m->n_layers--; llm_layer_free(l); }
    return s;
}

llm_status llm_model_set_seed(llm_model *m, uint64_t seed) {
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_set_seed: model is NULL");
    if (m->built) return llm__error(LLM_ERR_STATE, "llm_model_set_seed: set the seed before the model is built");
    m->seed = seed;
    return LLM_OK;
}

static llm_status add_params_of(llm_model *m, llm_layer *l, int *cap) {
    for (int k = 0; k < l->n_params; k++) {
        if (m->n_params == *cap) {
            int c = *cap ? 2 * *cap : 16;
            llm__named_param *p = llm__realloc(m->params, (size_t)c * sizeof *p);
            if (!p) return llm__oom("llm_model_build");
            m->params = p;
            *cap = c;
        }
        llm__named_param *np = &m->params[m->n_params++];
        np->p = &l->params[k];
        snprintf(np->name, sizeof np->name, "%s.%s", l->name, l->params[k].name);
    }
    for (int i = 0; i < 2; i++)
        if (l->inner[i]) LLM__CHECK(add_params_of(m, l->inner[i], cap));
    return LLM_OK;
}

static void release_params(llm_model *m) {
    llm_backend *be = m->be;
    if (m->w) be->ops->free(be, m->w);
    if (m->gw) be->ops->free(be, m->gw);
    if (m->m1) be->ops->free(be, m->m1);
    if (m->m2) be->ops->free(be, m->m2);
    if (m->es_best_w) be->ops->free(be, m->es_best_w);
    m->w = m->gw = m->m1 = m->m2 = m->es_best_w = NULL;
    llm__free(m->params);
    m->params = NULL;
    m->n_params = 0;
}

llm_status llm_model_build(llm_model *m, llm_dtype dt, int ndim, const int64_t *shape) {
    static const char fn[] = "llm_model_build";
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (m->built) return llm__error(LLM_ERR_STATE, "%s: the model is already built", fn);
    if (m->n_layers == 0) return llm__error(LLM_ERR_STATE, "%s: the model has no layers", fn);
    if (m->topo.functional) {
        /* the shapes come from the declared inputs; given ones must agree */
        if (ndim != 0 || shape) {
            if (m->topo.n_inputs != 1)
                return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model has %d inputs; build it with ndim 0 and shape NULL",
                                  fn, m->topo.n_inputs);
            const llm__shape *want = &m->topo.inputs[0]->shape;
            int same = shape && dt == want->dtype && ndim == want->ndim;
            for (int i = 0; same && i < ndim; i++) same = shape[i] == want->d[i];
            if (!same) return llm__error(LLM_ERR_SHAPE, "%s: the shape given differs from the model's input", fn);
        }
        LLM__CHECK(llm__topo_build(m, fn));
    } else {
        if (ndim < 1 || ndim > LLM_MAX_DIMS - 1)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ndim = %d must be in [1, %d] (per sample, without the batch)", fn,
                              ndim, LLM_MAX_DIMS - 1);
        int64_t full[LLM_MAX_DIMS], numel;
        size_t bytes;
        full[0] = 1;
        if (!shape) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: shape is NULL", fn);
        for (int i = 0; i < ndim; i++) full[i + 1] = shape[i];
        LLM__CHECK(llm__shape_check(fn, dt, ndim + 1, full, &numel, &bytes));
        llm__shape *in = &m->topo.inputs[0]->shape;
        in->dtype = dt;
        in->ndim = ndim;
        for (int i = 0; i < ndim; i++) in->d[i] = shape[i];
        LLM__CHECK(llm__topo_build(m, fn));
    }

    int cap = 0;
    for (int i = 0; i < m->n_layers; i++) {
        llm_status s = add_params_of(m, m->layers[i], &cap);
        if (s != LLM_OK) { release_params(m); return s; }
    }
    int64_t total = 0;
    for (int i = 0; i < m->n_params; i++) {
        llm__param *p = m->params[i].p;
        /* 16-float alignment keeps every parameter cache-line aligned */
        total = (total + 15) & ~(int64_t)15;
        p->offset = (size_t)total;
        total += p->numel;
    }
    int64_t used = 0;
    for (int i = 0; i < m->n_params; i++) used += m->params[i].p->numel;
    if (m->param_bytes_limit && (uint64_t)used * 4 > m->param_bytes_limit) {
        release_params(m);
        return llm__error(LLM_ERR_FORMAT, "%s: the architecture needs %lld bytes of weights but the file holds %zu",
                          fn, (long long)used * 4, m->param_bytes_limit);
    }
    m->n_scalars = total;
    size_t nbytes = (size_t)(total ? total : 1) * 4;
    float *host = llm__calloc((size_t)(total ? total : 1), 4);
    if (!host) { release_params(m); return llm__oom(fn); }
    llm_status s = LLM_OK;
    for (int i = 0; i < m->n_params && s == LLM_OK; i++) {
        llm__param *p = m->params[i].p;
        s = llm__init_param(p, host + p->offset, llm__rng_derive(m->seed, (uint64_t)i + 1));
    }
    llm_backend *be = m->be;
    if (s == LLM_OK) s = be->ops->alloc(be, nbytes, (void **)&m->w);
    if (s == LLM_OK) s = be->ops->alloc(be, nbytes, (void **)&m->gw);
    if (s == LLM_OK) s = be->ops->copy_h2d(be, m->w, host, nbytes);
    if (s == LLM_OK) s = be->ops->memset_zero(be, m->gw, nbytes);
    if (s == LLM_OK && !m->scalars) s = be->ops->alloc(be, 64, (void **)&m->scalars);
    llm__free(host);
    if (s != LLM_OK) { release_params(m); return s; }
    for (int i = 0; i < m->n_params; i++) {
        llm__param *p = m->params[i].p;
        p->data = m->w + p->offset;
        p->grad = m->gw + p->offset;
    }
    m->built = 1;
    return LLM_OK;
}

llm_status llm__model_ensure_built(llm_model *m, llm_dtype dt, int ndim, const int64_t *shape, const char *fn) {
    if (m->topo.n_inputs > 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model has %d inputs; pass one tensor per input (llm_model_predict_inputs, llm_dataset_from_inputs)",
                          fn, m->topo.n_inputs);
    if (m->topo.functional) {
        int nd = ndim;
        LLM__CHECK(llm__model_ensure_built_inputs(m, 1, &dt, &nd, (const int64_t (*)[LLM_MAX_DIMS])shape, fn));
        return LLM_OK;
    }
    if (!m->built) {
        llm_status s = llm_model_build(m, dt, ndim - 1, shape + 1);
        if (s != LLM_OK) return s;
    }
    if (dt != m->in_shape.dtype)
        return llm__error(LLM_ERR_DTYPE, "%s: input is %s but the model takes %s", fn,
                          dt == LLM_DTYPE_I32 ? "int32" : "float", m->in_shape.dtype == LLM_DTYPE_I32 ? "int32" : "float");
    int same = ndim - 1 == m->in_shape.ndim;
    for (int i = 0; same && i < m->in_shape.ndim; i++) same = shape[i + 1] == m->in_shape.d[i];
    if (!same) {
        llm__shape got = { dt, ndim - 1, {0} };
        for (int i = 0; i + 1 < ndim && i < LLM_MAX_DIMS; i++) got.d[i] = shape[i + 1];
        char a[96], b[96];
        llm__shape_str(&got, a, sizeof a);
        llm__shape_str(&m->in_shape, b, sizeof b);
        return llm__error(LLM_ERR_SHAPE, "%s: input shape %s does not match the model's input %s", fn, a, b);
    }
    return LLM_OK;
}

/* ---- parameters ---- */

llm_status llm_model_epochs_done(const llm_model *m, int *epochs) {
    if (!m || !epochs) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_epochs_done: NULL argument");
    *epochs = m->epochs_done;
    return LLM_OK;
}

llm_status llm_model_param_count(const llm_model *m, int64_t *count) {
    if (!m || !count) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_param_count: NULL argument");
    if (m->ensemble) return llm__ensemble_param_count(m, count);
    if (!m->built) return llm__error(LLM_ERR_STATE, "llm_model_param_count: the model is not built yet");
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += m->params[i].p->numel;
    *count = n;
    return LLM_OK;
}

llm_status llm_model_num_params(const llm_model *m, int *count) {
    if (!m || !count) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_num_params: NULL argument");
    LLM__CHECK(llm__refuse_ensemble(m, "llm_model_num_params"));
    if (!m->built) return llm__error(LLM_ERR_STATE, "llm_model_num_params: the model is not built yet");
    *count = m->n_params;
    return LLM_OK;
}

llm_status llm_model_param_info(const llm_model *m, int index, const char **name, int *ndim, int64_t *shape) {
    static const char fn[] = "llm_model_param_info";
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (!m->built) return llm__error(LLM_ERR_STATE, "%s: the model is not built yet", fn);
    if (index < 0 || index >= m->n_params)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: index %d outside [0, %d)", fn, index, m->n_params);
    const llm__param *p = m->params[index].p;
    if (name) *name = m->params[index].name;
    if (ndim) *ndim = p->ndim;
    if (shape) for (int i = 0; i < p->ndim; i++) shape[i] = p->shape[i];
    return LLM_OK;
}

static llm_status find_param(const llm_model *m, const char *name, size_t bytes, const char *fn,
                             const llm__param **out) {
    if (!m || !name) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (!m->built) return llm__error(LLM_ERR_STATE, "%s: the model is not built yet", fn);
    for (int i = 0; i < m->n_params; i++) {
        if (strcmp(m->params[i].name, name) != 0) continue;
        const llm__param *p = m->params[i].p;
        if (bytes != (size_t)p->numel * 4)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s has %lld floats (%lld bytes), buffer has %zu bytes", fn,
                              name, (long long)p->numel, (long long)p->numel * 4, bytes);
        *out = p;
        return LLM_OK;
    }
    return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model has no parameter named '%s'", fn, name);
}

llm_status llm_model_get_param(const llm_model *m, const char *name, float *dst, size_t bytes) {
    const llm__param *p;
    if (!dst) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_get_param: dst is NULL");
    LLM__CHECK(find_param(m, name, bytes, "llm_model_get_param", &p));
    return m->be->ops->copy_d2h(m->be, dst, p->data, bytes);
}

llm_status llm_model_get_grad(const llm_model *m, const char *name, float *dst, size_t bytes) {
    const llm__param *p;
    if (!dst) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_get_grad: dst is NULL");
    LLM__CHECK(find_param(m, name, bytes, "llm_model_get_grad", &p));
    return m->be->ops->copy_d2h(m->be, dst, p->grad, bytes);
}

llm_status llm_model_set_param(llm_model *m, const char *name, const float *src, size_t bytes) {
    static const char fn[] = "llm_model_set_param";
    const llm__param *p;
    if (!src) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: src is NULL", fn);
    LLM__CHECK(find_param(m, name, bytes, fn, &p));
    for (int64_t i = 0; i < p->numel; i++)
        if (!isfinite(src[i]))
            return llm__error(LLM_ERR_NUMERIC, "%s: %s[%lld] is %g", fn, name, (long long)i, (double)src[i]);
    return m->be->ops->copy_h2d(m->be, p->data, src, bytes);
}

/* ---- compile ---- */

llm_status llm_model_compile(llm_model *m, llm_loss loss, const llm_optimizer *opt, unsigned metrics) {
    static const char fn[] = "llm_model_compile";
    if (!m || !opt) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, m ? "optimizer" : "model");
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if ((int)loss < LLM_LOSS_BINARY_CROSSENTROPY || (int)loss > LLM_LOSS_MSE)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown loss %d", fn, (int)loss);
    if (metrics & ~LLM_METRIC_ACCURACY)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown metric flags 0x%x", fn, metrics & ~LLM_METRIC_ACCURACY);
    if (m->n_layers == 0) return llm__error(LLM_ERR_STATE, "%s: the model has no layers", fn);
    if (m->topo.n_outputs > 1)
        return llm__error(LLM_ERR_STATE, "%s: the model has %d outputs; training needs one (merge them with llm_layer_concatenate)",
                          fn, m->topo.n_outputs);
    m->loss = loss;
    m->opt = opt->o;
    m->metrics = metrics;
    m->step = 0;
    m->epochs_done = 0;
    m->es_best_value = NAN;
    m->es_best_epoch = -1;
    m->es_wait = 0;
    m->compiled = 1;
    /* moments are (re)allocated lazily at the first update, when the size is known */
    if (m->m1) { m->be->ops->free(m->be, m->m1); m->m1 = NULL; }
    if (m->m2) { m->be->ops->free(m->be, m->m2); m->m2 = NULL; }
    return LLM_OK;
}

/* ---- one step ---- */

llm_status llm__model_stage(llm_model *m, int64_t batch) {
    if (batch <= m->staged_batch) return LLM_OK;
    size_t xb = (size_t)(batch * m->in_elems) * 4, yb = (size_t)(batch * m->out_elems) * 4;
    void *x = llm__realloc(m->hx, xb), *y;
    if (!x) return llm__oom("model");
    m->hx = x;
    y = llm__realloc(m->hy, yb);
    if (!y) return llm__oom("model");
    m->hy = y;
    y = llm__realloc(m->hout, yb);
    if (!y) return llm__oom("model");
    m->hout = y;
    m->staged_batch = batch;
    return LLM_OK;
}

llm_status llm__model_check_inputs(const llm_model *m, const void *x, int64_t B, const char *fn) {
    return llm__topo_check_inputs(m, x, B, fn);
}

static llm_status forward(llm_model *m, llm__graph *g, llm__val **slots, const void *x, int64_t B, int training,
                          llm__val **y) {
    LLM__CHECK(llm__graph_reset(g, training));
    g->dropout_key = llm__rng_derive(m->seed ^ 0x64726f70ULL, (uint64_t)m->step);
    if (m->dropout_stream) g->dropout_key = llm__rng_derive(g->dropout_key, m->dropout_stream);
    return llm__topo_forward(m, g, slots, x, B, y);
}

llm_status llm__model_step(llm_model *m, const void *x, const void *y, int64_t B, int update, double *loss_out,
                           double *correct) {
    llm_backend *be = m->be;
    const llm__backend_ops *op = be->ops;
    llm__val *out;
    void *t;
    LLM__CHECK(forward(m, &m->graph, m->slots, x, B, 1, &out));
    LLM__CHECK(llm__model_upload_targets(m, y, B, &t));
    LLM__CHECK(op->memset_zero(be, m->gw, (size_t)m->n_scalars * 4));
    LLM__CHECK(llm__model_loss(m, out, t, 1));
    float host_loss;
    LLM__CHECK(op->copy_d2h(be, &host_loss, m->scalars, 4));
    if (!isfinite(host_loss))
        return llm__error(LLM_ERR_NUMERIC, "training step %lld: the loss is %g; weights left unchanged",
                          (long long)m->step, (double)host_loss);
    LLM__CHECK(llm__graph_backward(&m->graph));
    if (correct) {
        if (m->metrics & LLM_METRIC_ACCURACY) {
            LLM__CHECK(op->copy_d2h(be, m->hout, out->data, (size_t)(B * m->out_elems) * 4));
            *correct = llm__model_count_correct(m, m->hout, y, B);
        } else {
            *correct = NAN;
        }
    }
    *loss_out = host_loss;
    if (!update) return LLM_OK;
    return llm__model_update(m);
}

llm_status llm__model_update(llm_model *m) {
    llm_backend *be = m->be;
    const llm__backend_ops *op = be->ops;
    float sumsq;
    LLM__CHECK(op->sum_squares(be, m->n_scalars, m->gw, m->scalars + 1));
    LLM__CHECK(op->copy_d2h(be, &sumsq, m->scalars + 1, 4));
    if (!isfinite(sumsq))
        return llm__error(LLM_ERR_NUMERIC, "training step %lld: the gradients contain NaN or infinity; weights left unchanged",
                          (long long)m->step);
    float scale = 1.0f;
    if (m->opt.clip_norm > 0.0f) {
        float norm = sqrtf(sumsq);
        if (norm > m->opt.clip_norm) scale = m->opt.clip_norm / (norm + 1e-6f);
    }
    size_t bytes = (size_t)m->n_scalars * 4;
    if (!m->m1) {
        LLM__CHECK(op->alloc(be, bytes, (void **)&m->m1));
        LLM__CHECK(op->memset_zero(be, m->m1, bytes));
    }
    if (!m->m2) {
        LLM__CHECK(op->alloc(be, bytes, (void **)&m->m2));
        LLM__CHECK(op->memset_zero(be, m->m2, bytes));
    }
    llm__opt_update u;
    llm__optimizer_update_args(&m->opt, m->step, m->n_scalars, scale, &u);
    LLM__CHECK(op->optimizer_update(be, &u, m->w, m->gw, m->m1, m->m2));
    m->step++;
    return LLM_OK;
}

llm_status llm__model_infer(llm_model *m, const void *x, const void *y, int64_t B, double *loss_out) {
    llm__val *out;
    LLM__CHECK(forward(m, &m->graph, m->slots, x, B, 0, &out));
    if (y) {
        void *t;
        float host_loss;
        LLM__CHECK(llm__model_upload_targets(m, y, B, &t));
        LLM__CHECK(llm__model_loss(m, out, t, 0));
        LLM__CHECK(m->be->ops->copy_d2h(m->be, &host_loss, m->scalars, 4));
        *loss_out = host_loss;
    }
    return llm__topo_read_outputs(m, m->slots, B, m->hout);
}

/* ---- inference contexts: what lets several threads predict at once ---- */

llm_status llm__infer_acquire(llm_model *m, int64_t batch, llm__infer_ctx **out) {
    pthread_mutex_lock(&m->infer_lock);
    llm__infer_ctx *c = m->infer_free;
    if (c) m->infer_free = c->next;
    pthread_mutex_unlock(&m->infer_lock);
    if (!c) {
        c = llm__calloc(1, sizeof *c);
        if (!c) return llm__oom("model inference");
        llm__graph_init(&c->graph, m->be);
        /* the node count is fixed once the model is built */
        c->slots = llm__calloc((size_t)m->topo.n_nodes + 1, sizeof *c->slots);
        if (!c->slots) { llm__graph_release(&c->graph); llm__free(c); return llm__oom("model inference"); }
    }
    if (batch > c->cap) {
        void *x = llm__realloc(c->hx, (size_t)(batch * m->in_elems) * 4);
        if (x) c->hx = x;
        float *o = x ? llm__realloc(c->hout, (size_t)(batch * m->out_elems) * 4) : NULL;
        if (!o) { llm__infer_release(m, c); return llm__oom("model inference"); }
        c->hout = o;
        c->cap = batch;
    }
    *out = c;
    return LLM_OK;
}

void llm__infer_release(llm_model *m, llm__infer_ctx *c) {
    pthread_mutex_lock(&m->infer_lock);
    c->next = m->infer_free;
    m->infer_free = c;
    pthread_mutex_unlock(&m->infer_lock);
}

static void infer_free_all(llm_model *m) {
    while (m->infer_free) {
        llm__infer_ctx *c = m->infer_free;
        m->infer_free = c->next;
        llm__graph_release(&c->graph);
        llm__free(c->hx);
        llm__free(c->hout);
        llm__free(c->ids);
        llm__free(c->slots);
        llm__free(c);
    }
}

llm_status llm__infer_run(llm_model *m, llm__infer_ctx *c, int64_t B) {
    llm__val *out;
    LLM__CHECK(forward(m, &c->graph, c->slots, c->hx, B, 0, &out));
    return llm__topo_read_outputs(m, c->slots, B, c->hout);
}

/* ---- batch entry points on tensors ---- */

llm_status llm__model_stage_tensors(llm_model *m, const llm_tensor *x, const llm_tensor *y, const char *fn,
                                   int64_t *B) {
    if (!m || !x || !y) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!m->compiled) return llm__error(LLM_ERR_STATE, "%s: compile the model first (llm_model_compile)", fn);
    int64_t xs[LLM_MAX_DIMS], ys[LLM_MAX_DIMS], nx, ny;
    int xd, yd;
    llm_dtype xt, yt;
    LLM__CHECK(llm_tensor_shape(x, xs));
    LLM__CHECK(llm_tensor_ndim(x, &xd));
    LLM__CHECK(llm_tensor_dtype(x, &xt));
    LLM__CHECK(llm_tensor_shape(y, ys));
    LLM__CHECK(llm_tensor_ndim(y, &yd));
    LLM__CHECK(llm_tensor_dtype(y, &yt));
    LLM__CHECK(llm_tensor_numel(x, &nx));
    LLM__CHECK(llm_tensor_numel(y, &ny));
    if (xd < 2) return llm__error(LLM_ERR_SHAPE, "%s: x must be [batch, ...], got 1 dimension", fn);
    if (ys[0] != xs[0])
        return llm__error(LLM_ERR_SHAPE, "%s: %lld inputs but %lld targets", fn, (long long)xs[0], (long long)ys[0]);
    LLM__CHECK(llm__model_ensure_built(m, xt, xd, xs, fn));
    LLM__CHECK(llm__model_stage(m, xs[0]));
    LLM__CHECK(llm_tensor_to_host(x, m->hx, (size_t)nx * 4));
    LLM__CHECK(llm__model_check_inputs(m, m->hx, xs[0], fn));
    /* raw targets go through hout (free until the forward pass) before
     * conversion, so a step allocates nothing once the batch size is seen */
    if (ny > xs[0] * m->out_elems)
        return llm__error(LLM_ERR_SHAPE, "%s: targets have %lld value(s) per example, the model outputs %lld", fn,
                          (long long)(ny / ys[0]), (long long)m->out_elems);
    LLM__CHECK(llm_tensor_to_host(y, m->hout, (size_t)ny * 4));
    *B = xs[0];
    return llm__model_prepare_targets(m, yt, ny / ys[0], m->hout, xs[0], m->hy, fn);
}

llm_status llm_model_compute_gradients(llm_model *m, const llm_tensor *x, const llm_tensor *y, float *loss_out) {
    static const char fn[] = "llm_model_compute_gradients";
    int64_t B;
    LLM__CHECK(llm__model_stage_tensors(m, x, y, fn, &B));
    double l;
    LLM__CHECK(llm__model_step(m, m->hx, m->hy, B, 0, &l, NULL));
    if (loss_out) *loss_out = (float)l;
    return LLM_OK;
}

llm_status llm_model_train_on_batch(llm_model *m, const llm_tensor *x, const llm_tensor *y, float *loss_out,
                                    float *accuracy) {
    static const char fn[] = "llm_model_train_on_batch";
    int64_t B;
    LLM__CHECK(llm__model_stage_tensors(m, x, y, fn, &B));
    double l, correct;
    LLM__CHECK(llm__model_step(m, m->hx, m->hy, B, 1, &l, &correct));
    if (loss_out) *loss_out = (float)l;
    if (accuracy) *accuracy = (float)(correct / (double)B);
    return LLM_OK;
}

/* ---- summary ---- */

void llm__summary_append(char *buf, size_t len, size_t *off, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (*off < len) snprintf(buf + *off, len - *off, "%s", tmp);
    *off += (size_t)n;
}

void llm__summary_thousands(int64_t v, char *out, size_t len) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        out[o++] = digits[i];
        if ((n - 1 - i) % 3 == 0 && i + 1 < n && o + 1 < len) out[o++] = ',';
    }
    out[o] = '\0';
}

int64_t llm__layer_param_count(const llm_layer *l) {
    int64_t n = 0;
    for (int k = 0; k < l->n_params; k++) n += l->params[k].numel;
    for (int i = 0; i < 2; i++) if (l->inner[i]) n += llm__layer_param_count(l->inner[i]);
    return n;
}

/* An ensemble's summary: each member's, then the total. */
static llm_status ensemble_summary(const llm_model *m, char *buf, size_t len, size_t *needed) {
    size_t off = 0;
    int64_t total;
    LLM__CHECK(llm__ensemble_param_count(m, &total));
    llm__summary_append(buf, len, &off, "Ensemble: the mean of %d model(s)' outputs\n", m->n_members);
    for (int i = 0; i < m->n_members; i++) {
        llm__summary_append(buf, len, &off, "Member %d (seq_len %d):\n", i, m->members[i]->vectorize.seq_len);
        size_t n = 0;
        LLM__CHECK(llm_model_summary(m->members[i], off < len ? buf + off : NULL, off < len ? len - off : 0, &n));
        off += n;
    }
    char t[32];
    llm__summary_thousands(total, t, sizeof t);
    llm__summary_append(buf, len, &off, "Ensemble params: %s\n", t);
    if (needed) *needed = off;
    return LLM_OK;
}

llm_status llm_model_summary(const llm_model *m, char *buf, size_t len, size_t *needed) {
    static const char fn[] = "llm_model_summary";
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    if (!buf && len) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buf is NULL but len is %zu", fn, len);
    if (m->ensemble) return ensemble_summary(m, buf, len, needed);
    if (!m->built) return llm__error(LLM_ERR_STATE, "%s: build the model first (llm_model_build or fit)", fn);
    if (m->topo.functional) return llm__topo_summary(m, buf, len, needed);
    size_t off = 0;
    const char *rule = "_________________________________________________________________";
    const char *dbl = "=================================================================";
    llm__summary_append(buf, len, &off, "Model: \"sequential\"\n%s\n %-28s%-26s%s\n%s\n", rule, "Layer (type)", "Output Shape", "Param #", dbl);
    int64_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const llm_layer *l = m->layers[i];
        char label[80], shape[96], count[32];
        snprintf(label, sizeof label, "%s (%s)", l->name, l->vt->kind);
        llm__shape s = l->out;
        size_t o = (size_t)snprintf(shape, sizeof shape, "(None");
        for (int d = 0; d < s.ndim && o < sizeof shape; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, ", %lld", (long long)s.d[d]);
        if (o < sizeof shape) snprintf(shape + o, sizeof shape - o, ")");
        int64_t p = llm__layer_param_count(l);
        total += p;
        llm__summary_thousands(p, count, sizeof count);
        llm__summary_append(buf, len, &off, " %-28s%-26s%s\n", label, shape, count);
    }
    char t[32];
    llm__summary_thousands(total, t, sizeof t);
    llm__summary_append(buf, len, &off, "%s\nTotal params: %s\nTrainable params: %s\nNon-trainable params: 0\n%s\n", dbl, t, t, rule);
    if (needed) *needed = off;
    return LLM_OK;
}

void llm_model_free(llm_model *m) {
    if (!m) return;
    llm__ensemble_release(m);
    for (int i = 0; i < m->n_layers; i++) llm_layer_free(m->layers[i]);
    llm__free(m->layers);
    llm__topo_release(&m->topo);
    llm__free(m->slots);
    release_params(m);
    if (m->scalars) m->be->ops->free(m->be, m->scalars);
    llm__graph_release(&m->graph);
    llm__free(m->hx);
    llm__free(m->hy);
    llm__free(m->hout);
    llm__model_release_pipeline(m);
    infer_free_all(m);
    pthread_mutex_destroy(&m->infer_lock);
    llm__backend_release(m->be);
    llm__free(m);
}

llm_status llm_model_copy_weights(llm_model *dst, const llm_model *src, int *copied) {
    static const char fn[] = "llm_model_copy_weights";
    if (!dst || !src) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL model", fn);
    LLM__CHECK(llm__refuse_ensemble(dst, fn));
    LLM__CHECK(llm__refuse_ensemble(src, fn));
    if (!dst->built || !src->built) return llm__error(LLM_ERR_STATE, "%s: both models must be built", fn);
    int n = 0;
    size_t cap = 0;
    float *host = NULL;
    llm_status s = LLM_OK;
    for (int i = 0; i < dst->n_params && s == LLM_OK; i++) {
        const llm__param *d = dst->params[i].p;
        for (int j = 0; j < src->n_params; j++) {
            const llm__param *q = src->params[j].p;
            if (strcmp(dst->params[i].name, src->params[j].name) != 0) continue;
            if (q->shape[0] != d->shape[0] || q->shape[1] != d->shape[1] || q->ndim != d->ndim) break;
            size_t bytes = (size_t)d->numel * 4;
            if (bytes > cap) {
                float *h = llm__realloc(host, bytes);
                if (!h) { s = llm__oom(fn); break; }
                host = h;
                cap = bytes;
            }
            s = src->be->ops->copy_d2h(src->be, host, q->data, bytes);
            if (s == LLM_OK) s = dst->be->ops->copy_h2d(dst->be, d->data, host, bytes);
            if (s == LLM_OK) n++;
            break;
        }
    }
    llm__free(host);
    if (copied) *copied = n;
    return s;
}
