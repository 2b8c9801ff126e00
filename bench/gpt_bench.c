/* A small GPT's training speed, with the same options and last line as
 * ../shared/peers/torch_gpt_bench.py (tokens_per_s=...): pre-LayerNorm
 * blocks, causal attention, GELU MLP 4x, learned positions, tied head,
 * AdamW, next-token cross-entropy on random byte tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <llm/llm.h>
#include "bench.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    int vocab = arg_int(argc, argv, "--vocab", 256), ctx = arg_int(argc, argv, "--ctx", 128);
    int dim = arg_int(argc, argv, "--dim", 128), layers = arg_int(argc, argv, "--layers", 4);
    int heads = arg_int(argc, argv, "--heads", 4), batch = arg_int(argc, argv, "--batch", 16);
    int steps = arg_int(argc, argv, "--steps", 30), threads = arg_int(argc, argv, "--threads", 2);
    int warmup = arg_int(argc, argv, "--warmup", 3);
    double lr = atof(arg_str(argc, argv, "--lr", "3e-4"));
    uint64_t seed = strtoull(arg_str(argc, argv, "--seed", "1234"), NULL, 10);
    const char *backend = arg_str(argc, argv, "--backend", arg_str(argc, argv, "--device", "cpu"));
    CHECK_RANGE("--steps", steps, 1);
    CHECK_RANGE("--warmup", warmup, 0);
    CHECK_RANGE("--batch", batch, 1);

    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_backend *be;
    CHECK(llm_backend_create(&be, strcmp(backend, "cuda") == 0 ? LLM_BACKEND_CUDA : LLM_BACKEND_CPU, &bo));
    char desc[256];
    CHECK(llm_backend_describe(be, desc, sizeof desc, NULL));
    printf("config: vocab=%d ctx=%d dim=%d layers=%d heads=%d batch=%d steps=%d warmup=%d threads=%d libllm=%s %s\n",
           vocab, ctx, dim, layers, heads, batch, steps, warmup, threads, llm_version_string(), desc);

    llm_model *m;
    CHECK(llm_model_sequential(&m, be));
    CHECK(llm_model_set_seed(m, seed));
    llm_transformer_embedding_options eo;
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = vocab;
    eo.context = ctx;
    eo.dim = dim;
    eo.mask_zero = 0;
    CHECK(llm_model_add(m, llm_layer_transformer_embedding_ex(&eo)));
    for (int i = 0; i < layers; i++) CHECK(llm_model_add(m, llm_layer_transformer_block(heads, 1)));
    CHECK(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    CHECK(llm_model_add(m, llm_layer_lm_head(vocab, 1)));
    int64_t T = ctx;
    CHECK(llm_model_build(m, LLM_DTYPE_I32, 1, &T));
    llm_optimizer *opt;
    CHECK(llm_optimizer_adamw(&opt, (float)lr, 0.1f));
    CHECK(llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, opt, LLM_METRIC_NONE));
    int64_t nparam = 0;
    CHECK(llm_model_param_count(m, &nparam));
    /* matmul FLOPs per token as the peer counts them (masked half of attention included) */
    double fwd = (double)layers * (24.0 * dim * dim + 4.0 * ctx * dim) + 2.0 * dim * vocab, train_flops = 3 * fwd;
    printf("params=%lld train_flops_per_token=%.0f (matmul only)\n", (long long)nparam, train_flops);

    enum { NB = 8 };
    llm_tensor *xs[NB], *ys[NB];
    int32_t *d = malloc((size_t)batch * (ctx + 1) * 4), *hx = malloc((size_t)batch * ctx * 4), *hy = malloc((size_t)batch * ctx * 4);
    if (!d || !hx || !hy) return 1;
    uint64_t s = seed;
    for (int k = 0; k < NB; k++) {
        for (int i = 0; i < batch * (ctx + 1); i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            d[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
        }
        for (int b = 0; b < batch; b++) {
            memcpy(hx + b * ctx, d + b * (ctx + 1), (size_t)ctx * 4);
            memcpy(hy + b * ctx, d + b * (ctx + 1) + 1, (size_t)ctx * 4);
        }
        CHECK(llm_tensor_from_host(&xs[k], be, LLM_DTYPE_I32, 2, (int64_t[]){batch, ctx}, hx, (size_t)batch * ctx * 4));
        CHECK(llm_tensor_from_host(&ys[k], be, LLM_DTYPE_I32, 2, (int64_t[]){batch, ctx}, hy, (size_t)batch * ctx * 4));
    }
    double *times = malloc((size_t)(steps > 0 ? steps : 1) * sizeof *times), total = 0;
    float loss = NAN;
    for (int i = 0; i < warmup + steps; i++) {
        double t0 = ex_now();
        CHECK(llm_model_train_on_batch(m, xs[i % NB], ys[i % NB], &loss, NULL));
        double dt = ex_now() - t0;
        if (i >= warmup) { times[i - warmup] = dt; total += dt; }
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double tps = (double)batch * ctx * steps / total;
    printf("step_ms: median=%.2f min=%.2f max=%.2f final_loss=%.4f\n", times[steps / 2] * 1e3, times[0] * 1e3,
           times[steps - 1] * 1e3, (double)loss);
    printf("achieved_GFLOPs=%.2f (matmul FLOPs only)\n", tps * train_flops / 1e9);
    printf("tokens_per_s=%.1f\n", tps);
    for (int k = 0; k < NB; k++) { llm_tensor_free(xs[k]); llm_tensor_free(ys[k]); }
    free(d); free(hx); free(hy); free(times);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_backend_free(be);
    return 0;
}
