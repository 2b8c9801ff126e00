/* libllm: GPT-2 checkpoints in and out.
 *
 * GPT-2 is a stack libllm builds from its own layers:
 *     transformer_embedding (learned positions, no padding id)
 *     -> transformer_block x n_layer (causal, pre-LayerNorm, tanh GELU)
 *     -> layernorm -> lm_head (tied to the token table)
 * llm_model_gpt2 builds one with fresh weights; llm_model_load_gpt2 reads
 * published weights into one, and llm_model_save_gpt2 writes a model of that
 * shape back in the Hugging Face layout, so a model trained or fine-tuned
 * with libllm goes back to the Python world.
 *
 * Files read (see docs/GPT2.md for every rule):
 *   - Hugging Face: a folder with config.json and model.safetensors
 *     (GPT2LMHeadModel or GPT2Model names, with or without "transformer.";
 *     F32, F16 or BF16, converted to float on load; the attention mask
 *     buffers attn.bias / attn.masked_bias are skipped), or the path of the
 *     .safetensors file itself with config.json beside it.
 *   - llm.c (train_gpt2.py's write_model): one file with a 256-int32 header
 *     (magic 20240326, version 3 = float32 or 5 = bfloat16, padded vocabulary)
 *     and the tensors layer-major; recognised by its magic, as a file or as
 *     the only model file in a folder.
 * When vocab.json and merges.txt lie beside the weights, GPT-2's tokenizer
 * (llm_bpe_load_gpt2) is attached to the model. Every file is treated as
 * hostile: anything truncated, mis-shaped, of a wrong dtype or inconsistent
 * with the configuration is LLM_ERR_FORMAT (LLM_ERR_IO when unreadable) with
 * a message naming the file and what is wrong. */
#ifndef LLM_GPT2_H
#define LLM_GPT2_H

#include "common.h"
#include "status.h"
#include "backend.h"
#include "model.h"

LLM_EXTERN_C_BEGIN

/* The shape of a GPT-2 (config.json's fields). _init gives GPT-2 124M. */
typedef struct llm_gpt2_options {
    size_t size;                /* sizeof(llm_gpt2_options), set by _init */
    int64_t n_layer;            /* blocks, >= 0; default 12 */
    int64_t n_head;             /* heads, >= 1, dividing n_embd; default 12 */
    int64_t n_embd;             /* width; default 768 */
    int64_t n_positions;        /* longest sequence, in [1, 2^20]; default 1024 */
    int64_t vocab_size;         /* token ids, >= 2; default 50257 */
    int64_t n_inner;            /* MLP width; 0 (default) = 4 n_embd */
    float layer_norm_epsilon;   /* default 1e-5 */
    int64_t seq_len;            /* the input length T the model is built for, so that
                                   fit / predict take [B, T] batches; in [1, n_positions],
                                   0 (default) = n_positions. Generation (generate.h)
                                   takes any length up to n_positions either way. */
    uint64_t seed;              /* weight initialisation (GPT-2's: normal, std 0.02); default 1 */
} llm_gpt2_options;
LLM_API void llm_gpt2_options_init(llm_gpt2_options *opts);

/* Builds a GPT-2 of the given shape with fresh weights (not compiled). The
 * parameters are named as in any libllm model ("transformer_block_3.qkv_weight");
 * docs/GPT2.md maps them to the Hugging Face names. */
LLM_API llm_status llm_model_gpt2(llm_model **out, llm_backend *backend, const llm_gpt2_options *opts);

/* Loads a GPT-2 checkpoint (a folder or a file, see above) onto backend.
 * seq_len is llm_gpt2_options.seq_len (0 = the checkpoint's n_positions).
 * The model is built, not compiled; with a tokenizer beside the weights it
 * is attached (llm_model_tokenizer). Its metadata records the source
 * ("gpt2.source": "huggingface" or "llm.c") and "lm.heads". */
LLM_API llm_status llm_model_load_gpt2(llm_model **out, llm_backend *backend, const char *path,
                                       int64_t seq_len);

/* Writes a GPT-2-shaped model (as llm_model_gpt2 or llm_model_load_gpt2
 * make it, or lm_train's: transformer_embedding with learned positions ->
 * causal blocks -> layernorm -> lm_head) as a Hugging Face folder dir
 * (created if missing): model.safetensors (float32, GPT2LMHeadModel names,
 * Conv1D layouts), config.json and, when the model carries a GPT-2
 * tokenizer, vocab.json and merges.txt. Each file is written atomically.
 * LLM_ERR_NOT_SUPPORTED naming the layer for a model of another shape. */
LLM_API llm_status llm_model_save_gpt2(const llm_model *model, const char *dir);

LLM_EXTERN_C_END

#endif /* LLM_GPT2_H */
