/* libFuzzer target: the BPE tokenizer loader on arbitrary bytes.
 *
 * Each input is given to llm_bpe_deserialize, which must either refuse it
 * with LLM_ERR_FORMAT and a message (and *out NULL), or accept it. The
 * format is canonical (one way to write each tokenizer), so an accepted
 * input must serialise back to exactly the same bytes. An accepted tokenizer
 * must then behave: every token has 1 .. LLM_BPE_MAX_CHUNK bytes, and a
 * fixed text and the input itself must encode to ids in range and decode
 * back to the same bytes. Nothing may crash, leak, read out of bounds or
 * hang; any broken contract abort()s.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/bpe_load/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(llm_status s, const char *what) {
    if (s == LLM_OK) return;
    fprintf(stderr, "fuzz_bpe_load: %s: status %d: %s\n", what, (int)s, llm_last_error());
    abort();
}

/* GPT-2's tokenizer (format version 2) has no special low ids: every id in
 * [0, vocab) is a token of 1 .. LLM_BPE_MAX_CHUNK bytes. */
static int gpt2;

static void round_trip(const llm_bpe *b, int32_t vocab, const char *text, size_t len) {
    size_t n = 0, again = 0, out = 0;
    must(llm_bpe_encode(b, text, len, NULL, 0, &n), "encode size");
    if (n > len) abort(); /* each id stands for at least one byte */
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    char *back = malloc(len ? len : 1);
    if (!ids || !back) abort();
    must(llm_bpe_encode(b, text, len, ids, n, &again), "encode");
    if (again != n) abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < (gpt2 ? 0 : LLM_BPE_BYTE_BASE) || ids[i] >= vocab) abort();
    must(llm_bpe_decode(b, ids, n, back, len, &out), "decode");
    if (out != len || (len && memcmp(back, text, len) != 0)) {
        fprintf(stderr, "fuzz_bpe_load: decode(encode(x)) != x\n");
        abort();
    }
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char fixed[] = "The committee met on Monday, the 4th of March 2024.\n  Caf\xc3\xa9 "
                                "\xe4\xbd\xa0\xe5\xa5\xbd\t\xff\xfe\x00\x01 ...!!! 1234567890 "
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa end";
    const char *raw = (const char *)data;
    llm_bpe *b = (llm_bpe *)&b; /* must come back NULL on failure */
    llm_clear_error();
    llm_status s = llm_bpe_deserialize(&b, raw, size);
    if (s != LLM_OK) {
        if (s != LLM_ERR_FORMAT || b != NULL || llm_last_error()[0] == '\0') {
            fprintf(stderr, "fuzz_bpe_load: refused with status %d, out %p, message \"%s\"\n",
                    (int)s, (void *)b, llm_last_error());
            abort();
        }
        return 0;
    }
    int32_t vocab = 0;
    must(llm_bpe_vocab_size(b, &vocab), "vocab size");
    gpt2 = size >= 9 && memcmp(raw, "llm-bpe 2", 9) == 0;
    if (vocab < (gpt2 ? 256 : LLM_BPE_FIRST_MERGE) || vocab > LLM_BPE_MAX_VOCAB) abort();

    /* canonical: the same bytes come back */
    size_t len = 0, len2 = 0;
    must(llm_bpe_serialize(b, NULL, 0, &len), "serialize size");
    char *ser = malloc(len ? len : 1);
    if (!ser) abort();
    must(llm_bpe_serialize(b, ser, len, &len2), "serialize");
    if (len != size || len2 != len || memcmp(ser, raw, size) != 0) {
        fprintf(stderr, "fuzz_bpe_load: accepted input does not serialise back to itself\n");
        abort();
    }
    free(ser);

    for (int32_t id = 0; id < vocab; id++) {
        const char *tb;
        size_t tl;
        must(llm_bpe_token_bytes(b, id, &tb, &tl), "token bytes");
        if (id < LLM_BPE_BYTE_BASE && !gpt2 ? tl != 0 : (tl < 1 || tl > LLM_BPE_MAX_CHUNK)) abort();
        if (tb[tl] != '\0') abort();
    }
    round_trip(b, vocab, fixed, sizeof fixed - 1);
    round_trip(b, vocab, raw, size);
    llm_bpe_free(b);
    return 0;
}
