/* Text features for bag-of-words models: header-aware tokens (the e-mail
 * reader's tag_headers, keep_headers "*"), hashed word bigrams (the
 * vectorizer's bigram_buckets) and character n-grams (char_ngram_buckets),
 * rows without unknown or repeated words (skip_unknown, unique) or back to
 * front (reverse), through a saved and loaded model too, and Naive-Bayes
 * log-count ratios. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "testutil.h"

static const char mail[] =
    "From: Cheap Deals <deals@spam.example>\r\n"
    "X-Mailer: Blaster 3\r\n"
    "Subject: FREE =?utf-8?q?money_now?=\r\n"
    "\r\n"
    "free money, free!\r\n";

/* m saved to a new file named from the template path (its XXXXXX filled in)
 * and loaded back into *back; the caller unlinks path */
static void save_and_reload(llm_model *m, llm_backend *be, char *path, llm_model **back) {
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_ok(llm_model_save(m, path));
    ck_assert_ok(llm_model_load(back, be, path));
}

/* A vocabulary of text's words (every one kept). */
static llm_vocab *vocab_of(const char *text) {
    llm_vocab_builder *b;
    llm_vocab *v;
    ck_assert_ok(llm_vocab_builder_create(&b, NULL));
    ck_assert_ok(llm_vocab_builder_add(b, text, strlen(text)));
    ck_assert_ok(llm_vocab_builder_build(b, NULL, &v));
    llm_vocab_builder_free(b);
    return v;
}

START_TEST(tagged_headers_are_other_tokens) {
    llm_email_options eo;
    llm_email_options_init(&eo);
    ck_assert_int_eq(eo.tag_headers, 0);
    eo.keep_headers = "From";
    eo.tag_headers = 1;
    char *t;
    ck_assert_ok(llm_email_parse(mail, strlen(mail), &eo, &t, NULL));
    ck_assert_msg(strcmp(t, "from\xc2\xb7" "Cheap from\xc2\xb7" "Deals from\xc2\xb7" "deals from\xc2\xb7" "spam from\xc2\xb7" "example\n"
                            "subject\xc2\xb7" "FREE subject\xc2\xb7" "money subject\xc2\xb7" "now\n"
                            "free money, free!") == 0, "'%s'", t);
    /* the default tokenizer keeps a tagged word whole */
    char toks[256];
    ck_assert_ok(llm_tokenize_join(t, strlen(t), NULL, toks, sizeof toks, NULL));
    ck_assert_msg(strstr(toks, "subject\xc2\xb7" "free subject\xc2\xb7" "money") && strstr(toks, " free money free"), "%s", toks);
    llm_text_free(t);
    /* "*": every header but the subject, which keeps its own line */
    eo.keep_headers = "*";
    eo.tag_headers = 0;
    ck_assert_ok(llm_email_parse(mail, strlen(mail), &eo, &t, NULL));
    ck_assert_msg(strstr(t, "From: Cheap Deals") && strstr(t, "X-Mailer: Blaster 3") && !strstr(t, "Subject:") &&
                  strstr(t, "FREE money now"), "'%s'", t);
    llm_text_free(t);
    eo.tag_headers = 2;
    ck_assert_fails(llm_email_parse(mail, strlen(mail), &eo, &t, NULL), LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ids of "a b c a b" with bigram buckets: unigram, then the pair ending it */
START_TEST(bigram_ids_follow_their_tokens) {
    llm_vocab *v = vocab_of("a b c");
    int32_t vs;
    ck_assert_ok(llm_vocab_size(v, &vs));
    ck_assert_int_eq(vs, 5);
    llm_vectorize_options o;
    llm_vectorize_options_init(&o);
    ck_assert_int_eq(o.bigram_buckets, 0);
    o.seq_len = 12;
    o.padding = LLM_SEQ_POST;
    o.bigram_buckets = 1000;
    int32_t ids[12];
    int64_t n;
    ck_assert_ok(llm_vectorize(v, "a b c a b", 9, &o, ids, 12, &n));
    ck_assert_int_eq(n, 9); /* 5 tokens, 4 pairs */
    int32_t a, bb, c;
    ck_assert_ok(llm_vocab_lookup(v, "a", 1, &a));
    ck_assert_ok(llm_vocab_lookup(v, "b", 1, &bb));
    ck_assert_ok(llm_vocab_lookup(v, "c", 1, &c));
    ck_assert_int_eq(ids[0], a);
    ck_assert_int_eq(ids[1], bb);
    ck_assert_int_eq(ids[3], c);
    for (int i = 2; i < 9; i += 2) ck_assert(ids[i] >= vs && ids[i] < vs + 1000);
    ck_assert_int_eq(ids[2], ids[8]); /* "a b" twice, the same bucket */
    ck_assert_int_ne(ids[2], ids[4]); /* "b c" (almost surely) another */
    for (int i = 9; i < 12; i++) ck_assert_int_eq(ids[i], LLM_VOCAB_PAD);
    /* truncation counts ids of both kinds: the last 3 are "c a", b, "a b" */
    int32_t ca = ids[6], ab = ids[8], last[3];
    o.seq_len = 3;
    o.truncation = LLM_SEQ_PRE;
    ck_assert_ok(llm_vectorize(v, "a b c a b", 9, &o, last, 3, NULL));
    ck_assert_int_eq(last[0], ca);
    ck_assert_int_eq(last[1], bb);
    ck_assert_int_eq(last[2], ab);
    o.bigram_buckets = -1;
    ck_assert_fails(llm_vectorize(v, "a", 1, &o, ids, 3, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_vocab_free(v);
}
END_TEST

/* the subword ids of "ab zz abc": after each token's own id, the n-grams of
 * "<ab>" (2 and 3 bytes: <a ab b> <ab ab>), the unknown "zz"'s too */
START_TEST(char_ngram_ids_follow_their_tokens) {
    llm_vocab *v = vocab_of("ab cd");
    int32_t vs, ab;
    ck_assert_ok(llm_vocab_size(v, &vs));
    ck_assert_ok(llm_vocab_lookup(v, "ab", 2, &ab));
    llm_vectorize_options o;
    llm_vectorize_options_init(&o);
    ck_assert_int_eq(o.char_ngram_buckets, 0);
    ck_assert_int_eq(o.char_ngram_min, 3);
    ck_assert_int_eq(o.char_ngram_max, 5);
    o.seq_len = 32;
    o.padding = LLM_SEQ_POST;
    o.char_ngram_buckets = 1000;
    o.char_ngram_min = 2;
    o.char_ngram_max = 3;
    int32_t ids[32];
    int64_t n;
    const char *text = "ab zz abc";
    ck_assert_ok(llm_vectorize(v, text, strlen(text), &o, ids, 32, &n));
    ck_assert_int_eq(n, 1 + 5 + 1 + 5 + 1 + 7);
    ck_assert_int_eq(ids[0], ab);
    ck_assert_int_eq(ids[6], LLM_VOCAB_OOV);
    ck_assert_int_eq(ids[12], LLM_VOCAB_OOV); /* "abc" is not in the vocabulary */
    for (int i = 1; i < 20; i++)
        if (i != 6 && i != 12) ck_assert(ids[i] >= vs && ids[i] < vs + 1000);
    for (int i = 20; i < 32; i++) ck_assert_int_eq(ids[i], LLM_VOCAB_PAD);
    /* "<abc>": <a ab bc c> (ids 13-16), <ab abc bc> (17-19): the n-grams both words have share ids */
    ck_assert_int_eq(ids[1], ids[13]); /* <a */
    ck_assert_int_eq(ids[2], ids[14]); /* ab */
    ck_assert_int_eq(ids[4], ids[17]); /* <ab */
    ck_assert_int_ne(ids[3], ids[16]); /* b> and c> (almost surely) differ */
    /* an unknown word's n-grams stay when the word itself is left out, and
     * repeated n-grams go with unique; bigram ids come first, so the subwords move up */
    o.skip_unknown = 1;
    o.unique = 1;
    int32_t ids2[32];
    ck_assert_ok(llm_vectorize(v, text, strlen(text), &o, ids2, 32, &n));
    ck_assert_int_eq(n, 1 + 5 + 5 + 4); /* abc adds bc c> abc bc> */
    ck_assert_int_eq(ids2[6], ids[7]);
    o.skip_unknown = o.unique = 0;
    o.bigram_buckets = 50;
    ck_assert_ok(llm_vectorize(v, "ab", 2, &o, ids2, 32, &n));
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(ids2[1], ids[1] + 50);
    /* bad settings */
    const int32_t bad[][3] = { { -1, 3, 5 }, { (1 << 24) + 1, 3, 5 }, { 8, 0, 5 }, { 8, 4, 3 }, { 8, 3, 17 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.char_ngram_buckets = bad[i][0];
        o.char_ngram_min = bad[i][1];
        o.char_ngram_max = bad[i][2];
        ck_assert_fails(llm_vectorize(v, "ab", 2, &o, ids, 32, NULL), LLM_ERR_INVALID_ARGUMENT);
    }
    llm_vocab_free(v);
}
END_TEST

/* "a b z a c b" over the vocabulary {a, b, c}: z is unknown, a and b repeat */
START_TEST(unknown_and_repeated_words_can_be_left_out) {
    llm_vocab *v = vocab_of("a b c");
    int32_t a, bb, c;
    ck_assert_ok(llm_vocab_lookup(v, "a", 1, &a));
    ck_assert_ok(llm_vocab_lookup(v, "b", 1, &bb));
    ck_assert_ok(llm_vocab_lookup(v, "c", 1, &c));
    const char *text = "a b z a c b";
    const size_t len = strlen(text);
    llm_vectorize_options o;
    llm_vectorize_options_init(&o);
    ck_assert_int_eq(o.skip_unknown, 0);
    ck_assert_int_eq(o.unique, 0);
    o.seq_len = 6;
    o.padding = LLM_SEQ_POST;
    const struct { int skip, unique; int64_t kept; int32_t want[6]; } cases[] = {
        { 0, 0, 6, { a, bb, LLM_VOCAB_OOV, a, c, bb } },
        { 1, 0, 5, { a, bb, a, c, bb, LLM_VOCAB_PAD } },
        { 0, 1, 4, { a, bb, LLM_VOCAB_OOV, c, LLM_VOCAB_PAD, LLM_VOCAB_PAD } },
        { 1, 1, 3, { a, bb, c, LLM_VOCAB_PAD, LLM_VOCAB_PAD, LLM_VOCAB_PAD } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        o.skip_unknown = cases[i].skip;
        o.unique = cases[i].unique;
        int32_t ids[6];
        int64_t n;
        ck_assert_ok(llm_vectorize(v, text, len, &o, ids, 6, &n));
        ck_assert_int_eq(n, cases[i].kept); /* ids kept, before truncation */
        for (int j = 0; j < 6; j++) ck_assert_msg(ids[j] == cases[i].want[j], "case %zu: id %d is %d, not %d", i, j, ids[j], cases[i].want[j]);
    }
    /* reverse: the kept ids back to front, padding where it was */
    o.reverse = 1;
    o.padding = LLM_SEQ_PRE;
    int32_t rev[6];
    ck_assert_ok(llm_vectorize(v, text, len, &o, rev, 6, NULL));
    const int32_t want_rev[6] = { LLM_VOCAB_PAD, LLM_VOCAB_PAD, LLM_VOCAB_PAD, c, bb, a };
    for (int j = 0; j < 6; j++) ck_assert_int_eq(rev[j], want_rev[j]);
    o.reverse = 0;
    o.padding = LLM_SEQ_POST;
    /* truncation applies to what is kept: the last two of a b c */
    int32_t last[2];
    o.seq_len = 2;
    o.truncation = LLM_SEQ_PRE;
    ck_assert_ok(llm_vectorize(v, text, len, &o, last, 2, NULL));
    ck_assert_int_eq(last[0], bb);
    ck_assert_int_eq(last[1], c);
    /* a repeated bigram adds nothing either: "a b" comes back after "b a" */
    o.seq_len = 16;
    o.padding = LLM_SEQ_POST;
    o.skip_unknown = 0;
    o.bigram_buckets = 1000;
    int32_t pairs[16];
    int64_t n;
    ck_assert_ok(llm_vectorize(v, "a b a b", 7, &o, pairs, 16, &n));
    ck_assert_int_eq(n, 4); /* a, b, "a b", "b a" */
    ck_assert_int_eq(pairs[0], a);
    ck_assert_int_eq(pairs[1], bb);
    ck_assert_int_eq(pairs[4], LLM_VOCAB_PAD);
    o.bigram_buckets = 0;
    o.unique = 2;
    ck_assert_fails(llm_vectorize(v, text, len, &o, pairs, 16, NULL), LLM_ERR_INVALID_ARGUMENT);
    o.unique = 0;
    o.skip_unknown = -1;
    ck_assert_fails(llm_vectorize(v, text, len, &o, pairs, 16, NULL), LLM_ERR_INVALID_ARGUMENT);
    o.skip_unknown = 0;
    o.reverse = 3;
    ck_assert_fails(llm_vectorize(v, text, len, &o, pairs, 16, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_vocab_free(v);
}
END_TEST

/* Middle truncation keeps the start (headers, subject) and the end. */
START_TEST(middle_truncation_keeps_both_ends) {
    const char *text = "a b c d e f g";
    llm_vocab *v = vocab_of(text);
    llm_vectorize_options o;
    llm_vectorize_options_init(&o);
    o.truncation = LLM_SEQ_MIDDLE;
    o.seq_len = 5;
    int32_t ids[5], want[5];
    const char *keep[5] = { "a", "b", "e", "f", "g" }; /* 2 from the start, 3 from the end */
    for (int i = 0; i < 5; i++) ck_assert_ok(llm_vocab_lookup(v, keep[i], 1, &want[i]));
    ck_assert_ok(llm_vectorize(v, text, strlen(text), &o, ids, 5, NULL));
    for (int i = 0; i < 5; i++) ck_assert_int_eq(ids[i], want[i]);
    /* a short text is padded as usual */
    o.seq_len = 9;
    int32_t row[9];
    ck_assert_ok(llm_vectorize(v, "a b", 3, &o, row, 9, NULL));
    ck_assert_int_eq(row[6], LLM_VOCAB_PAD);
    ck_assert_int_eq(row[7], want[0]);
    ck_assert_int_eq(row[8], want[1]);
    llm_vocab_free(v);
}
END_TEST

/* A bag model over tagged, bigram-hashed text: the pipeline's settings are
 * saved and loaded, so a loaded model scores raw mail exactly as before, and
 * an embedding without room for the buckets is refused. */
START_TEST(features_survive_save_and_load) {
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    const char *classes[] = { "ham", "spam" };
    llm_text_corpus *c;
    ck_assert_ok(llm_text_corpus_create(&c, classes, 2));
    const char *spam = "subject\xc2\xb7" "free money now", *ham = "lunch on monday";
    ck_assert_ok(llm_text_corpus_add(c, spam, strlen(spam), 1));
    ck_assert_ok(llm_text_corpus_add(c, ham, strlen(ham), 0));
    llm_vocab *v;
    ck_assert_ok(llm_vocab_build_from_corpus(&v, c, NULL, NULL));
    int32_t vs;
    ck_assert_ok(llm_vocab_size(v, &vs));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = 16;
    vo.bigram_buckets = 64;
    vo.char_ngram_buckets = 32;
    vo.char_ngram_max = 4;
    vo.truncation = LLM_SEQ_MIDDLE; /* saved as "middle" */
    vo.skip_unknown = 1;
    vo.unique = 1;
    vo.reverse = 1;
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.keep_headers = "From";
    eo.tag_headers = 1;
    llm_model *small, *m, *back;
    ck_assert_ok(llm_model_sequential(&small, be));
    ck_assert_ok(llm_model_add(small, llm_layer_embedding(vs + 64, 4))); /* no room for the subwords */
    ck_assert_ok(llm_model_add(small, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(small, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(small, LLM_DTYPE_I32, 1, (int64_t[]){ 16 }));
    ck_assert_fails(llm_model_set_text_pipeline(small, v, &vo, &eo), LLM_ERR_SHAPE);
    llm_model_free(small);
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 5));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(vs + 64 + 32, 4)));
    ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){ 16 }));
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, &eo));
    char path[] = "/tmp/llm_feat_XXXXXX";
    save_and_reload(m, be, path, &back);
    char path2[64];
    snprintf(path2, sizeof path2, "%s.again", path);
    ck_assert_ok(llm_model_save(back, path2)); /* before its pipeline changes below */
    unlink(path);
    float p1, p2;
    ck_assert_ok(llm_model_predict_text(m, mail, strlen(mail), &p1, 1));
    ck_assert_ok(llm_model_predict_text(back, mail, strlen(mail), &p2, 1));
    ck_assert_float_eq(p1, p2);
    /* the tags change what the model reads: without them it scores otherwise */
    llm_email_options plain = eo;
    plain.tag_headers = 0;
    ck_assert_ok(llm_model_set_text_pipeline(back, v, &vo, &plain));
    ck_assert_ok(llm_model_predict_text(back, mail, strlen(mail), &p2, 1));
    ck_assert_float_ne(p1, p2);
    /* so do unknown and repeated words ("free" three times, the mailer's words
     * unknown) and the order: the loaded model kept skip_unknown, unique and reverse */
    llm_vectorize_options all = vo;
    all.skip_unknown = all.unique = all.reverse = 0;
    float p5;
    all.char_ngram_max = 5; /* the loaded model kept the n-grams' lengths */
    ck_assert_ok(llm_model_set_text_pipeline(back, v, &all, &eo));
    ck_assert_ok(llm_model_predict_text(back, mail, strlen(mail), &p5, 1));
    all.char_ngram_max = 4;
    float p3, p4;
    ck_assert_ok(llm_model_set_text_pipeline(back, v, &all, &eo));
    ck_assert_ok(llm_model_predict_text(back, mail, strlen(mail), &p3, 1));
    ck_assert_float_ne(p1, p3);
    ck_assert_float_ne(p3, p5);
    ck_assert_ok(llm_model_load(&small, be, path2));
    ck_assert_ok(llm_model_predict_text(small, mail, strlen(mail), &p4, 1));
    ck_assert_float_eq(p1, p4);
    llm_model_free(small);
    unlink(path2);
    llm_model_free(m);
    llm_model_free(back);
    llm_vocab_free(v);
    llm_text_corpus_free(c);
    llm_backend_free(be);
}
END_TEST

/* An LSTM reads order: a saved model keeps reverse, and without it scores otherwise. */
START_TEST(reverse_survives_save_and_load) {
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    const char *text = "free money now for you today";
    llm_vocab *v = vocab_of(text);
    int32_t vs;
    ck_assert_ok(llm_vocab_size(v, &vs));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    ck_assert_int_eq(vo.reverse, 0);
    vo.seq_len = 8;
    vo.reverse = 1;
    llm_model *m, *back;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 9));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(vs, 4)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(8, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){ 8 }));
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, NULL));
    char path[] = "/tmp/llm_rev_XXXXXX";
    save_and_reload(m, be, path, &back);
    unlink(path);
    float p1, p2, p3;
    ck_assert_ok(llm_model_predict_text(m, text, strlen(text), &p1, 1));
    ck_assert_ok(llm_model_predict_text(back, text, strlen(text), &p2, 1));
    ck_assert_float_eq(p1, p2);
    vo.reverse = 0;
    ck_assert_ok(llm_model_set_text_pipeline(back, v, &vo, NULL));
    ck_assert_ok(llm_model_predict_text(back, text, strlen(text), &p3, 1));
    ck_assert_float_ne(p1, p3);
    llm_model_free(m);
    llm_model_free(back);
    llm_vocab_free(v);
    llm_backend_free(be);
}
END_TEST

/* Naive-Bayes ratios: presence counted once per row, smoothed by alpha. */
START_TEST(nb_ratios_count_presence_per_class) {
    /* ids 0..3; rows: spam {2,2,3}, spam {2,0,0}, ham {3,1,0} */
    int32_t x[9] = { 2, 2, 3, 2, 0, 0, 3, 1, 0 }, y[3] = { 1, 1, 0 };
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){ 3, 3 }, x, LLM_DTYPE_I32, 1,
                                       (int64_t[]){ 3 }, y));
    float r[4];
    ck_assert_ok(llm_dataset_nb_ratios(ds, 3, 4, 1.0f, r));
    /* spam counts (ids 1..3): 0, 2, 1 -> +alpha: 1, 3, 2 (total 6); ham: 1, 0, 1 -> 2, 1, 2 (total 5) */
    ck_assert_float_eq(r[0], 0.0f);
    ck_assert_float_eq_tol(r[1], (float)(log(1.0 / 6) - log(2.0 / 5)), 1e-6f);
    ck_assert_float_eq_tol(r[2], (float)(log(3.0 / 6) - log(1.0 / 5)), 1e-6f);
    ck_assert_float_eq_tol(r[3], (float)(log(2.0 / 6) - log(2.0 / 5)), 1e-6f);
    ck_assert(r[2] > 0 && r[1] < 0);
    ck_assert_fails(llm_dataset_nb_ratios(ds, 3, 3, 1.0f, r), LLM_ERR_INVALID_ARGUMENT); /* id 3 >= 3 */
    ck_assert_fails(llm_dataset_nb_ratios(ds, 4, 4, 1.0f, r), LLM_ERR_INVALID_ARGUMENT); /* not its seq_len */
    ck_assert_fails(llm_dataset_nb_ratios(ds, 3, 4, 0.0f, r), LLM_ERR_INVALID_ARGUMENT);
    llm_dataset_free(ds);
}
END_TEST

Suite *suite_text_features(void) {
    Suite *s = suite_create("text_features");
    TCase *c = tcase_create("core");
    tcase_add_test(c, tagged_headers_are_other_tokens);
    tcase_add_test(c, bigram_ids_follow_their_tokens);
    tcase_add_test(c, char_ngram_ids_follow_their_tokens);
    tcase_add_test(c, features_survive_save_and_load);
    tcase_add_test(c, nb_ratios_count_presence_per_class);
    tcase_add_test(c, middle_truncation_keeps_both_ends);
    tcase_add_test(c, unknown_and_repeated_words_can_be_left_out);
    tcase_add_test(c, reverse_survives_save_and_load);
    suite_add_tcase(s, c);
    return s;
}
