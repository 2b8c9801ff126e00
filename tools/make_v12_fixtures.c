/* Writes the libllm 1.2 compatibility fixtures (tests/fixtures/v1.2/): one
 * small model file per architecture and expected.txt, the outputs this
 * library gave for fixed inputs. Run once with libllm 1.2.x (file format 1);
 * tests/test_compat_v12.c then checks that later versions load those files
 * and predict the same. Rerunning it with a later version would only hide a
 * change, so the committed files are the reference, not this program.
 *
 *     build/bin/make_v12_fixtures tests/fixtures/v1.2
 *
 * expected.txt holds one check per line, floats as C99 hex (exact):
 *     text <file> <text as hex bytes> <n> <outputs...>    llm_model_predict_text
 *     ids <file> <B> <T> <ids...> <n> <outputs...>         llm_model_predict (int32 [B, T])
 *     f32 <file> <B> <F> <inputs...> <n> <outputs...>      llm_model_predict (float32 [B, F])
 *     dec <file> <n> <ids...> <vocab> <logits...>          llm_decoder_feed: ids[0..n-1) at once,
 *                                                          then ids[n-1] alone (one decode step) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llm/llm.h>

#define CHECK(call) do { llm_status s_ = (call); if (s_ != LLM_OK) { \
    fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, llm_status_string(s_), llm_last_error()); exit(1); } } while (0)

static const char *dir;
static FILE *expected;
static llm_backend *cpu;

static const char *const texts[] = {
    "free money now, click the link to win a prize",
    "meeting moved to tuesday, see the agenda attached",
    "win win win free prize money",
    "",
};
#define N_TEXTS 4

static const char email[] =
    "From: a@example.com\r\nSubject: free prize\r\nContent-Type: text/plain\r\n\r\nclick the link to win money\r\n";

/* Moves every weight by a deterministic amount so that biases and scales
 * are not their initial zeros and ones: a file whose tensors were swapped or
 * misread then predicts differently. */
static void perturb(llm_model *m, unsigned salt) {
    int n;
    CHECK(llm_model_num_params(m, &n));
    for (int i = 0; i < n; i++) {
        const char *name;
        int nd;
        int64_t shape[LLM_MAX_DIMS], numel = 1;
        CHECK(llm_model_param_info(m, i, &name, &nd, shape));
        for (int k = 0; k < nd; k++) numel *= shape[k];
        float *w = malloc((size_t)numel * sizeof *w);
        if (!w) exit(1);
        CHECK(llm_model_get_param(m, name, w, (size_t)numel * 4));
        for (int64_t k = 0; k < numel; k++) {
            unsigned h = (unsigned)(k * 2654435761u) ^ (unsigned)(i * 40503u) ^ salt;
            w[k] += ((float)(h % 2001u) - 1000.0f) * 5e-5f;
        }
        CHECK(llm_model_set_param(m, name, w, (size_t)numel * 4));
        free(w);
    }
}

static void save(llm_model *m, const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    CHECK(llm_model_save(m, path));
}

static void out_floats(const float *v, int64_t n) {
    fprintf(expected, " %lld", (long long)n);
    for (int64_t i = 0; i < n; i++) fprintf(expected, " %a", (double)v[i]);
    fputc('\n', expected);
}

static void record_text(llm_model *m, const char *file, const char *text, size_t len, size_t count) {
    float out[64];
    CHECK(llm_model_predict_text(m, text, len, out, count));
    fprintf(expected, "text %s ", file);
    if (!len) fputc('-', expected);
    for (size_t i = 0; i < len; i++) fprintf(expected, "%02x", (unsigned char)text[i]);
    out_floats(out, (int64_t)count);
}

static void record_ids(llm_model *m, const char *file, int64_t B, int64_t T, const int32_t *ids) {
    llm_tensor *x, *y;
    int64_t shape[2] = { B, T }, n;
    CHECK(llm_tensor_from_host(&x, cpu, LLM_DTYPE_I32, 2, shape, ids, (size_t)(B * T) * 4));
    CHECK(llm_model_predict(m, x, &y));
    CHECK(llm_tensor_numel(y, &n));
    float *out = malloc((size_t)n * 4);
    if (!out) exit(1);
    CHECK(llm_tensor_to_host(y, out, (size_t)n * 4));
    fprintf(expected, "ids %s %lld %lld", file, (long long)B, (long long)T);
    for (int64_t i = 0; i < B * T; i++) fprintf(expected, " %d", ids[i]);
    out_floats(out, n);
    free(out);
    llm_tensor_free(x);
    llm_tensor_free(y);
}

static void record_f32(llm_model *m, const char *file, int64_t B, int64_t F, const float *in) {
    llm_tensor *x, *y;
    int64_t shape[2] = { B, F }, n;
    CHECK(llm_tensor_from_host(&x, cpu, LLM_DTYPE_F32, 2, shape, in, (size_t)(B * F) * 4));
    CHECK(llm_model_predict(m, x, &y));
    CHECK(llm_tensor_numel(y, &n));
    float out[256];
    if (n > 256) exit(1);
    CHECK(llm_tensor_to_host(y, out, (size_t)n * 4));
    fprintf(expected, "f32 %s %lld %lld", file, (long long)B, (long long)F);
    for (int64_t i = 0; i < B * F; i++) fprintf(expected, " %a", (double)in[i]);
    out_floats(out, n);
    llm_tensor_free(x);
    llm_tensor_free(y);
}

static void record_decoder(llm_model *m, const char *file, int64_t n, const int32_t *ids) {
    llm_decoder *d;
    int64_t vocab;
    CHECK(llm_decoder_create(&d, m));
    CHECK(llm_decoder_vocab_size(d, &vocab));
    float *logits = malloc((size_t)vocab * 4);
    if (!logits) exit(1);
    CHECK(llm_decoder_feed(d, ids, n - 1, NULL));
    CHECK(llm_decoder_feed(d, ids + n - 1, 1, logits));
    fprintf(expected, "dec %s %lld", file, (long long)n);
    for (int64_t i = 0; i < n; i++) fprintf(expected, " %d", ids[i]);
    out_floats(logits, vocab);
    free(logits);
    llm_decoder_free(d);
}

static llm_vocab *small_vocab(void) {
    llm_vocab_builder *b;
    llm_vocab *v;
    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    vo.max_tokens = 24;
    CHECK(llm_vocab_builder_create(&b, NULL));
    for (int i = 0; i < N_TEXTS; i++) CHECK(llm_vocab_builder_add(b, texts[i], strlen(texts[i])));
    CHECK(llm_vocab_builder_build(b, &vo, &v));
    llm_vocab_builder_free(b);
    return v;
}

static llm_model *new_model(uint64_t seed) {
    llm_model *m;
    CHECK(llm_model_sequential(&m, cpu));
    CHECK(llm_model_set_seed(m, seed));
    return m;
}

static void build_ids(llm_model *m, int64_t T) {
    CHECK(llm_model_build(m, LLM_DTYPE_I32, 1, &T));
}

/* The README's seed model, small: embedding -> LSTM -> dense(sigmoid), with
 * a word pipeline that reads e-mail (so the file carries libllm.vocab,
 * libllm.vectorize and libllm.email) and user metadata. */
static llm_model *seed_lstm(llm_vocab *v, uint64_t seed, int go_backwards) {
    llm_model *m = new_model(seed);
    llm_recurrent_options r;
    llm_recurrent_options_init(&r);
    r.units = 6;
    r.go_backwards = go_backwards;
    CHECK(llm_model_add(m, llm_layer_embedding(24, 8)));
    CHECK(llm_model_add(m, llm_layer_lstm_ex(&r)));
    CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_vectorize_options vec;
    llm_vectorize_options_init(&vec);
    vec.seq_len = 10;
    llm_email_options em;
    llm_email_options_init(&em);
    em.keep_headers = "From";
    CHECK(llm_model_set_text_pipeline(m, v, &vec, &em));
    build_ids(m, 10);
    CHECK(llm_model_set_metadata(m, "class_names", "ham,spam"));
    perturb(m, (unsigned)seed);
    return m;
}

static void text_checks(llm_model *m, const char *file, size_t count) {
    for (int i = 0; i < N_TEXTS; i++) record_text(m, file, texts[i], strlen(texts[i]), count);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]); return 2; }
    dir = argv[1];
    char path[512];
    snprintf(path, sizeof path, "%s/expected.txt", dir);
    expected = fopen(path, "w");
    if (!expected) { perror(path); return 1; }
    fprintf(expected, "# written by tools/make_v12_fixtures.c with libllm %s (file format 1); see that file\n",
            llm_version_string());
    CHECK(llm_backend_create(&cpu, LLM_BACKEND_CPU, NULL));
    llm_vocab *v = small_vocab();
    static const int32_t ids10[2 * 10] = { 0, 0, 0, 5, 9, 2, 17, 3, 1, 4,  7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

    /* 1. seed LSTM with an e-mail text pipeline */
    llm_model *m = seed_lstm(v, 11, 0);
    save(m, "seed_lstm.safetensors");
    text_checks(m, "seed_lstm.safetensors", 1);
    record_text(m, "seed_lstm.safetensors", email, sizeof email - 1, 1);
    record_ids(m, "seed_lstm.safetensors", 2, 10, ids10);
    llm_model_free(m);

    /* 2. GRU: two stacked (sequences, backwards) into a softmax */
    m = new_model(12);
    llm_recurrent_options r;
    llm_recurrent_options_init(&r);
    r.units = 5;
    r.return_mode = LLM_RETURN_SEQUENCES;
    r.go_backwards = 1;
    CHECK(llm_model_add(m, llm_layer_embedding(24, 6)));
    CHECK(llm_model_add(m, llm_layer_gru_ex(&r)));
    CHECK(llm_model_add(m, llm_layer_gru(4, LLM_RETURN_LAST)));
    CHECK(llm_model_add(m, llm_layer_dense(3, LLM_ACT_SOFTMAX)));
    build_ids(m, 10);
    perturb(m, 12);
    save(m, "gru.safetensors");
    record_ids(m, "gru.safetensors", 2, 10, ids10);
    llm_model_free(m);

    /* 3. bidirectional LSTM (sequences) -> max pool -> dense; and a
     * bidirectional GRU (last) without a masking embedding */
    m = new_model(13);
    llm_embedding_options eo;
    llm_embedding_options_init(&eo);
    eo.vocab = 24;
    eo.dim = 6;
    CHECK(llm_model_add(m, llm_layer_embedding_ex(&eo)));
    llm_recurrent_options_init(&r);
    r.units = 4;
    r.return_mode = LLM_RETURN_SEQUENCES;
    r.unit_forget_bias = 0;
    CHECK(llm_model_add(m, llm_layer_bidirectional(llm_layer_lstm_ex(&r))));
    CHECK(llm_model_add(m, llm_layer_bidirectional(llm_layer_gru(3, LLM_RETURN_LAST))));
    CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    build_ids(m, 10);
    perturb(m, 13);
    save(m, "bidirectional.safetensors");
    record_ids(m, "bidirectional.safetensors", 2, 10, ids10);
    llm_model_free(m);

    /* 4. bag of embeddings: embedding (no mask) -> average pool -> dense(relu)
     * -> dropout -> layernorm -> dense (no bias) -> activation; plus one with
     * max pooling, masking */
    m = new_model(14);
    llm_embedding_options_init(&eo);
    eo.vocab = 24;
    eo.dim = 8;
    eo.mask_zero = 0;
    eo.init_scale = 0.2f;
    CHECK(llm_model_add(m, llm_layer_embedding_ex(&eo)));
    CHECK(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    CHECK(llm_model_add(m, llm_layer_dense(8, LLM_ACT_RELU)));
    CHECK(llm_model_add(m, llm_layer_dropout(0.25f)));
    CHECK(llm_model_add(m, llm_layer_layernorm(1e-3f)));
    llm_dense_options dopt;
    llm_dense_options_init(&dopt);
    dopt.units = 2;
    dopt.use_bias = 0;
    CHECK(llm_model_add(m, llm_layer_dense_ex(&dopt)));
    CHECK(llm_model_add(m, llm_layer_activation(LLM_ACT_TANH)));
    build_ids(m, 10);
    perturb(m, 14);
    save(m, "bag_average.safetensors");
    record_ids(m, "bag_average.safetensors", 2, 10, ids10);
    llm_model_free(m);

    m = new_model(15);
    CHECK(llm_model_add(m, llm_layer_embedding(24, 8)));
    CHECK(llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)));
    CHECK(llm_model_add(m, llm_layer_dense(4, LLM_ACT_GELU)));
    CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    build_ids(m, 10);
    perturb(m, 15);
    save(m, "bag_max.safetensors");
    record_ids(m, "bag_max.safetensors", 2, 10, ids10);
    llm_model_free(m);

    /* 5. a float-input MLP */
    m = new_model(16);
    CHECK(llm_model_add(m, llm_layer_dense(6, LLM_ACT_TANH)));
    CHECK(llm_model_add(m, llm_layer_dense(3, LLM_ACT_NONE)));
    CHECK(llm_model_add(m, llm_layer_activation(LLM_ACT_SOFTMAX)));
    int64_t F = 4;
    CHECK(llm_model_build(m, LLM_DTYPE_F32, 1, &F));
    perturb(m, 16);
    save(m, "mlp.safetensors");
    static const float fin[2 * 4] = { 0.5f, -1.25f, 2.0f, 0.0f, -0.75f, 0.125f, 1.5f, -2.5f };
    record_f32(m, "mlp.safetensors", 2, 4, fin);
    llm_model_free(m);

    /* 6. Transformer classifier with a BPE pipeline: sinusoidal positions,
     * a standalone attention layer, an encoder block, layernorm, pooling */
    llm_bpe *bpe;
    llm_bpe_train_options bo;
    llm_bpe_train_options_init(&bo);
    bo.vocab_size = 270;
    char corpus[1024] = "";
    for (int i = 0; i < N_TEXTS; i++) { strcat(corpus, texts[i]); strcat(corpus, "\n"); }
    CHECK(llm_bpe_train(&bpe, corpus, strlen(corpus), &bo));
    int32_t bpe_vocab;
    CHECK(llm_bpe_vocab_size(bpe, &bpe_vocab));
    m = new_model(17);
    llm_transformer_embedding_options te;
    llm_transformer_embedding_options_init(&te);
    te.vocab = bpe_vocab;
    te.context = 16;
    te.dim = 8;
    te.positional = LLM_POSITIONAL_SINUSOIDAL;
    CHECK(llm_model_add(m, llm_layer_transformer_embedding_ex(&te)));
    CHECK(llm_model_add(m, llm_layer_attention(2, 0)));
    llm_transformer_block_options tb;
    llm_transformer_block_options_init(&tb);
    tb.heads = 2;
    tb.causal = 0;
    tb.mlp_hidden = 12;
    tb.dropout = 0.1f;
    tb.eps = 1e-4f;
    CHECK(llm_model_add(m, llm_layer_transformer_block_ex(&tb)));
    CHECK(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    CHECK(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    CHECK(llm_model_set_tokenizer(m, bpe));
    llm_vectorize_options vec;
    llm_vectorize_options_init(&vec);
    vec.seq_len = 12;
    vec.padding = LLM_SEQ_POST;
    CHECK(llm_model_set_text_pipeline(m, NULL, &vec, NULL));
    build_ids(m, 12);
    perturb(m, 17);
    save(m, "transformer_classifier.safetensors");
    text_checks(m, "transformer_classifier.safetensors", 1);
    llm_model_free(m);

    llm_bpe_free(bpe);

    /* 7. GPT language model: learned positions with a pad id, causal blocks,
     * layernorm, tied lm_head */
    m = new_model(18);
    llm_transformer_embedding_options_init(&te);
    te.vocab = 32;
    te.context = 8;
    te.dim = 8;
    te.pad_id = LLM_BPE_EOT;
    CHECK(llm_model_add(m, llm_layer_transformer_embedding_ex(&te)));
    llm_transformer_block_options_init(&tb);
    tb.heads = 2;
    CHECK(llm_model_add(m, llm_layer_transformer_block_ex(&tb)));
    CHECK(llm_model_add(m, llm_layer_transformer_block(4, 1)));
    CHECK(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    CHECK(llm_model_add(m, llm_layer_lm_head(32, 1)));
    build_ids(m, 8);
    perturb(m, 18);
    save(m, "gpt_lm.safetensors");
    static const int32_t lm_ids[2 * 8] = { 30, 10, 11, 31, 26, 7, 1, 1,  2, 3, 4, 5, 6, 7, 8, 9 };
    record_ids(m, "gpt_lm.safetensors", 2, 8, lm_ids);
    record_decoder(m, "gpt_lm.safetensors", 6, lm_ids);
    llm_model_free(m);

    /* 8. an untied lm_head without positions */
    m = new_model(19);
    llm_transformer_embedding_options_init(&te);
    te.vocab = 30;
    te.context = 6;
    te.dim = 4;
    te.positional = LLM_POSITIONAL_NONE;
    te.mask_zero = 0;
    CHECK(llm_model_add(m, llm_layer_transformer_embedding_ex(&te)));
    CHECK(llm_model_add(m, llm_layer_transformer_block(1, 1)));
    CHECK(llm_model_add(m, llm_layer_lm_head(30, 0)));
    build_ids(m, 6);
    perturb(m, 19);
    save(m, "lm_untied.safetensors");
    static const int32_t lm2[2 * 6] = { 0, 1, 2, 29, 28, 27,  5, 5, 5, 6, 6, 6 };
    record_ids(m, "lm_untied.safetensors", 2, 6, lm2);
    record_decoder(m, "lm_untied.safetensors", 5, lm2);
    llm_model_free(m);

    /* 9. a GPT-2 built by llm_model_gpt2 */
    llm_gpt2_options go;
    llm_gpt2_options_init(&go);
    go.n_layer = 1;
    go.n_head = 2;
    go.n_embd = 8;
    go.n_positions = 8;
    go.vocab_size = 20;
    go.seed = 20;
    CHECK(llm_model_gpt2(&m, cpu, &go));
    perturb(m, 20);
    save(m, "gpt2.safetensors");
    static const int32_t g_ids[1 * 8] = { 0, 19, 3, 4, 4, 7, 11, 2 };
    record_ids(m, "gpt2.safetensors", 1, 8, g_ids);
    record_decoder(m, "gpt2.safetensors", 7, g_ids);
    llm_model_free(m);

    /* 10. an ensemble of two seed models (one reading backwards) */
    llm_model *ens;
    CHECK(llm_model_ensemble(&ens, cpu));
    CHECK(llm_model_ensemble_add(ens, seed_lstm(v, 21, 0)));
    CHECK(llm_model_ensemble_add(ens, seed_lstm(v, 22, 1)));
    CHECK(llm_model_set_metadata(ens, "class_names", "ham,spam"));
    save(ens, "ensemble.safetensors");
    text_checks(ens, "ensemble.safetensors", 1);
    llm_model_free(ens);

    llm_vocab_free(v);
    llm_backend_free(cpu);
    if (fclose(expected) != 0) { perror(path); return 1; }
    return 0;
}
