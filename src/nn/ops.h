/* libllm private: small helpers the layers share. */
#ifndef LLM_PRIVATE_OPS_H
#define LLM_PRIVATE_OPS_H

#include "layer_internal.h"

/* A new value shaped like x with the last dimension replaced by `last`
 * (mask carried along while a time axis remains). */
llm_status llm__val_like(llm__graph *g, const llm__val *x, int64_t last, llm__val **out);

/* y = act(z) over rows x cols (softmax per row); y may be z for NONE. */
llm_status llm__act_apply(llm_backend *be, int act, int64_t rows, int64_t cols, const float *z,
                          float *y);
/* dz += d act(z)/dz * dy. */
llm_status llm__act_grad(llm_backend *be, int act, int64_t rows, int64_t cols, const float *z,
                         const float *y, const float *dy, float *dz);

/* y[rows, out] = x[rows, in] W^T + b (W [out, in] as in PyTorch; b may be NULL). */
llm_status llm__linear_forward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                               const float *W, const float *b, float *y);
/* z = x W^T + b and y = act(z) (not softmax), fused where the backend can. */
llm_status llm__linear_act_forward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                   const float *W, const float *b, int act, float *z, float *y);
/* dW += dy^T x, db += column sums of dy (db may be NULL), and dx (+)= dy W
 * when dx is not NULL (accumulate: 1 adds, 0 overwrites). */
llm_status llm__linear_backward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                const float *W, const float *dy, float *dW, float *db, float *dx, int accumulate);

/* Self-attention over a [B, T, 3D] qkv buffer (q, k, v side by side) into
 * att [B, T, D]; lse [B, heads, T] (NULL in inference). mask [B, T] or NULL. */
llm_status llm__self_attention_forward(llm_backend *be, int64_t B, int64_t T, int64_t D, int64_t heads, int causal,
                                       const float *qkv, const float *mask, float *att, float *lse);
/* dqkv [B, T, 3D] += the gradient, given datt. */
llm_status llm__self_attention_backward(llm_backend *be, int64_t B, int64_t T, int64_t D, int64_t heads,
                                        int causal, const float *qkv, const float *mask, const float *att,
                                        const float *lse, const float *datt, float *dqkv);

/* transformer_embedding: adds positions [first, first + T) to each of the B
 * rows of y [B, T, D] (nothing for LLM_POSITIONAL_NONE). */
llm_status llm__add_positions(llm_layer *l, llm__graph *g, float *y, int64_t B, int64_t T, int64_t first);

static inline int64_t llm__rows(const llm__val *v) { return v->numel / v->shape[v->ndim - 1]; }
static inline int64_t llm__last(const llm__val *v) { return v->shape[v->ndim - 1]; }

#endif
