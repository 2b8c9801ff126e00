/* libllm private: a model as the ONNX module sees it (onnx_module.h). */
#ifndef LLM_PRIVATE_ONNX_MODEL_VIEW_H
#define LLM_PRIVATE_ONNX_MODEL_VIEW_H

#include "llm/model.h"
#include "onnx_module.h"
#include "../nn/model_contents.h"

typedef struct llm__onnx_model_view {
    llm__onnx_view view;            /* what the module gets; points into the rest */
    llm__model_contents contents;
    llm__onnx_tensor *tensors;
    llm__onnx_entry *meta;
} llm__onnx_model_view;

/* The view of a built model that is not an ensemble; free it with
 * llm__onnx_view_free, also after a failure. */
llm_status llm__onnx_view_make(const llm_model *m, llm__onnx_model_view *out, const char *fn);
void llm__onnx_view_free(llm__onnx_model_view *v);

#endif /* LLM_PRIVATE_ONNX_MODEL_VIEW_H */
