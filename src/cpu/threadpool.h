/* libllm private: a small fixed thread pool for the CPU kernels.
 *
 * Workers sleep on a condition variable between jobs (no spinning), so they
 * never compete with OpenBLAS's own threads: a kernel and a GEMM never run
 * at the same time. Work is split into contiguous chunks, one per thread,
 * deterministically, so results do not depend on timing; which thread runs
 * a chunk does (the caller takes the first, then whichever thread is free
 * the rest), which does not change a chunk's result. */
#ifndef LLM_PRIVATE_THREADPOOL_H
#define LLM_PRIVATE_THREADPOOL_H

#include <stdint.h>
#include "llm/status.h"

typedef struct llm__pool llm__pool;

typedef void (*llm__pool_fn)(void *ctx, int64_t begin, int64_t end);

/* threads >= 1; threads == 1 creates no worker threads. */
llm_status llm__pool_create(llm__pool **out, int threads);
void llm__pool_free(llm__pool *pool);
int llm__pool_threads(const llm__pool *pool);

/* Calls fn(ctx, begin, end) over [0, n) in contiguous chunks of at least
 * `grain` items, on up to pool->threads threads (the caller's thread takes
 * the first chunk), and returns when all are done. Runs inline when the
 * work is too small to split or pool is NULL. Not reentrant: a chunk must not
 * call llm__pool_for on the same pool. */
void llm__pool_for(llm__pool *pool, int64_t n, int64_t grain, llm__pool_fn fn, void *ctx);

#endif /* LLM_PRIVATE_THREADPOOL_H */
