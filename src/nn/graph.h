/* libllm private: the autograd tape.
 *
 * A forward pass records coarse nodes (a whole LSTM sequence, a dense layer,
 * a loss) on a tape; backward walks the tape in reverse and each node adds
 * its input gradients. Values and their gradients live in a per-model arena
 * of backend memory that is reset, not freed, between steps: once it has
 * grown to the high-water mark of the first batch, a step allocates nothing. */
#ifndef LLM_PRIVATE_GRAPH_H
#define LLM_PRIVATE_GRAPH_H

#include "../backend.h"
#include "llm/tensor.h"

typedef struct llm__graph llm__graph;
typedef struct llm__node llm__node;

/* A value flowing through the graph: [batch, ...] in backend memory. */
typedef struct llm__val {
    void *data;
    float *grad;          /* same shape, allocated (zeroed) on first use in backward */
    llm_dtype dtype;
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    int64_t numel;
    int requires_grad;
    /* [B, T] of 1 (real step) / 0 (padding) for values with a time axis
     * (dimension 1), or NULL. Follows the value through shape-preserving layers. */
    const float *mask;
    /* When this value is sigmoid(z) or softmax(z), z: losses on probabilities
     * use it to compute in the stable log domain and send the gradient to z. */
    struct llm__val *logits;
    int logits_act;       /* LLM__ACT_SIGMOID or LLM__ACT_SOFTMAX_MARK */
} llm__val;

#define LLM__ACT_SOFTMAX_MARK 100

typedef llm_status (*llm__backward_fn)(llm__graph *g, llm__node *node);

struct llm__node {
    llm__backward_fn backward;
    const void *layer;    /* the layer that recorded it (for its parameters) */
    llm__val *in[3];
    llm__val *out[2];
    void *saved[8];       /* workspace pointers kept for backward */
    int64_t i[8];
    float f[4];
    uint64_t u[2];
};

/* Block of graph-memory: a bump allocator over one backend buffer. */
typedef struct llm__arena {
    void *base;
    size_t cap, used;
    size_t high_water;    /* largest total use seen, including overflow */
    void **overflow;      /* extra blocks taken while the main one was too small */
    int n_overflow, cap_overflow;
    size_t overflow_bytes;
} llm__arena;

struct llm__graph {
    llm_backend *be;
    llm__arena arena;
    llm__val **vals;      /* blocks of values, stable addresses */
    int n_vals, n_val_blocks;
    llm__node *nodes;
    int n_nodes, cap_nodes;
    int training;         /* dropout on, nodes recorded */
    uint64_t dropout_key; /* per step */
};

#define LLM__VAL_BLOCK 128

void llm__graph_init(llm__graph *g, llm_backend *be);
void llm__graph_release(llm__graph *g);
/* Forgets every value and node; keeps (and consolidates) the memory. */
llm_status llm__graph_reset(llm__graph *g, int training);

/* Backend memory for the current step, 64-byte aligned. */
llm_status llm__graph_alloc(llm__graph *g, size_t bytes, void **out);
/* Same, zeroed. */
llm_status llm__graph_alloc_zero(llm__graph *g, size_t bytes, void **out);

/* A new value with its own buffer (uninitialised) of the given shape. */
llm_status llm__graph_val(llm__graph *g, llm_dtype dtype, int ndim, const int64_t *shape,
                          llm__val **out);
/* A value that uses existing memory (e.g. a parameter view). */
llm_status llm__graph_val_view(llm__graph *g, void *data, float *grad, llm_dtype dtype, int ndim,
                               const int64_t *shape, llm__val **out);
/* The value's gradient buffer, allocated and zeroed on first use. */
llm_status llm__graph_grad(llm__graph *g, llm__val *v, float **grad);

/* Records a node (only in training mode; returns NULL in inference, which
 * callers treat as "nothing to record"). Out of memory is reported. */
llm_status llm__graph_node(llm__graph *g, llm__backward_fn backward, llm__node **out);

/* Runs every recorded node's backward in reverse order, skipping nodes
 * whose outputs received no gradient. */
llm_status llm__graph_backward(llm__graph *g);

#endif /* LLM_PRIVATE_GRAPH_H */
