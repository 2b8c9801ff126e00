/* libllm private: what training needs from the processes it trains with.
 *
 * Data-parallel training runs the same loop in every process (rank): the
 * same shuffle, the same global batches; each rank computes the gradient of
 * its slice of a batch, and the exchange sums those gradients so that every
 * rank takes the same optimizer step (src/nn/data_parallel.c). Training
 * talks to the other ranks only through this table. src/dist/ implements it
 * over MPI (a module on device memory, e.g. NCCL, would be another
 * implementation); a process training alone uses llm__solo_exchange, whose
 * operations leave everything as it is, so fit has one path for both.
 *
 * The dependency goes one way: src/dist/ includes this header and nothing
 * else of src/nn/; src/nn/ includes nothing of src/dist/.
 *
 * Every operation is collective: every rank calls it, in the same order,
 * with the same n. `what` names the operation in error messages
 * ("llm_model_fit: allreduce of the gradients at step 12"). A failed or
 * timed-out operation returns LLM_ERR_DISTRIBUTED and leaves the exchange
 * unusable; it never changes the thread's last error when it succeeds. */
#ifndef LLM_PRIVATE_GRAD_EXCHANGE_H
#define LLM_PRIVATE_GRAD_EXCHANGE_H

#include <stdint.h>
#include "llm/dist.h"
#include "../backend.h"
#include "../core/internal.h"

typedef enum llm__exchange_op {
    LLM__EXCHANGE_SUM = 0,
    LLM__EXCHANGE_MAX = 1
} llm__exchange_op;

typedef struct llm__grad_exchange {
    void *ctx;       /* the implementation's state */
    int rank, size;  /* this process is rank `rank` in [0, size) */
    /* Makes ready for buffers of up to n floats in be's memory (a host
     * staging buffer, kept across calls, when that memory is not host
     * memory), so that the collectives below allocate nothing. Local, not
     * collective: agree on its status before the first collective. */
    llm_status (*reserve)(void *ctx, llm_backend *be, int64_t n, const char *what);
    /* v[0..n), host doubles: combined across ranks in place. */
    llm_status (*reduce_f64)(void *ctx, double *v, int n, llm__exchange_op op, const char *what);
    /* x[0..n), floats in be's memory (the gradients): summed across ranks in place. */
    llm_status (*sum_f32)(void *ctx, llm_backend *be, float *x, int64_t n, const char *what);
    /* x[0..n), floats in be's memory (weights, moments): rank 0's copied to every rank. */
    llm_status (*broadcast_f32)(void *ctx, llm_backend *be, float *x, int64_t n, const char *what);
    /* *same = 1 on every rank when x[0..n) (be's memory) holds the same bits
     * on all ranks, else 0 on every rank. */
    llm_status (*same_f32)(void *ctx, llm_backend *be, const float *x, int64_t n, int *same, const char *what);
} llm__grad_exchange;

/* A process training alone: rank 0 of 1, ctx NULL; every operation
 * succeeds and leaves its buffer as it is. */
extern const llm__grad_exchange llm__solo_exchange;

/* Implemented by src/dist/exchange.c: the exchange over a handle's
 * communicator (valid while the handle lives). LLM_ERR_DISTRIBUTED, with fn
 * and the earlier failure in the message, when the handle is unusable. */
llm_status llm__dist_exchange(llm_dist *d, llm__grad_exchange *out, const char *fn);

/* ---- helpers over any exchange (src/nn/grad_exchange.c) ---- */

/* This rank's rows [*off, *off + *len) of n rows split as evenly as
 * possible, in rank order (the first n % size ranks get one more). */
void llm__exchange_slice(const llm__grad_exchange *ex, int64_t n, int64_t *off, int64_t *len);

/* Names a collective for the messages of a failure, formatted into buf
 * (len bytes) only for an exchange that can fail: llm__solo_exchange (the
 * one without ctx) cannot, and a process's own training step then costs
 * what it did before there was an exchange. Returns buf. */
const char *llm__exchange_what(const llm__grad_exchange *ex, char *buf, size_t len, const char *fmt, ...)
    LLM__PRINTF(4, 5);

/* Combines a local outcome: when any rank failed, every rank fails (a
 * failed one with its own status and message, the others with
 * LLM_ERR_DISTRIBUTED naming `what`); *flag (may be NULL) becomes 1 on every
 * rank when it is set on any. */
llm_status llm__exchange_agree(const llm__grad_exchange *ex, llm_status local_s, int *flag, const char *what);

#endif /* LLM_PRIVATE_GRAD_EXCHANGE_H */
