/* The byte-level BPE tokenizer: exact round trips of any bytes, the
 * pre-tokenizer's chunks, what training learns (the most frequent pair
 * first, ties to the lowest ids, never across chunks), compression on
 * English, determinism, the serialised form and its hostile-input checks,
 * the size-query conventions, bad arguments, and every allocation failing. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"
#include "core/internal.h"
#include "text/bpe_internal.h"

/* ------------------------------------------------------------ helpers */

/* For loops: a passing ck_assert costs a write in Check, so loops test with
 * this and fail through ck_abort_msg. */
#define EXPECT(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

static const char PARAGRAPH[] =
    "The committee met on Monday to review the budget for the coming year. Members "
    "agreed that the roads and the schools needed more money, and that the city "
    "should borrow less than it did last year. After a long debate, the chairman "
    "asked for a vote; the motion passed by seven votes to three. The next meeting "
    "will be held in the town hall at 10:30 on the 4th of March, when the committee "
    "will hear from the teachers, the nurses and the people who keep the streets "
    "clean. \"We have to spend what we have wisely,\" said one member.\n";

/* n bytes of English-like text: the paragraph again and again, with a few
 * numbers and words changed so that not every copy is the same. */
static char *english(size_t n) {
    char *t = malloc(n + 1);
    ck_assert_ptr_nonnull(t);
    size_t at = 0;
    uint64_t rng = 7;
    while (at < n) {
        char piece[sizeof PARAGRAPH + 64];
        int k = snprintf(piece, sizeof piece, "%s(%u) ", PARAGRAPH,
                         (unsigned)(tu_next(&rng) % 1000));
        size_t take = (size_t)k < n - at ? (size_t)k : n - at;
        memcpy(t + at, piece, take);
        at += take;
    }
    t[n] = '\0';
    return t;
}

static void random_bytes(char *p, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) p[i] = (char)(tu_next(&s) & 0xff);
}

static llm_bpe *train(const char *text, size_t len, int32_t vocab, int32_t min_freq) {
    llm_bpe_train_options o;
    llm_bpe_train_options_init(&o);
    o.vocab_size = vocab;
    o.min_frequency = min_freq;
    llm_bpe *b = NULL;
    ck_assert_ok(llm_bpe_train(&b, text, len, &o));
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Encodes text into a new array (free()); *n gets the count. */
static int32_t *encode(const llm_bpe *b, const char *text, size_t len, size_t *n) {
    size_t need = 123;
    ck_assert_ok(llm_bpe_encode(b, text, len, NULL, 0, &need));
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    ck_assert_ok(llm_bpe_encode(b, text, len, ids, need, n));
    ck_assert_uint_eq(*n, need);
    return ids;
}

/* Encode then decode must give the bytes back exactly. */
static void assert_round_trip(const llm_bpe *b, const char *text, size_t len) {
    int32_t vocab;
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    size_t n;
    int32_t *ids = encode(b, text, len, &n);
    ck_assert_uint_le(n, len);
    for (size_t i = 0; i < n; i++) /* no special ids from encoding */
        EXPECT(ids[i] >= LLM_BPE_BYTE_BASE && ids[i] < vocab, "ids[%zu] = %d", i, (int)ids[i]);
    size_t need = 0, got = 0;
    ck_assert_ok(llm_bpe_decode(b, ids, n, NULL, 0, &need));
    ck_assert_uint_eq(need, len);
    char *back = malloc(len + 1);
    ck_assert_ptr_nonnull(back);
    ck_assert_ok(llm_bpe_decode(b, ids, n, back, len, &got));
    ck_assert_uint_eq(got, len);
    ck_assert_msg(len == 0 || memcmp(back, text, len) == 0, "decode(encode(x)) != x (%zu bytes)",
                  len);
    /* and token by token, as a streaming caller would */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tb;
        size_t tl;
        EXPECT(llm_bpe_token_bytes(b, ids[i], &tb, &tl) == LLM_OK, "token_bytes(%d)", (int)ids[i]);
        EXPECT(tl >= 1 && at + tl <= len && memcmp(tb, text + at, tl) == 0 && tb[tl] == '\0',
               "token %zu (id %d) does not match the text at byte %zu", i, (int)ids[i], at);
        at += tl;
    }
    ck_assert_uint_eq(at, len);
    free(back);
    free(ids);
}

static char *serialize(const llm_bpe *b, size_t *len) {
    size_t need = 0;
    ck_assert_ok(llm_bpe_serialize(b, NULL, 0, &need));
    char *s = malloc(need + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_ok(llm_bpe_serialize(b, s, need, len));
    ck_assert_uint_eq(*len, need);
    s[need] = '\0';
    return s;
}

static void assert_token(const llm_bpe *b, int32_t id, const char *expect, size_t len) {
    const char *tb;
    size_t tl;
    ck_assert_ok(llm_bpe_token_bytes(b, id, &tb, &tl));
    ck_assert_msg(tl == len && memcmp(tb, expect, len) == 0, "token %d is \"%.*s\", expected \"%.*s\"",
                  (int)id, (int)tl, tb, (int)len, expect);
}

/* ------------------------------------------------------------- bytes */

START_TEST(bytes_round_trip_every_value) {
    llm_bpe *b = NULL;
    ck_assert_ok(llm_bpe_create_bytes(&b));
    int32_t vocab = 0;
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_eq(vocab, 258);

    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    size_t n;
    int32_t *ids = encode(b, all, sizeof all, &n);
    ck_assert_uint_eq(n, 256);
    for (int i = 0; i < 256; i++) EXPECT(ids[i] == i + 2, "byte %d -> id %d", i, (int)ids[i]);
    free(ids);
    assert_round_trip(b, all, sizeof all);
    for (int32_t id = 2; id < 258; id++) {
        char c = (char)(id - 2);
        assert_token(b, id, &c, 1);
    }
    assert_token(b, LLM_BPE_PAD, "", 0);
    assert_token(b, LLM_BPE_EOT, "", 0);

    char buf[5000];
    for (uint64_t seed = 1; seed <= 40; seed++) {
        size_t len = (size_t)(seed * seed * 3) % sizeof buf;
        random_bytes(buf, len, seed);
        assert_round_trip(b, buf, len);
    }
    assert_round_trip(b, "", 0);
    assert_round_trip(b, NULL, 0);
    llm_bpe_free(b);
    llm_bpe_free(NULL);
}
END_TEST

START_TEST(special_ids_decode_to_nothing) {
    llm_bpe *b = NULL;
    ck_assert_ok(llm_bpe_create_bytes(&b));
    int32_t ids[] = {LLM_BPE_EOT, 'h' + 2, LLM_BPE_PAD, 'i' + 2, LLM_BPE_EOT, LLM_BPE_PAD};
    char out[8];
    size_t len = 0;
    ck_assert_ok(llm_bpe_decode(b, ids, 6, out, sizeof out, &len));
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(memcmp(out, "hi", 2), 0);
    ck_assert_ok(llm_bpe_decode(b, NULL, 0, NULL, 0, &len));
    ck_assert_uint_eq(len, 0);
    llm_bpe_free(b);
}
END_TEST

/* ---------------------------------------------------- pre-tokenizer */

/* With min_frequency 1 and room to spare, training merges every chunk into
 * one token, so encoding the same text shows the chunks themselves. */
static void assert_chunks(const char *text, size_t len, const char *const *expect, size_t n_expect) {
    llm_bpe *b = train(text, len, LLM_BPE_MAX_VOCAB, 1);
    size_t n;
    int32_t *ids = encode(b, text, len, &n);
    ck_assert_msg(n == n_expect, "\"%.*s\": %zu chunks, expected %zu", (int)len, text, n, n_expect);
    for (size_t i = 0; i < n; i++) assert_token(b, ids[i], expect[i], strlen(expect[i]));
    free(ids);
    llm_bpe_free(b);
}

START_TEST(pretokenizer_chunks) {
    static const char t1[] = "hello  world\n foo,bar 42x caf\xc3\xa9 ... \t\tend  ";
    static const char *const e1[] = {"hello", " ", " world", "\n", " foo", ",", "bar", " 42",
                                     "x", " caf\xc3\xa9", " ...", " \t\t", "end", "  "};
    assert_chunks(t1, sizeof t1 - 1, e1, sizeof e1 / sizeof e1[0]);
    static const char t2[] = " a\r\n\r\n  b1.5";
    static const char *const e2[] = {" a", "\r\n\r\n ", " b", "1", ".", "5"};
    assert_chunks(t2, sizeof t2 - 1, e2, sizeof e2 / sizeof e2[0]);
    static const char t3[] = "x\x01\x02y\x7f";
    static const char *const e3[] = {"x", "\x01\x02", "y", "\x7f"};
    assert_chunks(t3, sizeof t3 - 1, e3, sizeof e3 / sizeof e3[0]);

    /* a run longer than LLM_BPE_MAX_CHUNK is cut after that many bytes */
    char run[1 + 300 + 1];
    run[0] = ' ';
    memset(run + 1, 'a', 300);
    run[301] = '\0';
    llm_bpe *b = train(run, 301, LLM_BPE_MAX_VOCAB, 1);
    size_t n;
    int32_t *ids = encode(b, run, 301, &n);
    ck_assert_uint_eq(n, 2);
    const char *tb;
    size_t tl;
    ck_assert_ok(llm_bpe_token_bytes(b, ids[0], &tb, &tl));
    ck_assert_uint_eq(tl, LLM_BPE_MAX_CHUNK);
    ck_assert_int_eq(tb[0], ' ');
    ck_assert_ok(llm_bpe_token_bytes(b, ids[1], &tb, &tl));
    ck_assert_uint_eq(tl, 301 - LLM_BPE_MAX_CHUNK);
    free(ids);
    llm_bpe_free(b);
}
END_TEST

/* ------------------------------------------------------------ training */

START_TEST(most_frequent_pair_is_merge_zero) {
    /* "qx" 50 times, " q" 49 times, "ab" 10 times */
    char text[1024] = "";
    for (int i = 0; i < 50; i++) strcat(text, i ? " qx" : "qx");
    for (int i = 0; i < 10; i++) strcat(text, ",ab");
    llm_bpe *b = train(text, strlen(text), 260, 2);
    int32_t vocab;
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_eq(vocab, 260);
    assert_token(b, 258, "qx", 2);  /* 50 times */
    assert_token(b, 259, " qx", 3); /* ' ' + "qx", 49 times, ahead of "ab" (10) */
    size_t len;
    char *ser = serialize(b, &len);
    char expect[64];
    snprintf(expect, sizeof expect, "llm-bpe 1 2\n%d %d\n%d 258\n", 'q' + 2, 'x' + 2, ' ' + 2);
    ck_assert_str_eq(ser, expect);
    free(ser);
    llm_bpe_free(b);

    /* a tie goes to the lowest (left, right): "cd" and "ab" both 5 times */
    static const char tie[] = "cd,ab,cd,ab,cd,ab,cd,ab,cd,ab,";
    b = train(tie, sizeof tie - 1, 1000, 2);
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_eq(vocab, 260); /* then nothing is left to merge */
    assert_token(b, 258, "ab", 2);
    assert_token(b, 259, "cd", 2);
    llm_bpe_free(b);

    /* overlapping places of a pair of equal tokens go left to right: "aaa"
     * is "(aa)a", so the second merge is (258, a), not (a, 258) */
    b = train("aaa,aaa,aaa,aaa", 15, 1000, 2);
    ser = serialize(b, &len);
    snprintf(expect, sizeof expect, "llm-bpe 1 2\n%d %d\n258 %d\n", 'a' + 2, 'a' + 2, 'a' + 2);
    ck_assert_str_eq(ser, expect);
    free(ser);
    size_t n;
    /* merge 0 everywhere first: (aa)(aa)a, then (258, a): (aa)(aaa) */
    int32_t *ids = encode(b, "aaaaa", 5, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 258);
    ck_assert_int_eq(ids[1], 259);
    free(ids);
    llm_bpe_free(b);

    /* min_frequency stops training early; merges never cross chunks */
    b = train("ab ab", 5, 1000, 3);
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_eq(vocab, 258);
    llm_bpe_free(b);
    b = train("a.a.a.a.a.", 10, 1000, 1); /* "a" and "." are separate chunks */
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_eq(vocab, 258);
    llm_bpe_free(b);
    b = train(NULL, 0, 1000, 1);
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_eq(vocab, 258);
    llm_bpe_free(b);
}
END_TEST

START_TEST(trained_round_trips_arbitrary_bytes) {
    size_t tlen = 20000;
    char *text = english(tlen);
    llm_bpe *b = train(text, tlen, 600, 2);
    int32_t vocab;
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_gt(vocab, 400);
    /* every token is one chunk of its own: no merge crossed a boundary */
    for (int32_t id = 2; id < vocab; id++) {
        const char *tb;
        size_t tl;
        EXPECT(llm_bpe_token_bytes(b, id, &tb, &tl) == LLM_OK, "token_bytes(%d)", (int)id);
        EXPECT(llm__bpe_chunk_end((const unsigned char *)tb, tl, 0) == tl,
               "token %d \"%.*s\" spans chunks", (int)id, (int)tl, tb);
    }
    assert_round_trip(b, text, tlen);
    assert_round_trip(b, "", 0);
    static const char bad_utf8[] = "caf\xc3 \xa9\xff\xfe the\xe2\x82 committee\xf0\x9f\x98 \xc0\x80";
    assert_round_trip(b, bad_utf8, sizeof bad_utf8 - 1);
    static const char nuls[] = "the\0committee\0\0 met\n\n\n   \t ";
    assert_round_trip(b, nuls, sizeof nuls - 1);
    char all[512];
    for (int i = 0; i < 512; i++) all[i] = (char)(i & 0xff);
    assert_round_trip(b, all, sizeof all);
    char *buf = malloc(70000);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t seed = 1; seed <= 30; seed++) {
        size_t len = (size_t)(tu_next(&seed) % 70000);
        random_bytes(buf, len, seed);
        /* half the time mixed with English, to hit merges and the cache */
        if (seed % 2)
            for (size_t i = 0; i + 40 < len; i += 97) memcpy(buf + i, text + i % 1000, 40);
        assert_round_trip(b, buf, len);
    }
    free(buf);
    llm_bpe_free(b);
    free(text);
}
END_TEST

START_TEST(compression_on_english) {
    size_t tlen = 50000;
    char *text = english(tlen);
    llm_bpe *b = train(text, tlen, 512, 2);
    size_t n;
    int32_t *ids = encode(b, text, tlen, &n);
    double ratio = (double)n / (double)tlen;
    ck_assert_msg(ratio < 0.6, "vocab 512: %zu bytes -> %zu ids (%.3f ids per byte)", tlen, n, ratio);
    free(ids);
    /* the paragraph alone, shorter than the cache's threshold, agrees with
     * the long text's encoding of its first copy */
    size_t pn;
    int32_t *pids = encode(b, PARAGRAPH, sizeof PARAGRAPH - 1, &pn);
    ids = encode(b, text, tlen, &n);
    ck_assert_uint_lt(pn, (sizeof PARAGRAPH - 1) * 6 / 10);
    ck_assert_int_eq(memcmp(pids, ids, (pn - 1) * sizeof *ids), 0);
    free(pids);
    free(ids);
    llm_bpe_free(b);
    free(text);
}
END_TEST

START_TEST(training_is_deterministic) {
    size_t tlen = 30000;
    char *text = english(tlen);
    llm_bpe *a = train(text, tlen, 700, 2);
    llm_bpe *b = train(text, tlen, 700, 2);
    llm_bpe *c = train(text, tlen, 400, 2);
    size_t la, lb, lc;
    char *sa = serialize(a, &la), *sb = serialize(b, &lb), *sc = serialize(c, &lc);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(sa, sb, la), 0);
    /* greedy: a smaller vocabulary learns the same first merges */
    const char *nl_a = strchr(sa, '\n'), *nl_c = strchr(sc, '\n');
    ck_assert_int_eq(memcmp(nl_a, nl_c, lc - (size_t)(nl_c - sc)), 0);
    free(sa);
    free(sb);
    free(sc);
    llm_bpe_free(a);
    llm_bpe_free(b);
    llm_bpe_free(c);
    free(text);
}
END_TEST

/* A larger text, as a guard against anything quadratic (generous bounds: the
 * suite also runs under sanitizers). */
START_TEST(training_and_encoding_scale) {
    size_t tlen = 3u << 20;
    char *text = malloc(tlen);
    ck_assert_ptr_nonnull(text);
    static const char *const words[] = {"the", "of", "and", "to", "a", "in", "that", "is",
                                        "government", "congress", "people", "states", "year",
                                        "nation", "public", "great", "war", "country", "must",
                                        "upon", "united", "American", "world", "power", "law"};
    uint64_t rng = 11;
    size_t at = 0;
    while (at < tlen) {
        uint64_t r = tu_next(&rng);
        /* Zipf-like: small indices far more often */
        size_t w = (size_t)((r % 1000) * (r % 1000) / 40000) % (sizeof words / sizeof words[0]);
        char piece[64];
        int k = snprintf(piece, sizeof piece, "%s%s%s", at ? " " : "", words[w],
                         r % 17 == 0 ? "." : r % 13 == 0 ? "," : r % 101 == 0 ? "\n" : "");
        if (r % 53 == 0) k += snprintf(piece + k, sizeof piece - (size_t)k, " %u", (unsigned)(r >> 40));
        size_t take = (size_t)k < tlen - at ? (size_t)k : tlen - at;
        memcpy(text + at, piece, take);
        at += take;
    }
    double t0 = tu_now();
    llm_bpe *b = train(text, tlen, 2048, 2);
    double t1 = tu_now();
    size_t n;
    int32_t *ids = encode(b, text, tlen, &n);
    double t2 = tu_now();
    ck_assert_msg(t1 - t0 < 30.0, "training on 3 MiB took %.1f s", t1 - t0);
    ck_assert_msg(t2 - t1 < 30.0, "encoding 3 MiB (twice) took %.1f s", t2 - t1);
    ck_assert_uint_lt(n, tlen / 3);
    size_t len;
    char *back = malloc(tlen);
    ck_assert_ptr_nonnull(back);
    ck_assert_ok(llm_bpe_decode(b, ids, n, back, tlen, &len));
    ck_assert_uint_eq(len, tlen);
    ck_assert_int_eq(memcmp(back, text, tlen), 0);
    free(back);
    free(ids);
    llm_bpe_free(b);
    free(text);
}
END_TEST

/* ------------------------------------------------------- serialisation */

START_TEST(serialize_round_trip) {
    size_t tlen = 20000;
    char *text = english(tlen);
    llm_bpe *b = train(text, tlen, 500, 2);
    size_t len;
    char *ser = serialize(b, &len);
    int32_t vocab;
    ck_assert_ok(llm_bpe_vocab_size(b, &vocab));
    ck_assert_int_gt(vocab, 300); /* the paragraph runs out of pairs before 500 */
    char head[32];
    snprintf(head, sizeof head, "llm-bpe 1 %d\n", (int)vocab - 258);
    ck_assert_int_eq(strncmp(ser, head, strlen(head)), 0);
    ck_assert_uint_eq(len, strlen(ser)); /* plain ASCII, no NUL */
    llm_bpe *back = NULL;
    ck_assert_ok(llm_bpe_deserialize(&back, ser, len));
    size_t len2;
    char *ser2 = serialize(back, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_int_eq(memcmp(ser, ser2, len), 0);
    int32_t v1, v2;
    ck_assert_ok(llm_bpe_vocab_size(b, &v1));
    ck_assert_ok(llm_bpe_vocab_size(back, &v2));
    ck_assert_int_eq(v1, v2);
    for (int32_t id = 0; id < v1; id++) {
        const char *t1, *t2;
        size_t l1, l2;
        EXPECT(llm_bpe_token_bytes(b, id, &t1, &l1) == LLM_OK &&
                   llm_bpe_token_bytes(back, id, &t2, &l2) == LLM_OK && l1 == l2 &&
                   memcmp(t1, t2, l1) == 0, "token %d differs after the round trip", (int)id);
    }
    char rnd[3000];
    random_bytes(rnd, sizeof rnd, 3);
    const char *texts[] = {text, PARAGRAPH, rnd};
    size_t lens[] = {tlen, sizeof PARAGRAPH - 1, sizeof rnd};
    for (int i = 0; i < 3; i++) {
        size_t n1, n2;
        int32_t *i1 = encode(b, texts[i], lens[i], &n1);
        int32_t *i2 = encode(back, texts[i], lens[i], &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_int_eq(memcmp(i1, i2, n1 * sizeof *i1), 0);
        free(i1);
        free(i2);
    }
    /* the byte-level tokenizer is "llm-bpe 1 0\n" */
    llm_bpe *bytes = NULL;
    ck_assert_ok(llm_bpe_create_bytes(&bytes));
    char *bs = serialize(bytes, &len2);
    ck_assert_str_eq(bs, "llm-bpe 1 0\n");
    free(bs);
    llm_bpe_free(bytes);
    free(ser);
    free(ser2);
    llm_bpe_free(back);
    llm_bpe_free(b);
    free(text);
}
END_TEST

static void assert_rejected(const char *data, size_t len) {
    llm_bpe *b = (llm_bpe *)&b; /* must come back NULL */
    llm_clear_error();
    llm_status s = llm_bpe_deserialize(&b, data, len);
    EXPECT(s == LLM_ERR_FORMAT, "\"%.*s\" gave %s, expected a format error", (int)len, data,
           llm_status_string(s));
    EXPECT(b == NULL, "\"%.*s\": *out not NULL after a failure", (int)len, data);
    EXPECT(strncmp(llm_last_error(), "llm_bpe_deserialize: ", 21) == 0, "message: %s",
           llm_last_error());
}
#define REJECT(lit) assert_rejected((lit), sizeof(lit) - 1)

START_TEST(deserialize_rejects_malformed) {
    REJECT("");
    REJECT("llm-bpe");
    REJECT("llm-bpe ");
    REJECT("llm-vocab 1\n");
    REJECT("LLM-BPE 1 0\n");
    REJECT("llm-bpe 2 0\n");       /* unknown version */
    REJECT("llm-bpe 0 0\n");
    REJECT("llm-bpe 1 0");         /* no newline */
    REJECT("llm-bpe 1  0\n");
    REJECT("llm-bpe 1 -1\n");
    REJECT("llm-bpe 1 00\n");      /* leading zero */
    REJECT("llm-bpe 1 0\nx");      /* trailing bytes */
    REJECT("llm-bpe 1 0\n\n");
    REJECT("llm-bpe 1 1\n");       /* truncated */
    REJECT("llm-bpe 1 1\n2 3");
    REJECT("llm-bpe 1 2\n2 3\n");
    REJECT("llm-bpe 1 1\n2 3\n4 5\n");
    REJECT("llm-bpe 1 1\n2 258\n"); /* not yet a token */
    REJECT("llm-bpe 1 1\n258 2\n");
    REJECT("llm-bpe 1 2\n2 3\n259 2\n");
    REJECT("llm-bpe 1 1\n0 3\n");   /* special tokens have no bytes */
    REJECT("llm-bpe 1 1\n3 1\n");
    REJECT("llm-bpe 1 1\n65536 3\n");
    REJECT("llm-bpe 1 1\n99999999999999999999 3\n");
    REJECT("llm-bpe 1 2\n2 3\n2 3\n"); /* a repeated merge */
    REJECT("llm-bpe 1 1\n02 3\n");
    REJECT("llm-bpe 1 1\n2  3\n");
    REJECT("llm-bpe 1 1\n2\t3\n");
    REJECT("llm-bpe 1 1\n2 3 \n");
    REJECT("llm-bpe 1 1\n2 3\r\n");
    REJECT("llm-bpe 1 1\n+2 3\n");
    REJECT("llm-bpe 1 65279\n");    /* more than 65536 ids */
    REJECT("llm-bpe 1 2147483647\n2 3\n");
    REJECT("llm-bpe 1 99999999999999999999\n");

    /* doubling a token: 258 is 2 bytes ... 265 is 256, 266 would be 512 */
    char chain[256] = "llm-bpe 1 9\n2 2\n";
    for (int id = 258; id <= 265; id++)
        snprintf(chain + strlen(chain), sizeof chain - strlen(chain), "%d %d\n", id, id);
    assert_rejected(chain, strlen(chain));
    chain[10] = '8';
    chain[strlen(chain) - 8] = '\0';
    llm_bpe *ok = NULL;
    ck_assert_ok(llm_bpe_deserialize(&ok, chain, strlen(chain)));
    const char *tb;
    size_t tl;
    ck_assert_ok(llm_bpe_token_bytes(ok, 265, &tb, &tl));
    ck_assert_uint_eq(tl, 256);
    llm_bpe_free(ok);
    ck_assert_ok(llm_bpe_deserialize(&ok, "llm-bpe 1 0\n", 12));
    llm_bpe_free(ok);

    /* every cut of a valid text is refused; every one-byte change is refused
     * or (when it still reads as a valid list) accepted and usable */
    size_t tlen = 5000, len;
    char *text = english(tlen);
    llm_bpe *b = train(text, tlen, 300, 2);
    char *ser = serialize(b, &len);
    for (size_t cut = 0; cut < len; cut++) assert_rejected(ser, cut);
    static const char subst[] = {'0', '9', ' ', '\n', 'x', '\0', '5', '-'};
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof subst; k++) {
            char keep = ser[i];
            if (keep == subst[k]) continue;
            ser[i] = subst[k];
            llm_bpe *m = NULL;
            llm_status s = llm_bpe_deserialize(&m, ser, len);
            EXPECT(s == LLM_OK || s == LLM_ERR_FORMAT, "byte %zu changed: %s", i,
                   llm_status_string(s));
            if (s == LLM_OK) assert_round_trip(m, PARAGRAPH, sizeof PARAGRAPH - 1);
            llm_bpe_free(m);
            ser[i] = keep;
        }
    }
    free(ser);
    llm_bpe_free(b);
    free(text);
}
END_TEST

/* ------------------------------------------------------- conventions */

START_TEST(size_queries) {
    size_t tlen = 5000;
    char *text = english(tlen);
    llm_bpe *b = train(text, tlen, 300, 2);
    size_t n = 0, again = 0;
    ck_assert_ok(llm_bpe_encode(b, PARAGRAPH, sizeof PARAGRAPH - 1, NULL, 0, &n));
    ck_assert_uint_gt(n, 10);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    ids[n - 1] = -7;
    ck_assert_fails(llm_bpe_encode(b, PARAGRAPH, sizeof PARAGRAPH - 1, ids, n - 1, &again),
                    LLM_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(again, n); /* what is needed, even on failure */
    ck_assert_int_eq(ids[n - 1], -7); /* nothing past cap */
    ck_assert_ok(llm_bpe_encode(b, PARAGRAPH, sizeof PARAGRAPH - 1, ids, n + 1, &again));
    ck_assert_uint_eq(again, n);
    ck_assert_ok(llm_bpe_encode(b, "", 0, ids, n, &again));
    ck_assert_uint_eq(again, 0);
    ck_assert_ok(llm_bpe_encode(b, NULL, 0, NULL, 0, &again));
    ck_assert_uint_eq(again, 0);

    size_t bytes = 0;
    ck_assert_ok(llm_bpe_decode(b, ids, n, NULL, 0, &bytes));
    ck_assert_uint_eq(bytes, sizeof PARAGRAPH - 1);
    char *buf = malloc(bytes + 1);
    ck_assert_ptr_nonnull(buf);
    buf[bytes - 1] = '#';
    ck_assert_fails(llm_bpe_decode(b, ids, n, buf, bytes - 1, &again), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(again, bytes);
    ck_assert_int_eq(buf[bytes - 1], '#');
    ck_assert_int_eq(memcmp(buf, PARAGRAPH, bytes - 1), 0); /* the part that fits */
    ck_assert_ok(llm_bpe_decode(b, ids, n, buf, bytes, &again));
    ck_assert_int_eq(memcmp(buf, PARAGRAPH, bytes), 0);

    size_t slen = 0;
    ck_assert_ok(llm_bpe_serialize(b, NULL, 0, &slen));
    char *ser = malloc(slen);
    ck_assert_ptr_nonnull(ser);
    ck_assert_fails(llm_bpe_serialize(b, ser, slen - 1, &again), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(again, slen);
    ck_assert_ok(llm_bpe_serialize(b, ser, slen, &again));
    ck_assert_uint_eq(again, slen);
    free(ser);
    free(buf);
    free(ids);
    llm_bpe_free(b);
    free(text);
}
END_TEST

START_TEST(invalid_arguments) {
    llm_bpe *b = NULL, *out = NULL;
    ck_assert_ok(llm_bpe_create_bytes(&b));
    int32_t ids[4] = {2, 3, 4, 5};
    char buf[8];
    size_t n;
    int32_t size;
    const char *tb;

    ck_assert_fails(llm_bpe_create_bytes(NULL), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_bpe_train(NULL, "ab", 2, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_train(&out, NULL, 2, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
    llm_bpe_train_options o;
    llm_bpe_train_options_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_int_eq(o.vocab_size, 2048);
    ck_assert_int_eq(o.min_frequency, 2);
    o.vocab_size = 257;
    ck_assert_fails(llm_bpe_train(&out, "ab", 2, &o), LLM_ERR_INVALID_ARGUMENT);
    o.vocab_size = 65537;
    ck_assert_fails(llm_bpe_train(&out, "ab", 2, &o), LLM_ERR_INVALID_ARGUMENT);
    o.vocab_size = 258;
    o.min_frequency = 0;
    ck_assert_fails(llm_bpe_train(&out, "ab", 2, &o), LLM_ERR_INVALID_ARGUMENT);
    o.min_frequency = 1;
    o.size = 0;
    ck_assert_fails(llm_bpe_train(&out, "ab", 2, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
    llm_bpe_train_options_init(NULL); /* no crash */
    /* an older, smaller options struct: the missing fields keep their defaults */
    o.size = sizeof(size_t) + sizeof(int32_t);
    o.vocab_size = 259;
    o.min_frequency = 0; /* not read */
    ck_assert_ok(llm_bpe_train(&out, "abab", 4, &o));
    ck_assert_ok(llm_bpe_vocab_size(out, &size));
    ck_assert_int_eq(size, 259);
    llm_bpe_free(out);
    out = NULL;

    ck_assert_fails(llm_bpe_encode(NULL, "a", 1, ids, 4, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_encode(b, NULL, 1, ids, 4, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_encode(b, "a", 1, NULL, 4, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_encode(b, "a", 1, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_bpe_decode(NULL, ids, 4, buf, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_decode(b, NULL, 4, buf, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_decode(b, ids, 4, NULL, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_decode(b, ids, 4, buf, 8, NULL), LLM_ERR_INVALID_ARGUMENT);
    int32_t bad[3] = {2, 258, 3};
    ck_assert_fails(llm_bpe_decode(b, bad, 3, buf, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    bad[1] = -1;
    ck_assert_fails(llm_bpe_decode(b, bad, 3, NULL, 0, &n), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_bpe_token_bytes(NULL, 2, &tb, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_token_bytes(b, 2, NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_token_bytes(b, 258, &tb, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(tb);
    ck_assert_fails(llm_bpe_token_bytes(b, -1, &tb, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_bpe_token_bytes(b, 'A' + 2, &tb, NULL));
    ck_assert_str_eq(tb, "A");

    ck_assert_fails(llm_bpe_vocab_size(NULL, &size), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_vocab_size(b, NULL), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_bpe_serialize(NULL, buf, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_serialize(b, NULL, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_serialize(b, buf, 8, NULL), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_bpe_deserialize(NULL, "llm-bpe 1 0\n", 12), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_deserialize(&out, NULL, 12), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_bpe_deserialize(&out, NULL, 0), LLM_ERR_FORMAT);
    ck_assert_ptr_null(out);
    llm_bpe_free(b);
}
END_TEST

/* --------------------------------------------------- allocation failure */

typedef struct bpe_run {
    int failed;
    llm_status status;
    char call[96];
    char error[256];
    size_t n_ids;
    int32_t ids[4000]; /* the encoding by the reloaded tokenizer */
} bpe_run;

#define RUN_STEP(r, expr) do { \
        llm_clear_error(); \
        llm_status st__ = (expr); \
        if (st__ != LLM_OK) { \
            (r)->failed = 1; \
            (r)->status = st__; \
            snprintf((r)->call, sizeof (r)->call, "%s", #expr); \
            snprintf((r)->error, sizeof (r)->error, "%s", llm_last_error()); \
            goto cleanup; \
        } \
    } while (0)

/* train, encode (long enough for the cache), serialize, deserialize, encode */
static void bpe_scenario(bpe_run *r, const char *text, size_t len) {
    llm_bpe *b = NULL, *back = NULL;
    char ser[8192];
    int32_t ids[4000];
    size_t n = 0, slen = 0, n2 = 0;
    llm_bpe_train_options o;
    llm_bpe_train_options_init(&o);
    o.vocab_size = 330;
    RUN_STEP(r, llm_bpe_train(&b, text, len, &o));
    RUN_STEP(r, llm_bpe_encode(b, text, len, ids, 4000, &n));
    RUN_STEP(r, llm_bpe_serialize(b, ser, sizeof ser, &slen));
    RUN_STEP(r, llm_bpe_deserialize(&back, ser, slen));
    RUN_STEP(r, llm_bpe_encode(back, text, len, r->ids, 4000, &n2));
    r->n_ids = n2;
    ck_assert_uint_eq(n, n2);
    ck_assert_int_eq(memcmp(ids, r->ids, n * sizeof *ids), 0);
cleanup:
    llm_bpe_free(back);
    llm_bpe_free(b);
}

START_TEST(every_allocation_may_fail) {
    size_t tlen = 3000;
    char *text = english(tlen);
    bpe_run ref = {0};
    llm__alloc_fail_after(INT64_MAX);
    bpe_scenario(&ref, text, tlen);
    int64_t k = llm__alloc_count();
    llm__alloc_fail_after(-1);
    ck_assert_msg(!ref.failed, "reference run: %s: %s", ref.call, ref.error);
    ck_assert_int_gt(k, 10);
    int64_t failed = 0, absorbed = 0;
    for (int64_t i = 0; i < k; i++) {
        bpe_run *r = calloc(1, sizeof *r);
        ck_assert_ptr_nonnull(r);
        llm__alloc_fail_after(i);
        bpe_scenario(r, text, tlen);
        int fired = llm__alloc_fired();
        llm__alloc_fail_after(-1);
        ck_assert_msg(fired, "allocation %lld of %lld was never made", (long long)i, (long long)k);
        if (r->failed) {
            failed++;
            ck_assert_msg(r->status == LLM_ERR_OUT_OF_MEMORY,
                          "allocation %lld failing: %s returned %s: %s", (long long)i, r->call,
                          llm_status_string(r->status), r->error);
            ck_assert_msg(strstr(r->error, "out of memory") != NULL,
                          "allocation %lld failing: %s: message \"%s\"", (long long)i, r->call,
                          r->error);
        } else {
            absorbed++; /* the encoder's cache: same ids without it */
            ck_assert_uint_eq(r->n_ids, ref.n_ids);
            ck_assert_int_eq(memcmp(r->ids, ref.ids, ref.n_ids * sizeof *ref.ids), 0);
        }
        free(r);
    }
    ck_assert_int_gt(failed, 0);
    fprintf(stderr, "bpe: %lld allocations in the run: %lld failed with out of memory, %lld "
                    "absorbed\n", (long long)k, (long long)failed, (long long)absorbed);
    free(text);
}
END_TEST

Suite *suite_bpe(void) {
    Suite *s = suite_create("bpe");
    TCase *core = tcase_create("core");
    tcase_add_test(core, bytes_round_trip_every_value);
    tcase_add_test(core, special_ids_decode_to_nothing);
    tcase_add_test(core, pretokenizer_chunks);
    tcase_add_test(core, most_frequent_pair_is_merge_zero);
    tcase_add_test(core, trained_round_trips_arbitrary_bytes);
    tcase_add_test(core, compression_on_english);
    tcase_add_test(core, training_is_deterministic);
    tcase_add_test(core, training_and_encoding_scale);
    tcase_set_timeout(core, 120);
    suite_add_tcase(s, core);

    TCase *io = tcase_create("format");
    tcase_add_test(io, serialize_round_trip);
    tcase_add_test(io, deserialize_rejects_malformed);
    tcase_set_timeout(io, 120);
    suite_add_tcase(s, io);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, size_queries);
    tcase_add_test(errors, invalid_arguments);
    tcase_add_test(errors, every_allocation_may_fail);
    tcase_set_timeout(errors, 120);
    suite_add_tcase(s, errors);
    return s;
}
