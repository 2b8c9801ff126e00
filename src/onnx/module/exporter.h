/* The ONNX module's exporters: one function per layer kind of the model file
 * (docs/FORMAT.md), each in the file of its family (export_*.c), found by
 * kind name in module.c's table. An exporter reads its layer's entry of
 * libllm.architecture and its tensors, appends its part of the graph and
 * updates the running value: the graph so far computes v from the model's
 * input, exactly as the libllm layers before it do.
 *
 * Padding: an embedding with mask_zero marks id 0 as padding wherever it
 * stands; libllm's layers then skip those steps (recurrent layers carry
 * their state over them, pooling and attention leave them out). The mask
 * travels with the value as a bool [batch, T] tensor, and the helpers at the
 * end of this header derive what the layers need from it once per graph. */
#ifndef LLM_ONNX_EXPORTER_H
#define LLM_ONNX_EXPORTER_H

#include <cjson/cJSON.h>
#include "../onnx_module.h"
#include "ox.h"

#define EX_MAX_RANK 4

#define EX_CHECK(expr) do { llm_status s_ = (expr); if (s_ != LLM_OK) return s_; } while (0)

/* A value of the graph: [batch, dim[0], ..., dim[rank - 1]]. */
typedef struct ex_val {
    const char *name;
    int rank;                 /* per-sample rank */
    int64_t dim[EX_MAX_RANK];
    int ids;                  /* int64 token ids (the model's input), else float */
    const char *mask;         /* bool [batch, T], true = a real step; NULL: no padding mask */
} ex_val;

typedef struct ex_layer {
    const cJSON *spec;        /* its entry in libllm.architecture */
    const char *kind;
    char name[64];            /* "<kind>_<k>": the prefix of its tensors */
} ex_layer;

/* What the model's output is, which names the graph's output. */
enum { EX_OUT_VALUES = 0, EX_OUT_PROBABILITIES, EX_OUT_LOGITS };

/* What the padding mask gives, each made once on first use (ex_steps). */
typedef struct ex_steps {
    const char *of;           /* the mask they were made from */
    const char *m64;          /* int64 [B, T] 1 / 0 */
    const char *mf;           /* float [B, T] 1 / 0 */
    const char *count;        /* int64 [B, 1]: real steps of each row */
    const char *nonempty;     /* float [B, 1]: 1 when the row has a real step */
    const char *cum;          /* int64 [B, T]: real steps up to and including t */
    const char *order;        /* int64 [B, T]: the real steps' positions first, in order */
    const char *lens;         /* int32 [B]: count, at least 1 (sequence_lens) */
    const char *fwd_index, *fwd_valid, *rev_index, *rev_valid; /* ex_rnn_expand */
} ex_steps;

typedef struct ex_ctx {
    ox *g;
    const llm__onnx_host *host;
    const llm__onnx_view *view;
    const llm__onnx_settings *set;
    const ex_layer *layers;
    int n_layers, at;         /* the layer being exported */
    const char **param_names; /* [view->n_tensors]: initializer made from each tensor, or NULL */
    int out_kind;
    ex_steps steps;
    const char *attn_bias_of; /* attention masks, for one (mask, causal) at a time */
    int attn_bias_causal;
    const char *attn_bias, *attn_any;
} ex_ctx;

typedef llm_status (*ex_export_fn)(ex_ctx *x, const ex_layer *l, ex_val *v);

/* ---- errors ---- */

/* Sets the message "<fn>: <layer>: ..." and returns status. */
llm_status ex_fail(ex_ctx *x, const ex_layer *l, llm_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* LLM_ERR_OUT_OF_MEMORY when the builder failed, else LLM_OK. */
llm_status ex_built(ex_ctx *x, const ex_layer *l);

/* ---- the layer's entry and tensors ---- */

llm_status ex_int(ex_ctx *x, const ex_layer *l, const char *key, int64_t lo, int64_t hi, int64_t *out);
llm_status ex_bool(ex_ctx *x, const ex_layer *l, const char *key, int *out);
llm_status ex_float(ex_ctx *x, const ex_layer *l, const char *key, float lo, float hi, float *out);
/* The index in names[0 .. n) of the entry's string. */
llm_status ex_choice(ex_ctx *x, const ex_layer *l, const char *key, const char *const *names, int n, int *out);
/* The tensor "<prefix>.<local>" with the given shape (ndim 1 or 2). */
llm_status ex_tensor(ex_ctx *x, const ex_layer *l, const char *prefix, const char *local, int ndim, int64_t d0,
                     int64_t d1, const llm__onnx_tensor **out);
/* The same, as an initializer of the graph under its file name (made once). */
llm_status ex_param(ex_ctx *x, const ex_layer *l, const char *prefix, const char *local, int ndim, int64_t d0,
                    int64_t d1, const char **name);
/* Checks v's kind and per-sample rank (rank < 0: any float value). */
llm_status ex_expect(ex_ctx *x, const ex_layer *l, const ex_val *v, int ids, int rank, const char *what);

/* ---- shared pieces of graph ---- */

/* y = v W^T (+ b) over v's last dimension (ONNX Gemm, v flattened to rows
 * when it is a sequence); W [units, in], b [units] or NULL. */
const char *ex_linear(ex_ctx *x, const ex_val *v, const char *W, const char *b, int64_t units);
/* A libllm activation (names as in the file: none, relu, sigmoid, tanh,
 * gelu, softmax) over the last dimension. */
enum { EX_ACT_NONE, EX_ACT_RELU, EX_ACT_SIGMOID, EX_ACT_TANH, EX_ACT_GELU, EX_ACT_SOFTMAX };
extern const char *const ex_act_names[6];
const char *ex_activation(ex_ctx *x, const char *in, int act);
const char *ex_transpose(ex_ctx *x, const char *in, int rank, const int64_t *perm);
/* LayerNormalization over the last dimension. */
const char *ex_layer_norm(ex_ctx *x, const char *in, const char *gamma, const char *beta, float eps);
/* ReduceSum / ReduceMean / ReduceMax over one axis, in the form the opset has. */
const char *ex_reduce(ex_ctx *x, const char *op, const char *in, int64_t axis, int keepdims);

/* The padding mask's derived values (above), made on first use. */
const char *ex_steps_mf(ex_ctx *x, const char *mask);
const char *ex_steps_nonempty(ex_ctx *x, const char *mask);
const char *ex_steps_order(ex_ctx *x, const char *mask, int64_t T);
const char *ex_steps_lens(ex_ctx *x, const char *mask);
/* For a recurrent layer's sequence output over the real steps packed first:
 * at step t the state libllm has there (the last real step's at or before t
 * reading forwards, at or after t reading backwards), as a Gather index into
 * the packed steps and a float [B, T, 1] that is 0 where no real step was
 * read yet (the zero initial state). */
void ex_steps_expand(ex_ctx *x, const char *mask, int reverse, int64_t T, const char **index, const char **valid);

/* ---- the exporters (export_*.c) ---- */

llm_status ex_embedding(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_transformer_embedding(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_lstm(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_gru(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_bidirectional(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_dense(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_activation_layer(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_dropout(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_layernorm(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_global_pool(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_attention(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_transformer_block(ex_ctx *x, const ex_layer *l, ex_val *v);
llm_status ex_lm_head(ex_ctx *x, const ex_layer *l, ex_val *v);

#endif /* LLM_ONNX_EXPORTER_H */
