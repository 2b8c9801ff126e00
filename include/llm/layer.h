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
    int64_t vocab;     /* number of token ids, in [2, 2^31) (id 0 is padding) */
    int64_t dim;       /* vector size, in [1, 2^31) */
    int mask_zero;     /* 1 (default): id 0 is padding; it gets no gradient and
                          marks masked steps for the layers after it, so a
                          recurrent layer returns the state at each sequence's
                          true end whatever the padding side */
    float init_scale;  /* weights uniform in [-s, s], s >= 0; default 0.05 (Keras) */
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
    int64_t units;        /* H in [1, 2^20] */
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
    int64_t units;             /* in [1, 2^31) */
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
 * eps in (0, 1) (1e-5 is usual). */
LLM_API llm_layer *llm_layer_layernorm(float eps);

/* ---- pooling over time: [T, F] -> [F], ignoring masked steps ---- */
LLM_API llm_layer *llm_layer_global_pool(llm_pool_mode mode);

/* ---- Transformers ----
 * A GPT-style language model is a stack of
 *     transformer_embedding -> transformer_block x N (causal) -> layernorm -> lm_head
 * trained with LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS on [T] next-token
 * labels; an encoder classifier is
 *     transformer_embedding -> transformer_block x N (not causal) -> layernorm
 *     -> global_pool(average) -> dense(1, sigmoid).
 * Weights are initialised GPT-2 style (normal, std init_std, biases zero,
 * layer-norm scales one). */

typedef enum llm_positional {
    LLM_POSITIONAL_LEARNED = 0,    /* a trained [context, dim] table (GPT-2) */
    LLM_POSITIONAL_SINUSOIDAL = 1, /* fixed sines and cosines (Vaswani et al.) */
    LLM_POSITIONAL_NONE = 2
} llm_positional;

/* Token plus positional embedding: ids [T] (int32, T <= context) -> [T, dim]. */
typedef struct llm_transformer_embedding_options {
    size_t size;               /* set by _init */
    int64_t vocab;             /* token ids, in [2, 2^31) */
    int64_t context;           /* longest sequence (positions), in [1, 2^20]; default 128 */
    int64_t dim;               /* model width, in [1, 65536] (even for sinusoidal
                                  positions); default 128 */
    llm_positional positional; /* default LLM_POSITIONAL_LEARNED */
    int mask_zero;             /* 1 (default): id 0 is padding; padded keys are
                                  hidden from attention and from pooling */
    float init_std;            /* >= 0; default 0.02 */
    int32_t pad_id;            /* with mask_zero: the id that marks padding, in [0, vocab);
                                  default 0 (a GPT-2 classifier pads with "<|endoftext|>",
                                  llm_bpe_special_ids, since its id 0 is a real token) */
} llm_transformer_embedding_options;
LLM_API void llm_transformer_embedding_options_init(llm_transformer_embedding_options *opts);
LLM_API llm_layer *llm_layer_transformer_embedding(int64_t vocab, int64_t context, int64_t dim);
LLM_API llm_layer *llm_layer_transformer_embedding_ex(const llm_transformer_embedding_options *opts);

/* Multi-head self-attention [T, D] -> [T, D]: one fused QKV projection, scaled
 * dot-product attention per head (causal and/or hiding padded keys; the
 * softmax is computed blockwise and never stored), output projection. */
typedef struct llm_attention_options {
    size_t size;       /* set by _init */
    int64_t heads;     /* in [1, 4096], must divide the input width; default 4 */
    int causal;        /* 1: position t attends to positions <= t; default 1 */
    float init_std;    /* >= 0; default 0.02 */
} llm_attention_options;
LLM_API void llm_attention_options_init(llm_attention_options *opts);
LLM_API llm_layer *llm_layer_attention(int64_t heads, int causal);
LLM_API llm_layer *llm_layer_attention_ex(const llm_attention_options *opts);

/* Pre-LayerNorm Transformer block [T, D] -> [T, D]:
 *     x = x + dropout(attention(layernorm(x)))
 *     x = x + dropout(W2 gelu(W1 layernorm(x)))
 * GELU is the tanh approximation (GPT-2). */
typedef struct llm_transformer_block_options {
    size_t size;       /* set by _init */
    int64_t heads;     /* in [1, 4096], must divide D; default 4 */
    int64_t mlp_hidden;/* width of the MLP, in [0, 2^20]; 0 (default) = 4 D */
    int causal;        /* default 1 (language model); 0 for an encoder */
    float dropout;     /* residual dropout in [0, 1); default 0 */
    float eps;         /* layer-norm epsilon in (0, 1); default 1e-5 */
    float init_std;    /* >= 0; default 0.02 */
} llm_transformer_block_options;
LLM_API void llm_transformer_block_options_init(llm_transformer_block_options *opts);
LLM_API llm_layer *llm_layer_transformer_block(int64_t heads, int causal);
LLM_API llm_layer *llm_layer_transformer_block_ex(const llm_transformer_block_options *opts);

/* Language-model head [T, D] -> [T, vocab] logits, no bias. With tie set
 * (the default) it has no weights of its own: it uses the token table of the
 * nearest transformer_embedding before it (which must have this vocab), so
 * the file stores that table once and both uses train it. */
typedef struct llm_lm_head_options {
    size_t size;       /* set by _init */
    int64_t vocab;     /* in [2, 2^31) */
    int tie;           /* default 1 */
    float init_std;    /* untied weights; >= 0; default 0.02 */
} llm_lm_head_options;
LLM_API void llm_lm_head_options_init(llm_lm_head_options *opts);
LLM_API llm_layer *llm_layer_lm_head(int64_t vocab, int tie);
LLM_API llm_layer *llm_layer_lm_head_ex(const llm_lm_head_options *opts);

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
