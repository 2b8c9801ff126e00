/* The CUDA backend: how it reports itself unavailable (always run), and, on a
 * machine with a usable GPU, model-level parity with the CPU (a few training
 * steps of small models from the same seed give the same losses and weights
 * within tolerance), its allocator and its error statuses.
 *
 * Op-by-op parity of every kernel is in test_backend_ops.c, which runs each
 * op on every available backend. Without a GPU the GPU cases are not added
 * and the reason is printed; LLM_TEST_REQUIRE_CUDA=1 (scripts/gpu-check.sh)
 * turns that skip into a failure. The availability probe runs in a child
 * process: a CUDA context created in Check's parent would be unusable in the
 * forked test processes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include "testutil.h"

static int g_cuda_ok;
static char g_cuda_why[700];

/* ---- always: unavailability is a status with a reason, never a crash ---- */

/* Under CK_FORK=no every test shares one process: another suite may already
 * have loaded (or failed to load) the CUDA module, which happens once per
 * process, so a child forked from it inherits that outcome and, with a GPU,
 * an initialised driver that a child cannot use. The strict checks need a
 * fresh process per test (Check's default). */
static int fresh_process_per_test(void) {
    const char *f = getenv("CK_FORK");
    return !(f && strcmp(f, "no") == 0);
}

START_TEST(availability_answers_with_a_reason) {
    char msg[700];
    int avail;
    int st = tu_probe_backend(LLM_BACKEND_CUDA, 0, 0, NULL, NULL, msg, sizeof msg, &avail);
    ck_assert_int_eq(st, LLM_OK);
    if (!fresh_process_per_test()) return;
    ck_assert_int_eq(avail, g_cuda_ok);
    if (!avail) ck_assert_msg(strstr(msg, "llm_backend_is_available: ") == msg && strlen(msg) > 30,
                              "unhelpful reason: '%s'", msg);
    /* create agrees with is_available */
    st = tu_probe_backend(LLM_BACKEND_CUDA, 1, 0, NULL, NULL, msg, sizeof msg, &avail);
    ck_assert_int_eq(avail, g_cuda_ok);
    if (!avail) {
        ck_assert_int_eq(st, LLM_ERR_UNAVAILABLE);
        ck_assert_msg(strstr(msg, "llm_backend_create: ") == msg, "message '%s'", msg);
    }
}
END_TEST

START_TEST(missing_module_is_unavailable) {
    if (!fresh_process_per_test()) return;
    char msg[700];
    int avail;
    int st = tu_probe_backend(LLM_BACKEND_CUDA, 1, 0, "LLM_CUDA_MODULE", "/nonexistent/libllm-cuda.so", msg, sizeof msg, &avail);
    ck_assert_int_eq(st, LLM_ERR_UNAVAILABLE);
    ck_assert_int_eq(avail, 0);
    ck_assert_msg(strstr(msg, "LLM_CUDA_MODULE") && strstr(msg, "/nonexistent/libllm-cuda.so"), "message '%s'", msg);
    /* a file that is not a module */
    st = tu_probe_backend(LLM_BACKEND_CUDA, 0, 0, "LLM_CUDA_MODULE", "/proc/self/status", msg, sizeof msg, &avail);
    ck_assert_int_eq(st, LLM_OK);
    ck_assert_int_eq(avail, 0);
    ck_assert_msg(strstr(msg, "cannot be loaded"), "message '%s'", msg);
}
END_TEST

START_TEST(bad_device_is_unavailable) {
    if (!fresh_process_per_test()) return;
    char msg[700];
    int avail;
    int st = tu_probe_backend(LLM_BACKEND_CUDA, 1, 4096, NULL, NULL, msg, sizeof msg, &avail);
    ck_assert_int_eq(st, LLM_ERR_UNAVAILABLE);
    ck_assert_int_eq(avail, 0);
    if (g_cuda_ok) ck_assert_msg(strstr(msg, "out of range"), "message '%s'", msg);
}
END_TEST

START_TEST(cuda_required_but_unavailable) {
    ck_abort_msg("LLM_TEST_REQUIRE_CUDA is set but the CUDA backend is unavailable: %s", g_cuda_why);
}
END_TEST

/* ---- with a GPU ---- */

static llm_backend *make_backend(llm_backend_kind kind) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 2;
    llm_backend *be = NULL;
    ck_assert_ok(llm_backend_create(&be, kind, &o));
    return be;
}

START_TEST(describe_and_tensor_roundtrip) {
    llm_backend *be = make_backend(LLM_BACKEND_CUDA);
    char desc[512];
    size_t need = 0;
    ck_assert_ok(llm_backend_describe(be, desc, sizeof desc, &need));
    ck_assert_msg(strncmp(desc, "cuda device=0", 13) == 0, "describe: '%s'", desc);
    ck_assert_uint_eq(need, strlen(desc));
    llm_backend_kind kind;
    ck_assert_ok(llm_backend_kind_of(be, &kind));
    ck_assert_int_eq(kind, LLM_BACKEND_CUDA);
    enum { N = 100003 };
    float *h = malloc(N * 4), *back = malloc(N * 4);
    tu_fill(h, N, 5, -3, 3);
    llm_tensor *t;
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){ N }, h, N * 4));
    ck_assert_ok(llm_tensor_to_host(t, back, N * 4));
    ck_assert_mem_eq(back, h, N * 4);
    ck_assert_ok(llm_tensor_fill(t, 2.5));
    ck_assert_ok(llm_tensor_to_host(t, back, N * 4));
    for (int i = 0; i < N; i++) ck_assert_float_eq(back[i], 2.5f);
    llm_tensor_free(t);
    free(h);
    free(back);
    llm_backend_free(be);
}
END_TEST

/* A training loop frees and reallocates its workspace every step: the
 * allocator must serve that from its cache, not from cudaMalloc. */
START_TEST(allocator_reuses_blocks) {
    llm_backend *be = make_backend(LLM_BACKEND_CUDA);
    for (int i = 0; i < 500; i++) {
        llm_tensor *a, *b;
        ck_assert_ok(llm_tensor_zeros(&a, be, LLM_DTYPE_F32, 1, (int64_t[]){ 1000 + i % 3 }));
        ck_assert_ok(llm_tensor_zeros(&b, be, LLM_DTYPE_F32, 2, (int64_t[]){ 512, 300 }));
        llm_tensor_free(a);
        llm_tensor_free(b);
    }
    char desc[512];
    ck_assert_ok(llm_backend_describe(be, desc, sizeof desc, NULL));
    const char *p = strstr(desc, "MiB free, ");
    ck_assert_msg(p, "describe: '%s'", desc);
    long mallocs = strtol(p + strlen("MiB free, "), NULL, 10);
    ck_assert_msg(mallocs >= 1 && mallocs <= 4, "%ld cudaMalloc calls for 1000 same-size allocations: %s", mallocs, desc);
    llm_backend_free(be);
}
END_TEST

/* Driver failures are statuses with a message, and the backend stays usable. */
START_TEST(out_of_memory_is_a_status) {
    llm_backend *be = make_backend(LLM_BACKEND_CUDA);
    llm_tensor *t = NULL;
    /* 2^45 bytes = 32 TiB: no GPU has that */
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){ (int64_t)1 << 22, (int64_t)1 << 21 }),
                    LLM_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_null(t);
    ck_assert_ok(llm_tensor_zeros(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){ 16 }));
    float h[16];
    ck_assert_ok(llm_tensor_to_host(t, h, sizeof h));
    for (int i = 0; i < 16; i++) ck_assert_float_eq(h[i], 0.0f);
    llm_tensor_free(t);
    llm_backend_free(be);
}
END_TEST

/* ---- model-level parity: the same steps on the CPU and the GPU ---- */

enum { ARCH_SPAM_LSTM = 0, ARCH_GRU_STACK = 1, ARCH_ENCODER = 2, ARCH_GPT = 3 };
enum { P_N = 48, P_T = 24, P_VOCAB = 60, P_STEPS = 6, P_BATCH = 16 };

/* Pre-padded id sequences (0 = padding) of varying length; the label says
 * whether id 7 occurs (binary) or which third of the vocabulary dominates. */
static void parity_data(int32_t *x, float *y, float *cls) {
    uint64_t s = 99;
    for (int i = 0; i < P_N; i++) {
        int len = 3 + (int)(tu_next(&s) % (P_T - 3));
        int has = 0, counts[3] = { 0, 0, 0 };
        for (int t = 0; t < P_T; t++) {
            int32_t id = 0;
            if (t >= P_T - len) {
                id = 2 + (int32_t)(tu_next(&s) % (P_VOCAB - 2));
                has |= id == 7;
                counts[(id - 2) * 3 / (P_VOCAB - 2)]++;
            }
            x[i * P_T + t] = id;
        }
        y[i] = (float)has;
        cls[i] = (float)(counts[1] > counts[0] ? (counts[2] > counts[1] ? 2 : 1) : (counts[2] > counts[0] ? 2 : 0));
    }
}

typedef struct run_result {
    float loss[P_STEPS];
    float *params; /* all parameters, concatenated in the model's order */
    int64_t nparams;
    float *pred;
    int64_t npred;
} run_result;

/* Next-token data for the GPT: full-length rows of a few interleaved
 * patterns, the target being the input shifted by one. */
static void gpt_data(int32_t *x, int32_t *y) {
    for (int i = 0; i < P_N; i++)
        for (int t = 0; t <= P_T; t++) {
            int32_t id = 1 + (int32_t)((i * 7 + t * (1 + i % 3)) % (P_VOCAB - 1));
            if (t < P_T) x[i * P_T + t] = id;
            if (t > 0) y[i * P_T + t - 1] = id;
        }
}

static void run_model(llm_backend_kind kind, int arch, run_result *r) {
    llm_backend *be = make_backend(kind);
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 42));
    llm_optimizer *opt;
    llm_loss loss;
    if (arch == ARCH_SPAM_LSTM) {
        /* the seed model: Embedding -> LSTM -> Dense(1, sigmoid), BCE, Adam */
        ck_assert_ok(llm_model_add(m, llm_layer_embedding(P_VOCAB, 16)));
        ck_assert_ok(llm_model_add(m, llm_layer_lstm(32, LLM_RETURN_LAST)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
        ck_assert_ok(llm_optimizer_adam(&opt, 1e-2f));
        loss = LLM_LOSS_BINARY_CROSSENTROPY;
    } else if (arch == ARCH_ENCODER) {
        /* the Transformer classifier: padding mask, attention, GELU MLP,
         * layernorm, masked mean pooling, AdamW */
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(P_VOCAB, P_T, 16)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 0)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
        ck_assert_ok(llm_optimizer_adamw(&opt, 3e-3f, 0.01f));
        loss = LLM_LOSS_BINARY_CROSSENTROPY;
    } else if (arch == ARCH_GPT) {
        /* a 2-block causal language model with a tied head */
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(P_VOCAB, P_T, 16)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 1)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 1)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_lm_head(P_VOCAB, 1)));
        ck_assert_ok(llm_optimizer_adamw(&opt, 3e-3f, 0.01f));
        loss = LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS;
    } else {
        /* more kernels: bidirectional GRU sequences, dropout, pooling,
         * layernorm, softmax with categorical cross-entropy, SGD momentum */
        ck_assert_ok(llm_model_add(m, llm_layer_embedding(P_VOCAB, 12)));
        ck_assert_ok(llm_model_add(m, llm_layer_bidirectional(llm_layer_gru(10, LLM_RETURN_SEQUENCES))));
        ck_assert_ok(llm_model_add(m, llm_layer_dropout(0.25f)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(8, LLM_ACT_GELU)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(3, LLM_ACT_SOFTMAX)));
        ck_assert_ok(llm_optimizer_sgd(&opt, 0.1f, 0.9f, 0));
        loss = LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    }
    ck_assert_ok(llm_model_compile(m, loss, opt, LLM_METRIC_ACCURACY));
    llm_optimizer_free(opt);

    int32_t x[P_N * P_T], ytok[P_N * P_T];
    float y[P_N], cls[P_N];
    parity_data(x, y, cls);
    if (arch == ARCH_GPT) gpt_data(x, ytok);
    const float *target = arch == ARCH_GRU_STACK ? cls : y;
    for (int step = 0; step < P_STEPS; step++) {
        int start = (step * P_BATCH) % P_N;
        llm_tensor *xt, *yt;
        ck_assert_ok(llm_tensor_from_host(&xt, be, LLM_DTYPE_I32, 2, (int64_t[]){ P_BATCH, P_T }, x + start * P_T,
                                          (size_t)P_BATCH * P_T * 4));
        if (arch == ARCH_GPT)
            ck_assert_ok(llm_tensor_from_host(&yt, be, LLM_DTYPE_I32, 2, (int64_t[]){ P_BATCH, P_T },
                                              ytok + start * P_T, (size_t)P_BATCH * P_T * 4));
        else
            ck_assert_ok(llm_tensor_from_host(&yt, be, LLM_DTYPE_F32, 1, (int64_t[]){ P_BATCH }, target + start,
                                              (size_t)P_BATCH * 4));
        ck_assert_ok(llm_model_train_on_batch(m, xt, yt, &r->loss[step], NULL));
        llm_tensor_free(xt);
        llm_tensor_free(yt);
    }
    int64_t count;
    ck_assert_ok(llm_model_param_count(m, &count));
    r->nparams = count;
    r->params = malloc((size_t)count * 4);
    int np;
    ck_assert_ok(llm_model_num_params(m, &np));
    int64_t off = 0;
    for (int i = 0; i < np; i++) {
        const char *name;
        int nd;
        int64_t shape[4], n = 1;
        ck_assert_ok(llm_model_param_info(m, i, &name, &nd, shape));
        for (int d = 0; d < nd; d++) n *= shape[d];
        ck_assert_ok(llm_model_get_param(m, name, r->params + off, (size_t)n * 4));
        off += n;
    }
    ck_assert_int_eq(off, count);
    llm_tensor *xt, *pt;
    ck_assert_ok(llm_tensor_from_host(&xt, be, LLM_DTYPE_I32, 2, (int64_t[]){ P_N, P_T }, x, sizeof x));
    ck_assert_ok(llm_model_predict(m, xt, &pt));
    int64_t pn;
    ck_assert_ok(llm_tensor_numel(pt, &pn));
    r->npred = pn;
    r->pred = malloc((size_t)pn * 4);
    ck_assert_ok(llm_tensor_to_host(pt, r->pred, (size_t)pn * 4));
    llm_tensor_free(xt);
    llm_tensor_free(pt);
    llm_model_free(m);
    llm_backend_free(be);
}

/* The worst differences are measured and printed first (gpu-check's summary
 * quotes that line), then held to the tolerances. */
static void parity_check(int arch, const char *name) {
    run_result cpu, gpu;
    memset(&cpu, 0, sizeof cpu);
    memset(&gpu, 0, sizeof gpu);
    run_model(LLM_BACKEND_CPU, arch, &cpu);
    run_model(LLM_BACKEND_CUDA, arch, &gpu);
    ck_assert_int_eq(cpu.nparams, gpu.nparams);
    ck_assert_int_eq(cpu.npred, gpu.npred);
    double worst_loss = 0, worst_param = 0, worst_pred = 0;
    int at_loss = 0;
    int64_t at_param = 0, at_pred = 0;
    for (int s = 0; s < P_STEPS; s++) {
        double d = fabs((double)cpu.loss[s] - gpu.loss[s]) / (1e-3 + fabs((double)cpu.loss[s]));
        if (!isfinite(gpu.loss[s])) d = INFINITY;
        if (d > worst_loss || s == 0) worst_loss = d, at_loss = s;
    }
    for (int64_t i = 0; i < cpu.nparams; i++) {
        /* relative beyond 2e-4 in absolute terms, as the tolerance below */
        double d = fabs((double)cpu.params[i] - gpu.params[i]) / (1 + 0.5 * fabs((double)cpu.params[i]));
        if (!(d <= worst_param)) worst_param = d, at_param = i;
    }
    for (int64_t i = 0; i < cpu.npred; i++) {
        double d = fabs((double)cpu.pred[i] - gpu.pred[i]);
        if (!(d <= worst_pred)) worst_pred = d, at_pred = i;
    }
    printf("gpu parity %s: %d steps, losses %.6f -> %.6f; max rel loss diff %.2e (step %d), "
           "max param diff %.2e (#%lld), max prediction diff %.2e (#%lld)\n",
           name, P_STEPS, (double)gpu.loss[0], (double)gpu.loss[P_STEPS - 1], worst_loss, at_loss, worst_param,
           (long long)at_param, worst_pred, (long long)at_pred);
    fflush(stdout);
    ck_assert_msg(worst_loss <= 1e-4, "%s step %d: loss cpu %.7g gpu %.7g", name, at_loss,
                  (double)cpu.loss[at_loss], (double)gpu.loss[at_loss]);
    ck_assert_msg(worst_param <= 2e-4, "%s: parameter %lld cpu %.7g gpu %.7g", name, (long long)at_param,
                  (double)cpu.params[at_param], (double)gpu.params[at_param]);
    ck_assert_msg(worst_pred <= 1e-4, "%s: prediction %lld cpu %.7g gpu %.7g", name, (long long)at_pred,
                  (double)cpu.pred[at_pred], (double)gpu.pred[at_pred]);
    free(cpu.params);
    free(gpu.params);
    free(cpu.pred);
    free(gpu.pred);
}

START_TEST(spam_model_parity) { parity_check(ARCH_SPAM_LSTM, "embedding-lstm-dense/bce/adam"); }
END_TEST

START_TEST(gru_stack_parity) { parity_check(ARCH_GRU_STACK, "bigru-dropout-pool-layernorm-softmax/sce/sgd"); }
END_TEST

START_TEST(encoder_parity) { parity_check(ARCH_ENCODER, "transformer-encoder-classifier/bce/adamw"); }
END_TEST

START_TEST(gpt_parity) { parity_check(ARCH_GPT, "gpt-2-blocks-tied-head/sce-logits/adamw"); }
END_TEST

Suite *suite_gpu(void) {
    Suite *s = suite_create("gpu");
    int avail = 0;
    int st = tu_probe_backend(LLM_BACKEND_CUDA, 0, 0, NULL, NULL, g_cuda_why, sizeof g_cuda_why, &avail);
    g_cuda_ok = st == LLM_OK && avail;

    TCase *tc = tcase_create("availability");
    tcase_set_timeout(tc, 60); /* loading the CUDA runtime; sanitizer builds are slower */
    tcase_add_test(tc, availability_answers_with_a_reason);
    tcase_add_test(tc, missing_module_is_unavailable);
    tcase_add_test(tc, bad_device_is_unavailable);
    suite_add_tcase(s, tc);

    if (!g_cuda_ok) {
        const char *req = getenv("LLM_TEST_REQUIRE_CUDA");
        if (req && strcmp(req, "1") == 0) {
            tc = tcase_create("required");
            tcase_add_test(tc, cuda_required_but_unavailable);
            suite_add_tcase(s, tc);
        } else {
            fprintf(stderr, "gpu: skipping the GPU cases (device, allocator, CPU/GPU model parity): %s\n",
                    g_cuda_why[0] ? g_cuda_why : "CUDA backend not available");
        }
        return s;
    }
    tc = tcase_create("device");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, describe_and_tensor_roundtrip);
    tcase_add_test(tc, allocator_reuses_blocks);
    tcase_add_test(tc, out_of_memory_is_a_status);
    tcase_set_tags(tc, "gpu");
    suite_add_tcase(s, tc);
    tc = tcase_create("parity");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, spam_model_parity);
    tcase_add_test(tc, gru_stack_parity);
    tcase_add_test(tc, encoder_parity);
    tcase_add_test(tc, gpt_parity);
    tcase_set_tags(tc, "gpu");
    suite_add_tcase(s, tc);
    return s;
}
