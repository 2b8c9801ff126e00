/* libllm: layers.
 *
 * Construction rule (the same for every constructor below): a constructor
 * never returns NULL. When its arguments are bad or memory runs out, the
 * handle it returns carries the error: llm_layer_status() reports it, and
 * llm_model_add() refuses the layer with that status and message. So a model
 * can be written one layer per line:
 *
 *     CHECK(llm_model_add(m, llm_layer_embedding(20000, 64)));
 *     CHECK(llm_model_add(m, llm_layer_lstm(128, LLM_RETURN_LAST)));
 *     CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
 *
 * Ownership: the caller owns a new layer until it passes it to llm_model_add
 * (which takes it in every case, also when it fails) or to a wrapper such as
 * llm_layer_bidirectional (likewise), or frees it with llm_layer_free.
 *
 * Shapes are per sample (the batch dimension is implicit): the input of an
 * Embedding is [T] token ids; a recurrent layer maps [T, F] to [H] or [T, H];
 * Dense, activations, Dropout and LayerNorm act on the last dimension. */
#ifndef LLM_LAYER_H
#define LLM_LAYER_H

#include "common.h"
#include "status.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_layer llm_layer;

typedef enum llm_activation {
    LLM_ACT_NONE = 0,
    LLM_ACT_RELU = 1,
    LLM_ACT_SIGMOID = 2,
    LLM_ACT_TANH = 3,
    LLM_ACT_GELU = 4,   /* tanh approximation */
    LLM_ACT_SOFTMAX = 5 /* over the last dimension */
} llm_activation;

typedef enum llm_return_mode {
    LLM_RETURN_LAST = 0,      /* the state at each sequence's true end: [H] */
    LLM_RETURN_SEQUENCES = 1  /* the state at every step: [T, H] */
} llm_return_mode;

typedef enum llm_pool_mode {
    LLM_POOL_AVERAGE = 0, /* mean over the real (unmasked) steps */
    LLM_POOL_MAX = 1      /* maximum over the real steps */
} llm_pool_mode;

/* ---- Embedding: token ids [T] (int32) -> vectors [T, dim] ---- */
typedef struct llm_embedding_options {
    size_t size;       /* sizeof(llm_embedding_options), set by _init */
    int64_t vocab;     /* number of token ids, >= 2 (id 0 is padding) */
    int64_t dim;       /* vector size, >= 1 */
    int mask_zero;     /* 1 (default): id 0 is padding; it gets no gradient and
                          marks masked steps for the layers after it, so a
                          recurrent layer returns the state at each sequence's
                          true end whatever the padding side */
    float init_scale;  /* weights uniform in [-s, s]; default 0.05 (Keras) */
} llm_embedding_options;
LLM_API void llm_embedding_options_init(llm_embedding_options *opts);
LLM_API llm_layer *llm_layer_embedding(int64_t vocab, int64_t dim);
LLM_API llm_layer *llm_layer_embedding_ex(const llm_embedding_options *opts);

/* ---- LSTM and GRU: [T, F] -> [H] or [T, H] ----
 * PyTorch/Keras semantics. LSTM gates i, f, g, o; GRU gates r, z, n with the
 * reset gate applied after the recurrent product (PyTorch, Keras reset_after).
 * Kernels Glorot-uniform, recurrent kernels orthogonal, biases zero except
 * the LSTM forget gate (1, as Keras' unit_forget_bias). Padded steps (id 0
 * before a masking Embedding) carry the state over unchanged. */
typedef struct llm_recurrent_options {
    size_t size;          /* sizeof(llm_recurrent_options), set by _init */
    int64_t units;        /* H >= 1 */
    llm_return_mode return_mode; /* default LLM_RETURN_LAST */
    int unit_forget_bias; /* LSTM only; default 1 */
    int go_backwards;     /* process the sequence from its end; default 0 */
} llm_recurrent_options;
LLM_API void llm_recurrent_options_init(llm_recurrent_options *opts);
LLM_API llm_layer *llm_layer_lstm(int64_t units, llm_return_mode mode);
LLM_API llm_layer *llm_layer_lstm_ex(const llm_recurrent_options *opts);
LLM_API llm_layer *llm_layer_gru(int64_t units, llm_return_mode mode);
LLM_API llm_layer *llm_layer_gru_ex(const llm_recurrent_options *opts);

/* Runs a recurrent layer forwards and a copy of it backwards and
 * concatenates their outputs ([2H] or [T, 2H]). Takes ownership of `inner`
 * (an LSTM or GRU layer), also on failure. */
LLM_API llm_layer *llm_layer_bidirectional(llm_layer *inner);

/* ---- Dense: [..., F] -> [..., units], y = act(x W^T + b) ---- */
typedef struct llm_dense_options {
    size_t size;               /* sizeof(llm_dense_options), set by _init */
    int64_t units;             /* >= 1 */
    llm_activation activation; /* default LLM_ACT_NONE */
    int use_bias;              /* default 1 */
} llm_dense_options;
LLM_API void llm_dense_options_init(llm_dense_options *opts);
LLM_API llm_layer *llm_layer_dense(int64_t units, llm_activation activation);
LLM_API llm_layer *llm_layer_dense_ex(const llm_dense_options *opts);

/* ---- shape-preserving layers ---- */
/* Element-wise activation (softmax over the last dimension). */
LLM_API llm_layer *llm_layer_activation(llm_activation activation);
/* Inverted dropout: in training, zeroes each element with probability rate
 * in [0, 1) and scales the rest by 1/(1-rate); identity in inference. */
LLM_API llm_layer *llm_layer_dropout(float rate);
/* Layer normalisation over the last dimension with learned scale and shift;
 * eps > 0 (1e-5 is usual). */
LLM_API llm_layer *llm_layer_layernorm(float eps);

/* ---- pooling over time: [T, F] -> [F], ignoring masked steps ---- */
LLM_API llm_layer *llm_layer_global_pool(llm_pool_mode mode);

/* LLM_OK for a usable layer, else the error it carries (the message is
 * available from llm_layer_error()). NULL gives LLM_ERR_INVALID_ARGUMENT. */
LLM_API llm_status llm_layer_status(const llm_layer *layer);
/* The carried error message ("" for a usable layer). Never NULL. */
LLM_API const char *llm_layer_error(const llm_layer *layer);
/* The layer's kind, e.g. "lstm". Never NULL. */
LLM_API const char *llm_layer_kind(const llm_layer *layer);

/* Frees a layer the caller still owns. NULL is a no-op. */
LLM_API void llm_layer_free(llm_layer *layer);

LLM_EXTERN_C_END

#endif /* LLM_LAYER_H */
