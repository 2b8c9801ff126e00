/* Writes the seed corpus of the model-loader fuzz target: a few small but
 * valid model files made by the library itself, covering every layer kind,
 * the text pipeline and user metadata, plus one plain safetensors file that
 * is not a libllm model. `make fuzz-seeds` runs it:
 *
 *     make_seeds OUT_DIR
 *
 * The files are kept tiny (a few KB) so that libFuzzer's mutations stay
 * cheap; regenerate them when the file format changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"
#include "io/safetensors.h"

static llm_backend *be;
static const char *out_dir;

static void check(llm_status s, const char *what) {
    if (s == LLM_OK) return;
    fprintf(stderr, "make_seeds: %s: %s\n", what, llm_last_error());
    exit(1);
}

static void save(llm_model *m, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    check(llm_model_save(m, path), path);
    llm_model_free(m);
}

static llm_model *new_model(void) {
    llm_model *m;
    check(llm_model_sequential(&m, be), "sequential");
    check(llm_model_set_seed(m, 7), "seed");
    return m;
}

/* The spam classifier's shape (embedding, LSTM, sigmoid), shrunk, with an
 * e-mail text pipeline and user metadata. */
static void lstm_email(void) {
    static const char *texts[] = {
        "cheap pills buy now", "meeting notes for monday", "buy cheap watches now now",
        "lunch on monday?", "re: the build is broken again", "win money fast click here",
    };
    llm_vocab_builder *b;
    llm_vocab *vocab;
    llm_tokenizer_options tok;
    llm_tokenizer_options_init(&tok);
    tok.fold_numbers = 1;
    tok.fold_urls = 1;
    check(llm_vocab_builder_create(&b, &tok), "builder");
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        check(llm_vocab_builder_add(b, texts[i], strlen(texts[i])), "builder add");
    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    vo.max_tokens = 16;
    check(llm_vocab_builder_build(b, &vo, &vocab), "build vocab");
    llm_vocab_builder_free(b);

    llm_model *m = new_model();
    check(llm_model_add(m, llm_layer_embedding(16, 4)), "embedding");
    check(llm_model_add(m, llm_layer_lstm(3, LLM_RETURN_LAST)), "lstm");
    check(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)), "dense");
    check(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){10}), "build");
    llm_vectorize_options vec;
    llm_vectorize_options_init(&vec);
    vec.seq_len = 10;
    llm_email_options em;
    llm_email_options_init(&em);
    em.keep_headers = "From,To";
    check(llm_model_set_text_pipeline(m, vocab, &vec, &em), "pipeline");
    check(llm_model_set_metadata(m, "class_names", "ham,spam"), "metadata");
    llm_vocab_free(vocab);
    save(m, "lstm_email.safetensors");
}

/* A plain-text pipeline (no e-mail settings), post padding and truncation. */
static void gru_text(void) {
    static const char *texts[] = { "alpha beta gamma", "beta gamma delta", "\xc3\xa9t\xc3\xa9 caf\xc3\xa9" };
    llm_vocab_builder *b;
    llm_vocab *vocab;
    check(llm_vocab_builder_create(&b, NULL), "builder");
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        check(llm_vocab_builder_add(b, texts[i], strlen(texts[i])), "builder add");
    check(llm_vocab_builder_build(b, NULL, &vocab), "build vocab");
    llm_vocab_builder_free(b);
    int32_t size;
    check(llm_vocab_size(vocab, &size), "vocab size");

    llm_model *m = new_model();
    llm_recurrent_options ro;
    llm_recurrent_options_init(&ro);
    ro.units = 2;
    ro.go_backwards = 1;
    check(llm_model_add(m, llm_layer_embedding(size, 3)), "embedding");
    check(llm_model_add(m, llm_layer_gru_ex(&ro)), "gru");
    check(llm_model_add(m, llm_layer_dense(2, LLM_ACT_SOFTMAX)), "dense");
    check(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){6}), "build");
    llm_vectorize_options vec;
    llm_vectorize_options_init(&vec);
    vec.seq_len = 6;
    vec.padding = LLM_SEQ_POST;
    vec.truncation = LLM_SEQ_PRE;
    check(llm_model_set_text_pipeline(m, vocab, &vec, NULL), "pipeline");
    llm_vocab_free(vocab);
    save(m, "gru_text.safetensors");
}

/* Every other layer kind: bidirectional GRU and LSTM, pooling, layer norm,
 * dropout, activations, a dense layer without bias, no mask. */
static void layers(void) {
    llm_model *m = new_model();
    llm_embedding_options eo;
    llm_embedding_options_init(&eo);
    eo.vocab = 12;
    eo.dim = 3;
    eo.mask_zero = 0;
    llm_recurrent_options ro;
    llm_recurrent_options_init(&ro);
    ro.units = 2;
    ro.return_mode = LLM_RETURN_SEQUENCES;
    ro.unit_forget_bias = 0;
    llm_dense_options dn;
    llm_dense_options_init(&dn);
    dn.units = 2;
    dn.activation = LLM_ACT_GELU;
    dn.use_bias = 0;
    check(llm_model_add(m, llm_layer_embedding_ex(&eo)), "embedding");
    check(llm_model_add(m, llm_layer_bidirectional(llm_layer_lstm_ex(&ro))), "bilstm");
    check(llm_model_add(m, llm_layer_bidirectional(llm_layer_gru(2, LLM_RETURN_SEQUENCES))), "bigru");
    check(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)), "pool");
    check(llm_model_add(m, llm_layer_layernorm(1e-5f)), "layernorm");
    check(llm_model_add(m, llm_layer_dropout(0.25f)), "dropout");
    check(llm_model_add(m, llm_layer_dense_ex(&dn)), "dense");
    check(llm_model_add(m, llm_layer_activation(LLM_ACT_TANH)), "activation");
    check(llm_model_add(m, llm_layer_dense(1, LLM_ACT_NONE)), "dense");
    check(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){5}), "build");
    save(m, "layers.safetensors");
}

/* Float inputs of rank 2 through dense layers and max pooling. */
static void float_input(void) {
    llm_model *m = new_model();
    check(llm_model_add(m, llm_layer_dense(3, LLM_ACT_RELU)), "dense");
    check(llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)), "pool");
    check(llm_model_add(m, llm_layer_dense(2, LLM_ACT_SIGMOID)), "dense");
    check(llm_model_build(m, LLM_DTYPE_F32, 2, (int64_t[]){4, 2}), "build");
    save(m, "float_input.safetensors");
}

/* A safetensors file that is not a libllm model: an I32 tensor, a scalar,
 * an empty tensor and foreign metadata. */
static void plain(void) {
    static const int32_t ids[6] = { 1, 2, 3, 4, 5, 6 };
    static const float one = 1.0f;
    llm__st_tensor t[3] = {
        { .name = "ids", .dtype = LLM_DTYPE_I32, .ndim = 2, .shape = { 2, 3 }, .data = ids, .bytes = sizeof ids },
        { .name = "scale", .dtype = LLM_DTYPE_F32, .ndim = 0, .data = &one, .bytes = 4 },
        { .name = "empty", .dtype = LLM_DTYPE_F32, .ndim = 1, .shape = { 0 }, .data = NULL, .bytes = 0 },
    };
    llm__st_meta meta[1] = { { "format", "pt" } };
    char path[4096];
    snprintf(path, sizeof path, "%s/plain.safetensors", out_dir);
    check(llm__safetensors_write(path, t, 3, meta, 1), path);
}

/* An ensemble of two copies of the e-mail LSTM above (the other seeds with
 * a text pipeline have two outputs, which cannot join it). */
static void ensemble(void) {
    static const char *const members[] = { "lstm_email.safetensors", "lstm_email.safetensors" };
    llm_model *e;
    check(llm_model_ensemble(&e, be), "ensemble");
    for (int i = 0; i < 2; i++) {
        char path[4096];
        llm_model *m;
        snprintf(path, sizeof path, "%s/%s", out_dir, members[i]);
        check(llm_model_load(&m, be, path), path);
        check(llm_model_ensemble_add(e, m), "ensemble add");
    }
    check(llm_model_set_metadata(e, "class_names", "ham,spam"), "metadata");
    save(e, "ensemble.safetensors");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    check(llm_backend_create(&be, LLM_BACKEND_CPU, &bo), "backend");
    lstm_email();
    gru_text();
    layers();
    float_input();
    ensemble();
    plain();
    llm_backend_free(be);
    return 0;
}
