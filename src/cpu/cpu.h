/* libllm private: the CPU backend's shared declarations.
 *
 * The kernels live in src/cpu/kernels_*.c, one family per file, and are put
 * together into the vtable in src/cpu/cpu_backend.c. */
#ifndef LLM_PRIVATE_CPU_H
#define LLM_PRIVATE_CPU_H

#include "../backend.h"
#include "threadpool.h"

typedef struct llm__cpu {
    llm__pool *pool;
} llm__cpu;

static inline llm__pool *llm__cpu_pool(llm_backend *be) {
    return be && be->impl ? ((llm__cpu *)be->impl)->pool : NULL;
}

extern const llm__backend_ops llm__cpu_ops;

/* reduce_blocks.c: the sum over items [0, n) (each costing item_cost
 * elements of work) of what fn adds per block, in an order independent of
 * the thread count. */
typedef void (*llm__red_block_fn)(const void *ctx, int64_t begin, int64_t end, double *partial);
double llm__cpu_det_reduce(llm_backend *be, int64_t n, int64_t item_cost, llm__red_block_fn fn,
                           const void *ctx);

/* kernels_elementwise.c */
/* kernels_gemm_small.c: C = alpha A B^T + beta C (A [m, k], B [n, k]) for
 * m up to LLM__GEMM_SMALL_M, where it beats OpenBLAS's packing GEMM */
#define LLM__GEMM_SMALL_M 4
void llm__cpu_gemm_small_m(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                           float beta, float *c, int ldc);
llm_status llm__cpu_fill(llm_backend *be, int64_t n, float value, float *x);
llm_status llm__cpu_fill_i32(llm_backend *be, int64_t n, int32_t value, int32_t *x);
llm_status llm__cpu_axpy(llm_backend *be, int64_t n, float alpha, const float *x, float *y);
llm_status llm__cpu_scale(llm_backend *be, int64_t n, float alpha, float *x);
llm_status llm__cpu_add(llm_backend *be, int64_t n, const float *a, const float *b, float *out);
llm_status llm__cpu_mul(llm_backend *be, int64_t n, const float *a, const float *b, float *out);
llm_status llm__cpu_copy_rows(llm_backend *be, int64_t rows, int64_t cols, const float *src,
                              int64_t ld_src, float *dst, int64_t ld_dst, int accumulate);
llm_status llm__cpu_dropout(llm_backend *be, int64_t n, float rate, uint64_t seed, uint64_t counter,
                            const float *x, float *y, int accumulate);

/* kernels_activation.c */
llm_status llm__cpu_linear_forward(llm_backend *be, int64_t rows, int64_t in, int64_t out, const float *x,
                                   const float *W, const float *b, int act, float *z, float *y);
llm_status llm__cpu_bias_act_forward(llm_backend *be, int act, int64_t rows, int64_t cols,
                                     const float *x, const float *bias, float *y);
llm_status llm__cpu_act_backward(llm_backend *be, int act, int64_t n, const float *x,
                                 const float *y, const float *dy, float *dx);
llm_status llm__cpu_bias_backward(llm_backend *be, int64_t rows, int64_t cols, const float *d,
                                  float *dbias);
llm_status llm__cpu_softmax_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                    float *y);
llm_status llm__cpu_softmax_backward(llm_backend *be, int64_t rows, int64_t cols, const float *y,
                                     const float *dy, float *dx);

/* kernels_layernorm.c */
llm_status llm__cpu_layernorm_forward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                      const float *gamma, const float *beta, float eps, float *y,
                                      float *mean, float *rstd);
llm_status llm__cpu_layernorm_backward(llm_backend *be, int64_t rows, int64_t cols, const float *x,
                                       const float *gamma, const float *mean, const float *rstd,
                                       const float *dy, float *dx, float *dgamma, float *dbeta,
                                       float *workspace);

/* kernels_embedding.c */
llm_status llm__cpu_embedding_forward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                      const float *weight, int pad, float *out, float *mask);
llm_status llm__cpu_embedding_backward(llm_backend *be, int64_t n, int64_t dim, const int32_t *ids,
                                       const float *dout, int pad, float *dweight);

/* kernels_recurrent.c */
llm_status llm__cpu_lstm_step_forward(llm_backend *be, const llm__lstm_step *s);
llm_status llm__cpu_lstm_step_backward(llm_backend *be, const llm__lstm_step_grad *s);
llm_status llm__cpu_lstm_sequence_forward(llm_backend *be, const llm__lstm_sequence *q, int *done);
llm_status llm__cpu_lstm_sequence_backward(llm_backend *be, const llm__lstm_sequence *q, int *done);
/* gemm_avx512.c: C = op(A) op(B) + beta C on AVX-512 where
 * llm__cpu_gemm_own_ok (alpha 1, beta 0 or 1, n a multiple of 16, the CPU
 * has AVX-512); one thread, the caller splits rows or 16-column blocks */
int llm__cpu_gemm_own_ok(int n, float alpha, float beta);
void llm__cpu_gemm_own(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc);
/* the same with beta 0 and every row of C starting from bias[n] (the bits
 * of copying bias into C's rows and beta 1, without the copy) */
void llm__cpu_gemm_own_bias(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                            const float *bias, float *c, int ldc);
/* kernels_lstm_fused.c: a whole LSTM layer forward, projection included */
llm_status llm__cpu_lstm_layer_forward(llm_backend *be, const llm__lstm_layer *q, int *done);
/* 1 (default): the fused forward skips the steps that are padding in every
 * row of a group from the start (their outputs are the zeros a padded step
 * writes); 0 runs them. Tests compare the two bit for bit. */
extern int llm__cpu_lstm_skip_leading_padding;
/* The widest instruction set the hand-written kernels may pick (the fused
 * LSTM, the own GEMM, the attention tiles): 2 AVX-512 where the CPU has it
 * (default), 1 AVX2 with FMA at most, 0 the baseline. Tests lower it to run
 * and check the narrower kernels on a machine that would never pick them;
 * process-wide, not for use while another thread runs a kernel. */
extern int llm__cpu_isa_limit;
llm_status llm__cpu_lstm_sequence_backward_fused(llm_backend *be, const llm__lstm_sequence *q, int *done);
/* kernels_recurrent_product.c: for one block of `rows` batch rows,
 * xw[r] += h[r] W_hh^T (W_hh^T packed first by llm__cpu_lstm_pack_w_hh into
 * 4H * H floats) and dh[r] += dgates[r] W_hh (W_hh [4H, H]), for the H that
 * llm__cpu_lstm_recurrent_ok accepts (multiples of 16 up to
 * LLM__RECURRENT_MAX_H: their row buffers are on the stack) */
#define LLM__RECURRENT_MAX_H 256
int llm__cpu_lstm_recurrent_ok(int H);
void llm__cpu_lstm_pack_w_hh(int H, const float *W_hh, float *packed);
void llm__cpu_lstm_recurrent_forward_add(int rows, int H, const float *packed, const float *h, int64_t ld_h,
                                         float *xw, int64_t ld_xw);
void llm__cpu_lstm_recurrent_backward_add(int rows, int H, const float *W_hh, const float *dgates,
                                          int64_t ld_dgates, float *dh, int64_t ld_dh);
llm_status llm__cpu_gru_step_forward(llm_backend *be, const llm__gru_step *s);
llm_status llm__cpu_gru_step_backward(llm_backend *be, const llm__gru_step_grad *s);

/* kernels_attention.c */
llm_status llm__cpu_attention_forward(llm_backend *be, const llm__attention *a);
llm_status llm__cpu_attention_backward(llm_backend *be, const llm__attention *a);

/* kernels_pool.c */
llm_status llm__cpu_pool_forward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                 const float *x, const float *mask, float *y, int32_t *argmax);
llm_status llm__cpu_pool_backward(llm_backend *be, int mode, int64_t B, int64_t T, int64_t F,
                                  const float *mask, const int32_t *argmax, const float *dy,
                                  float *dx);

/* kernels_loss.c */
llm_status llm__cpu_loss_bce_logits(llm_backend *be, int64_t n, const float *z, const float *t,
                                    float grad_scale, float *loss, float *dz);
llm_status llm__cpu_loss_bce_probs(llm_backend *be, int64_t n, const float *p, const float *t,
                                   float grad_scale, float *loss, float *dp);
llm_status llm__cpu_loss_sce_logits(llm_backend *be, int64_t rows, int64_t classes, const float *z,
                                    const int32_t *labels, float grad_scale, float *loss, float *dz);
llm_status llm__cpu_loss_sce_probs(llm_backend *be, int64_t rows, int64_t classes, const float *p,
                                   const int32_t *labels, float grad_scale, float *loss, float *dp);
llm_status llm__cpu_loss_mse(llm_backend *be, int64_t n, const float *y, const float *t,
                             float grad_scale, float *loss, float *dy);

/* kernels_reduce.c */
llm_status llm__cpu_sum(llm_backend *be, int64_t n, const float *x, float *out);
llm_status llm__cpu_sum_squares(llm_backend *be, int64_t n, const float *x, float *out);
llm_status llm__cpu_count_nonfinite(llm_backend *be, int64_t n, const float *x, float *out);

/* kernels_optimizer.c */
llm_status llm__cpu_optimizer_update(llm_backend *be, const llm__opt_update *u, float *param,
                                     const float *grad, float *m1, float *m2);

#endif /* LLM_PRIVATE_CPU_H */
