/* libllm private: data-parallel training steps over a gradient exchange
 * (grad_exchange.h), for llm_model_fit (fit.c) and the llm_dist_* model
 * calls (data_parallel.c). With llm__solo_exchange they are exactly a
 * process's own training. */
#ifndef LLM_PRIVATE_DATA_PARALLEL_H
#define LLM_PRIVATE_DATA_PARALLEL_H

#include "model_internal.h"
#include "grad_exchange.h"

/* Starts training after the local set-up (status local_s; the model is
 * built when it is LLM_OK): agrees that every rank set up, checks that all
 * ranks train the same model on the same data with the same options (sizes,
 * step, batch, seed, epochs), copies rank 0's weights (and optimizer
 * moments) to every rank and gives each rank its own dropout stream.
 * *any_on_batch becomes 1 when some rank has an on_batch callback. */
llm_status llm__parallel_begin(const llm__grad_exchange *ex, llm_status local_s, llm_model *m,
                               const llm_dataset *tr, const llm_dataset *val, int64_t batch,
                               const llm_fit_options *o, int *any_on_batch, const char *fn);
/* Ends what begin started (the dropout stream). */
void llm__parallel_end(llm_model *m);

/* One training step on this rank's B_local rows (staged in m->hx / m->hy;
 * local_s is the status of staging them) of a global batch of B_global:
 * local forward and backward, the sum of the row-weighted gradients across
 * ranks (the mean over the global batch), the optimizer step. *loss gets
 * the global batch's mean loss and *correct its correct predictions (NAN
 * when accuracy is not tracked). A failure on any rank fails every rank. */
llm_status llm__parallel_step(const llm__grad_exchange *ex, llm_model *m, llm_status local_s, int64_t B_local,
                              int64_t B_global, double *loss, double *correct, const char *fn);

/* After an epoch: checks that every rank holds the same weights and, if
 * not (an MPI whose reductions differ between ranks), copies rank 0's. */
llm_status llm__parallel_check_weights(const llm__grad_exchange *ex, llm_model *m, int epoch, const char *fn);

#endif /* LLM_PRIVATE_DATA_PARALLEL_H */
