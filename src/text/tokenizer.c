/* The tokenizer: bytes in, tokens out through a callback, nothing allocated.
 * Tokens are maximal runs of ASCII letters and digits (plus bytes >= 0x80 by
 * default, so a word in any charset stays one token). URL and address folding
 * look at "chunks" (text between white space, quotes and brackets), since a
 * URL's punctuation would otherwise split it into many tokens. */
#include "text/text_internal.h"

void llm_tokenizer_options_init(llm_tokenizer_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->lowercase = 1;
    opts->keep_high_bytes = 1;
    opts->fold_numbers = 0;
    opts->fold_urls = 0;
    opts->fold_emails = 0;
    opts->max_token_length = 64;
}

static llm_status check_flag(const char *fn, const char *name, int v) {
    if (v == 0 || v == 1) return LLM_OK;
    return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tokenizer options %s is %d; use 0 or 1", fn,
                      name, v);
}

llm_status llm__tokenizer_options_resolve(llm_tokenizer_options *dst,
                                          const llm_tokenizer_options *src, const char *fn) {
    llm_tokenizer_options_init(dst);
    LLM__CHECK(LLM__OPTIONS_MERGE(dst, src, fn));
    LLM__CHECK(check_flag(fn, "lowercase", dst->lowercase));
    LLM__CHECK(check_flag(fn, "keep_high_bytes", dst->keep_high_bytes));
    LLM__CHECK(check_flag(fn, "fold_numbers", dst->fold_numbers));
    LLM__CHECK(check_flag(fn, "fold_urls", dst->fold_urls));
    LLM__CHECK(check_flag(fn, "fold_emails", dst->fold_emails));
    if (dst->max_token_length < 1 || dst->max_token_length > LLM_TOKEN_MAX_LENGTH)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: tokenizer options max_token_length is %d; it must be in [1, %d]", fn,
                          dst->max_token_length, LLM_TOKEN_MAX_LENGTH);
    return LLM_OK;
}

typedef struct tok_state {
    const llm_tokenizer_options *o;
    llm_token_fn fn;
    void *user;
    char buf[LLM_TOKEN_MAX_LENGTH];
} tok_state;

static int is_word(const tok_state *t, unsigned char c) {
    return llm__is_alnum(c) || (c >= 0x80 && t->o->keep_high_bytes);
}

/* Chunk separators: white space, controls, quotes and brackets. */
static int is_chunk_sep(unsigned char c) {
    if (c <= ' ' || c == 0x7f) return 1;
    switch (c) {
    case '<': case '>': case '"': case '\'': case '(': case ')': case '[': case ']':
    case '{': case '}': case '|': case '\\': case '^': case '`':
        return 1;
    default:
        return 0;
    }
}

static int emit_literal(tok_state *t, const char *tok, size_t len) {
    return t->fn(tok, len, t->user) == 0;
}

static int emit_word(tok_state *t, const char *w, size_t len) {
    if (t->o->fold_numbers) {
        size_t i = 0;
        while (i < len && w[i] >= '0' && w[i] <= '9') i++;
        if (i == len) return emit_literal(t, "<num>", 5);
    }
    size_t n = len < (size_t)t->o->max_token_length ? len : (size_t)t->o->max_token_length;
    if (!t->o->lowercase) return emit_literal(t, w, n);
    for (size_t i = 0; i < n; i++) t->buf[i] = (char)llm__lower((unsigned char)w[i]);
    return emit_literal(t, t->buf, n);
}

static size_t url_prefix(const char *s, size_t n) {
    static const char *const prefixes[] = {"http://", "https://", "ftp://", "www."};
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        size_t m = strlen(prefixes[k]);
        if (n > m && llm__ieq(s, prefixes[k], m)) return m;
    }
    return 0;
}

static int is_local_char(unsigned char c) {
    return llm__is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* An address local@domain.tld starting at s[0] (an alphanumeric). Returns its
 * length, or 0 with *scan_end set to where the attempt stopped: no address
 * can start before that point either, which keeps the scan linear. */
static size_t email_at(const char *s, size_t n, size_t *scan_end) {
    size_t q = 0;
    while (q < n && is_local_char((unsigned char)s[q])) q++;
    *scan_end = q;
    if (q == 0 || q >= n || s[q] != '@') return 0;
    size_t r = q + 1;
    while (r < n && (llm__is_alnum((unsigned char)s[r]) || s[r] == '.' || s[r] == '-')) r++;
    while (r > q + 1 && (s[r - 1] == '.' || s[r - 1] == '-')) r--;
    /* the domain: starts alphanumeric, has a dot, ends in a 2+ letter label */
    if (r <= q + 1 || !llm__is_alnum((unsigned char)s[q + 1])) return 0;
    size_t dot = r;
    while (dot > q + 1 && s[dot - 1] != '.') dot--;
    if (dot <= q + 2 || r - dot < 2) return 0;
    for (size_t k = dot; k < r; k++) {
        unsigned char c = llm__lower((unsigned char)s[k]);
        if (c < 'a' || c > 'z') return 0;
    }
    return r;
}

static int tokenize_chunk(tok_state *t, const char *s, size_t n) {
    size_t p = 0;
    size_t no_email_before = 0;
    while (p < n) {
        unsigned char c = (unsigned char)s[p];
        if (!is_word(t, c)) {
            p++;
            continue;
        }
        /* p starts a word: the byte before, if any, is not a word byte */
        if (t->o->fold_urls && url_prefix(s + p, n - p)) {
            size_t e = n;
            while (e > p && s[e - 1] != '\0' && strchr(".,;:!?", s[e - 1])) e--;
            if (!emit_literal(t, "<url>", 5)) return 0;
            p = e;
            continue;
        }
        if (t->o->fold_emails && p >= no_email_before && llm__is_alnum(c)) {
            size_t scan_end;
            size_t len = email_at(s + p, n - p, &scan_end);
            if (len > 0) {
                if (!emit_literal(t, "<email>", 7)) return 0;
                p += len;
                continue;
            }
            no_email_before = p + scan_end;
        }
        size_t e = p;
        while (e < n && is_word(t, (unsigned char)s[e])) e++;
        if (!emit_word(t, s + p, e - p)) return 0;
        p = e;
    }
    return 1;
}

llm_status llm__tokenize(const char *text, size_t len, const llm_tokenizer_options *o,
                         llm_token_fn fn, void *user) {
    tok_state t;
    t.o = o;
    t.fn = fn;
    t.user = user;
    size_t i = 0;
    while (i < len) {
        if (is_chunk_sep((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && !is_chunk_sep((unsigned char)text[j])) j++;
        if (!tokenize_chunk(&t, text + i, j - i)) return LLM_ERR_CANCELLED;
        i = j;
    }
    return LLM_OK;
}

llm_status llm_tokenize(const char *text, size_t len, const llm_tokenizer_options *opts,
                        llm_token_fn fn, void *user) {
    if (!text && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but len is %zu", __func__,
                          len);
    if (!fn) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: fn is NULL", __func__);
    llm_tokenizer_options o;
    LLM__CHECK(llm__tokenizer_options_resolve(&o, opts, __func__));
    llm_status s = llm__tokenize(text, len, &o, fn, user);
    if (s == LLM_ERR_CANCELLED)
        return llm__error(LLM_ERR_CANCELLED, "%s: stopped by the token callback", __func__);
    return s;
}

typedef struct join_state {
    char *buf;
    size_t len;   /* capacity of buf, NUL included */
    size_t total; /* full joined length so far */
} join_state;

static int join_token(const char *token, size_t n, void *user) {
    join_state *j = user;
    for (size_t k = 0; k <= n; k++) {
        char c = k == 0 ? ' ' : token[k - 1];
        if (k == 0 && j->total == 0) continue; /* no space before the first token */
        if (j->len > 0 && j->total < j->len - 1) j->buf[j->total] = c;
        j->total++;
    }
    return 0;
}

llm_status llm_tokenize_join(const char *text, size_t text_len, const llm_tokenizer_options *opts,
                             char *buf, size_t len, size_t *needed) {
    if (needed) *needed = 0;
    if (!text && text_len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but text_len is %zu",
                          __func__, text_len);
    if (!buf && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buf is NULL but len is %zu", __func__,
                          len);
    llm_tokenizer_options o;
    LLM__CHECK(llm__tokenizer_options_resolve(&o, opts, __func__));
    join_state j = {buf, len, 0};
    (void)llm__tokenize(text, text_len, &o, join_token, &j);
    if (len > 0) buf[j.total < len - 1 ? j.total : len - 1] = '\0';
    if (needed) *needed = j.total;
    return LLM_OK;
}
