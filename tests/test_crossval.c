/* Cross-validation: the fold split (stratified, disjoint, covering,
 * reproducible), the mean and sd of metrics, the e-mail corpus mapping,
 * and llm_cross_validate end to end with a factory that checks that no
 * fold's texts, nor their tokens in its vocabulary, reach its own training. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

static const char *const classes[] = { "ham", "spam" };

/* n_ham + n_spam texts; text i holds the token "uniq<i>" and class words. */
static llm_text_corpus *make_corpus(int n_ham, int n_spam) {
    llm_text_corpus *c;
    ck_assert_ok(llm_text_corpus_create(&c, classes, 2));
    for (int i = 0; i < n_ham + n_spam; i++) {
        char t[128];
        snprintf(t, sizeof t, "uniq%d %s", i, i < n_ham ? "meeting notes for monday lunch" : "cheap pills buy now winner");
        ck_assert_ok(llm_text_corpus_add(c, t, strlen(t), i < n_ham ? 0 : 1));
    }
    ck_assert_ok(llm_text_corpus_shuffle(c, 7)); /* the classes interleaved */
    return c;
}

/* The number in "uniq<i>" at the start of text i. */
static int text_id(const llm_text_corpus *c, int64_t i) {
    const char *t;
    ck_assert_ok(llm_text_corpus_text(c, i, &t, NULL));
    ck_assert_int_eq(strncmp(t, "uniq", 4), 0);
    return atoi(t + 4);
}

START_TEST(folds_are_stratified_disjoint_covering_and_reproducible) {
    llm_text_corpus *c = make_corpus(23, 12);
    enum { N = 35, K = 5 };
    int32_t f[N], g[N], h[N];
    ck_assert_ok(llm_text_corpus_folds(c, K, 1, f, N));
    ck_assert_ok(llm_text_corpus_folds(c, K, 1, g, N));
    ck_assert_ok(llm_text_corpus_folds(c, K, 2, h, N));
    int same = 1, differs = 0;
    int size[K] = { 0 }, per_class[K][2];
    memset(per_class, 0, sizeof per_class);
    for (int i = 0; i < N; i++) {
        ck_assert_int_ge(f[i], 0);
        ck_assert_int_lt(f[i], K);
        same &= f[i] == g[i];
        differs |= f[i] != h[i];
        int32_t y;
        ck_assert_ok(llm_text_corpus_label(c, i, &y));
        size[f[i]]++;
        per_class[f[i]][y]++;
    }
    ck_assert_msg(same, "the same seed gave other folds");
    ck_assert_msg(differs, "another seed gave the same folds");
    for (int k = 0; k < K; k++) {
        ck_assert_int_ge(size[k], N / K);
        ck_assert_int_le(size[k], N / K + 1);
        /* 23 ham: 4 or 5 per fold; 12 spam: 2 or 3 */
        ck_assert_int_ge(per_class[k][0], 4);
        ck_assert_int_le(per_class[k][0], 5);
        ck_assert_int_ge(per_class[k][1], 2);
        ck_assert_int_le(per_class[k][1], 3);
    }
    /* each fold's split: its texts in test, every other text in train, once */
    int seen[N];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < K; k++) {
        llm_text_corpus *tr, *te;
        ck_assert_ok(llm_text_corpus_fold_split(c, f, k, &tr, &te));
        int64_t ntr, nte;
        ck_assert_ok(llm_text_corpus_count(tr, &ntr));
        ck_assert_ok(llm_text_corpus_count(te, &nte));
        ck_assert_int_eq(nte, size[k]);
        ck_assert_int_eq(ntr + nte, N);
        for (int64_t i = 0; i < nte; i++) seen[text_id(te, i)]++;
        int in_train[N];
        memset(in_train, 0, sizeof in_train);
        for (int64_t i = 0; i < ntr; i++) in_train[text_id(tr, i)] = 1;
        for (int64_t i = 0; i < nte; i++) ck_assert_msg(!in_train[text_id(te, i)], "a text is in both parts");
        llm_text_corpus_free(tr);
        llm_text_corpus_free(te);
    }
    for (int i = 0; i < N; i++) ck_assert_msg(seen[i] == 1, "text %d was scored %d times", i, seen[i]);
    llm_text_corpus_free(c);
}
END_TEST

START_TEST(folds_refuse_bad_input) {
    llm_text_corpus *c = make_corpus(10, 3);
    int32_t f[13];
    ck_assert_fails(llm_text_corpus_folds(c, 1, 1, f, 13), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_folds(c, 4, 1, f, 13), LLM_ERR_INVALID_ARGUMENT); /* spam has 3 */
    ck_assert_msg(strstr(llm_last_error(), "spam") && strstr(llm_last_error(), "3"), "unclear: %s", llm_last_error());
    ck_assert_fails(llm_text_corpus_folds(c, 3, 1, f, 12), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_folds(c, 3, 1, NULL, 13), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_text_corpus_folds(c, 3, 1, f, 13));
    llm_text_corpus_free(c);
}
END_TEST

START_TEST(mean_and_sd_of_metrics) {
    llm_metrics m[3], mean, sd;
    double f1[3] = { 0.9, 1.0, 0.8 }, auc[3] = { 0.99, 0.99, 0.99 };
    for (int i = 0; i < 3; i++) {
        llm_metrics_init(&m[i]);
        m[i].f1 = f1[i];
        m[i].auc = auc[i];
        m[i].accuracy = m[i].precision = m[i].recall = 0.5 + 0.1 * i;
        m[i].threshold = 0.5;
        m[i].count = 10;
        m[i].tp = 1 + i;
        m[i].fn = 2;
    }
    m[1].loss = 0.3; /* loss known in one fold only */
    llm_metrics_init(&mean);
    llm_metrics_init(&sd);
    ck_assert_ok(llm_metrics_mean_sd(m, 3, &mean, &sd));
    ck_assert_double_eq_tol(mean.f1, 0.9, 1e-12);
    ck_assert_double_eq_tol(sd.f1, 0.1, 1e-12);
    ck_assert_double_eq_tol(mean.auc, 0.99, 1e-12);
    ck_assert_double_eq_tol(sd.auc, 0.0, 1e-9);
    ck_assert_double_eq_tol(mean.accuracy, 0.6, 1e-12);
    ck_assert_double_eq_tol(sd.recall, 0.1, 1e-12);
    ck_assert_msg(isnan(mean.loss) && isnan(sd.loss), "a NAN input must give NAN");
    ck_assert_int_eq(mean.count, 30);
    ck_assert_int_eq(mean.tp, 6);
    ck_assert_int_eq(mean.fn, 6);
    ck_assert_ok(llm_metrics_mean_sd(m, 1, &mean, &sd));
    ck_assert_double_eq(sd.f1, 0.0);
    ck_assert_fails(llm_metrics_mean_sd(m, 0, &mean, &sd), LLM_ERR_INVALID_ARGUMENT);
    sd.size = 0;
    ck_assert_fails(llm_metrics_mean_sd(m, 3, &mean, &sd), LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(raw_mail_becomes_reader_text) {
    llm_text_corpus *raw, *txt;
    ck_assert_ok(llm_text_corpus_create(&raw, classes, 2));
    const char *mail = "From: a@b.c\r\nSubject: =?utf-8?q?cheap_pills?=\r\n\r\nbuy now\r\n";
    ck_assert_ok(llm_text_corpus_add(raw, mail, strlen(mail), 1));
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.keep_headers = "From";
    ck_assert_ok(llm_text_corpus_read_email(&txt, raw, &eo));
    const char *t;
    int32_t y;
    ck_assert_ok(llm_text_corpus_text(txt, 0, &t, NULL));
    ck_assert_ok(llm_text_corpus_label(txt, 0, &y));
    ck_assert_int_eq(y, 1);
    ck_assert_msg(strstr(t, "From: a@b.c") && strstr(t, "cheap pills") && strstr(t, "buy now") && !strstr(t, "\r"),
                  "reader text: '%s'", t);
    llm_text_corpus_free(txt);
    ck_assert_fails(llm_text_corpus_read_email(&txt, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_text_corpus_free(raw);
}
END_TEST

/* ---- llm_cross_validate with a tiny bag-of-embeddings model ---- */

enum { CV_N = 30, CV_K = 3 };

typedef struct factory {
    llm_backend *be;
    int32_t expected_fold[CV_N]; /* by text id: llm_text_corpus_folds with the same seed */
    int check;                   /* expected_fold holds this run's folds */
    int calls, leaks, vocab_leaks, progress, fail_at;
} factory;

static llm_status train_tiny(llm_model **out, const llm_text_corpus *train, const llm_cv_fold *fold, void *user) {
    factory *f = user;
    f->calls++;
    if (f->fail_at == f->calls) return LLM_ERR_IO;
    int64_t n;
    ck_assert_ok(llm_text_corpus_count(train, &n));
    ck_assert_int_eq(n, fold->train_count);
    for (int64_t i = 0; f->check && i < n; i++) f->leaks += f->expected_fold[text_id(train, i)] == fold->fold;
    llm_vocab *v;
    ck_assert_ok(llm_vocab_build_from_corpus(&v, train, NULL, NULL));
    /* the vocabulary knows the training texts' own tokens and none of the fold's */
    for (int i = 0; f->check && i < CV_N; i++) {
        char tok[16];
        int32_t id;
        snprintf(tok, sizeof tok, "uniq%d", i);
        ck_assert_ok(llm_vocab_lookup(v, tok, strlen(tok), &id));
        if (f->expected_fold[i] == fold->fold) f->vocab_leaks += id != LLM_VOCAB_OOV;
        else ck_assert_int_ne(id, LLM_VOCAB_OOV);
    }
    int32_t vs;
    ck_assert_ok(llm_vocab_size(v, &vs));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = 8;
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_corpus(&ds, train, v, &vo));
    llm_model *m;
    llm_optimizer *adam;
    ck_assert_ok(llm_model_sequential(&m, f->be));
    ck_assert_ok(llm_model_set_seed(m, 3));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(vs, 4)));
    ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_optimizer_adam(&adam, 0.05f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, NULL));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 15;
    fo.batch_size = 4;
    ck_assert_ok(llm_model_fit(m, ds, &fo, NULL));
    llm_optimizer_free(adam);
    llm_dataset_free(ds);
    llm_vocab_free(v);
    *out = m;
    return LLM_OK;
}

static int count_folds(const llm_cv_fold *fold, const llm_metrics *m, void *user) {
    factory *f = user;
    ck_assert_int_eq(fold->fold, f->progress % CV_K);
    ck_assert_int_eq(m->count, fold->test_count);
    f->progress++;
    return 0;
}

static int stop_now(const llm_cv_fold *fold, const llm_metrics *m, void *user) { return 1; }

START_TEST(cross_validation_scores_every_text_out_of_fold) {
    factory f;
    memset(&f, 0, sizeof f);
    ck_assert_ok(llm_backend_create(&f.be, LLM_BACKEND_CPU, NULL));
    llm_text_corpus *c = make_corpus(18, 12);
    int32_t by_position[CV_N];
    ck_assert_ok(llm_text_corpus_folds(c, CV_K, 9, by_position, CV_N));
    for (int i = 0; i < CV_N; i++) f.expected_fold[text_id(c, i)] = by_position[i];
    f.check = 1;
    llm_cv_options o;
    llm_cv_options_init(&o);
    o.folds = CV_K;
    o.seed = 9;
    o.train = train_tiny;
    o.on_fold = count_folds;
    o.user = &f;
    llm_cv_result *r;
    ck_assert_ok(llm_cross_validate(c, &o, &r));
    ck_assert_int_eq(f.calls, CV_K);
    ck_assert_int_eq(f.progress, CV_K);
    ck_assert_int_eq(f.leaks, 0);
    ck_assert_int_eq(f.vocab_leaks, 0);
    int32_t count;
    ck_assert_ok(llm_cv_result_count(r, &count));
    ck_assert_int_eq(count, CV_K);
    const float *p;
    const int32_t *fold_of;
    int64_t n;
    ck_assert_ok(llm_cv_result_scores(r, 0, &p, &fold_of, &n));
    ck_assert_int_eq(n, CV_N);
    /* the out-of-fold scores are the folds' own: their metrics again */
    llm_metrics per[CV_K];
    int64_t total = 0;
    for (int k = 0; k < CV_K; k++) {
        llm_cv_fold fi = { .size = sizeof fi };
        llm_metrics_init(&per[k]);
        ck_assert_ok(llm_cv_result_fold(r, k, &fi, &per[k]));
        ck_assert_int_eq(fi.fold, k);
        ck_assert_int_eq(fi.train_count + fi.test_count, CV_N);
        float s[CV_N];
        int32_t y[CV_N];
        int m = 0;
        for (int i = 0; i < CV_N; i++) {
            ck_assert_int_eq(fold_of[i], f.expected_fold[text_id(c, i)]);
            if (fold_of[i] != k) continue;
            s[m] = p[i];
            ck_assert_ok(llm_text_corpus_label(c, i, &y[m]));
            m++;
        }
        llm_metrics again;
        llm_metrics_init(&again);
        ck_assert_ok(llm_metrics_binary(s, y, m, 0.5, &again));
        ck_assert_double_eq(again.f1, per[k].f1);
        ck_assert_double_eq(again.auc, per[k].auc);
        total += per[k].count;
    }
    ck_assert_int_eq(total, CV_N);
    llm_metrics mean, sd, mean2, sd2;
    llm_metrics_init(&mean);
    llm_metrics_init(&sd);
    llm_metrics_init(&mean2);
    llm_metrics_init(&sd2);
    ck_assert_ok(llm_cv_result_summary(r, &mean, &sd));
    ck_assert_ok(llm_metrics_mean_sd(per, CV_K, &mean2, &sd2));
    ck_assert_double_eq(mean.f1, mean2.f1);
    ck_assert_double_eq(sd.auc, sd2.auc);
    /* the words separate the classes: every held-out text is scored right */
    ck_assert_double_eq(mean.accuracy, 1.0);
    ck_assert_fails(llm_cv_result_scores(r, 1, &p, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_cv_result_free(r);

    /* repeats: another deal of the folds for the second run */
    f.check = 0; /* the second repeat's folds are not expected_fold */
    o.repeats = 2;
    o.on_fold = NULL;
    f.calls = 0;
    ck_assert_ok(llm_cross_validate(c, &o, &r));
    ck_assert_int_eq(f.calls, 2 * CV_K);
    const int32_t *f0, *f1;
    ck_assert_ok(llm_cv_result_scores(r, 0, NULL, &f0, NULL));
    ck_assert_ok(llm_cv_result_scores(r, 1, NULL, &f1, NULL));
    int differs = 0;
    for (int i = 0; i < CV_N; i++) differs |= f0[i] != f1[i];
    ck_assert_msg(differs, "the second repeat dealt the same folds");
    llm_cv_result_free(r);

    /* a factory's failure and on_fold's stop end the run with their status */
    o.repeats = 1;
    f.calls = 0;
    f.fail_at = 2;
    ck_assert_int_eq(llm_cross_validate(c, &o, &r), LLM_ERR_IO);
    ck_assert_ptr_null(r);
    f.fail_at = 0;
    o.on_fold = stop_now;
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_CANCELLED);
    llm_text_corpus_free(c);
    llm_backend_free(f.be);
}
END_TEST

START_TEST(cross_validation_refuses_bad_options) {
    llm_text_corpus *c = make_corpus(10, 3);
    llm_cv_options o;
    llm_cv_options_init(&o);
    llm_cv_result *r;
    o.folds = 3;
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_INVALID_ARGUMENT); /* no factory */
    o.train = train_tiny;
    o.folds = 1;
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_INVALID_ARGUMENT);
    o.folds = 5; /* more than the 3 spam texts */
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(llm_last_error(), "spam"), "unclear: %s", llm_last_error());
    o.folds = 3;
    o.repeats = 0;
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_INVALID_ARGUMENT);
    o.repeats = 1;
    o.threshold = 2;
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_INVALID_ARGUMENT);
    llm_text_corpus_free(c);
    const char *three[] = { "a", "b", "c" };
    ck_assert_ok(llm_text_corpus_create(&c, three, 3));
    o.threshold = -1;
    ck_assert_fails(llm_cross_validate(c, &o, &r), LLM_ERR_INVALID_ARGUMENT);
    llm_text_corpus_free(c);
}
END_TEST

Suite *suite_crossval(void) {
    Suite *s = suite_create("crossval");
    TCase *c = tcase_create("core");
    tcase_set_timeout(c, 60);
    tcase_add_test(c, folds_are_stratified_disjoint_covering_and_reproducible);
    tcase_add_test(c, folds_refuse_bad_input);
    tcase_add_test(c, mean_and_sd_of_metrics);
    tcase_add_test(c, raw_mail_becomes_reader_text);
    tcase_add_test(c, cross_validation_scores_every_text_out_of_fold);
    tcase_add_test(c, cross_validation_refuses_bad_options);
    suite_add_tcase(s, c);
    return s;
}
