/* libFuzzer target: the text pipeline on arbitrary bytes.
 *
 * Each input is read as a raw e-mail message, with the default reader
 * settings and with settings picked from the input's bytes (MIME decoding
 * off, subject or attachments dropped, kept headers, a small max_bytes).
 * The text is tokenized with options also picked from the input and checked
 * against the tokenizer's contract, joined, vectorized through a tiny
 * vocabulary (the ids must lie in range) and, once, counted into a new
 * vocabulary that must survive a serialize / deserialize round trip. The raw bytes are
 * also given to llm_vocab_deserialize. Nothing may crash, leak, read out of
 * bounds or hang; llm_email_parse must never fail on mail.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/email/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEQ_LEN 8

static llm_vocab *tiny; /* a fixed vocabulary with every fold on */
static int32_t tiny_size;

static void must(llm_status s, const char *what) {
    if (s == LLM_OK) return;
    fprintf(stderr, "fuzz_email: %s: status %d: %s\n", what, (int)s, llm_last_error());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static const char text[] = "cheap pills buy now http://example.com/x 12345 meeting monday a@b.org "
                               "r\xc3\xa9sum\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd buy";
    llm_tokenizer_options tok;
    llm_tokenizer_options_init(&tok);
    tok.fold_numbers = tok.fold_urls = tok.fold_emails = 1;
    llm_vocab_builder *b;
    must(llm_vocab_builder_create(&b, &tok), "builder");
    must(llm_vocab_builder_add(b, text, sizeof text - 1), "builder add");
    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    vo.max_tokens = 10;
    must(llm_vocab_builder_build(b, &vo, &tiny), "vocab");
    llm_vocab_builder_free(b);
    must(llm_vocab_size(tiny, &tiny_size), "vocab size");
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
    return ++c->count < 100000 ? 0 : 1;
}

static void tokens(const char *text, size_t len, uint32_t h, int with_vocab) {
    llm_tokenizer_options tok;
    llm_tokenizer_options_init(&tok);
    tok.lowercase = (h >> 8) & 1;
    tok.keep_high_bytes = (h >> 9) & 1;
    tok.fold_numbers = (h >> 10) & 1;
    tok.fold_urls = (h >> 11) & 1;
    tok.fold_emails = (h >> 12) & 1;
    tok.max_token_length = (h >> 13) & 1 ? 1 + (int)((h >> 14) % 80) : 64;
    struct tok_check c = { tok.max_token_length, 0 };
    llm_status s = llm_tokenize(text, len, &tok, on_token, &c);
    if (s != LLM_OK && s != LLM_ERR_CANCELLED) must(s, "llm_tokenize");

    /* join: the snprintf contract, then the whole string */
    char small[16];
    size_t needed = 0, again = 0;
    must(llm_tokenize_join(text, len, &tok, small, sizeof small, &needed), "join");
    if (strlen(small) != (needed < sizeof small ? needed : sizeof small - 1)) abort();
    char *all = malloc(needed + 1);
    if (!all) abort();
    must(llm_tokenize_join(text, len, &tok, all, needed + 1, &again), "join all");
    if (again != needed || strlen(all) != needed) abort();
    free(all);

    /* vectorize through the tiny vocabulary, both sides */
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = SEQ_LEN;
    vo.padding = (h >> 20) & 1 ? LLM_SEQ_POST : LLM_SEQ_PRE;
    vo.truncation = (h >> 21) & 1 ? LLM_SEQ_POST : LLM_SEQ_PRE;
    int32_t ids[SEQ_LEN];
    int64_t ntok;
    must(llm_vectorize(tiny, text, len, &vo, ids, SEQ_LEN, &ntok), "vectorize");
    for (int i = 0; i < SEQ_LEN; i++)
        if (ids[i] < 0 || ids[i] >= tiny_size) abort();

    if (!with_vocab) return;
    /* a vocabulary of this text, through its serialised form */
    llm_vocab_builder *b;
    llm_vocab *v = NULL, *back = NULL;
    must(llm_vocab_builder_create(&b, &tok), "builder");
    must(llm_vocab_builder_add(b, text, len), "builder add");
    llm_vocab_options opts;
    llm_vocab_options_init(&opts);
    opts.max_tokens = 64;
    must(llm_vocab_builder_build(b, &opts, &v), "build");
    llm_vocab_builder_free(b);
    size_t n = 0;
    must(llm_vocab_serialize(v, NULL, 0, &n), "serialize size");
    char *ser = malloc(n ? n : 1);
    if (!ser) abort();
    must(llm_vocab_serialize(v, ser, n, &n), "serialize");
    must(llm_vocab_deserialize(&back, ser, n), "deserialize");
    int32_t s1, s2;
    must(llm_vocab_size(v, &s1), "size");
    must(llm_vocab_size(back, &s2), "size");
    if (s1 != s2) abort();
    for (int32_t id = 0; id < s1; id++) {
        const char *t1, *t2;
        size_t l1, l2;
        must(llm_vocab_token(v, id, &t1, &l1), "token");
        must(llm_vocab_token(back, id, &t2, &l2), "token");
        if (l1 != l2 || memcmp(t1, t2, l1) != 0) abort();
        int32_t got;
        must(llm_vocab_lookup(back, t1, l1, &got), "lookup");
        if (id >= 2 && got != id) abort();
    }
    free(ser);
    llm_vocab_free(v);
    llm_vocab_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *raw = (const char *)data;
    uint32_t h = mix(data, size);

    /* the default reader */
    char *text = NULL;
    size_t len = 0;
    must(llm_email_parse(raw, size, NULL, &text, &len), "llm_email_parse");
    if (text[len] != '\0') abort();
    tokens(text, len, h, 0);
    llm_text_free(text);

    /* the reader with options taken from the input */
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.decode_mime = !(h & 1);
    eo.keep_subject = !((h >> 1) & 1);
    eo.text_attachments = !((h >> 2) & 1);
    eo.keep_headers = (h >> 3) & 1 ? "From,To,Content-Type,X-Mailer" : NULL;
    if ((h >> 4) & 1) eo.max_bytes = size / 2 + 1;
    text = NULL;
    must(llm_email_parse(raw, size, &eo, &text, &len), "llm_email_parse with options");
    if (text[len] != '\0') abort();
    tokens(text, len, h >> 1, 1);
    llm_text_free(text);

    /* the raw bytes as a serialised vocabulary: an error or a vocabulary */
    llm_vocab *v = NULL;
    if (llm_vocab_deserialize(&v, raw, size) == LLM_OK) {
        int32_t n;
        must(llm_vocab_size(v, &n), "size");
        if (n < 2) abort();
    }
    llm_vocab_free(v);
    return 0;
}
