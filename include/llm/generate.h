/* libllm: text generation with a causal Transformer language model.
 *
 * A decoder runs a model built as
 *     transformer_embedding -> transformer_block (causal) x N
 *         -> [layernorm] -> lm_head, or dense without activation
 * (dropout layers anywhere are skipped) one token at a time, keeping each
 * block's keys and values (the KV cache), so a new token costs one row of
 * work instead of a pass over the whole history. It gives the same logits as
 * running the model on the full sequence. When the history reaches the
 * model's context, the oldest half is dropped and the rest recomputed (a
 * sliding window).
 *
 * Ownership: a decoder borrows its model: free the decoder first. One
 * decoder is used by one thread at a time; several decoders may share a
 * model and run in parallel. */
#ifndef LLM_GENERATE_H
#define LLM_GENERATE_H

#include "common.h"
#include "status.h"
#include "model.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_decoder llm_decoder;

/* A decoder for a built model (see above for the layers it accepts). */
LLM_API llm_status llm_decoder_create(llm_decoder **out, llm_model *model);
/* Forgets the history. */
LLM_API llm_status llm_decoder_reset(llm_decoder *decoder);
/* Appends n >= 1 tokens (each in [0, vocab)) and, when logits is not NULL,
 * writes the vocab logits that predict the token after the last one. */
LLM_API llm_status llm_decoder_feed(llm_decoder *decoder, const int32_t *ids, int64_t n, float *logits);
/* Number of tokens currently in the window, and the vocabulary size. */
LLM_API llm_status llm_decoder_length(const llm_decoder *decoder, int64_t *length);
LLM_API llm_status llm_decoder_vocab_size(const llm_decoder *decoder, int64_t *vocab);
/* Frees a decoder (not its model). NULL is a no-op. */
LLM_API void llm_decoder_free(llm_decoder *decoder);

/* Called with each generated token as soon as it is chosen (streaming);
 * return nonzero to stop. */
typedef int (*llm_token_callback)(int32_t token, void *user);

typedef struct llm_generate_options {
    size_t size;              /* set by _init */
    int64_t max_tokens;       /* tokens to generate; default 100 */
    float temperature;        /* > 0 divides the logits; 0 = greedy (argmax); default 1 */
    int32_t top_k;            /* keep the k most likely tokens; 0 (default) = all */
    float top_p;              /* keep the smallest set whose probability reaches p; 1 (default) = all */
    uint64_t seed;            /* random stream; the same seed gives the same text; default 1 */
    int32_t stop_token;       /* stop after generating this id; -1 (default) = none */
    llm_token_callback on_token; /* may be NULL */
    void *user;
} llm_generate_options;
LLM_API void llm_generate_options_init(llm_generate_options *opts);

/* Picks a token from logits[vocab] with the temperature, top-k, top-p and
 * seed of opts; *counter is the position in the random stream and advances
 * by one (keep it across calls). */
LLM_API llm_status llm_sample_token(const float *logits, int64_t vocab, const llm_generate_options *opts,
                                    uint64_t *counter, int32_t *token);

/* Feeds the prompt (n_prompt >= 1 ids) and generates up to opts->max_tokens
 * tokens, writing them to out (capacity cap; out may be NULL when only the
 * callback is wanted) and their number to *n_out. */
LLM_API llm_status llm_model_generate(llm_model *model, const int32_t *prompt, int64_t n_prompt,
                                      const llm_generate_options *opts, int32_t *out, int64_t cap, int64_t *n_out);

LLM_EXTERN_C_END

#endif /* LLM_GENERATE_H */
