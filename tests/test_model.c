/* Model building, training, evaluation, prediction, and bad input. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

static llm_backend *be;
static void setup(void) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 2;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
}
static void teardown(void) { llm_backend_free(be); be = NULL; }

/* Sequences of ids 2..19, pre-padded with 0 to T; label 1 iff id 5 occurs. */
static void make_task(int32_t *x, float *y, int n, int T, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        int len = 3 + (int)(tu_next(&s) % (uint64_t)(T - 2));
        int has = 0;
        for (int t = 0; t < T; t++) {
            int32_t id = 0;
            if (t >= T - len) { id = 2 + (int32_t)(tu_next(&s) % 18); has |= id == 5; }
            x[i * T + t] = id;
        }
        y[i] = (float)has;
    }
}

static llm_model *seed_model(int vocab, int embed, int hidden) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(vocab, embed)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(hidden, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    return m;
}

START_TEST(summary_counts_like_keras) {
    llm_model *m = seed_model(20000, 64, 128);
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){200}));
    int64_t count;
    ck_assert_ok(llm_model_param_count(m, &count));
    /* Keras: 1,280,000 + 98,816 + 129 */
    ck_assert_int_eq(count, 1280000 + 98816 + 129);
    char buf[2048];
    size_t need;
    ck_assert_ok(llm_model_summary(m, buf, sizeof buf, &need));
    ck_assert_uint_eq(need, strlen(buf));
    ck_assert_ptr_nonnull(strstr(buf, "lstm_0 (lstm)"));
    ck_assert_ptr_nonnull(strstr(buf, "(None, 200, 64)"));
    ck_assert_ptr_nonnull(strstr(buf, "98,816"));
    ck_assert_ptr_nonnull(strstr(buf, "Total params: 1,378,945"));
    int n;
    ck_assert_ok(llm_model_num_params(m, &n));
    ck_assert_int_eq(n, 6);
    const char *name;
    int nd;
    int64_t shape[4];
    ck_assert_ok(llm_model_param_info(m, 2, &name, &nd, shape));
    ck_assert_str_eq(name, "lstm_0.weight_hh");
    ck_assert(nd == 2 && shape[0] == 512 && shape[1] == 128);
    /* Keras defaults: forget-gate bias 1, the rest 0; recurrent kernel orthogonal */
    float *bias = malloc(512 * 4), *whh = malloc(512 * 128 * 4);
    ck_assert_ok(llm_model_get_param(m, "lstm_0.bias", bias, 512 * 4));
    for (int i = 0; i < 512; i++) ck_assert_float_eq(bias[i], (i >= 128 && i < 256) ? 1.0f : 0.0f);
    ck_assert_ok(llm_model_get_param(m, "lstm_0.weight_hh", whh, 512 * 128 * 4));
    for (int a = 0; a < 128; a += 17)
        for (int b = 0; b < 128; b += 13) {
            double dot = 0;
            for (int r = 0; r < 512; r++) dot += (double)whh[r * 128 + a] * whh[r * 128 + b];
            ck_assert_double_eq_tol(dot, a == b ? 1.0 : 0.0, 1e-4);
        }
    free(bias);
    free(whh);
    llm_model_free(m);
}
END_TEST

START_TEST(learns_sequence_task) {
    enum { N = 1200, T = 12 };
    int32_t *x = malloc(N * T * 4);
    float *y = malloc(N * 4);
    make_task(x, y, N, T, 7);
    llm_dataset *all, *train, *val;
    ck_assert_ok(llm_dataset_from_host(&all, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, LLM_DTYPE_F32, 1, (int64_t[]){N}, y));
    ck_assert_ok(llm_dataset_split(all, 0.2f, 3, &train, &val));
    int64_t nval;
    ck_assert_ok(llm_dataset_size(val, &nval));
    ck_assert_int_eq(nval, 240);
    llm_model *m = seed_model(20, 8, 16);
    llm_optimizer *adam;
    ck_assert_ok(llm_optimizer_adam(&adam, 0.02f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
    llm_optimizer_free(adam); /* the model keeps its own copy */
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 12;
    fo.validation = val;
    fo.early_stopping = LLM_MONITOR_VAL_LOSS;
    llm_history *h;
    ck_assert_ok(llm_model_fit(m, train, &fo, &h));
    int epochs;
    double first, last;
    ck_assert_ok(llm_history_epochs(h, &epochs));
    ck_assert_int_eq(epochs, 12);
    ck_assert_ok(llm_history_get(h, "loss", 0, &first));
    ck_assert_ok(llm_history_get(h, "loss", epochs - 1, &last));
    ck_assert(last < first * 0.5);
    llm_metrics r;
    llm_metrics_init(&r);
    ck_assert_ok(llm_model_evaluate(m, val, 0, &r));
    ck_assert_msg(r.accuracy >= 0.99, "validation accuracy %.4f", r.accuracy);
    ck_assert(r.f1 >= 0.98 && r.auc >= 0.99);
    ck_assert_int_eq(r.count, 240);
    ck_assert_int_eq(r.tp + r.fp + r.tn + r.fn, 240);
    /* predict agrees with evaluate's accuracy */
    llm_tensor *xt, *pt;
    ck_assert_ok(llm_tensor_from_host(&xt, be, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, (size_t)N * T * 4));
    ck_assert_ok(llm_model_predict(m, xt, &pt));
    int64_t ps[4];
    ck_assert_ok(llm_tensor_shape(pt, ps));
    ck_assert(ps[0] == N && ps[1] == 1);
    float *p = malloc(N * 4);
    ck_assert_ok(llm_tensor_to_host(pt, p, N * 4));
    int correct = 0;
    for (int i = 0; i < N; i++) correct += (p[i] >= 0.5f) == (y[i] >= 0.5f);
    ck_assert_int_ge(correct, (int)(0.98 * N));
    llm_tensor_free(xt);
    llm_tensor_free(pt);
    free(p);
    llm_history_free(h);
    llm_model_free(m);
    llm_dataset_free(all);
    llm_dataset_free(train);
    llm_dataset_free(val);
    free(x);
    free(y);
}
END_TEST

/* One SGD step on Dense(1) with MSE, against values worked out by hand. */
START_TEST(sgd_step_by_hand) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_NONE)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 1, (int64_t[]){2}));
    float w[2] = {0.5f, -1.0f}, b = 0.25f;
    ck_assert_ok(llm_model_set_param(m, "dense_0.weight", w, sizeof w));
    ck_assert_ok(llm_model_set_param(m, "dense_0.bias", &b, sizeof b));
    llm_optimizer *sgd;
    ck_assert_ok(llm_optimizer_sgd(&sgd, 0.1f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_MSE, sgd, LLM_METRIC_NONE));
    /* x = [[1, 2], [3, -1]], t = [0, 1]; y = [-1.25, 2.75]; err = y - t = [-1.25, 1.75]
     * loss = (1.5625 + 3.0625) / 2 = 2.3125; dy = err (2/N = 1)
     * dW = [-1.25*1 + 1.75*3, -1.25*2 + 1.75*-1] = [4.0, -4.25]; db = 0.5 */
    float xs[4] = {1, 2, 3, -1}, ts[2] = {0, 1};
    llm_tensor *x, *t;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 2, (int64_t[]){2, 2}, xs, sizeof xs));
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){2, 1}, ts, sizeof ts));
    float loss;
    ck_assert_ok(llm_model_train_on_batch(m, x, t, &loss, NULL));
    ck_assert_float_eq_tol(loss, 2.3125f, 1e-6f);
    float g[2], nb;
    ck_assert_ok(llm_model_get_grad(m, "dense_0.weight", g, sizeof g));
    ck_assert_float_eq_tol(g[0], 4.0f, 1e-6f);
    ck_assert_float_eq_tol(g[1], -4.25f, 1e-6f);
    ck_assert_ok(llm_model_get_param(m, "dense_0.weight", w, sizeof w));
    ck_assert_ok(llm_model_get_param(m, "dense_0.bias", &nb, sizeof nb));
    ck_assert_float_eq_tol(w[0], 0.5f - 0.4f, 1e-6f);
    ck_assert_float_eq_tol(w[1], -1.0f + 0.425f, 1e-6f);
    ck_assert_float_eq_tol(nb, 0.25f - 0.05f, 1e-6f);
    llm_tensor_free(x);
    llm_tensor_free(t);
    llm_optimizer_free(sgd);
    llm_model_free(m);
}
END_TEST

/* Same seed, same threads: bit-for-bit the same weights after training. */
static void train_small(uint64_t seed, float *out, int64_t n) {
    enum { N = 96, T = 8 };
    int32_t x[N * T];
    float y[N];
    make_task(x, y, N, T, 11);
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, LLM_DTYPE_F32, 1, (int64_t[]){N}, y));
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, seed));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(20, 4)));
    ck_assert_ok(llm_model_add(m, llm_layer_gru(6, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_dropout(0.3f)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adamw(&opt, 0.01f, 0.01f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 2;
    fo.batch_size = 16;
    ck_assert_ok(llm_model_fit(m, ds, &fo, NULL));
    ck_assert_ok(llm_model_get_param(m, "gru_0.weight_hh", out, (size_t)n * 4));
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_dataset_free(ds);
}

START_TEST(training_is_reproducible) {
    float a[18 * 6], b[18 * 6], c[18 * 6];
    train_small(5, a, 18 * 6);
    train_small(5, b, 18 * 6);
    train_small(6, c, 18 * 6);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert(memcmp(a, c, sizeof a) != 0);
}
END_TEST

static int stop_after_batches(const llm_progress *p, void *user) {
    int *calls = user;
    ++*calls;
    ck_assert_uint_eq(p->size, sizeof *p);
    ck_assert(p->loss > 0 && p->batch >= 1 && p->batch <= p->batches);
    return *calls >= 3;
}

START_TEST(callback_stops_training) {
    enum { N = 200, T = 6 };
    int32_t x[N * T];
    float y[N];
    make_task(x, y, N, T, 2);
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, LLM_DTYPE_F32, 1, (int64_t[]){N}, y));
    llm_model *m = seed_model(20, 4, 4);
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adam(&opt, 1e-3f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 5;
    fo.validation_split = 0.25f;
    int calls = 0;
    fo.on_batch = stop_after_batches;
    fo.user = &calls;
    llm_history *h;
    ck_assert_ok(llm_model_fit(m, ds, &fo, &h));
    ck_assert_int_eq(calls, 3);
    int stopped, epochs;
    ck_assert_ok(llm_history_stopped_early(h, &stopped));
    ck_assert_int_eq(stopped, 1);
    ck_assert_ok(llm_history_epochs(h, &epochs));
    ck_assert_int_eq(epochs, 1);
    llm_history_free(h);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_dataset_free(ds);
}
END_TEST

START_TEST(early_stopping_restores_best) {
    enum { N = 64, T = 4 };
    int32_t x[N * T];
    float y[N];
    make_task(x, y, N, T, 4);
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, LLM_DTYPE_F32, 1, (int64_t[]){N}, y));
    llm_model *m = seed_model(20, 4, 4);
    llm_optimizer *opt;
    /* a learning rate so large that the loss jumps about and stops improving */
    ck_assert_ok(llm_optimizer_sgd(&opt, 40.0f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 30;
    fo.early_stopping = LLM_MONITOR_LOSS;
    fo.patience = 2;
    llm_history *h;
    ck_assert_ok(llm_model_fit(m, ds, &fo, &h));
    int epochs, best, stopped;
    ck_assert_ok(llm_history_epochs(h, &epochs));
    ck_assert_ok(llm_history_best_epoch(h, &best));
    ck_assert_ok(llm_history_stopped_early(h, &stopped));
    ck_assert_int_eq(stopped, 1);
    ck_assert_int_lt(epochs, 30);
    ck_assert_int_eq(best, epochs - 3); /* patience 2: two epochs after the best */
    double best_loss, l;
    ck_assert_ok(llm_history_get(h, "loss", best, &best_loss));
    for (int e = 0; e < epochs; e++) { ck_assert_ok(llm_history_get(h, "loss", e, &l)); ck_assert(l >= best_loss); }
    llm_history_free(h);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_dataset_free(ds);
}
END_TEST

START_TEST(categorical_and_features) {
    /* 3 classes from 2-D points: class = sector of the angle */
    enum { N = 300 };
    float x[N * 2];
    int32_t y[N];
    uint64_t s = 9;
    for (int i = 0; i < N; i++) {
        float a = tu_uniform(&s, 0, 6.2831853f), r = tu_uniform(&s, 0.5f, 1.5f);
        x[2 * i] = r * cosf(a);
        x[2 * i + 1] = r * sinf(a);
        y[i] = (int32_t)(a / 2.0943952f);
        if (y[i] > 2) y[i] = 2;
    }
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_F32, 2, (int64_t[]){N, 2}, x, LLM_DTYPE_I32, 1, (int64_t[]){N}, y));
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(32, LLM_ACT_RELU)));
    ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(16, LLM_ACT_GELU)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(3, LLM_ACT_SOFTMAX)));
    llm_optimizer_options oo;
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_ADAM);
    oo.learning_rate = 0.01f;
    oo.clip_norm = 1.0f;
    oo.schedule = LLM_SCHEDULE_COSINE;
    oo.warmup_steps = 10;
    oo.decay_steps = 400;
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_create(&opt, &oo));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 40;
    ck_assert_ok(llm_model_fit(m, ds, &fo, NULL));
    llm_metrics r;
    llm_metrics_init(&r);
    ck_assert_ok(llm_model_evaluate(m, ds, 64, &r));
    ck_assert_msg(r.accuracy >= 0.95, "accuracy %.3f", r.accuracy);
    ck_assert(isnan(r.f1)); /* binary metrics are not defined for 3 classes */
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_dataset_free(ds);
}
END_TEST

START_TEST(schedules) {
    llm_optimizer_options o;
    llm_optimizer_options_init(&o, LLM_OPTIMIZER_SGD);
    o.learning_rate = 1.0f;
    o.schedule = LLM_SCHEDULE_STEP;
    o.decay_steps = 10;
    o.decay_rate = 0.5f;
    llm_optimizer *opt;
    float lr;
    ck_assert_ok(llm_optimizer_create(&opt, &o));
    ck_assert_ok(llm_optimizer_learning_rate(opt, 9, &lr));
    ck_assert_float_eq(lr, 1.0f);
    ck_assert_ok(llm_optimizer_learning_rate(opt, 25, &lr));
    ck_assert_float_eq(lr, 0.25f);
    llm_optimizer_free(opt);
    o.schedule = LLM_SCHEDULE_COSINE;
    o.warmup_steps = 4;
    o.decay_steps = 14;
    o.min_learning_rate = 0.1f;
    ck_assert_ok(llm_optimizer_create(&opt, &o));
    ck_assert_ok(llm_optimizer_learning_rate(opt, 0, &lr));
    ck_assert_float_eq_tol(lr, 0.25f, 1e-6f);
    ck_assert_ok(llm_optimizer_learning_rate(opt, 3, &lr));
    ck_assert_float_eq_tol(lr, 1.0f, 1e-6f);
    ck_assert_ok(llm_optimizer_learning_rate(opt, 4, &lr));
    ck_assert_float_eq_tol(lr, 1.0f, 1e-6f);
    ck_assert_ok(llm_optimizer_learning_rate(opt, 9, &lr)); /* halfway: (1 + 0.1) / 2 */
    ck_assert_float_eq_tol(lr, 0.55f, 1e-6f);
    ck_assert_ok(llm_optimizer_learning_rate(opt, 100, &lr));
    ck_assert_float_eq_tol(lr, 0.1f, 1e-6f);
    llm_optimizer_options back;
    back.size = sizeof back;
    ck_assert_ok(llm_optimizer_get_options(opt, &back));
    ck_assert_int_eq(back.warmup_steps, 4);
    llm_optimizer_free(opt);
}
END_TEST

START_TEST(layer_constructor_errors) {
    llm_layer *bad[] = {
        llm_layer_embedding(1, 8), llm_layer_embedding(10, 0), llm_layer_lstm(0, LLM_RETURN_LAST),
        llm_layer_gru(4, (llm_return_mode)7), llm_layer_dense(0, LLM_ACT_NONE), llm_layer_dense(3, (llm_activation)42),
        llm_layer_dropout(1.0f), llm_layer_dropout(-0.1f), llm_layer_layernorm(0.0f), llm_layer_activation((llm_activation)9),
        llm_layer_global_pool((llm_pool_mode)5), llm_layer_bidirectional(llm_layer_dense(3, LLM_ACT_NONE)),
        llm_layer_bidirectional(NULL), llm_layer_bidirectional(llm_layer_lstm(0, LLM_RETURN_LAST)),
        llm_layer_lstm_ex(NULL), llm_layer_dense_ex(NULL), llm_layer_embedding_ex(NULL),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_nonnull(bad[i]);
        ck_assert_msg(llm_layer_status(bad[i]) != LLM_OK, "constructor %zu accepted bad input", i);
        ck_assert_int_gt((int)strlen(llm_layer_error(bad[i])), 0);
    }
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    /* add reports the carried error and takes the layer */
    ck_assert_fails(llm_model_add(m, bad[0]), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "vocab"));
    for (size_t i = 1; i < sizeof bad / sizeof bad[0]; i++) llm_layer_free(bad[i]);
    ck_assert_fails(llm_model_add(m, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_add(NULL, llm_layer_dense(1, LLM_ACT_NONE)), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_layer_status(NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(llm_layer_kind(NULL), "invalid");
    llm_layer *ok = llm_layer_gru(3, LLM_RETURN_SEQUENCES);
    ck_assert_str_eq(llm_layer_kind(ok), "gru");
    ck_assert_str_eq(llm_layer_error(ok), "");
    llm_layer_free(ok);
    llm_model_free(m);
}
END_TEST

START_TEST(model_bad_input) {
    llm_model *m = seed_model(50, 4, 4);
    enum { N = 8, T = 5 };
    int32_t ids[N * T];
    float lab[N];
    for (int i = 0; i < N * T; i++) ids[i] = 2 + i % 40;
    for (int i = 0; i < N; i++) lab[i] = (float)(i % 2);
    llm_tensor *x, *y, *y_short, *xf, *x_big;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, ids, sizeof ids));
    ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_F32, 1, (int64_t[]){N}, lab, sizeof lab));
    ck_assert_ok(llm_tensor_from_host(&y_short, be, LLM_DTYPE_F32, 1, (int64_t[]){N - 1}, lab, sizeof lab - 4));
    ck_assert_ok(llm_tensor_create(&xf, be, LLM_DTYPE_F32, 2, (int64_t[]){N, T}));
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, ids, LLM_DTYPE_F32, 1, (int64_t[]){N}, lab));
    float loss;
    /* fit / train before compile */
    ck_assert_fails(llm_model_fit(m, ds, NULL, NULL), LLM_ERR_STATE);
    ck_assert_fails(llm_model_train_on_batch(m, x, y, &loss, NULL), LLM_ERR_STATE);
    llm_metrics r;
    llm_metrics_init(&r);
    ck_assert_fails(llm_model_evaluate(m, ds, 0, &r), LLM_ERR_STATE);
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adam(&opt, 1e-3f));
    ck_assert_fails(llm_model_compile(m, (llm_loss)99, opt, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_compile(m, LLM_LOSS_MSE, opt, 0x10), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_compile(m, LLM_LOSS_MSE, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    /* labels of the wrong length, wrong dtype, out-of-range ids, non-binary targets */
    ck_assert_fails(llm_model_train_on_batch(m, x, y_short, &loss, NULL), LLM_ERR_SHAPE);
    ck_assert_fails(llm_model_train_on_batch(m, xf, y, &loss, NULL), LLM_ERR_DTYPE);
    ck_assert_ok(llm_model_train_on_batch(m, x, y, &loss, NULL)); /* builds for [5] int32 */
    ids[3] = 50;
    ck_assert_ok(llm_tensor_from_host(&x_big, be, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, ids, sizeof ids));
    ck_assert_fails(llm_model_train_on_batch(m, x_big, y, &loss, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_tensor *never = NULL;
    ck_assert_fails(llm_model_predict(m, x_big, &never), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(never);
    llm_tensor_free(x_big);
    ids[3] = 2;
    lab[0] = 2.0f;
    llm_tensor *y_bad;
    ck_assert_ok(llm_tensor_from_host(&y_bad, be, LLM_DTYPE_F32, 1, (int64_t[]){N}, lab, sizeof lab));
    ck_assert_fails(llm_model_train_on_batch(m, x, y_bad, &loss, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_tensor_free(y_bad);
    /* shape that does not match the built model */
    llm_tensor *x_long;
    int32_t long_ids[N * 6] = {0};
    ck_assert_ok(llm_tensor_from_host(&x_long, be, LLM_DTYPE_I32, 2, (int64_t[]){N, 6}, long_ids, sizeof long_ids));
    llm_tensor *out = NULL;
    ck_assert_fails(llm_model_predict(m, x_long, &out), LLM_ERR_SHAPE);
    ck_assert_ptr_null(out);
    ck_assert_fails(llm_model_add(m, llm_layer_dense(2, LLM_ACT_NONE)), LLM_ERR_STATE);
    ck_assert_fails(llm_model_set_seed(m, 3), LLM_ERR_STATE);
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){5}), LLM_ERR_STATE);
    /* fit options */
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 0;
    ck_assert_fails(llm_model_fit(m, ds, &fo, NULL), LLM_ERR_INVALID_ARGUMENT);
    fo.epochs = 1; fo.batch_size = 0;
    ck_assert_fails(llm_model_fit(m, ds, &fo, NULL), LLM_ERR_INVALID_ARGUMENT);
    fo.batch_size = 4; fo.validation_split = 1.5f;
    ck_assert_fails(llm_model_fit(m, ds, &fo, NULL), LLM_ERR_INVALID_ARGUMENT);
    fo.validation_split = 0; fo.early_stopping = LLM_MONITOR_VAL_LOSS;
    ck_assert_fails(llm_model_fit(m, ds, &fo, NULL), LLM_ERR_INVALID_ARGUMENT);
    fo.early_stopping = (llm_monitor)17;
    ck_assert_fails(llm_model_fit(m, ds, &fo, NULL), LLM_ERR_INVALID_ARGUMENT);
    fo.size = 0;
    ck_assert_fails(llm_model_fit(m, ds, &fo, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_fit(m, NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_evaluate(m, ds, -1, &r), LLM_ERR_INVALID_ARGUMENT);
    r.size = 0;
    ck_assert_fails(llm_model_evaluate(m, ds, 0, &r), LLM_ERR_INVALID_ARGUMENT);
    /* parameters by name */
    float buf[4];
    ck_assert_fails(llm_model_get_param(m, "nope", buf, sizeof buf), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_get_param(m, "dense_0.bias", buf, sizeof buf), LLM_ERR_INVALID_ARGUMENT);
    buf[0] = NAN;
    ck_assert_fails(llm_model_set_param(m, "dense_0.bias", buf, 4), LLM_ERR_NUMERIC);
    ck_assert_fails(llm_model_param_info(m, 99, NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_summary(m, NULL, 5, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_tensor_free(x); llm_tensor_free(y); llm_tensor_free(y_short); llm_tensor_free(xf); llm_tensor_free(x_long);
    llm_dataset_free(ds);
    llm_optimizer_free(opt);
    llm_model_free(m);
}
END_TEST

START_TEST(unbuilt_and_mismatched_models) {
    llm_model *m;
    int64_t count;
    ck_assert_fails(llm_model_sequential(NULL, be), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_sequential(&m, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){4}), LLM_ERR_STATE); /* no layers */
    ck_assert_fails(llm_model_param_count(m, &count), LLM_ERR_STATE);
    char buf[64];
    ck_assert_fails(llm_model_summary(m, buf, sizeof buf, NULL), LLM_ERR_STATE);
    /* LSTM straight on token ids: a dtype error naming the layer */
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(4, LLM_RETURN_LAST)));
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){4}), LLM_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "lstm_0"));
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_F32, 1, (int64_t[]){4}), LLM_ERR_SHAPE); /* needs [T, F] */
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_F32, 0, (int64_t[]){4}), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_F32, 2, (int64_t[]){4, -2}), LLM_ERR_INVALID_ARGUMENT);
    llm_model_free(m);
    /* pooling after a layer that returns the last state only */
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(10, 3)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(4, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)));
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){4}), LLM_ERR_SHAPE);
    llm_model_free(m);
    llm_model_free(NULL);
}
END_TEST

START_TEST(nan_stops_training_and_keeps_weights) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_NONE)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 1, (int64_t[]){1}));
    llm_optimizer *sgd;
    ck_assert_ok(llm_optimizer_sgd(&sgd, 1.0f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_MSE, sgd, 0));
    float w = 3e38f, before, after;
    ck_assert_ok(llm_model_set_param(m, "dense_0.weight", &w, 4));
    ck_assert_ok(llm_model_get_param(m, "dense_0.weight", &before, 4));
    float xs[1] = {1e10f}, ts[1] = {0};
    llm_tensor *x, *t;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 2, (int64_t[]){1, 1}, xs, 4));
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){1, 1}, ts, 4));
    float loss;
    ck_assert_fails(llm_model_train_on_batch(m, x, t, &loss, NULL), LLM_ERR_NUMERIC);
    ck_assert_ok(llm_model_get_param(m, "dense_0.weight", &after, 4));
    ck_assert_float_eq(before, after);
    /* NaN in inputs: refused before anything runs */
    float bad[2] = {1.0f, NAN}, ok[2] = {0, 1};
    llm_dataset *ds;
    ck_assert_fails(llm_dataset_from_host(&ds, LLM_DTYPE_F32, 2, (int64_t[]){2, 1}, bad, LLM_DTYPE_F32, 1, (int64_t[]){2}, ok),
                    LLM_ERR_NUMERIC);
    llm_tensor_free(x);
    llm_tensor_free(t);
    llm_optimizer_free(sgd);
    llm_model_free(m);
}
END_TEST

START_TEST(dataset_and_optimizer_errors) {
    llm_dataset *a, *b;
    int32_t x[6] = {1, 2, 3, 4, 5, 6};
    float y[3] = {0, 1, 0};
    ck_assert_fails(llm_dataset_from_host(NULL, LLM_DTYPE_I32, 2, (int64_t[]){3, 2}, x, LLM_DTYPE_F32, 1, (int64_t[]){3}, y), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dataset_from_host(&a, LLM_DTYPE_I32, 2, (int64_t[]){3, 2}, NULL, LLM_DTYPE_F32, 1, (int64_t[]){3}, y), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dataset_from_host(&a, LLM_DTYPE_I32, 2, (int64_t[]){3, 2}, x, LLM_DTYPE_F32, 1, (int64_t[]){2}, y), LLM_ERR_SHAPE);
    ck_assert_fails(llm_dataset_from_host(&a, LLM_DTYPE_I32, 0, (int64_t[]){3, 2}, x, LLM_DTYPE_F32, 1, (int64_t[]){3}, y), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dataset_from_tensors(&a, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_dataset_from_host(&a, LLM_DTYPE_I32, 2, (int64_t[]){3, 2}, x, LLM_DTYPE_F32, 1, (int64_t[]){3}, y));
    llm_dataset *p, *q;
    ck_assert_fails(llm_dataset_split(a, 0.0f, 1, &p, &q), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dataset_split(a, 0.01f, 1, &p, &q), LLM_ERR_INVALID_ARGUMENT); /* empty part */
    ck_assert_fails(llm_dataset_split(NULL, 0.5f, 1, &p, &q), LLM_ERR_INVALID_ARGUMENT);
    int32_t ex[2];
    float ey;
    ck_assert_fails(llm_dataset_get(a, 3, ex, sizeof ex, &ey, 4), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dataset_get(a, 0, ex, 4, &ey, 4), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_dataset_get(a, 2, ex, sizeof ex, &ey, 4));
    ck_assert(ex[0] == 5 && ex[1] == 6 && ey == 0.0f);
    int64_t n;
    ck_assert_fails(llm_dataset_size(NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    llm_dataset_free(a);
    (void)b;

    llm_optimizer *o;
    llm_optimizer_options oo;
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_ADAM);
    ck_assert_fails(llm_optimizer_create(NULL, &oo), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_optimizer_create(&o, NULL), LLM_ERR_INVALID_ARGUMENT);
    oo.learning_rate = -1;
    ck_assert_fails(llm_optimizer_create(&o, &oo), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "learning_rate"));
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_ADAM); oo.beta1 = 1.0f;
    ck_assert_fails(llm_optimizer_create(&o, &oo), LLM_ERR_INVALID_ARGUMENT);
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_SGD); oo.nesterov = 1;
    ck_assert_fails(llm_optimizer_create(&o, &oo), LLM_ERR_INVALID_ARGUMENT);
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_SGD); oo.schedule = LLM_SCHEDULE_STEP; oo.decay_steps = 0;
    ck_assert_fails(llm_optimizer_create(&o, &oo), LLM_ERR_INVALID_ARGUMENT);
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_SGD); oo.clip_norm = -1;
    ck_assert_fails(llm_optimizer_create(&o, &oo), LLM_ERR_INVALID_ARGUMENT);
    llm_optimizer_options_init(&oo, (llm_optimizer_kind)8);
    ck_assert_fails(llm_optimizer_create(&o, &oo), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_optimizer_sgd(&o, 0.0f, 0, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_optimizer_adamw(&o, 1e-3f, -1.0f), LLM_ERR_INVALID_ARGUMENT);
    float lr;
    ck_assert_fails(llm_optimizer_learning_rate(NULL, 0, &lr), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_optimizer_adam(&o, 1e-3f));
    ck_assert_fails(llm_optimizer_learning_rate(o, -1, &lr), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_optimizer_get_options(o, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_optimizer_free(o);
    llm_optimizer_free(NULL);
}
END_TEST

START_TEST(history_errors) {
    int e;
    double v;
    ck_assert_fails(llm_history_epochs(NULL, &e), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_history_get(NULL, "loss", 0, &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_history_stopped_early(NULL, &e), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_history_best_epoch(NULL, &e), LLM_ERR_INVALID_ARGUMENT);
    llm_history_free(NULL);
}
END_TEST

Suite *suite_model(void) {
    Suite *s = suite_create("model");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, summary_counts_like_keras);
    tcase_add_test(c, learns_sequence_task);
    tcase_add_test(c, sgd_step_by_hand);
    tcase_add_test(c, training_is_reproducible);
    tcase_add_test(c, callback_stops_training);
    tcase_add_test(c, early_stopping_restores_best);
    tcase_add_test(c, categorical_and_features);
    tcase_add_test(c, schedules);
    suite_add_tcase(s, c);
    TCase *e = tcase_create("errors");
    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, layer_constructor_errors);
    tcase_add_test(e, model_bad_input);
    tcase_add_test(e, unbuilt_and_mismatched_models);
    tcase_add_test(e, nan_stops_training_and_keeps_weights);
    tcase_add_test(e, dataset_and_optimizer_errors);
    tcase_add_test(e, history_errors);
    suite_add_tcase(s, e);
    return s;
}
