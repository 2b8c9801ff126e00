/* libFuzzer target: model files from strangers.
 *
 * Each input is one would-be model file. It goes through the safetensors
 * parser on its memory image (every tensor's bytes are read, so an
 * out-of-bounds range shows up under ASan), then through llm_model_load
 * from an in-memory file (a memfd opened by its /proc path, so no disk is
 * touched), on a one-thread CPU backend. A model that loads is then used:
 * summary, parameters, metadata, a prediction on a small batch shaped as
 * its architecture says and, with a text pipeline, a prediction on text.
 * Nothing may crash, leak, read out of bounds or hang; errors are expected.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/model_load/. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "llm/llm.h"
#include "io/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PREDICT_ELEMS 4096 /* the sample size a prediction is tried with */

static llm_backend *be;
static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 1;
    if (llm_backend_create(&be, LLM_BACKEND_CPU, &o) != LLM_OK) {
        fprintf(stderr, "fuzz_model_load: no CPU backend: %s\n", llm_last_error());
        abort();
    }
    fd = memfd_create("llm_fuzz_model", 0);
    if (fd < 0) {
        perror("fuzz_model_load: memfd_create");
        abort();
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void put_file(const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
}

/* Reads every byte the parser hands out, so that ASan checks the ranges. */
static void walk(const llm__safetensors *f) {
    volatile uint32_t sink = 0;
    int n = llm__safetensors_count(f);
    for (int i = 0; i < n; i++) {
        const llm__st_tensor *t = llm__safetensors_tensor(f, i);
        if (llm__safetensors_find(f, t->name) != t) abort(); /* names are unique */
        const unsigned char *p = t->data;
        for (size_t k = 0; k < t->bytes; k++) sink += p[k];
    }
    if (llm__safetensors_tensor(f, n) != NULL || llm__safetensors_tensor(f, -1) != NULL) abort();
    int nm = llm__safetensors_meta_count(f);
    for (int i = 0; i < nm; i++) {
        const llm__st_meta *kv = llm__safetensors_meta_at(f, i);
        sink += (uint32_t)strlen(kv->key) + (uint32_t)strlen(kv->value);
        if (llm__safetensors_meta(f, kv->key) == NULL) abort();
    }
    (void)sink;
}

/* The input dtype and shape the architecture names, or 0 when it is not
 * usable for a small prediction. */
static int input_of(const llm__safetensors *f, llm_dtype *dtype, int *ndim, int64_t *shape) {
    const char *arch = llm__safetensors_meta(f, "libllm.architecture");
    if (!arch) return 0;
    cJSON *root = cJSON_Parse(arch);
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(input, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(input, "shape");
    int ok = cJSON_IsString(dt) && cJSON_IsArray(sh);
    if (ok) *dtype = strcmp(dt->valuestring, "int32") == 0 ? LLM_DTYPE_I32 : LLM_DTYPE_F32;
    int64_t elems = 1;
    *ndim = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        if (!ok) break;
        if (*ndim >= LLM_MAX_DIMS - 1 || !cJSON_IsNumber(d) || !(d->valuedouble >= 1 && d->valuedouble <= MAX_PREDICT_ELEMS)) {
            ok = 0;
            break;
        }
        shape[++*ndim] = (int64_t)d->valuedouble;
        elems *= shape[*ndim];
        if (elems > MAX_PREDICT_ELEMS) ok = 0;
    }
    cJSON_Delete(root);
    return ok && *ndim > 0;
}

/* Summary, parameter count and every parameter (which must be finite). */
static void use_params(llm_model *m) {
    char buf[256];
    size_t needed;
    int64_t count;
    llm_model_summary(m, buf, sizeof buf, &needed);
    llm_model_param_count(m, &count);
    int np = 0;
    llm_model_num_params(m, &np);
    for (int i = 0; i < np; i++) {
        const char *name;
        int nd;
        int64_t shape[LLM_MAX_DIMS];
        if (llm_model_param_info(m, i, &name, &nd, shape) != LLM_OK) abort();
        size_t bytes = 4;
        for (int k = 0; k < nd; k++) bytes *= (size_t)shape[k];
        float *w = malloc(bytes);
        if (!w) abort();
        if (llm_model_get_param(m, name, w, bytes) != LLM_OK) abort();
        for (size_t k = 0; k < bytes / 4; k++) {
            if (!isfinite(w[k])) { /* the loader promises finite weights */
                fprintf(stderr, "fuzz_model_load: loaded weight %s[%zu] = %g\n", name, k, (double)w[k]);
                abort();
            }
        }
        free(w);
    }
}

static void use_model(llm_model *m, const llm__safetensors *f) {
    const char *v;
    llm_model_get_metadata(m, "class_names", &v);
    int members = 0;
    llm_model_ensemble_size(m, &members);
    if (members > 0) { /* an ensemble: its members, and text through all of them */
        for (int i = 0; i < members; i++) {
            llm_model *member = NULL;
            if (llm_model_ensemble_member(m, i, &member) != LLM_OK) abort();
            use_params(member);
        }
        static const char mail[] = "Subject: cheap pills\r\n\r\nbuy now\r\n";
        float y[2];
        for (size_t count = 1; count <= 2; count++) llm_model_predict_text(m, mail, sizeof mail - 1, y, count);
        return;
    }
    use_params(m);

    /* one batch of two samples */
    llm_dtype dtype;
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    if (!input_of(f, &dtype, &ndim, shape)) return;
    shape[0] = 2;
    int64_t n = 2;
    for (int k = 1; k <= ndim; k++) n *= shape[k];
    int32_t *x = calloc((size_t)n, 4);
    if (!x) abort();
    for (int64_t k = 0; k < n; k++) {
        if (dtype == LLM_DTYPE_I32) x[k] = (int32_t)(k % 3);
        else ((float *)x)[k] = (float)(k % 5) * 0.25f - 0.5f;
    }
    llm_tensor *in = NULL, *out = NULL;
    int64_t out_elems = 0;
    if (llm_tensor_from_host(&in, be, dtype, ndim + 1, shape, x, (size_t)n * 4) == LLM_OK &&
        llm_model_predict(m, in, &out) == LLM_OK) {
        llm_tensor_numel(out, &out_elems);
        out_elems /= 2;
    }
    llm_tensor_free(in);
    llm_tensor_free(out);
    free(x);

    const llm_vocab *vocab;
    if (out_elems > 0 && llm_model_vocab(m, &vocab) == LLM_OK) {
        static const char mail[] = "From: a@example.com\r\nSubject: cheap pills\r\n\r\nbuy now, monday 42\r\n";
        float *y = malloc((size_t)out_elems * 4);
        if (!y) abort();
        llm_model_predict_text(m, mail, sizeof mail - 1, y, (size_t)out_elems);
        free(y);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llm__safetensors *f = NULL;
    if (llm__safetensors_parse(&f, data, size) == LLM_OK) walk(f);

    put_file(data, size);
    llm_model *m = NULL;
    llm_status s = llm_model_load(&m, be, path);
    if (s == LLM_OK) {
        if (!m || !f) abort(); /* the file parsed as memory too */
        use_model(m, f);
    } else if (m != NULL || (s != LLM_ERR_FORMAT && s != LLM_ERR_OUT_OF_MEMORY)) {
        /* a bad file is LLM_ERR_FORMAT (or out of memory), never anything else */
        fprintf(stderr, "fuzz_model_load: status %d: %s\n", (int)s, llm_last_error());
        abort();
    }
    llm_model_free(m);
    llm__safetensors_close(f);
    return 0;
}
