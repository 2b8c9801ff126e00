/* libFuzzer target: GPT-2 checkpoints and GPT-2 tokenizer files from strangers.
 *
 * The first byte of an input picks what the rest is:
 *   0  an llm.c checkpoint: llm_model_load_gpt2 on it (an in-memory file, a
 *      memfd opened by its /proc path)
 *   1  a Hugging Face checkpoint: a little-endian uint16 length n, n bytes of
 *      config.json, then model.safetensors (the memfd), loaded as
 *      llm_model_load_gpt2 loads a folder
 *   2  GPT-2's tokenizer: a little-endian uint32 length n, n bytes of
 *      vocab.json, then merges.txt, given to llm_bpe_from_gpt2
 * A refusal must be LLM_ERR_FORMAT (or LLM_ERR_IO / _OUT_OF_MEMORY /
 * _INVALID_ARGUMENT for a seq_len the file cannot take) with a message. A
 * model that loads runs one prediction and exports itself; a tokenizer that
 * loads must decode(encode(x)) == x on a fixed text and on the input, and
 * serialise and deserialise to the same tokenizer. Nothing may crash, leak,
 * read out of bounds or hang; a broken contract abort()s.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/gpt2_load/ (written by
 * make_seeds.c from tests/data/gpt2/). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "llm/llm.h"
#include "nn/gpt2_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static llm_backend *be;
static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 1;
    if (llm_backend_create(&be, LLM_BACKEND_CPU, &o) != LLM_OK) abort();
    fd = memfd_create("llm_fuzz_gpt2", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void put_file(const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0) abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
}

static void refusal(llm_status s, const void *out) {
    if (out) abort();
    if (s != LLM_ERR_FORMAT && s != LLM_ERR_IO && s != LLM_ERR_OUT_OF_MEMORY && s != LLM_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "fuzz_gpt2_load: unexpected status %d: %s\n", (int)s, llm_last_error());
        abort();
    }
    if (!llm_last_error()[0]) abort();
}

static void use_model(llm_model *m) {
    int32_t id = 0;
    llm_tensor *x = NULL, *y = NULL;
    if (llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ 1, 1 }, &id, 4) == LLM_OK)
        (void)llm_model_predict(m, x, &y);
    llm_tensor_free(x);
    llm_tensor_free(y);
    char dir[] = "/tmp/llm_fuzz_gpt2_XXXXXX";
    if (mkdtemp(dir)) {
        if (llm_model_save_gpt2(m, dir) != LLM_OK) abort();
        static const char *const files[] = { "model.safetensors", "config.json", "vocab.json", "merges.txt" };
        for (int i = 0; i < 4; i++) {
            char p[96];
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    llm_model_free(m);
}

static void round_trip(const llm_bpe *b, const char *text, size_t len) {
    size_t n = 0, out = 0;
    if (llm_bpe_encode(b, text, len, NULL, 0, &n) != LLM_OK || n > len) abort();
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    char *back = malloc(len ? len : 1);
    if (!ids || !back) abort();
    if (llm_bpe_encode(b, text, len, ids, n, &n) != LLM_OK) abort();
    if (llm_bpe_decode(b, ids, n, back, len, &out) != LLM_OK || out != len || (len && memcmp(back, text, len))) {
        fprintf(stderr, "fuzz_gpt2_load: decode(encode(x)) != x\n");
        abort();
    }
    free(ids);
    free(back);
}

static void tokenizer(const uint8_t *data, size_t size) {
    if (size < 4) return;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (n > size - 4) n = size - 4;
    llm_bpe *b = NULL, *c = NULL;
    llm_status s = llm_bpe_from_gpt2(&b, (const char *)data + 4, n, (const char *)data + 4 + n, size - 4 - n);
    if (s != LLM_OK) {
        refusal(s, b);
        return;
    }
    static const char fixed[] = "They'll see the  numbers 1234,\n\xc3\xa9t\xc3\xa9 \xff\xfe\xe4\xb8\xad!!";
    round_trip(b, fixed, sizeof fixed - 1);
    round_trip(b, (const char *)data, size);
    size_t len = 0;
    if (llm_bpe_serialize(b, NULL, 0, &len) != LLM_OK) abort();
    char *ser = malloc(len);
    if (!ser || llm_bpe_serialize(b, ser, len, &len) != LLM_OK || llm_bpe_deserialize(&c, ser, len) != LLM_OK) abort();
    int32_t v1, v2;
    llm_bpe_vocab_size(b, &v1);
    llm_bpe_vocab_size(c, &v2);
    if (v1 != v2) abort();
    free(ser);
    llm_bpe_free(c);
    llm_bpe_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    llm_model *m = NULL;
    llm_status s;
    switch (data[0] % 3) {
    case 0:
        put_file(data + 1, size - 1);
        s = llm_model_load_gpt2(&m, be, path, 1);
        break;
    case 1: {
        if (size < 3) return 0;
        size_t n = (size_t)data[1] | (size_t)data[2] << 8;
        if (n > size - 3) n = size - 3;
        put_file(data + 3 + n, size - 3 - n);
        s = llm__gpt2_load_hf(&m, be, path, (const char *)data + 3, n, "config.json", 1);
        break;
    }
    default:
        tokenizer(data + 1, size - 1);
        return 0;
    }
    if (s == LLM_OK) use_model(m);
    else refusal(s, m);
    return 0;
}
