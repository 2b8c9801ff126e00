/* A small GPT's results do not depend on the thread count or on how rows are
 * batched: training gives 1 thread's bits on 2 threads (every parameter
 * after a few AdamW steps), and a row's logits predicted alone are the bits
 * it gets inside a batch. The sizes reach the multi-threaded paths: 512
 * tokens per step (the own AVX-512 GEMM split over threads, weight
 * gradients split along n), head_dim 32 and 64 positions (attention's
 * forward and backward over several tiles and both threads' slots).
 * These hold where the products run on the own AVX-512 GEMM (one fused
 * multiply-add chain per element whatever the blocking); elsewhere OpenBLAS
 * does them, whose kernels sum differently for different sizes, and the
 * cases check (with a message) only what holds there: the same thread count
 * and batch give the same bits twice. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"
#include "cpu/cpu.h"

static int own_gemm(void) {
    if (llm__cpu_gemm_own_ok(16, 1.0f, 0.0f)) return 1;
    printf("gpt_bits: no AVX-512 GEMM in this build or on this CPU: OpenBLAS's sums depend on the sizes, so only "
           "repeatability for one thread count and batch is checked\n");
    return 0;
}

enum { V = 64, CTX = 64, DIM = 128, HEADS = 4, LAYERS = 2, B = 8 };

static void make_ids(int32_t *x, int32_t *y) {
    uint64_t s = 5;
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= CTX; t++) { /* y is x shifted by one */
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int32_t id = (int32_t)((s >> 33) % V);
            if (t < CTX) x[b * CTX + t] = id;
            if (t > 0) y[b * CTX + t - 1] = id;
        }
}

static llm_backend *cpu(int threads) {
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    return be;
}

static llm_model *gpt(llm_backend *be) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 17));
    llm_transformer_embedding_options eo;
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = V;
    eo.context = CTX;
    eo.dim = DIM;
    eo.mask_zero = 0;
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&eo)));
    for (int i = 0; i < LAYERS; i++) ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(HEADS, 1)));
    ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    ck_assert_ok(llm_model_add(m, llm_layer_lm_head(V, 1)));
    int64_t T = CTX;
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, &T));
    return m;
}

/* every parameter, concatenated, into w (n floats at most); returns the count */
static size_t all_params(llm_model *m, float *w, size_t n) {
    int count;
    ck_assert_ok(llm_model_num_params(m, &count));
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        const char *name;
        int nd;
        int64_t shape[LLM_MAX_DIMS];
        ck_assert_ok(llm_model_param_info(m, i, &name, &nd, shape));
        size_t size = 1;
        for (int d = 0; d < nd; d++) size *= (size_t)shape[d];
        ck_assert(at + size <= n);
        ck_assert_ok(llm_model_get_param(m, name, w + at, size * sizeof *w));
        at += size;
    }
    return at;
}

enum { MAXW = 1 << 20 };

static size_t train(int threads, int steps, float *w) {
    static int32_t x[B * CTX], y[B * CTX];
    make_ids(x, y);
    llm_backend *be = cpu(threads);
    llm_model *m = gpt(be);
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adamw(&opt, 1e-3f, 0.1f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, opt, LLM_METRIC_NONE));
    llm_tensor *xt, *yt;
    ck_assert_ok(llm_tensor_from_host(&xt, be, LLM_DTYPE_I32, 2, (int64_t[]){B, CTX}, x, sizeof x));
    ck_assert_ok(llm_tensor_from_host(&yt, be, LLM_DTYPE_I32, 2, (int64_t[]){B, CTX}, y, sizeof y));
    for (int i = 0; i < steps; i++) ck_assert_ok(llm_model_train_on_batch(m, xt, yt, NULL, NULL));
    size_t n = all_params(m, w, MAXW);
    llm_tensor_free(xt);
    llm_tensor_free(yt);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_backend_free(be);
    return n;
}

START_TEST(gpt_training_same_bits_on_1_and_2_threads) {
    int own = own_gemm();
    float *a = malloc(MAXW * sizeof *a), *b = malloc(MAXW * sizeof *b), *init = malloc(MAXW * sizeof *init);
    ck_assert(a && b && init);
    size_t n = train(own ? 1 : 2, 3, a);
    ck_assert_uint_eq(train(2, 3, b), n);
    ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, own ? "1 and 2 threads trained different weights"
                                                        : "two runs on 2 threads trained different weights");
    ck_assert_uint_eq(train(1, 0, init), n);
    ck_assert_msg(memcmp(a, init, n * sizeof *a) != 0, "the steps did not change the weights");
    free(a);
    free(b);
    free(init);
}
END_TEST

static void predict_rows(llm_model *m, llm_backend *be, const int32_t *ids, int first, int rows, float *out) {
    llm_tensor *x, *y;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){rows, CTX}, ids + first * CTX,
                                      (size_t)rows * CTX * sizeof *ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    ck_assert_ok(llm_tensor_to_host(y, out, (size_t)rows * CTX * V * sizeof *out));
    llm_tensor_free(x);
    llm_tensor_free(y);
}

START_TEST(gpt_prediction_independent_of_batch_and_threads) {
    static int32_t x[B * CTX], y[B * CTX];
    static float all[2][B * CTX * V], part[B * CTX * V];
    make_ids(x, y);
    if (!own_gemm()) { /* the same batch twice on one backend */
        llm_backend *be = cpu(2);
        llm_model *m = gpt(be);
        predict_rows(m, be, x, 0, B, all[0]);
        predict_rows(m, be, x, 0, B, all[1]);
        ck_assert_msg(memcmp(all[0], all[1], sizeof all[0]) == 0, "the same batch predicted twice differs");
        llm_model_free(m);
        llm_backend_free(be);
        return;
    }
    for (int threads = 1; threads <= 2; threads++) {
        llm_backend *be = cpu(threads);
        llm_model *m = gpt(be);
        predict_rows(m, be, x, 0, B, all[threads - 1]);
        static const int parts[][2] = { { 0, 1 }, { 5, 1 }, { 7, 1 }, { 2, 3 } };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            int first = parts[i][0], rows = parts[i][1];
            predict_rows(m, be, x, first, rows, part);
            ck_assert_msg(memcmp(part, all[threads - 1] + (size_t)first * CTX * V,
                                 (size_t)rows * CTX * V * sizeof *part) == 0,
                          "%d threads: rows %d..%d alone differ from the same rows in a batch of %d", threads, first,
                          first + rows - 1, B);
        }
        llm_model_free(m);
        llm_backend_free(be);
    }
    ck_assert_msg(memcmp(all[0], all[1], sizeof all[0]) == 0, "1 and 2 threads predict different bits");
    double sum = 0;
    for (int i = 0; i < B * CTX * V; i++) sum += fabs(all[0][i]);
    ck_assert(sum > 1.0);
}
END_TEST

Suite *suite_gpt_bits(void) {
    Suite *s = suite_create("gpt_bits");
    TCase *c = tcase_create("core");
    tcase_set_timeout(c, 120);
    tcase_add_test(c, gpt_training_same_bits_on_1_and_2_threads);
    tcase_add_test(c, gpt_prediction_independent_of_batch_and_threads);
    suite_add_tcase(s, c);
    return s;
}
