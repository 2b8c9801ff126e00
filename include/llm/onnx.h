/* libllm: exporting a model to ONNX (https://onnx.ai), to run it where
 * libllm does not: ONNX Runtime from C, C++, C#, Java, JavaScript or Python.
 *
 *     llm_onnx_options o;   llm_onnx_options_init(&o);
 *     CHECK(llm_model_export_onnx(model, "spam.onnx", &o));
 *
 * The ONNX model takes `ids`, int64 token ids [batch, seq] (seq the model's
 * own; id 0 is padding wherever it stands when the embedding masks it), and
 * gives what llm_model_predict gives for the same rows: `probabilities` for
 * a classifier ending in sigmoid or softmax, `logits` [batch, seq, vocab]
 * for a language model ending in an lm_head, else `outputs`. A model whose
 * first layer is not an embedding takes `input`, float [batch, ...].
 * Recurrent layers become ONNX LSTM and GRU operators, attention MatMul and
 * Softmax, layer norm LayerNormalization; dropout is the identity.
 * docs/ONNX.md lists what maps to what and the metadata_props written
 * (class names, threshold, vocabulary size, sequence length, ...).
 *
 * The exporter is a run-time module, libllm-onnx.so (built when Debian's
 * libprotobuf-c-dev and protobuf-c-compiler are present), loaded on each call
 * from $LLM_ONNX_MODULE if set, else beside libllm (its folder, then ../lib),
 * else the library search path; libllm itself never depends on protobuf. */
#ifndef LLM_ONNX_H
#define LLM_ONNX_H

#include "common.h"
#include "status.h"
#include "model.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_onnx_options {
    size_t size;         /* sizeof(llm_onnx_options), set by _init */
    int opset;           /* ONNX operator set (default domain): 0 = 17, the default, or
                            17 to 21 (from 20 GELU is the Gelu operator) */
    int64_t batch;       /* the batch dimension: 0 (default) = dynamic, named "batch";
                            else that fixed size, 1 to 2^31 - 1 */
    int text_pipeline;   /* 1 (default): the model's text pipeline (its vocabulary or BPE
                            tokenizer, vectorizer and e-mail reader settings) goes into
                            metadata_props as the libllm.* entries of its model file, so
                            a consumer can turn text into ids as libllm does; 0: not */
} llm_onnx_options;
LLM_API void llm_onnx_options_init(llm_onnx_options *opts);

/* Writes a built model as an ONNX file (opts NULL = the defaults). The write
 * is atomic, as llm_model_save's: a temporary file in the same folder,
 * fsync, rename; on any failure nothing is left behind and an existing file
 * at path is untouched.
 * LLM_ERR_INVALID_ARGUMENT: NULL model or path, bad options.
 * LLM_ERR_STATE: the model is not built.
 * LLM_ERR_NOT_SUPPORTED: an ensemble, a functional model (graph.h) with
 *   several outputs, or a layer with no ONNX mapping (the
 *   message names the layer), or weights beyond the 2 GiB a protobuf holds.
 * LLM_ERR_UNAVAILABLE: the module libllm-onnx.so is missing, unloadable or
 *   from another build of libllm.
 * LLM_ERR_IO: the file cannot be written. */
LLM_API llm_status llm_model_export_onnx(const llm_model *model, const char *path,
                                         const llm_onnx_options *opts);

LLM_EXTERN_C_END

#endif /* LLM_ONNX_H */
