/* libllm private: the backend vtable.
 *
 * One static const table per backend (src/cpu/, later src/gpu/). Every pointer
 * argument named like data is backend memory (device memory on a GPU); the
 * core never dereferences it. Shapes are given per argument as [rows, cols];
 * "ld" is the row stride in elements. Matrices are row-major. Kernels whose
 * documentation says "+=" accumulate into their output (backward passes), all
 * others overwrite. Every slot returns a status; optional slots may be NULL
 * and the core checks before calling. */
#ifndef LLM_PRIVATE_BACKEND_H
#define LLM_PRIVATE_BACKEND_H

#include <stdint.h>
#include <stddef.h>
#include "llm/backend.h"
#include "llm/status.h"
#include "llm/layer.h"
#include "llm/optimizer.h"

#ifdef __cplusplus /* the CUDA module includes this header too */
#  define LLM__STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#  define LLM__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Activation ids shared by all kernels. Equal to the public llm_activation
 * values (include/llm/layer.h), which layers pass straight through; softmax
 * has kernels of its own. */
enum {
    LLM__ACT_NONE = 0,
    LLM__ACT_RELU = 1,
    LLM__ACT_SIGMOID = 2,
    LLM__ACT_TANH = 3,
    LLM__ACT_GELU = 4  /* tanh approximation, as GPT-2 and PyTorch approximate='tanh' */
};
LLM__STATIC_ASSERT(LLM__ACT_NONE == (int)LLM_ACT_NONE && LLM__ACT_RELU == (int)LLM_ACT_RELU &&
                   LLM__ACT_SIGMOID == (int)LLM_ACT_SIGMOID && LLM__ACT_TANH == (int)LLM_ACT_TANH &&
                   LLM__ACT_GELU == (int)LLM_ACT_GELU,
                   "LLM__ACT_* must equal llm_activation (include/llm/layer.h)");

/* Arguments of one LSTM time step (gate order i, f, g, o as in PyTorch).
 * B rows (batch), H units. Row b of an argument X is at X + b * ld_X. */
typedef struct llm__lstm_step {
    int B, H;
    const float *xw;     int64_t ld_xw;    /* [B, 4H] x_t W_ih^T + bias */
    const float *gh;                        /* [B, 4H] contiguous: h_{t-1} W_hh^T; NULL when
                                               xw already holds x_t W_ih^T + bias + h_{t-1} W_hh^T */
    const float *h_prev; int64_t ld_hprev; /* [B, H], NULL = zero state */
    const float *c_prev; int64_t ld_cprev; /* [B, H], NULL = zero state */
    const float *mask;   int64_t ld_mask;  /* [B] 1 = real step, 0 = padding (state carried over); NULL = all real */
    float *gates;        int64_t ld_gates; /* out [B, 4H]: activated i, f, g, o */
    float *c;            int64_t ld_c;     /* out [B, H] cell state */
    float *h;            int64_t ld_h;     /* out [B, H] hidden state */
    float *h2;           int64_t ld_h2;    /* optional second copy of h (NULL = none) */
} llm__lstm_step;

/* Backward of one LSTM step. dh_total = dh_next + dy (dy optional). */
typedef struct llm__lstm_step_grad {
    int B, H;
    const float *gates;  int64_t ld_gates; /* [B, 4H] from forward */
    const float *c;      int64_t ld_c;     /* [B, H] c_t */
    const float *c_prev; int64_t ld_cprev; /* [B, H] c_{t-1}, NULL = zeros */
    const float *mask;   int64_t ld_mask;  /* [B] or NULL */
    const float *dy;     int64_t ld_dy;    /* [B, H] gradient from the output at step t, NULL = none */
    float *dh_next;                         /* [B, H] contiguous, in: dL/dh_t from step t+1;
                                               out: the part of dL/dh_{t-1} that bypasses W_hh
                                               (dh for padded rows, 0 otherwise) */
    float *dc;                              /* [B, H] contiguous, in: dL/dc_t from step t+1; out: dL/dc_{t-1} */
    float *dgates;       int64_t ld_dgates;/* out [B, 4H] gradient w.r.t. gate pre-activations (0 for padded rows) */
} llm__lstm_step_grad;

/* A whole LSTM layer's recurrence, all T steps in one call (the optional
 * sequence slots). Layout batch-major [B, T, X]; the steps run t = 0..T-1,
 * or T-1..0 when reverse. Forward computes, step by step, exactly what the
 * per-step path does (gh = h_{t-1} W_hh^T, then lstm_step_forward). Backward
 * does what the per-step backward loop does (lstm_step_backward, then
 * dh += dgates W_hh for all but the last step run). */
typedef struct llm__lstm_sequence {
    int B, T, H, reverse;
    const float *W_hh;   /* [4H, H] */
    const float *mask;   /* [B, T] 1 = real step, 0 = padding; NULL = all real */
    /* forward */
    float *xw;           /* [B, T, 4H] x W_ih^T + bias; may be overwritten (the CPU adds the
                            recurrent product into it, step by step) */
    float *gates;        /* out [B, T, 4H] activated i, f, g, o (backward: in) */
    float *c;            /* out [B, T, H] cell states (backward: in) */
    float *h;            /* out [B, T, H] hidden states */
    float *hprev;        /* out [B, T, H] the state entering each step; the first step's entry
                            is left as it is (zero-filled by the caller); NULL = not wanted */
    /* backward */
    const float *dy;     /* [B, T, H] gradient from the outputs, NULL = none */
    float *dh;           /* [B, H] in: dL/dh after the last step; clobbered */
    float *dc;           /* [B, H] in: zeros; clobbered */
    float *dgates;       /* out [B, T, 4H] gradient w.r.t. the gate pre-activations */
    float *dbias;        /* optional, [4H]: a backend may add dgates' column sums (the bias
                            gradient) here on the way, saving the caller a pass over dgates;
                            it then sets *dbias_added. NULL = not wanted */
    float *dbias_rows;   /* [B, 4H] scratch for that: each row's sums, added in row order */
    int *dbias_added;    /* out, with dbias: 1 when the sums were added */
    float *scratch;      /* forward: 4H * H floats the backend may use (the CPU packs W_hh^T
                            there once per sequence), or NULL */
} llm__lstm_sequence;

/* A whole LSTM layer's forward, the input projection included (the
 * optional lstm_layer_forward slot): what copy_rows of the bias, the sgemm
 * xw = bias + x W_ih^T and lstm_sequence_forward compute together, in one
 * call, so a backend can fuse them (the CPU never writes xw for a batch,
 * packs the weights once per call and runs the gate math on the product's
 * registers). Layout batch-major as llm__lstm_sequence. Training passes
 * gates, c and hprev (the backward's inputs, as the sequence slot writes
 * them); inference passes NULL for them; h and/or h_last are the outputs
 * wanted. */
typedef struct llm__lstm_layer {
    int B, T, E, H, reverse;
    const float *x;      /* [B, T, E] */
    const float *W_ih;   /* [4H, E] */
    const float *bias;   /* [4H] */
    const float *W_hh;   /* [4H, H] */
    const float *mask;   /* [B, T] 1 = real step, 0 = padding; NULL = all real */
    float *gates;        /* out [B, T, 4H] activated i, f, g, o, or NULL */
    float *c;            /* out [B, T, H] cell states, or NULL (with gates) */
    float *h;            /* out [B, T, H] hidden states, or NULL */
    float *hprev;        /* out [B, T, H] the state entering each step (zero for the first), or
                            NULL */
    float *h_last;       /* out [B, H] the state after the last step run, or NULL */
    float *work;         /* workspace of LLM__LSTM_LAYER_WORK(B, T, E, H) floats */
} llm__lstm_layer;
#define LLM__LSTM_LAYER_WORK(B, T, E, H) \
    ((size_t)4 * (H) * ((size_t)(E) + (H) + 1) + (size_t)(B) * (T) * 4 * (H) + \
     (size_t)(B) * (2 * ((size_t)(E) + (H)) + (H)))

/* One GRU step, PyTorch semantics (gate order r, z, n; reset applied after
 * the recurrent product: n = tanh(xn + r * (W_hn h + b_hn))). */
typedef struct llm__gru_step {
    int B, H;
    const float *xw;     int64_t ld_xw;    /* [B, 3H] x_t W_ih^T + b_ih */
    const float *gh;                        /* [B, 3H] contiguous: h_{t-1} W_hh^T + b_hh */
    const float *h_prev; int64_t ld_hprev; /* [B, H], NULL = zeros */
    const float *mask;   int64_t ld_mask;  /* [B] or NULL */
    float *gates;        int64_t ld_gates; /* out [B, 4H]: r, z, n, and (W_hn h + b_hn) saved for backward */
    float *h;            int64_t ld_h;     /* out [B, H] */
    float *h2;           int64_t ld_h2;    /* optional copy of h, NULL = none */
} llm__gru_step;

typedef struct llm__gru_step_grad {
    int B, H;
    const float *gates;  int64_t ld_gates; /* [B, 4H] from forward */
    const float *h_prev; int64_t ld_hprev; /* [B, H], NULL = zeros */
    const float *mask;   int64_t ld_mask;  /* [B] or NULL */
    const float *dy;     int64_t ld_dy;    /* [B, H] or NULL */
    float *dh_next;                         /* [B, H] contiguous, in: dL/dh_t from t+1; out: direct part of dL/dh_{t-1} (z * dh, or dh for padded rows) */
    float *dxw;          int64_t ld_dxw;   /* out [B, 3H] gradient w.r.t. xw (0 for padded rows) */
    float *dgh;          int64_t ld_dgh;   /* out [B, 3H] gradient w.r.t. gh (0 for padded rows) */
} llm__gru_step_grad;

/* Multi-head scaled dot-product attention, the heads side by side in the
 * feature dimension (head h uses columns [h*head_dim, (h+1)*head_dim)).
 * Per batch item b: Tq query rows against Tk key/value rows. Query row i sits
 * at absolute position q_offset + i; with causal set it sees key j only when
 * j <= q_offset + i (q_offset > 0 is incremental decoding against a KV cache).
 * mask[b, j] = 0 hides key j (padding). A query row that sees no key gets a
 * zero output and lse = -inf. Nothing of size Tq x Tk is kept: backward
 * recomputes the scores from q, k and the saved log-sum-exp. */
typedef struct llm__attention {
    int B, heads, head_dim;
    int Tq, Tk, q_offset, causal;
    float scale;                                  /* usually 1/sqrt(head_dim) */
    const float *q;    int64_t ld_q, bs_q;        /* [B, Tq, heads*head_dim]: row / batch strides in floats */
    const float *k, *v; int64_t ld_kv, bs_kv;     /* [B, Tk, heads*head_dim], same strides for k and v */
    const float *mask; int64_t ld_mask;           /* [B, Tk] key mask (1 real, 0 hidden), batch stride ld_mask; NULL = all real */
    float *out;        int64_t ld_out, bs_out;    /* [B, Tq, heads*head_dim] (forward: overwritten) */
    float *lse;                                   /* [B, heads, Tq] contiguous; forward writes it when not NULL */
    /* backward only: dq, dk, dv share the layouts of q, k, v and are accumulated (+=) */
    const float *dout;                            /* layout of out */
    float *dq, *dk, *dv;
} llm__attention;

/* Pooling and optimizer kinds of the kernels. The layers and the optimizer
 * convert from the public enums by name, but the values are kept equal so
 * that a cast would not be a bug either. */
enum { LLM__POOL_AVG = 0, LLM__POOL_MAX = 1 };
LLM__STATIC_ASSERT(LLM__POOL_AVG == (int)LLM_POOL_AVERAGE && LLM__POOL_MAX == (int)LLM_POOL_MAX,
                   "LLM__POOL_* must equal llm_pool_mode (include/llm/layer.h)");

enum {
    LLM__OPT_SGD = 0,
    LLM__OPT_ADAM = 1,
    LLM__OPT_ADAMW = 2
};
LLM__STATIC_ASSERT(LLM__OPT_SGD == (int)LLM_OPTIMIZER_SGD && LLM__OPT_ADAM == (int)LLM_OPTIMIZER_ADAM &&
                   LLM__OPT_ADAMW == (int)LLM_OPTIMIZER_ADAMW,
                   "LLM__OPT_* must equal llm_optimizer_kind (include/llm/optimizer.h)");

/* One optimizer update over n contiguous parameters. grad is multiplied by
 * grad_scale first (gradient clipping). Adam: bias corrections bc1 = 1 -
 * beta1^t, bc2 = 1 - beta2^t are precomputed by the caller. weight_decay is
 * L2 added to the gradient for SGD and Adam, decoupled (p -= lr*wd*p) for AdamW. */
typedef struct llm__opt_update {
    int kind;
    int64_t n;
    float lr, beta1, beta2, eps, weight_decay, momentum, grad_scale, bc1, bc2;
    int nesterov;
} llm__opt_update;

/* Capability flags of a backend (llm__backend_ops.caps). Optional kernels
 * are not flags: their slots are NULL when missing. */
enum {
    /* Backend memory is ordinary host memory: the core may hand a buffer
     * straight to code that reads and writes host memory (MPI, a file
     * write) instead of staging it through copy_d2h / copy_h2d. */
    LLM__BACKEND_HOST_MEMORY = 1u << 0
};

typedef struct llm__backend_ops {
    const char *name;
    unsigned caps;  /* LLM__BACKEND_* flags */

    /* ---- memory ---- */
    llm_status (*alloc)(llm_backend *be, size_t bytes, void **out);
    void (*free)(llm_backend *be, void *ptr);
    llm_status (*memset_zero)(llm_backend *be, void *dst, size_t bytes);
    llm_status (*copy_h2d)(llm_backend *be, void *dst, const void *src, size_t bytes);
    llm_status (*copy_d2h)(llm_backend *be, void *dst, const void *src, size_t bytes);
    llm_status (*copy_d2d)(llm_backend *be, void *dst, const void *src, size_t bytes);
    llm_status (*synchronize)(llm_backend *be); /* optional */

    /* ---- BLAS ---- */
    /* C[m,n] = alpha * op(A) op(B) + beta * C, op(A) [m,k], op(B) [k,n]. */
    llm_status (*sgemm)(llm_backend *be, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc);
    /* batch independent products, matrix i at a + i*stride_a etc. */
    llm_status (*sgemm_batched)(llm_backend *be, int trans_a, int trans_b, int m, int n, int k,
                                float alpha, const float *a, int lda, int64_t stride_a,
                                const float *b, int ldb, int64_t stride_b, float beta,
                                float *c, int ldc, int64_t stride_c, int batch);

    /* ---- element-wise ---- */
    llm_status (*fill)(llm_backend *be, int64_t n, float value, float *x);             /* x[n] = value */
    llm_status (*fill_i32)(llm_backend *be, int64_t n, int32_t value, int32_t *x);
    llm_status (*axpy)(llm_backend *be, int64_t n, float alpha, const float *x, float *y); /* y += alpha x */
    llm_status (*scale)(llm_backend *be, int64_t n, float alpha, float *x);            /* x *= alpha */
    llm_status (*add)(llm_backend *be, int64_t n, const float *a, const float *b, float *out); /* out = a + b */
    llm_status (*mul)(llm_backend *be, int64_t n, const float *a, const float *b, float *out); /* out = a * b */
    /* 2-D strided copy: dst[r, c] (+)= src[r, c] for r < rows, c < cols
     * (ld_src 0 repeats one row: a bias broadcast). */
    llm_status (*copy_rows)(llm_backend *be, int64_t rows, int64_t cols, const float *src,
                            int64_t ld_src, float *dst, int64_t ld_dst, int accumulate);

    /* ---- activations ---- */
    /* y[rows, cols] = act(x + bias), bias [cols] or NULL; y may equal x. */
    llm_status (*bias_act_forward)(llm_backend *be, int act, int64_t rows, int64_t cols,
                                   const float *x, const float *bias, float *y);
    /* Optional fused affine map: z = x W^T + b (x [rows, in], W [out, in],
     * b [out] or NULL), y = act(z) (not softmax); z may be NULL, or y itself
     * for LLM__ACT_NONE. One pass over the output while it is in cache
     * instead of a GEMM and then a separate bias/activation pass. */
    llm_status (*linear_forward)(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                 const float *W, const float *b, int act, float *z, float *y);
    /* dx += dy * act'(.), given the activation output y (and input x where
     * the derivative needs it: GELU). x may be NULL for the others. */
    llm_status (*act_backward)(llm_backend *be, int act, int64_t n, const float *x,
                               const float *y, const float *dy, float *dx);
    /* dbias[cols] += column sums of d[rows, cols] */
    llm_status (*bias_backward)(llm_backend *be, int64_t rows, int64_t cols, const float *d,
                                float *dbias);
    /* y[rows, cols] = softmax over each row of x, numerically stable. */
    llm_status (*softmax_forward)(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                  float *y);
    /* dx += y * (dy - sum(dy * y)) per row */
    llm_status (*softmax_backward)(llm_backend *be, int64_t rows, int64_t cols, const float *y,
                                   const float *dy, float *dx);
    /* y = (x - mean) * rstd * gamma + beta per row; saves mean[rows], rstd[rows]. */
    llm_status (*layernorm_forward)(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                    const float *gamma, const float *beta, float eps, float *y,
                                    float *mean, float *rstd);
    /* dx += ..., dgamma += ..., dbeta += ...; workspace: 2 * rows floats of
     * backend memory for the kernel's own use (the CPU keeps its double row
     * means there; a backend may ignore it). Callers take it from the step's
     * arena, so a training step allocates nothing. */
    llm_status (*layernorm_backward)(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                     const float *gamma, const float *mean, const float *rstd,
                                     const float *dy, float *dx, float *dgamma, float *dbeta,
                                     float *workspace);

    /* ---- embedding ---- */
    /* out[n, dim] = weight[ids[i], :]; mask[n] = ids[i] != pad (if mask and pad >= 0).
     * ids must be in [0, vocab): the core validates them on the host. */
    llm_status (*embedding_forward)(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                    const float *weight, int pad, float *out, float *mask);
    /* dweight[ids[i], :] += dout[i, :], skipping ids equal to pad (pad < 0: none). */
    llm_status (*embedding_backward)(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                     const float *dout, int pad, float *dweight);

    /* ---- recurrent steps ---- */
    llm_status (*lstm_step_forward)(llm_backend *be, const llm__lstm_step *s);
    llm_status (*lstm_step_backward)(llm_backend *be, const llm__lstm_step_grad *s);
    llm_status (*gru_step_forward)(llm_backend *be, const llm__gru_step *s);
    llm_status (*gru_step_backward)(llm_backend *be, const llm__gru_step_grad *s);
    /* Optional: the whole recurrence in one call (see llm__lstm_sequence).
     * *done = 0 (with LLM_OK) when this backend cannot take these sizes; the
     * core then runs the per-step slots. */
    llm_status (*lstm_sequence_forward)(llm_backend *be, const llm__lstm_sequence *s, int *done);
    llm_status (*lstm_sequence_backward)(llm_backend *be, const llm__lstm_sequence *s, int *done);
    /* Optional: a whole LSTM layer's forward (see llm__lstm_layer); *done = 0
     * when this backend cannot take these sizes (the core then runs the
     * projection and the sequence slot or the steps). */
    llm_status (*lstm_layer_forward)(llm_backend *be, const llm__lstm_layer *s, int *done);

    /* ---- attention (see llm__attention) ---- */
    llm_status (*attention_forward)(llm_backend *be, const llm__attention *a);
    /* needs q, k, v, mask, out, lse (from forward) and dout; dq, dk, dv += */
    llm_status (*attention_backward)(llm_backend *be, const llm__attention *a);

    /* ---- pooling over time ---- */
    /* x [B, T, F], mask [B, T] or NULL -> y [B, F]. Average over real steps
     * (all steps when mask NULL; 0 for rows with none), or maximum (argmax [B, F]
     * saved as int32 time index for backward; -1 for rows with no real step). */
    llm_status (*pool_forward)(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                               const float *x, const float *mask, float *y, int32_t *argmax);
    /* dx [B, T, F] += ... */
    llm_status (*pool_backward)(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                const float *mask, const int32_t *argmax, const float *dy,
                                float *dx);

    /* ---- dropout (counter-based RNG: element i keeps iff
     *      llm__rng_uniform(seed, counter + i) >= rate) ---- */
    /* y (+)= x * keep / (1 - rate). Used for forward (accumulate 0) and for
     * backward with dy, dx (accumulate 1). */
    llm_status (*dropout)(llm_backend *be, int64_t n, float rate, uint64_t seed, uint64_t counter,
                          const float *x, float *y, int accumulate);

    /* ---- losses: mean over the n elements (rows). *loss is a single float in
     *      backend memory (overwritten); d (if not NULL) += dL/dinput * grad_scale ---- */
    /* binary cross-entropy on logits z, targets t in [0,1] */
    llm_status (*loss_bce_logits)(llm_backend *be, int64_t n, const float *z, const float *t,
                                  float grad_scale, float *loss, float *dz);
    /* binary cross-entropy on probabilities p (clamped to [eps, 1-eps], eps = 1e-7 like Keras) */
    llm_status (*loss_bce_probs)(llm_backend *be, int64_t n, const float *p, const float *t,
                                 float grad_scale, float *loss, float *dp);
    /* sparse categorical cross-entropy on logits z [rows, classes], labels int32 */
    llm_status (*loss_sce_logits)(llm_backend *be, int64_t rows, int64_t classes, const float *z,
                                  const int32_t *labels, float grad_scale, float *loss, float *dz);
    /* the same on probabilities (clamped like bce) */
    llm_status (*loss_sce_probs)(llm_backend *be, int64_t rows, int64_t classes, const float *p,
                                 const int32_t *labels, float grad_scale, float *loss, float *dp);
    /* mean squared error over n elements */
    llm_status (*loss_mse)(llm_backend *be, int64_t n, const float *y, const float *t,
                           float grad_scale, float *loss, float *dy);

    /* ---- reductions (result: one float in backend memory) ---- */
    llm_status (*sum)(llm_backend *be, int64_t n, const float *x, float *out);
    llm_status (*sum_squares)(llm_backend *be, int64_t n, const float *x, float *out);
    /* *out = number of elements that are NaN or infinite (as a float) */
    llm_status (*count_nonfinite)(llm_backend *be, int64_t n, const float *x, float *out);

    /* ---- optimizer ---- */
    /* param, grad, m1, m2 are [n]; m1/m2 are the optimizer moments (velocity for SGD). */
    llm_status (*optimizer_update)(llm_backend *be, const llm__opt_update *u, float *param,
                                   const float *grad, float *m1, float *m2);
} llm__backend_ops;

/* The backend object behind the public opaque handle. */
struct llm_backend {
    const llm__backend_ops *ops;
    const struct llm__backend_provider *provider; /* what made it (src/core/backend_internal.h) */
    int threads;
    void *impl; /* backend-private state (thread pool, CUDA handles) */
    /* references: the creator's, plus one per tensor, model and decoder on
     * it (llm__backend_retain/_release, src/core/backend.c); the backend is
     * torn down when the last one goes. Touched only with __atomic builtins
     * (not _Atomic: the CUDA module compiles this struct as C++). Last, so
     * the module's view of the fields above does not move. */
    long refs;
};

/* Whether a backend has a capability (LLM__BACKEND_* flags): what callers
 * ask instead of which kind of backend it is. */
static inline int llm__backend_has(const llm_backend *be, unsigned capability) {
    return (be->ops->caps & capability) == capability;
}

#endif /* LLM_PRIVATE_BACKEND_H */
