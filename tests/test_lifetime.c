/* Backend lifetime (include/llm/backend.h, Lifetime): a backend is
 * reference-counted, so the caller may free it before the tensors, models
 * and decoders made on it, go on using them, and free them in any order.
 * Run under `make asan`, a use of the freed backend or a leak of it fails. */
#include "testutil.h"

enum { V = 16, CTX = 8, D = 8 };

static llm_model *small_gpt(llm_backend *be) {
    llm_model *g;
    ck_assert_ok(llm_model_sequential(&g, be));
    ck_assert_ok(llm_model_set_seed(g, 5));
    ck_assert_ok(llm_model_add(g, llm_layer_transformer_embedding(V, CTX, D)));
    ck_assert_ok(llm_model_add(g, llm_layer_transformer_block(2, 1)));
    ck_assert_ok(llm_model_add(g, llm_layer_layernorm(1e-5f)));
    ck_assert_ok(llm_model_add(g, llm_layer_lm_head(V, 1)));
    ck_assert_ok(llm_model_build(g, LLM_DTYPE_I32, 1, (int64_t[]){CTX}));
    return g;
}

static llm_model *small_classifier(llm_backend *be) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(4, LLM_ACT_TANH)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_optimizer *adam;
    ck_assert_ok(llm_optimizer_adam(&adam, 0.05f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
    llm_optimizer_free(adam);
    return m;
}

static const float xs[] = { 0, 0, 0, 1, 1, 0, 1, 1 }, ys[] = { 0, 1, 1, 0 };
static const int32_t prompt[] = { 3, 7, 2 };

START_TEST(backend_freed_before_its_objects) {
    llm_backend *be;
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 2; /* a thread pool, which must outlive the backend handle */
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));

    llm_tensor *x, *y;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_F32, 2, (int64_t[]){4, 2}, xs, sizeof xs));
    ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_F32, 1, (int64_t[]){4}, ys, sizeof ys));
    llm_model *m = small_classifier(be);
    ck_assert_ok(llm_model_train_on_batch(m, x, y, NULL, NULL));
    llm_model *g = small_gpt(be);
    llm_decoder *d;
    ck_assert_ok(llm_decoder_create(&d, g));
    float want[V], got[V];
    ck_assert_ok(llm_decoder_feed(d, prompt, 3, want));
    ck_assert_ok(llm_decoder_reset(d));

    llm_backend_free(be); /* the caller's reference goes first */

    /* every object still works on the backend, which they keep alive */
    ck_assert_ok(llm_decoder_feed(d, prompt, 3, got));
    ck_assert_msg(memcmp(got, want, sizeof got) == 0, "the decoder's logits changed after llm_backend_free");
    float loss;
    for (int i = 0; i < 3; i++) ck_assert_ok(llm_model_train_on_batch(m, x, y, &loss, NULL));
    ck_assert(isfinite(loss));
    llm_backend *borrowed;
    ck_assert_ok(llm_tensor_backend(x, &borrowed));
    llm_tensor *x2, *p;
    ck_assert_ok(llm_tensor_from_host(&x2, borrowed, LLM_DTYPE_F32, 2, (int64_t[]){4, 2}, xs, sizeof xs));
    ck_assert_ok(llm_model_predict(m, x2, &p));
    float probs[4];
    ck_assert_ok(llm_tensor_to_host(p, probs, sizeof probs));
    for (int i = 0; i < 4; i++) ck_assert(probs[i] > 0.0f && probs[i] < 1.0f);
    char desc[256];
    ck_assert_ok(llm_backend_describe(borrowed, desc, sizeof desc, NULL));
    ck_assert_msg(strncmp(desc, "cpu threads=2", 13) == 0, "%s", desc);

    /* freed in an order where a model, not a tensor, holds the last reference */
    llm_tensor_free(x);
    llm_tensor_free(p);
    llm_decoder_free(d);
    llm_tensor_free(y);
    llm_model_free(g);
    llm_tensor_free(x2);
    llm_model_free(m); /* tears the backend down (LeakSanitizer sees it go) */
}
END_TEST

/* An ensemble and its members keep their backend too; the decoder's
 * reference alone keeps it up after the model's frees. */
START_TEST(last_reference_in_any_object) {
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    llm_model *g = small_gpt(be);
    llm_decoder *d;
    ck_assert_ok(llm_decoder_create(&d, g));
    float logits[V];
    llm_backend_free(be);
    ck_assert_ok(llm_decoder_feed(d, prompt, 2, logits));
    llm_decoder_free(d);
    llm_model_free(g);

    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    llm_model *e;
    ck_assert_ok(llm_model_ensemble(&e, be));
    llm_backend_free(be);
    llm_backend_free(NULL);
    int n;
    ck_assert_ok(llm_model_ensemble_size(e, &n));
    ck_assert_int_eq(n, 0);
    llm_model_free(e);
}
END_TEST

Suite *suite_lifetime(void) {
    Suite *s = suite_create("lifetime");
    TCase *c = tcase_create("backend");
    tcase_set_timeout(c, 60);
    tcase_add_test(c, backend_freed_before_its_objects);
    tcase_add_test(c, last_reference_in_any_object);
    suite_add_tcase(s, c);
    return s;
}
