/* predict_ids: runs a saved model on rows of token ids, for checks against
 * other implementations (tools/check_torch_interop.py).
 *
 *   predict_ids MODEL.safetensors < rows
 *
 * Each input line is one row of int32 ids separated by spaces (every row as
 * long as the model's input); blank lines are skipped. All rows go through
 * llm_model_predict as one batch on a one-thread CPU backend, and each
 * row's outputs are printed on one line, space-separated, with 9
 * significant digits (enough to round-trip a float). Exit status 0 on
 * success, 1 on any error (the reason on stderr). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"

static int fail(const char *what, const char *why) {
    fprintf(stderr, "predict_ids: %s: %s\n", what, why);
    return 1;
}

/* Appends the ids of one line to *ids; returns how many, or -1. */
static int64_t parse_row(const char *line, int32_t **ids, size_t *n, size_t *cap) {
    int64_t count = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) return count;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) return -1;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 1024;
            int32_t *bigger = realloc(*ids, c * sizeof **ids);
            if (!bigger) return -1;
            *ids = bigger;
            *cap = c;
        }
        (*ids)[(*n)++] = (int32_t)v;
        count++;
        p = end;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors < rows\n", argv[0]);
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int64_t rows = 0, width = -1;
    char *line = NULL;
    size_t line_cap = 0;
    while (getline(&line, &line_cap, stdin) >= 0) {
        int64_t k = parse_row(line, &ids, &n, &cap);
        if (k < 0) { free(line); free(ids); return fail("stdin", "not a row of int32 ids (or out of memory)"); }
        if (k == 0) continue;
        if (width >= 0 && k != width) { free(line); free(ids); return fail("stdin", "rows of different lengths"); }
        width = k;
        rows++;
    }
    free(line);
    if (rows == 0) { free(ids); return fail("stdin", "no rows"); }

    llm_backend *be = NULL;
    llm_model *m = NULL;
    llm_tensor *x = NULL, *y = NULL;
    float *out = NULL;
    int rc = 1;
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    int64_t numel = 0;
    if (llm_backend_create(&be, LLM_BACKEND_CPU, &bo) != LLM_OK) { fail("backend", llm_last_error()); goto done; }
    if (llm_model_load(&m, be, argv[1]) != LLM_OK) { fail(argv[1], llm_last_error()); goto done; }
    if (llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ rows, width }, ids, n * sizeof *ids) != LLM_OK ||
        llm_model_predict(m, x, &y) != LLM_OK || llm_tensor_numel(y, &numel) != LLM_OK) {
        fail("predict", llm_last_error());
        goto done;
    }
    out = malloc((size_t)numel * sizeof *out);
    if (!out) { fail("predict", "out of memory"); goto done; }
    if (llm_tensor_to_host(y, out, (size_t)numel * sizeof *out) != LLM_OK) { fail("predict", llm_last_error()); goto done; }
    int64_t per = numel / rows;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < per; j++) printf("%.9g%c", out[r * per + j], j + 1 < per ? ' ' : '\n');
    rc = fflush(stdout) == 0 ? 0 : fail("stdout", strerror(errno));
done:
    free(out);
    free(ids);
    llm_tensor_free(x);
    llm_tensor_free(y);
    llm_model_free(m);
    llm_backend_free(be);
    return rc;
}
