/* Separate models trained in parallel threads: each thread builds, compiles
 * and fits its own model, and every result must be bit-for-bit the one the
 * same run gives alone on one thread. Run once with one backend per thread
 * and once with one backend shared by all threads (the CPU pool serialises
 * jobs from several callers). `make tsan` runs this suite under
 * ThreadSanitizer, which is where a race would show; here it checks that
 * sharing changes no bits. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

enum { N = 64, T = 8, VOCAB = 24, WORKERS = 4, EPOCHS = 3, NPARAM = 5 * 8 };

typedef struct {
    llm_backend *shared; /* NULL: the worker makes its own */
    uint64_t seed;       /* model seed and data seed; differs per worker */
    float out[NPARAM];   /* dense_0.weight after training */
    double loss;         /* last epoch's training loss */
    llm_status status;
    char error[256];
} train_job;

/* Label 1 iff id 5 occurs in the row; ids after a zero-padded prefix. */
static void make_data(int32_t *x, float *y, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < N; i++) {
        int len = 2 + (int)(tu_next(&s) % (T - 1)), has = 0;
        for (int t = 0; t < T; t++) {
            int32_t id = t >= T - len ? 2 + (int32_t)(tu_next(&s) % (VOCAB - 2)) : 0;
            x[i * T + t] = id;
            has |= id == 5;
        }
        y[i] = (float)has;
    }
}

#define TRY(call) do { if ((st = (call)) != LLM_OK) goto done; } while (0)

/* Returns through job->status instead of ck_assert so it is safe on any
 * thread (Check's assertions are for the test's own thread). */
static void *train_one(void *p) {
    train_job *job = p;
    llm_status st = LLM_OK;
    llm_backend *own = NULL, *be = job->shared;
    llm_model *m = NULL;
    llm_optimizer *opt = NULL;
    llm_dataset *ds = NULL;
    llm_history *h = NULL;
    int32_t x[N * T];
    float y[N];
    make_data(x, y, job->seed);
    if (!be) {
        llm_backend_options o;
        llm_backend_options_init(&o);
        o.threads = 2;
        TRY(llm_backend_create(&own, LLM_BACKEND_CPU, &o));
        be = own;
    }
    TRY(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, LLM_DTYPE_F32, 1, (int64_t[]){N}, y));
    TRY(llm_model_sequential(&m, be));
    TRY(llm_model_set_seed(m, job->seed));
    TRY(llm_model_add(m, llm_layer_embedding(VOCAB, 6)));
    TRY(llm_model_add(m, llm_layer_lstm(8, LLM_RETURN_LAST)));
    TRY(llm_model_add(m, llm_layer_dense(5, LLM_ACT_RELU)));
    TRY(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    TRY(llm_optimizer_adam(&opt, 0.01f));
    TRY(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = EPOCHS;
    fo.batch_size = 16;
    fo.validation_split = 0.25f;
    fo.seed = job->seed;
    TRY(llm_model_fit(m, ds, &fo, &h));
    TRY(llm_history_get(h, "loss", EPOCHS - 1, &job->loss));
    TRY(llm_model_get_param(m, "dense_0.weight", job->out, sizeof job->out));
done:
    job->status = st;
    if (st != LLM_OK) snprintf(job->error, sizeof job->error, "%s", llm_last_error());
    llm_history_free(h);
    llm_model_free(m);
    llm_optimizer_free(opt);
    llm_dataset_free(ds);
    llm_backend_free(own);
    return NULL;
}

static void run_parallel(int shared) {
    llm_backend *be = NULL;
    if (shared) {
        llm_backend_options o;
        llm_backend_options_init(&o);
        o.threads = 2;
        ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
    }
    /* the reference: each job alone, one after another, on this thread */
    static train_job want[WORKERS], got[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        want[w] = (train_job){ .shared = be, .seed = 11 + 7 * (uint64_t)w };
        train_one(&want[w]);
        ck_assert_msg(want[w].status == LLM_OK, "job %d alone: %s", w, want[w].error);
    }
    pthread_t th[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        got[w] = (train_job){ .shared = be, .seed = want[w].seed };
        ck_assert_int_eq(pthread_create(&th[w], NULL, train_one, &got[w]), 0);
    }
    for (int w = 0; w < WORKERS; w++) pthread_join(th[w], NULL);
    for (int w = 0; w < WORKERS; w++) {
        ck_assert_msg(got[w].status == LLM_OK, "job %d in parallel: %s", w, got[w].error);
        ck_assert_msg(memcmp(got[w].out, want[w].out, sizeof want[w].out) == 0,
                      "job %d (%s backend): weights differ from the single-threaded run", w,
                      shared ? "shared" : "own");
        ck_assert_msg(memcmp(&got[w].loss, &want[w].loss, sizeof want[w].loss) == 0,
                      "job %d: loss %g, alone %g", w, (double)got[w].loss, (double)want[w].loss);
    }
    /* different seeds really trained different models */
    ck_assert(memcmp(want[0].out, want[1].out, sizeof want[0].out) != 0);
    llm_backend_free(be);
}

START_TEST(parallel_training_own_backends) { run_parallel(0); }
END_TEST

START_TEST(parallel_training_shared_backend) { run_parallel(1); }
END_TEST

Suite *suite_concurrency(void) {
    Suite *s = suite_create("concurrency");
    TCase *c = tcase_create("training");
    tcase_set_timeout(c, 300); /* ThreadSanitizer is ~10x slower */
    tcase_add_test(c, parallel_training_own_backends);
    tcase_add_test(c, parallel_training_shared_backend);
    suite_add_tcase(s, c);
    return s;
}
