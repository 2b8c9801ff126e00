/* libllm private: the llm_dist handle. src/dist/dist.c makes it and loads
 * the MPI module; src/dist/exchange.c offers it to training as a gradient
 * exchange (src/nn/grad_exchange.h), which is all that src/nn/ sees of it. */
#ifndef LLM_PRIVATE_DIST_INTERNAL_H
#define LLM_PRIVATE_DIST_INTERNAL_H

#include "llm/dist.h"
#include "mpi_module.h"

struct llm_dist {
    void *comm;          /* the module's communicator */
    int rank, size;
    int owns_mpi;        /* llm_dist_init called MPI_Init: free finalises */
    int healthy;         /* 0 once a collective failed: nothing more is sent */
    double timeout_s;    /* per collective; 0 = none */
    char broken[384];    /* the failure that made it unusable */
    float *stage;        /* host copy of buffers whose backend memory is not host memory, kept across steps */
    size_t stage_floats;
};

/* Collectives on host memory through the module, with the handle's timeout.
 * `what` names the operation in messages ("llm_model_fit: allreduce of the
 * gradients at step 12"). A failure marks the handle unusable. */
llm_status llm__dist_allreduce(llm_dist *d, void *buf, int64_t n, int type, int op, const char *what);
llm_status llm__dist_bcast(llm_dist *d, void *buf, size_t bytes, int root, const char *what);

#endif /* LLM_PRIVATE_DIST_INTERNAL_H */
