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

/* Ends main with a message when a count is out of range. */
#define CHECK_RANGE(name, v, lo) do { if ((v) < (lo)) { \
    fprintf(stderr, "%s must be at least %d, got %d\n", (name), (lo), (v)); return 2; } } while (0)

#endif /* LLM_BENCH_H */
