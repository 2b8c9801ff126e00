/* libFuzzer target: the tokenizers on arbitrary bytes.
 *
 * The input is text. The word tokenizer (llm_tokenize, llm_tokenize_join)
 * runs with its defaults and with option combinations picked from the input,
 * and is checked against its contract (tokens of 1 .. max_token_length
 * bytes, or whole fold markers; join agrees with the tokens). The byte-level
 * BPE must give one id per byte (byte + 2) and decode back exactly; a BPE
 * trained at start-up on English, and a BPE trained on the input itself
 * (min_frequency 1 or more, so it learns from anything), must both
 * round-trip the input exactly with no more ids than bytes (the last one
 * also through the size query, and with the same ids twice). Nothing may
 * crash, leak, read out of bounds or hang; any broken contract abort()s.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/tokenizer/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static llm_bpe *bytes_bpe, *english_bpe;

static void must(llm_status s, const char *what) {
    if (s == LLM_OK) return;
    fprintf(stderr, "fuzz_tokenizer: %s: status %d: %s\n", what, (int)s, llm_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static const char text[] =
        "The committee met on Monday to review the budget for the coming year. Members agreed "
        "that the roads and the schools needed more money, and that the city should borrow less "
        "than it did last year. After a long debate, the chairman asked for a vote; the motion "
        "passed by seven votes to three. The next meeting will be held in the town hall at 10:30 "
        "on the 4th of March. Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e, "
        "\xe4\xbd\xa0\xe5\xa5\xbd.\n";
    char big[sizeof text * 8];
    for (int i = 0; i < 8; i++) memcpy(big + i * (sizeof text - 1), text, sizeof text - 1);
    must(llm_bpe_create_bytes(&bytes_bpe), "create bytes");
    llm_bpe_train_options o;
    llm_bpe_train_options_init(&o);
    o.vocab_size = 400;
    must(llm_bpe_train(&english_bpe, big, 8 * (sizeof text - 1), &o), "train english");
    return 0;
}

/* A small hash of the input picks the options, so mutations explore them. */
static uint32_t mix(const uint8_t *data, size_t size) {
    uint32_t h = 2166136261u ^ (uint32_t)size;
    size_t step = size / 64 + 1;
    for (size_t i = 0; i < size; i += step) h = (h ^ data[i]) * 16777619u;
    return h;
}

struct tok_check {
    int max_len;
    size_t total; /* bytes of all tokens, +1 for each separator */
    int64_t count;
};

static int on_token(const char *token, size_t len, void *user) {
    struct tok_check *c = user;
    /* the fold markers (<num>, <url>, <email>) are whole whatever the cut */
    int marker = len >= 5 && token[0] == '<' && token[len - 1] == '>';
    if (len == 0 || (len > (size_t)c->max_len && !marker)) abort();
    volatile char sink = 0;
    for (size_t i = 0; i < len; i++) sink ^= token[i]; /* in bounds under ASan */
    (void)sink;
    c->total += len + (c->count ? 1 : 0);
    c->count++;
    return 0;
}

static void word_tokens(const char *text, size_t len, const llm_tokenizer_options *tok) {
    struct tok_check c = {tok ? tok->max_token_length : 64, 0, 0};
    must(llm_tokenize(text, len, tok, on_token, &c), "llm_tokenize");
    size_t needed = 0, again = 0;
    must(llm_tokenize_join(text, len, tok, NULL, 0, &needed), "join size");
    if (needed != c.total) abort(); /* the tokens joined by single spaces */
    char *all = malloc(needed + 1);
    if (!all) abort();
    must(llm_tokenize_join(text, len, tok, all, needed + 1, &again), "join");
    if (again != needed || strlen(all) != needed) abort();
    free(all);
}

/* encode/decode through b: exact bytes back, ids in range; with `full`,
 * also the size query and the same ids a second time. */
static void bpe_round_trip(const llm_bpe *b, const char *text, size_t len, int bytes_only,
                           int full) {
    int32_t vocab;
    must(llm_bpe_vocab_size(b, &vocab), "vocab size");
    size_t n = 0, n2 = 0, out = 0;
    /* an id stands for at least one byte, so len ids are always enough */
    int32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    char *back = malloc(len ? len : 1);
    if (!ids || !back) abort();
    must(llm_bpe_encode(b, text, len, ids, len, &n), "encode");
    if (n > len || (bytes_only && n != len)) abort();
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < LLM_BPE_BYTE_BASE || ids[i] >= vocab) abort();
        if (bytes_only && ids[i] != LLM_BPE_BYTE_BASE + (unsigned char)text[i]) abort();
    }
    if (full) {
        must(llm_bpe_encode(b, text, len, NULL, 0, &n2), "encode size");
        if (n2 != n) abort();
        int32_t *ids2 = malloc((n ? n : 1) * sizeof *ids2);
        if (!ids2) abort();
        must(llm_bpe_encode(b, text, len, ids2, n, &n2), "encode again");
        if (n2 != n || (n && memcmp(ids, ids2, n * sizeof *ids) != 0)) abort();
        free(ids2);
    }
    must(llm_bpe_decode(b, ids, n, back, len, &out), "decode");
    if (out != len || (len && memcmp(back, text, len) != 0)) {
        fprintf(stderr, "fuzz_tokenizer: decode(encode(x)) != x\n");
        abort();
    }
    /* token by token, as a streaming caller would */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tb;
        size_t tl;
        must(llm_bpe_token_bytes(b, ids[i], &tb, &tl), "token bytes");
        if (tl == 0 || at + tl > len || memcmp(tb, text + at, tl) != 0) abort();
        at += tl;
    }
    if (at != len) abort();
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    uint32_t h = mix(data, size);

    word_tokens(text, size, NULL);
    llm_tokenizer_options tok;
    llm_tokenizer_options_init(&tok);
    tok.lowercase = (h >> 0) & 1;
    tok.keep_high_bytes = (h >> 1) & 1;
    tok.fold_numbers = (h >> 2) & 1;
    tok.fold_urls = (h >> 3) & 1;
    tok.fold_emails = (h >> 4) & 1;
    tok.max_token_length = (h >> 5) & 1 ? 1 + (int)((h >> 6) % 40) : LLM_TOKEN_MAX_LENGTH;
    word_tokens(text, size, &tok);
    tok.fold_numbers = tok.fold_urls = tok.fold_emails = 1;
    tok.keep_high_bytes = 0;
    word_tokens(text, size, &tok);

    bpe_round_trip(bytes_bpe, text, size, 1, 0);
    bpe_round_trip(english_bpe, text, size, 0, 0);

    /* a tokenizer learnt from the input itself */
    llm_bpe_train_options o;
    llm_bpe_train_options_init(&o);
    o.vocab_size = 258 + (int32_t)(h % 512);
    o.min_frequency = 1 + (int32_t)((h >> 12) % 3);
    llm_bpe *own = NULL;
    must(llm_bpe_train(&own, text, size, &o), "train on the input");
    bpe_round_trip(own, text, size, 0, 1);
    llm_bpe_free(own);
    return 0;
}
