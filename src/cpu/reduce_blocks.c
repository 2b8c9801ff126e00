/* Deterministic reductions: fixed blocks sized from n alone, each summed in
 * double, the partial sums added in block order, so that a sum (a loss, a
 * gradient norm) has the same bits whatever the thread count. */
#include "cpu.h"

#define RED_BLOCK_MIN 4096 /* elements */
#define RED_MAX_BLOCKS 64
#define RED_GRAIN 16384

typedef struct red_job {
    llm__red_block_fn fn;
    const void *ctx;
    int64_t n, block;
    double *partials;
} red_job;

static void red_chunk(void *p, int64_t b0, int64_t b1) {
    const red_job *j = p;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t begin = blk * j->block;
        int64_t end = begin + j->block < j->n ? begin + j->block : j->n;
        double s = 0.0;
        j->fn(j->ctx, begin, end, &s);
        j->partials[blk] = s;
    }
}

/* Sum over items [0, n), each costing item_cost elements of work, of what fn
 * adds per block, in an order that does not depend on the thread count. */
double llm__cpu_det_reduce(llm_backend *be, int64_t n, int64_t item_cost, llm__red_block_fn fn,
                          const void *ctx) {
    if (n <= 0) return 0.0;
    if (item_cost < 1) item_cost = 1;
    int64_t min_block = RED_BLOCK_MIN / item_cost > 0 ? RED_BLOCK_MIN / item_cost : 1;
    int64_t block = (n + RED_MAX_BLOCKS - 1) / RED_MAX_BLOCKS;
    if (block < min_block) block = min_block;
    int64_t blocks = (n + block - 1) / block;
    double partials[RED_MAX_BLOCKS];
    red_job j = { fn, ctx, n, block, partials };
    int64_t block_cost = block * item_cost;
    int64_t grain = (RED_GRAIN + block_cost - 1) / block_cost;
    llm__pool_for(llm__cpu_pool(be), blocks, grain, red_chunk, &j);
    double s = 0.0;
    for (int64_t b = 0; b < blocks; b++) s += partials[b];
    return s;
}
