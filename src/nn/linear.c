/* The affine map shared by the Transformer layers, and self-attention over a
 * fused QKV buffer: thin wrappers over the backend's GEMM and attention
 * kernels that keep the layer code about shapes, not strides. */
#include <math.h>
#include "ops.h"

llm_status llm__linear_forward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                               const float *W, const float *b, float *y) {
    if (be->ops->linear_forward) return be->ops->linear_forward(be, rows, in, out, x, W, b, LLM__ACT_NONE, NULL, y);
    LLM__CHECK(be->ops->sgemm(be, 0, 1, (int)rows, (int)out, (int)in, 1.0f, x, (int)in, W, (int)in, 0.0f, y,
                              (int)out));
    if (b) LLM__CHECK(be->ops->bias_act_forward(be, LLM__ACT_NONE, rows, out, y, b, y));
    return LLM_OK;
}

llm_status llm__linear_act_forward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                   const float *W, const float *b, int act, float *z, float *y) {
    if (be->ops->linear_forward) return be->ops->linear_forward(be, rows, in, out, x, W, b, act, z, y);
    LLM__CHECK(llm__linear_forward(be, rows, in, out, x, W, b, z));
    return be->ops->bias_act_forward(be, act, rows, out, z, NULL, y);
}

llm_status llm__linear_backward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                const float *W, const float *dy, float *dW, float *db, float *dx, int accumulate) {
    LLM__CHECK(be->ops->sgemm(be, 1, 0, (int)out, (int)in, (int)rows, 1.0f, dy, (int)out, x, (int)in, 1.0f, dW,
                              (int)in));
    if (db) LLM__CHECK(be->ops->bias_backward(be, rows, out, dy, db));
    if (dx)
        LLM__CHECK(be->ops->sgemm(be, 0, 0, (int)rows, (int)in, (int)out, 1.0f, dy, (int)out, W, (int)in,
                                  accumulate ? 1.0f : 0.0f, dx, (int)in));
    return LLM_OK;
}

static llm__attention self_attention(int64_t B, int64_t T, int64_t D, int64_t heads, int causal, const float *qkv,
                                     const float *mask) {
    llm__attention a;
    memset(&a, 0, sizeof a);
    a.B = (int)B;
    a.heads = (int)heads;
    a.head_dim = (int)(D / heads);
    a.Tq = a.Tk = (int)T;
    a.causal = causal;
    a.scale = (float)(1.0 / sqrt((double)a.head_dim));
    a.q = qkv;
    a.k = qkv + D;
    a.v = qkv + 2 * D;
    a.ld_q = a.ld_kv = 3 * D;
    a.bs_q = a.bs_kv = 3 * D * T;
    a.mask = mask;
    a.ld_mask = T;
    a.ld_out = D;
    a.bs_out = D * T;
    return a;
}

llm_status llm__self_attention_forward(llm_backend *be, int64_t B, int64_t T, int64_t D, int64_t heads, int causal,
                                       const float *qkv, const float *mask, float *att, float *lse) {
    if (!be->ops->attention_forward)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "the %s backend has no attention kernel", be->ops->name);
    llm__attention a = self_attention(B, T, D, heads, causal, qkv, mask);
    a.out = att;
    a.lse = lse;
    return be->ops->attention_forward(be, &a);
}

llm_status llm__self_attention_backward(llm_backend *be, int64_t B, int64_t T, int64_t D, int64_t heads,
                                        int causal, const float *qkv, const float *mask, const float *att,
                                        const float *lse, const float *datt, float *dqkv) {
    if (!be->ops->attention_backward)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "the %s backend has no attention kernel", be->ops->name);
    llm__attention a = self_attention(B, T, D, heads, causal, qkv, mask);
    a.out = (float *)att;
    a.lse = (float *)lse;
    a.dout = datt;
    a.dq = dqkv;
    a.dk = dqkv + D;
    a.dv = dqkv + 2 * D;
    return be->ops->attention_backward(be, &a);
}
