/* libllm private: GPT-2 import and export (include/llm/gpt2.h), shared by
 * gpt2.c (the model, the name map, file discovery), gpt2_hf.c (Hugging Face
 * config.json and safetensors, both ways) and gpt2_llmc.c (llm.c files).
 *
 * The importers build the model with llm_model_gpt2 and fill it through
 * llm_model_set_param by name, the exporter reads it with
 * llm_model_get_param: one table (gpt2_map) says which libllm parameter is
 * which tensor of the other formats. */
#ifndef LLM_PRIVATE_GPT2_INTERNAL_H
#define LLM_PRIVATE_GPT2_INTERNAL_H

#include "llm/gpt2.h"
#include "core/internal.h"

/* The largest checkpoint read (GPT-2 XL in float32 is 6.4 GB). */
#define LLM__GPT2_MAX_FILE ((size_t)1 << 36)
/* config.json, vocab.json and merges.txt are refused beyond these sizes. */
#define LLM__GPT2_MAX_CONFIG ((size_t)1 << 20)

/* One parameter of a GPT-2: its libllm name and shape ([rows, cols]; cols 1
 * for vectors), the Hugging Face name without prefix ("h.3.attn.c_attn.weight")
 * and whether Hugging Face stores it transposed (Conv1D weights are [in, out]). */
typedef struct llm__gpt2_param {
    char ours[80];
    char hf[48];
    int transpose;
    int64_t rows, cols;
} llm__gpt2_param;

/* The parameters of a GPT-2 of shape o (tie: whether the head is tied), in
 * llm.c's file order: wte, wpe, then each block tensor kind for every layer
 * (layer-major: ln_1.weight of all layers, then ln_1.bias of all ...), then
 * ln_f, then lm_head when untied. *out is an array of *n (llm__free it). */
llm_status llm__gpt2_params(const llm_gpt2_options *o, int tie, llm__gpt2_param **out, int *n);

/* Builds a GPT-2 as llm_model_gpt2 does, tied or not. */
llm_status llm__gpt2_build(llm_model **out, llm_backend *be, const llm_gpt2_options *o, int tie, const char *fn);

/* Checks shape o and fills the defaults (n_inner, seq_len); fn names the caller. */
llm_status llm__gpt2_check_options(llm_gpt2_options *o, const char *fn);

/* Reads a GPT-2's shape back from a model built as llm__gpt2_build makes
 * it (or as lm_train does); LLM_ERR_NOT_SUPPORTED naming what differs. */
llm_status llm__gpt2_shape_of(const llm_model *m, llm_gpt2_options *o, int *tie, const char *fn);

/* Hugging Face: parses config.json (len bytes) into o (defaults as
 * transformers' GPT2Config for absent fields) and *tie; label names the file. */
llm_status llm__gpt2_parse_config(const char *json, size_t len, const char *label, llm_gpt2_options *o, int *tie);
/* Loads model.safetensors at path with the configuration in config_json. */
llm_status llm__gpt2_load_hf(llm_model **out, llm_backend *be, const char *path, const char *config_json,
                             size_t config_len, const char *config_label, int64_t seq_len);
/* Writes dir/model.safetensors and dir/config.json for m. */
llm_status llm__gpt2_save_hf(const llm_model *m, const char *dir, const char *fn);

/* llm.c: 1 when the first bytes of a file (n >= 4) carry llm.c's magic. */
int llm__gpt2_is_llmc(const unsigned char *head, size_t n);
/* Loads an llm.c checkpoint file. */
llm_status llm__gpt2_load_llmc(llm_model **out, llm_backend *be, const char *path, int64_t seq_len);

/* Converts n half / bfloat16 values (little-endian bytes) to float. */
void llm__f16_to_f32(const unsigned char *src, int64_t n, float *dst);
void llm__bf16_to_f32(const unsigned char *src, int64_t n, float *dst);
/* -1 when every value of x[n] is finite, else the index of the first that is not. */
int64_t llm__first_nonfinite(const float *x, int64_t n);

#endif /* LLM_PRIVATE_GPT2_INTERNAL_H */
