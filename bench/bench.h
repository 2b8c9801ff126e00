/* What the benchmark programs share: the examples' helpers (ex_now,
 * ex_fast_blas), a status check that ends main, and "--name VALUE" options
 * with defaults, as the peer scripts take them. */
#ifndef LLM_BENCH_H
#define LLM_BENCH_H

#include <stdlib.h>
#include <string.h>
#include "../examples/common.h"

#define CHECK(call) do { llm_status s_ = (call); if (s_ != LLM_OK) { \
    fprintf(stderr, "%s: %s\n", llm_status_string(s_), llm_last_error()); return 1; } } while (0)

/* the value after --name, or def */
EX_UNUSED static const char *arg_str(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i + 1 < argc; i++) if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

EX_UNUSED static int arg_int(int argc, char **argv, const char *name, int def) {
    const char *v = arg_str(argc, argv, name, NULL);
    return v ? atoi(v) : def;
}

/* The seed model both LSTM benchmarks train: Embedding -> LSTM -> Dense(1,
 * sigmoid), Adam 1e-3, binary cross-entropy, as the peer script. */
EX_UNUSED static llm_status bench_seed_model(llm_backend *be, int vocab, int embed, int hidden, llm_model **out) {
    llm_model *m;
    llm_optimizer *adam = NULL;
    llm_status s = llm_model_sequential(&m, be);
    if (s != LLM_OK) return s;
    if ((s = llm_model_add(m, llm_layer_embedding(vocab, embed))) == LLM_OK &&
        (s = llm_model_add(m, llm_layer_lstm(hidden, LLM_RETURN_LAST))) == LLM_OK &&
        (s = llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID))) == LLM_OK &&
        (s = llm_optimizer_adam(&adam, 1e-3f)) == LLM_OK)
        s = llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_NONE);
    llm_optimizer_free(adam);
    if (s != LLM_OK) { llm_model_free(m); return s; }
    *out = m;
    return LLM_OK;
}

/* Ends main with a message when a count is out of range. */
#define CHECK_RANGE(name, v, lo) do { if ((v) < (lo)) { \
    fprintf(stderr, "%s must be at least %d, got %d\n", (name), (lo), (v)); return 2; } } while (0)

#endif /* LLM_BENCH_H */
