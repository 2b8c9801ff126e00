/* Merge layers of the functional API: concatenate, add, multiply. They read
 * several nodes, so they are built and run by the graph (model_graph.c)
 * through llm__merge_build / llm__merge_forward; their vtable's one-input
 * entry points only refuse. They have no settings, so they are not in the
 * layer registry: the loader asks llm__merge_from_kind first. */
#include <stdio.h>
#include "model_graph.h"
#include "ops.h"

enum { MERGE_CONCAT, MERGE_ADD, MERGE_MUL };

/* a tape node carries a merge's inputs in its saved slots */
_Static_assert(LLM__MERGE_MAX_INPUTS <= sizeof ((llm__node *)0)->saved / sizeof(void *),
               "a merge's inputs must fit a tape node's saved slots");

static llm_status one_input(llm_layer *l, const llm__shape *in, llm__shape *out) {
    (void)in; (void)out;
    return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s merges several nodes; apply it with llm_model_merge", l->name);
}

static llm_status one_input_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **y) {
    (void)g; (void)x; (void)y;
    return llm__error(LLM_ERR_INTERNAL, "%s: a merge layer run as a one-input layer", l->name);
}

static const llm__layer_vt concat_vt = { .kind = "concatenate", .build = one_input, .forward = one_input_forward };
static const llm__layer_vt add_vt = { .kind = "add", .build = one_input, .forward = one_input_forward };
static const llm__layer_vt mul_vt = { .kind = "multiply", .build = one_input, .forward = one_input_forward };

static int merge_op(const llm_layer *l) {
    return l->vt == &concat_vt ? MERGE_CONCAT : l->vt == &add_vt ? MERGE_ADD : MERGE_MUL;
}

int llm__layer_is_merge(const llm_layer *l) {
    return l && (l->vt == &concat_vt || l->vt == &add_vt || l->vt == &mul_vt);
}

llm_layer *llm_layer_concatenate(void) { return llm__layer_new(&concat_vt); }
llm_layer *llm_layer_add(void) { return llm__layer_new(&add_vt); }
llm_layer *llm_layer_multiply(void) { return llm__layer_new(&mul_vt); }

llm_layer *llm__merge_from_kind(const char *kind) {
    if (strcmp(kind, "concatenate") == 0) return llm_layer_concatenate();
    if (strcmp(kind, "add") == 0) return llm_layer_add();
    if (strcmp(kind, "multiply") == 0) return llm_layer_multiply();
    return NULL;
}

llm_status llm__merge_build(llm_layer *l, int n, const llm__shape *const *in, llm__shape *out) {
    int op = merge_op(l);
    char a[96], b[96];
    for (int k = 0; k < n; k++) {
        if (in[k]->dtype != LLM_DTYPE_F32)
            return llm__error(LLM_ERR_DTYPE, "%s: input %d is int32; merge layers take float values (token ids need an embedding first)",
                              l->name, k);
        int same = in[k]->ndim == in[0]->ndim;
        /* concatenate: every dimension but the last must agree */
        int upto = op == MERGE_CONCAT ? in[0]->ndim - 1 : in[0]->ndim;
        for (int d = 0; same && d < upto; d++) same = in[k]->d[d] == in[0]->d[d];
        if (!same) {
            llm__shape_str(in[0], a, sizeof a);
            llm__shape_str(in[k], b, sizeof b);
            return llm__error(LLM_ERR_SHAPE, "%s: input 0 is %s but input %d is %s; %s", l->name, a, k, b,
                              op == MERGE_CONCAT ? "concatenate needs all dimensions but the last to agree"
                                                 : "element-wise merges need one shape");
        }
    }
    *out = *in[0];
    if (op == MERGE_CONCAT) {
        int64_t last = 0;
        for (int k = 0; k < n; k++) last += in[k]->d[in[k]->ndim - 1];
        out->d[out->ndim - 1] = last;
    }
    return LLM_OK;
}

/* Concatenation: each input is a column block of the output. */
static llm_status concat_backward(llm__graph *g, llm__node *nd) {
    const llm__val *y = nd->out[0];
    int64_t rows = llm__rows(y), width = llm__last(y), col = 0;
    llm__val *const *in = (llm__val *const *)nd->saved;
    for (int64_t k = 0; k < nd->i[0]; k++) {
        int64_t w = llm__last(in[k]);
        if (in[k]->requires_grad) {
            float *dx;
            LLM__CHECK(llm__graph_grad(g, in[k], &dx));
            LLM__CHECK(g->be->ops->copy_rows(g->be, rows, w, y->grad + col, width, dx, w, 1));
        }
        col += w;
    }
    return LLM_OK;
}

/* Sum: every input gets the output's gradient. */
static llm_status add_backward(llm__graph *g, llm__node *nd) {
    const llm__val *y = nd->out[0];
    llm__val *const *in = (llm__val *const *)nd->saved;
    for (int64_t k = 0; k < nd->i[0]; k++) {
        if (!in[k]->requires_grad) continue;
        float *dx;
        LLM__CHECK(llm__graph_grad(g, in[k], &dx));
        LLM__CHECK(g->be->ops->axpy(g->be, y->numel, 1.0f, y->grad, dx));
    }
    return LLM_OK;
}

/* Product: input k gets dy times the product of the others. */
static llm_status mul_backward(llm__graph *g, llm__node *nd) {
    const llm__val *y = nd->out[0];
    llm__val *const *in = (llm__val *const *)nd->saved;
    const llm__backend_ops *op = g->be->ops;
    int64_t n = y->numel;
    float *tmp;
    LLM__CHECK(llm__graph_alloc(g, (size_t)n * 4, (void **)&tmp));
    for (int64_t k = 0; k < nd->i[0]; k++) {
        if (!in[k]->requires_grad) continue;
        LLM__CHECK(op->copy_d2d(g->be, tmp, y->grad, (size_t)n * 4));
        for (int64_t j = 0; j < nd->i[0]; j++)
            if (j != k) LLM__CHECK(op->mul(g->be, n, tmp, in[j]->data, tmp));
        float *dx;
        LLM__CHECK(llm__graph_grad(g, in[k], &dx));
        LLM__CHECK(op->axpy(g->be, n, 1.0f, tmp, dx));
    }
    return LLM_OK;
}

llm_status llm__merge_forward(llm_layer *l, llm__graph *g, int n, llm__val *const *in, llm__val **out) {
    const llm__backend_ops *op = g->be->ops;
    int kind = merge_op(l);
    int64_t width = 0;
    for (int k = 0; k < n; k++) width += llm__last(in[k]);
    llm__val *y;
    LLM__CHECK(llm__val_like(g, in[0], kind == MERGE_CONCAT ? width : llm__last(in[0]), &y));
    y->mask = NULL;
    int grad = 0;
    for (int k = 0; k < n; k++) {
        if (!y->mask && in[k]->mask) y->mask = in[k]->mask;
        grad |= in[k]->requires_grad;
    }
    if (y->ndim < 3) y->mask = NULL; /* no time axis left */
    y->requires_grad = grad;
    int64_t rows = llm__rows(y), col = 0;
    switch (kind) {
    case MERGE_CONCAT:
        for (int k = 0; k < n; k++) {
            int64_t w = llm__last(in[k]);
            LLM__CHECK(op->copy_rows(g->be, rows, w, in[k]->data, w, (float *)y->data + col, width, 0));
            col += w;
        }
        break;
    case MERGE_ADD:
        LLM__CHECK(op->add(g->be, y->numel, in[0]->data, in[1]->data, y->data));
        for (int k = 2; k < n; k++) LLM__CHECK(op->add(g->be, y->numel, y->data, in[k]->data, y->data));
        break;
    default:
        LLM__CHECK(op->mul(g->be, y->numel, in[0]->data, in[1]->data, y->data));
        for (int k = 2; k < n; k++) LLM__CHECK(op->mul(g->be, y->numel, y->data, in[k]->data, y->data));
        break;
    }
    if (grad) {
        llm__node *nd;
        LLM__CHECK(llm__graph_node(g, kind == MERGE_CONCAT ? concat_backward : kind == MERGE_ADD ? add_backward : mul_backward,
                                   &nd));
        if (nd) {
            /* the inputs ride in the node's saved slots (LLM__MERGE_MAX_INPUTS of them) */
            for (int k = 0; k < n; k++) nd->saved[k] = in[k];
            nd->layer = l;
            nd->i[0] = n;
            nd->out[0] = y;
        }
    }
    *out = y;
    return LLM_OK;
}
