/* Bidirectional: a forward and a backward copy of a recurrent layer, outputs
 * concatenated on the last dimension ([2H] or [T, 2H]). Its parameters are
 * the inner layers' ("bidirectional_0.forward.weight_ih", ".backward."). */
#include <stdio.h>
#include <cjson/cJSON.h>
#include "recurrent.h"

static llm_status bidir_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    llm__shape o1, o2;
    for (int k = 0; k < 2; k++) snprintf(l->inner[k]->name, sizeof l->inner[k]->name, "%.36s.%s", l->name, k ? "backward" : "forward");
    LLM__CHECK(l->inner[0]->vt->build(l->inner[0], in, &o1));
    LLM__CHECK(l->inner[1]->vt->build(l->inner[1], in, &o2));
    l->inner[0]->in = l->inner[1]->in = *in;
    l->inner[0]->out = o1;
    l->inner[1]->out = o2;
    *out = o1;
    out->d[out->ndim - 1] *= 2;
    return LLM_OK;
}

static llm_status concat_backward(llm__graph *g, llm__node *n) {
    llm__val *y = n->out[0];
    int64_t rows = llm__rows(y), H = n->i[0];
    for (int k = 0; k < 2; k++) {
        float *d;
        LLM__CHECK(llm__graph_grad(g, n->in[k], &d));
        LLM__CHECK(g->be->ops->copy_rows(g->be, rows, H, y->grad + k * H, 2 * H, d, H, 1));
    }
    return LLM_OK;
}

static llm_status bidir_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    llm__val *a, *b, *y;
    LLM__CHECK(l->inner[0]->vt->forward(l->inner[0], g, x, &a));
    LLM__CHECK(l->inner[1]->vt->forward(l->inner[1], g, x, &b));
    int64_t H = llm__last(a), rows = llm__rows(a);
    LLM__CHECK(llm__val_like(g, a, 2 * H, &y));
    y->mask = a->mask;
    LLM__CHECK(g->be->ops->copy_rows(g->be, rows, H, a->data, H, y->data, 2 * H, 0));
    LLM__CHECK(g->be->ops->copy_rows(g->be, rows, H, b->data, H, (float *)y->data + H, 2 * H, 0));
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, concat_backward, &n));
    if (n) { n->in[0] = a; n->in[1] = b; n->out[0] = y; n->i[0] = H; }
    *out = y;
    return LLM_OK;
}

/* The file names the forward layer; the backward copy is derived from it. */
static llm_status bidir_to_json(const llm_layer *l, cJSON *o) {
    cJSON *inner = llm__layer_to_json(l->inner[0]);
    if (!inner || !cJSON_AddItemToObject(o, "layer", inner)) {
        cJSON_Delete(inner);
        return llm__oom("llm_model_save");
    }
    return LLM_OK;
}

static llm_layer *bidir_from_json(const cJSON *o, int depth) {
    if (depth > 0) return llm__json_bad("bidirectional");
    llm_layer *inner = llm__layer_from_json(cJSON_GetObjectItemCaseSensitive(o, "layer"), depth + 1);
    return inner ? llm_layer_bidirectional(inner) : NULL;
}

const llm__layer_vt llm__bidirectional_kind = {
    .kind = "bidirectional", .build = bidir_build, .forward = bidir_forward, .to_json = bidir_to_json,
    .from_json = bidir_from_json,
};

llm_layer *llm_layer_bidirectional(llm_layer *inner) {
    if (!inner) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_bidirectional: inner is NULL");
    if (inner->status != LLM_OK) {
        llm_layer *e = llm__layer_error(inner->status, "%s", llm_layer_error(inner));
        llm_layer_free(inner);
        return e;
    }
    if (inner->vt != &llm__lstm_kind && inner->vt != &llm__gru_kind) {
        llm_layer *e = llm__layer_error(LLM_ERR_INVALID_ARGUMENT,
                                        "llm_layer_bidirectional: %s is not a recurrent layer (LSTM or GRU)",
                                        llm_layer_kind(inner));
        llm_layer_free(inner);
        return e;
    }
    llm_layer *rev = llm__layer_new(inner->vt);
    if (rev->status != LLM_OK) { llm_layer_free(inner); return rev; }
    llm__recurrent_state *r = rev->state;
    *r = *(const llm__recurrent_state *)inner->state;
    r->opt.go_backwards = !r->opt.go_backwards;
    llm_layer *l = llm__layer_new(&llm__bidirectional_kind);
    if (l->status != LLM_OK) { llm_layer_free(inner); llm_layer_free(rev); return l; }
    l->inner[0] = inner;
    l->inner[1] = rev;
    return l;
}
