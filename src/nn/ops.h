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

static inline int64_t llm__rows(const llm__val *v) { return v->numel / v->shape[v->ndim - 1]; }
static inline int64_t llm__last(const llm__val *v) { return v->shape[v->ndim - 1]; }

#endif
