/* Every registered layer kind, from one table: a small model around the
 * kind is built with random weights, saved, loaded, and must come back with
 * the same parameters (names, shapes, bytes), the same summary and the same
 * predictions bit for bit; then its gradients are checked by finite
 * differences (tu_gradcheck). The table must name every kind of the registry
 * (src/nn/layers/registry.c), so a new kind without a row fails here. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "testutil.h"
#include "nn/layer_internal.h"

enum { B = 3, T = 4, F = 3, V = 11 };

static llm_backend *be;
static char path[128];

static void setup(void) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 1;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
    snprintf(path, sizeof path, "/tmp/llm_kinds_%d.safetensors", (int)getpid());
}

static void teardown(void) {
    unlink(path);
    llm_backend_free(be);
    be = NULL;
}

static void add(llm_model *m, llm_layer *l) {
    ck_assert_msg(llm_layer_status(l) == LLM_OK, "%s: %s", llm_layer_kind(l), llm_layer_error(l));
    ck_assert_ok(llm_model_add(m, l));
}

/* ---- the models: the kind under test behind a layer with weights (so its
 * input gradient is checked too), and a head giving the loss's output ---- */

typedef enum { IN_IDS, IN_FLOAT } input_kind;
typedef enum { OUT_ONE, OUT_TOKENS } output_kind; /* [1] for MSE, [T, V] logits for per-token labels */

typedef struct kind_case {
    const char *kind;          /* the kind under test, as the registry names it */
    input_kind in;
    output_kind out;
    void (*layers)(llm_model *m);
} kind_case;

static llm_layer *masked_embedding(void) { return llm_layer_embedding(V, 4); }

/* mask 0 for per-token outputs: a padded row still predicts but its id gets
 * no gradient by design, which a finite difference would see */
static llm_layer *positions(llm_positional p, int mask, int32_t pad) {
    llm_transformer_embedding_options o;
    llm_transformer_embedding_options_init(&o);
    o.vocab = V;
    o.context = T + 2;
    o.dim = 4;
    o.positional = p;
    o.mask_zero = mask;
    o.pad_id = pad;
    return llm_layer_transformer_embedding_ex(&o);
}

static void m_embedding(llm_model *m) {
    add(m, masked_embedding());
    add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_lstm(llm_model *m) {
    llm_recurrent_options o;
    llm_recurrent_options_init(&o);
    o.units = 3;
    o.go_backwards = 1;
    add(m, masked_embedding());
    add(m, llm_layer_lstm_ex(&o));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_gru(llm_model *m) {
    add(m, masked_embedding());
    add(m, llm_layer_gru(3, LLM_RETURN_SEQUENCES));
    add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_bidirectional(llm_model *m) {
    add(m, masked_embedding());
    add(m, llm_layer_bidirectional(llm_layer_lstm(2, LLM_RETURN_LAST)));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_dense(llm_model *m) {
    llm_dense_options o;
    llm_dense_options_init(&o);
    o.units = 1;
    o.use_bias = 0;
    add(m, llm_layer_dense(4, LLM_ACT_GELU));
    add(m, llm_layer_dense_ex(&o));
}

static void m_activation(llm_model *m) {
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
    add(m, llm_layer_activation(LLM_ACT_TANH));
}

/* rate 0: a training mask is not repeatable between the check's calls */
static void m_dropout(llm_model *m) {
    add(m, llm_layer_dense(3, LLM_ACT_TANH));
    add(m, llm_layer_dropout(0.0f));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_layernorm(llm_model *m) {
    add(m, llm_layer_dense(4, LLM_ACT_NONE));
    add(m, llm_layer_layernorm(1e-3f));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_global_pool(llm_model *m) {
    add(m, masked_embedding());
    add(m, llm_layer_global_pool(LLM_POOL_MAX));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_transformer_embedding(llm_model *m) {
    add(m, positions(LLM_POSITIONAL_LEARNED, 1, 2));
    add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_attention(llm_model *m) {
    add(m, positions(LLM_POSITIONAL_SINUSOIDAL, 1, 0));
    add(m, llm_layer_attention(2, 0));
    add(m, llm_layer_global_pool(LLM_POOL_AVERAGE));
    add(m, llm_layer_dense(1, LLM_ACT_NONE));
}

static void m_transformer_block(llm_model *m) {
    llm_transformer_block_options o;
    llm_transformer_block_options_init(&o);
    o.heads = 2;
    o.mlp_hidden = 6;
    o.eps = 1e-3f;
    add(m, positions(LLM_POSITIONAL_LEARNED, 0, 0));
    add(m, llm_layer_transformer_block_ex(&o));
    add(m, llm_layer_lm_head(V, 0));
}

static void m_lm_head(llm_model *m) {
    add(m, positions(LLM_POSITIONAL_NONE, 0, 0));
    add(m, llm_layer_dense(4, LLM_ACT_TANH));
    add(m, llm_layer_lm_head(V, 1));
}

static const kind_case cases[] = {
    { "embedding", IN_IDS, OUT_ONE, m_embedding },
    { "lstm", IN_IDS, OUT_ONE, m_lstm },
    { "gru", IN_IDS, OUT_ONE, m_gru },
    { "bidirectional", IN_IDS, OUT_ONE, m_bidirectional },
    { "dense", IN_FLOAT, OUT_ONE, m_dense },
    { "activation", IN_FLOAT, OUT_ONE, m_activation },
    { "dropout", IN_FLOAT, OUT_ONE, m_dropout },
    { "layernorm", IN_FLOAT, OUT_ONE, m_layernorm },
    { "global_pool", IN_IDS, OUT_ONE, m_global_pool },
    { "transformer_embedding", IN_IDS, OUT_ONE, m_transformer_embedding },
    { "attention", IN_IDS, OUT_ONE, m_attention },
    { "transformer_block", IN_IDS, OUT_TOKENS, m_transformer_block },
    { "lm_head", IN_IDS, OUT_TOKENS, m_lm_head },
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* ---- data ---- */

static llm_tensor *inputs(input_kind in) {
    llm_tensor *x = NULL;
    if (in == IN_FLOAT) {
        float v[B * F];
        tu_fill(v, B * F, 5, -1.0f, 1.0f);
        ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 2, (int64_t[]){B, F}, v, sizeof v));
    } else {
        /* real ids in [3, V), padding 0 at the end of the shorter rows */
        static const int32_t ids[B * T] = { 3, 4, 5, 6,  7, 8, 0, 0,  9, 10, 4, 0 };
        ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, ids, sizeof ids));
    }
    return x;
}

static llm_tensor *targets(output_kind out) {
    llm_tensor *y = NULL;
    if (out == OUT_ONE) {
        float v[B];
        tu_fill(v, B, 6, -1.0f, 1.0f);
        ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_F32, 2, (int64_t[]){B, 1}, v, sizeof v));
    } else {
        int32_t lab[B * T];
        uint64_t s = 7;
        for (int i = 0; i < B * T; i++) lab[i] = (int32_t)(tu_next(&s) % V);
        ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, lab, sizeof lab));
    }
    return y;
}

static llm_model *build(const kind_case *c) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    c->layers(m);
    int64_t shape = c->in == IN_FLOAT ? F : T;
    ck_assert_ok(llm_model_build(m, c->in == IN_FLOAT ? LLM_DTYPE_F32 : LLM_DTYPE_I32, 1, &shape));
    /* random weights, so that zero biases and unit scales hide nothing */
    int np;
    ck_assert_ok(llm_model_num_params(m, &np));
    for (int i = 0; i < np; i++) {
        const char *name;
        int nd;
        int64_t dims[LLM_MAX_DIMS], n = 1;
        ck_assert_ok(llm_model_param_info(m, i, &name, &nd, dims));
        for (int d = 0; d < nd; d++) n *= dims[d];
        float *w = malloc((size_t)n * 4);
        ck_assert_ptr_nonnull(w);
        tu_fill(w, n, 100 + (uint64_t)i, -0.5f, 0.5f);
        ck_assert_ok(llm_model_set_param(m, name, w, (size_t)n * 4));
        free(w);
    }
    return m;
}

static float *predict(llm_model *m, const llm_tensor *x, int64_t *n) {
    llm_tensor *y;
    ck_assert_ok(llm_model_predict(m, x, &y));
    ck_assert_ok(llm_tensor_numel(y, n));
    float *out = malloc((size_t)*n * 4);
    ck_assert_ptr_nonnull(out);
    ck_assert_ok(llm_tensor_to_host(y, out, (size_t)*n * 4));
    llm_tensor_free(y);
    return out;
}

static char *summary(const llm_model *m) {
    size_t need;
    ck_assert_ok(llm_model_summary(m, NULL, 0, &need));
    char *s = malloc(need + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_ok(llm_model_summary(m, s, need + 1, &need));
    return s;
}

/* The kind's layer appears in the model under test. */
static int has_kind(const llm_model *m, const char *kind) {
    char *s = summary(m), pat[64];
    snprintf(pat, sizeof pat, "(%s)", kind);
    int found = strstr(s, pat) != NULL;
    free(s);
    return found;
}

static void same_params(const llm_model *a, const llm_model *b, const char *kind) {
    int na, nb;
    ck_assert_ok(llm_model_num_params(a, &na));
    ck_assert_ok(llm_model_num_params(b, &nb));
    ck_assert_msg(na == nb, "%s: %d parameters saved, %d loaded", kind, na, nb);
    for (int i = 0; i < na; i++) {
        const char *an, *bn;
        int ad, bd;
        int64_t as[LLM_MAX_DIMS], bs[LLM_MAX_DIMS], n = 1;
        ck_assert_ok(llm_model_param_info(a, i, &an, &ad, as));
        ck_assert_ok(llm_model_param_info(b, i, &bn, &bd, bs));
        ck_assert_msg(strcmp(an, bn) == 0 && ad == bd, "%s: parameter %d is %s saved, %s loaded", kind, i, an, bn);
        for (int d = 0; d < ad; d++) {
            ck_assert_int_eq(as[d], bs[d]);
            n *= as[d];
        }
        float *wa = malloc((size_t)n * 4), *wb = malloc((size_t)n * 4);
        ck_assert(wa && wb);
        ck_assert_ok(llm_model_get_param(a, an, wa, (size_t)n * 4));
        ck_assert_ok(llm_model_get_param(b, bn, wb, (size_t)n * 4));
        ck_assert_msg(memcmp(wa, wb, (size_t)n * 4) == 0, "%s: %s differs after save and load", kind, an);
        free(wa);
        free(wb);
    }
}

START_TEST(every_registered_kind_has_a_row) {
    ck_assert_int_eq(llm__kind_count(), N_CASES);
    for (int k = 0; k < llm__kind_count(); k++) {
        const char *name = llm__kind_at(k)->kind;
        int rows = 0;
        for (int i = 0; i < N_CASES; i++) rows += strcmp(cases[i].kind, name) == 0;
        ck_assert_msg(rows == 1, "registered kind %s has %d rows in tests/test_kinds.c", name, rows);
        ck_assert_ptr_eq(llm__kind_find(name), llm__kind_at(k));
        ck_assert_msg(llm__kind_at(k)->to_json && llm__kind_at(k)->from_json, "%s cannot be saved", name);
    }
    ck_assert_ptr_null(llm__kind_find("warp"));
}
END_TEST

START_TEST(kind_saves_loads_and_predicts_the_same) {
    const kind_case *c = &cases[_i];
    llm_model *m = build(c);
    ck_assert_msg(has_kind(m, c->kind), "%s: the model has no layer of its kind", c->kind);
    llm_tensor *x = inputs(c->in);
    int64_t n1, n2;
    float *before = predict(m, x, &n1);
    ck_assert_ok(llm_model_save(m, path));
    llm_model *back;
    ck_assert_ok(llm_model_load(&back, be, path));
    same_params(m, back, c->kind);
    char *s1 = summary(m), *s2 = summary(back);
    ck_assert_str_eq(s1, s2);
    float *after = predict(back, x, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert_msg(memcmp(before, after, (size_t)n1 * 4) == 0, "%s: predictions differ after save and load", c->kind);
    free(s1);
    free(s2);
    free(before);
    free(after);
    llm_model_free(back);
    llm_tensor_free(x);
    llm_model_free(m);
}
END_TEST

START_TEST(kind_gradients_match_finite_differences) {
    const kind_case *c = &cases[_i];
    llm_model *m = build(c);
    llm_tensor *x = inputs(c->in), *y = targets(c->out);
    char label[64];
    snprintf(label, sizeof label, "kind %s", c->kind);
    tu_gradcheck(m, c->out == OUT_ONE ? LLM_LOSS_MSE : LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, x, y, label, 1);
    llm_tensor_free(x);
    llm_tensor_free(y);
    llm_model_free(m);
}
END_TEST

Suite *suite_kinds(void) {
    Suite *s = suite_create("kinds");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_registered_kind_has_a_row);
    tcase_add_loop_test(tc, kind_saves_loads_and_predicts_the_same, 0, N_CASES);
    tcase_add_loop_test(tc, kind_gradients_match_finite_differences, 0, N_CASES);
    suite_add_tcase(s, tc);
    return s;
}
