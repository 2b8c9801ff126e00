/* libllm private: a model's layers as a graph (the functional API,
 * include/llm/graph.h).
 *
 * Every model holds its computation as a list of nodes in creation order:
 * inputs, and applications of a layer to earlier nodes. A node can only
 * name nodes made before it, so the list is already in topological order
 * and cycles cannot be built. A Sequential model is the special case of one
 * input (its shape set by llm_model_build) and a chain of applications,
 * built by llm_model_add. */
#ifndef LLM_PRIVATE_MODEL_GRAPH_H
#define LLM_PRIVATE_MODEL_GRAPH_H

#include "llm/graph.h"
#include "layer_internal.h"

struct llm_node {
    const struct llm_model *model;  /* the model it belongs to */
    int index;                      /* in the model's node list */
    llm_layer *layer;               /* NULL for an input */
    int input_index;                /* inputs: position among the inputs */
    int n_in;
    struct llm_node **in;           /* the nodes the layer reads */
    llm__shape shape;               /* per sample; inputs: declared, others: set by build */
    int64_t elems;                  /* elements per sample */
    int64_t offset;                 /* inputs: first element in a packed row; outputs likewise */
    int64_t vocab_limit;            /* int32 inputs: ids must be below this (0: no limit) */
};

typedef struct llm__model_graph {
    int functional;                 /* made by llm_model_functional */
    struct llm_node **nodes;
    int n_nodes, cap_nodes;
    struct llm_node **inputs, **outputs;
    int n_inputs, n_outputs, cap_inputs;
} llm__model_graph;

/* Appends the application of layer l (already in the model) to the nodes
 * in[0..n); shapes are checked at build. */
llm_status llm__topo_apply(llm_model *m, llm_layer *l, int n, llm_node *const *in, llm_node **out, const char *fn);
/* Sequential: the implicit input node (shape set at build). */
llm_status llm__topo_chain_input(llm_model *m);

/* Infers every node's shape in order, builds each layer on its first
 * application and checks later applications (shared layers) against it;
 * sets the model's input and output sizes. */
llm_status llm__topo_build(llm_model *m, const char *fn);

/* The forward pass over the nodes: x is B packed rows of the inputs (host),
 * slots has room for one value per node; *y gets the first output. */
llm_status llm__topo_forward(llm_model *m, llm__graph *g, llm__val **slots, const void *x, int64_t B,
                              llm__val **y);
/* Copies the outputs of the last forward pass (slots) into B packed host rows. */
llm_status llm__topo_read_outputs(llm_model *m, llm__val *const *slots, int64_t B, float *out);
/* Validates B packed host rows of inputs (token ranges, finiteness). */
llm_status llm__topo_check_inputs(const llm_model *m, const void *x, int64_t B, const char *fn);

/* Merge layers (src/nn/merge.c); a tape node keeps their inputs in its saved slots. */
#define LLM__MERGE_MAX_INPUTS 8
/* a model's inputs and outputs at most (graph.h says so; the file's graph
 * record is read with the same limits) */
#define LLM__GRAPH_MAX_INPUTS 64
#define LLM__GRAPH_MAX_OUTPUTS 64
int llm__layer_is_merge(const llm_layer *l);
llm_status llm__merge_build(llm_layer *l, int n, const llm__shape *const *in, llm__shape *out);
llm_status llm__merge_forward(llm_layer *l, llm__graph *g, int n, llm__val *const *in, llm__val **out);
/* The merge layer of a kind name ("concatenate", "add", "multiply"), or NULL. */
llm_layer *llm__merge_from_kind(const char *kind);

/* The graph record of the model file (src/nn/graph_io.c): NULL for a
 * Sequential model, else JSON the caller frees with cJSON_free. */
char *llm__topo_record_json(const llm_model *m);
/* Rebuilds the nodes of a functional model from its record; layers[0..n)
 * are the architecture's layers, in order, and are owned by m afterwards
 * (also on failure). */
llm_status llm__topo_record_load(llm_model *m, const char *json, llm_layer **layers, int n);
/* The format version a model's file needs: "2" when it (or an ensemble
 * member) is functional, else "1" so that libllm 1.2 reads it. */
const char *llm__topo_format_version(const llm_model *m);

/* llm_model_summary of a functional model. */
llm_status llm__topo_summary(const llm_model *m, char *buf, size_t len, size_t *needed);

void llm__topo_release(llm__model_graph *gd);

#endif
