/* The text pipeline: e-mail reader, tokenizer, vocabulary, vectorizer and
 * corpus, on hand-written messages with known outputs, on the fixture folder
 * data/emails (tests run from tests/), and on every error path. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"

#define FIXTURES "data/emails"

/* ------------------------------------------------------------ helpers */

/* Parses a message with the given options (NULL = defaults) and returns the
 * text; the caller frees it with llm_text_free. */
static char *parse(const char *msg, const llm_email_options *o) {
    char *t = NULL;
    size_t n = 0;
    ck_assert_ok(llm_email_parse(msg, strlen(msg), o, &t, &n));
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(strlen(t), n);
    return t;
}

#define ASSERT_PARSES_TO(msg, opts, expect) do { \
        char *t__ = parse((msg), (opts)); \
        ck_assert_str_eq(t__, (expect)); \
        llm_text_free(t__); \
    } while (0)

static char joined[4096];
static const char *tokens_of(const char *text, const llm_tokenizer_options *o) {
    size_t need = 0;
    ck_assert_ok(llm_tokenize_join(text, strlen(text), o, joined, sizeof joined, &need));
    ck_assert_uint_lt(need, sizeof joined);
    return joined;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static char *temp_dir(void) {
    char tmpl[] = "/tmp/llm_text_XXXXXX";
    char *d = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

static void make_dir(const char *base, const char *sub) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void write_file(const char *base, const char *rel, const char *content) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(content, 1, strlen(content), f);
    fclose(f);
}

/* ------------------------------------------------------------- e-mail */

START_TEST(email_subject_and_body) {
    ASSERT_PARSES_TO("From: a@example.com\nSubject: Hello world\n\nBody line 1\nBody line 2\n",
                     NULL, "Hello world\nBody line 1\nBody line 2");
    /* CRLF line ends give the same text */
    ASSERT_PARSES_TO("From: a@example.com\r\nSubject: Hello world\r\n\r\nBody line 1\r\nBody line 2\r\n",
                     NULL, "Hello world\nBody line 1\nBody line 2");
    /* stray CRs (CR CR LF, a lone CR) end lines too */
    ASSERT_PARSES_TO("Subject: a\r\n\r\nx\r\r\ny\rz\r\n", NULL, "a\nx\ny\nz");
    /* an mbox separator line is skipped; header names are case-insensitive */
    ASSERT_PARSES_TO("From someone@example.com  Mon Jun 24 17:08:42 2002\nSUBJECT: Hi\n\nText\n",
                     NULL, "Hi\nText");
    /* no subject */
    ASSERT_PARSES_TO("From: a@example.com\n\nJust the body\n", NULL, "Just the body");
    /* keep_subject 0 */
    llm_email_options o;
    llm_email_options_init(&o);
    o.keep_subject = 0;
    ASSERT_PARSES_TO("Subject: Hi\n\nText\n", &o, "Text");
}
END_TEST

START_TEST(email_folded_headers) {
    ASSERT_PARSES_TO("Subject: part one\n  part two\nFrom: x@example.com\n\nbody\n", NULL,
                     "part one  part two\nbody");
    ASSERT_PARSES_TO("Subject: a\r\n\tb\r\n\r\nbody\r\n", NULL, "a\tb\nbody");
    /* a folded Content-Type parameter */
    ASSERT_PARSES_TO("Subject: s\nContent-Type: text/plain;\n charset=us-ascii\n"
                     "Content-Transfer-Encoding:\n quoted-printable\n\na=3Db\n",
                     NULL, "s\na=b");
}
END_TEST

START_TEST(email_encoded_word_subjects) {
    ASSERT_PARSES_TO("Subject: =?utf-8?B?SGVsbG8gV29ybGQ=?=\n\nx\n", NULL, "Hello World\nx");
    ASSERT_PARSES_TO("Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=\n\nx\n", NULL,
                     "Caf\xe9 au lait\nx");
    /* white space between adjacent encoded-words is dropped, not elsewhere */
    ASSERT_PARSES_TO("Subject: =?utf-8?Q?ab?= =?utf-8?Q?cd?=\n\nx\n", NULL, "abcd\nx");
    ASSERT_PARSES_TO("Subject: Re: =?utf-8?q?x?= y\n\nx\n", NULL, "Re: x y\nx");
    /* encoded-words split over a folded line */
    ASSERT_PARSES_TO("Subject: =?gb2312?B?xOO6ww==?=\n =?gb2312?B?xOO6ww==?=\n\nx\n", NULL,
                     "\xc4\xe3\xba\xc3\xc4\xe3\xba\xc3\nx");
    /* malformed encoded-words are kept as they are */
    ASSERT_PARSES_TO("Subject: =?bad =?utf-8?X?abc?= 50%=?\n\nx\n", NULL,
                     "=?bad =?utf-8?X?abc?= 50%=?\nx");
}
END_TEST

START_TEST(email_quoted_printable) {
    const char *msg = "Subject: qp\nContent-Type: text/plain; charset=iso-8859-1\n"
                      "Content-Transfer-Encoding: quoted-printable\n\n"
                      "Soft=\nbreak and =3D equals and caf=E9 =\r\nagain=20\nlower=3d ok\n"
                      "bad =ZZ stays\n";
    ASSERT_PARSES_TO(msg, NULL,
                     "qp\nSoftbreak and = equals and caf\xe9 again \nlower= ok\nbad =ZZ stays");
}
END_TEST

START_TEST(email_base64) {
    const char *msg = "Subject: b64\nContent-Type: text/plain\n"
                      "Content-Transfer-Encoding: BASE64\n\n"
                      "SGVsbG8sIGJh\nc2U2NCB3b3Js\r\nZCE=\n";
    ASSERT_PARSES_TO(msg, NULL, "b64\nHello, base64 world!");
    /* bytes that are not valid UTF-8 pass through */
    ASSERT_PARSES_TO("Subject: x\nContent-Transfer-Encoding: base64\n\n/+7dzA==\n", NULL,
                     "x\n\xff\xee\xdd\xcc");
}
END_TEST

static const char *NESTED =
    "From: Alice <alice@example.com>\n"
    "To: bob@example.org\n"
    "Subject: Nested\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "This is a multi-part message in MIME format.\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "Plain version\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>HTML version</p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: image/png; name=\"pic.png\"\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=\"pic.png\"\n"
    "\n"
    "SU1BR0VCWVRFUw==\n"
    "--outer\n"
    "Content-Type: text/plain; name=\"notes.txt\"\n"
    "Content-Disposition: attachment; filename=\"notes.txt\"\n"
    "\n"
    "Attached notes\n"
    "--outer--\n"
    "Epilogue is ignored\n";

START_TEST(email_nested_multipart) {
    ASSERT_PARSES_TO(NESTED, NULL, "Nested\nPlain version\nAttached notes");
    llm_email_options o;
    llm_email_options_init(&o);
    o.text_attachments = 0;
    ASSERT_PARSES_TO(NESTED, &o, "Nested\nPlain version");
    o.text_attachments = 1;
    o.keep_headers = "to, FROM";
    ASSERT_PARSES_TO(NESTED, &o,
                     "From: Alice <alice@example.com>\nTo: bob@example.org\nNested\n"
                     "Plain version\nAttached notes");
    /* without MIME decoding the body is verbatim */
    llm_email_options_init(&o);
    o.decode_mime = 0;
    char *t = parse(NESTED, &o);
    ck_assert_ptr_nonnull(strstr(t, "SU1BR0VCWVRFUw=="));
    ck_assert_ptr_nonnull(strstr(t, "--outer--"));
    llm_text_free(t);
    /* the image's decoded bytes never show */
    t = parse(NESTED, NULL);
    ck_assert_ptr_null(strstr(t, "IMAGEBYTES"));
    llm_text_free(t);
}
END_TEST

START_TEST(email_alternative_falls_back_to_html) {
    const char *msg = "Subject: alt\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
                      "--b\nContent-Type: text/plain\n\n   \n"
                      "--b\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n"
                      "<html><body>Only <b>HTML</b> =\nhere</body></html>\n--b--\n";
    ASSERT_PARSES_TO(msg, NULL, "alt\nOnly HTML here");
    /* a multipart without its boundary lines is read as text */
    ASSERT_PARSES_TO("Subject: m\nContent-Type: multipart/mixed; boundary=zz\n\nno parts here\n",
                     NULL, "m\nno parts here");
    /* a missing closing delimiter (a cut message) still gives its parts */
    ASSERT_PARSES_TO("Subject: m\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n\npart one\n"
                     "--zz\nContent-Type: text/plain\n\npart two",
                     NULL, "m\npart one\npart two");
}
END_TEST

START_TEST(email_html_to_text) {
    const char *msg =
        "Subject: html\nContent-Type: text/html; charset=\"windows-1252\"\n\n"
        "<html><head><title>T</title><style>p { color: red }</style>"
        "<script type=\"text/javascript\">var x = \"<b>\";</script></head>\n"
        "<body><p>Fish &amp; chips &lt;3 &gt; &quot;q&quot;&nbsp;x &#65;&#x42; V<b></b>iagra</p>"
        "<br>Next   line<!-- hidden <p>comment</p> --> <a href=\"http://example.com/x\">click</a>"
        " 3 < 4 &unknown; &#0; caf&#233;</body></html>\n";
    ASSERT_PARSES_TO(msg, NULL,
                     "html\nT\nFish & chips <3 > \"q\" x AB Viagra\nNext line "
                     "http://example.com/x click 3 < 4 &unknown; caf\xc3\xa9");
    /* an untyped body that is HTML is treated as HTML */
    ASSERT_PARSES_TO("Subject: u\n\n<HTML><BODY>Buy <FONT color=red>now</FONT></BODY></HTML>\n",
                     NULL, "u\nBuy now");
}
END_TEST

START_TEST(email_message_rfc822_and_odd_input) {
    ASSERT_PARSES_TO("Subject: Fwd: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nSee below\n"
                     "--b\nContent-Type: message/rfc822\n\nSubject: Inner subject\n"
                     "From: y@example.com\n\nInner body\n--b--\n",
                     NULL, "Fwd: x\nSee below\nInner subject\nInner body");
    /* no headers at all */
    ASSERT_PARSES_TO("just some text\nmore text\n", NULL, "just some text\nmore text");
    /* headers only, and nothing at all */
    ASSERT_PARSES_TO("Subject: only\n", NULL, "only");
    char *t = NULL;
    size_t n = 99;
    ck_assert_ok(llm_email_parse(NULL, 0, NULL, &t, &n));
    ck_assert_str_eq(t, "");
    ck_assert_uint_eq(n, 0);
    llm_text_free(t);
    /* NUL and high bytes in the body */
    const char raw[] = "Subject: z\n\na\0b\xff\xfe";
    ck_assert_ok(llm_email_parse(raw, sizeof raw - 1, NULL, &t, &n));
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(memcmp(t, "z\na\0b\xff\xfe", 7), 0);
    llm_text_free(t);
    /* deep nesting is bounded, not a crash */
    size_t cap = 200000;
    char *deep = malloc(cap);
    size_t at = 0;
    at += (size_t)snprintf(deep + at, cap - at, "Subject: deep\n");
    for (int i = 0; i < 1000; i++)
        at += (size_t)snprintf(deep + at, cap - at,
                               "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
    at += (size_t)snprintf(deep + at, cap - at, "\nbottom\n");
    ck_assert_ok(llm_email_parse(deep, at, NULL, &t, &n));
    ck_assert_ptr_nonnull(strstr(t, "deep"));
    llm_text_free(t);
    free(deep);
}
END_TEST

START_TEST(email_size_cap) {
    llm_email_options o;
    llm_email_options_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_uint_eq(o.max_bytes, (size_t)1 << 20);
    o.max_bytes = 20;
    /* only "Subject: s\n\n01234567" is seen */
    ASSERT_PARSES_TO("Subject: s\n\n0123456789abcdef\n", &o, "s\n01234567");
    /* an options struct from an older, smaller version: only size is read */
    llm_email_options small;
    llm_email_options_init(&small);
    small.size = offsetof(llm_email_options, keep_subject);
    small.max_bytes = 20;
    small.keep_subject = 0; /* beyond size: ignored, the default (1) applies */
    ASSERT_PARSES_TO("Subject: s\n\n0123456789abcdef\n", &small, "s\n01234567");
}
END_TEST

/* A message of `n` bytes: `head`, then `unit` repeated, then `tail`. */
static char *repeat_msg(const char *head, const char *unit, const char *tail, size_t n, size_t *len) {
    char *m = malloc(n + 1);
    size_t at = strlen(head), ul = strlen(unit), tl = strlen(tail);
    memcpy(m, head, at);
    while (at + ul + tl <= n) {
        memcpy(m + at, unit, ul);
        at += ul;
    }
    memcpy(m + at, tail, tl);
    at += tl;
    m[at] = '\0';
    *len = at;
    return m;
}

START_TEST(email_hostile_input_stays_linear) {
    static const struct { const char *head, *unit, *tail; } cases[] = {
        {"Subject: ", "=?a?q?x", "\n\nbody\n"},
        {"Subject: ", "=?a?q?x?= ", "\n\nbody\n"},
        {"Subject: s\nContent-Type: text/html\n\n", "<a href=x &#1", ""},
        {"Subject: s\nContent-Type: text/html\n\n", "<b>&amp;x<!-", ""},
        {"Subject: s\nContent-Type: multipart/mixed; boundary=b\n\n", "--b\n", "--b--\n"},
        {"Subject: s\nContent-Type: multipart/alternative; boundary=b\n\n", "--b\n\nx\n", ""},
        {"Subject: s\nContent-Transfer-Encoding: quoted-printable\n\n", "=\n=4", ""},
        {"", "X-Header: v\n ", "\n\nbody"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len;
        char *m = repeat_msg(cases[k].head, cases[k].unit, cases[k].tail, (size_t)1 << 20, &len);
        /* 1 MiB: a quadratic parser would need ~10^12 steps, far past the
         * test case's timeout (no wall-clock assertion: the machine may be
         * loaded) */
        char *t;
        size_t n;
        ck_assert_ok(llm_email_parse(m, len, NULL, &t, &n));
        llm_text_free(t);
        free(m);
    }
}
END_TEST

START_TEST(email_fixture_messages) {
    char *t;
    size_t n;
    ck_assert_ok(llm_email_read_file(FIXTURES "/spam/spam-2-00538.eml", NULL, &t, &n));
    ck_assert_ptr_nonnull(strstr(t, "The instant drugstore"));
    ck_assert_ptr_nonnull(strstr(t, "From the privacy of your home")); /* base64 decoded */
    ck_assert_ptr_null(strstr(t, "KCVyYW5k"));
    ck_assert_ptr_null(strstr(t, "Return-Path"));
    llm_text_free(t);
    ck_assert_ok(llm_email_read_file(FIXTURES "/ham/crafted-empty-body.eml", NULL, &t, &n));
    ck_assert_str_eq(t, "Empty body");
    llm_text_free(t);
    ck_assert_ok(llm_email_read_file(FIXTURES "/spam/spam-2-00083.eml", NULL, &t, &n));
    ck_assert_ptr_null(strchr(t, '\r'));
    llm_text_free(t);
    ck_assert_ok(llm_email_read_file(FIXTURES "/spam/spam-2-00860.eml", NULL, &t, &n));
    ck_assert_ptr_null(strcasestr(t, "<html"));
    ck_assert_ptr_null(strcasestr(t, "<td"));
    ck_assert_uint_gt(n, 20);
    llm_text_free(t);
}
END_TEST

/* ---------------------------------------------------------- tokenizer */

START_TEST(tokenizer_defaults_and_folds) {
    llm_tokenizer_options o;
    llm_tokenizer_options_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_int_eq(o.max_token_length, 64);
    ck_assert_str_eq(tokens_of("Hello, World! 42 times... A-B_c", &o), "hello world 42 times a b c");
    ck_assert_str_eq(tokens_of("", &o), "");
    ck_assert_str_eq(tokens_of("  ,;!  ", &o), "");
    o.fold_numbers = 1;
    ck_assert_str_eq(tokens_of("Hello 42 times 3.14 mp3", &o), "hello <num> times <num> <num> mp3");
    o.fold_numbers = 0;
    o.lowercase = 0;
    ck_assert_str_eq(tokens_of("Hello WORLD", &o), "Hello WORLD");
    o.lowercase = 1;
    /* bytes >= 0x80 belong to tokens, unless keep_high_bytes is 0 */
    ck_assert_str_eq(tokens_of("Caf\xe9 NA\xefVE \xc3\xa9t\xc3\xa9", &o),
                     "caf\xe9 na\xefve \xc3\xa9t\xc3\xa9");
    o.keep_high_bytes = 0;
    ck_assert_str_eq(tokens_of("Caf\xe9 NA\xefVE", &o), "caf na ve");
    o.keep_high_bytes = 1;
    /* URLs and addresses */
    const char *text = "see http://Example.com/a?b=1, or www.foo.org. mail John.Doe@Example.COM "
                       "<x+y@mail.example.co.uk> a@b x@y.z href=HTTPS://q.com/z";
    ck_assert_str_eq(tokens_of(text, &o),
                     "see http example com a b 1 or www foo org mail john doe example com x y "
                     "mail example co uk a b x y z href https q com z");
    o.fold_urls = 1;
    o.fold_emails = 1;
    ck_assert_str_eq(tokens_of(text, &o),
                     "see <url> or <url> mail <email> <email> a b x y z href <url>");
    /* max_token_length cuts */
    llm_tokenizer_options_init(&o);
    o.max_token_length = 3;
    ck_assert_str_eq(tokens_of("abcdefg hi ABCD", &o), "abc hi abc");
}
END_TEST

typedef struct collect {
    int count;
    int stop_at;
} collect;

static int count_tokens(const char *tok, size_t len, void *user) {
    collect *c = user;
    (void)tok;
    ck_assert_uint_gt(len, 0);
    return ++c->count == c->stop_at;
}

START_TEST(tokenizer_callback_and_join_limits) {
    collect c = {0, 0};
    ck_assert_ok(llm_tokenize("a b c d", 7, NULL, count_tokens, &c));
    ck_assert_int_eq(c.count, 4);
    collect stop = {0, 2};
    ck_assert_fails(llm_tokenize("a b c d", 7, NULL, count_tokens, &stop), LLM_ERR_CANCELLED);
    ck_assert_int_eq(stop.count, 2);
    /* join is snprintf-style */
    char small[5];
    size_t need = 0;
    ck_assert_ok(llm_tokenize_join("hello world", 11, NULL, small, sizeof small, &need));
    ck_assert_uint_eq(need, 11);
    ck_assert_str_eq(small, "hell");
    ck_assert_ok(llm_tokenize_join("hello world", 11, NULL, NULL, 0, &need));
    ck_assert_uint_eq(need, 11);
    /* pathological input for address detection stays linear: quadratic
     * work on 400 KB would run past the test case's timeout */
    size_t n = 400000;
    char *junk = malloc(n);
    for (size_t i = 0; i < n; i++) junk[i] = (i % 2) ? '.' : 'a';
    llm_tokenizer_options o;
    llm_tokenizer_options_init(&o);
    o.fold_emails = 1;
    o.fold_urls = 1;
    collect all = {0, 0};
    ck_assert_ok(llm_tokenize(junk, n, &o, count_tokens, &all));
    ck_assert_int_eq(all.count, (int)(n / 2));
    free(junk);
}
END_TEST

/* --------------------------------------------------------- vocabulary */

static llm_vocab *vocab_of(const char *const *texts, int n, const llm_tokenizer_options *tok,
                           const llm_vocab_options *vo) {
    llm_vocab_builder *b = NULL;
    ck_assert_ok(llm_vocab_builder_create(&b, tok));
    for (int i = 0; i < n; i++) ck_assert_ok(llm_vocab_builder_add(b, texts[i], strlen(texts[i])));
    llm_vocab *v = NULL;
    ck_assert_ok(llm_vocab_builder_build(b, vo, &v));
    llm_vocab_builder_free(b);
    return v;
}

static void assert_token(const llm_vocab *v, int32_t id, const char *expect) {
    const char *t;
    size_t len;
    ck_assert_ok(llm_vocab_token(v, id, &t, &len));
    ck_assert_str_eq(t, expect);
    ck_assert_uint_eq(len, strlen(expect));
    if (id >= 2) {
        int32_t back;
        ck_assert_ok(llm_vocab_lookup(v, t, len, &back));
        ck_assert_int_eq(back, id);
    }
}

START_TEST(vocab_order_and_limits) {
    const char *texts[] = {"b a c a b a", "d", "B"};
    llm_vocab *v = vocab_of(texts, 3, NULL, NULL);
    int32_t size;
    ck_assert_ok(llm_vocab_size(v, &size));
    ck_assert_int_eq(size, 6);
    assert_token(v, LLM_VOCAB_PAD, "");
    assert_token(v, LLM_VOCAB_OOV, "[UNK]");
    assert_token(v, 2, "a"); /* 3 */
    assert_token(v, 3, "b"); /* 3, after a by bytes */
    assert_token(v, 4, "c"); /* 1 */
    assert_token(v, 5, "d"); /* 1 */
    int32_t id;
    ck_assert_ok(llm_vocab_lookup(v, "zzz", 3, &id));
    ck_assert_int_eq(id, LLM_VOCAB_OOV);
    ck_assert_ok(llm_vocab_lookup(v, "", 0, &id));
    ck_assert_int_eq(id, LLM_VOCAB_OOV);
    ck_assert_ok(llm_vocab_lookup(v, "[UNK]", 5, &id));
    ck_assert_int_eq(id, LLM_VOCAB_OOV);
    llm_vocab_free(v);

    /* ties by byte order, prefixes first */
    const char *ties[] = {"ab b aa a ba"};
    v = vocab_of(ties, 1, NULL, NULL);
    assert_token(v, 2, "a");
    assert_token(v, 3, "aa");
    assert_token(v, 4, "ab");
    assert_token(v, 5, "b");
    assert_token(v, 6, "ba");
    llm_vocab_free(v);

    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    ck_assert_uint_eq(vo.size, sizeof vo);
    ck_assert_int_eq(vo.max_tokens, 20000);
    ck_assert_int_eq(vo.min_count, 1);
    vo.min_count = 2;
    v = vocab_of(texts, 3, NULL, &vo);
    ck_assert_ok(llm_vocab_size(v, &size));
    ck_assert_int_eq(size, 4);
    assert_token(v, 2, "a");
    assert_token(v, 3, "b");
    llm_vocab_free(v);
    vo.min_count = 1;
    vo.max_tokens = 3;
    v = vocab_of(texts, 3, NULL, &vo);
    ck_assert_ok(llm_vocab_size(v, &size));
    ck_assert_int_eq(size, 3);
    assert_token(v, 2, "a");
    llm_vocab_free(v);
    vo.max_tokens = 2;
    v = vocab_of(texts, 3, NULL, &vo);
    ck_assert_ok(llm_vocab_size(v, &size));
    ck_assert_int_eq(size, 2);
    llm_vocab_free(v);
    vo.max_tokens = 0; /* no limit */
    v = vocab_of(texts, 3, NULL, &vo);
    ck_assert_ok(llm_vocab_size(v, &size));
    ck_assert_int_eq(size, 6);
    llm_vocab_free(v);
}
END_TEST

START_TEST(vocab_builder_is_reusable_and_large) {
    llm_vocab_builder *b;
    ck_assert_ok(llm_vocab_builder_create(&b, NULL));
    ck_assert_ok(llm_vocab_builder_add(b, "x y", 3));
    ck_assert_ok(llm_vocab_builder_add(b, NULL, 0));
    llm_vocab *v1, *v2;
    ck_assert_ok(llm_vocab_builder_build(b, NULL, &v1));
    ck_assert_ok(llm_vocab_builder_add(b, "y z z z", 7));
    ck_assert_ok(llm_vocab_builder_build(b, NULL, &v2));
    assert_token(v1, 2, "x");
    assert_token(v2, 2, "z");
    assert_token(v2, 3, "y");
    llm_vocab_free(v1);
    llm_vocab_free(v2);
    /* many distinct tokens: the table grows; the cap keeps the most frequent */
    char word[32];
    for (int i = 0; i < 30000; i++) {
        int len = snprintf(word, sizeof word, "w%d", i);
        for (int k = 0; k < 1 + (i < 10); k++) ck_assert_ok(llm_vocab_builder_add(b, word, (size_t)len));
    }
    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    ck_assert_ok(llm_vocab_builder_build(b, &vo, &v1));
    int32_t size;
    ck_assert_ok(llm_vocab_size(v1, &size));
    ck_assert_int_eq(size, 20000);
    assert_token(v1, 2, "z"); /* count 3 */
    assert_token(v1, 3, "w0"); /* count 2, then w1..w9 and y */
    assert_token(v1, 4, "w1");
    llm_vocab_free(v1);
    llm_vocab_builder_free(b);
    llm_vocab_builder_free(NULL);
    llm_vocab_free(NULL);
}
END_TEST

START_TEST(vocab_serialize_round_trip) {
    llm_tokenizer_options tok;
    llm_tokenizer_options_init(&tok);
    tok.fold_numbers = 1;
    tok.fold_urls = 1;
    tok.max_token_length = 40;
    const char *texts[] = {"caf\xe9 caf\xe9 na\xefve 12 12 12 http://x.org", "plain words plain"};
    llm_vocab *v = vocab_of(texts, 2, &tok, NULL);
    size_t need = 0;
    ck_assert_ok(llm_vocab_serialize(v, NULL, 0, &need));
    ck_assert_uint_gt(need, 0);
    char *buf = malloc(need);
    size_t need2 = 0;
    ck_assert_ok(llm_vocab_serialize(v, buf, need, &need2));
    ck_assert_uint_eq(need2, need);
    for (size_t i = 0; i < need; i++)
        ck_assert_msg(buf[i] == '\n' || (buf[i] >= 0x20 && buf[i] < 0x7f), "byte %zu is 0x%02x", i,
                      (unsigned char)buf[i]);
    ck_assert_ptr_nonnull(memmem(buf, need, "caf\\xe9", 7));
    llm_vocab *w = NULL;
    ck_assert_ok(llm_vocab_deserialize(&w, buf, need));
    int32_t s1, s2;
    ck_assert_ok(llm_vocab_size(v, &s1));
    ck_assert_ok(llm_vocab_size(w, &s2));
    ck_assert_int_eq(s1, s2);
    for (int32_t id = 0; id < s1; id++) {
        const char *a, *b;
        size_t la, lb;
        ck_assert_ok(llm_vocab_token(v, id, &a, &la));
        ck_assert_ok(llm_vocab_token(w, id, &b, &lb));
        ck_assert_uint_eq(la, lb);
        ck_assert_int_eq(memcmp(a, b, la), 0);
    }
    int32_t id;
    ck_assert_ok(llm_vocab_lookup(w, "<num>", 5, &id));
    ck_assert_int_eq(id, 2);
    llm_tokenizer_options got;
    llm_tokenizer_options_init(&got);
    ck_assert_ok(llm_vocab_tokenizer_options(w, &got));
    ck_assert_int_eq(got.fold_numbers, 1);
    ck_assert_int_eq(got.fold_urls, 1);
    ck_assert_int_eq(got.fold_emails, 0);
    ck_assert_int_eq(got.max_token_length, 40);
    ck_assert_uint_eq(got.size, sizeof got);
    /* serialising the copy gives the same bytes */
    char *buf2 = malloc(need);
    ck_assert_ok(llm_vocab_serialize(w, buf2, need, &need2));
    ck_assert_uint_eq(need2, need);
    ck_assert_int_eq(memcmp(buf, buf2, need), 0);
    /* too small a buffer */
    ck_assert_fails(llm_vocab_serialize(v, buf2, need - 1, &need2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(need2, need);
    free(buf);
    free(buf2);
    llm_vocab_free(v);
    llm_vocab_free(w);
}
END_TEST

START_TEST(vocab_deserialize_rejects_malformed) {
    static const char *bad[] = {
        "",
        "hello\n",
        "llm-vocab 2\ntokenizer lowercase=1\nsize 2\n",
        "llm-vocab 1\n",
        "llm-vocab 1\ntokenizer lowercase=1\nsize 3\n",            /* token missing */
        "llm-vocab 1\ntokenizer lowercase=1\nsize 3\na\nb\n",      /* one too many */
        "llm-vocab 1\ntokenizer lowercase=1\nsize 4\na\na\n",      /* duplicate */
        "llm-vocab 1\ntokenizer lowercase=1\nsize 3\n\n",          /* empty token */
        "llm-vocab 1\ntokenizer lowercase=1\nsize 3\na\\x4\n",     /* bad escape */
        "llm-vocab 1\ntokenizer lowercase=1\nsize 3\na\tb\n",      /* unescaped control */
        "llm-vocab 1\ntokenizer lowercase=7\nsize 2\n",            /* bad flag */
        "llm-vocab 1\ntokenizer colour=1\nsize 2\n",               /* unknown option */
        "llm-vocab 1\ntokenizer max_token_length=0\nsize 2\n",
        "llm-vocab 1\ntokenizer lowercase=1\nsize 1\n",
        "llm-vocab 1\ntokenizer lowercase=1\nsize 99999999\na\n",  /* lying size */
        "llm-vocab 1\ntokenizer lowercase=1\nsize 3\na",           /* no final newline */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        llm_vocab *v = (llm_vocab *)1;
        llm_clear_error();
        llm_status s = llm_vocab_deserialize(&v, bad[i], strlen(bad[i]));
        ck_assert_msg(s == LLM_ERR_FORMAT, "case %zu: status %d", i, (int)s);
        ck_assert_ptr_null(v);
        ck_assert_msg(llm_last_error()[0] != '\0', "case %zu: no message", i);
    }
    llm_vocab *v;
    const char *good = "llm-vocab 1\ntokenizer\nsize 3\nx\\x41\n";
    ck_assert_ok(llm_vocab_deserialize(&v, good, strlen(good)));
    assert_token(v, 2, "xA");
    llm_vocab_free(v);
}
END_TEST

/* --------------------------------------------------------- vectorizer */

static llm_vocab *abcde(void) {
    const char *texts[] = {"a b c d e"};
    return vocab_of(texts, 1, NULL, NULL); /* a=2 b=3 c=4 d=5 e=6 */
}

static void assert_ids(const int32_t *got, const int32_t *want, int n) {
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "ids[%d] = %d, expected %d", i, got[i], want[i]);
}

START_TEST(vectorize_padding_and_truncation) {
    llm_vocab *v = abcde();
    llm_vectorize_options o;
    llm_vectorize_options_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_int_eq(o.seq_len, 200);
    ck_assert_int_eq(o.padding, LLM_SEQ_PRE);
    ck_assert_int_eq(o.truncation, LLM_SEQ_POST);
    o.seq_len = 4;
    int32_t ids[7];
    int64_t nt;
    ck_assert_ok(llm_vectorize(v, "A b", 3, &o, ids, 4, &nt));
    assert_ids(ids, (int32_t[]){0, 0, 2, 3}, 4);
    ck_assert_int_eq(nt, 2);
    o.padding = LLM_SEQ_POST;
    ck_assert_ok(llm_vectorize(v, "a b", 3, &o, ids, 4, &nt));
    assert_ids(ids, (int32_t[]){2, 3, 0, 0}, 4);
    /* OOV is 1 */
    ck_assert_ok(llm_vectorize(v, "a zzz", 5, &o, ids, 4, NULL));
    assert_ids(ids, (int32_t[]){2, 1, 0, 0}, 4);
    /* truncation: POST keeps the start, PRE the end */
    const char *seven = "a b c d e a b";
    ck_assert_ok(llm_vectorize(v, seven, strlen(seven), &o, ids, 4, &nt));
    assert_ids(ids, (int32_t[]){2, 3, 4, 5}, 4);
    ck_assert_int_eq(nt, 7);
    o.truncation = LLM_SEQ_PRE;
    ck_assert_ok(llm_vectorize(v, seven, strlen(seven), &o, ids, 4, &nt));
    assert_ids(ids, (int32_t[]){5, 6, 2, 3}, 4);
    o.seq_len = 3;
    ck_assert_ok(llm_vectorize(v, seven, strlen(seven), &o, ids, 3, &nt));
    assert_ids(ids, (int32_t[]){6, 2, 3}, 3);
    /* exact fit and empty text */
    o.seq_len = 7;
    ck_assert_ok(llm_vectorize(v, seven, strlen(seven), &o, ids, 7, &nt));
    assert_ids(ids, (int32_t[]){2, 3, 4, 5, 6, 2, 3}, 7);
    o.padding = LLM_SEQ_PRE;
    ck_assert_ok(llm_vectorize(v, "", 0, &o, ids, 7, &nt));
    assert_ids(ids, (int32_t[]){0, 0, 0, 0, 0, 0, 0}, 7);
    ck_assert_int_eq(nt, 0);
    llm_vocab_free(v);
}
END_TEST

/* ------------------------------------------------------------- corpus */

START_TEST(corpus_fixture_folder) {
    llm_text_corpus *c = NULL;
    ck_assert_ok(llm_text_corpus_from_directory(&c, FIXTURES, NULL));
    int64_t n, nh, ns, skipped;
    int32_t k;
    ck_assert_ok(llm_text_corpus_count(c, &n));
    ck_assert_int_eq(n, 37);
    ck_assert_ok(llm_text_corpus_num_classes(c, &k));
    ck_assert_int_eq(k, 2);
    const char *name;
    ck_assert_ok(llm_text_corpus_class_name(c, 0, &name));
    ck_assert_str_eq(name, "ham");
    ck_assert_ok(llm_text_corpus_class_name(c, 1, &name));
    ck_assert_str_eq(name, "spam");
    ck_assert_ok(llm_text_corpus_class_count(c, 0, &nh));
    ck_assert_ok(llm_text_corpus_class_count(c, 1, &ns));
    ck_assert_int_eq(nh, 19);
    ck_assert_int_eq(ns, 18);
    ck_assert_ok(llm_text_corpus_skipped(c, &skipped));
    ck_assert_int_eq(skipped, 0);
    int found = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *src, *text;
        size_t len;
        int32_t label;
        ck_assert_ok(llm_text_corpus_source(c, i, &src));
        ck_assert_ok(llm_text_corpus_label(c, i, &label));
        ck_assert_ok(llm_text_corpus_text(c, i, &text, &len));
        ck_assert_uint_eq(strlen(text) <= len, 1);
        /* files are read class by class in name order */
        ck_assert_int_eq(label, i < 19 ? 0 : 1);
        ck_assert_ptr_nonnull(strstr(src, label ? "/spam/" : "/ham/"));
        if (strstr(src, "crafted-empty-body")) {
            ck_assert_str_eq(text, "Empty body");
            found++;
        }
        if (strstr(src, "spam-2-00538")) {
            ck_assert_ptr_nonnull(strstr(text, "privacy of your home"));
            found++;
        }
    }
    ck_assert_int_eq(found, 2);
    /* raw format: the files as they are */
    llm_corpus_options co;
    llm_corpus_options_init(&co);
    co.format = LLM_CORPUS_RAW;
    llm_text_corpus *raw;
    ck_assert_ok(llm_text_corpus_from_directory(&raw, FIXTURES "/", &co));
    ck_assert_ok(llm_text_corpus_count(raw, &n));
    ck_assert_int_eq(n, 37);
    const char *text, *src;
    size_t len;
    ck_assert_ok(llm_text_corpus_text(raw, 0, &text, &len));
    ck_assert_ok(llm_text_corpus_source(raw, 0, &src));
    struct stat st;
    ck_assert_int_eq(stat(src, &st), 0);
    ck_assert_uint_eq(len, (size_t)st.st_size);
    llm_text_corpus_free(raw);

    /* the whole pipeline on the fixtures */
    llm_text_corpus *train, *val;
    ck_assert_ok(llm_text_corpus_split(c, 0.2, 7, &train, &val));
    int64_t nt, nv;
    ck_assert_ok(llm_text_corpus_count(train, &nt));
    ck_assert_ok(llm_text_corpus_count(val, &nv));
    ck_assert_int_eq(nv, 4 + 4); /* round(0.2 * 19) + round(0.2 * 18) */
    ck_assert_int_eq(nt + nv, 37);
    llm_vocab *v;
    ck_assert_ok(llm_vocab_build_from_corpus(&v, train, NULL, NULL));
    int32_t vs;
    ck_assert_ok(llm_vocab_size(v, &vs));
    ck_assert_int_gt(vs, 500);
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(nt * vo.seq_len));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)nt);
    int32_t *lengths = malloc(sizeof(int32_t) * (size_t)nt);
    ck_assert_ok(llm_text_corpus_vectorize(train, v, &vo, ids, nt * vo.seq_len, labels, lengths, nt));
    int32_t row[200];
    for (int64_t i = 0; i < nt; i++) {
        int32_t label;
        ck_assert_ok(llm_text_corpus_label(train, i, &label));
        ck_assert_int_eq(labels[i], label);
        ck_assert_ok(llm_text_corpus_text(train, i, &text, &len));
        int64_t ntok;
        ck_assert_ok(llm_vectorize(v, text, len, &vo, row, 200, &ntok));
        ck_assert_int_eq(memcmp(row, ids + i * 200, sizeof row), 0);
        ck_assert_int_eq(lengths[i], ntok < 200 ? ntok : 200);
        for (int j = 0; j < 200; j++) ck_assert(row[j] >= 0 && row[j] < vs);
    }
    ck_assert_ok(llm_text_corpus_vectorize(train, v, &vo, ids, nt * vo.seq_len, NULL, NULL, nt));
    free(ids);
    free(labels);
    free(lengths);
    llm_vocab_free(v);
    llm_text_corpus_free(train);
    llm_text_corpus_free(val);
    llm_text_corpus_free(c);
}
END_TEST

static llm_text_corpus *numbered_corpus(int n0, int n1) {
    const char *names[] = {"neg", "pos"};
    llm_text_corpus *c;
    ck_assert_ok(llm_text_corpus_create(&c, names, 2));
    char t[32];
    for (int i = 0; i < n0 + n1; i++) {
        int len = snprintf(t, sizeof t, "doc %d", i);
        ck_assert_ok(llm_text_corpus_add(c, t, (size_t)len, i < n0 ? 0 : 1));
    }
    return c;
}

/* The texts of a corpus, joined, as a fingerprint of its order. */
static void fingerprint(const llm_text_corpus *c, char *out, size_t cap) {
    int64_t n;
    ck_assert_ok(llm_text_corpus_count(c, &n));
    out[0] = '\0';
    for (int64_t i = 0; i < n; i++) {
        const char *t;
        ck_assert_ok(llm_text_corpus_text(c, i, &t, NULL));
        strncat(out, t, cap - strlen(out) - 2);
        strcat(out, ",");
    }
}

START_TEST(corpus_split_stratified_and_seeded) {
    llm_text_corpus *c = numbered_corpus(70, 30);
    llm_text_corpus *tr, *va, *tr2, *va2, *tr3, *va3;
    ck_assert_ok(llm_text_corpus_split(c, 0.2, 1, &tr, &va));
    int64_t n;
    ck_assert_ok(llm_text_corpus_count(va, &n));
    ck_assert_int_eq(n, 20);
    ck_assert_ok(llm_text_corpus_class_count(va, 0, &n));
    ck_assert_int_eq(n, 14);
    ck_assert_ok(llm_text_corpus_class_count(va, 1, &n));
    ck_assert_int_eq(n, 6);
    ck_assert_ok(llm_text_corpus_class_count(tr, 0, &n));
    ck_assert_int_eq(n, 56);
    ck_assert_ok(llm_text_corpus_class_count(tr, 1, &n));
    ck_assert_int_eq(n, 24);
    /* disjoint, and together the whole corpus, labels kept */
    int seen[100] = {0};
    const llm_text_corpus *parts[2] = {tr, va};
    for (int p = 0; p < 2; p++) {
        ck_assert_ok(llm_text_corpus_count(parts[p], &n));
        for (int64_t i = 0; i < n; i++) {
            const char *t;
            int32_t label;
            ck_assert_ok(llm_text_corpus_text(parts[p], i, &t, NULL));
            ck_assert_ok(llm_text_corpus_label(parts[p], i, &label));
            int d = atoi(t + 4);
            ck_assert_int_eq(label, d < 70 ? 0 : 1);
            seen[d]++;
        }
    }
    for (int d = 0; d < 100; d++) ck_assert_int_eq(seen[d], 1);
    /* same seed: same split, same order; another seed: another split */
    static char f1[4096], f2[4096], f3[4096];
    ck_assert_ok(llm_text_corpus_split(c, 0.2, 1, &tr2, &va2));
    fingerprint(va, f1, sizeof f1);
    fingerprint(va2, f2, sizeof f2);
    ck_assert_str_eq(f1, f2);
    fingerprint(tr, f1, sizeof f1);
    fingerprint(tr2, f2, sizeof f2);
    ck_assert_str_eq(f1, f2);
    ck_assert_ok(llm_text_corpus_split(c, 0.2, 2, &tr3, &va3));
    fingerprint(va, f1, sizeof f1);
    fingerprint(va3, f3, sizeof f3);
    ck_assert_str_ne(f1, f3);
    /* the classes are interleaved, not appended one after the other */
    int32_t first_label, label;
    int changes = 0;
    ck_assert_ok(llm_text_corpus_count(tr, &n));
    ck_assert_ok(llm_text_corpus_label(tr, 0, &first_label));
    for (int64_t i = 1; i < n; i++) {
        int32_t prev;
        ck_assert_ok(llm_text_corpus_label(tr, i - 1, &prev));
        ck_assert_ok(llm_text_corpus_label(tr, i, &label));
        changes += prev != label;
    }
    ck_assert_int_gt(changes, 5);
    llm_text_corpus_free(tr);
    llm_text_corpus_free(va);
    llm_text_corpus_free(tr2);
    llm_text_corpus_free(va2);
    llm_text_corpus_free(tr3);
    llm_text_corpus_free(va3);

    /* fraction 0: empty validation part; tiny classes keep a training example */
    ck_assert_ok(llm_text_corpus_split(c, 0.0, 1, &tr, &va));
    ck_assert_ok(llm_text_corpus_count(va, &n));
    ck_assert_int_eq(n, 0);
    llm_text_corpus_free(tr);
    llm_text_corpus_free(va);
    llm_text_corpus *small = numbered_corpus(1, 2);
    ck_assert_ok(llm_text_corpus_split(small, 0.9, 1, &tr, &va));
    ck_assert_ok(llm_text_corpus_class_count(tr, 0, &n));
    ck_assert_int_eq(n, 1);
    ck_assert_ok(llm_text_corpus_class_count(tr, 1, &n));
    ck_assert_int_eq(n, 1);
    llm_text_corpus_free(tr);
    llm_text_corpus_free(va);
    llm_text_corpus_free(small);

    /* shuffle is seeded */
    llm_text_corpus *a = numbered_corpus(10, 10), *b = numbered_corpus(10, 10);
    ck_assert_ok(llm_text_corpus_shuffle(a, 5));
    ck_assert_ok(llm_text_corpus_shuffle(b, 5));
    fingerprint(a, f1, sizeof f1);
    fingerprint(b, f2, sizeof f2);
    ck_assert_str_eq(f1, f2);
    llm_text_corpus *u = numbered_corpus(10, 10);
    fingerprint(u, f3, sizeof f3);
    ck_assert_str_ne(f1, f3);
    llm_text_corpus_free(a);
    llm_text_corpus_free(b);
    llm_text_corpus_free(u);
    llm_text_corpus_free(c);
    llm_text_corpus_free(NULL);
}
END_TEST

START_TEST(corpus_directory_limits) {
    char *d = temp_dir();
    make_dir(d, "a");
    make_dir(d, "b");
    make_dir(d, ".hidden");
    make_dir(d, "b/subdir");
    write_file(d, "a/empty.eml", "");
    write_file(d, "a/.DS_Store", "junk");
    write_file(d, "b/one.txt", "Subject: one\n\nbody one\n");
    write_file(d, "b/subdir/ignored.txt", "ignored");
    write_file(d, "toplevel.txt", "ignored too");
    /* a 50 MB file is read up to the cap only */
    char big[512];
    snprintf(big, sizeof big, "%s/b/big.txt", d);
    FILE *f = fopen(big, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("Subject: big\n\n", f);
    char *block = malloc(1 << 20);
    memset(block, 'x', 1 << 20);
    for (int i = 0; i < 50; i++) block[(i * 7919) % (1 << 20)] = ' ';
    for (int i = 0; i < 50; i++) ck_assert_uint_eq(fwrite(block, 1, 1 << 20, f), 1 << 20);
    fclose(f);
    free(block);

    double t0 = tu_now();
    char *t;
    size_t len;
    ck_assert_ok(llm_text_read_file(big, (size_t)1 << 20, &t, &len));
    ck_assert_uint_eq(len, (size_t)1 << 20);
    ck_assert_int_eq(memcmp(t, "Subject: big", 12), 0);
    llm_text_free(t);
    ck_assert_ok(llm_email_read_file(big, NULL, &t, &len));
    ck_assert_uint_le(len, (size_t)1 << 20);
    ck_assert_uint_gt(len, ((size_t)1 << 20) - 100);
    ck_assert_int_eq(memcmp(t, "big\n", 4), 0);
    llm_text_free(t);
    llm_text_corpus *c;
    llm_corpus_options co;
    llm_corpus_options_init(&co);
    co.format = LLM_CORPUS_RAW;
    co.max_file_bytes = 4096;
    ck_assert_ok(llm_text_corpus_from_directory(&c, d, &co));
    ck_assert_msg(tu_now() - t0 < 3.0, "reading with the cap took %.2f s", tu_now() - t0);
    int64_t n;
    ck_assert_ok(llm_text_corpus_count(c, &n));
    ck_assert_int_eq(n, 3); /* a/empty.eml, b/big.txt, b/one.txt */
    const char *text;
    ck_assert_ok(llm_text_corpus_text(c, 0, &text, &len));
    ck_assert_str_eq(text, "");
    ck_assert_uint_eq(len, 0);
    ck_assert_ok(llm_text_corpus_text(c, 1, &text, &len));
    ck_assert_uint_eq(len, 4096);
    llm_text_corpus_free(c);
    ck_assert_ok(llm_text_corpus_from_directory(&c, d, NULL));
    ck_assert_ok(llm_text_corpus_text(c, 2, &text, &len));
    ck_assert_str_eq(text, "one\nbody one");
    llm_text_corpus_free(c);

    /* unreadable files (a dangling link): an error by default, or skipped */
    char link[512];
    snprintf(link, sizeof link, "%s/b/dangling.eml", d);
    ck_assert_int_eq(symlink("/nonexistent/llm/file", link), 0);
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, NULL), LLM_ERR_IO);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "dangling.eml"));
    co.skip_unreadable = 1;
    ck_assert_ok(llm_text_corpus_from_directory(&c, d, &co));
    int64_t skipped;
    ck_assert_ok(llm_text_corpus_skipped(c, &skipped));
    ck_assert_int_eq(skipped, 1);
    ck_assert_ok(llm_text_corpus_count(c, &n));
    ck_assert_int_eq(n, 3);
    llm_text_corpus_free(c);
    rm_rf(d);
    free(d);
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(errors_directory) {
    llm_text_corpus *c = (llm_text_corpus *)1;
    ck_assert_fails(llm_text_corpus_from_directory(&c, "data/no/such/dir", NULL), LLM_ERR_IO);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "data/no/such/dir"));
    ck_assert_fails(llm_text_corpus_from_directory(&c, FIXTURES "/README", NULL), LLM_ERR_IO);
    ck_assert_fails(llm_text_corpus_from_directory(NULL, FIXTURES, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_from_directory(&c, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);

    char *d = temp_dir();
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "0 class"));
    make_dir(d, "only");
    write_file(d, "only/x.eml", "Subject: x\n\nx\n");
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "1 class"));
    make_dir(d, "second");
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "second"));
    write_file(d, "second/y.eml", "Subject: y\n\ny\n");
    ck_assert_ok(llm_text_corpus_from_directory(&c, d, NULL));
    llm_text_corpus_free(c);

    llm_corpus_options co;
    llm_corpus_options_init(&co);
    co.size = 0;
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, &co), LLM_ERR_INVALID_ARGUMENT);
    llm_corpus_options_init(&co);
    co.format = (llm_corpus_format)9;
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, &co), LLM_ERR_INVALID_ARGUMENT);
    llm_corpus_options_init(&co);
    co.max_file_bytes = 0;
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, &co), LLM_ERR_INVALID_ARGUMENT);
    llm_corpus_options_init(&co);
    co.skip_unreadable = 2;
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, &co), LLM_ERR_INVALID_ARGUMENT);
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.max_bytes = 0;
    llm_corpus_options_init(&co);
    co.email = &eo;
    ck_assert_fails(llm_text_corpus_from_directory(&c, d, &co), LLM_ERR_INVALID_ARGUMENT);
    rm_rf(d);
    free(d);
}
END_TEST

START_TEST(errors_email_and_files) {
    char *t = (char *)1;
    size_t n;
    ck_assert_fails(llm_email_parse("x", 1, NULL, NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_email_parse(NULL, 5, NULL, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(t);
    llm_email_options o;
    llm_email_options_init(&o);
    o.size = 3;
    ck_assert_fails(llm_email_parse("x", 1, &o, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    llm_email_options_init(&o);
    o.max_bytes = 0;
    ck_assert_fails(llm_email_parse("x", 1, &o, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    llm_email_options_init(&o);
    o.keep_subject = 2;
    ck_assert_fails(llm_email_parse("x", 1, &o, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    llm_email_options_init(&o);
    o.decode_mime = -1;
    ck_assert_fails(llm_email_parse("x", 1, &o, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    llm_email_options_init(&o);
    o.text_attachments = 5;
    ck_assert_fails(llm_email_parse("x", 1, &o, &t, &n), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_email_read_file(NULL, NULL, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_email_read_file(FIXTURES "/ham/easy-ham-1-00002.eml", NULL, NULL, &n),
                    LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_email_read_file("data/no-such-file.eml", NULL, &t, &n), LLM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "no-such-file.eml"));
    ck_assert_fails(llm_email_read_file(FIXTURES, NULL, &t, &n), LLM_ERR_IO);
    llm_email_options_init(&o);
    o.max_bytes = 0;
    ck_assert_fails(llm_email_read_file(FIXTURES "/ham/easy-ham-1-00002.eml", &o, &t, &n),
                    LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_text_read_file(NULL, 10, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_read_file(FIXTURES "/README", 10, NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_read_file(FIXTURES "/README", 0, &t, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_read_file("data/no-such-file", 10, &t, &n), LLM_ERR_IO);
    ck_assert_ok(llm_text_read_file(FIXTURES "/README", 10, &t, NULL));
    ck_assert_uint_eq(strlen(t), 10);
    llm_text_free(t);
    llm_text_free(NULL);
    /* an empty file reads as an empty text */
    char *d = temp_dir();
    write_file(d, "empty", "");
    char p[512];
    snprintf(p, sizeof p, "%s/empty", d);
    ck_assert_ok(llm_text_read_file(p, 10, &t, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_str_eq(t, "");
    llm_text_free(t);
    ck_assert_ok(llm_email_read_file(p, NULL, &t, &n));
    ck_assert_str_eq(t, "");
    llm_text_free(t);
    rm_rf(d);
    free(d);
}
END_TEST

static int never(const char *t, size_t l, void *u) { (void)t; (void)l; (void)u; return 0; }

START_TEST(errors_tokenizer_vocab_vectorize) {
    llm_tokenizer_options o;
    char buf[8];
    size_t need;
    ck_assert_fails(llm_tokenize(NULL, 3, NULL, never, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tokenize("abc", 3, NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tokenize_join(NULL, 3, NULL, buf, sizeof buf, &need), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tokenize_join("abc", 3, NULL, NULL, 4, &need), LLM_ERR_INVALID_ARGUMENT);
    llm_tokenizer_options_init(&o);
    o.size = 0;
    ck_assert_fails(llm_tokenize("abc", 3, &o, never, NULL), LLM_ERR_INVALID_ARGUMENT);
    int *fields[] = {&o.lowercase, &o.keep_high_bytes, &o.fold_numbers, &o.fold_urls, &o.fold_emails};
    for (size_t i = 0; i < 5; i++) {
        llm_tokenizer_options_init(&o);
        *fields[i] = 2;
        ck_assert_fails(llm_tokenize("abc", 3, &o, never, NULL), LLM_ERR_INVALID_ARGUMENT);
    }
    llm_tokenizer_options_init(&o);
    o.max_token_length = 0;
    ck_assert_fails(llm_tokenize("abc", 3, &o, never, NULL), LLM_ERR_INVALID_ARGUMENT);
    o.max_token_length = LLM_TOKEN_MAX_LENGTH + 1;
    ck_assert_fails(llm_tokenize_join("abc", 3, &o, buf, sizeof buf, &need), LLM_ERR_INVALID_ARGUMENT);

    llm_vocab_builder *b = (llm_vocab_builder *)1;
    ck_assert_fails(llm_vocab_builder_create(NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_builder_create(&b, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(b);
    ck_assert_ok(llm_vocab_builder_create(&b, NULL));
    ck_assert_fails(llm_vocab_builder_add(NULL, "a", 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_builder_add(b, NULL, 1), LLM_ERR_INVALID_ARGUMENT);
    llm_vocab *v = (llm_vocab *)1;
    ck_assert_fails(llm_vocab_builder_build(NULL, NULL, &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(v);
    ck_assert_fails(llm_vocab_builder_build(b, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    vo.max_tokens = 1;
    ck_assert_fails(llm_vocab_builder_build(b, &vo, &v), LLM_ERR_INVALID_ARGUMENT);
    vo.max_tokens = -5;
    ck_assert_fails(llm_vocab_builder_build(b, &vo, &v), LLM_ERR_INVALID_ARGUMENT);
    llm_vocab_options_init(&vo);
    vo.min_count = 0;
    ck_assert_fails(llm_vocab_builder_build(b, &vo, &v), LLM_ERR_INVALID_ARGUMENT);
    vo.min_count = 1;
    vo.size = 1;
    ck_assert_fails(llm_vocab_builder_build(b, &vo, &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_vocab_builder_add(b, "a b", 3));
    ck_assert_ok(llm_vocab_builder_build(b, NULL, &v));
    llm_vocab_builder_free(b);

    llm_text_corpus *c = numbered_corpus(2, 2);
    llm_vocab *v2;
    ck_assert_fails(llm_vocab_build_from_corpus(NULL, c, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_build_from_corpus(&v2, NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_build_from_corpus(&v2, c, &o, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_build_from_corpus(&v2, c, NULL, &vo), LLM_ERR_INVALID_ARGUMENT);

    int32_t i32;
    const char *tok;
    ck_assert_fails(llm_vocab_size(NULL, &i32), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_size(v, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_lookup(NULL, "a", 1, &i32), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_lookup(v, NULL, 1, &i32), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_lookup(v, "a", 1, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_token(NULL, 0, &tok, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_token(v, 0, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_token(v, -1, &tok, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_token(v, 4, &tok, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_tokenizer_options got;
    ck_assert_fails(llm_vocab_tokenizer_options(NULL, &got), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_tokenizer_options(v, NULL), LLM_ERR_INVALID_ARGUMENT);
    got.size = 0;
    ck_assert_fails(llm_vocab_tokenizer_options(v, &got), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_serialize(NULL, NULL, 0, &need), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_serialize(v, NULL, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_serialize(v, NULL, 5, &need), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_deserialize(NULL, "x", 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vocab_deserialize(&v2, NULL, 1), LLM_ERR_INVALID_ARGUMENT);

    llm_vectorize_options vz;
    llm_vectorize_options_init(&vz);
    vz.seq_len = 4;
    int32_t ids[8];
    ck_assert_fails(llm_vectorize(NULL, "a", 1, &vz, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vectorize(v, NULL, 1, &vz, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vectorize(v, "a", 1, &vz, NULL, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vectorize(v, "a", 1, &vz, ids, 3, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_vectorize(v, "a", 1, NULL, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    vz.seq_len = 0;
    ck_assert_fails(llm_vectorize(v, "a", 1, &vz, ids, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    vz.seq_len = 4;
    vz.padding = (llm_seq_side)7;
    ck_assert_fails(llm_vectorize(v, "a", 1, &vz, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    vz.padding = LLM_SEQ_POST;
    vz.truncation = (llm_seq_side)-1;
    ck_assert_fails(llm_vectorize(v, "a", 1, &vz, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    vz.truncation = LLM_SEQ_POST;
    vz.size = 0;
    ck_assert_fails(llm_vectorize(v, "a", 1, &vz, ids, 4, NULL), LLM_ERR_INVALID_ARGUMENT);
    vz.size = sizeof vz;
    vz.seq_len = 2;
    int32_t labels[4];
    ck_assert_fails(llm_text_corpus_vectorize(NULL, v, &vz, ids, 8, labels, NULL, 4), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_vectorize(c, NULL, &vz, ids, 8, labels, NULL, 4), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_vectorize(c, v, &vz, NULL, 8, labels, NULL, 4), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_vectorize(c, v, &vz, ids, 7, labels, NULL, 4), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_vectorize(c, v, &vz, ids, 6, labels, NULL, 3), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_text_corpus_vectorize(c, v, &vz, ids, 8, labels, NULL, 4));
    assert_ids(labels, (int32_t[]){0, 0, 1, 1}, 4);
    llm_text_corpus_free(c);
    llm_vocab_free(v);
}
END_TEST

START_TEST(errors_corpus_queries) {
    const char *names[] = {"x", "y"};
    const char *bad_names[] = {"x", NULL};
    llm_text_corpus *c = (llm_text_corpus *)1;
    ck_assert_fails(llm_text_corpus_create(NULL, names, 2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_create(&c, NULL, 2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(c);
    ck_assert_fails(llm_text_corpus_create(&c, names, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_create(&c, bad_names, 2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_text_corpus_create(&c, names, 2));
    ck_assert_fails(llm_text_corpus_add(NULL, "a", 1, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_add(c, NULL, 1, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_add(c, "a", 1, 2), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_add(c, "a", 1, -1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_text_corpus_add(c, "a", 1, 1));
    ck_assert_ok(llm_text_corpus_add(c, NULL, 0, 0));

    int64_t i64;
    int32_t i32;
    const char *s;
    size_t len;
    ck_assert_fails(llm_text_corpus_count(NULL, &i64), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_count(c, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_num_classes(NULL, &i32), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_num_classes(c, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_class_count(NULL, 0, &i64), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_class_count(c, 2, &i64), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_class_count(c, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_skipped(NULL, &i64), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_skipped(c, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_class_name(NULL, 0, &s), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_class_name(c, -1, &s), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_class_name(c, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_text(NULL, 0, &s, &len), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_text(c, 2, &s, &len), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_text(c, -1, &s, &len), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_text(c, 0, NULL, &len), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_label(NULL, 0, &i32), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_label(c, 5, &i32), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_label(c, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_source(NULL, 0, &s), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_source(c, 9, &s), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_source(c, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_text_corpus_source(c, 0, &s));
    ck_assert_str_eq(s, "");
    ck_assert_fails(llm_text_corpus_shuffle(NULL, 1), LLM_ERR_INVALID_ARGUMENT);

    llm_text_corpus *tr, *va;
    ck_assert_fails(llm_text_corpus_split(NULL, 0.5, 1, &tr, &va), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_split(c, 0.5, 1, NULL, &va), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_split(c, 0.5, 1, &tr, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_split(c, 1.0, 1, &tr, &va), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_split(c, -0.1, 1, &tr, &va), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_text_corpus_split(c, NAN, 1, &tr, &va), LLM_ERR_INVALID_ARGUMENT);
    llm_text_corpus_free(c);
}
END_TEST

Suite *suite_text(void) {
    Suite *s = suite_create("text");
    TCase *email = tcase_create("email");
    tcase_add_test(email, email_subject_and_body);
    tcase_add_test(email, email_folded_headers);
    tcase_add_test(email, email_encoded_word_subjects);
    tcase_add_test(email, email_quoted_printable);
    tcase_add_test(email, email_base64);
    tcase_add_test(email, email_nested_multipart);
    tcase_add_test(email, email_alternative_falls_back_to_html);
    tcase_add_test(email, email_html_to_text);
    tcase_add_test(email, email_message_rfc822_and_odd_input);
    tcase_add_test(email, email_size_cap);
    tcase_add_test(email, email_fixture_messages);
    tcase_add_test(email, email_hostile_input_stays_linear);
    tcase_set_timeout(email, 60);
    suite_add_tcase(s, email);
    TCase *core = tcase_create("core");
    tcase_add_test(core, tokenizer_defaults_and_folds);
    tcase_add_test(core, tokenizer_callback_and_join_limits);
    tcase_add_test(core, vocab_order_and_limits);
    tcase_add_test(core, vocab_builder_is_reusable_and_large);
    tcase_add_test(core, vocab_serialize_round_trip);
    tcase_add_test(core, vocab_deserialize_rejects_malformed);
    tcase_add_test(core, vectorize_padding_and_truncation);
    tcase_add_test(core, corpus_fixture_folder);
    tcase_add_test(core, corpus_split_stratified_and_seeded);
    tcase_set_timeout(core, 60);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, corpus_directory_limits);
    tcase_set_timeout(limits, 120);
    suite_add_tcase(s, limits);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, errors_directory);
    tcase_add_test(errors, errors_email_and_files);
    tcase_add_test(errors, errors_tokenizer_vocab_vectorize);
    tcase_add_test(errors, errors_corpus_queries);
    suite_add_tcase(s, errors);
    return s;
}
