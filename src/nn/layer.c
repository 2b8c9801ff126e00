/* Layer handles: the error-carrying construction rule, parameters, queries. */
#include <stdarg.h>
#include <stdio.h>
#include "layer_internal.h"

/* Returned when even an error layer cannot be allocated; never freed. */
static llm_layer oom_layer = { .status = LLM_ERR_OUT_OF_MEMORY, .error = (char *)"layer: out of memory" };

llm_layer *llm__layer_error(llm_status status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llm__error(status, "%s", msg);
    llm_layer *l = llm__calloc(1, sizeof *l);
    if (!l) return &oom_layer;
    l->status = status;
    l->error = llm__strdup(msg);
    if (!l->error) { llm__free(l); return &oom_layer; }
    return l;
}

llm_layer *llm__layer_new(const llm__layer_vt *vt) {
    llm_layer *l = llm__calloc(1, sizeof *l);
    if (!l) { llm__oom("layer"); return &oom_layer; }
    l->vt = vt;
    if (vt->state_size) {
        l->state = llm__calloc(1, vt->state_size);
        if (!l->state) { llm__free(l); llm__oom("layer"); return &oom_layer; }
    }
    return l;
}

llm_status llm__layer_param(llm_layer *l, const char *name, int ndim, int64_t d0, int64_t d1,
                            int init, float init_arg, llm__param **view) {
    if (l->n_params == LLM__MAX_PARAMS)
        return llm__error(LLM_ERR_INTERNAL, "layer %s: too many parameters", l->name);
    llm__param *p = &l->params[l->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->numel = d0 * (ndim > 1 ? d1 : 1);
    p->init = init;
    p->init_arg = init_arg;
    if (view) *view = p;
    return LLM_OK;
}

int64_t llm__layer_input_vocab(const llm_layer *l) {
    return l && l->vt && l->vt->input_vocab ? l->vt->input_vocab(l) : 0;
}

void llm__shape_str(const llm__shape *s, char *buf, size_t len) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "(batch");
    for (int i = 0; i < s->ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, ", %lld", (long long)s->d[i]);
    if (off < len) snprintf(buf + off, len - off, ")%s", s->dtype == LLM_DTYPE_I32 ? " int32" : "");
}

llm_status llm_layer_status(const llm_layer *l) {
    if (!l) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_layer_status: layer is NULL");
    return l->status;
}

const char *llm_layer_error(const llm_layer *l) {
    if (!l) return "layer is NULL";
    return l->error ? l->error : "";
}

const char *llm_layer_kind(const llm_layer *l) {
    if (!l || !l->vt) return "invalid";
    return l->vt->kind;
}

void llm_layer_free(llm_layer *l) {
    if (!l || l == &oom_layer) return;
    if (l->vt && l->vt->destroy && l->state) l->vt->destroy(l);
    llm__free(l->state);
    for (int i = 0; i < 2; i++) llm_layer_free(l->inner[i]);
    llm__free(l->error);
    llm__free(l);
}
