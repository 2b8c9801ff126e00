/* libllm: data-parallel training over MPI.
 *
 * Several processes (ranks), usually started by `mpirun -np N`, train one
 * model together: every rank holds all the weights, reads its own slice of
 * every mini-batch, and the gradients are summed across ranks before each
 * optimizer step, so every rank takes the same step and the weights stay
 * identical. With a global batch of B rows the result equals single-process
 * training with batch B (up to float rounding), whatever the number of
 * ranks. See docs/DISTRIBUTED.md.
 *
 *     llm_dist *dist;
 *     CHECK(llm_dist_init(&dist, &argc, &argv));   // MPI_Init unless already done
 *     ...                                          // build the same model on every rank
 *     fit_options.dist = dist;                     // model.h
 *     CHECK(llm_model_fit(model, train, &fit_options, NULL));
 *     llm_dist_free(dist);                         // MPI_Finalize if init called MPI_Init
 *
 * MPI is optional: libllm itself never links it. The MPI code lives in a
 * run-time module, libllm-mpi.so (built with mpicc), that llm_dist_init and
 * llm_dist_from_comm load with dlopen from $LLM_MPI_MODULE, else beside
 * libllm (its folder, then ../lib), else the library search path. Without
 * it they return LLM_ERR_UNAVAILABLE and say why.
 *
 * A collective operation that does not complete within the timeout (a rank
 * died, hangs or is far behind) fails with LLM_ERR_DISTRIBUTED naming the
 * operation and the timeout, instead of waiting forever; the llm_dist is
 * then unusable (every later call fails at once) and llm_dist_free leaves
 * MPI un-finalised, since MPI cannot shut down cleanly with a peer gone.
 * MPI calls are made only from the thread that calls libllm, one at a time
 * (MPI_THREAD_SERIALIZED is requested). */
#ifndef LLM_DIST_H
#define LLM_DIST_H

#include "common.h"
#include "status.h"
#include "tensor.h"

LLM_EXTERN_C_BEGIN

/* model.h declares llm_model too; the guard keeps the typedef single, which
 * C99 and C++98 require (C11 allows repeating it). */
#ifndef LLM_MODEL_TYPEDEF
#define LLM_MODEL_TYPEDEF
typedef struct llm_model llm_model;
#endif

typedef struct llm_dist llm_dist;

/* Joins the MPI job this process was started in: calls MPI_Init_thread
 * (argc/argv may be NULL) unless the program already initialised MPI, and
 * uses a duplicate of MPI_COMM_WORLD. A process not started by a launcher
 * becomes a job of one rank. LLM_ERR_UNAVAILABLE when the MPI module is
 * missing or cannot load; LLM_ERR_STATE when MPI was already finalised. */
LLM_API llm_status llm_dist_init(llm_dist **out, int *argc, char ***argv);

/* Uses a communicator of a program that manages MPI itself: mpi_comm points
 * to an MPI_Comm (e.g. &MPI_COMM_WORLD or a sub-communicator), which is
 * duplicated, so libllm's messages never mix with the program's. MPI must be
 * initialised, by the same MPI library the module was built with, and stays
 * so after llm_dist_free. Collective: every rank of the communicator calls it. */
LLM_API llm_status llm_dist_from_comm(llm_dist **out, const void *mpi_comm);

/* This process's rank in [0, size) and the number of ranks. */
LLM_API llm_status llm_dist_rank(const llm_dist *dist, int *rank);
LLM_API llm_status llm_dist_size(const llm_dist *dist, int *size);

/* How long one collective operation may wait for the other ranks, in
 * seconds; 0 waits forever (plain blocking MPI calls). The default is 60 s,
 * or $LLM_DIST_TIMEOUT when set at init. It must exceed the longest time one
 * rank can legitimately run ahead of another (e.g. rank 0 writing a
 * checkpoint). */
LLM_API llm_status llm_dist_set_timeout(llm_dist *dist, double seconds);

/* Waits until every rank has called it (with the timeout). */
LLM_API llm_status llm_dist_barrier(llm_dist *dist);

/* The number of processes an MPI launcher says this job has (from
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE or MV2_COMM_WORLD_SIZE), 0 when the process
 * was not started by one. Needs no MPI and no module: a program can decide
 * from it whether to call llm_dist_init. Always LLM_OK. */
LLM_API llm_status llm_dist_launched(int *world_size);

/* Data parallelism in a loop of your own (llm_model_train_on_batch style,
 * as lm_train does) instead of llm_model_fit:
 *
 * llm_dist_sync_model copies rank 0's weights and optimizer state to every
 * rank; call it on every rank once the model is built and compiled.
 *
 * llm_dist_train_on_batch is one optimizer step on a global batch of
 * global_batch rows of which x, y hold this rank's share (the shares of all
 * ranks must add up to global_batch; a rank with no share passes x and y
 * NULL, its model built and compiled as llm_dist_sync_model requires).
 * Every rank calls it with the same
 * global_batch. The gradient of the global batch's mean loss is summed
 * across ranks before the update, so the weights stay identical everywhere
 * and equal (within float rounding) one process training on the whole
 * batch; *loss (may be NULL) gets the global mean loss. A failure on any
 * rank fails all; shares that do not add up give LLM_ERR_INVALID_ARGUMENT. */
LLM_API llm_status llm_dist_sync_model(llm_dist *dist, llm_model *model);
LLM_API llm_status llm_dist_train_on_batch(llm_dist *dist, llm_model *model, const llm_tensor *x,
                                           const llm_tensor *y, int64_t global_batch, float *loss);

/* Frees the handle: the duplicated communicator, and MPI_Finalize when
 * llm_dist_init called MPI_Init (not after a failed collective, see above).
 * NULL is allowed. Collective when MPI is finalised. */
LLM_API void llm_dist_free(llm_dist *dist);

LLM_EXTERN_C_END

#endif /* LLM_DIST_H */
