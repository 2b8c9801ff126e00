/* Shared helpers for the Check suites. */
#ifndef LLM_TESTUTIL_H
#define LLM_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "llm/llm.h"

/* Every suite is a function listed in tests/main.c. */
Suite *suite_status(void);
Suite *suite_tensor(void);
Suite *suite_backend_ops(void);
Suite *suite_gradcheck(void);
Suite *suite_model(void);
Suite *suite_model_io(void);
Suite *suite_compat_v12(void);
Suite *suite_kinds(void);
Suite *suite_graph(void);
Suite *suite_ensemble(void);
Suite *suite_torch_parity(void);
Suite *suite_lstm_bits(void);
Suite *suite_gpt_bits(void);
Suite *suite_transformer(void);
Suite *suite_text(void);
Suite *suite_bpe(void);
Suite *suite_metrics(void);
Suite *suite_safetensors(void);
Suite *suite_examples(void);
Suite *suite_server(void);
Suite *suite_gpu(void);
Suite *suite_hardening(void);
Suite *suite_concurrency(void);
Suite *suite_dist(void);
Suite *suite_lifetime(void);
Suite *suite_onnx(void);
Suite *suite_seed(void);
Suite *suite_layout(void);
Suite *suite_gpt2(void);
Suite *suite_crossval(void);
Suite *suite_text_features(void);

/* tests/testutil.c: a monotonic clock in seconds, and the folder of the
 * example programs ($LLM_BIN_DIR, else beside this runner's build, else
 * ../build/bin). */
double tu_now(void);
const char *tu_bin_dir(void);
/* The whole of a file, NUL-terminated (free it), or NULL when it cannot be
 * read. */
char *tu_read_text(const char *path);
/* In a child process, optionally with env=value set: llm_backend_is_available
 * (mode 0) or llm_backend_create on `device` (mode 1) for a backend kind.
 * Returns the child's status; *available and msg (its llm_last_error()). */
int tu_probe_backend(llm_backend_kind kind, int mode, int device, const char *env, const char *value, char *msg,
                     size_t len, int *available);

/* tests/gradcheck.c: compiles m (built) with `loss`, gives every parameter
 * random values and compares the analytic gradient of every `stride`-th
 * element (all for 1) with a central difference of the loss on x, y; also
 * that the same weights give the same loss and gradients again. */
void tu_gradcheck(llm_model *m, llm_loss loss, const llm_tensor *x, const llm_tensor *y, const char *label,
                  int64_t stride);

/* Asserts that a call failed with `expected` and left a non-empty message. */
#define ck_assert_fails(call, expected) do { \
        llm_clear_error(); \
        llm_status st__ = (call); \
        ck_assert_msg(st__ == (expected), "%s returned %d (%s), expected %d; error: %s", #call, \
                      (int)st__, llm_status_string(st__), (int)(expected), llm_last_error()); \
        ck_assert_msg(llm_last_error()[0] != '\0', "%s left no error message", #call); \
    } while (0)

#define ck_assert_ok(call) do { \
        llm_status st__ = (call); \
        ck_assert_msg(st__ == LLM_OK, "%s failed: %s: %s", #call, llm_status_string(st__), \
                      llm_last_error()); \
    } while (0)

/* Deterministic test data: uniform in [lo, hi). */
static inline uint64_t tu_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline float tu_uniform(uint64_t *state, float lo, float hi) {
    return lo + (hi - lo) * (float)((tu_next(state) >> 40) * (1.0 / 16777216.0));
}
static inline void tu_fill(float *x, int64_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) x[i] = tu_uniform(&s, lo, hi);
}

/* max |a - b| / (atol + rtol |b|) <= 1 */
static inline int tu_close(const float *a, const float *b, int64_t n, double atol, double rtol,
                           int64_t *bad) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) { if (bad) *bad = i; return 0; }
    }
    return 1;
}

#endif
