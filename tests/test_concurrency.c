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

/* ---- several threads predicting with one shared model ----
 * include/llm/model.h (Threads) says llm_model_predict and
 * llm_model_predict_text may run at once on one model, an ensemble
 * included, even before the model is built (the first calls build it). Four
 * threads do that with a Transformer classifier that no call has built yet
 * and an ensemble of it with an LSTM; every answer must be bit-equal to the
 * same call on one thread with a twin model (same seed, so the same
 * weights). Under `make tsan` a race fails the test. */
enum { PT = 4, PROUNDS = 5, NTEXT = 5, SEQ = 12, PROWS = 3 };
static const char *ptexts[NTEXT] = {
    "the quick brown fox", "cheap pills buy now", "", "meeting notes for monday and tuesday",
    "buy buy buy cheap cheap watches now now now at the best price ever seen",
};

typedef struct {
    llm_model *clf, *ens;     /* shared */
    llm_backend *be;
    int32_t ids[PROWS * SEQ];
    float text[NTEXT], ens_text[NTEXT], rows[PROWS];
    llm_status status;
    char error[256];
} predict_job;

static llm_vocab *pvocab(void) {
    const char *classes[] = { "a", "b" };
    llm_text_corpus *c;
    llm_text_corpus_create(&c, classes, 2);
    for (int i = 0; i < NTEXT; i++) llm_text_corpus_add(c, ptexts[i], strlen(ptexts[i]), i % 2);
    llm_vocab *v = NULL;
    llm_vocab_build_from_corpus(&v, c, NULL, NULL);
    llm_text_corpus_free(c);
    return v;
}

/* A Transformer encoder classifier (attention, layer norm, pooling) over
 * SEQ word ids, or an LSTM one; text pipeline attached, not built unless
 * `build`. */
static llm_model *pmodel(llm_backend *be, const llm_vocab *v, int lstm, int build) {
    int32_t vs;
    llm_vocab_size(v, &vs);
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, lstm ? 9 : 8));
    if (lstm) {
        ck_assert_ok(llm_model_add(m, llm_layer_embedding(vs, 6)));
        ck_assert_ok(llm_model_add(m, llm_layer_lstm(5, LLM_RETURN_LAST)));
    } else {
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(vs, SEQ, 8)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 0)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    }
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = SEQ;
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, NULL));
    if (build) ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){ SEQ }));
    return m;
}

static void *predict_all(void *p) {
    predict_job *job = p;
    llm_status st = LLM_OK;
    llm_tensor *x = NULL, *y = NULL;
    for (int r = 0; r < PROUNDS && st == LLM_OK; r++) {
        for (int i = 0; i < NTEXT && st == LLM_OK; i++) {
            TRY(llm_model_predict_text(job->clf, ptexts[i], strlen(ptexts[i]), &job->text[i], 1));
            if (job->ens) TRY(llm_model_predict_text(job->ens, ptexts[i], strlen(ptexts[i]), &job->ens_text[i], 1));
        }
        TRY(llm_tensor_from_host(&x, job->be, LLM_DTYPE_I32, 2, (int64_t[]){ PROWS, SEQ }, job->ids, sizeof job->ids));
        TRY(llm_model_predict(job->clf, x, &y));
        TRY(llm_tensor_to_host(y, job->rows, sizeof job->rows));
        llm_tensor_free(x);
        llm_tensor_free(y);
        x = y = NULL;
    }
done:
    llm_tensor_free(x);
    llm_tensor_free(y);
    job->status = st;
    if (st != LLM_OK) snprintf(job->error, sizeof job->error, "%s", llm_last_error());
    return NULL;
}

START_TEST(threads_predict_with_one_model) {
    llm_backend *be;
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 2;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
    llm_vocab *v = pvocab();
    ck_assert_ptr_nonnull(v);
    /* the reference: twins of the shared models, on this thread alone (an
     * ensemble of one member gives that member's outputs) */
    llm_model *ref = pmodel(be, v, 0, 0), *ref_lstm = pmodel(be, v, 1, 1);
    predict_job want = { .clf = ref, .ens = ref_lstm, .be = be };
    for (int i = 0; i < PROWS * SEQ; i++) want.ids[i] = i % 5 == 0 ? 0 : 1 + (i * 7) % 9;
    predict_all(&want);
    ck_assert_msg(want.status == LLM_OK, "alone: %s", want.error);

    /* the shared ones: the classifier is built by the threads' first calls */
    llm_model *clf = pmodel(be, v, 0, 0), *ens;
    ck_assert_ok(llm_model_ensemble(&ens, be));
    ck_assert_ok(llm_model_ensemble_add(ens, pmodel(be, v, 1, 1)));
    pthread_t th[PT];
    static predict_job got[PT];
    for (int t = 0; t < PT; t++) {
        got[t] = (predict_job){ .clf = clf, .ens = ens, .be = be };
        memcpy(got[t].ids, want.ids, sizeof want.ids);
        ck_assert_int_eq(pthread_create(&th[t], NULL, predict_all, &got[t]), 0);
    }
    llm_backend_free(be); /* the models and the threads' tensors keep it up */
    for (int t = 0; t < PT; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < PT; t++) {
        ck_assert_msg(got[t].status == LLM_OK, "thread %d: %s", t, got[t].error);
        ck_assert_msg(memcmp(got[t].text, want.text, sizeof want.text) == 0, "thread %d: predict_text differs", t);
        ck_assert_msg(memcmp(got[t].ens_text, want.ens_text, sizeof want.ens_text) == 0,
                      "thread %d: the ensemble's predict_text differs", t);
        ck_assert_msg(memcmp(got[t].rows, want.rows, sizeof want.rows) == 0, "thread %d: predict differs", t);
    }
    /* the answers are not all alike, so equality means something */
    ck_assert(want.text[0] != want.text[1] && want.rows[0] != want.rows[1]);
    ck_assert(want.text[0] != want.ens_text[0]);
    llm_model_free(ens);
    llm_model_free(clf);
    llm_model_free(ref);
    llm_model_free(ref_lstm); /* the last reference to the backend */
    llm_vocab_free(v);
}
END_TEST

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
    TCase *p = tcase_create("prediction");
    tcase_set_timeout(p, 300);
    tcase_add_test(p, threads_predict_with_one_model);
    suite_add_tcase(s, p);
    return s;
}
