/* Training speed of the seed model (Embedding 20000x64 -> LSTM(128) ->
 * Dense(1, sigmoid), batch 32, 200 ids) through llm_model_fit, alone or
 * data-parallel over MPI (docs/DISTRIBUTED.md):
 *
 *   build/bench/dist_bench --threads 2                       # one process
 *   mpirun -np 2 build/bench/dist_bench --threads 1          # two ranks
 *
 * Started by mpirun (or with --distributed) it trains with fit_options.dist;
 * --batch is the global batch. Rank 0 prints the last line, samples_per_s=...,
 * over the steps after --warmup. --timeout sets llm_dist_set_timeout (0: the
 * blocking MPI calls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <llm/llm.h>
#include "bench.h"


typedef struct timing { int warmup; double t_warm, t_end; } timing;

static int on_batch(const llm_progress *p, void *user) {
    timing *t = user;
    if (p->batch == t->warmup) t->t_warm = ex_now();
    t->t_end = ex_now();
    return 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    int vocab = arg_int(argc, argv, "--vocab", 20000), embed = arg_int(argc, argv, "--embed", 64);
    int hidden = arg_int(argc, argv, "--hidden", 128), seq = arg_int(argc, argv, "--seq", 200);
    int batch = arg_int(argc, argv, "--batch", 32), steps = arg_int(argc, argv, "--steps", 30);
    int warmup = arg_int(argc, argv, "--warmup", 3), threads = arg_int(argc, argv, "--threads", 1);
    const char *timeout = arg_str(argc, argv, "--timeout", NULL);
    CHECK_RANGE("--steps", steps, 1);
    CHECK_RANGE("--warmup", warmup, 0);
    CHECK_RANGE("--batch", batch, 1);
    int distributed = 0, launched = 0;
    for (int i = 1; i < argc; i++) if (strcmp(argv[i], "--distributed") == 0) distributed = 1;
    CHECK(llm_dist_launched(&launched));

    llm_dist *dist = NULL;
    int rank = 0, size = 1;
    if (distributed || launched > 0) {
        CHECK(llm_dist_init(&dist, &argc, &argv));
        CHECK(llm_dist_rank(dist, &rank));
        CHECK(llm_dist_size(dist, &size));
        if (timeout) CHECK(llm_dist_set_timeout(dist, atof(timeout)));
    }
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_backend *be;
    CHECK(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));

    llm_model *m;
    CHECK(bench_seed_model(be, vocab, embed, hidden, &m));

    int64_t n = (int64_t)(warmup + steps) * batch;
    int32_t *ids = malloc((size_t)(n * seq) * 4);
    float *y = malloc((size_t)n * 4);
    if (!ids || !y) { fprintf(stderr, "out of memory\n"); return 1; }
    uint64_t s = 1234;
    for (int64_t i = 0; i < n * seq; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = 2 + (int32_t)((s >> 33) % (uint64_t)(vocab - 2));
    }
    for (int64_t i = 0; i < n; i++) y[i] = (float)(i % 2);
    llm_dataset *ds;
    CHECK(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){ n, seq }, ids, LLM_DTYPE_F32, 1,
                                (int64_t[]){ n }, y));
    free(ids);
    free(y);

    timing t = { warmup, 0, 0 };
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.batch_size = batch;
    fo.shuffle = 0;
    fo.on_batch = on_batch;
    fo.user = &t;
    fo.dist = dist;
    CHECK(llm_model_fit(m, ds, &fo, NULL));
    int64_t params = 0;
    CHECK(llm_model_param_count(m, &params));
    double secs = t.t_end - t.t_warm;
    if (rank == 0) {
        printf("libllm %s; ranks=%d threads/rank=%d params=%lld vocab=%d embed=%d hidden=%d seq=%d global_batch=%d\n",
               llm_version_string(), size, threads, (long long)params, vocab, embed, hidden, seq, batch);
        printf("step_ms=%.1f samples_per_s=%.1f\n", 1e3 * secs / steps, (double)steps * batch / secs);
    }
    llm_dataset_free(ds);
    llm_model_free(m);
    llm_backend_free(be);
    llm_dist_free(dist);
    return 0;
}
