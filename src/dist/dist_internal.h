/* libllm private: distributed (MPI) training. src/dist/dist.c holds the
 * handle and loads the MPI module; src/dist/dist_fit.c is what
 * llm_model_fit (src/nn/fit.c) does differently with fit_options.dist. */
#ifndef LLM_PRIVATE_DIST_INTERNAL_H
#define LLM_PRIVATE_DIST_INTERNAL_H

#include "llm/dist.h"
#include "llm/model.h"
#include "mpi_module.h"

struct llm_dist {
    void *comm;          /* the module's communicator */
    int rank, size;
    int owns_mpi;        /* llm_dist_init called MPI_Init: free finalises */
    int healthy;         /* 0 once a collective failed: nothing more is sent */
    double timeout_s;    /* per collective; 0 = none */
    char broken[384];    /* the failure that made it unusable */
    float *stage;        /* host copy of weights / gradients for non-CPU backends, kept across steps */
    size_t stage_floats;
};

/* Collectives on host memory through the module, with the handle's timeout.
 * `what` names the operation in messages ("llm_model_fit: allreduce of the
 * gradients at step 12"). A failure marks the handle unusable. */
llm_status llm__dist_allreduce(llm_dist *d, void *buf, int64_t n, int type, int op, const char *what);
llm_status llm__dist_bcast(llm_dist *d, void *buf, size_t bytes, int root, const char *what);

/* The rank's rows [*off, *off + *len) of n rows split as evenly as possible,
 * in rank order. */
void llm__dist_slice(const llm_dist *d, int64_t n, int64_t *off, int64_t *len);

/* ---- fit (dist_fit.c) ---- */

typedef struct llm__dist_fit {
    llm_dist *d;
    float *stage;        /* d->stage when the backend is not the CPU (owned by d), else NULL */
    int any_on_batch;    /* some rank has an on_batch callback: agree on stopping after every batch */
    char what[160];
} llm__dist_fit;

/* Starts a distributed fit after the local set-up (status local_s): agrees
 * that every rank set up, checks that all ranks train the same model on the
 * same data with the same options (sizes, step, batch, seed, epochs), then
 * copies rank 0's weights (and optimizer moments) to every rank. */
llm_status llm__dist_fit_begin(llm__dist_fit *f, llm_dist *d, llm_status local_s, llm_model *m,
                               const llm_dataset *tr, const llm_dataset *val, int64_t batch,
                               const llm_fit_options *o, const char *fn);
void llm__dist_fit_end(llm__dist_fit *f, llm_model *m);

/* One training step on this rank's B_local rows (staged in m->hx / m->hy;
 * local_s is the status of staging them) of a global batch of B_global:
 * local forward and backward, the sum of the row-weighted gradients across
 * ranks (the mean over the global batch), the optimizer step. *loss gets
 * the global batch's mean loss and *correct its correct predictions (NAN
 * when accuracy is not tracked). A failure on any rank fails every rank. */
llm_status llm__dist_step(llm__dist_fit *f, llm_model *m, llm_status local_s, int64_t B_local,
                          int64_t B_global, double *loss, double *correct, const char *fn);

/* Sums v[0..n) across ranks. */
llm_status llm__dist_sum(llm__dist_fit *f, double *v, int n, const char *what);

/* Combines a local outcome: when any rank failed, every rank fails (the
 * failed ones with their own status and message, the others with
 * LLM_ERR_DISTRIBUTED naming `what`); *flag becomes 1 on every rank when it
 * is set on any (may be NULL). */
llm_status llm__dist_agree(llm__dist_fit *f, llm_status local_s, int *flag, const char *what);

/* After an epoch: checks that every rank holds the same weights and, if
 * not (an MPI whose reductions differ between ranks), copies rank 0's. */
llm_status llm__dist_check_sync(llm__dist_fit *f, llm_model *m, int epoch, const char *fn);

#endif /* LLM_PRIVATE_DIST_INTERNAL_H */
