/* GPT-2 checkpoints and GPT-2's tokenizer, on the tiny fixtures of
 * tests/data/gpt2/ (written by tools/gpt2_reference.py fixtures: a 2-layer
 * GPT-2 with random weights over a 317-token vocabulary, and what PyTorch
 * computes for it): logits and greedy tokens against PyTorch's, every file
 * format, export and reload, training, the tokenizer's rules, and malformed
 * files refused with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "testutil.h"
#include "text/bpe_internal.h"

#define DATA "data/gpt2"

static llm_backend *be;
static cJSON *expected;
static char dir[64];

static void setup(void) {
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    char *text = NULL;
    size_t len = 0;
    ck_assert_ok(llm_text_read_file(DATA "/expected.json", 1 << 22, &text, &len));
    expected = cJSON_ParseWithLength(text, len);
    llm_text_free(text);
    ck_assert_ptr_nonnull(expected);
    snprintf(dir, sizeof dir, "/tmp/llm_gpt2_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    cJSON_Delete(expected);
    llm_backend_free(be);
}

/* expected.json's array `key` as ints / floats; returns the count. */
static int ints(const char *key, int32_t *out, int cap) {
    const cJSON *a = cJSON_GetObjectItem(expected, key);
    int n = 0;
    for (const cJSON *c = a ? a->child : NULL; c && n < cap; c = c->next) out[n++] = (int32_t)c->valuedouble;
    return n;
}

static float *floats(const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItem(expected, key);
    *n = cJSON_GetArraySize(a);
    float *f = malloc((size_t)*n * sizeof *f);
    int i = 0;
    for (const cJSON *c = a->child; c; c = c->next) f[i++] = (float)c->valuedouble;
    return f;
}

/* The model's logits [T, V] for the fixture's 32-token prompt. */
static float *logits_of(llm_model *m, int64_t *vocab) {
    int32_t ids[32];
    ck_assert_int_eq(ints("prompt", ids, 32), 32);
    llm_tensor *x, *y;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ 1, 32 }, ids, sizeof ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    int64_t n;
    ck_assert_ok(llm_tensor_numel(y, &n));
    *vocab = n / 32;
    float *out = malloc((size_t)n * 4);
    ck_assert_ok(llm_tensor_to_host(y, out, (size_t)n * 4));
    llm_tensor_free(x);
    llm_tensor_free(y);
    return out;
}

/* max |got - want| / max |want| over n values */
static double rel_err(const float *got, const float *want, int n) {
    double e = 0, scale = 0;
    for (int i = 0; i < n; i++) {
        e = fmax(e, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    return e / scale;
}

static void check_logits(llm_model *m, const char *key, int last_positions) {
    int64_t V;
    float *got = logits_of(m, &V);
    int n;
    float *want = floats(key, &n);
    ck_assert_int_eq(n, (int)(last_positions * V));
    double e = rel_err(got + (32 - last_positions) * V, want, n);
    ck_assert_msg(e < 1e-4, "%s: relative error %g", key, e);
    free(got);
    free(want);
}

START_TEST(hf_logits_match_pytorch) {
    llm_model *m;
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf", 32));
    int64_t count;
    ck_assert_ok(llm_model_param_count(m, &count));
    /* wte 317x16 + wpe 32x16 + 2 blocks of 3,280 + ln_f 32 (the head is tied) */
    ck_assert_int_eq(count, 317 * 16 + 32 * 16 + 2 * 3280 + 32);
    check_logits(m, "logits_f32", 32);
    const char *src;
    ck_assert_ok(llm_model_get_metadata(m, "gpt2.source", &src));
    ck_assert_str_eq(src, "huggingface");
    llm_model_free(m);
}
END_TEST

START_TEST(f16_bf16_and_llmc_files_load) {
    llm_model *m;
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf_f16", 32));
    check_logits(m, "logits_f16", 4);
    llm_model_free(m);
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf_bf16/model.safetensors", 32));
    check_logits(m, "logits_bf16", 4);
    llm_model_free(m);
    /* llm.c's bf16 file holds the same rounded weights, with a padded vocabulary */
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/llmc_bf16.bin", 32));
    check_logits(m, "logits_bf16", 4);
    const char *src;
    ck_assert_ok(llm_model_get_metadata(m, "gpt2.source", &src));
    ck_assert_str_eq(src, "llm.c");
    llm_model_free(m);
}
END_TEST

START_TEST(greedy_generation_matches_pytorch) {
    llm_model *m;
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf", 0));
    int32_t prompt[8], want[24], got[24];
    ck_assert_int_eq(ints("greedy_prompt", prompt, 8), 8);
    ck_assert_int_eq(ints("greedy", want, 24), 24);
    llm_generate_options go;
    llm_generate_options_init(&go);
    go.max_tokens = 24;
    go.temperature = 0.0f;
    int64_t n = 0;
    ck_assert_ok(llm_model_generate(m, prompt, 8, &go, got, 24, &n));
    ck_assert_int_eq(n, 24);
    for (int i = 0; i < 24; i++) ck_assert_msg(got[i] == want[i], "token %d: %d, PyTorch %d", i, got[i], want[i]);
    llm_model_free(m);
}
END_TEST

START_TEST(tokenizer_beside_the_weights) {
    llm_model *m;
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf", 32));
    const llm_bpe *bpe;
    ck_assert_ok(llm_model_tokenizer(m, &bpe));
    const char *text = cJSON_GetObjectItem(expected, "text")->valuestring;
    int32_t want[64], got[64];
    int n = ints("text_ids", want, 64);
    size_t got_n = 0;
    ck_assert_ok(llm_bpe_encode(bpe, text, strlen(text), got, 64, &got_n));
    ck_assert_int_eq((int)got_n, n);
    for (int i = 0; i < n; i++) ck_assert_int_eq(got[i], want[i]);
    char back[128];
    size_t blen;
    ck_assert_ok(llm_bpe_decode(bpe, got, got_n, back, sizeof back, &blen));
    ck_assert_int_eq((int)blen, (int)strlen(text));
    ck_assert(memcmp(back, text, blen) == 0);
    int32_t pad, eot, size;
    ck_assert_ok(llm_bpe_special_ids(bpe, &pad, &eot));
    ck_assert_ok(llm_bpe_vocab_size(bpe, &size));
    ck_assert_int_eq(eot, size - 1); /* <|endoftext|> is the last token */
    ck_assert_int_eq(pad, eot);
    const char *bytes;
    size_t len;
    ck_assert_ok(llm_bpe_token_bytes(bpe, eot, &bytes, &len));
    ck_assert_str_eq(bytes, "<|endoftext|>");
    /* the model keeps it through its own file format */
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ck_assert_ok(llm_model_save(m, path));
    llm_model *back_m;
    ck_assert_ok(llm_model_load(&back_m, be, path));
    const llm_bpe *b2;
    ck_assert_ok(llm_model_tokenizer(back_m, &b2));
    ck_assert_ok(llm_bpe_encode(b2, text, strlen(text), got, 64, &got_n));
    ck_assert_int_eq((int)got_n, n);
    for (int i = 0; i < n; i++) ck_assert_int_eq(got[i], want[i]);
    llm_model_free(back_m);
    llm_model_free(m);
}
END_TEST

static int file_exists(const char *d, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", d, name);
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

START_TEST(export_reloads_to_the_same_model) {
    llm_model *m, *back;
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf", 32));
    char out[128];
    snprintf(out, sizeof out, "%s/export", dir);
    ck_assert_ok(llm_model_save_gpt2(m, out));
    ck_assert(file_exists(out, "model.safetensors") && file_exists(out, "config.json"));
    ck_assert(file_exists(out, "vocab.json") && file_exists(out, "merges.txt"));
    ck_assert_ok(llm_model_load_gpt2(&back, be, out, 32));
    int64_t V;
    float *a = logits_of(m, &V), *b = logits_of(back, &V);
    ck_assert(memcmp(a, b, (size_t)(32 * V) * 4) == 0);
    free(a);
    free(b);
    llm_model_free(back);
    /* a model of another shape is refused, naming why */
    llm_model *lstm;
    ck_assert_ok(llm_model_sequential(&lstm, be));
    ck_assert_ok(llm_model_add(lstm, llm_layer_embedding(10, 4)));
    ck_assert_ok(llm_model_add(lstm, llm_layer_lstm(3, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_build(lstm, LLM_DTYPE_I32, 1, (int64_t[]){ 5 }));
    ck_assert_fails(llm_model_save_gpt2(lstm, out), LLM_ERR_NOT_SUPPORTED);
    ck_assert_fails(llm_model_save_gpt2(NULL, out), LLM_ERR_INVALID_ARGUMENT);
    llm_model_free(lstm);
    llm_model_free(m);
}
END_TEST

/* End to end: a GPT-2 trains (continued pretraining), and the result still
 * exports and reloads. */
START_TEST(a_loaded_gpt2_trains) {
    llm_model *m;
    ck_assert_ok(llm_model_load_gpt2(&m, be, DATA "/hf", 16));
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adam(&opt, 3e-3f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, opt, LLM_METRIC_NONE));
    llm_optimizer_free(opt);
    int32_t x[4 * 16], y[4 * 16];
    for (int i = 0; i < 64; i++) {
        x[i] = (i * 7) % 300;
        y[i] = (i * 7 + 7) % 300;
    }
    llm_tensor *tx, *ty;
    ck_assert_ok(llm_tensor_from_host(&tx, be, LLM_DTYPE_I32, 2, (int64_t[]){ 4, 16 }, x, sizeof x));
    ck_assert_ok(llm_tensor_from_host(&ty, be, LLM_DTYPE_I32, 2, (int64_t[]){ 4, 16 }, y, sizeof y));
    float first = 0, loss = 0;
    for (int step = 0; step < 30; step++) {
        ck_assert_ok(llm_model_train_on_batch(m, tx, ty, &loss, NULL));
        if (step == 0) first = loss;
    }
    ck_assert_msg(loss < 0.8f * first, "loss %g after 30 steps, %g at first", loss, first);
    char out[128];
    snprintf(out, sizeof out, "%s/trained", dir);
    ck_assert_ok(llm_model_save_gpt2(m, out));
    llm_model *back;
    ck_assert_ok(llm_model_load_gpt2(&back, be, out, 16));
    float w1[16], w2[16];
    ck_assert_ok(llm_model_get_param(m, "transformer_block_1.fc2_bias", w1, sizeof w1));
    ck_assert_ok(llm_model_get_param(back, "transformer_block_1.fc2_bias", w2, sizeof w2));
    ck_assert(memcmp(w1, w2, sizeof w1) == 0);
    llm_model_free(back);
    llm_tensor_free(tx);
    llm_tensor_free(ty);
    llm_model_free(m);
}
END_TEST

START_TEST(fresh_gpt2_and_options) {
    llm_gpt2_options o;
    llm_gpt2_options_init(&o);
    ck_assert_int_eq(o.n_layer, 12);
    ck_assert_int_eq(o.vocab_size, 50257);
    o.n_layer = 1;
    o.n_embd = 8;
    o.n_head = 2;
    o.n_positions = 8;
    o.vocab_size = 20;
    llm_model *m;
    ck_assert_ok(llm_model_gpt2(&m, be, &o));
    int np;
    ck_assert_ok(llm_model_num_params(m, &np));
    ck_assert_int_eq(np, 2 + 12 + 2); /* tied head: no weight of its own */
    llm_model_free(m);
    o.n_head = 3;
    ck_assert_fails(llm_model_gpt2(&m, be, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    o.n_head = 2;
    o.seq_len = 9;
    ck_assert_fails(llm_model_gpt2(&m, be, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_gpt2(NULL, be, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_gpt2(&m, be, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_load_gpt2(&m, be, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_load_gpt2(&m, be, "/nonexistent/gpt2", 0), LLM_ERR_IO);
    ck_assert_fails(llm_model_load_gpt2(&m, be, DATA "/hf", 33), LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

/* transformer_embedding's pad_id: the padding id is hidden from attention
 * and pooling, whatever its table row holds, and survives a save. */
static float pad_model_output(llm_model *m) {
    int32_t ids[6] = { 3, 4, 6, 9, 9, 9 };
    llm_tensor *x, *y;
    float out = 0;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ 1, 6 }, ids, sizeof ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    ck_assert_ok(llm_tensor_to_host(y, &out, 4));
    llm_tensor_free(x);
    llm_tensor_free(y);
    return out;
}

START_TEST(embedding_pad_id) {
    llm_transformer_embedding_options e;
    llm_transformer_embedding_options_init(&e);
    ck_assert_int_eq(e.pad_id, 0);
    e.vocab = 10;
    e.context = 6;
    e.dim = 8;
    e.pad_id = 9;
    llm_model *m, *back;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&e)));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 0)));
    ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){ 6 }));
    float before = pad_model_output(m), table[80];
    ck_assert_ok(llm_model_get_param(m, "transformer_embedding_0.token", table, sizeof table));
    for (int j = 0; j < 8; j++) table[9 * 8 + j] += 5.0f; /* the pad row */
    ck_assert_ok(llm_model_set_param(m, "transformer_embedding_0.token", table, sizeof table));
    ck_assert(pad_model_output(m) == before);
    table[3 * 8] += 1.0f; /* a real token's row does matter */
    ck_assert_ok(llm_model_set_param(m, "transformer_embedding_0.token", table, sizeof table));
    float changed = pad_model_output(m);
    ck_assert(changed != before);
    char path[128];
    snprintf(path, sizeof path, "%s/pad.safetensors", dir);
    ck_assert_ok(llm_model_save(m, path));
    ck_assert_ok(llm_model_load(&back, be, path));
    ck_assert(pad_model_output(back) == changed);
    llm_model_free(back);
    llm_model_free(m);
    e.pad_id = 10;
    llm_layer *bad = llm_layer_transformer_embedding_ex(&e);
    ck_assert_int_eq(llm_layer_status(bad), LLM_ERR_INVALID_ARGUMENT);
    ck_assert(strstr(llm_layer_error(bad), "pad_id") != NULL);
    llm_layer_free(bad);
}
END_TEST

/* ---- malformed checkpoints ---- */

static char *slurp(const char *path, size_t *len) {
    char *t = NULL;
    ck_assert_ok(llm_text_read_file(path, 1 << 24, &t, len));
    return t;
}

static void put(const char *d, const char *name, const void *data, size_t len) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", d, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A folder d with config.json `cfg` and the fixture's weights, `len` bytes
 * of them (the whole file when len is 0), patched by replacing the first
 * `from` in the header with `to` (same length). */
static void make_hf(const char *d, const char *cfg, size_t len, const char *from, const char *to) {
    mkdir(d, 0777);
    size_t n;
    char *w = slurp(DATA "/hf/model.safetensors", &n);
    if (from) {
        char *at = memmem(w, n, from, strlen(from));
        ck_assert_ptr_nonnull(at);
        ck_assert_int_eq(strlen(from), strlen(to));
        memcpy(at, to, strlen(to));
    }
    put(d, "model.safetensors", w, len ? len : n);
    llm_text_free(w);
    if (!cfg) {
        size_t cn;
        char *c = slurp(DATA "/hf/config.json", &cn);
        put(d, "config.json", c, cn);
        llm_text_free(c);
    } else {
        put(d, "config.json", cfg, strlen(cfg));
    }
}

static void refused(const char *d, llm_status want, const char *needle) {
    llm_model *m = (llm_model *)1;
    ck_assert_fails(llm_model_load_gpt2(&m, be, d, 0), want);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(llm_last_error(), needle), "message '%s' lacks '%s'", llm_last_error(), needle);
}

START_TEST(malformed_hf_checkpoints_are_refused) {
    char d[128];
    const char *base = "{\"n_layer\":2,\"n_embd\":16,\"n_positions\":32,\"vocab_size\":317,%s}";
    char cfg[256];
    snprintf(d, sizeof d, "%s/truncated", dir);
    make_hf(d, NULL, 30000, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "data_offsets");
    snprintf(d, sizeof d, "%s/shape", dir); /* a config that does not fit the tensors */
    snprintf(cfg, sizeof cfg, base, "\"n_head\":2,\"n_inner\":32");
    make_hf(d, cfg, 0, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "config.json makes it");
    snprintf(d, sizeof d, "%s/heads", dir);
    snprintf(cfg, sizeof cfg, base, "\"n_head\":3");
    make_hf(d, cfg, 0, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "does not divide");
    snprintf(d, sizeof d, "%s/act", dir);
    snprintf(cfg, sizeof cfg, base, "\"n_head\":2,\"activation_function\":\"relu\"");
    make_hf(d, cfg, 0, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "activation_function");
    snprintf(d, sizeof d, "%s/twice", dir);
    snprintf(cfg, sizeof cfg, base, "\"n_head\":2,\"n_head\":4");
    make_hf(d, cfg, 0, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "appears twice");
    snprintf(d, sizeof d, "%s/json", dir);
    make_hf(d, "{\"n_layer\": 2,", 0, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "not valid JSON");
    snprintf(d, sizeof d, "%s/type", dir);
    make_hf(d, "{\"model_type\": \"bert\"}", 0, NULL, NULL);
    refused(d, LLM_ERR_FORMAT, "model_type");
    snprintf(d, sizeof d, "%s/dtype", dir); /* an int tensor where a weight belongs */
    make_hf(d, NULL, 0, "\"F32\", \"shape\": [16]", "\"I32\", \"shape\": [16]");
    refused(d, LLM_ERR_FORMAT, "not F32, F16 or BF16");
    snprintf(d, sizeof d, "%s/renamed", dir); /* a tensor GPT-2 does not have */
    make_hf(d, NULL, 0, "ln_f.bias", "ln_g.bias");
    refused(d, LLM_ERR_FORMAT, "unexpected tensor");
    snprintf(d, sizeof d, "%s/noconfig", dir);
    make_hf(d, NULL, 0, NULL, NULL);
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", d);
    unlink(p);
    refused(d, LLM_ERR_IO, "config.json");
    snprintf(d, sizeof d, "%s/empty", dir);
    mkdir(d, 0777);
    refused(d, LLM_ERR_IO, "model.safetensors");
}
END_TEST

/* an llm.c file with its header patched */
static void make_llmc(const char *path, int word, int32_t value, long keep) {
    size_t n;
    char *w = slurp(DATA "/llmc_bf16.bin", &n);
    if (word >= 0) memcpy(w + 4 * word, &value, 4);
    FILE *f = fopen(path, "wb");
    fwrite(w, 1, keep >= 0 ? (size_t)keep : n, f);
    fclose(f);
    llm_text_free(w);
}

START_TEST(malformed_llmc_checkpoints_are_refused) {
    char p[128];
    snprintf(p, sizeof p, "%s/g.bin", dir);
    make_llmc(p, -1, 0, 20000);
    refused(p, LLM_ERR_FORMAT, "truncated");
    make_llmc(p, 1, 4, -1);
    refused(p, LLM_ERR_FORMAT, "version 4");
    make_llmc(p, 5, 3, -1); /* 3 heads for 16 channels */
    refused(p, LLM_ERR_FORMAT, "n_head");
    make_llmc(p, 7, 300, -1); /* padded vocabulary below the vocabulary */
    refused(p, LLM_ERR_FORMAT, "padded_vocab_size");
    make_llmc(p, 2, 16, -1); /* 16 positions: the shapes no longer add up to the file */
    refused(p, LLM_ERR_FORMAT, "bytes after");
    make_llmc(p, -1, 0, 600);
    refused(p, LLM_ERR_FORMAT, "header");
    /* a NaN in the weights: bf16 0x7fc0 over ln_f's last value */
    size_t n;
    char *w = slurp(DATA "/llmc_bf16.bin", &n);
    w[n - 2] = (char)0xc0;
    w[n - 1] = 0x7f;
    put(dir, "nan.bin", w, n);
    llm_text_free(w);
    snprintf(p, sizeof p, "%s/nan.bin", dir);
    refused(p, LLM_ERR_FORMAT, "non-finite");
}
END_TEST

/* ---- the tokenizer ---- */

/* The chunks GPT-2's rule cuts text into, joined by '|'. */
static void chunks(const char *text, char *out) {
    size_t n = strlen(text), o = 0;
    for (size_t i = 0; i < n;) {
        size_t e = llm__gpt2_chunk_end((const unsigned char *)text, n, i);
        ck_assert(e > i && e <= n);
        if (i) out[o++] = '|';
        memcpy(out + o, text + i, e - i);
        o += e - i;
        i = e;
    }
    out[o] = '\0';
}

START_TEST(gpt2_pretokenisation_rules) {
    static const char *cases[][2] = {
        { "Hello world", "Hello| world" },
        { "don't they'll we've I'M", "don|'t| they|'ll| we|'ve| I|'|M" },
        { "a  b", "a| | b" },
        { "a\n b", "a|\n| b" },
        { "x   ", "x|   " },
        { "a \nb", "a| |\n|b" },
        { "123abc 45", "123|abc| 45" },
        { " !!x", " !!|x" },
        { "''s", "''|s" },
        { "\xff\xfe a", "\xff\xfe| a" },               /* invalid UTF-8: "other" characters */
        { "caf\xc3\xa9 1\xc2\xb2", "caf\xc3\xa9| 1\xc2\xb2" }, /* é a letter, ² a number */
        { "a\xc2\xa0" "b", "a|\xc2\xa0|b" },           /* no-break space: white space, not " ?" */
        { "x\xe3\x80\x80\xe3\x80\x80y", "x|\xe3\x80\x80|\xe3\x80\x80|y" }, /* ideographic spaces */
        { "\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!" },  /* an emoji is "other" like '!' */
        { "\xe4\xb8\xad\xe6\x96\x87", "\xe4\xb8\xad\xe6\x96\x87" }, /* CJK letters */
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        chunks(cases[i][0], out);
        ck_assert_msg(strcmp(out, cases[i][1]) == 0, "'%s' -> '%s', expected '%s'", cases[i][0], out, cases[i][1]);
    }
}
END_TEST

START_TEST(tokenizer_round_trips_and_serialises) {
    llm_bpe *b, *c;
    ck_assert_ok(llm_bpe_load_gpt2(&b, DATA "/vocab.json", DATA "/merges.txt"));
    uint64_t st = 99;
    for (int k = 0; k < 200; k++) { /* random bytes, valid UTF-8 or not */
        char text[300], back[300];
        size_t len = (size_t)(tu_next(&st) % 300), n, blen;
        for (size_t i = 0; i < len; i++) text[i] = tu_next(&st) % 4 ? "aeiou th'sx9 \n"[tu_next(&st) % 14] : (char)tu_next(&st);
        int32_t ids[300];
        ck_assert_ok(llm_bpe_encode(b, text, len, ids, 300, &n));
        ck_assert_ok(llm_bpe_decode(b, ids, n, back, sizeof back, &blen));
        ck_assert_int_eq(blen, len);
        ck_assert(memcmp(back, text, len) == 0);
    }
    /* a chunk longer than the native tokenizer's 256 bytes */
    char *big = malloc(5000);
    memset(big, 'e', 5000);
    int32_t *ids = malloc(5000 * sizeof *ids);
    size_t n;
    ck_assert_ok(llm_bpe_encode(b, big, 5000, ids, 5000, &n));
    ck_assert_int_eq((int)n, 5000); /* no "ee" merge in the tiny vocabulary */
    free(big);
    free(ids);
    size_t need;
    ck_assert_ok(llm_bpe_serialize(b, NULL, 0, &need));
    char *ser = malloc(need);
    ck_assert_ok(llm_bpe_serialize(b, ser, need, &need));
    ck_assert(strncmp(ser, "llm-bpe 2 gpt2 ", 15) == 0);
    ck_assert_ok(llm_bpe_deserialize(&c, ser, need));
    const char *t = "They'll see the numbers";
    int32_t x[64], y[64];
    size_t nx, ny;
    ck_assert_ok(llm_bpe_encode(b, t, strlen(t), x, 64, &nx));
    ck_assert_ok(llm_bpe_encode(c, t, strlen(t), y, 64, &ny));
    ck_assert_int_eq(nx, ny);
    ck_assert(memcmp(x, y, nx * 4) == 0);
    llm_bpe_free(c);
    ck_assert_fails(llm_bpe_deserialize(&c, ser, need - 1), LLM_ERR_FORMAT);
    ck_assert_ptr_null(c);
    free(ser);
    llm_bpe_free(b);
}
END_TEST

START_TEST(malformed_tokenizer_files_are_refused) {
    size_t vl, ml;
    char *v = slurp(DATA "/vocab.json", &vl), *mg = slurp(DATA "/merges.txt", &ml);
    llm_bpe *b = NULL;
    ck_assert_ok(llm_bpe_from_gpt2(&b, v, vl, mg, ml));
    llm_bpe_free(b);
    ck_assert_fails(llm_bpe_from_gpt2(&b, v, vl - 1, mg, ml), LLM_ERR_FORMAT); /* cut JSON */
    ck_assert_fails(llm_bpe_from_gpt2(&b, "{\"a\": 0}", 8, mg, ml), LLM_ERR_FORMAT);
    ck_assert_fails(llm_bpe_from_gpt2(&b, v, vl, "#version: 0.2\nzz qq\n", 20), LLM_ERR_FORMAT);
    ck_assert_msg(strstr(llm_last_error(), "line 2"), "%s", llm_last_error());
    ck_assert_fails(llm_bpe_from_gpt2(&b, v, vl, "a b c\n", 6), LLM_ERR_FORMAT);
    char *dup = malloc(ml + 8);
    memcpy(dup, mg, ml);
    memcpy(dup + ml, "\xc4\xa0 t\n", 5); /* "Ġ t" again */
    ck_assert_fails(llm_bpe_from_gpt2(&b, v, vl, dup, ml + 5), LLM_ERR_FORMAT);
    ck_assert_msg(strstr(llm_last_error(), "repeats"), "%s", llm_last_error());
    free(dup);
    /* an id given twice: the first token's id rewritten to the second's */
    char *v2 = malloc(vl + 1);
    memcpy(v2, v, vl + 1);
    char *one = strstr(v2, ": 1,");
    ck_assert_ptr_nonnull(one);
    one[2] = '0';
    ck_assert_fails(llm_bpe_from_gpt2(&b, v2, vl, mg, ml), LLM_ERR_FORMAT);
    free(v2);
    ck_assert_fails(llm_bpe_load_gpt2(&b, "/nonexistent/vocab.json", DATA "/merges.txt"), LLM_ERR_IO);
    ck_assert_fails(llm_bpe_special_ids(NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_text_free(v);
    llm_text_free(mg);
}
END_TEST

Suite *suite_gpt2(void) {
    Suite *s = suite_create("gpt2");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, hf_logits_match_pytorch);
    tcase_add_test(c, f16_bf16_and_llmc_files_load);
    tcase_add_test(c, greedy_generation_matches_pytorch);
    tcase_add_test(c, tokenizer_beside_the_weights);
    tcase_add_test(c, export_reloads_to_the_same_model);
    tcase_add_test(c, a_loaded_gpt2_trains);
    tcase_add_test(c, gpt2_pretokenisation_rules);
    tcase_add_test(c, tokenizer_round_trips_and_serialises);
    tcase_add_test(c, embedding_pad_id);
    suite_add_tcase(s, c);
    TCase *e = tcase_create("errors");
    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, fresh_gpt2_and_options);
    tcase_add_test(e, malformed_hf_checkpoints_are_refused);
    tcase_add_test(e, malformed_llmc_checkpoints_are_refused);
    tcase_add_test(e, malformed_tokenizer_files_are_refused);
    suite_add_tcase(s, e);
    return s;
}
