/* GPT-2 (124M shape by default, random weights) on this machine: generation
 * with the KV cache at batch 1 (greedy, after a prompt) and a training step
 * (AdamW, next-token cross-entropy), with the same options and last lines as
 * bench/gpt2_bench_torch.py (gen_tokens_per_s=..., train_tokens_per_s=...).
 *
 *   gpt2_bench [--layers 12 --dim 768 --heads 12 --vocab 50257 --ctx 1024
 *               --prompt 16 --gen 64 --batch 4 --seq 128 --steps 3 --warmup 1
 *               --threads 2 --what gen|train|both] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llm/llm.h>
#include "bench.h"

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Greedy generation of `gen` tokens after a prompt of `prompt` random ids. */
static int bench_generate(llm_model *m, int vocab, int prompt, int gen) {
    int32_t *ids = malloc((size_t)prompt * sizeof *ids), *out = malloc((size_t)gen * sizeof *out);
    if (!ids || !out) return 1;
    uint64_t s = 99;
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)(lcg(&s) % (uint64_t)vocab);
    llm_generate_options go;
    llm_generate_options_init(&go);
    go.temperature = 0.0f;
    go.max_tokens = 2;
    int64_t n = 0;
    CHECK(llm_model_generate(m, ids, prompt, &go, out, gen, &n)); /* warm-up: page in the weights */
    go.max_tokens = gen;
    double t0 = ex_now();
    CHECK(llm_model_generate(m, ids, prompt, &go, out, gen, &n));
    double el = ex_now() - t0;
    printf("generation: %d prompt tokens then %lld generated in %.2f s (prompt included)\n", prompt, (long long)n, el);
    printf("gen_tokens_per_s=%.2f\n", (double)n / el);
    free(ids);
    free(out);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_train(llm_backend *be, const llm_gpt2_options *go, int batch, int seq, int steps, int warmup) {
    llm_gpt2_options o = *go;
    o.seq_len = seq;
    llm_model *m;
    CHECK(llm_model_gpt2(&m, be, &o));
    llm_optimizer *opt;
    CHECK(llm_optimizer_adamw(&opt, 3e-4f, 0.1f));
    CHECK(llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, opt, LLM_METRIC_NONE));
    int32_t *x = malloc((size_t)batch * seq * 4), *y = malloc((size_t)batch * seq * 4);
    if (!x || !y) return 1;
    uint64_t s = 7;
    for (int i = 0; i < batch * seq; i++) {
        x[i] = (int32_t)(lcg(&s) % (uint64_t)o.vocab_size);
        y[i] = (int32_t)(lcg(&s) % (uint64_t)o.vocab_size);
    }
    llm_tensor *tx, *ty;
    CHECK(llm_tensor_from_host(&tx, be, LLM_DTYPE_I32, 2, (int64_t[]){ batch, seq }, x, (size_t)batch * seq * 4));
    CHECK(llm_tensor_from_host(&ty, be, LLM_DTYPE_I32, 2, (int64_t[]){ batch, seq }, y, (size_t)batch * seq * 4));
    double *t = malloc((size_t)steps * sizeof *t), total = 0;
    float loss = NAN;
    for (int i = 0; i < warmup + steps; i++) {
        double t0 = ex_now();
        CHECK(llm_model_train_on_batch(m, tx, ty, &loss, NULL));
        if (i >= warmup) total += t[i - warmup] = ex_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    printf("training: batch %d x %d tokens, step median %.0f ms (min %.0f), loss %.3f\n", batch, seq,
           t[steps / 2] * 1e3, t[0] * 1e3, (double)loss);
    printf("train_tokens_per_s=%.1f\n", (double)batch * seq * steps / total);
    free(t);
    free(x);
    free(y);
    llm_tensor_free(tx);
    llm_tensor_free(ty);
    llm_optimizer_free(opt);
    llm_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    llm_gpt2_options o;
    llm_gpt2_options_init(&o);
    o.n_layer = arg_int(argc, argv, "--layers", 12);
    o.n_embd = arg_int(argc, argv, "--dim", 768);
    o.n_head = arg_int(argc, argv, "--heads", 12);
    o.vocab_size = arg_int(argc, argv, "--vocab", 50257);
    o.n_positions = arg_int(argc, argv, "--ctx", 1024);
    int prompt = arg_int(argc, argv, "--prompt", 16), gen = arg_int(argc, argv, "--gen", 64);
    int batch = arg_int(argc, argv, "--batch", 4), seq = arg_int(argc, argv, "--seq", 128);
    int steps = arg_int(argc, argv, "--steps", 3), warmup = arg_int(argc, argv, "--warmup", 1);
    int threads = arg_int(argc, argv, "--threads", 2);
    const char *what = arg_str(argc, argv, "--what", "both");
    CHECK_RANGE("--prompt", prompt, 1);
    CHECK_RANGE("--gen", gen, 1);
    CHECK_RANGE("--steps", steps, 1);
    CHECK_RANGE("--batch", batch, 1);
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_backend *be;
    CHECK(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    printf("config: layers=%lld dim=%lld heads=%lld vocab=%lld ctx=%lld threads=%d libllm=%s\n",
           (long long)o.n_layer, (long long)o.n_embd, (long long)o.n_head, (long long)o.vocab_size,
           (long long)o.n_positions, threads, llm_version_string());
    int rc = 0;
    if (strcmp(what, "train") != 0) {
        llm_model *m;
        o.seq_len = prompt;
        CHECK(llm_model_gpt2(&m, be, &o));
        rc = bench_generate(m, (int)o.vocab_size, prompt, gen);
        llm_model_free(m);
    }
    if (!rc && strcmp(what, "gen") != 0) rc = bench_train(be, &o, batch, seq, steps, warmup);
    llm_backend_free(be);
    return rc;
}
