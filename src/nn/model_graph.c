/* Models as graphs of layers: the functional API (include/llm/graph.h), and
 * the node list every model runs on (a Sequential model's is a chain). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include "model_internal.h"
#include "model_graph.h"
#include "../core/tensor_internal.h"

#define MAX_INPUTS LLM__GRAPH_MAX_INPUTS

/* ---- nodes ---- */

static llm_status new_node(llm_model *m, llm_layer *l, int n_in, llm_node *const *in, llm_node **out, const char *fn) {
    llm__model_graph *gd = &m->topo;
    if (gd->n_nodes == gd->cap_nodes) {
        int cap = gd->cap_nodes ? 2 * gd->cap_nodes : 16;
        llm_node **p = llm__realloc(gd->nodes, (size_t)cap * sizeof *p);
        if (!p) return llm__oom(fn);
        gd->nodes = p;
        gd->cap_nodes = cap;
    }
    llm_node *nd = llm__calloc(1, sizeof *nd);
    if (!nd) return llm__oom(fn);
    if (n_in && !(nd->in = llm__malloc((size_t)n_in * sizeof *nd->in))) { llm__free(nd); return llm__oom(fn); }
    nd->model = m;
    nd->index = gd->n_nodes;
    nd->layer = l;
    nd->n_in = n_in;
    for (int k = 0; k < n_in; k++) nd->in[k] = in[k];
    gd->nodes[gd->n_nodes++] = nd;
    *out = nd;
    return LLM_OK;
}

static llm_status add_input_node(llm_model *m, llm_node **out, const char *fn) {
    llm__model_graph *gd = &m->topo;
    if (gd->n_inputs == MAX_INPUTS) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: a model has at most %d inputs", fn, MAX_INPUTS);
    if (gd->n_inputs == gd->cap_inputs) {
        int cap = gd->cap_inputs ? 2 * gd->cap_inputs : 4;
        llm_node **p = llm__realloc(gd->inputs, (size_t)cap * sizeof *p);
        if (!p) return llm__oom(fn);
        gd->inputs = p;
        gd->cap_inputs = cap;
    }
    LLM__CHECK(new_node(m, NULL, 0, NULL, out, fn));
    (*out)->input_index = gd->n_inputs;
    gd->inputs[gd->n_inputs++] = *out;
    return LLM_OK;
}

static llm_status set_outputs(llm_model *m, int n, llm_node *const *outs, const char *fn) {
    llm__model_graph *gd = &m->topo;
    llm_node **p = llm__malloc((size_t)n * sizeof *p);
    if (!p) return llm__oom(fn);
    for (int k = 0; k < n; k++) p[k] = outs[k];
    llm__free(gd->outputs);
    gd->outputs = p;
    gd->n_outputs = n;
    return LLM_OK;
}

llm_status llm__topo_chain_input(llm_model *m) {
    llm_node *in;
    return m->topo.n_nodes ? LLM_OK : add_input_node(m, &in, "llm_model_add");
}

llm_status llm__topo_apply(llm_model *m, llm_layer *l, int n, llm_node *const *in, llm_node **out, const char *fn) {
    llm__model_graph *gd = &m->topo;
    /* a chain's output is its last node: room for it first, so that a
       failure leaves the graph as it was */
    if (!gd->functional && !gd->outputs && !(gd->outputs = llm__malloc(sizeof *gd->outputs))) return llm__oom(fn);
    llm_node *nd;
    LLM__CHECK(new_node(m, l, n, in, &nd, fn));
    if (!gd->functional) {
        gd->outputs[0] = nd;
        gd->n_outputs = 1;
    }
    if (out) *out = nd;
    return LLM_OK;
}

void llm__topo_release(llm__model_graph *gd) {
    for (int i = 0; i < gd->n_nodes; i++) {
        llm__free(gd->nodes[i]->in);
        llm__free(gd->nodes[i]);
    }
    llm__free(gd->nodes);
    llm__free(gd->inputs);
    llm__free(gd->outputs);
    memset(gd, 0, sizeof *gd);
}

/* ---- the functional API ---- */

llm_status llm_model_functional(llm_model **out, llm_backend *be) {
    LLM__CHECK(llm_model_sequential(out, be));
    (*out)->topo.functional = 1;
    return LLM_OK;
}

/* Common checks of the calls that add to a functional model. */
static llm_status check_building(const llm_model *m, const char *fn) {
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (!m->topo.functional)
        return llm__error(LLM_ERR_STATE, "%s: the model is Sequential (llm_model_sequential); create it with llm_model_functional", fn);
    if (m->built) return llm__error(LLM_ERR_STATE, "%s: the model is already built; finish the graph before build/fit", fn);
    return LLM_OK;
}

/* A node given by the caller must be one of this model's. */
static llm_status check_node(const llm_model *m, const llm_node *nd, const char *what, const char *fn) {
    if (!nd) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, what);
    if (nd->model != m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s belongs to another model", fn, what);
    return LLM_OK;
}

llm_status llm_model_input(llm_model *m, llm_dtype dtype, int ndim, const int64_t *shape, llm_node **out) {
    static const char fn[] = "llm_model_input";
    if (out) *out = NULL;
    LLM__CHECK(check_building(m, fn));
    if (!out || !shape) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, out ? "shape" : "out");
    if (dtype != LLM_DTYPE_F32 && dtype != LLM_DTYPE_I32)
        return llm__error(LLM_ERR_DTYPE, "%s: an input is int32 (token ids) or float32", fn);
    if (ndim < 1 || ndim > LLM_MAX_DIMS - 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ndim = %d must be in [1, %d] (per sample, without the batch)", fn, ndim,
                          LLM_MAX_DIMS - 1);
    int64_t full[LLM_MAX_DIMS], numel;
    size_t bytes;
    full[0] = 1;
    for (int i = 0; i < ndim; i++) full[i + 1] = shape[i];
    LLM__CHECK(llm__shape_check(fn, dtype, ndim + 1, full, &numel, &bytes));
    llm_node *nd;
    LLM__CHECK(add_input_node(m, &nd, fn));
    nd->shape.dtype = dtype;
    nd->shape.ndim = ndim;
    for (int i = 0; i < ndim; i++) nd->shape.d[i] = shape[i];
    *out = nd;
    return LLM_OK;
}

/* Takes a layer for an application: a new one joins the model (which owns
 * it from then on, also when the application fails); one already in this
 * model is shared. *fresh says which, so a failure can undo the join. */
static llm_status take_layer(llm_model *m, llm_layer *l, int *fresh, const char *fn) {
    *fresh = 0;
    if (l->owner == m) return LLM_OK;
    if (l->owner) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: layer %s belongs to another model", fn, l->name);
    if (l->status != LLM_OK) {
        llm_status s = llm__error(l->status, "%s: %s", fn, llm_layer_error(l));
        llm_layer_free(l);
        return s;
    }
    LLM__CHECK(llm__model_take_layer(m, l, fn)); /* frees l on failure */
    *fresh = 1;
    return LLM_OK;
}

/* Gives back a layer that joined for an application that then failed. */
static void drop_fresh_layer(llm_model *m, llm_layer *l) {
    m->n_layers--;
    llm_layer_free(l);
}

static llm_status apply(llm_model *m, llm_layer *l, int n, llm_node *const *in, llm_node **out, const char *fn) {
    if (out) *out = NULL;
    if (!l) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: layer is NULL", fn);
    llm_status s = check_building(m, fn);
    if (s == LLM_OK && !out) s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (s != LLM_OK) {
        if (!l->owner) llm_layer_free(l); /* a new layer is taken in every case */
        return s;
    }
    int fresh;
    LLM__CHECK(take_layer(m, l, &fresh, fn));
    int merge = llm__layer_is_merge(l);
    if (merge && (n < 2 || n > LLM__MERGE_MAX_INPUTS))
        s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s merges 2 to %d nodes, got %d", fn, l->vt->kind, LLM__MERGE_MAX_INPUTS, n);
    else if (!merge && n != 1)
        s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s takes one input; merge layers take several (llm_model_merge)", fn,
                       l->vt->kind);
    else if (!in)
        s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: inputs is NULL", fn);
    for (int k = 0; s == LLM_OK && k < n; k++) {
        char what[32];
        snprintf(what, sizeof what, "input %d", k);
        s = check_node(m, in[k], what, fn);
    }
    if (s == LLM_OK) s = llm__topo_apply(m, l, n, in, out, fn);
    if (s != LLM_OK && fresh) drop_fresh_layer(m, l);
    return s;
}

llm_status llm_model_apply(llm_model *m, llm_layer *l, llm_node *input, llm_node **out) {
    if (l && llm__layer_is_merge(l) && input) {
        /* a merge of one node is a mistake worth its own message */
        if (out) *out = NULL;
        llm_status s = check_building(m, "llm_model_apply");
        if (s == LLM_OK)
            s = llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_apply: %s merges several nodes; use llm_model_merge", l->vt->kind);
        if (!l->owner) llm_layer_free(l);
        return s;
    }
    return apply(m, l, 1, &input, out, "llm_model_apply");
}

llm_status llm_model_merge(llm_model *m, llm_layer *l, int n, llm_node *const *inputs, llm_node **out) {
    if (l && !llm__layer_is_merge(l) && l->status == LLM_OK) {
        if (out) *out = NULL;
        llm_status s = check_building(m, "llm_model_merge");
        if (s == LLM_OK)
            s = llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_merge: %s is not a merge layer; apply it with llm_model_apply",
                           l->vt->kind);
        if (!l->owner) llm_layer_free(l);
        return s;
    }
    return apply(m, l, n, inputs, out, "llm_model_merge");
}

llm_status llm_model_set_outputs(llm_model *m, int n, llm_node *const *outputs) {
    static const char fn[] = "llm_model_set_outputs";
    LLM__CHECK(check_building(m, fn));
    if (n < 1 || n > LLM__GRAPH_MAX_OUTPUTS || !outputs)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: give 1 to %d output nodes", fn, LLM__GRAPH_MAX_OUTPUTS);
    for (int k = 0; k < n; k++) {
        char what[32];
        snprintf(what, sizeof what, "output %d", k);
        LLM__CHECK(check_node(m, outputs[k], what, fn));
        if (!outputs[k]->layer)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: output %d is an input; an output is the result of a layer", fn, k);
        for (int j = 0; j < k; j++)
            if (outputs[j] == outputs[k]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: outputs %d and %d are the same node", fn, j, k);
    }
    return set_outputs(m, n, outputs, fn);
}

/* ---- queries ---- */

llm_status llm_model_num_inputs(const llm_model *m, int *count) {
    if (!m || !count) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_num_inputs: NULL argument");
    LLM__CHECK(llm__refuse_ensemble(m, "llm_model_num_inputs"));
    *count = m->topo.n_inputs;
    return LLM_OK;
}

llm_status llm_model_num_outputs(const llm_model *m, int *count) {
    if (!m || !count) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_num_outputs: NULL argument");
    LLM__CHECK(llm__refuse_ensemble(m, "llm_model_num_outputs"));
    *count = m->topo.n_outputs;
    return LLM_OK;
}

llm_status llm_model_input_info(const llm_model *m, int i, llm_dtype *dtype, int *ndim, int64_t *shape) {
    static const char fn[] = "llm_model_input_info";
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (i < 0 || i >= m->topo.n_inputs)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: index %d outside [0, %d)", fn, i, m->topo.n_inputs);
    if (!m->topo.functional && !m->built)
        return llm__error(LLM_ERR_STATE, "%s: a Sequential model's input shape is known once it is built", fn);
    const llm__shape *s = &m->topo.inputs[i]->shape;
    if (dtype) *dtype = s->dtype;
    if (ndim) *ndim = s->ndim;
    if (shape) for (int d = 0; d < s->ndim; d++) shape[d] = s->d[d];
    return LLM_OK;
}

/* ---- build ---- */

static int same_shape(const llm__shape *a, const llm__shape *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++) if (a->d[d] != b->d[d]) return 0;
    return 1;
}

static int layer_position(const llm_model *m, const llm_layer *l) {
    for (int i = 0; i < m->n_layers; i++) if (m->layers[i] == l) return i;
    return -1;
}

/* Builds a layer on its first application: declares its parameters. */
static llm_status build_layer(llm_model *m, llm_layer *l, int pos, const llm__shape *in, const char *fn) {
    l->n_params = 0;
    for (int k = 0; k < 2; k++) if (l->inner[k]) l->inner[k]->n_params = 0;
    l->in = *in;
    llm__model_bind_tied(m, l, pos);
    llm__shape next = *in;
    llm_status s = l->vt->build(l, in, &next);
    if (s != LLM_OK) {
        char shape[96], msg[512];
        llm__shape_str(in, shape, sizeof shape);
        snprintf(msg, sizeof msg, "%s", llm_last_error());
        return llm__error(s, "%s: layer %d (%s) does not accept input %s: %s", fn, pos, l->name, shape, msg);
    }
    if (next.ndim < 1 || next.ndim > LLM_MAX_DIMS - 1)
        return llm__error(LLM_ERR_SHAPE, "%s: layer %s output has too many dimensions", fn, l->name);
    l->out = next;
    return LLM_OK;
}

static llm_status build_node(llm_model *m, llm_node *nd, unsigned char *done, const char *fn) {
    llm_layer *l = nd->layer;
    int pos = layer_position(m, l);
    if (pos < 0) return llm__error(LLM_ERR_INTERNAL, "%s: a node's layer is not in the model", fn);
    if (llm__layer_is_merge(l)) {
        const llm__shape *shapes[LLM__MERGE_MAX_INPUTS];
        for (int k = 0; k < nd->n_in; k++) shapes[k] = &nd->in[k]->shape;
        llm_status s = llm__merge_build(l, nd->n_in, shapes, &nd->shape);
        if (s != LLM_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", llm_last_error());
            return llm__error(s, "%s: layer %d (%s) cannot merge its inputs: %s", fn, pos, l->name, msg);
        }
        l->in = *shapes[0];
        l->out = nd->shape;
        done[pos] = 1;
        return LLM_OK;
    }
    const llm__shape *in = &nd->in[0]->shape;
    if (!done[pos]) {
        LLM__CHECK(build_layer(m, l, pos, in, fn));
        done[pos] = 1;
    } else if (!same_shape(in, &l->in)) {
        char a[96], b[96];
        llm__shape_str(&l->in, a, sizeof a);
        llm__shape_str(in, b, sizeof b);
        return llm__error(LLM_ERR_SHAPE, "%s: layer %d (%s) is shared: applied to %s first and to %s at node %d; a shared layer needs one input shape",
                          fn, pos, l->name, a, b, nd->index);
    }
    nd->shape = l->out;
    return LLM_OK;
}

static int64_t elems_of(const llm__shape *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->d[d];
    return n;
}

llm_status llm__topo_build(llm_model *m, const char *fn) {
    llm__model_graph *gd = &m->topo;
    if (gd->n_outputs == 0)
        return llm__error(LLM_ERR_STATE, "%s: the model has no outputs; name them with llm_model_set_outputs", fn);
    unsigned char *done = llm__calloc((size_t)m->n_layers + 1, 1);
    if (!done) return llm__oom(fn);
    llm_status s = LLM_OK;
    for (int i = 0; i < gd->n_nodes && s == LLM_OK; i++) {
        llm_node *nd = gd->nodes[i];
        if (nd->layer) s = build_node(m, nd, done, fn);
        if (s == LLM_OK) nd->elems = elems_of(&nd->shape);
    }
    llm__free(done);
    LLM__CHECK(s);
    int64_t off = 0;
    for (int k = 0; k < gd->n_inputs; k++) {
        llm_node *in = gd->inputs[k];
        in->offset = off;
        off += in->elems;
        in->vocab_limit = 0;
    }
    m->in_elems = off;
    m->in_shape = gd->inputs[0]->shape;
    /* the ids of an input must fit every embedding that reads it */
    for (int i = 0; i < gd->n_nodes; i++) {
        llm_node *nd = gd->nodes[i];
        if (!nd->layer || nd->n_in != 1 || nd->in[0]->layer) continue;
        int64_t v = llm__layer_input_vocab(nd->layer);
        llm_node *in = nd->in[0];
        if (v > 0 && (in->vocab_limit == 0 || v < in->vocab_limit)) in->vocab_limit = v;
    }
    m->vocab_limit = gd->inputs[0]->vocab_limit;
    off = 0;
    for (int k = 0; k < gd->n_outputs; k++) {
        llm_node *o = gd->outputs[k];
        if (o->shape.dtype != LLM_DTYPE_F32)
            return llm__error(LLM_ERR_DTYPE, "%s: the model's output must be float; token ids need at least an embedding", fn);
        off += o->elems;
    }
    m->out_elems = off;
    m->out_shape = gd->outputs[0]->shape;
    if (gd->n_outputs > 1) { /* predictions are the outputs side by side */
        m->out_shape.ndim = 1;
        m->out_shape.d[0] = off;
    }
    llm__val **slots = llm__realloc(m->slots, (size_t)gd->n_nodes * sizeof *slots);
    if (!slots) return llm__oom(fn);
    m->slots = slots;
    return LLM_OK;
}

/* ---- running ---- */

llm_status llm__topo_forward(llm_model *m, llm__graph *g, llm__val **slots, const void *x, int64_t B, llm__val **y) {
    const llm__model_graph *gd = &m->topo;
    llm_backend *be = m->be;
    for (int i = 0; i < gd->n_nodes; i++) {
        const llm_node *nd = gd->nodes[i];
        llm_layer *l = nd->layer;
        if (!l) {
            int64_t shape[LLM_MAX_DIMS];
            shape[0] = B;
            for (int d = 0; d < nd->shape.ndim; d++) shape[d + 1] = nd->shape.d[d];
            llm__val *v;
            LLM__CHECK(llm__graph_val(g, nd->shape.dtype, nd->shape.ndim + 1, shape, &v));
            size_t row = (size_t)nd->elems * 4;
            if (gd->n_inputs == 1) {
                LLM__CHECK(be->ops->copy_h2d(be, v->data, x, (size_t)B * row));
            } else { /* this input's part of each packed row */
                for (int64_t b = 0; b < B; b++)
                    LLM__CHECK(be->ops->copy_h2d(be, (char *)v->data + (size_t)b * row,
                                                 (const char *)x + (size_t)(b * m->in_elems + nd->offset) * 4, row));
            }
            slots[i] = v;
        } else if (llm__layer_is_merge(l)) {
            llm__val *in[LLM__MERGE_MAX_INPUTS];
            for (int k = 0; k < nd->n_in; k++) in[k] = slots[nd->in[k]->index];
            LLM__CHECK(llm__merge_forward(l, g, nd->n_in, in, &slots[i]));
        } else {
            LLM__CHECK(l->vt->forward(l, g, slots[nd->in[0]->index], &slots[i]));
        }
    }
    *y = slots[gd->outputs[0]->index];
    return LLM_OK;
}

llm_status llm__topo_read_outputs(llm_model *m, llm__val *const *slots, int64_t B, float *out) {
    const llm__model_graph *gd = &m->topo;
    llm_backend *be = m->be;
    if (gd->n_outputs == 1)
        return be->ops->copy_d2h(be, out, slots[gd->outputs[0]->index]->data, (size_t)(B * m->out_elems) * 4);
    int64_t off = 0;
    for (int k = 0; k < gd->n_outputs; k++) {
        const llm_node *o = gd->outputs[k];
        const float *src = slots[o->index]->data;
        for (int64_t b = 0; b < B; b++)
            LLM__CHECK(be->ops->copy_d2h(be, out + b * m->out_elems + off, src + b * o->elems, (size_t)o->elems * 4));
        off += o->elems;
    }
    return LLM_OK;
}

llm_status llm__topo_check_inputs(const llm_model *m, const void *x, int64_t B, const char *fn) {
    const llm__model_graph *gd = &m->topo;
    for (int k = 0; k < gd->n_inputs; k++) {
        const llm_node *in = gd->inputs[k];
        char which[32] = "";
        if (gd->n_inputs > 1) snprintf(which, sizeof which, "input %d: ", k);
        for (int64_t b = 0; b < B; b++) {
            int64_t base = b * m->in_elems + in->offset;
            if (in->shape.dtype == LLM_DTYPE_I32) {
                const int32_t *ids = (const int32_t *)x + base;
                int64_t lim = in->vocab_limit;
                for (int64_t i = 0; i < in->elems; i++)
                    if (ids[i] < 0 || (lim && ids[i] >= lim))
                        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %stoken id %d at position %lld is outside [0, %lld)", fn,
                                          which, ids[i], (long long)(b * in->elems + i), (long long)lim);
            } else {
                const float *f = (const float *)x + base;
                for (int64_t i = 0; i < in->elems; i++)
                    if (!isfinite(f[i]))
                        return llm__error(LLM_ERR_NUMERIC, "%s: %sinput element %lld is %g", fn, which,
                                          (long long)(b * in->elems + i), (double)f[i]);
            }
        }
    }
    return LLM_OK;
}

/* ---- data for several inputs ---- */

llm_status llm__model_ensure_built_inputs(llm_model *m, int n, const llm_dtype *dtypes, const int *ndims,
                                          const int64_t (*shapes)[LLM_MAX_DIMS], const char *fn) {
    if (!m->built) LLM__CHECK(llm_model_build(m, LLM_DTYPE_F32, 0, NULL));
    if (n != m->topo.n_inputs)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model has %d input(s), the data %d", fn, m->topo.n_inputs, n);
    for (int k = 0; k < n; k++) {
        const llm__shape *want = &m->topo.inputs[k]->shape;
        llm__shape got = { dtypes[k], ndims[k] - 1, {0} };
        for (int d = 1; d < ndims[k] && d < LLM_MAX_DIMS; d++) got.d[d - 1] = shapes[k][d];
        if (!same_shape(&got, want)) {
            char a[96], b[96];
            llm__shape_str(&got, a, sizeof a);
            llm__shape_str(want, b, sizeof b);
            return llm__error(dtypes[k] != want->dtype ? LLM_ERR_DTYPE : LLM_ERR_SHAPE,
                              "%s: input %d is %s but the model's input %d is %s", fn, k, a, k, b);
        }
    }
    return LLM_OK;
}

/* Checks n tensors of one batch size and packs them into rows (host). */
static llm_status pack_inputs(llm_model *m, int n, const llm_tensor *const *xs, int64_t *N, void **packed, int locked,
                              const char *fn) {
    *packed = NULL;
    if (n < 1 || n > MAX_INPUTS || !xs) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: give 1 to %d input tensors", fn, MAX_INPUTS);
    llm_dtype dts[MAX_INPUTS];
    int nds[MAX_INPUTS];
    int64_t (*shapes)[LLM_MAX_DIMS] = llm__calloc((size_t)n, sizeof *shapes);
    if (!shapes) return llm__oom(fn);
    llm_status s = LLM_OK;
    for (int k = 0; k < n && s == LLM_OK; k++) {
        if (!xs[k]) { s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: input tensor %d is NULL", fn, k); break; }
        if (xs[k]->ndim < 2) { s = llm__error(LLM_ERR_SHAPE, "%s: input %d must be [batch, ...]", fn, k); break; }
        if (xs[k]->shape[0] != xs[0]->shape[0])
            s = llm__error(LLM_ERR_SHAPE, "%s: input 0 has %lld examples but input %d has %lld", fn,
                           (long long)xs[0]->shape[0], k, (long long)xs[k]->shape[0]);
        dts[k] = xs[k]->dtype;
        nds[k] = xs[k]->ndim;
        memcpy(shapes[k], xs[k]->shape, sizeof shapes[k]);
    }
    if (s == LLM_OK) {
        /* predictions: a first one may build the model, under the inference lock */
        if (locked) pthread_mutex_lock(&m->infer_lock);
        s = llm__model_ensure_built_inputs(m, n, dts, nds, (const int64_t (*)[LLM_MAX_DIMS])shapes, fn);
        if (locked) pthread_mutex_unlock(&m->infer_lock);
    }
    llm__free(shapes);
    LLM__CHECK(s);
    *N = xs[0]->shape[0];
    char *rows = llm__malloc((size_t)(*N * m->in_elems) * 4), *tmp = NULL;
    if (!rows) return llm__oom(fn);
    for (int k = 0; k < n && s == LLM_OK; k++) {
        const llm_node *in = m->topo.inputs[k];
        char *t = llm__realloc(tmp, xs[k]->bytes);
        if (!t) { s = llm__oom(fn); break; }
        tmp = t;
        s = llm_tensor_to_host(xs[k], tmp, xs[k]->bytes);
        for (int64_t b = 0; s == LLM_OK && b < *N; b++)
            memcpy(rows + (size_t)(b * m->in_elems + in->offset) * 4, tmp + (size_t)(b * in->elems) * 4, (size_t)in->elems * 4);
    }
    llm__free(tmp);
    if (s != LLM_OK) { llm__free(rows); return s; }
    *packed = rows;
    return LLM_OK;
}

llm_status llm_model_predict_inputs(llm_model *m, int n, const llm_tensor *const *xs, llm_tensor **out) {
    static const char fn[] = "llm_model_predict_inputs";
    if (out) *out = NULL;
    if (!m || !out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    void *hx;
    int64_t N;
    LLM__CHECK(pack_inputs(m, n, xs, &N, &hx, 1, fn));
    llm_status s = llm__model_predict_rows(m, hx, N, out, fn);
    llm__free(hx);
    return s;
}

/* Stages a batch of n inputs and its targets like llm__model_stage_tensors. */
static llm_status stage_inputs(llm_model *m, int n, const llm_tensor *const *xs, const llm_tensor *y, int64_t *B,
                               const char *fn) {
    if (!m || !y) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (!m->compiled) return llm__error(LLM_ERR_STATE, "%s: compile the model first (llm_model_compile)", fn);
    void *hx;
    int64_t N;
    LLM__CHECK(pack_inputs(m, n, xs, &N, &hx, 0, fn));
    llm_status s = LLM_OK;
    if (y->ndim < 1 || y->shape[0] != N)
        s = llm__error(LLM_ERR_SHAPE, "%s: %lld examples but %lld targets", fn, (long long)N, (long long)(y->ndim ? y->shape[0] : 0));
    else if (y->numel > N * m->out_elems)
        s = llm__error(LLM_ERR_SHAPE, "%s: targets have %lld value(s) per example, the model outputs %lld", fn,
                       (long long)(y->numel / N), (long long)m->out_elems);
    if (s == LLM_OK) s = llm__model_stage(m, N);
    if (s == LLM_OK) memcpy(m->hx, hx, (size_t)(N * m->in_elems) * 4);
    llm__free(hx);
    LLM__CHECK(s);
    LLM__CHECK(llm__model_check_inputs(m, m->hx, N, fn));
    LLM__CHECK(llm_tensor_to_host(y, m->hout, y->bytes)); /* hout is free until the forward pass */
    *B = N;
    return llm__model_prepare_targets(m, y->dtype, y->numel / N, m->hout, N, m->hy, fn);
}

llm_status llm_model_compute_gradients_inputs(llm_model *m, int n, const llm_tensor *const *xs, const llm_tensor *y,
                                              float *loss) {
    static const char fn[] = "llm_model_compute_gradients_inputs";
    int64_t B;
    LLM__CHECK(stage_inputs(m, n, xs, y, &B, fn));
    double l;
    LLM__CHECK(llm__model_step(m, m->hx, m->hy, B, 0, &l, NULL));
    if (loss) *loss = (float)l;
    return LLM_OK;
}

llm_status llm_model_train_on_batch_inputs(llm_model *m, int n, const llm_tensor *const *xs, const llm_tensor *y,
                                           float *loss, float *accuracy) {
    static const char fn[] = "llm_model_train_on_batch_inputs";
    int64_t B;
    LLM__CHECK(stage_inputs(m, n, xs, y, &B, fn));
    double l, correct;
    LLM__CHECK(llm__model_step(m, m->hx, m->hy, B, 1, &l, &correct));
    if (loss) *loss = (float)l;
    if (accuracy) *accuracy = (float)(correct / (double)B);
    return LLM_OK;
}

/* ---- summary ---- */

static void node_label(const llm_node *nd, char *buf, size_t len) {
    if (nd->layer) snprintf(buf, len, "%s", nd->layer->name);
    else snprintf(buf, len, "input_%d", nd->input_index);
}

llm_status llm__topo_summary(const llm_model *m, char *buf, size_t len, size_t *needed) {
    const llm__model_graph *gd = &m->topo;
    size_t off = 0;
    const char *rule = "____________________________________________________________________________________";
    const char *dbl = "====================================================================================";
    llm__summary_append(buf, len, &off, "Model: \"functional\"\n%s\n %-28s%-22s%-12s%s\n%s\n", rule, "Layer (type)", "Output Shape", "Param #",
           "Connected to", dbl);
    int64_t total = 0;
    unsigned char *seen = llm__calloc((size_t)m->n_layers + 1, 1);
    if (!seen) return llm__oom("llm_model_summary");
    for (int i = 0; i < gd->n_nodes; i++) {
        const llm_node *nd = gd->nodes[i];
        char label[80], shape[96], from[160] = "", name[64];
        node_label(nd, name, sizeof name);
        snprintf(label, sizeof label, "%s (%s)", name, nd->layer ? nd->layer->vt->kind : "input");
        size_t o = (size_t)snprintf(shape, sizeof shape, "(None");
        for (int d = 0; d < nd->shape.ndim && o < sizeof shape; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, ", %lld", (long long)nd->shape.d[d]);
        if (o < sizeof shape) snprintf(shape + o, sizeof shape - o, ")");
        int64_t p = 0;
        int pos = nd->layer ? layer_position(m, nd->layer) : -1;
        if (pos >= 0 && !seen[pos]) { seen[pos] = 1; p = llm__layer_param_count(nd->layer); }
        total += p;
        size_t fo = 0;
        for (int k = 0; k < nd->n_in && fo < sizeof from; k++) {
            char in[64];
            node_label(nd->in[k], in, sizeof in);
            fo += (size_t)snprintf(from + fo, sizeof from - fo, "%s%s", k ? ", " : "", in);
        }
        char count[32];
        llm__summary_thousands(p, count, sizeof count);
        if (from[0]) llm__summary_append(buf, len, &off, " %-28s%-22s%-12s%s\n", label, shape, count, from);
        else llm__summary_append(buf, len, &off, " %-28s%-22s%s\n", label, shape, count);
    }
    llm__free(seen);
    char t[32];
    llm__summary_thousands(total, t, sizeof t);
    llm__summary_append(buf, len, &off, "%s\nTotal params: %s\nTrainable params: %s\nNon-trainable params: 0\n%s\n", dbl, t, t, rule);
    if (needed) *needed = off;
    return LLM_OK;
}
