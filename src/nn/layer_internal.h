/* libllm private: what a layer is made of.
 *
 * Each layer kind is a module under src/nn/layers/ that supplies a
 * descriptor (llm__layer_vt): build (infer the output shape and declare
 * parameters from the input shape), forward (compute on the graph and record
 * a node whose backward adds input and parameter gradients), its file-format
 * entry (to_json / from_json) and optional hooks. A layer's settings and its
 * named parameter view live in its kind's own state struct (l->state), never
 * in positional slots. Parameters are declared with their shape and
 * initialiser; the model places them in its contiguous parameter buffer. */
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

typedef struct cJSON cJSON;
typedef struct llm__decode_ws llm__decode_ws;

/* A layer kind: everything about it lives in its own file under
 * src/nn/layers/ and is reached through this descriptor; the registry
 * (src/nn/layers/registry.c) lists every kind. */
typedef struct llm__layer_vt {
    const char *kind;     /* the name in files and summaries, e.g. "lstm" */
    size_t state_size;    /* bytes of l->state: the kind's typed settings and its
                             named parameter view, zeroed by llm__layer_new */
    /* infer the output shape and declare the parameters (filling the view) */
    llm_status (*build)(llm_layer *l, const llm__shape *in, llm__shape *out);
    /* compute on the graph and record a node whose backward adds input and
     * parameter gradients */
    llm_status (*forward)(llm_layer *l, llm__graph *g, llm__val *x, llm__val **y);
    void (*destroy)(llm_layer *l);   /* may be NULL: frees what state points to */
    /* the file format (docs/FORMAT.md): the kind's settings into the layer's
     * architecture entry o ("kind" is written by the caller) ... */
    llm_status (*to_json)(const llm_layer *l, cJSON *o);
    /* ... and back: a new layer through the public constructor, which holds
     * the only copy of the validation rules (a layer carrying an error when
     * a value is out of range), or NULL with LLM_ERR_FORMAT set when a
     * setting is missing or of the wrong JSON type. depth: nesting (wrappers). */
    llm_layer *(*from_json)(const cJSON *o, int depth);
    /* optional: the parameter this layer shares with an earlier one (a tied
     * lm_head: the token table of the transformer_embedding before it), found
     * by the model's build among the n layers before it; NULL when none */
    llm__param *(*shared)(llm_layer *l, llm_layer *const *before, int n);
    /* optional: the number of token ids the layer reads (embeddings), else 0 */
    int64_t (*input_vocab)(const llm_layer *l);
    /* optional: incremental decoding (src/nn/decoder.c) of n new rows at
     * positions [p, p + n) in the decoder's workspace */
    llm_status (*decode_step)(const llm_layer *l, llm_backend *be, const llm__decode_ws *ws, int64_t p, int64_t n);
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
    void *state;          /* the kind's own struct (vt->state_size bytes) */
    llm_layer *inner[2];  /* wrapped layers (bidirectional) */
    llm__param *tied;     /* set by the model's build from vt->shared */
    const void *owner;    /* the model that took it (llm_model_add / llm_model_apply), or NULL */
};

/* A layer carrying an error; never NULL (a static one when out of memory). */
llm_layer *llm__layer_error(llm_status status, const char *fmt, ...) LLM__PRINTF(2, 3);
/* A zeroed layer of a kind with its zeroed state, or an error layer. */
llm_layer *llm__layer_new(const llm__layer_vt *vt);
/* Declares a parameter during build; *view (may be NULL) gets it, for the
 * kind's named view. */
llm_status llm__layer_param(llm_layer *l, const char *name, int ndim, int64_t d0, int64_t d1,
                            int init, float init_arg, llm__param **view);

/* The number of token ids a layer reads when it is an embedding of either
 * kind, else 0. */
int64_t llm__layer_input_vocab(const llm_layer *l);

/* Shape helpers for error messages. */
void llm__shape_str(const llm__shape *s, char *buf, size_t len);

/* ---- the registry of kinds (src/nn/layers/registry.c) ---- */
/* The kind named `name`, or NULL. */
const llm__layer_vt *llm__kind_find(const char *name);
/* The i-th registered kind, i in [0, llm__kind_count()), in registry order. */
int llm__kind_count(void);
const llm__layer_vt *llm__kind_at(int i);
/* A layer's architecture entry (a new cJSON object) or NULL when out of memory. */
cJSON *llm__layer_to_json(const llm_layer *l);
/* A layer from its architecture entry: see llm__layer_vt.from_json. */
llm_layer *llm__layer_from_json(const cJSON *o, int depth);

#endif /* LLM_PRIVATE_LAYER_INTERNAL_H */
