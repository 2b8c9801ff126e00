/* gpt2_logits: loads a GPT-2 checkpoint with llm_model_load_gpt2 and runs it,
 * for tools/gpt2_reference.py's comparison with PyTorch.
 *
 *   gpt2_logits --model PATH --ids FILE [--logits OUT.f32] [--generate N]
 *               [--export DIR]
 *
 * FILE holds the prompt's token ids (whitespace-separated). The logits of
 * every prompt position ([T, vocab] float32, host order) go to OUT.f32,
 * computed by llm_model_predict on a model built for T tokens; with
 * --generate N, N greedy tokens (llm_model_generate at temperature 0, the KV
 * cache decoder) are printed on stdout; with --export DIR the model is
 * written back with llm_model_save_gpt2. One CPU thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"

static int fail(const char *what, llm_status s) {
    fprintf(stderr, "gpt2_logits: %s: %s: %s\n", what, llm_status_string(s), llm_last_error());
    return 1;
}

static int read_ids(const char *path, int32_t **ids, int64_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "gpt2_logits: %s: %s\n", path, strerror(errno)); return 1; }
    size_t cap = 256;
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    long v;
    while (*ids && fscanf(f, "%ld", &v) == 1) {
        if ((size_t)*n == cap) {
            int32_t *p = realloc(*ids, 2 * cap * sizeof **ids);
            if (!p) break;
            *ids = p;
            cap *= 2;
        }
        (*ids)[(*n)++] = (int32_t)v;
    }
    fclose(f);
    if (!*ids || *n == 0) { fprintf(stderr, "gpt2_logits: %s: no ids\n", path); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *ids_path = NULL, *logits_path = NULL, *export_dir = NULL;
    long generate = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--model") == 0) model = argv[i + 1];
        else if (strcmp(argv[i], "--ids") == 0) ids_path = argv[i + 1];
        else if (strcmp(argv[i], "--logits") == 0) logits_path = argv[i + 1];
        else if (strcmp(argv[i], "--generate") == 0) generate = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--export") == 0) export_dir = argv[i + 1];
        else { fprintf(stderr, "gpt2_logits: unknown option %s\n", argv[i]); return 2; }
    }
    if (!model || !ids_path || generate < 0) {
        fprintf(stderr, "usage: gpt2_logits --model PATH --ids FILE [--logits OUT.f32] [--generate N] [--export DIR]\n");
        return 2;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    if (read_ids(ids_path, &ids, &n)) return 1;
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    llm_backend *be = NULL;
    llm_model *m = NULL;
    llm_tensor *x = NULL, *y = NULL;
    float *logits = NULL;
    int32_t *gen = NULL;
    int rc = 1;
    llm_status s;
    if ((s = llm_backend_create(&be, LLM_BACKEND_CPU, &bo)) != LLM_OK) { rc = fail("backend", s); goto out; }
    if ((s = llm_model_load_gpt2(&m, be, model, n)) != LLM_OK) { rc = fail(model, s); goto out; }
    if (logits_path) {
        int64_t shape[2] = { 1, n }, numel = 0;
        if ((s = llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, shape, ids, (size_t)n * 4)) != LLM_OK ||
            (s = llm_model_predict(m, x, &y)) != LLM_OK || (s = llm_tensor_numel(y, &numel)) != LLM_OK) {
            rc = fail("predict", s);
            goto out;
        }
        logits = malloc((size_t)numel * 4);
        if (!logits || (s = llm_tensor_to_host(y, logits, (size_t)numel * 4)) != LLM_OK) { rc = fail("logits", s); goto out; }
        FILE *f = fopen(logits_path, "wb");
        if (!f || fwrite(logits, 4, (size_t)numel, f) != (size_t)numel || fclose(f) != 0) {
            fprintf(stderr, "gpt2_logits: cannot write %s\n", logits_path);
            goto out;
        }
    }
    if (generate > 0) {
        llm_generate_options go;
        llm_generate_options_init(&go);
        go.max_tokens = generate;
        go.temperature = 0.0f;
        int64_t got = 0;
        gen = malloc((size_t)generate * sizeof *gen);
        if (!gen || (s = llm_model_generate(m, ids, n, &go, gen, generate, &got)) != LLM_OK) { rc = fail("generate", s); goto out; }
        for (int64_t i = 0; i < got; i++) printf("%s%d", i ? " " : "", (int)gen[i]);
        printf("\n");
    }
    if (export_dir && (s = llm_model_save_gpt2(m, export_dir)) != LLM_OK) { rc = fail(export_dir, s); goto out; }
    rc = 0;
out:
    free(ids);
    free(logits);
    free(gen);
    llm_tensor_free(x);
    llm_tensor_free(y);
    llm_model_free(m);
    llm_backend_free(be);
    return rc;
}
