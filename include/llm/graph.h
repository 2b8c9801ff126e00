/* libllm: models as graphs of layers (the functional API).
 *
 * A Sequential model (model.h) is a chain: each layer reads the one before
 * it. A functional model lets layers read any earlier node, so it can have
 * several inputs, branches that merge again, and several outputs. The
 * spam classifier with a shared embedding, an LSTM branch and a pooled
 * branch reads:
 *
 *     llm_model *m;  CHECK(llm_model_functional(&m, cpu));
 *     int64_t T = 200;
 *     llm_node *ids, *emb, *seq, *avg, *both, *p;
 *     CHECK(llm_model_input(m, LLM_DTYPE_I32, 1, &T, &ids));
 *     CHECK(llm_model_apply(m, llm_layer_embedding(20000, 64), ids, &emb));
 *     CHECK(llm_model_apply(m, llm_layer_lstm(64, LLM_RETURN_LAST), emb, &seq));
 *     CHECK(llm_model_apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), emb, &avg));
 *     llm_node *branches[2] = { seq, avg };
 *     CHECK(llm_model_merge(m, llm_layer_concatenate(), 2, branches, &both));
 *     CHECK(llm_model_apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), both, &p));
 *     CHECK(llm_model_set_outputs(m, 1, &p));
 *
 * and is then compiled, trained, evaluated, saved, loaded, given a text
 * pipeline and put in an ensemble like any model (model.h). The model file
 * records the graph (docs/FORMAT.md).
 *
 * Nodes. A node (llm_node) is an input or the result of applying a layer;
 * it belongs to its model (valid until llm_model_free, never freed by the
 * caller) and can only be used with that model. A node can only read nodes
 * made before it, so a graph cannot have cycles.
 *
 * Layers and sharing. The first application of a layer gives it to the
 * model, which owns it from then on, also when that call fails (as with
 * llm_model_add; a layer carrying a construction error is refused with its
 * status). Applying the same layer again shares it: one set of parameters,
 * used at both places, whose gradient is the sum of both uses (e.g. one
 * embedding reading two texts). A shared layer must get inputs of the same
 * shape each time. Layers are named by kind in the order of their first
 * application (embedding_0, lstm_0, dense_0, ...), as in Sequential models.
 *
 * Shapes are checked when the model is built (llm_model_build, or the first
 * fit/predict), with errors that name the layer and both shapes.
 *
 * Several inputs. Data for a model with more than one input is passed as
 * one tensor per input, in the order the inputs were made: to
 * llm_model_predict_inputs and to llm_dataset_from_inputs (for fit and
 * evaluate) and to the _inputs forms of train_on_batch and
 * compute_gradients. The single-tensor calls (llm_model_predict, train_on_batch,
 * llm_dataset_from_host, a text pipeline) serve models with one input.
 *
 * Several outputs. llm_model_predict and llm_model_predict_inputs then give
 * [N, total] where each row is the outputs of one example, flattened and
 * side by side in the order given to llm_model_set_outputs. Training needs
 * exactly one output (compile gives LLM_ERR_STATE otherwise): merge the
 * heads with llm_layer_concatenate to train them together.
 *
 * Status codes (the message, llm_last_error, names the call and the cause):
 * LLM_ERR_INVALID_ARGUMENT for a NULL argument, a count or index out of
 * range, a node or layer of another model, a merge layer given to
 * llm_model_apply or a one-input layer to llm_model_merge, an input given as
 * an output or an output named twice; LLM_ERR_DTYPE for an input that is
 * neither int32 nor float32 (and, at build, a merge of int32 nodes);
 * LLM_ERR_SHAPE at build for shapes that do not fit; LLM_ERR_STATE for the
 * graph calls on a Sequential or already-built model, for
 * llm_model_input_info on a Sequential model not yet built, and for an
 * ensemble (which has no graph of its own); LLM_ERR_OUT_OF_MEMORY.
 *
 * Limits: up to 64 inputs and 64 outputs; a merge reads 2 to 8 nodes.
 * Tensors from llm_model_predict_inputs are freed with llm_tensor_free,
 * datasets from llm_dataset_from_inputs with llm_dataset_free. */
#ifndef LLM_GRAPH_H
#define LLM_GRAPH_H

#include "common.h"
#include "status.h"
#include "tensor.h"
#include "layer.h"
#include "dataset.h"
#include "model.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_node llm_node;

/* Creates an empty functional model on a backend (a reference to it is held
 * until llm_model_free, as llm_model_sequential does). Build it with the
 * calls below; llm_model_add is refused on it (LLM_ERR_STATE). */
LLM_API llm_status llm_model_functional(llm_model **out, llm_backend *backend);

/* Declares an input of per-sample shape shape[0..ndim) (no batch
 * dimension), e.g. int32 {200} for token ids or float {8} for numeric
 * features; ndim in [1, LLM_MAX_DIMS - 1]. */
LLM_API llm_status llm_model_input(llm_model *model, llm_dtype dtype, int ndim, const int64_t *shape,
                                   llm_node **out);

/* Applies a one-input layer to a node and gives the node of its result.
 * Ownership of the layer: see Layers and sharing above. */
LLM_API llm_status llm_model_apply(llm_model *model, llm_layer *layer, llm_node *input, llm_node **out);

/* Applies a merge layer (llm_layer_concatenate, _add, _multiply) to n nodes,
 * n in [2, 8], in order (a node may appear more than once). Ownership of the layer as for llm_model_apply. */
LLM_API llm_status llm_model_merge(llm_model *model, llm_layer *layer, int n, llm_node *const *inputs,
                                   llm_node **out);

/* Names the model's outputs (n >= 1, each node once). Needed before build;
 * may be called again until then. */
LLM_API llm_status llm_model_set_outputs(llm_model *model, int n, llm_node *const *outputs);

/* ---- merge layers: n float inputs -> one; no parameters ----
 * The inputs' masks (padding marks from a masking embedding) are carried
 * from the first input that has one. */
/* Joins the inputs along their last dimension; the other dimensions must agree:
 * [T, a] and [T, b] -> [T, a + b]. */
LLM_API llm_layer *llm_layer_concatenate(void);
/* Element-wise sum of inputs of one shape (a residual connection). */
LLM_API llm_layer *llm_layer_add(void);
/* Element-wise product of inputs of one shape (a gate). */
LLM_API llm_layer *llm_layer_multiply(void);

/* ---- queries (any model: a Sequential one with layers has one input and one
 * output; before its first llm_model_add it has none) ---- */
LLM_API llm_status llm_model_num_inputs(const llm_model *model, int *count);
LLM_API llm_status llm_model_num_outputs(const llm_model *model, int *count);
/* dtype, ndim and shape (room for LLM_MAX_DIMS) of input i; for a
 * Sequential model only once it is built. Any out-pointer may be NULL. */
LLM_API llm_status llm_model_input_info(const llm_model *model, int i, llm_dtype *dtype, int *ndim,
                                        int64_t *shape);

/* ---- data for several inputs ---- */

/* llm_model_predict for n inputs: xs[k] is [N, ...] for input k (all with
 * the same N). Thread-safe as llm_model_predict (model.h, Threads). */
LLM_API llm_status llm_model_predict_inputs(llm_model *model, int n, const llm_tensor *const *xs,
                                            llm_tensor **out);

/* llm_model_compute_gradients and llm_model_train_on_batch for n inputs
 * (xs as for llm_model_predict_inputs). */
LLM_API llm_status llm_model_compute_gradients_inputs(llm_model *model, int n, const llm_tensor *const *xs,
                                                      const llm_tensor *y, float *loss);
LLM_API llm_status llm_model_train_on_batch_inputs(llm_model *model, int n, const llm_tensor *const *xs,
                                                   const llm_tensor *y, float *loss, float *accuracy);

/* A dataset of N examples with n inputs: xs[k] [N, ...] (int32 or float) and
 * targets y [N, ...] as in dataset.h; everything is copied. fit, evaluate and
 * llm_dataset_split take it like any dataset; llm_dataset_get gives an
 * example's inputs side by side in one buffer. */
LLM_API llm_status llm_dataset_from_inputs(llm_dataset **out, int n, const llm_tensor *const *xs,
                                           const llm_tensor *y);

LLM_EXTERN_C_END

#endif /* LLM_GRAPH_H */
