/* The adapter between a model and the ONNX module: the model's file contents
 * (src/nn/model_contents.h, docs/FORMAT.md) in the module's own structs.
 * The only code of the exporter that reaches into libllm's model; when the
 * layers change but the file format does not, nothing else has to. */
#include <string.h>
#include "llm/version.h"
#include "core/internal.h"
#include "model_view.h"

llm_status llm__onnx_view_make(const llm_model *m, llm__onnx_model_view *out, const char *fn) {
    memset(out, 0, sizeof *out);
    LLM__CHECK(llm__model_contents_get(m, &out->contents, fn));
    const llm__model_contents *c = &out->contents;
    out->tensors = llm__calloc((size_t)c->n_tensors + 1, sizeof *out->tensors);
    out->meta = llm__calloc((size_t)c->n_meta + 1, sizeof *out->meta);
    if (!out->tensors || !out->meta) return llm__oom(fn);
    for (int i = 0; i < c->n_tensors; i++) {
        const llm__st_tensor *t = &c->tensors[i];
        if (t->dtype != LLM_DTYPE_F32 || t->ndim > LLM__ONNX_MAX_DIMS)
            return llm__error(LLM_ERR_INTERNAL, "%s: tensor %s is not F32 of at most %d dimensions", fn, t->name,
                              LLM__ONNX_MAX_DIMS);
        llm__onnx_tensor *o = &out->tensors[i];
        o->name = t->name;
        o->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) o->shape[d] = t->shape[d];
        o->data = t->data;
    }
    for (int i = 0; i < c->n_meta; i++) out->meta[i] = (llm__onnx_entry){ c->meta[i].key, c->meta[i].value };
    out->view.tensors = out->tensors;
    out->view.n_tensors = c->n_tensors;
    out->view.meta = out->meta;
    out->view.n_meta = c->n_meta;
    out->view.library_version = llm_version_string();
    return LLM_OK;
}

void llm__onnx_view_free(llm__onnx_model_view *v) {
    if (!v) return;
    llm__model_contents_free(&v->contents);
    llm__free(v->tensors);
    llm__free(v->meta);
    memset(v, 0, sizeof *v);
}
