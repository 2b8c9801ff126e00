/* Ensembles: the mean of members that read text through different
 * pipelines, saved and loaded as one file, the calls an ensemble refuses,
 * and malformed ensemble files. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"
#include "io/safetensors.h"

static llm_backend *be;
static char dir[64];
static char path[128], bad_path[160];

static void setup(void) {
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    snprintf(dir, sizeof dir, "/tmp/llm_ens_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ensemble.safetensors", dir);
    snprintf(bad_path, sizeof bad_path, "%s/bad.safetensors", dir);
}
static void teardown(void) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    llm_backend_free(be);
}

static const char *mails[] = {
    "From: a@b.c\nSubject: cheap pills\n\nbuy cheap pills now, best price",
    "Subject: minutes\n\nthe meeting notes for monday are attached",
    "",
};

/* A text classifier of one of two kinds: 0 an LSTM over 9 ids, 1 averaged
 * embeddings over 15 ids with another vocabulary size and reader; outputs
 * is 1 (sigmoid) or 2 (softmax). */
static llm_model *classifier(int kind, int outputs, uint64_t seed) {
    const char *texts[] = { "cheap pills buy now", "meeting notes for monday", "buy cheap watches now", "lunch on monday" };
    const char *classes[] = { "ham", "spam" };
    llm_text_corpus *c;
    ck_assert_ok(llm_text_corpus_create(&c, classes, 2));
    for (int i = 0; i < 4; i++) ck_assert_ok(llm_text_corpus_add(c, texts[i], strlen(texts[i]), i % 2 == 0));
    llm_vocab_options vopt;
    llm_vocab_options_init(&vopt);
    vopt.max_tokens = kind ? 8 : 0;
    llm_vocab *v;
    ck_assert_ok(llm_vocab_build_from_corpus(&v, c, NULL, &vopt));
    int32_t vsize;
    ck_assert_ok(llm_vocab_size(v, &vsize));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = kind ? 15 : 9;
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, seed));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(vsize, 4)));
    if (kind == 0) {
        ck_assert_ok(llm_model_add(m, llm_layer_lstm(5, LLM_RETURN_LAST)));
    } else {
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(3, LLM_ACT_RELU)));
    }
    ck_assert_ok(llm_model_add(m, llm_layer_dense(outputs, outputs == 1 ? LLM_ACT_SIGMOID : LLM_ACT_SOFTMAX)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){ vo.seq_len }));
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.keep_headers = kind ? "From" : NULL;
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, &eo));
    llm_vocab_free(v);
    llm_text_corpus_free(c);
    return m;
}

START_TEST(mean_of_members_survives_a_round_trip) {
    llm_model *a = classifier(0, 1, 3), *b = classifier(1, 1, 4), *e, *back;
    float pa[3], pb[3], pe[3], pl[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_ok(llm_model_predict_text(a, mails[i], strlen(mails[i]), &pa[i], 1));
        ck_assert_ok(llm_model_predict_text(b, mails[i], strlen(mails[i]), &pb[i], 1));
    }
    ck_assert_ok(llm_model_set_metadata(a, "note", "the lstm"));
    ck_assert_ok(llm_model_ensemble(&e, be));
    ck_assert_ok(llm_model_ensemble_add(e, a));
    ck_assert_ok(llm_model_ensemble_add(e, b));
    ck_assert_ok(llm_model_set_metadata(e, "class_names", "ham,spam"));
    int n;
    ck_assert_ok(llm_model_ensemble_size(e, &n));
    ck_assert_int_eq(n, 2);
    ck_assert_ok(llm_model_ensemble_size(a, &n));
    ck_assert_int_eq(n, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_ok(llm_model_predict_text(e, mails[i], strlen(mails[i]), &pe[i], 1));
        ck_assert_float_eq(pe[i], (float)(((double)pa[i] + (double)pb[i]) / 2));
    }
    ck_assert(pa[0] != pb[0]); /* the members differ, so the mean is not either one */
    int64_t pc, ca, cb;
    ck_assert_ok(llm_model_param_count(a, &ca));
    ck_assert_ok(llm_model_param_count(b, &cb));
    ck_assert_ok(llm_model_param_count(e, &pc));
    ck_assert_int_eq(pc, ca + cb);
    size_t need;
    ck_assert_ok(llm_model_summary(e, NULL, 0, &need));
    char *text = malloc(need + 1);
    ck_assert_ok(llm_model_summary(e, text, need + 1, &need));
    ck_assert_ptr_nonnull(strstr(text, "mean of 2 model"));
    ck_assert_ptr_nonnull(strstr(text, "Member 1 (seq_len 15)"));
    ck_assert_ptr_nonnull(strstr(text, "lstm_0 (lstm)"));
    ck_assert_ptr_nonnull(strstr(text, "global_pool"));
    ck_assert_uint_eq(strlen(text), need);
    free(text);

    ck_assert_ok(llm_model_save(e, path));
    llm_model_free(e); /* frees a and b */
    ck_assert_ok(llm_model_load(&back, be, path));
    ck_assert_ok(llm_model_ensemble_size(back, &n));
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < 3; i++) {
        ck_assert_ok(llm_model_predict_text(back, mails[i], strlen(mails[i]), &pl[i], 1));
        ck_assert_float_eq(pl[i], pe[i]);
    }
    const char *v;
    ck_assert_ok(llm_model_get_metadata(back, "class_names", &v));
    ck_assert_str_eq(v, "ham,spam");
    ck_assert_fails(llm_model_get_metadata(back, "note", &v), LLM_ERR_INVALID_ARGUMENT);
    llm_model *m0, *m1;
    ck_assert_ok(llm_model_ensemble_member(back, 0, &m0));
    ck_assert_ok(llm_model_ensemble_member(back, 1, &m1));
    ck_assert_ok(llm_model_get_metadata(m0, "note", &v));
    ck_assert_str_eq(v, "the lstm");
    float one;
    ck_assert_ok(llm_model_predict_text(m1, mails[0], strlen(mails[0]), &one, 1));
    ck_assert_float_eq(one, pb[0]);
    ck_assert_fails(llm_model_ensemble_member(back, 2, &m0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m0);
    ck_assert_fails(llm_model_ensemble_member(m1, 0, &m0), LLM_ERR_INVALID_ARGUMENT);
    float two[2];
    ck_assert_fails(llm_model_predict_text(back, mails[0], strlen(mails[0]), two, 2), LLM_ERR_INVALID_ARGUMENT);

    /* members with several outputs average element by element */
    llm_model *c = classifier(0, 2, 5), *d = classifier(1, 2, 6), *e2;
    float pc2[2], pd2[2], pe2[2];
    ck_assert_ok(llm_model_predict_text(c, mails[1], strlen(mails[1]), pc2, 2));
    ck_assert_ok(llm_model_predict_text(d, mails[1], strlen(mails[1]), pd2, 2));
    ck_assert_ok(llm_model_ensemble(&e2, be));
    ck_assert_ok(llm_model_ensemble_add(e2, c));
    ck_assert_ok(llm_model_ensemble_add(e2, d));
    ck_assert_ok(llm_model_predict_text(e2, mails[1], strlen(mails[1]), pe2, 2));
    for (int k = 0; k < 2; k++) ck_assert_float_eq(pe2[k], (float)(((double)pc2[k] + (double)pd2[k]) / 2));
    ck_assert_float_eq_tol(pe2[0] + pe2[1], 1.0f, 1e-6f);
    llm_model_free(e2);
    llm_model_free(back);
}
END_TEST

START_TEST(ensembles_refuse_what_they_cannot_do) {
    llm_model *e, *e2, *a = classifier(0, 1, 3), *wide = classifier(1, 2, 4), *bare, *unbuilt;
    ck_assert_ok(llm_model_ensemble(&e, be));
    ck_assert_ok(llm_model_ensemble(&e2, be));
    float p;
    ck_assert_fails(llm_model_predict_text(e, "hi", 2, &p, 1), LLM_ERR_STATE);
    ck_assert_fails(llm_model_save(e, path), LLM_ERR_STATE);
    /* members: built, with a pipeline, not ensembles, in one ensemble only */
    ck_assert_ok(llm_model_sequential(&unbuilt, be));
    ck_assert_ok(llm_model_add(unbuilt, llm_layer_embedding(10, 2)));
    ck_assert_fails(llm_model_ensemble_add(e, unbuilt), LLM_ERR_STATE);
    ck_assert_ok(llm_model_sequential(&bare, be));
    ck_assert_ok(llm_model_add(bare, llm_layer_embedding(10, 2)));
    ck_assert_ok(llm_model_add(bare, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(bare, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(bare, LLM_DTYPE_I32, 1, (int64_t[]){ 4 }));
    ck_assert_fails(llm_model_ensemble_add(e, bare), LLM_ERR_STATE);
    ck_assert_fails(llm_model_ensemble_add(e, e2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_add(a, bare), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_add(NULL, a), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_add(e, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_ensemble_add(e, a));
    ck_assert_fails(llm_model_ensemble_add(e, a), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_add(e2, a), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_add(e, wide), LLM_ERR_SHAPE);
    ck_assert_msg(strstr(llm_last_error(), "2 output(s)"), "%s", llm_last_error());
    /* what only a model with layers has */
    ck_assert_fails(llm_model_add(e, llm_layer_dense(1, LLM_ACT_NONE)), LLM_ERR_STATE); /* the layer is freed */
    ck_assert_msg(strstr(llm_last_error(), "ensemble"), "%s", llm_last_error());
    ck_assert_fails(llm_model_build(e, LLM_DTYPE_I32, 1, (int64_t[]){ 9 }), LLM_ERR_STATE);
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adam(&opt, 1e-3f));
    ck_assert_fails(llm_model_compile(e, LLM_LOSS_BINARY_CROSSENTROPY, opt, 0), LLM_ERR_STATE);
    llm_optimizer_free(opt);
    int count;
    ck_assert_fails(llm_model_num_params(e, &count), LLM_ERR_STATE);
    float w[4];
    ck_assert_fails(llm_model_get_param(e, "embedding_0.weight", w, sizeof w), LLM_ERR_STATE);
    ck_assert_fails(llm_model_set_text_pipeline(e, NULL, NULL, NULL), LLM_ERR_STATE);
    ck_assert_fails(llm_model_save_checkpoint(e, path), LLM_ERR_STATE);
    llm_tensor *x, *y;
    int32_t ids[9] = { 0 };
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ 1, 9 }, ids, sizeof ids));
    ck_assert_fails(llm_model_predict(e, x, &y), LLM_ERR_STATE);
    llm_tensor_free(x);
    /* an ensemble file is not a checkpoint */
    ck_assert_ok(llm_model_save(e, path));
    llm_model *back;
    ck_assert_fails(llm_model_load_checkpoint(&back, be, path), LLM_ERR_FORMAT);
    llm_model_free(e);
    llm_model_free(e2);
    llm_model_free(wide);
    llm_model_free(bare);
    llm_model_free(unbuilt);
}
END_TEST

/* A member taken back out of an ensemble belongs to the caller again and
 * works alone; the members after it move down. Undoing the adds made so far
 * when a later add fails leaves every model as it was. */
START_TEST(members_can_be_taken_back) {
    llm_model *a = classifier(0, 1, 3), *b = classifier(1, 1, 4), *wide = classifier(1, 2, 5), *e, *got;
    float pa, pb, again;
    ck_assert_ok(llm_model_predict_text(a, mails[0], strlen(mails[0]), &pa, 1));
    ck_assert_ok(llm_model_predict_text(b, mails[0], strlen(mails[0]), &pb, 1));
    ck_assert_ok(llm_model_ensemble(&e, be));
    ck_assert_ok(llm_model_ensemble_add(e, a));
    ck_assert_ok(llm_model_ensemble_add(e, b));
    ck_assert_fails(llm_model_ensemble_add(e, wide), LLM_ERR_SHAPE); /* wide stays the caller's */
    ck_assert_fails(llm_model_ensemble_remove(e, 2, &got), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(got);
    ck_assert_fails(llm_model_ensemble_remove(e, -1, &got), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_remove(a, 0, &got), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_remove(NULL, 0, &got), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_ensemble_remove(e, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_ensemble_remove(e, 0, &got));
    ck_assert_ptr_eq(got, a);
    int n;
    ck_assert_ok(llm_model_ensemble_size(e, &n));
    ck_assert_int_eq(n, 1);
    llm_model *first;
    ck_assert_ok(llm_model_ensemble_member(e, 0, &first));
    ck_assert_ptr_eq(first, b);
    ck_assert_ok(llm_model_predict_text(e, mails[0], strlen(mails[0]), &again, 1));
    ck_assert_float_eq(again, pb);
    /* a is free of the ensemble: it predicts alone and may join another */
    ck_assert_ok(llm_model_predict_text(a, mails[0], strlen(mails[0]), &again, 1));
    ck_assert_float_eq(again, pa);
    llm_model *e2;
    ck_assert_ok(llm_model_ensemble(&e2, be));
    ck_assert_ok(llm_model_ensemble_add(e2, a));
    ck_assert_ok(llm_model_ensemble_remove(e2, 0, &got));
    llm_model_free(e2);
    llm_model_free(e);    /* frees b */
    llm_model_free(got);  /* a: the caller's again, so freed once here */
    llm_model_free(wide);
}
END_TEST

/* Rewrites the saved ensemble with one metadata entry set (value NULL:
 * dropped) and optionally a tensor added. */
static void rewrite(const char *key, const char *value, const char *extra_tensor) {
    llm__safetensors *f;
    ck_assert_ok(llm__safetensors_open(&f, path, 1 << 24));
    int n = llm__safetensors_count(f), nm = llm__safetensors_meta_count(f);
    llm__st_tensor *t = calloc((size_t)n + 1, sizeof *t);
    llm__st_meta *meta = calloc((size_t)nm + 1, sizeof *meta);
    for (int i = 0; i < n; i++) t[i] = *llm__safetensors_tensor(f, i);
    static float extra[2] = { 1, 2 };
    if (extra_tensor) t[n++] = (llm__st_tensor){ extra_tensor, LLM_DTYPE_F32, 1, { 2 }, extra, 8 };
    int k = 0, replaced = 0;
    for (int i = 0; i < nm; i++) {
        meta[k] = *llm__safetensors_meta_at(f, i);
        if (key && strcmp(meta[k].key, key) == 0) {
            replaced = 1;
            if (!value) continue;
            meta[k].value = value;
        }
        k++;
    }
    if (key && value && !replaced) meta[k++] = (llm__st_meta){ key, value };
    ck_assert_ok(llm__safetensors_write(bad_path, t, n, meta, k));
    llm__safetensors_close(f);
    free(t);
    free(meta);
}

static void expect_bad(const char *fragment) {
    llm_model *m = (llm_model *)0x1;
    ck_assert_fails(llm_model_load(&m, be, bad_path), LLM_ERR_FORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(llm_last_error(), fragment), "message '%s' lacks '%s'", llm_last_error(), fragment);
}

START_TEST(hostile_ensemble_files) {
    llm_model *e;
    ck_assert_ok(llm_model_ensemble(&e, be));
    ck_assert_ok(llm_model_ensemble_add(e, classifier(0, 1, 3)));
    ck_assert_ok(llm_model_ensemble_add(e, classifier(1, 1, 4)));
    ck_assert_ok(llm_model_save(e, path));
    llm_model_free(e);
    rewrite(NULL, NULL, NULL); /* unchanged: loads */
    llm_model *ok;
    ck_assert_ok(llm_model_load(&ok, be, bad_path));
    llm_model_free(ok);
    rewrite("libllm.ensemble", "{\"members\":0,\"combine\":\"mean\"}", NULL);   expect_bad("invalid ensemble description");
    rewrite("libllm.ensemble", "{\"members\":65,\"combine\":\"mean\"}", NULL);  expect_bad("invalid ensemble description");
    rewrite("libllm.ensemble", "{\"members\":2,\"combine\":\"max\"}", NULL);    expect_bad("invalid ensemble description");
    rewrite("libllm.ensemble", "{\"members\":\"2\"}", NULL);                    expect_bad("invalid ensemble description");
    rewrite("libllm.ensemble", "[[[[[[[[[[[[]]]]]]]]]]]]", NULL);              expect_bad("deeply");
    rewrite("libllm.ensemble", "{\"members\":3,\"combine\":\"mean\"}", NULL);   expect_bad("ensemble member 2");
    rewrite("libllm.ensemble", "{\"members\":1,\"combine\":\"mean\"}", NULL);   expect_bad("belong to no ensemble member");
    rewrite(NULL, NULL, "stowaway");                                           expect_bad("belong to no ensemble member");
    rewrite(NULL, NULL, "members.0.stowaway");                                 expect_bad("does not use");
    rewrite("libllm.members.1.libllm.architecture", NULL, NULL);               expect_bad("ensemble member 1");
    rewrite("libllm.members.0.libllm.vocab", "garbage", NULL);                 expect_bad("vocabulary");
    rewrite("libllm.members.1.libllm.vectorize", NULL, NULL);                  expect_bad("ensemble member 1");
    /* subword settings: all three or none, in range (member 0 reads 9 ids) */
#define VEC0 "{\"seq_len\":9,\"padding\":\"pre\",\"truncation\":\"post\","
    rewrite("libllm.members.0.libllm.vectorize", VEC0 "\"char_ngram_buckets\":16}", NULL);   expect_bad("vectorizer settings");
    rewrite("libllm.members.0.libllm.vectorize", VEC0 "\"char_ngram_buckets\":16,\"char_ngram_min\":4,\"char_ngram_max\":3}", NULL);
    expect_bad("vectorizer settings");
    rewrite("libllm.members.0.libllm.vectorize", VEC0 "\"char_ngram_buckets\":16,\"char_ngram_min\":1,\"char_ngram_max\":17}", NULL);
    expect_bad("vectorizer settings");
    rewrite("libllm.members.0.libllm.vectorize", VEC0 "\"char_ngram_buckets\":0,\"char_ngram_min\":3,\"char_ngram_max\":5}", NULL);
    expect_bad("vectorizer settings");
#undef VEC0
    rewrite("libllm.members.0.bad\"key", "x", NULL);                           expect_bad("metadata key");
}
END_TEST

Suite *suite_ensemble(void) {
    Suite *s = suite_create("ensemble");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, mean_of_members_survives_a_round_trip);
    tcase_add_test(c, ensembles_refuse_what_they_cannot_do);
    tcase_add_test(c, members_can_be_taken_back);
    tcase_add_test(c, hostile_ensemble_files);
    suite_add_tcase(s, c);
    return s;
}
