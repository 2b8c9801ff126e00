/* Finite-difference gradient checks through the public API (the check
 * itself is tests/gradcheck.c's tu_gradcheck).
 *
 * Every layer, loss and several compositions. A layer's input gradient is checked through the weights of the
 * layer in front of it, so every layer under test has a Dense or an Embedding
 * before it. Dropout is checked at rate 0 only (its mask is not repeatable
 * between calls); its training behaviour has a test of its own. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"
#include "cpu/cpu.h"

static llm_backend *be;
static void setup(void) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 1;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
}
static void teardown(void) { llm_backend_free(be); be = NULL; }

/* ---- building blocks ---- */

static llm_model *new_model(void) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    return m;
}

static void add(llm_model *m, llm_layer *layer) {
    llm_status st = llm_layer_status(layer);
    const char *kind = llm_layer_kind(layer);
    ck_assert_msg(st == LLM_OK, "layer %s carries an error: %s", kind, llm_layer_error(layer));
    ck_assert_ok(llm_model_add(m, layer));
}

static llm_layer *rnn(const char *kind, int64_t units, llm_return_mode mode, int go_backwards) {
    llm_recurrent_options o;
    llm_recurrent_options_init(&o);
    o.units = units;
    o.return_mode = mode;
    o.go_backwards = go_backwards;
    return strcmp(kind, "lstm") == 0 ? llm_layer_lstm_ex(&o) : llm_layer_gru_ex(&o);
}

static llm_layer *embedding(int64_t vocab, int64_t dim, int mask_zero) {
    llm_embedding_options o;
    llm_embedding_options_init(&o);
    o.vocab = vocab;
    o.dim = dim;
    o.mask_zero = mask_zero;
    return llm_layer_embedding_ex(&o);
}

static void build_f32(llm_model *m, int ndim, const int64_t *sample_shape) {
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, ndim, sample_shape));
}

static void build_ids(llm_model *m, int64_t T) {
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, &T));
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* Float tensor [shape], uniform in [lo, hi), or 0/1 when binary. */
static llm_tensor *float_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi,
                                int binary) {
    int64_t n = numel_of(ndim, shape);
    float *v = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(v);
    tu_fill(v, n, seed, lo, hi);
    if (binary)
        for (int64_t i = 0; i < n; i++) v[i] = v[i] < 0.5f * (lo + hi) ? 0.0f : 1.0f;
    llm_tensor *t = NULL;
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, ndim, shape, v,
                                      (size_t)n * sizeof(float)));
    free(v);
    return t;
}

/* Token ids [B, T] with real ids in [1, vocab) and lengths[b] real steps,
 * padding (0) after them (post) or before them (pre). lengths NULL: no padding. */
static llm_tensor *ids_tensor(int64_t B, int64_t T, int64_t vocab, const int *lengths, int pre,
                              uint64_t seed) {
    int32_t *ids = calloc((size_t)(B * T), sizeof(int32_t));
    ck_assert_ptr_nonnull(ids);
    uint64_t s = seed;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = lengths ? lengths[b] : T, start = pre ? T - n : 0;
        for (int64_t t = 0; t < n; t++)
            ids[b * T + start + t] = 1 + (int32_t)(tu_next(&s) % (uint64_t)(vocab - 1));
    }
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, ids,
                                      (size_t)(B * T) * sizeof(int32_t)));
    free(ids);
    return x;
}

/* Ids [B, T] in [0, vocab) with zeros anywhere (for an Embedding without mask). */
static llm_tensor *any_ids_tensor(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
    int32_t *ids = malloc((size_t)(B * T) * sizeof(int32_t));
    ck_assert_ptr_nonnull(ids);
    uint64_t s = seed;
    for (int64_t i = 0; i < B * T; i++) ids[i] = (int32_t)(tu_next(&s) % (uint64_t)vocab);
    ids[0] = 0;
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, ids,
                                      (size_t)(B * T) * sizeof(int32_t)));
    free(ids);
    return x;
}

static llm_tensor *labels_tensor(int64_t B, int32_t classes, uint64_t seed) {
    int32_t *l = malloc((size_t)B * sizeof(int32_t));
    ck_assert_ptr_nonnull(l);
    uint64_t s = seed;
    for (int64_t b = 0; b < B; b++) l[b] = (int32_t)(tu_next(&s) % (uint64_t)classes);
    llm_tensor *y = NULL;
    ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_I32, 1, &B, l,
                                      (size_t)B * sizeof(int32_t)));
    free(l);
    return y;
}

static void compile(llm_model *m, llm_loss loss) {
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_sgd(&opt, 0.01f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, loss, opt, LLM_METRIC_NONE));
    llm_optimizer_free(opt);
}

static void gradcheck_strided(llm_model *m, llm_loss loss, const llm_tensor *x, const llm_tensor *y,
                              const char *label, int64_t stride) {
    tu_gradcheck(m, loss, x, y, label, stride);
}

static void gradcheck(llm_model *m, llm_loss loss, const llm_tensor *x, const llm_tensor *y,
                      const char *label) {
    gradcheck_strided(m, loss, x, y, label, 1);
}

/* Reads a gradient into a new buffer, failing clearly when the name is missing. */
static float *grad_of(const llm_model *m, const char *name, int64_t n) {
    int np = 0;
    ck_assert_ok(llm_model_num_params(m, &np));
    for (int i = 0; i < np; i++) {
        const char *pn = NULL;
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS];
        ck_assert_ok(llm_model_param_info(m, i, &pn, &nd, shape));
        if (strcmp(pn, name) != 0) continue;
        ck_assert_int_eq(numel_of(nd, shape), n);
        float *g = malloc((size_t)n * sizeof(float));
        ck_assert_ptr_nonnull(g);
        ck_assert_ok(llm_model_get_grad(m, name, g, (size_t)n * sizeof(float)));
        return g;
    }
    ck_abort_msg("model has no parameter %s", name);
    return NULL;
}

static void free_all(llm_model *m, llm_tensor *x, llm_tensor *y) {
    llm_model_free(m);
    llm_tensor_free(x);
    llm_tensor_free(y);
}

enum { B = 3, T = 4, F = 3 };
static const int LENGTHS[B] = { 4, 2, 1 };
static const char *ACT_NAME[] = { "none", "relu", "sigmoid", "tanh", "gelu", "softmax" };

/* ---- Dense and activations ---- */

START_TEST(dense_each_activation) {
    for (int act = LLM_ACT_NONE; act <= LLM_ACT_SOFTMAX; act++) {
        char label[64];
        snprintf(label, sizeof label, "dense(%s)", ACT_NAME[act]);
        llm_model *m = new_model();
        add(m, llm_layer_dense(4, LLM_ACT_TANH));
        add(m, llm_layer_dense(3, (llm_activation)act));
        build_f32(m, 1, (int64_t[]){F});
        llm_tensor *x = float_tensor(2, (int64_t[]){B, F}, 11, -1, 1, 0);
        llm_tensor *y = float_tensor(2, (int64_t[]){B, 3}, 12, -1, 1, 0);
        gradcheck(m, LLM_LOSS_MSE, x, y, label);
        free_all(m, x, y);
    }
}
END_TEST

START_TEST(dense_without_bias_on_sequences) {
    llm_dense_options o;
    llm_dense_options_init(&o);
    o.units = 2;
    o.activation = LLM_ACT_GELU;
    o.use_bias = 0;
    llm_model *m = new_model();
    add(m, llm_layer_dense(3, LLM_ACT_NONE));
    add(m, llm_layer_dense_ex(&o));
    build_f32(m, 2, (int64_t[]){T, F});
    int np = 0;
    ck_assert_ok(llm_model_num_params(m, &np));
    ck_assert_int_eq(np, 3); /* dense_0 weight + bias, dense_1 weight */
    llm_tensor *x = float_tensor(3, (int64_t[]){B, T, F}, 21, -1, 1, 0);
    llm_tensor *y = float_tensor(3, (int64_t[]){B, T, 2}, 22, -1, 1, 0);
    gradcheck(m, LLM_LOSS_MSE, x, y, "dense(no bias) on [T, F]");
    free_all(m, x, y);
}
END_TEST

START_TEST(activation_layers) {
    for (int act = LLM_ACT_NONE; act <= LLM_ACT_SOFTMAX; act++) {
        char label[64];
        snprintf(label, sizeof label, "activation(%s)", ACT_NAME[act]);
        llm_model *m = new_model();
        add(m, llm_layer_dense(4, LLM_ACT_NONE));
        add(m, llm_layer_activation((llm_activation)act));
        add(m, llm_layer_dense(2, LLM_ACT_NONE));
        build_f32(m, 1, (int64_t[]){F});
        llm_tensor *x = float_tensor(2, (int64_t[]){B, F}, 31, -1, 1, 0);
        llm_tensor *y = float_tensor(2, (int64_t[]){B, 2}, 32, -1, 1, 0);
        gradcheck(m, LLM_LOSS_MSE, x, y, label);
        free_all(m, x, y);
    }
}
END_TEST

/* ---- LayerNorm, Dropout ---- */

START_TEST(layernorm) {
    /* Dense(relu) -> LayerNorm -> Dense + MSE on float features */
    llm_model *m = new_model();
    add(m, llm_layer_dense(5, LLM_ACT_RELU));
    add(m, llm_layer_layernorm(1e-5f));
    add(m, llm_layer_dense(2, LLM_ACT_NONE));
    build_f32(m, 1, (int64_t[]){F});
    llm_tensor *x = float_tensor(2, (int64_t[]){B, F}, 41, -1, 1, 0);
    llm_tensor *y = float_tensor(2, (int64_t[]){B, 2}, 42, -1, 1, 0);
    gradcheck(m, LLM_LOSS_MSE, x, y, "dense(relu) -> layernorm -> dense, mse");
    free_all(m, x, y);

    /* over the last dimension of a sequence, then pooled */
    m = new_model();
    add(m, llm_layer_dense(4, LLM_ACT_NONE));
    add(m, llm_layer_layernorm(1e-3f));
    add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
    build_f32(m, 2, (int64_t[]){T, F});
    x = float_tensor(3, (int64_t[]){B, T, F}, 43, -1, 1, 0);
    y = float_tensor(2, (int64_t[]){B, 1}, 44, 0, 1, 1);
    gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, x, y, "dense -> layernorm on [T, F] -> pool");
    free_all(m, x, y);
}
END_TEST

START_TEST(dropout_rate_zero) {
    llm_model *m = new_model();
    add(m, llm_layer_dense(4, LLM_ACT_TANH));
    add(m, llm_layer_dropout(0.0f));
    add(m, llm_layer_dense(2, LLM_ACT_NONE));
    build_f32(m, 1, (int64_t[]){F});
    llm_tensor *x = float_tensor(2, (int64_t[]){B, F}, 51, -1, 1, 0);
    llm_tensor *y = float_tensor(2, (int64_t[]){B, 2}, 52, -1, 1, 0);
    gradcheck(m, LLM_LOSS_MSE, x, y, "dense -> dropout(0) -> dense");
    free_all(m, x, y);
}
END_TEST

/* Dense with W = I, b = 0 on x = 1, then Dropout(rate), MSE against 0:
 * outputs are m / (1 - rate) with m the keep mask, so
 *   loss = kept fraction / (1 - rate)^2,
 *   dL/db_j = dL/dW_jk = (2 / n) sum_rows m_j / (1 - rate)^2  (sum_j = 2 loss).
 * In inference the layer is the identity. */
START_TEST(dropout_training_and_inference) {
    enum { N = 2500, D = 4 };
    const float rate = 0.4f;
    llm_model *m = new_model();
    add(m, llm_layer_dense(D, LLM_ACT_NONE));
    add(m, llm_layer_dropout(rate));
    build_f32(m, 1, (int64_t[]){D});
    compile(m, LLM_LOSS_MSE);
    float w[D * D] = {0}, b[D] = {0};
    for (int i = 0; i < D; i++) w[i * D + i] = 1.0f;
    ck_assert_ok(llm_model_set_param(m, "dense_0.weight", w, sizeof w));
    ck_assert_ok(llm_model_set_param(m, "dense_0.bias", b, sizeof b));

    float *ones = malloc(sizeof(float) * N * D);
    ck_assert_ptr_nonnull(ones);
    for (int i = 0; i < N * D; i++) ones[i] = 1.0f;
    llm_tensor *x = NULL, *y = NULL, *out = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 2, (int64_t[]){N, D}, ones,
                                      sizeof(float) * N * D));
    ck_assert_ok(llm_tensor_zeros(&y, be, LLM_DTYPE_F32, 2, (int64_t[]){N, D}));

    /* inference: identity */
    float *pred = malloc(sizeof(float) * N * D);
    ck_assert_ptr_nonnull(pred);
    ck_assert_ok(llm_model_predict(m, x, &out));
    ck_assert_ok(llm_tensor_to_host(out, pred, sizeof(float) * N * D));
    for (int i = 0; i < N * D; i++)
        ck_assert_msg(pred[i] == 1.0f, "dropout changed an input in inference: %g",
                      (double)pred[i]);
    llm_tensor_free(out);

    /* training: about `rate` of the elements dropped, the rest scaled */
    float loss = 0.0f;
    ck_assert_ok(llm_model_compute_gradients(m, x, y, &loss));
    double keep = (double)loss * (1.0 - rate) * (1.0 - rate);
    /* n = 10000 elements: the kept fraction's standard deviation is ~0.005 */
    ck_assert_msg(fabs(keep - (1.0 - rate)) < 0.03, "dropout(%.2f) kept %.4f of the elements",
                  (double)rate, keep);
    float *gb = grad_of(m, "dense_0.bias", D), *gw = grad_of(m, "dense_0.weight", D * D);
    double sum = 0.0;
    for (int j = 0; j < D; j++) {
        sum += gb[j];
        for (int k = 0; k < D; k++)
            ck_assert_msg(fabs((double)gw[j * D + k] - gb[j]) <= 1e-6 + 1e-5 * fabs(gb[j]),
                          "dropout backward: dW[%d][%d] %g != db[%d] %g", j, k,
                          (double)gw[j * D + k], j, (double)gb[j]);
    }
    ck_assert_msg(fabs(sum - 2.0 * loss) <= 1e-4 * fabs(2.0 * loss),
                  "dropout backward does not use the forward's mask: sum db %.7g, 2 loss %.7g",
                  sum, 2.0 * loss);
    free(gb);
    free(gw);
    free(pred);
    free(ones);
    free_all(m, x, y);
}
END_TEST

/* ---- Embedding and pooling ---- */

START_TEST(embedding_layer) {
    /* no mask: id 0 is an ordinary token and gets its gradient */
    llm_model *m = new_model();
    add(m, embedding(6, 3, 0));
    add(m, llm_layer_dense(2, LLM_ACT_TANH));
    build_ids(m, T);
    llm_tensor *x = any_ids_tensor(B, T, 6, 61);
    llm_tensor *y = float_tensor(3, (int64_t[]){B, T, 2}, 62, -1, 1, 0);
    gradcheck(m, LLM_LOSS_MSE, x, y, "embedding(no mask) -> dense on [T, E]");
    free_all(m, x, y);

    /* mask_zero with no padding present */
    m = new_model();
    add(m, llm_layer_embedding(5, 2));
    add(m, llm_layer_dense(3, LLM_ACT_NONE));
    build_ids(m, T);
    x = ids_tensor(B, T, 5, NULL, 0, 63);
    y = float_tensor(3, (int64_t[]){B, T, 3}, 64, -1, 1, 0);
    gradcheck(m, LLM_LOSS_MSE, x, y, "embedding(mask, unpadded) -> dense");
    free_all(m, x, y);

    /* mask_zero: the padding row gets no gradient, even where a Dense reads
       the padded steps (layer.h) */
    m = new_model();
    add(m, llm_layer_embedding(5, 2));
    add(m, llm_layer_dense(3, LLM_ACT_NONE));
    build_ids(m, T);
    compile(m, LLM_LOSS_MSE);
    float w[5 * 2];
    tu_fill(w, 10, 65, -0.5f, 0.5f);
    ck_assert_ok(llm_model_set_param(m, "embedding_0.weight", w, sizeof w));
    x = ids_tensor(B, T, 5, LENGTHS, 0, 66);
    y = float_tensor(3, (int64_t[]){B, T, 3}, 67, -1, 1, 0);
    float loss = 0.0f;
    ck_assert_ok(llm_model_compute_gradients(m, x, y, &loss));
    float *g = grad_of(m, "embedding_0.weight", 10);
    ck_assert_msg(g[0] == 0.0f && g[1] == 0.0f, "padding row 0 got gradient (%g, %g)",
                  (double)g[0], (double)g[1]);
    int nonzero = 0;
    for (int i = 2; i < 10; i++) nonzero += g[i] != 0.0f;
    ck_assert_msg(nonzero > 0, "no embedding row got a gradient");
    free(g);
    free_all(m, x, y);
}
END_TEST

START_TEST(global_pooling) {
    for (int mode = LLM_POOL_AVERAGE; mode <= LLM_POOL_MAX; mode++) {
        const char *mn = mode == LLM_POOL_AVERAGE ? "avg" : "max";
        char label[96];
        /* float features */
        llm_model *m = new_model();
        add(m, llm_layer_dense(3, LLM_ACT_TANH));
        add(m, llm_layer_global_pool((llm_pool_mode)mode));
        add(m, llm_layer_dense(2, LLM_ACT_NONE));
        build_f32(m, 2, (int64_t[]){T, 2});
        llm_tensor *x = float_tensor(3, (int64_t[]){B, T, 2}, 72, -1, 1, 0);
        llm_tensor *y = float_tensor(2, (int64_t[]){B, 2}, 73, -1, 1, 0);
        snprintf(label, sizeof label, "dense -> pool(%s) -> dense", mn);
        gradcheck(m, LLM_LOSS_MSE, x, y, label);
        free_all(m, x, y);
        /* masked by an Embedding, both padding sides, and a row of padding only */
        for (int pre = 0; pre <= 1; pre++) {
            static const int lens[B] = { 4, 2, 0 };
            m = new_model();
            add(m, llm_layer_embedding(7, 3));
            add(m, llm_layer_global_pool((llm_pool_mode)mode));
            add(m, llm_layer_dense(1, LLM_ACT_NONE));
            build_ids(m, T);
            x = ids_tensor(B, T, 7, lens, pre, 74 + (uint64_t)pre);
            y = float_tensor(2, (int64_t[]){B, 1}, 76, 0, 1, 1);
            snprintf(label, sizeof label, "embedding(mask, %s-padded) -> pool(%s) -> dense",
                     pre ? "pre" : "post", mn);
            gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, x, y, label);
            float *g = grad_of(m, "embedding_0.weight", 7 * 3);
            for (int i = 0; i < 3; i++)
                ck_assert_msg(g[i] == 0.0f, "%s: padding row got gradient %g", label, (double)g[i]);
            free(g);
            free_all(m, x, y);
        }
    }
}
END_TEST

/* ---- recurrent layers ---- */

static const char *KINDS[] = { "lstm", "gru" };

START_TEST(recurrent_float_features) {
    for (int k = 0; k < 2; k++)
        for (int mode = LLM_RETURN_LAST; mode <= LLM_RETURN_SEQUENCES; mode++)
            for (int gb = 0; gb <= 1; gb++) {
                char label[96];
                snprintf(label, sizeof label, "dense -> %s(%s%s)", KINDS[k],
                         mode == LLM_RETURN_LAST ? "last" : "sequences",
                         gb ? ", go_backwards" : "");
                llm_model *m = new_model();
                add(m, llm_layer_dense(3, LLM_ACT_TANH));
                add(m, rnn(KINDS[k], 3, (llm_return_mode)mode, gb));
                llm_tensor *x = float_tensor(3, (int64_t[]){B, T, 2}, 81, -1, 1, 0), *y;
                if (mode == LLM_RETURN_LAST) {
                    add(m, llm_layer_dense(1, LLM_ACT_NONE));
                    y = float_tensor(2, (int64_t[]){B, 1}, 82, 0, 1, 1);
                } else {
                    y = float_tensor(3, (int64_t[]){B, T, 3}, 83, -1, 1, 0);
                }
                build_f32(m, 2, (int64_t[]){T, 2});
                gradcheck(m, mode == LLM_RETURN_LAST ? LLM_LOSS_BINARY_CROSSENTROPY_LOGITS
                                                     : LLM_LOSS_MSE, x, y, label);
                free_all(m, x, y);
            }
}
END_TEST

/* Embedding(mask) -> LSTM/GRU(last) -> Dense(sigmoid) + BCE: the seed model,
 * with post- and pre-padded ids, forwards and backwards. */
START_TEST(recurrent_masked_last) {
    for (int k = 0; k < 2; k++)
        for (int pre = 0; pre <= 1; pre++)
            for (int gb = 0; gb <= 1; gb++) {
                char label[128];
                snprintf(label, sizeof label, "embedding(mask, %s-padded) -> %s(last%s) -> "
                         "dense(sigmoid), bce", pre ? "pre" : "post", KINDS[k],
                         gb ? ", go_backwards" : "");
                llm_model *m = new_model();
                add(m, llm_layer_embedding(7, 3));
                add(m, rnn(KINDS[k], 3, LLM_RETURN_LAST, gb));
                add(m, llm_layer_dense(1, LLM_ACT_SIGMOID));
                build_ids(m, T);
                llm_tensor *x = ids_tensor(B, T, 7, LENGTHS, pre, 91 + (uint64_t)pre);
                llm_tensor *y = float_tensor(2, (int64_t[]){B, 1}, 93, 0, 1, 1);
                gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY, x, y, label);
                float *g = grad_of(m, "embedding_0.weight", 7 * 3);
                for (int i = 0; i < 3; i++)
                    ck_assert_msg(g[i] == 0.0f, "%s: padding row got gradient %g", label,
                                  (double)g[i]);
                free(g);
                free_all(m, x, y);
            }
}
END_TEST

START_TEST(recurrent_masked_sequences) {
    /* Embedding -> GRU(seq) -> GlobalPool(avg) -> Dense(softmax) + SCCE */
    for (int k = 0; k < 2; k++)
        for (int pre = 0; pre <= 1; pre++) {
            char label[128];
            snprintf(label, sizeof label, "embedding(mask, %s-padded) -> %s(seq) -> pool(avg) -> "
                     "dense(softmax), scce", pre ? "pre" : "post", KINDS[1 - k]);
            llm_model *m = new_model();
            add(m, llm_layer_embedding(7, 3));
            add(m, rnn(KINDS[1 - k], 3, LLM_RETURN_SEQUENCES, 0));
            add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
            add(m, llm_layer_dense(3, LLM_ACT_SOFTMAX));
            build_ids(m, T);
            llm_tensor *x = ids_tensor(B, T, 7, LENGTHS, pre, 101 + (uint64_t)pre);
            llm_tensor *y = labels_tensor(B, 3, 103);
            gradcheck(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, x, y, label);
            free_all(m, x, y);
        }
    /* the sequence itself (padded steps repeat the last real state), backwards too */
    for (int k = 0; k < 2; k++)
        for (int gb = 0; gb <= 1; gb++) {
            char label[128];
            snprintf(label, sizeof label, "embedding(mask, post-padded) -> %s(seq%s), mse",
                     KINDS[k], gb ? ", go_backwards" : "");
            llm_model *m = new_model();
            add(m, llm_layer_embedding(7, 2));
            add(m, rnn(KINDS[k], 2, LLM_RETURN_SEQUENCES, gb));
            build_ids(m, T);
            llm_tensor *x = ids_tensor(B, T, 7, LENGTHS, 0, 105);
            llm_tensor *y = float_tensor(3, (int64_t[]){B, T, 2}, 106, -1, 1, 0);
            gradcheck(m, LLM_LOSS_MSE, x, y, label);
            free_all(m, x, y);
        }
    /* stacked: LSTM(seq) -> GRU(last), the mask passed through the first; one
       row is padding only */
    static const int lens[B] = { 3, 0, 2 };
    for (int pre = 0; pre <= 1; pre++) {
        char label[128];
        snprintf(label, sizeof label, "embedding(mask, %s-padded) -> lstm(seq) -> gru(last) -> "
                 "dense", pre ? "pre" : "post");
        llm_model *m = new_model();
        add(m, llm_layer_embedding(6, 2));
        add(m, rnn("lstm", 3, LLM_RETURN_SEQUENCES, 0));
        add(m, rnn("gru", 2, LLM_RETURN_LAST, 0));
        add(m, llm_layer_dense(1, LLM_ACT_NONE));
        build_ids(m, T);
        llm_tensor *x = ids_tensor(B, T, 6, lens, pre, 107);
        llm_tensor *y = float_tensor(2, (int64_t[]){B, 1}, 108, 0, 1, 1);
        gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, x, y, label);
        free_all(m, x, y);
    }
}
END_TEST

/* Embedding(V, E) -> kind(H, last) -> Dense(1) + BCE_LOGITS on rows x len
 * ids (lens: each row's real ids, padded before them when pre), every
 * stride-th element */
static void embedding_rnn_dense(const char *label, const char *kind, int64_t V, int64_t E, int64_t H, int back,
                                int64_t rows, int64_t len, const int *lens, int pre, uint64_t seed, int stride) {
    llm_model *m = new_model();
    add(m, llm_layer_embedding(V, E));
    add(m, rnn(kind, H, LLM_RETURN_LAST, back));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
    build_ids(m, len);
    llm_tensor *x = ids_tensor(rows, len, V, lens, pre, seed);
    llm_tensor *y = float_tensor(2, (int64_t[]){rows, 1}, seed + 1, 0, 1, 1);
    gradcheck_strided(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, x, y, label, stride);
    free_all(m, x, y);
}

/* Sizes where the matrix products are real GEMMs, every 7th element. */
START_TEST(recurrent_larger) {
    enum { BL = 5, TL = 7, V = 40, EL = 16, HL = 24 };
    static const int lens[BL] = { 7, 5, 7, 2, 1 };
    for (int k = 0; k < 2; k++) {
        char label[96];
        snprintf(label, sizeof label, "larger: embedding(%d, %d) -> %s(%d, last) -> dense",
                 V, EL, KINDS[k], HL);
        embedding_rnn_dense(label, KINDS[k], V, EL, HL, 0, BL, TL, lens, k, 131, 7);
    }
}
END_TEST

/* H = 64: the CPU's own LSTM backward (H a multiple of 32, or 64 with
 * AVX-512), which also sums the bias gradient on the way; every 11th
 * element, masked rows of several lengths, forwards and reversed; the
 * kernels of each instruction set (_i 0: the widest the CPU has, 1: AVX2,
 * 2: the baseline) */
START_TEST(lstm_fused_backward) {
    enum { BL = 4, TL = 6, V = 30, EL = 8, HL = 64 };
    static const int lens[BL] = { 6, 4, 1, 6 };
    llm__cpu_isa_limit = 2 - _i;
    for (int back = 0; back < 2; back++) {
        char label[128];
        snprintf(label, sizeof label, "embedding(%d, %d) -> lstm(%d, last, backwards %d) -> dense, isa limit %d", V, EL,
                 HL, back, llm__cpu_isa_limit);
        embedding_rnn_dense(label, "lstm", V, EL, HL, back, BL, TL, lens, back, 141, 11);
    }
    llm__cpu_isa_limit = 2;
}
END_TEST

START_TEST(bidirectional_wrapper) {
    /* Embedding -> Bidirectional(LSTM/GRU, seq) -> GlobalPool(max) -> Dense(1) + BCE_LOGITS */
    for (int k = 0; k < 2; k++)
        for (int pre = 0; pre <= 1; pre++) {
            char label[128];
            snprintf(label, sizeof label, "embedding(mask, %s-padded) -> bidirectional(%s, seq) "
                     "-> pool(max) -> dense, bce_logits", pre ? "pre" : "post", KINDS[k]);
            llm_model *m = new_model();
            add(m, llm_layer_embedding(7, 3));
            add(m, llm_layer_bidirectional(rnn(KINDS[k], 2, LLM_RETURN_SEQUENCES, 0)));
            add(m, llm_layer_global_pool(LLM_POOL_MAX));
            add(m, llm_layer_dense(1, LLM_ACT_NONE));
            build_ids(m, T);
            llm_tensor *x = ids_tensor(B, T, 7, LENGTHS, pre, 111 + (uint64_t)pre);
            llm_tensor *y = float_tensor(2, (int64_t[]){B, 1}, 113, 0, 1, 1);
            gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, x, y, label);
            free_all(m, x, y);
        }
    /* Bidirectional(last) on float features -> Dense(3) + SCCE logits, masked last too */
    for (int k = 0; k < 2; k++) {
        char label[128];
        snprintf(label, sizeof label, "dense -> bidirectional(%s, last) -> dense, scce_logits",
                 KINDS[k]);
        llm_model *m = new_model();
        add(m, llm_layer_dense(2, LLM_ACT_NONE));
        add(m, llm_layer_bidirectional(rnn(KINDS[k], 2, LLM_RETURN_LAST, 0)));
        add(m, llm_layer_dense(3, LLM_ACT_NONE));
        build_f32(m, 2, (int64_t[]){T, 2});
        llm_tensor *x = float_tensor(3, (int64_t[]){B, T, 2}, 115, -1, 1, 0);
        llm_tensor *y = labels_tensor(B, 3, 116);
        gradcheck(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, x, y, label);
        free_all(m, x, y);

        snprintf(label, sizeof label, "embedding(mask, post-padded) -> bidirectional(%s, last) "
                 "-> dense(sigmoid), bce", KINDS[k]);
        m = new_model();
        add(m, llm_layer_embedding(7, 2));
        add(m, llm_layer_bidirectional(rnn(KINDS[k], 2, LLM_RETURN_LAST, 0)));
        add(m, llm_layer_dense(1, LLM_ACT_SIGMOID));
        build_ids(m, T);
        x = ids_tensor(B, T, 7, LENGTHS, 0, 117);
        y = float_tensor(2, (int64_t[]){B, 1}, 118, 0, 1, 1);
        gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY, x, y, label);
        free_all(m, x, y);
    }
}
END_TEST

/* ---- losses ---- */

typedef struct loss_case {
    const char *label;
    llm_loss loss;
    llm_activation out_act;  /* of the output Dense */
    int64_t out_units;
    int extra;               /* 1: Activation(out_act) layer after a linear Dense;
                                2: the Dense acts on [T, F] and a GlobalPool(avg)
                                   follows, so the output holds probabilities but
                                   is no sigmoid / softmax layer (the loss cannot
                                   use logits) */
} loss_case;

static const loss_case LOSS_CASES[] = {
    { "bce on dense(sigmoid) [B,1]", LLM_LOSS_BINARY_CROSSENTROPY, LLM_ACT_SIGMOID, 1, 0 },
    { "bce on dense(sigmoid) [B,3]", LLM_LOSS_BINARY_CROSSENTROPY, LLM_ACT_SIGMOID, 3, 0 },
    { "bce on activation(sigmoid)", LLM_LOSS_BINARY_CROSSENTROPY, LLM_ACT_SIGMOID, 2, 1 },
    { "bce on probabilities (sigmoid -> pool(avg))", LLM_LOSS_BINARY_CROSSENTROPY,
      LLM_ACT_SIGMOID, 2, 2 },
    { "bce on probabilities (softmax -> pool(avg))", LLM_LOSS_BINARY_CROSSENTROPY,
      LLM_ACT_SOFTMAX, 2, 2 },
    { "bce_logits [B,1]", LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, LLM_ACT_NONE, 1, 0 },
    { "bce_logits [B,3]", LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, LLM_ACT_NONE, 3, 0 },
    { "scce on dense(softmax)", LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, LLM_ACT_SOFTMAX, 4, 0 },
    { "scce on activation(softmax)", LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, LLM_ACT_SOFTMAX,
      4, 1 },
    { "scce on probabilities (softmax -> pool(avg))", LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
      LLM_ACT_SOFTMAX, 4, 2 },
    { "scce_logits", LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, LLM_ACT_NONE, 4, 0 },
    { "mse [B,3]", LLM_LOSS_MSE, LLM_ACT_NONE, 3, 0 },
    { "mse on dense(sigmoid)", LLM_LOSS_MSE, LLM_ACT_SIGMOID, 2, 0 },
};

static int is_sparse(llm_loss l) {
    return l == LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY ||
           l == LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS;
}

static llm_model *loss_model(const loss_case *c) {
    llm_model *m = new_model();
    add(m, llm_layer_dense(4, LLM_ACT_TANH));
    if (c->extra == 1) {
        add(m, llm_layer_dense(c->out_units, LLM_ACT_NONE));
        add(m, llm_layer_activation(c->out_act));
    } else {
        add(m, llm_layer_dense(c->out_units, c->out_act));
        if (c->extra == 2) add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
    }
    if (c->extra == 2)
        build_f32(m, 2, (int64_t[]){T, F});
    else
        build_f32(m, 1, (int64_t[]){F});
    return m;
}

static llm_tensor *loss_inputs(const loss_case *c, uint64_t seed, float range) {
    if (c->extra == 2) return float_tensor(3, (int64_t[]){B, T, F}, seed, -range, range, 0);
    return float_tensor(2, (int64_t[]){B, F}, seed, -range, range, 0);
}

static llm_tensor *loss_targets(const loss_case *c, uint64_t seed) {
    if (is_sparse(c->loss)) return labels_tensor(B, (int32_t)c->out_units, seed);
    int64_t shape[2] = { B, c->out_units };
    if (c->loss == LLM_LOSS_MSE) return float_tensor(2, shape, seed, -1, 1, 0);
    /* soft targets for one BCE case: the loss must take any t in [0, 1] */
    int soft = c->loss == LLM_LOSS_BINARY_CROSSENTROPY && c->out_units == 1;
    return float_tensor(2, shape, seed, 0, 1, !soft);
}

START_TEST(losses) {
    for (size_t i = 0; i < sizeof LOSS_CASES / sizeof LOSS_CASES[0]; i++) {
        const loss_case *c = &LOSS_CASES[i];
        llm_model *m = loss_model(c);
        llm_tensor *x = loss_inputs(c, 121 + i, 1.5f);
        llm_tensor *y = loss_targets(c, 140 + i);
        gradcheck(m, c->loss, x, y, c->label);
        free_all(m, x, y);
    }
}
END_TEST

/* The loss compute_gradients reports is the loss of what predict returns. */
START_TEST(loss_values_match_predict) {
    for (size_t i = 0; i < sizeof LOSS_CASES / sizeof LOSS_CASES[0]; i++) {
        const loss_case *c = &LOSS_CASES[i];
        llm_model *m = loss_model(c);
        compile(m, c->loss);
        llm_tensor *x = loss_inputs(c, 161 + i, 2.0f);
        llm_tensor *y = loss_targets(c, 180 + i);
        int64_t K = c->out_units;
        float out[B * 4], t[B * 4];
        int32_t lab[B];
        llm_tensor *o = NULL;
        ck_assert_ok(llm_model_predict(m, x, &o));
        ck_assert_ok(llm_tensor_to_host(o, out, sizeof(float) * (size_t)(B * K)));
        llm_tensor_free(o);
        if (is_sparse(c->loss))
            ck_assert_ok(llm_tensor_to_host(y, lab, sizeof lab));
        else
            ck_assert_ok(llm_tensor_to_host(y, t, sizeof(float) * (size_t)(B * K)));
        double want = 0.0;
        for (int b = 0; b < B; b++) {
            const float *z = &out[b * K];
            if (c->loss == LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) {
                want -= log((double)z[lab[b]]);
            } else if (c->loss == LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS) {
                double s = 0.0;
                for (int j = 0; j < K; j++) s += exp((double)z[j]);
                want += log(s) - z[lab[b]];
            }
            for (int j = 0; j < K && !is_sparse(c->loss); j++) {
                double p = z[j], tt = t[b * K + j];
                if (c->loss == LLM_LOSS_BINARY_CROSSENTROPY)
                    want -= (tt * log(p) + (1.0 - tt) * log(1.0 - p)) / (double)K;
                else if (c->loss == LLM_LOSS_BINARY_CROSSENTROPY_LOGITS)
                    want += (log1p(exp(-fabs(p))) + (p > 0 ? p : 0) - p * tt) / (double)K;
                else
                    want += (p - tt) * (p - tt) / (double)K;
            }
        }
        want /= B;
        float got = NAN;
        ck_assert_ok(llm_model_compute_gradients(m, x, y, &got));
        ck_assert_msg(fabs((double)got - want) <= 1e-5 + 1e-5 * fabs(want),
                      "%s: compute_gradients loss %.7g, from predict's output %.7g", c->label,
                      (double)got, want);
        free_all(m, x, y);
    }
}
END_TEST

/* ---- Transformers ---- */

/* Next-token labels [B, T] in [0, vocab). */
static llm_tensor *seq_labels_tensor(int64_t nb, int64_t nt, int32_t vocab, uint64_t seed) {
    int32_t *l = malloc((size_t)(nb * nt) * sizeof(int32_t));
    ck_assert_ptr_nonnull(l);
    uint64_t s = seed;
    for (int64_t i = 0; i < nb * nt; i++) l[i] = (int32_t)(tu_next(&s) % (uint64_t)vocab);
    llm_tensor *y = NULL;
    ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_I32, 2, (int64_t[]){nb, nt}, l,
                                      (size_t)(nb * nt) * sizeof(int32_t)));
    free(l);
    return y;
}

static llm_layer *temb(int64_t vocab, int64_t ctx, int64_t dim, llm_positional pos, int mask_zero) {
    llm_transformer_embedding_options o;
    llm_transformer_embedding_options_init(&o);
    o.vocab = vocab;
    o.context = ctx;
    o.dim = dim;
    o.positional = pos;
    o.mask_zero = mask_zero;
    return llm_layer_transformer_embedding_ex(&o);
}

static llm_layer *block(int64_t heads, int causal, int64_t mlp) {
    llm_transformer_block_options o;
    llm_transformer_block_options_init(&o);
    o.heads = heads;
    o.causal = causal;
    o.mlp_hidden = mlp;
    return llm_layer_transformer_block_ex(&o);
}

START_TEST(attention_layer) {
    /* float features, causal and not, 1 and 2 heads: input gradient through the dense in front */
    for (int causal = 0; causal <= 1; causal++)
        for (int heads = 1; heads <= 2; heads++) {
            char label[96];
            llm_model *m = new_model();
            add(m, llm_layer_dense(4, LLM_ACT_NONE));
            add(m, llm_layer_attention(heads, causal));
            add(m, llm_layer_dense(2, LLM_ACT_NONE));
            build_f32(m, 2, (int64_t[]){T, F});
            llm_tensor *x = float_tensor(3, (int64_t[]){B, T, F}, 81, -1, 1, 0);
            llm_tensor *y = float_tensor(3, (int64_t[]){B, T, 2}, 82, -1, 1, 0);
            snprintf(label, sizeof label, "dense -> attention(%d heads, %s) -> dense", heads,
                     causal ? "causal" : "full");
            gradcheck(m, LLM_LOSS_MSE, x, y, label);
            free_all(m, x, y);
        }
    /* padding masks from the embedding, both sides, and a row with no real token */
    for (int pre = 0; pre <= 1; pre++)
        for (int causal = 0; causal <= 1; causal++) {
            static const int lens[B] = { 4, 2, 0 };
            char label[96];
            llm_model *m = new_model();
            add(m, temb(7, T, 4, LLM_POSITIONAL_LEARNED, 1));
            add(m, llm_layer_attention(2, causal));
            add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
            add(m, llm_layer_dense(1, LLM_ACT_NONE));
            build_ids(m, T);
            llm_tensor *x = ids_tensor(B, T, 7, lens, pre, 83 + (uint64_t)pre);
            llm_tensor *y = float_tensor(2, (int64_t[]){B, 1}, 85, 0, 1, 1);
            snprintf(label, sizeof label, "transformer_embedding(%s-padded) -> attention(%s) -> pool",
                     pre ? "pre" : "post", causal ? "causal" : "full");
            gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS, x, y, label);
            float *g = grad_of(m, "transformer_embedding_0.token", 7 * 4);
            for (int i = 0; i < 4; i++)
                ck_assert_msg(g[i] == 0.0f, "%s: padding row got gradient %g", label, (double)g[i]);
            free(g);
            free_all(m, x, y);
        }
}
END_TEST

START_TEST(transformer_language_model) {
    /* embedding (learned and sinusoidal positions) -> 2 causal blocks ->
       layernorm -> tied and untied heads, on next-token cross-entropy */
    for (int variant = 0; variant < 3; variant++) {
        char label[128];
        llm_positional pos = variant == 1 ? LLM_POSITIONAL_SINUSOIDAL : LLM_POSITIONAL_LEARNED;
        int tie = variant != 2;
        llm_model *m = new_model();
        add(m, temb(6, 5, 4, pos, 0));
        add(m, block(2, 1, 0));
        add(m, block(1, 1, 6));
        add(m, llm_layer_layernorm(1e-5f));
        add(m, llm_layer_lm_head(6, tie));
        build_ids(m, T);
        llm_tensor *x = any_ids_tensor(B, T, 6, 91 + (uint64_t)variant);
        llm_tensor *y = seq_labels_tensor(B, T, 6, 94 + (uint64_t)variant);
        snprintf(label, sizeof label, "GPT: transformer_embedding(%s) -> 2 blocks -> layernorm -> lm_head(%s)",
                 pos == LLM_POSITIONAL_LEARNED ? "learned" : "sinusoidal", tie ? "tied" : "untied");
        gradcheck(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, x, y, label);
        free_all(m, x, y);
    }
}
END_TEST

START_TEST(transformer_encoder_classifier) {
    static const int lens[B] = { 4, 3, 1 };
    for (int pre = 0; pre <= 1; pre++) {
        char label[96];
        llm_model *m = new_model();
        add(m, temb(7, 6, 4, LLM_POSITIONAL_LEARNED, 1));
        add(m, block(2, 0, 0));
        add(m, llm_layer_layernorm(1e-5f));
        add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
        add(m, llm_layer_dense(1, LLM_ACT_SIGMOID));
        build_ids(m, T);
        llm_tensor *x = ids_tensor(B, T, 7, lens, pre, 97 + (uint64_t)pre);
        llm_tensor *y = float_tensor(2, (int64_t[]){B, 1}, 99, 0, 1, 1);
        snprintf(label, sizeof label, "encoder(%s-padded): block(full) -> layernorm -> pool -> sigmoid",
                 pre ? "pre" : "post");
        gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY, x, y, label);
        free_all(m, x, y);
    }
}
END_TEST

Suite *suite_gradcheck(void) {
    Suite *s = suite_create("gradcheck");
    TCase *c = tcase_create("layers");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, dense_each_activation);
    tcase_add_test(c, dense_without_bias_on_sequences);
    tcase_add_test(c, activation_layers);
    tcase_add_test(c, layernorm);
    tcase_add_test(c, dropout_rate_zero);
    tcase_add_test(c, dropout_training_and_inference);
    tcase_add_test(c, embedding_layer);
    tcase_add_test(c, global_pooling);
    suite_add_tcase(s, c);
    TCase *r = tcase_create("recurrent");
    tcase_add_checked_fixture(r, setup, teardown);
    tcase_set_timeout(r, 60);
    tcase_add_test(r, recurrent_float_features);
    tcase_add_test(r, recurrent_masked_last);
    tcase_add_test(r, recurrent_masked_sequences);
    tcase_add_test(r, bidirectional_wrapper);
    tcase_add_test(r, recurrent_larger);
    tcase_add_loop_test(r, lstm_fused_backward, 0, 3);
    suite_add_tcase(s, r);
    TCase *l = tcase_create("losses");
    tcase_add_checked_fixture(l, setup, teardown);
    tcase_set_timeout(l, 60);
    tcase_add_test(l, losses);
    tcase_add_test(l, loss_values_match_predict);
    suite_add_tcase(s, l);
    TCase *t = tcase_create("transformer");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, attention_layer);
    tcase_add_test(t, transformer_language_model);
    tcase_add_test(t, transformer_encoder_classifier);
    suite_add_tcase(s, t);
    return s;
}
