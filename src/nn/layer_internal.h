/* libllm private: what a layer is made of.
 *
 * Each layer kind supplies a small vtable: build (infer the output shape and
 * declare parameters from the input shape), forward (compute on the graph and
 * record a node whose backward adds input and parameter gradients) and an
 * optional destroy. Parameters are declared with their shape and initialiser;
 * the model places them in its contiguous parameter buffer. */
#ifndef LLM_PRIVATE_LAYER_INTERNAL_H
#define LLM_PRIVATE_LAYER_INTERNAL_H

#include "llm/layer.h"
#include "graph.h"
#include "../core/internal.h"

/* Per-sample shape (no batch dimension). */
typedef struct llm__shape {
    llm_dtype dtype;
    int ndim;
    int64_t d[LLM_MAX_DIMS];
} llm__shape;

enum {
    LLM__INIT_ZEROS = 0,
    LLM__INIT_ONES,
    LLM__INIT_UNIFORM,     /* U(-arg, arg) */
    LLM__INIT_GLOROT,      /* U(-l, l), l = sqrt(6 / (fan_in + fan_out)), shape [out, in] */
    LLM__INIT_ORTHOGONAL,  /* [G*H, H]: orthonormal columns (Keras' orthogonal (H, G*H) kernel, transposed) */
    LLM__INIT_LSTM_BIAS,   /* zeros, forget-gate quarter ones */
    LLM__INIT_NORMAL       /* N(0, arg^2) */
};

#define LLM__MAX_PARAMS 16

typedef struct llm__param {
    char name[24];        /* local name, e.g. "weight_ih" */
    int ndim;
    int64_t shape[2];
    int64_t numel;
    int init;
    float init_arg;
    size_t offset;        /* in floats, into the model's parameter buffer */
    float *data, *grad;   /* backend memory, set when the model allocates */
    int torch_bias_pair;  /* files hold it as <name>_ih + <name>_hh (PyTorch's two LSTM biases) */
} llm__param;

typedef struct llm__layer_vt {
    const char *kind;
    llm_status (*build)(llm_layer *l, const llm__shape *in, llm__shape *out);
    llm_status (*forward)(llm_layer *l, llm__graph *g, llm__val *x, llm__val **y);
    void (*destroy)(llm_layer *l);
} llm__layer_vt;

struct llm_layer {
    const llm__layer_vt *vt;
    llm_status status;    /* carried construction error */
    char *error;
    char name[48];        /* set by the model: "<kind>_<k>" (or "<wrapper>.forward") */
    llm__param params[LLM__MAX_PARAMS];
    int n_params;
    llm__shape in, out;
    uint64_t seed;        /* set by the model, for dropout */
    int64_t opt_i[6];     /* kind-specific settings */
    float opt_f[4];
    llm_layer *inner[2];  /* wrapped layers (bidirectional) */
    llm__param *tied;     /* lm_head: the token table it shares, set by the model's build */
    float *host_table;    /* host memory owned by the layer (sinusoidal positions) */
    const void *owner;    /* the model that took it (llm_model_add / llm_model_apply), or NULL */
};

/* A layer carrying an error; never NULL (a static one when out of memory). */
llm_layer *llm__layer_error(llm_status status, const char *fmt, ...) LLM__PRINTF(2, 3);
/* A zeroed layer of a kind, or an error layer. */
llm_layer *llm__layer_new(const llm__layer_vt *vt);
/* Declares a parameter during build. */
llm_status llm__layer_param(llm_layer *l, const char *name, int ndim, int64_t d0, int64_t d1,
                            int init, float init_arg);

/* The recurrent layers' sequence computation, shared with bidirectional. */
extern const llm__layer_vt llm__lstm_vt, llm__gru_vt, llm__embedding_vt;
extern const llm__layer_vt llm__transformer_embedding_vt, llm__transformer_block_vt, llm__attention_vt,
    llm__lm_head_vt;

/* The number of token ids a layer reads when it is an embedding of either
 * kind (its opt_i[0]), else 0. */
int64_t llm__layer_input_vocab(const llm_layer *l);

/* Shape helpers for error messages. */
void llm__shape_str(const llm__shape *s, char *buf, size_t len);

#endif /* LLM_PRIVATE_LAYER_INTERNAL_H */
