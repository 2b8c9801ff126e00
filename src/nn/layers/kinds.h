/* libllm private: what other modules may know of some layer kinds, and the
 * helpers every kind's file shares.
 *
 * A kind's state (its typed settings and named parameter view) is private to
 * its file unless another module has a reason to read it: the decoder
 * (src/nn/decoder.c) and the GPT-2 reader/writer (src/nn/gpt2*.c) read the
 * Transformer kinds, the layer norm and dense here, by name, never by slot.
 *
 * Adding a layer kind touches: its own file here (descriptor, constructor,
 * build/forward/backward, to_json/from_json), its constructor in
 * include/llm/layer.h, one line in registry.c, docs/FORMAT.md, and its row in
 * tests/test_kinds.c's table. This header only when another module reads its
 * state. */
#ifndef LLM_PRIVATE_LAYER_KINDS_H
#define LLM_PRIVATE_LAYER_KINDS_H

#include "../ops.h"

/* Limits shared by more than one kind, written once (include/llm/layer.h
 * documents them with each option). */
#define LLM__MAX_HEADS 4096
/* a layer-norm epsilon: in (0, 1) (layernorm, transformer_block) */
static inline int llm__eps_ok(float eps) { return eps > 0.0f && eps < 1.0f; }
/* a normal initialisation's standard deviation: finite and >= 0 */
static inline int llm__init_std_ok(float sd) { return sd >= 0.0f && sd < 1e3f; }

/* ---- kinds other modules read ---- */

extern const llm__layer_vt llm__dense_kind, llm__layernorm_kind, llm__dropout_kind, llm__transformer_embedding_kind,
    llm__transformer_block_kind, llm__lm_head_kind, llm__lstm_kind, llm__gru_kind;

typedef struct llm__dense_state {
    llm_dense_options opt;
    struct { llm__param *weight, *bias; } p;    /* bias NULL without use_bias */
} llm__dense_state;

typedef struct llm__layernorm_state {
    float eps;
    struct { llm__param *gamma, *beta; } p;
} llm__layernorm_state;

typedef struct llm__transformer_embedding_state {
    llm_transformer_embedding_options opt;
    struct { llm__param *token, *position; } p; /* position: learned positions only */
    float *host_table;                           /* sinusoidal positions [context, dim], host memory */
} llm__transformer_embedding_state;

typedef struct llm__transformer_block_state {
    llm_transformer_block_options opt;
    int64_t mlp;                                 /* the MLP width built (opt.mlp_hidden or 4 D) */
    struct {
        llm__param *ln1_gamma, *ln1_beta, *qkv_weight, *qkv_bias, *proj_weight, *proj_bias;
        llm__param *ln2_gamma, *ln2_beta, *fc1_weight, *fc1_bias, *fc2_weight, *fc2_bias;
    } p;
} llm__transformer_block_state;

typedef struct llm__lm_head_state {
    llm_lm_head_options opt;
    struct { llm__param *weight; } p;            /* the tied table (l->tied) or its own */
} llm__lm_head_state;

/* The decoder's workspace for one block's decode_step (rows [0, n) of the
 * new tokens; k and v are this block's cache, [ctx, D]). */
struct llm__decode_ws {
    int64_t ctx, D;
    float *x;                 /* [n, D] the rows, updated in place */
    float *h, *qkv, *att, *f, *t, *mean, *rstd; /* scratch: [n, D|3D|D|M|D], [n], [n] */
    float *k, *v;
    const float *kmask;       /* [ctx] 1 = real key, or NULL */
};

/* ---- JSON helpers for to_json / from_json (src/nn/layers/kind_json.c) ----
 * Readers check the JSON type and that the value fits the C type; ranges
 * are the constructors' business. They return 0 when the key is missing or
 * does not fit. */
/* the lo, hi of llm__json_int for any int64_t setting (doubles hold these exactly) */
#define LLM__JSON_I64 (-((int64_t)1 << 53)), ((int64_t)1 << 53)
int llm__json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out);
int llm__json_bool(const cJSON *o, const char *key, int *out);
int llm__json_float(const cJSON *o, const char *key, float *out);
/* A name from names[0..n) to its index. */
int llm__json_enum(const cJSON *o, const char *key, const char *const *names, int n, int *out);
/* NULL with LLM_ERR_FORMAT "layer '<kind>' has missing or invalid settings". */
llm_layer *llm__json_bad(const char *kind);
/* Adds to o; LLM_ERR_OUT_OF_MEMORY when cJSON could not. */
llm_status llm__json_add_int(cJSON *o, const char *key, int64_t v);
llm_status llm__json_add_bool(cJSON *o, const char *key, int v);
llm_status llm__json_add_float(cJSON *o, const char *key, float v);
llm_status llm__json_add_string(cJSON *o, const char *key, const char *v);

extern const char *const llm__activation_names[6]; /* by llm_activation */

#define LLM__STATE(type, l) ((type *)(l)->state)

#endif /* LLM_PRIVATE_LAYER_KINDS_H */
