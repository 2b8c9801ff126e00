/* LSTM, GRU and Transformer layers against PyTorch: outputs, last states,
 * losses and gradients.
 *
 * The reference values come from tests/fixtures/gen_torch_fixtures.py
 * (torch.nn.LSTM / torch.nn.GRU, batch_first, one layer, computed in float64
 * from float32 weights); see that script for the file format. Gradients of
 * torch's loss L = sum(out * R) are reproduced through libllm's MSE: with
 * targets t = y - R * N / 2, dMSE/dy = 2 (y - t) / N = R exactly.
 *
 * The Transformer references (a small GPT and an encoder classifier, with
 * their losses and every parameter's gradient) come from
 * tests/fixtures/gen_torch_gpt_fixture.py, in the same file format. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

#define FX_MAX 128
#define FX_NAME 48

typedef struct fx_tensor {
    char name[FX_NAME];
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    int64_t n;
    float *data;
} fx_tensor;

typedef struct fx_file {
    int count;
    fx_tensor t[FX_MAX];
} fx_file;

static llm_backend *be;
static void setup(void) { ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL)); }
static void teardown(void) { llm_backend_free(be); be = NULL; }

static void fx_load(fx_file *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open fixture %s (tests run from tests/; regenerate with "
                  "/usr/bin/python3 tests/fixtures/gen_torch_fixtures.py or gen_torch_gpt_fixture.py)", path);
    char magic[32] = "";
    int version = 0;
    ck_assert_msg(fscanf(f, "%31s %d", magic, &version) == 2 &&
                  strcmp(magic, "llm-torch-fixture") == 0 && version == 1,
                  "%s: not a version-1 llm-torch-fixture file", path);
    for (;;) {
        fx_tensor *t = &fx->t[fx->count];
        int got = fscanf(f, "%47s %d", t->name, &t->ndim);
        if (got == EOF) break;
        ck_assert_msg(got == 2 && t->ndim >= 1 && t->ndim <= LLM_MAX_DIMS,
                      "%s: bad header after %d tensors", path, fx->count);
        t->n = 1;
        for (int d = 0; d < t->ndim; d++) {
            long long v = 0;
            ck_assert_msg(fscanf(f, "%lld", &v) == 1 && v >= 1, "%s: bad shape of %s", path,
                          t->name);
            t->shape[d] = v;
            t->n *= v;
        }
        t->data = malloc((size_t)t->n * sizeof(float));
        ck_assert_ptr_nonnull(t->data);
        for (int64_t i = 0; i < t->n; i++) {
            double v = 0;
            ck_assert_msg(fscanf(f, "%lf", &v) == 1, "%s: %s has too few values", path, t->name);
            t->data[i] = (float)v;
        }
        fx->count++;
        ck_assert_msg(fx->count < FX_MAX, "%s: too many tensors", path);
    }
    fclose(f);
}

static void fx_free(fx_file *fx) {
    for (int i = 0; i < fx->count; i++) free(fx->t[i].data);
    fx->count = 0;
}

static const fx_tensor *fx_find(const fx_file *fx, const char *name) {
    for (int i = 0; i < fx->count; i++)
        if (strcmp(fx->t[i].name, name) == 0) return &fx->t[i];
    ck_abort_msg("fixture tensor %s missing", name);
    return NULL;
}

static const fx_tensor *fx_get(const fx_file *fx, const char *name, int64_t n) {
    const fx_tensor *t = fx_find(fx, name);
    ck_assert_msg(t->n == n, "fixture tensor %s has %lld values, expected %lld", name,
                  (long long)t->n, (long long)n);
    return t;
}

/* Fails naming the parameters the model does have when `name` is missing or
 * has a different size. */
static void require_param(const llm_model *m, const char *name, int64_t n) {
    int count = 0;
    ck_assert_ok(llm_model_num_params(m, &count));
    char have[1024] = "";
    for (int i = 0; i < count; i++) {
        const char *pn = NULL;
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS] = {0};
        ck_assert_ok(llm_model_param_info(m, i, &pn, &nd, shape));
        int64_t numel = 1;
        for (int d = 0; d < nd; d++) numel *= shape[d];
        if (strcmp(pn, name) == 0) {
            ck_assert_msg(numel == n, "parameter %s has %lld elements, expected %lld", name,
                          (long long)numel, (long long)n);
            return;
        }
        size_t used = strlen(have);
        snprintf(have + used, sizeof have - used, "%s%s", used ? ", " : "", pn);
    }
    ck_abort_msg("model has no parameter %s (it has: %s)", name, have);
}

static void set_param(llm_model *m, const char *name, const float *v, int64_t n) {
    require_param(m, name, n);
    ck_assert_ok(llm_model_set_param(m, name, v, (size_t)n * sizeof(float)));
}

static void expect_close(const char *what, const float *got, const float *want, int64_t n,
                         double atol, double rtol) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        ck_assert_msg(d <= atol + rtol * fabs((double)want[i]),
                      "%s[%lld]: libllm %.9g, torch %.9g (|diff| %.3g)", what, (long long)i,
                      (double)got[i], (double)want[i], d);
    }
}

static void expect_grad(const llm_model *m, const char *name, const float *want, int64_t n) {
    require_param(m, name, n);
    float *g = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(g);
    ck_assert_ok(llm_model_get_grad(m, name, g, (size_t)n * sizeof(float)));
    char what[96];
    snprintf(what, sizeof what, "grad %s", name);
    expect_close(what, g, want, n, 1e-4, 1e-4);
    free(g);
}

enum { B = 3, T = 6, E = 5, H = 4 };

typedef struct cell_kind {
    const char *kind;    /* "lstm" / "gru": the parameter name prefix */
    const char *fixture;
    int gates;
} cell_kind;

static const cell_kind LSTM_CELL = { "lstm", "fixtures/torch_lstm.txt", 4 };
static const cell_kind GRU_CELL = { "gru", "fixtures/torch_gru.txt", 3 };

static llm_layer *make_cell(const cell_kind *ck, llm_return_mode mode, int go_backwards) {
    llm_recurrent_options o;
    llm_recurrent_options_init(&o);
    o.units = H;
    o.return_mode = mode;
    o.go_backwards = go_backwards;
    return ck->gates == 4 ? llm_layer_lstm_ex(&o) : llm_layer_gru_ex(&o);
}

/* Sets a cell's weights from the fixture under `prefix` ("lstm_0",
 * "bidirectional_0.forward"): LSTM has one bias (torch's bias_ih + bias_hh). */
static void set_cell_weights(llm_model *m, const cell_kind *ck, const fx_file *fx,
                             const char *prefix) {
    int64_t G = ck->gates;
    char name[96];
    snprintf(name, sizeof name, "%s.weight_ih", prefix);
    set_param(m, name, fx_get(fx, "weight_ih", G * H * E)->data, G * H * E);
    snprintf(name, sizeof name, "%s.weight_hh", prefix);
    set_param(m, name, fx_get(fx, "weight_hh", G * H * H)->data, G * H * H);
    const float *bih = fx_get(fx, "bias_ih", G * H)->data;
    const float *bhh = fx_get(fx, "bias_hh", G * H)->data;
    if (G == 4) {
        float b[4 * H];
        for (int i = 0; i < 4 * H; i++) b[i] = bih[i] + bhh[i];
        snprintf(name, sizeof name, "%s.bias", prefix);
        set_param(m, name, b, G * H);
    } else {
        snprintf(name, sizeof name, "%s.bias_ih", prefix);
        set_param(m, name, bih, G * H);
        snprintf(name, sizeof name, "%s.bias_hh", prefix);
        set_param(m, name, bhh, G * H);
    }
}

/* Compares the cell's weight gradients with the fixture's `<pre>grad_*`. */
static void expect_cell_grads(const llm_model *m, const cell_kind *ck, const fx_file *fx,
                              const char *pre) {
    int64_t G = ck->gates;
    char name[96], fxname[64];
    snprintf(name, sizeof name, "%s_0.weight_ih", ck->kind);
    snprintf(fxname, sizeof fxname, "%sgrad_weight_ih", pre);
    expect_grad(m, name, fx_get(fx, fxname, G * H * E)->data, G * H * E);
    snprintf(name, sizeof name, "%s_0.weight_hh", ck->kind);
    snprintf(fxname, sizeof fxname, "%sgrad_weight_hh", pre);
    expect_grad(m, name, fx_get(fx, fxname, G * H * H)->data, G * H * H);
    snprintf(fxname, sizeof fxname, "%sgrad_bias_ih", pre);
    const float *gih = fx_get(fx, fxname, G * H)->data;
    snprintf(fxname, sizeof fxname, "%sgrad_bias_hh", pre);
    const float *ghh = fx_get(fx, fxname, G * H)->data;
    if (G == 4) {
        /* b = bias_ih + bias_hh, so dL/db = dL/dbias_ih (= dL/dbias_hh) */
        expect_close("torch's own grad_bias_ih vs grad_bias_hh", gih, ghh, G * H, 1e-12, 1e-6);
        snprintf(name, sizeof name, "%s_0.bias", ck->kind);
        expect_grad(m, name, gih, G * H);
    } else {
        snprintf(name, sizeof name, "%s_0.bias_ih", ck->kind);
        expect_grad(m, name, gih, G * H);
        snprintf(name, sizeof name, "%s_0.bias_hh", ck->kind);
        expect_grad(m, name, ghh, G * H);
    }
}

static void compile_mse(llm_model *m) {
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_sgd(&opt, 0.01f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_MSE, opt, LLM_METRIC_NONE));
    llm_optimizer_free(opt);
}

/* Runs compute_gradients with the targets that make dMSE/dy = r, r [n]
 * shaped like y. Checks the reported loss, mean((r n / 2)^2). */
static void gradients_for_weights(llm_model *m, const llm_tensor *x, const float *y,
                                  const float *r, int ndim, const int64_t *shape, int64_t n) {
    float *t = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(t);
    double want = 0.0;
    for (int64_t i = 0; i < n; i++) {
        t[i] = y[i] - r[i] * (float)n * 0.5f;
        double e = (double)y[i] - (double)t[i];
        want += e * e;
    }
    want /= (double)n;
    llm_tensor *tt = NULL;
    ck_assert_ok(llm_tensor_from_host(&tt, be, LLM_DTYPE_F32, ndim, shape, t,
                                      (size_t)n * sizeof(float)));
    float loss = -1.0f;
    ck_assert_ok(llm_model_compute_gradients(m, x, tt, &loss));
    ck_assert_msg(fabs((double)loss - want) <= 1e-5 * want, "MSE loss %.9g, expected %.9g",
                  (double)loss, want);
    llm_tensor_free(tt);
    free(t);
}

static void predict_host(llm_model *m, const llm_tensor *x, float *y, int64_t n) {
    llm_tensor *out = NULL;
    ck_assert_ok(llm_model_predict(m, x, &out));
    int64_t numel = 0;
    ck_assert_ok(llm_tensor_numel(out, &numel));
    ck_assert_int_eq(numel, n);
    ck_assert_ok(llm_tensor_to_host(out, y, (size_t)n * sizeof(float)));
    llm_tensor_free(out);
}

/* Float features [T, E] -> one recurrent layer returning sequences. */
static void full_sequence_case(const cell_kind *ck) {
    fx_file fx;
    fx_load(&fx, ck->fixture);
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, make_cell(ck, LLM_RETURN_SEQUENCES, 0)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 2, (int64_t[]){T, E}));
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s_0", ck->kind);
    set_cell_weights(m, ck, &fx, prefix);

    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 3, (int64_t[]){B, T, E},
                                      fx_get(&fx, "x", B * T * E)->data,
                                      sizeof(float) * B * T * E));
    float y[B * T * H];
    predict_host(m, x, y, B * T * H);
    expect_close("output sequence", y, fx_get(&fx, "out", B * T * H)->data, B * T * H, 1e-5, 0);
    /* the last step of the sequence is torch's h_n */
    const float *h_last = fx_get(&fx, "h_last", B * H)->data;
    for (int b = 0; b < B; b++)
        expect_close("h_n", &y[(b * T + T - 1) * H], &h_last[b * H], H, 1e-5, 0);

    compile_mse(m);
    gradients_for_weights(m, x, y, fx_get(&fx, "r", B * T * H)->data, 3,
                          (int64_t[]){B, T, H}, B * T * H);
    expect_cell_grads(m, ck, &fx, "");
    llm_tensor_free(x);
    llm_model_free(m);
    fx_free(&fx);
}

/* The input gradient, read through an Embedding whose row 1 + b T + t is
 * x[b, t]: the embedding's gradient is then dL/dx. */
static void input_gradient_case(const cell_kind *ck) {
    fx_file fx;
    fx_load(&fx, ck->fixture);
    enum { V = B * T + 1 };
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(V, E)));
    ck_assert_ok(llm_model_add(m, make_cell(ck, LLM_RETURN_SEQUENCES, 0)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){T}));
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s_0", ck->kind);
    set_cell_weights(m, ck, &fx, prefix);
    float table[V * E];
    for (int i = 0; i < E; i++) table[i] = 0.25f; /* row 0: padding, never used here */
    memcpy(table + E, fx_get(&fx, "x", B * T * E)->data, sizeof(float) * B * T * E);
    set_param(m, "embedding_0.weight", table, V * E);
    int32_t ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = 1 + i;
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, ids,
                                      sizeof ids));
    float y[B * T * H];
    predict_host(m, x, y, B * T * H);
    expect_close("output sequence (via embedding)", y, fx_get(&fx, "out", B * T * H)->data,
                 B * T * H, 1e-5, 0);
    compile_mse(m);
    gradients_for_weights(m, x, y, fx_get(&fx, "r", B * T * H)->data, 3,
                          (int64_t[]){B, T, H}, B * T * H);
    float g[V * E];
    require_param(m, "embedding_0.weight", V * E);
    ck_assert_ok(llm_model_get_grad(m, "embedding_0.weight", g, sizeof g));
    for (int i = 0; i < E; i++)
        ck_assert_msg(g[i] == 0.0f, "unused embedding row 0 got gradient %g", (double)g[i]);
    expect_close("grad x", g + E, fx_get(&fx, "grad_x", B * T * E)->data, B * T * E, 1e-4, 1e-4);
    expect_cell_grads(m, ck, &fx, "");
    llm_tensor_free(x);
    llm_model_free(m);
    fx_free(&fx);
}

/* Post-padded (as in the fixture) or pre-padded ids. */
static void padded_ids(const fx_file *fx, int pre, int32_t *ids) {
    const float *post = fx_get(fx, "ids", B * T)->data;
    const float *len = fx_get(fx, "lengths", B)->data;
    for (int b = 0; b < B; b++) {
        int n = (int)len[b], shift = pre ? T - n : 0;
        for (int t = 0; t < T; t++) ids[b * T + t] = 0;
        for (int t = 0; t < n; t++) {
            ids[b * T + shift + t] = (int32_t)post[b * T + t];
            ck_assert_msg(ids[b * T + shift + t] > 0, "fixture ids: padding inside a sequence");
        }
    }
}

/* Embedding(mask_zero) -> recurrent(LAST) on padded ids: the last state is
 * the state at each sequence's true end, whichever side the padding is. */
static void variable_length_case(const cell_kind *ck, int pre, int go_backwards) {
    fx_file fx;
    fx_load(&fx, ck->fixture);
    const fx_tensor *table = fx_find(&fx, "emb");
    ck_assert_int_eq(table->ndim, 2);
    ck_assert_int_eq(table->shape[1], E);
    int64_t V = table->shape[0];

    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(V, E)));
    ck_assert_ok(llm_model_add(m, make_cell(ck, LLM_RETURN_LAST, go_backwards)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){T}));
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s_0", ck->kind);
    set_cell_weights(m, ck, &fx, prefix);
    /* row 0 is padding: whatever it holds must not matter */
    float *w = malloc((size_t)(V * E) * sizeof(float));
    ck_assert_ptr_nonnull(w);
    memcpy(w, table->data, (size_t)(V * E) * sizeof(float));
    for (int i = 0; i < E; i++) w[i] = 3.0f;
    set_param(m, "embedding_0.weight", w, V * E);

    int32_t ids[B * T];
    padded_ids(&fx, pre, ids);
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, ids,
                                      sizeof ids));
    float y[B * H];
    predict_host(m, x, y, B * H);
    char what[96];
    snprintf(what, sizeof what, "%s last state, %s-padded%s", ck->kind, pre ? "pre" : "post",
             go_backwards ? ", go_backwards" : "");
    expect_close(what, y, fx_get(&fx, go_backwards ? "vl_rev_h_last" : "vl_h_last", B * H)->data,
                 B * H, 1e-5, 0);

    if (!go_backwards) {
        compile_mse(m);
        gradients_for_weights(m, x, y, fx_get(&fx, "r2", B * H)->data, 2, (int64_t[]){B, H},
                              B * H);
        expect_cell_grads(m, ck, &fx, "vl_");
        float *g = malloc((size_t)(V * E) * sizeof(float));
        ck_assert_ptr_nonnull(g);
        ck_assert_ok(llm_model_get_grad(m, "embedding_0.weight", g, (size_t)(V * E) * 4));
        for (int i = 0; i < E; i++)
            ck_assert_msg(g[i] == 0.0f, "padding row 0 of the embedding got gradient %g",
                          (double)g[i]);
        expect_close("grad embedding", g, fx_get(&fx, "vl_grad_emb", V * E)->data, V * E, 1e-4,
                     1e-4);
        free(g);
    }
    llm_tensor_free(x);
    llm_model_free(m);
    free(w);
    fx_free(&fx);
}

/* go_backwards over full sequences: the last state is that of the reversed
 * input. Bidirectional with the same weights in both halves: [fwd_t, bwd_t]
 * with bwd_t the backward cell's state after it has read steps T-1 .. t. */
static void backwards_and_bidirectional_case(const cell_kind *ck) {
    fx_file fx;
    fx_load(&fx, ck->fixture);
    const float *xs = fx_get(&fx, "x", B * T * E)->data;
    const float *out = fx_get(&fx, "out", B * T * H)->data;
    const float *rev = fx_get(&fx, "rev_out", B * T * H)->data;
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 3, (int64_t[]){B, T, E}, xs,
                                      sizeof(float) * B * T * E));
    char prefix[48];

    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, make_cell(ck, LLM_RETURN_LAST, 1)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 2, (int64_t[]){T, E}));
    snprintf(prefix, sizeof prefix, "%s_0", ck->kind);
    set_cell_weights(m, ck, &fx, prefix);
    float y[B * 2 * H];
    predict_host(m, x, y, B * H);
    for (int b = 0; b < B; b++)
        expect_close("go_backwards last state", &y[b * H], &rev[(b * T + T - 1) * H], H, 1e-5, 0);
    llm_model_free(m);

    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_bidirectional(make_cell(ck, LLM_RETURN_LAST, 0))));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 2, (int64_t[]){T, E}));
    set_cell_weights(m, ck, &fx, "bidirectional_0.forward");
    set_cell_weights(m, ck, &fx, "bidirectional_0.backward");
    predict_host(m, x, y, B * 2 * H);
    for (int b = 0; b < B; b++) {
        expect_close("bidirectional last, forward half", &y[b * 2 * H], &out[(b * T + T - 1) * H],
                     H, 1e-5, 0);
        expect_close("bidirectional last, backward half", &y[b * 2 * H + H],
                     &rev[(b * T + T - 1) * H], H, 1e-5, 0);
    }
    llm_model_free(m);

    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m,
                               llm_layer_bidirectional(make_cell(ck, LLM_RETURN_SEQUENCES, 0))));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 2, (int64_t[]){T, E}));
    set_cell_weights(m, ck, &fx, "bidirectional_0.forward");
    set_cell_weights(m, ck, &fx, "bidirectional_0.backward");
    float ys[B * T * 2 * H];
    predict_host(m, x, ys, B * T * 2 * H);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            char what[96];
            snprintf(what, sizeof what, "bidirectional sequence b=%d t=%d forward", b, t);
            expect_close(what, &ys[(b * T + t) * 2 * H], &out[(b * T + t) * H], H, 1e-5, 0);
            snprintf(what, sizeof what, "bidirectional sequence b=%d t=%d backward", b, t);
            expect_close(what, &ys[(b * T + t) * 2 * H + H], &rev[(b * T + T - 1 - t) * H], H,
                         1e-5, 0);
        }
    llm_model_free(m);
    llm_tensor_free(x);
    fx_free(&fx);
}

/* ---- Transformers (tests/fixtures/gen_torch_gpt_fixture.py) ---- */

enum { TF_V = 11, TF_CTX = 8, TF_D = 12, TF_HEADS = 3, TF_B = 2 };

/* transformer_embedding (learned positions) -> blocks -> layernorm -> head:
 * the tied lm_head for the GPT; for the encoder, blocks not causal, mask_zero,
 * average pooling over the real positions and dense(1). */
static llm_model *tf_model(int64_t seq, int layers, int encoder) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    llm_transformer_embedding_options eo;
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = TF_V;
    eo.context = TF_CTX;
    eo.dim = TF_D;
    eo.mask_zero = encoder; /* the GPT's ids include 0 as an ordinary token */
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&eo)));
    for (int i = 0; i < layers; i++)
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(TF_HEADS, !encoder)));
    ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    if (encoder) {
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_NONE)));
    } else {
        ck_assert_ok(llm_model_add(m, llm_layer_lm_head(TF_V, 1)));
    }
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){seq}));
    return m;
}

/* Number of "grad.*" tensors in the fixture: one per parameter. */
static int fx_count_prefix(const fx_file *fx, const char *prefix) {
    int n = 0;
    for (int i = 0; i < fx->count; i++) n += strncmp(fx->t[i].name, prefix, strlen(prefix)) == 0;
    return n;
}

/* Sets every parameter of the model from the fixture tensor of the same name,
 * and checks that the model has exactly the fixture's parameters. */
static void tf_set_all(llm_model *m, const fx_file *fx) {
    int count = 0;
    ck_assert_ok(llm_model_num_params(m, &count));
    ck_assert_msg(count == fx_count_prefix(fx, "grad."), "the model has %d parameters, the fixture %d", count,
                  fx_count_prefix(fx, "grad."));
    for (int i = 0; i < count; i++) {
        const char *name = NULL;
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS] = {0};
        ck_assert_ok(llm_model_param_info(m, i, &name, &nd, shape));
        const fx_tensor *t = fx_find(fx, name);
        ck_assert_int_eq(nd, t->ndim);
        for (int d = 0; d < nd; d++) ck_assert_int_eq(shape[d], t->shape[d]);
        set_param(m, name, t->data, t->n);
    }
}

static llm_tensor *tf_ids(const fx_file *fx, const char *name, int64_t rows, int64_t seq) {
    const float *v = fx_get(fx, name, rows * seq)->data;
    int32_t *ids = malloc((size_t)(rows * seq) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int64_t i = 0; i < rows * seq; i++) ids[i] = (int32_t)v[i];
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){rows, seq}, ids,
                                      (size_t)(rows * seq) * sizeof *ids));
    free(ids);
    return x;
}

static void tf_compile(llm_model *m, llm_loss loss) {
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_sgd(&opt, 0.01f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, loss, opt, LLM_METRIC_NONE));
    llm_optimizer_free(opt);
}

static void expect_loss(float got, const fx_file *fx, const char *name) {
    double want = fx_get(fx, name, 1)->data[0];
    ck_assert_msg(fabs((double)got - want) <= 1e-5 * fabs(want), "%s: libllm %.9g, torch %.9g", name, (double)got,
                  want);
}

/* Gradient tolerance: |diff| <= 5e-6 + 1e-4 |torch|. (Observed on the CPU
 * backend: at most 1e-6, 3% of this bound; logits within 1e-6 against a
 * bound of 1e-5 + 1e-5 |torch|.) */
static void expect_grad_tf(const llm_model *m, const char *name, const fx_tensor *want) {
    require_param(m, name, want->n);
    float *g = malloc((size_t)want->n * sizeof(float));
    ck_assert_ptr_nonnull(g);
    ck_assert_ok(llm_model_get_grad(m, name, g, (size_t)want->n * sizeof(float)));
    char what[96];
    snprintf(what, sizeof what, "grad %s", name);
    expect_close(what, g, want->data, want->n, 5e-6, 1e-4);
    free(g);
}

static void expect_all_grads(const llm_model *m, const fx_file *fx) {
    int count = 0;
    ck_assert_ok(llm_model_num_params(m, &count));
    for (int i = 0; i < count; i++) {
        const char *name = NULL;
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS] = {0};
        ck_assert_ok(llm_model_param_info(m, i, &name, &nd, shape));
        char fxname[FX_NAME];
        snprintf(fxname, sizeof fxname, "grad.%s", name);
        expect_grad_tf(m, name, fx_find(fx, fxname));
    }
}

/* The GPT at T = context: logits, the mean next-token cross-entropy and the
 * gradient of every parameter (the tied token table gets both uses'). */
START_TEST(gpt_full_context) {
    fx_file fx;
    fx_load(&fx, "fixtures/torch_gpt.txt");
    enum { TS = TF_CTX };
    llm_model *m = tf_model(TS, 2, 0);
    tf_set_all(m, &fx);
    llm_tensor *x = tf_ids(&fx, "ids", TF_B, TS);
    float logits[TF_B * TS * TF_V];
    predict_host(m, x, logits, TF_B * TS * TF_V);
    expect_close("GPT logits", logits, fx_get(&fx, "logits", TF_B * TS * TF_V)->data, TF_B * TS * TF_V, 1e-5, 1e-5);
    /* the KV-cache decoder, fed one token at a time, gives torch's logits too */
    const float *ids = fx_get(&fx, "ids", TF_B * TS)->data;
    for (int b = 0; b < TF_B; b++) {
        llm_decoder *d = NULL;
        ck_assert_ok(llm_decoder_create(&d, m));
        for (int t = 0; t < TS; t++) {
            int32_t id = (int32_t)ids[b * TS + t];
            float lg[TF_V];
            ck_assert_ok(llm_decoder_feed(d, &id, 1, lg));
            char what[64];
            snprintf(what, sizeof what, "decoder logits, row %d after %d tokens", b, t + 1);
            expect_close(what, lg, fx_find(&fx, "logits")->data + (b * TS + t) * TF_V, TF_V, 1e-5, 1e-5);
        }
        llm_decoder_free(d);
    }

    tf_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS);
    llm_tensor *y = tf_ids(&fx, "labels", TF_B, TS);
    float loss = -1.0f;
    ck_assert_ok(llm_model_compute_gradients(m, x, y, &loss));
    expect_loss(loss, &fx, "loss");
    expect_all_grads(m, &fx);
    llm_tensor_free(y);
    llm_tensor_free(x);
    llm_model_free(m);
    fx_free(&fx);
}
END_TEST

/* The same weights on sequences shorter than the context: positions 0..4
 * only, so rows 5..7 of the position table get exactly zero gradient. */
START_TEST(gpt_short_sequence) {
    fx_file fx;
    fx_load(&fx, "fixtures/torch_gpt.txt");
    enum { TS = 5 };
    llm_model *m = tf_model(TS, 2, 0);
    tf_set_all(m, &fx);
    llm_tensor *x = tf_ids(&fx, "short_ids", TF_B, TS);
    float logits[TF_B * TS * TF_V];
    predict_host(m, x, logits, TF_B * TS * TF_V);
    expect_close("GPT logits, T = 5", logits, fx_get(&fx, "short_logits", TF_B * TS * TF_V)->data, TF_B * TS * TF_V,
                 1e-5, 1e-5);
    tf_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS);
    llm_tensor *y = tf_ids(&fx, "short_labels", TF_B, TS);
    float loss = -1.0f;
    ck_assert_ok(llm_model_compute_gradients(m, x, y, &loss));
    expect_loss(loss, &fx, "short_loss");
    expect_grad_tf(m, "transformer_embedding_0.token", fx_find(&fx, "short_grad.transformer_embedding_0.token"));
    expect_grad_tf(m, "transformer_embedding_0.position",
                   fx_find(&fx, "short_grad.transformer_embedding_0.position"));
    expect_grad_tf(m, "transformer_block_0.qkv_weight", fx_find(&fx, "short_grad.transformer_block_0.qkv_weight"));
    float pos[TF_CTX * TF_D];
    ck_assert_ok(llm_model_get_grad(m, "transformer_embedding_0.position", pos, sizeof pos));
    for (int i = TS * TF_D; i < TF_CTX * TF_D; i++)
        ck_assert_msg(pos[i] == 0.0f, "unused position row %d got gradient %g", i / TF_D, (double)pos[i]);
    llm_tensor_free(y);
    llm_tensor_free(x);
    llm_model_free(m);
    fx_free(&fx);
}
END_TEST

/* Encoder classifier on post-padded ids: padded keys hidden from attention,
 * padded positions from the mean; BCE on the logit; every gradient, and none
 * for the padding row 0 of the token table. */
START_TEST(encoder_padded) {
    fx_file fx;
    fx_load(&fx, "fixtures/torch_encoder.txt");
    enum { TS = TF_CTX };
    llm_model *m = tf_model(TS, 1, 1);
    tf_set_all(m, &fx);
    llm_tensor *x = tf_ids(&fx, "ids", TF_B, TS);
    const float *len = fx_get(&fx, "lengths", TF_B)->data;
    ck_assert_msg(len[1] < TS, "the fixture's second row should be padded");
    float logit[TF_B];
    predict_host(m, x, logit, TF_B);
    expect_close("encoder logits", logit, fx_get(&fx, "logits", TF_B)->data, TF_B, 1e-5, 1e-5);

    tf_compile(m, LLM_LOSS_BINARY_CROSSENTROPY_LOGITS);
    llm_tensor *y = NULL;
    ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_F32, 2, (int64_t[]){TF_B, 1},
                                      fx_get(&fx, "targets", TF_B)->data, TF_B * sizeof(float)));
    float loss = -1.0f;
    ck_assert_ok(llm_model_compute_gradients(m, x, y, &loss));
    expect_loss(loss, &fx, "loss");
    expect_all_grads(m, &fx);
    float tok[TF_V * TF_D];
    ck_assert_ok(llm_model_get_grad(m, "transformer_embedding_0.token", tok, sizeof tok));
    for (int i = 0; i < TF_D; i++)
        ck_assert_msg(tok[i] == 0.0f, "padding row 0 of the token table got gradient %g", (double)tok[i]);
    llm_tensor_free(y);
    llm_tensor_free(x);
    llm_model_free(m);
    fx_free(&fx);
}
END_TEST

START_TEST(lstm_full_sequence) { full_sequence_case(&LSTM_CELL); }
END_TEST
START_TEST(gru_full_sequence) { full_sequence_case(&GRU_CELL); }
END_TEST
START_TEST(lstm_input_gradient) { input_gradient_case(&LSTM_CELL); }
END_TEST
START_TEST(gru_input_gradient) { input_gradient_case(&GRU_CELL); }
END_TEST
START_TEST(lstm_variable_length_post) { variable_length_case(&LSTM_CELL, 0, 0); }
END_TEST
START_TEST(gru_variable_length_post) { variable_length_case(&GRU_CELL, 0, 0); }
END_TEST
START_TEST(lstm_variable_length_pre) { variable_length_case(&LSTM_CELL, 1, 0); }
END_TEST
START_TEST(gru_variable_length_pre) { variable_length_case(&GRU_CELL, 1, 0); }
END_TEST
START_TEST(lstm_variable_length_backwards) {
    variable_length_case(&LSTM_CELL, 0, 1);
    variable_length_case(&LSTM_CELL, 1, 1);
}
END_TEST
START_TEST(gru_variable_length_backwards) {
    variable_length_case(&GRU_CELL, 0, 1);
    variable_length_case(&GRU_CELL, 1, 1);
}
END_TEST
START_TEST(lstm_backwards_bidirectional) { backwards_and_bidirectional_case(&LSTM_CELL); }
END_TEST
START_TEST(gru_backwards_bidirectional) { backwards_and_bidirectional_case(&GRU_CELL); }
END_TEST

Suite *suite_torch_parity(void) {
    Suite *s = suite_create("torch_parity");
    TCase *c = tcase_create("full_sequences");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, lstm_full_sequence);
    tcase_add_test(c, gru_full_sequence);
    tcase_add_test(c, lstm_input_gradient);
    tcase_add_test(c, gru_input_gradient);
    tcase_add_test(c, lstm_backwards_bidirectional);
    tcase_add_test(c, gru_backwards_bidirectional);
    suite_add_tcase(s, c);
    TCase *v = tcase_create("variable_length");
    tcase_add_checked_fixture(v, setup, teardown);
    tcase_add_test(v, lstm_variable_length_post);
    tcase_add_test(v, gru_variable_length_post);
    tcase_add_test(v, lstm_variable_length_pre);
    tcase_add_test(v, gru_variable_length_pre);
    tcase_add_test(v, lstm_variable_length_backwards);
    tcase_add_test(v, gru_variable_length_backwards);
    suite_add_tcase(s, v);
    TCase *tf = tcase_create("transformer");
    tcase_add_checked_fixture(tf, setup, teardown);
    tcase_add_test(tf, gpt_full_context);
    tcase_add_test(tf, gpt_short_sequence);
    tcase_add_test(tf, encoder_padded);
    suite_add_tcase(s, tf);
    return s;
}
