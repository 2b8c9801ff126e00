/* Saving and loading models: round trips, the file layout other readers
 * see, the text pipeline and metadata, and malformed or hostile files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <cjson/cJSON.h>
#include "testutil.h"
#include "io/safetensors.h"

static llm_backend *be;
static char dir[64];
static char path[128];

static void setup(void) {
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    snprintf(dir, sizeof dir, "/tmp/llm_io_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
}
static void teardown(void) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    llm_backend_free(be);
}

static llm_model *small_model(int bidir) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 42));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(30, 6)));
    if (bidir) {
        ck_assert_ok(llm_model_add(m, llm_layer_bidirectional(llm_layer_gru(5, LLM_RETURN_SEQUENCES))));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_dropout(0.2f)));
    } else {
        ck_assert_ok(llm_model_add(m, llm_layer_lstm(7, LLM_RETURN_LAST)));
    }
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){9}));
    return m;
}

static void predictions(llm_model *m, float *out) {
    int32_t ids[4 * 9];
    for (int i = 0; i < 36; i++) ids[i] = i % 5 == 0 ? 0 : 2 + (i * 7) % 28;
    llm_tensor *x, *y;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){4, 9}, ids, sizeof ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    ck_assert_ok(llm_tensor_to_host(y, out, 16));
    llm_tensor_free(x);
    llm_tensor_free(y);
}

START_TEST(round_trip_is_exact) {
    for (int bidir = 0; bidir < 2; bidir++) {
        llm_model *m = small_model(bidir), *back;
        ck_assert_ok(llm_model_set_metadata(m, "class_names", "ham,spam"));
        ck_assert_ok(llm_model_set_metadata(m, "note", "quotes \" and \\ and\nnewlines"));
        ck_assert_ok(llm_model_save(m, path));
        ck_assert_ok(llm_model_load(&back, be, path));
        float a[4], b[4];
        predictions(m, a);
        predictions(back, b);
        ck_assert_mem_eq(a, b, sizeof a);
        int64_t na, nb;
        ck_assert_ok(llm_model_param_count(m, &na));
        ck_assert_ok(llm_model_param_count(back, &nb));
        ck_assert_int_eq(na, nb);
        const char *v;
        ck_assert_ok(llm_model_get_metadata(back, "class_names", &v));
        ck_assert_str_eq(v, "ham,spam");
        ck_assert_ok(llm_model_get_metadata(back, "note", &v));
        ck_assert_str_eq(v, "quotes \" and \\ and\nnewlines");
        char s1[2048], s2[2048];
        ck_assert_ok(llm_model_summary(m, s1, sizeof s1, NULL));
        ck_assert_ok(llm_model_summary(back, s2, sizeof s2, NULL));
        ck_assert_str_eq(s1, s2);
        llm_model_free(m);
        llm_model_free(back);
    }
}
END_TEST

/* What any safetensors reader sees: PyTorch names and layouts. */
START_TEST(file_uses_pytorch_layout) {
    llm_model *m = small_model(0);
    ck_assert_ok(llm_model_save(m, path));
    llm__safetensors *f;
    ck_assert_ok(llm__safetensors_open(&f, path, 1 << 24));
    const llm__st_tensor *w = llm__safetensors_find(f, "lstm_0.weight_ih");
    ck_assert_ptr_nonnull(w);
    ck_assert(w->ndim == 2 && w->shape[0] == 28 && w->shape[1] == 6 && w->dtype == LLM_DTYPE_F32);
    const llm__st_tensor *bih = llm__safetensors_find(f, "lstm_0.bias_ih"), *bhh = llm__safetensors_find(f, "lstm_0.bias_hh");
    ck_assert_ptr_nonnull(bih);
    ck_assert_ptr_nonnull(bhh);
    float bias[28];
    ck_assert_ok(llm_model_get_param(m, "lstm_0.bias", bias, sizeof bias));
    ck_assert_mem_eq(bih->data, bias, sizeof bias);
    for (int i = 0; i < 28; i++) ck_assert_float_eq(((const float *)bhh->data)[i], 0.0f);
    ck_assert_ptr_nonnull(llm__safetensors_find(f, "embedding_0.weight"));
    ck_assert_ptr_nonnull(llm__safetensors_find(f, "dense_0.weight"));
    ck_assert_str_eq(llm__safetensors_meta(f, "format"), "libllm");
    ck_assert_str_eq(llm__safetensors_meta(f, "libllm.format_version"), "1");
    ck_assert_ptr_nonnull(strstr(llm__safetensors_meta(f, "libllm.architecture"), "\"kind\":\"lstm\""));
    ck_assert_int_eq(llm__safetensors_count(f), 7);
    llm__safetensors_close(f);
    llm_model_free(m);
}
END_TEST

/* A file whose LSTM biases are PyTorch's two (non-zero) vectors loads as their sum. */
START_TEST(pytorch_biases_are_summed) {
    llm_model *m = small_model(0), *back;
    ck_assert_ok(llm_model_save(m, path));
    llm__safetensors *f;
    ck_assert_ok(llm__safetensors_open(&f, path, 1 << 24));
    int n = llm__safetensors_count(f);
    llm__st_tensor t[8];
    float half[28], sum[28];
    for (int i = 0; i < n; i++) {
        t[i] = *llm__safetensors_tensor(f, i);
        if (strcmp(t[i].name, "lstm_0.bias_ih") == 0 || strcmp(t[i].name, "lstm_0.bias_hh") == 0) {
            memcpy(sum, llm__safetensors_find(f, "lstm_0.bias_ih")->data, sizeof sum);
            for (int k = 0; k < 28; k++) half[k] = sum[k] * 0.5f + 0.25f;
            t[i].data = half;
        }
    }
    llm__st_meta meta[16];
    int nm = llm__safetensors_meta_count(f);
    for (int i = 0; i < nm; i++) meta[i] = *llm__safetensors_meta_at(f, i);
    char p2[160];
    snprintf(p2, sizeof p2, "%s/torch.safetensors", dir);
    ck_assert_ok(llm__safetensors_write(p2, t, n, meta, nm));
    ck_assert_ok(llm_model_load(&back, be, p2));
    float got[28];
    ck_assert_ok(llm_model_get_param(back, "lstm_0.bias", got, sizeof got));
    for (int k = 0; k < 28; k++) ck_assert_float_eq_tol(got[k], 2 * half[k], 1e-6f);
    llm_model_free(back);
    /* two finite halves whose sum is not (found by the fuzzer) */
    half[0] = 3e38f;
    ck_assert_ok(llm__safetensors_write(p2, t, n, meta, nm));
    ck_assert_fails(llm_model_load(&back, be, p2), LLM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "infinity"));
    llm__safetensors_close(f);
    llm_model_free(m);
}
END_TEST

START_TEST(text_pipeline_round_trip) {
    const char *texts[] = { "cheap pills buy now", "meeting notes for monday", "buy cheap watches now now", "lunch on monday?" };
    llm_text_corpus *c;
    const char *classes[] = { "ham", "spam" };
    ck_assert_ok(llm_text_corpus_create(&c, classes, 2));
    for (int i = 0; i < 4; i++) ck_assert_ok(llm_text_corpus_add(c, texts[i], strlen(texts[i]), i % 2 == 0 ? 1 : 0));
    llm_vocab *v;
    ck_assert_ok(llm_vocab_build_from_corpus(&v, c, NULL, NULL));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = 9;
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_corpus(&ds, c, v, &vo));
    int64_t n;
    ck_assert_ok(llm_dataset_size(ds, &n));
    ck_assert_int_eq(n, 4);
    llm_model *m = small_model(0), *back;
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.keep_headers = "From";
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, &eo));
    const llm_vocab *mv;
    ck_assert_ok(llm_model_vocab(m, &mv));
    ck_assert_ptr_ne(mv, v); /* a copy */
    const char *mail = "From: a@b.c\nSubject: cheap pills\n\nbuy now";
    float p1, p2;
    ck_assert_ok(llm_model_predict_text(m, mail, strlen(mail), &p1, 1));
    ck_assert_ok(llm_model_save(m, path));
    ck_assert_ok(llm_model_load(&back, be, path));
    ck_assert_ok(llm_model_predict_text(back, mail, strlen(mail), &p2, 1));
    ck_assert_float_eq(p1, p2);
    ck_assert(p1 > 0.0f && p1 < 1.0f);
    float two[2];
    ck_assert_fails(llm_model_predict_text(back, mail, strlen(mail), two, 2), LLM_ERR_INVALID_ARGUMENT);
    llm_model_free(back);
    /* a pipeline whose sequence length differs from the built model's input */
    vo.seq_len = 10;
    ck_assert_fails(llm_model_set_text_pipeline(m, v, &vo, NULL), LLM_ERR_SHAPE);
    llm_model_free(m);
    llm_vocab_free(v);
    llm_dataset_free(ds);
    llm_text_corpus_free(c);
}
END_TEST

START_TEST(failed_save_keeps_old_file) {
    llm_model *m = small_model(0), *unbuilt;
    ck_assert_ok(llm_model_save(m, path));
    struct stat st1, st2;
    ck_assert_int_eq(stat(path, &st1), 0);
    ck_assert_ok(llm_model_sequential(&unbuilt, be));
    ck_assert_fails(llm_model_save(unbuilt, path), LLM_ERR_STATE);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/dir/model.safetensors", dir);
    ck_assert_fails(llm_model_save(m, bad), LLM_ERR_IO);
    ck_assert_int_eq(stat(path, &st2), 0);
    ck_assert_int_eq(st1.st_size, st2.st_size);
    llm_model *back;
    ck_assert_ok(llm_model_load(&back, be, path));
    llm_model_free(back);
    llm_model_free(unbuilt);
    llm_model_free(m);
}
END_TEST

/* Rewrites the saved file with one metadata value or tensor changed. */
static void rewrite(const char *key, const char *value, const char *drop_tensor, const char *extra_tensor, int nan) {
    llm__safetensors *f;
    ck_assert_ok(llm__safetensors_open(&f, path, 1 << 24));
    llm__st_tensor t[16];
    int n = 0;
    static float nan_buf[4096];
    for (int i = 0; i < llm__safetensors_count(f); i++) {
        const llm__st_tensor *x = llm__safetensors_tensor(f, i);
        if (drop_tensor && strcmp(x->name, drop_tensor) == 0) continue;
        t[n] = *x;
        if (nan && strcmp(x->name, "dense_0.weight") == 0) {
            memcpy(nan_buf, x->data, x->bytes);
            nan_buf[0] = NAN;
            t[n].data = nan_buf;
        }
        n++;
    }
    static float extra[2] = {1, 2};
    if (extra_tensor) t[n++] = (llm__st_tensor){ extra_tensor, LLM_DTYPE_F32, 1, {2}, extra, 8 };
    llm__st_meta meta[16];
    int nm = 0, replaced = 0;
    for (int i = 0; i < llm__safetensors_meta_count(f); i++) {
        meta[nm] = *llm__safetensors_meta_at(f, i);
        if (key && strcmp(meta[nm].key, key) == 0) {
            replaced = 1;
            if (!value) continue;
            meta[nm].value = value;
        }
        nm++;
    }
    if (key && !replaced && value) meta[nm++] = (llm__st_meta){ key, value };
    char p2[160];
    snprintf(p2, sizeof p2, "%s/bad.safetensors", dir);
    ck_assert_ok(llm__safetensors_write(p2, t, n, meta, nm));
    llm__safetensors_close(f);
}

static void expect_bad(llm_status want, const char *fragment) {
    char p2[160];
    snprintf(p2, sizeof p2, "%s/bad.safetensors", dir);
    llm_model *m = (llm_model *)0x1;
    ck_assert_fails(llm_model_load(&m, be, p2), want);
    ck_assert_ptr_null(m);
    if (fragment) ck_assert_msg(strstr(llm_last_error(), fragment), "message '%s' lacks '%s'", llm_last_error(), fragment);
}

START_TEST(hostile_model_files) {
    llm_model *m = small_model(0);
    ck_assert_ok(llm_model_save(m, path));
    llm_model_free(m);
    rewrite("format", NULL, NULL, NULL, 0);                 expect_bad(LLM_ERR_FORMAT, "not a libllm model");
    rewrite("libllm.format_version", "99", NULL, NULL, 0);  expect_bad(LLM_ERR_FORMAT, "version");
    rewrite("libllm.architecture", "{not json", NULL, NULL, 0); expect_bad(LLM_ERR_FORMAT, "JSON");
    rewrite("libllm.architecture", "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", NULL, NULL, 0); expect_bad(LLM_ERR_FORMAT, "deeply");
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[{\"kind\":\"warp\"}]}", NULL, NULL, 0);
    expect_bad(LLM_ERR_FORMAT, "unknown layer kind");
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[{\"kind\":\"embedding\",\"vocab\":-4,\"dim\":6,\"mask_zero\":true}]}", NULL, NULL, 0);
    /* the range is the constructor's (one place), which names it */
    expect_bad(LLM_ERR_FORMAT, "vocab = -4 must be in [2, 2^31)");
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[{\"kind\":\"embedding\",\"vocab\":\"4\",\"dim\":6,\"mask_zero\":true}]}", NULL, NULL, 0);
    expect_bad(LLM_ERR_FORMAT, "invalid settings");
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[]}", NULL, NULL, 0);
    expect_bad(LLM_ERR_FORMAT, "no layers");
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[{\"kind\":\"lstm\",\"units\":7,\"return_sequences\":false,\"unit_forget_bias\":true,\"go_backwards\":false}]}", NULL, NULL, 0);
    expect_bad(LLM_ERR_FORMAT, "does not fit");
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[{\"kind\":\"embedding\",\"vocab\":30,\"dim\":5,\"mask_zero\":true},{\"kind\":\"lstm\",\"units\":7,\"return_sequences\":false,\"unit_forget_bias\":true,\"go_backwards\":false},{\"kind\":\"dense\",\"units\":1,\"activation\":\"sigmoid\",\"use_bias\":true}]}", NULL, NULL, 0);
    expect_bad(LLM_ERR_FORMAT, "wrong dtype or shape");
    /* a tiny file must not make the loader allocate gigabytes */
    rewrite("libllm.architecture", "{\"input\":{\"dtype\":\"int32\",\"shape\":[9]},\"layers\":[{\"kind\":\"embedding\",\"vocab\":1000000,\"dim\":1000,\"mask_zero\":true},{\"kind\":\"lstm\",\"units\":7,\"return_sequences\":false,\"unit_forget_bias\":true,\"go_backwards\":false},{\"kind\":\"dense\",\"units\":1,\"activation\":\"sigmoid\",\"use_bias\":true}]}", NULL, NULL, 0);
    expect_bad(LLM_ERR_FORMAT, "bytes of weights");
    rewrite(NULL, NULL, "dense_0.bias", NULL, 0);           expect_bad(LLM_ERR_FORMAT, "missing tensor dense_0.bias");
    rewrite(NULL, NULL, "lstm_0.bias_hh", NULL, 0);         expect_bad(LLM_ERR_FORMAT, "missing tensor");
    rewrite(NULL, NULL, NULL, "stowaway", 0);               expect_bad(LLM_ERR_FORMAT, "does not use");
    rewrite(NULL, NULL, NULL, NULL, 1);                     expect_bad(LLM_ERR_FORMAT, "NaN");
    rewrite("libllm.vocab", "garbage", NULL, NULL, 0);      expect_bad(LLM_ERR_FORMAT, "vocabulary");
    /* not a safetensors file at all, and no file */
    char p2[160];
    snprintf(p2, sizeof p2, "%s/bad.safetensors", dir);
    FILE *fp = fopen(p2, "wb");
    fputs("hello, I am not a model", fp);
    fclose(fp);
    expect_bad(LLM_ERR_FORMAT, NULL);
    snprintf(p2, sizeof p2, "%s/none.safetensors", dir);
    llm_model *out;
    ck_assert_fails(llm_model_load(&out, be, p2), LLM_ERR_IO);
    ck_assert_fails(llm_model_load(NULL, be, p2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_load(&out, NULL, p2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_load(&out, be, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_save(NULL, p2), LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

/* Appended bytes are refused (the format wants the tensors to fill the data
 * section exactly), and an empty path gets a message in the caller's terms. */
START_TEST(appended_bytes_and_empty_paths) {
    llm_model *m = small_model(0), *back = NULL;
    ck_assert_ok(llm_model_save(m, path));
    ck_assert_ok(llm_model_load(&back, be, path));
    llm_model_free(back);
    FILE *fp = fopen(path, "ab");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite("garbage", 1, 7, fp), 7);
    fclose(fp);
    back = (llm_model *)0x1;
    ck_assert_fails(llm_model_load(&back, be, path), LLM_ERR_FORMAT);
    ck_assert_ptr_null(back);
    ck_assert_msg(strstr(llm_last_error(), "7 bytes after the last tensor"), "%s", llm_last_error());

    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adamw(&opt, 0.01f, 0.01f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, 0));
    llm_optimizer_free(opt);
    static const struct { const char *fn; int save, checkpoint; } calls[] = {
        { "llm_model_load", 0, 0 }, { "llm_model_load_checkpoint", 0, 1 },
        { "llm_model_save", 1, 0 }, { "llm_model_save_checkpoint", 1, 1 },
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        llm_status s;
        if (calls[i].save) s = calls[i].checkpoint ? llm_model_save_checkpoint(m, "") : llm_model_save(m, "");
        else s = calls[i].checkpoint ? llm_model_load_checkpoint(&back, be, "") : llm_model_load(&back, be, "");
        ck_assert_int_eq(s, LLM_ERR_INVALID_ARGUMENT);
        const char *msg = llm_last_error();
        ck_assert_msg(strncmp(msg, calls[i].fn, strlen(calls[i].fn)) == 0 && msg[strlen(calls[i].fn)] == ':' &&
                      strstr(msg, "empty") && !strstr(msg, "llm__"), "%s: '%s'", calls[i].fn, msg);
    }
    llm_model_free(m);
}
END_TEST

/* A FIFO would block open() until a writer comes: refused at once, like a
 * device or a directory. */
START_TEST(special_files_are_refused_without_blocking) {
    char fifo[160];
    snprintf(fifo, sizeof fifo, "%s/fifo.safetensors", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    const char *paths[] = { fifo, "/dev/null", "/dev/zero", dir };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        llm_model *m = (llm_model *)0x1;
        ck_assert_fails(llm_model_load(&m, be, paths[i]), LLM_ERR_IO);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(llm_last_error(), "not a regular file"), "%s: %s", paths[i], llm_last_error());
        ck_assert_fails(llm_model_load_checkpoint(&m, be, paths[i]), LLM_ERR_IO);
    }
}
END_TEST

/* Writes dst: the safetensors header `header` (a JSON object, padded here)
 * then `data` (len bytes), then zeros up to total data bytes as a hole, so
 * that a file claiming gigabytes costs nothing on disk. */
static void write_sparse(const char *dst, const char *header, const void *data, size_t len, uint64_t total) {
    size_t hn = strlen(header), padded = (hn + 7) / 8 * 8;
    unsigned char size8[8];
    for (int k = 0; k < 8; k++) size8[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, size8, 8), 8);
    ck_assert_int_eq(write(fd, header, hn), (ssize_t)hn);
    ck_assert_int_eq(write(fd, "        ", padded - hn), (ssize_t)(padded - hn));
    if (len) ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(ftruncate(fd, (off_t)(8 + padded + total)), 0);
    close(fd);
}

/* llm_model_load(p) in a child process with a backend of its own; returns
 * the status, the message in msg and how far the child's resident memory
 * rose above what it was at the start, in KiB (VmHWM - VmRSS). */
static long proc_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') v = atol(line + n + 1);
    fclose(f);
    return v;
}

static llm_status load_in_child(const char *p, char *msg, size_t msglen, long *grew_kib) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        struct { llm_status s; long grew; char msg[400]; } r;
        memset(&r, 0, sizeof r);
        long before = proc_kib("VmRSS");
        llm_backend_options bo;
        llm_backend_options_init(&bo);
        bo.threads = 1;
        llm_backend *b = NULL;
        llm_model *m = NULL;
        r.s = llm_backend_create(&b, LLM_BACKEND_CPU, &bo);
        if (r.s == LLM_OK) r.s = llm_model_load(&m, b, p);
        snprintf(r.msg, sizeof r.msg, "%s", llm_last_error());
        r.grew = proc_kib("VmHWM") - before;
        llm_model_free(m);
        llm_backend_free(b);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    struct { llm_status s; long grew; char msg[400]; } r;
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(got == (ssize_t)sizeof r && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the loading child failed");
    snprintf(msg, msglen, "%s", r.msg);
    *grew_kib = r.grew;
    return r.s;
}

/* A file whose header claims a 2 GiB tensor (a hole on disk) is refused
 * from its header, metadata and tensor table, without reading the data:
 * resident memory rises by far less than the tensor. */
START_TEST(huge_tensors_are_refused_before_reading) {
    const uint64_t huge = UINT64_C(1) << 31;
    char p2[160], msg[400];
    long grew = 0;
    snprintf(p2, sizeof p2, "%s/sparse.safetensors", dir);
    /* no libllm metadata at all */
    write_sparse(p2, "{\"w\":{\"dtype\":\"F32\",\"shape\":[536870912],\"data_offsets\":[0,2147483648]}}", NULL, 0, huge);
    ck_assert_int_eq(load_in_child(p2, msg, sizeof msg, &grew), LLM_ERR_FORMAT);
    ck_assert_msg(strstr(msg, "not a libllm model"), "%s", msg);
    ck_assert_msg(grew < 50 * 1024, "resident memory rose by %ld KiB", grew);

    /* a real model with a 2 GiB tensor it does not use */
    llm_model *m = small_model(0);
    ck_assert_ok(llm_model_save(m, path));
    llm_model_free(m);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    unsigned char b8[8];
    ck_assert_uint_eq(fread(b8, 1, 8, fp), 8);
    uint64_t hn = 0;
    for (int k = 7; k >= 0; k--) hn = (hn << 8) | b8[k];
    char *hdr = calloc(1, hn + 1);
    ck_assert_ptr_nonnull(hdr);
    ck_assert_uint_eq(fread(hdr, 1, hn, fp), hn);
    static unsigned char data[1 << 16];
    size_t len = fread(data, 1, sizeof data, fp);
    ck_assert(feof(fp));
    fclose(fp);
    cJSON *root = cJSON_Parse(hdr);
    ck_assert_ptr_nonnull(root);
    char entry[160];
    snprintf(entry, sizeof entry, "{\"dtype\":\"F32\",\"shape\":[536870912],\"data_offsets\":[%zu,%llu]}", len,
             (unsigned long long)(len + huge));
    ck_assert(cJSON_AddItemToObject(root, "stowaway", cJSON_Parse(entry)));
    char *h2 = cJSON_PrintUnformatted(root);
    ck_assert_ptr_nonnull(h2);
    write_sparse(p2, h2, data, len, len + huge);
    cJSON_free(h2);
    cJSON_Delete(root);
    free(hdr);
    ck_assert_int_eq(load_in_child(p2, msg, sizeof msg, &grew), LLM_ERR_FORMAT);
    ck_assert_msg(strstr(msg, "does not use"), "%s", msg);
    ck_assert_msg(grew < 50 * 1024, "resident memory rose by %ld KiB", grew);
}
END_TEST

START_TEST(metadata_and_pipeline_errors) {
    llm_model *m = small_model(0);
    const char *v;
    ck_assert_fails(llm_model_set_metadata(m, "", "x"), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_set_metadata(m, "bad\"key", "x"), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_set_metadata(m, "libllm.vocab", "x"), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_set_metadata(m, "format", "pt"), LLM_ERR_INVALID_ARGUMENT); /* would repeat a key on save */
    ck_assert_ok(llm_model_set_metadata(m, "formats", "x"));
    ck_assert_fails(llm_model_set_metadata(NULL, "k", "x"), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_set_metadata(m, "k", "1"));
    ck_assert_ok(llm_model_set_metadata(m, "k", "2"));
    ck_assert_ok(llm_model_get_metadata(m, "k", &v));
    ck_assert_str_eq(v, "2");
    ck_assert_ok(llm_model_set_metadata(m, "k", NULL));
    ck_assert_fails(llm_model_get_metadata(m, "k", &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_get_metadata(m, "k", NULL), LLM_ERR_INVALID_ARGUMENT);
    const llm_vocab *mv;
    ck_assert_fails(llm_model_vocab(m, &mv), LLM_ERR_STATE);
    float p;
    ck_assert_fails(llm_model_predict_text(m, "hi", 2, &p, 1), LLM_ERR_STATE);
    ck_assert_fails(llm_model_predict_text(m, NULL, 2, &p, 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_set_text_pipeline(m, NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_dataset *ds;
    ck_assert_fails(llm_dataset_from_corpus(&ds, NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_model_free(m);
}
END_TEST


/* A loaded model serves predictions from many threads at once, each answer
 * bit-equal to the same request made alone. (Across batch sizes the answers
 * agree only to rounding: OpenBLAS picks its kernels by CPU and by matrix
 * size, and some of them sum in another order.) */
enum { ROWS = 48, SEQ = 9, THREADS = 8, ROUNDS = 40, MAXN = 3 };
typedef struct { llm_model *m; const int32_t *ids; const float *want; int bad; int id; } worker_arg;

static void request(int id, int r, int *row, int *n) {
    *n = 1 + (r % MAXN);
    *row = (id * 7 + r * 5) % ROWS;
    if (*row + *n > ROWS) *row = ROWS - *n;
}

/* want[(row * MAXN + n - 1) * MAXN + k]: the k-th answer of rows row..row+n-1 */
static void *predict_worker(void *p) {
    worker_arg *a = p;
    for (int r = 0; r < ROUNDS; r++) {
        int row, n;
        request(a->id, r, &row, &n);
        llm_tensor *x, *y;
        if (llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){n, SEQ}, a->ids + row * SEQ, (size_t)n * SEQ * 4) != LLM_OK) { a->bad++; continue; }
        if (llm_model_predict(a->m, x, &y) != LLM_OK) { a->bad++; llm_tensor_free(x); continue; }
        float got[MAXN];
        llm_tensor_to_host(y, got, (size_t)n * 4);
        a->bad += memcmp(got, &a->want[(row * MAXN + n - 1) * MAXN], (size_t)n * 4) != 0;
        llm_tensor_free(x);
        llm_tensor_free(y);
    }
    return NULL;
}

START_TEST(concurrent_predictions) {
    llm_model *m = small_model(1), *back;
    ck_assert_ok(llm_model_save(m, path));
    llm_model_free(m);
    ck_assert_ok(llm_model_load(&back, be, path));
    int32_t ids[ROWS * SEQ];
    for (int i = 0; i < ROWS * SEQ; i++) ids[i] = (i * 13 + i / SEQ) % 7 == 0 ? 0 : 2 + (i * 31) % 28;
    static float want[ROWS * MAXN * MAXN];
    for (int r = 0; r < ROWS; r++)
        for (int n = 1; n <= MAXN && r + n <= ROWS; n++) {
            llm_tensor *x, *y;
            ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){n, SEQ}, ids + r * SEQ,
                                              (size_t)n * SEQ * 4));
            ck_assert_ok(llm_model_predict(back, x, &y));
            ck_assert_ok(llm_tensor_to_host(y, &want[(r * MAXN + n - 1) * MAXN], (size_t)n * 4));
            llm_tensor_free(x);
            llm_tensor_free(y);
        }
    /* a row's answer hardly depends on the batch around it */
    for (int r = 0; r < ROWS; r++)
        for (int n = 2; n <= MAXN && r + n <= ROWS; n++)
            for (int k = 0; k < n; k++) {
                float alone = want[((r + k) * MAXN) * MAXN], in_batch = want[(r * MAXN + n - 1) * MAXN + k];
                ck_assert_msg(fabsf(alone - in_batch) <= 1e-6f, "row %d alone %.9g, in a batch of %d %.9g", r + k,
                              (double)alone, n, (double)in_batch);
            }
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){ back, ids, want, 0, t };
        ck_assert_int_eq(pthread_create(&th[t], NULL, predict_worker, &args[t]), 0);
    }
    int bad = 0;
    for (int t = 0; t < THREADS; t++) { pthread_join(th[t], NULL); bad += args[t].bad; }
    ck_assert_msg(bad == 0, "%d of %d concurrent predictions differ from the same request made alone", bad,
                  THREADS * ROUNDS);
    llm_model_free(back);
}
END_TEST


/* Train 4 epochs straight, or 2, checkpoint, load, and 2 more: the same bits. */
static void resume_run(const char *ckpt, int split, float *out, int64_t n_out) {
    enum { N = 120, T = 9 };
    int32_t x[N * T];
    float y[N];
    for (int i = 0; i < N; i++) {
        int has = 0;
        for (int t = 0; t < T; t++) { int32_t id = (t < i % 4) ? 0 : 2 + (i * 7 + t * 3) % 28; x[i * T + t] = id; has |= id == 5; }
        y[i] = (float)has;
    }
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_I32, 2, (int64_t[]){N, T}, x, LLM_DTYPE_F32, 1, (int64_t[]){N}, y));
    llm_model *m;
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 4;
    fo.batch_size = 16;
    fo.validation_split = 0.2f;
    fo.early_stopping = LLM_MONITOR_VAL_LOSS;
    fo.checkpoint_path = ckpt;
    if (split) {
        m = small_model(1);
        llm_optimizer *opt;
        ck_assert_ok(llm_optimizer_adamw(&opt, 0.01f, 0.01f));
        ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
        llm_optimizer_free(opt);
        fo.epochs = 2;
        ck_assert_ok(llm_model_fit(m, ds, &fo, NULL));
        llm_model_free(m);
        ck_assert_ok(llm_model_load_checkpoint(&m, be, ckpt));
        int done;
        ck_assert_ok(llm_model_epochs_done(m, &done));
        ck_assert_int_eq(done, 2);
        fo.epochs = 4;
        fo.initial_epoch = done;
    } else {
        m = small_model(1);
        llm_optimizer *opt;
        ck_assert_ok(llm_optimizer_adamw(&opt, 0.01f, 0.01f));
        ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
        llm_optimizer_free(opt);
    }
    ck_assert_ok(llm_model_fit(m, ds, &fo, NULL));
    ck_assert_ok(llm_model_get_param(m, "bidirectional_0.backward.weight_hh", out, (size_t)n_out * 4));
    llm_model_free(m);
    llm_dataset_free(ds);
}

START_TEST(checkpoint_resume_is_exact) {
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    float a[15 * 5], b[15 * 5];
    resume_run(ckpt, 0, a, 15 * 5);
    resume_run(ckpt, 1, b, 15 * 5);
    ck_assert_mem_eq(a, b, sizeof a);
    /* a checkpoint also opens as a plain model; a model file is not a checkpoint */
    llm_model *m;
    ck_assert_ok(llm_model_load(&m, be, ckpt));
    ck_assert_ok(llm_model_save(m, path));
    llm_model_free(m);
    ck_assert_fails(llm_model_load_checkpoint(&m, be, path), LLM_ERR_FORMAT);
    ck_assert_fails(llm_model_save_checkpoint(NULL, path), LLM_ERR_INVALID_ARGUMENT);
    int e;
    ck_assert_fails(llm_model_epochs_done(NULL, &e), LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

Suite *suite_model_io(void) {
    Suite *s = suite_create("model_io");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, round_trip_is_exact);
    tcase_add_test(c, file_uses_pytorch_layout);
    tcase_add_test(c, pytorch_biases_are_summed);
    tcase_add_test(c, text_pipeline_round_trip);
    tcase_add_test(c, failed_save_keeps_old_file);
    tcase_add_test(c, concurrent_predictions);
    tcase_add_test(c, checkpoint_resume_is_exact);
    suite_add_tcase(s, c);
    TCase *e = tcase_create("errors");
    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, hostile_model_files);
    tcase_add_test(e, metadata_and_pipeline_errors);
    tcase_add_test(e, appended_bytes_and_empty_paths);
    tcase_add_test(e, special_files_are_refused_without_blocking);
    tcase_add_test(e, huge_tensors_are_refused_before_reading);
    suite_add_tcase(s, e);
    return s;
}
