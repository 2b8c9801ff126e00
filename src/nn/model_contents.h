/* libllm private: what a model's file holds, without writing the file.
 *
 * For readers of a model that should depend on the file format
 * (docs/FORMAT.md) and not on the layer objects: the ONNX exporter
 * (src/onnx/model_view.c). The entries and tensors are exactly those
 * llm_model_save writes, less the three format entries (format,
 * libllm.format_version, libllm.library_version). */
#ifndef LLM_PRIVATE_MODEL_CONTENTS_H
#define LLM_PRIVATE_MODEL_CONTENTS_H

#include "llm/model.h"
#include "../io/safetensors.h"

typedef struct llm__model_contents {
    const llm__st_tensor *tensors;  /* under their file names ("lstm_0.weight_ih"), host memory */
    int n_tensors;
    const llm__st_meta *meta;       /* libllm.architecture, the text pipeline, user metadata */
    int n_meta;
    void *owner;                    /* the buffers behind them */
} llm__model_contents;

/* Gathers a built model that is not an ensemble (LLM_ERR_STATE otherwise,
 * naming fn). Free with llm__model_contents_free, also after a failure. */
llm_status llm__model_contents_get(const llm_model *m, llm__model_contents *out, const char *fn);
void llm__model_contents_free(llm__model_contents *c);

#endif /* LLM_PRIVATE_MODEL_CONTENTS_H */
