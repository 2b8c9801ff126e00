/* The vocabulary: token <-> id, built from token counts. Ids 0 and 1 are
 * padding and out-of-vocabulary; the rest go by count descending, ties by
 * byte order, so the same texts always give the same ids. */
#include <stdio.h>
#include <stdlib.h>
#include "text/text_internal.h"

#define VOCAB_FORMAT_VERSION 1
static const char PAD_TOKEN[] = "";
static const char OOV_TOKEN[] = "[UNK]";

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* ------------------------------------------------------------ builder */

typedef struct count_slot {
    uint64_t hash;
    size_t off; /* into the arena; SIZE_MAX marks an empty slot */
    size_t len;
    int64_t count;
} count_slot;

struct llm_vocab_builder {
    llm_tokenizer_options tok;
    llm__buf arena; /* token bytes, back to back */
    count_slot *slots;
    size_t cap; /* power of two */
    size_t used;
};

void llm_vocab_options_init(llm_vocab_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->max_tokens = 20000;
    opts->min_count = 1;
}

static count_slot *slots_new(size_t cap) {
    count_slot *s = llm__malloc(cap * sizeof *s);
    if (s)
        for (size_t i = 0; i < cap; i++) s[i].off = SIZE_MAX;
    return s;
}

llm_status llm_vocab_builder_create(llm_vocab_builder **out, const llm_tokenizer_options *tok) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    llm_tokenizer_options o;
    LLM__CHECK(llm__tokenizer_options_resolve(&o, tok, __func__));
    llm_vocab_builder *b = llm__calloc(1, sizeof *b);
    if (!b) return llm__oom(__func__);
    b->tok = o;
    b->cap = 1024;
    b->slots = slots_new(b->cap);
    if (!b->slots) {
        llm__free(b);
        return llm__oom(__func__);
    }
    *out = b;
    return LLM_OK;
}

void llm_vocab_builder_free(llm_vocab_builder *b) {
    if (!b) return;
    llm__buf_free(&b->arena);
    llm__free(b->slots);
    llm__free(b);
}

static int builder_grow(llm_vocab_builder *b) {
    if (b->cap > SIZE_MAX / 2 / sizeof(count_slot)) return 0;
    size_t cap = b->cap * 2;
    count_slot *s = slots_new(cap);
    if (!s) return 0;
    for (size_t i = 0; i < b->cap; i++) {
        if (b->slots[i].off == SIZE_MAX) continue;
        size_t k = b->slots[i].hash & (cap - 1);
        while (s[k].off != SIZE_MAX) k = (k + 1) & (cap - 1);
        s[k] = b->slots[i];
    }
    llm__free(b->slots);
    b->slots = s;
    b->cap = cap;
    return 1;
}

/* Returns 0 to stop (out of memory), as the token callback wants. */
static int builder_count(const char *token, size_t len, void *user) {
    llm_vocab_builder *b = user;
    uint64_t h = hash_bytes(token, len);
    size_t k = h & (b->cap - 1);
    while (b->slots[k].off != SIZE_MAX) {
        count_slot *s = &b->slots[k];
        if (s->hash == h && s->len == len && memcmp(b->arena.data + s->off, token, len) == 0) {
            s->count++;
            return 0;
        }
        k = (k + 1) & (b->cap - 1);
    }
    if ((b->used + 1) * 10 > b->cap * 7) {
        if (!builder_grow(b)) return 1;
        return builder_count(token, len, user);
    }
    size_t off = b->arena.len;
    if (!llm__buf_append(&b->arena, token, len)) return 1;
    b->slots[k] = (count_slot){h, off, len, 1};
    b->used++;
    return 0;
}

llm_status llm_vocab_builder_add(llm_vocab_builder *b, const char *text, size_t len) {
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: builder is NULL", __func__);
    if (!text && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but len is %zu", __func__,
                          len);
    if (llm__tokenize(text, len, &b->tok, builder_count, b) != LLM_OK) return llm__oom(__func__);
    return LLM_OK;
}

/* ------------------------------------------------------------- vocab */

struct llm_vocab {
    llm_tokenizer_options tok;
    int32_t size;
    size_t *off; /* [size] offsets of NUL-terminated tokens in arena */
    size_t *len; /* [size] */
    char *arena;
    int32_t *index; /* open addressing: id or -1 */
    size_t index_cap;
};

void llm_vocab_free(llm_vocab *v) {
    if (!v) return;
    llm__free(v->off);
    llm__free(v->len);
    llm__free(v->arena);
    llm__free(v->index);
    llm__free(v);
}

int32_t llm__vocab_find(const llm_vocab *v, const char *token, size_t len) {
    size_t k = hash_bytes(token, len) & (v->index_cap - 1);
    for (;;) {
        int32_t id = v->index[k];
        if (id < 0) return LLM_VOCAB_OOV;
        if (v->len[id] == len && memcmp(v->arena + v->off[id], token, len) == 0) return id;
        k = (k + 1) & (v->index_cap - 1);
    }
}

const llm_tokenizer_options *llm__vocab_tokopts(const llm_vocab *v) { return &v->tok; }

/* Makes a vocabulary of `count` tokens (ids 2..count+1), given as spans into
 * src; fails with LLM_ERR_FORMAT on a duplicate (only possible when loading). */
typedef struct tok_ref {
    const char *p;
    size_t len;
    int64_t count;
} tok_ref;

static llm_status vocab_make(llm_vocab **out, const llm_tokenizer_options *tok,
                             const tok_ref *toks, size_t count, const char *fn) {
    size_t size = count + 2;
    size_t bytes = sizeof PAD_TOKEN + sizeof OOV_TOKEN;
    for (size_t i = 0; i < count; i++) bytes += toks[i].len + 1;
    llm_vocab *v = llm__calloc(1, sizeof *v);
    if (!v) return llm__oom(fn);
    v->tok = *tok;
    v->size = (int32_t)size;
    v->index_cap = 16;
    while (v->index_cap < size * 2) v->index_cap *= 2;
    v->off = llm__malloc(size * sizeof *v->off);
    v->len = llm__malloc(size * sizeof *v->len);
    v->arena = llm__malloc(bytes);
    v->index = llm__malloc(v->index_cap * sizeof *v->index);
    if (!v->off || !v->len || !v->arena || !v->index) {
        llm_vocab_free(v);
        return llm__oom(fn);
    }
    for (size_t k = 0; k < v->index_cap; k++) v->index[k] = -1;
    size_t at = 0;
    memcpy(v->arena, PAD_TOKEN, sizeof PAD_TOKEN);
    v->off[0] = at;
    v->len[0] = 0;
    at += sizeof PAD_TOKEN;
    memcpy(v->arena + at, OOV_TOKEN, sizeof OOV_TOKEN);
    v->off[1] = at;
    v->len[1] = sizeof OOV_TOKEN - 1;
    at += sizeof OOV_TOKEN;
    for (size_t i = 0; i < count; i++) {
        int32_t id = (int32_t)(i + 2);
        memcpy(v->arena + at, toks[i].p, toks[i].len);
        v->arena[at + toks[i].len] = '\0';
        v->off[id] = at;
        v->len[id] = toks[i].len;
        at += toks[i].len + 1;
        size_t k = hash_bytes(toks[i].p, toks[i].len) & (v->index_cap - 1);
        while (v->index[k] >= 0) {
            int32_t o = v->index[k];
            if (v->len[o] == toks[i].len && memcmp(v->arena + v->off[o], toks[i].p, toks[i].len) == 0) {
                llm_vocab_free(v);
                return llm__error(LLM_ERR_FORMAT, "%s: token %zu appears twice", fn, i + 2);
            }
            k = (k + 1) & (v->index_cap - 1);
        }
        v->index[k] = id;
    }
    *out = v;
    return LLM_OK;
}

static int by_count_then_bytes(const void *pa, const void *pb) {
    const tok_ref *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    size_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, m);
    if (c != 0) return c;
    return a->len < b->len ? -1 : (a->len > b->len ? 1 : 0);
}

static llm_status vocab_options_resolve(llm_vocab_options *dst, const llm_vocab_options *src,
                                        const char *fn) {
    llm_vocab_options_init(dst);
    LLM__CHECK(LLM__OPTIONS_MERGE(dst, src, fn));
    if (dst->max_tokens != 0 && dst->max_tokens < 2)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: vocab options max_tokens is %d; it must be >= 2 (the padding and "
                          "out-of-vocabulary ids), or 0 for no limit",
                          fn, (int)dst->max_tokens);
    if (dst->min_count < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab options min_count is %lld; it must be >= 1",
                          fn, (long long)dst->min_count);
    return LLM_OK;
}

static llm_status builder_build(const llm_vocab_builder *b, const llm_vocab_options *o,
                                llm_vocab **out, const char *fn) {
    size_t n = 0;
    for (size_t i = 0; i < b->cap; i++)
        if (b->slots[i].off != SIZE_MAX && b->slots[i].count >= o->min_count) n++;
    tok_ref *refs = llm__malloc((n ? n : 1) * sizeof *refs);
    if (!refs) return llm__oom(fn);
    size_t k = 0;
    for (size_t i = 0; i < b->cap; i++) {
        const count_slot *s = &b->slots[i];
        if (s->off != SIZE_MAX && s->count >= o->min_count)
            refs[k++] = (tok_ref){b->arena.data + s->off, s->len, s->count};
    }
    qsort(refs, n, sizeof *refs, by_count_then_bytes);
    size_t keep = n;
    size_t limit = o->max_tokens == 0 ? (size_t)INT32_MAX - 2 : (size_t)o->max_tokens - 2;
    if (keep > limit) keep = limit;
    llm_status s = vocab_make(out, &b->tok, refs, keep, fn);
    llm__free(refs);
    return s;
}

llm_status llm_vocab_builder_build(const llm_vocab_builder *b, const llm_vocab_options *opts,
                                   llm_vocab **out) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: builder is NULL", __func__);
    llm_vocab_options o;
    LLM__CHECK(vocab_options_resolve(&o, opts, __func__));
    return builder_build(b, &o, out, __func__);
}

llm_status llm_vocab_build_from_corpus(llm_vocab **out, const llm_text_corpus *corpus,
                                       const llm_tokenizer_options *tok,
                                       const llm_vocab_options *opts) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!corpus) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: corpus is NULL", __func__);
    llm_vocab_options o;
    LLM__CHECK(vocab_options_resolve(&o, opts, __func__));
    llm_vocab_builder *b;
    llm_status s = llm_vocab_builder_create(&b, tok);
    if (s != LLM_OK) return s;
    int64_t n = 0;
    (void)llm_text_corpus_count(corpus, &n);
    for (int64_t i = 0; i < n && s == LLM_OK; i++) {
        const char *text;
        size_t len;
        (void)llm_text_corpus_text(corpus, i, &text, &len);
        if (llm__tokenize(text, len, &b->tok, builder_count, b) != LLM_OK) s = llm__oom(__func__);
    }
    if (s == LLM_OK) s = builder_build(b, &o, out, __func__);
    llm_vocab_builder_free(b);
    return s;
}

/* ------------------------------------------------------------ queries */

llm_status llm_vocab_size(const llm_vocab *v, int32_t *size) {
    if (!size) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: size is NULL", __func__);
    *size = 0;
    if (!v) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    *size = v->size;
    return LLM_OK;
}

llm_status llm_vocab_lookup(const llm_vocab *v, const char *token, size_t len, int32_t *id) {
    if (!id) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: id is NULL", __func__);
    *id = LLM_VOCAB_OOV;
    if (!v) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    if (!token && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: token is NULL but len is %zu", __func__,
                          len);
    *id = len == 0 ? LLM_VOCAB_OOV : llm__vocab_find(v, token, len);
    return LLM_OK;
}

llm_status llm_vocab_token(const llm_vocab *v, int32_t id, const char **token, size_t *len) {
    if (!token) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: token is NULL", __func__);
    *token = NULL;
    if (len) *len = 0;
    if (!v) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    if (id < 0 || id >= v->size)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: id %d is outside [0, %d)", __func__,
                          (int)id, (int)v->size);
    *token = v->arena + v->off[id];
    if (len) *len = v->len[id];
    return LLM_OK;
}

llm_status llm_vocab_tokenizer_options(const llm_vocab *v, llm_tokenizer_options *opts) {
    if (!opts) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", __func__);
    if (!v) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    if (opts->size < sizeof(size_t))
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: opts->size is %zu; call llm_tokenizer_options_init first", __func__,
                          opts->size);
    size_t n = opts->size < sizeof v->tok ? opts->size : sizeof v->tok;
    memcpy((char *)opts + sizeof(size_t), (const char *)&v->tok + sizeof(size_t),
           n - sizeof(size_t));
    return LLM_OK;
}

/* ------------------------------------------------------- serialisation */

/* Appends to a buffer of len bytes at *at, counting what does not fit. */
typedef struct sink {
    char *buf;
    size_t len;
    size_t at;
} sink;

static void sink_put(sink *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++, s->at++)
        if (s->buf && s->at < s->len) s->buf[s->at] = p[i];
}

llm_status llm_vocab_serialize(const llm_vocab *v, char *buf, size_t len, size_t *needed) {
    if (!needed) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: needed is NULL", __func__);
    *needed = 0;
    if (!v) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    if (!buf && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buf is NULL but len is %zu", __func__,
                          len);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "llm-vocab %d\ntokenizer lowercase=%d keep_high_bytes=%d fold_numbers=%d "
                      "fold_urls=%d fold_emails=%d max_token_length=%d\nsize %d\n",
                      VOCAB_FORMAT_VERSION, v->tok.lowercase, v->tok.keep_high_bytes,
                      v->tok.fold_numbers, v->tok.fold_urls, v->tok.fold_emails,
                      v->tok.max_token_length, (int)v->size);
    /* first pass counts, second writes; the vocabulary is small */
    for (int pass = 0; pass < 2; pass++) {
        sink s = {pass ? buf : NULL, len, 0};
        sink_put(&s, head, (size_t)hn);
        for (int32_t id = 2; id < v->size; id++) {
            const unsigned char *t = (const unsigned char *)v->arena + v->off[id];
            for (size_t i = 0; i < v->len[id]; i++) {
                if (t[i] >= 0x80 || t[i] < 0x20 || t[i] == '\\' || t[i] == 0x7f) {
                    char esc[5];
                    snprintf(esc, sizeof esc, "\\x%02x", t[i]);
                    sink_put(&s, esc, 4);
                } else {
                    sink_put(&s, (const char *)t + i, 1);
                }
            }
            sink_put(&s, "\n", 1);
        }
        if (pass == 0) {
            *needed = s.at;
            if (!buf) return LLM_OK;
            if (len < s.at)
                return llm__error(LLM_ERR_INVALID_ARGUMENT,
                                  "%s: buffer of %zu bytes is too small; %zu are needed", __func__,
                                  len, s.at);
        }
    }
    return LLM_OK;
}

/* A line of data at *pos (without its '\n'); 0 at the end of data. */
static int read_line(const char *d, size_t n, size_t *pos, const char **line, size_t *len) {
    if (*pos >= n) return 0;
    const char *nl = memchr(d + *pos, '\n', n - *pos);
    if (!nl) return 0; /* every line, the last included, ends in '\n' */
    *line = d + *pos;
    *len = (size_t)(nl - (d + *pos));
    *pos += *len + 1;
    return 1;
}

static int parse_int(const char *s, size_t n, long long lo, long long hi, long long *out) {
    if (n == 0 || n > 18) return 0;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static llm_status parse_tokenizer_line(const char *l, size_t n, llm_tokenizer_options *o,
                                       const char *fn) {
    static const char prefix[] = "tokenizer";
    if (n < sizeof prefix - 1 || memcmp(l, prefix, sizeof prefix - 1) != 0)
        return llm__error(LLM_ERR_FORMAT, "%s: line 2 must start with \"tokenizer\"", fn);
    size_t i = sizeof prefix - 1;
    while (i < n) {
        if (l[i] == ' ') {
            i++;
            continue;
        }
        size_t ks = i;
        while (i < n && l[i] != '=' && l[i] != ' ') i++;
        if (i >= n || l[i] != '=')
            return llm__error(LLM_ERR_FORMAT, "%s: malformed tokenizer option", fn);
        size_t kl = i - ks;
        size_t vs = ++i;
        while (i < n && l[i] != ' ') i++;
        long long val;
        int *field = NULL;
        long long hi = 1, lo = 0;
#define KEY(name) (kl == sizeof #name - 1 && memcmp(l + ks, #name, kl) == 0)
        if (KEY(lowercase)) field = &o->lowercase;
        else if (KEY(keep_high_bytes)) field = &o->keep_high_bytes;
        else if (KEY(fold_numbers)) field = &o->fold_numbers;
        else if (KEY(fold_urls)) field = &o->fold_urls;
        else if (KEY(fold_emails)) field = &o->fold_emails;
        else if (KEY(max_token_length)) {
            field = &o->max_token_length;
            lo = 1;
            hi = LLM_TOKEN_MAX_LENGTH;
        }
#undef KEY
        if (!field)
            return llm__error(LLM_ERR_FORMAT, "%s: unknown tokenizer option '%.*s'", fn, (int)kl,
                              l + ks);
        if (!parse_int(l + vs, i - vs, lo, hi, &val))
            return llm__error(LLM_ERR_FORMAT, "%s: bad value for tokenizer option '%.*s'", fn,
                              (int)kl, l + ks);
        *field = (int)val;
    }
    return LLM_OK;
}

llm_status llm_vocab_deserialize(llm_vocab **out, const char *data, size_t len) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!data) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: data is NULL", __func__);
    const char *l;
    size_t ln, pos = 0;
    long long v;
    static const char magic[] = "llm-vocab ";
    if (!read_line(data, len, &pos, &l, &ln) || ln < sizeof magic - 1 ||
        memcmp(l, magic, sizeof magic - 1) != 0)
        return llm__error(LLM_ERR_FORMAT, "%s: not a serialised vocabulary (no \"llm-vocab\" line)",
                          __func__);
    if (!parse_int(l + sizeof magic - 1, ln - (sizeof magic - 1), 0, INT32_MAX, &v) ||
        v != VOCAB_FORMAT_VERSION)
        return llm__error(LLM_ERR_FORMAT, "%s: unsupported vocabulary format version '%.*s' (this "
                          "build reads %d)", __func__, (int)(ln - (sizeof magic - 1)),
                          l + sizeof magic - 1, VOCAB_FORMAT_VERSION);
    llm_tokenizer_options tok;
    llm_tokenizer_options_init(&tok);
    if (!read_line(data, len, &pos, &l, &ln))
        return llm__error(LLM_ERR_FORMAT, "%s: the tokenizer line is missing", __func__);
    LLM__CHECK(parse_tokenizer_line(l, ln, &tok, __func__));
    if (!read_line(data, len, &pos, &l, &ln) || ln < 5 || memcmp(l, "size ", 5) != 0 ||
        !parse_int(l + 5, ln - 5, 2, INT32_MAX, &v))
        return llm__error(LLM_ERR_FORMAT, "%s: the \"size N\" line (N >= 2) is missing or malformed",
                          __func__);
    size_t count = (size_t)v - 2;
    /* every token takes at least two bytes ("x\n"), which bounds a lying size */
    if (count > (len - pos) / 2)
        return llm__error(LLM_ERR_FORMAT, "%s: size %lld does not fit in %zu bytes", __func__, v, len);
    tok_ref *refs = llm__malloc((count ? count : 1) * sizeof *refs);
    llm__buf bytes = {0};
    if (!refs) return llm__oom(__func__);
    size_t *offs = llm__malloc((count ? count : 1) * sizeof *offs);
    if (!offs) {
        llm__free(refs);
        return llm__oom(__func__);
    }
    llm_status s = LLM_OK;
    for (size_t i = 0; i < count && s == LLM_OK; i++) {
        if (!read_line(data, len, &pos, &l, &ln) || ln == 0) {
            s = llm__error(LLM_ERR_FORMAT, "%s: token %zu is missing or empty", __func__, i + 2);
            break;
        }
        offs[i] = bytes.len;
        size_t start = bytes.len;
        for (size_t k = 0; k < ln && s == LLM_OK; k++) {
            unsigned char c = (unsigned char)l[k];
            if (c == '\\') {
                int hi = k + 3 < ln ? llm__hexval((unsigned char)l[k + 2]) : -1;
                int lo = k + 3 < ln ? llm__hexval((unsigned char)l[k + 3]) : -1;
                if (l[k + 1 < ln ? k + 1 : k] != 'x' || hi < 0 || lo < 0) {
                    s = llm__error(LLM_ERR_FORMAT, "%s: bad escape in token %zu", __func__, i + 2);
                    break;
                }
                char byte = (char)(hi * 16 + lo);
                if (!llm__buf_putc(&bytes, byte)) s = llm__oom(__func__);
                k += 3;
            } else if (c < 0x20 || c >= 0x7f) {
                s = llm__error(LLM_ERR_FORMAT, "%s: byte 0x%02x in token %zu must be escaped",
                               __func__, c, i + 2);
            } else if (!llm__buf_putc(&bytes, (char)c)) {
                s = llm__oom(__func__);
            }
        }
        refs[i].len = bytes.len - start;
        refs[i].count = 0;
    }
    if (s == LLM_OK && pos != len)
        s = llm__error(LLM_ERR_FORMAT, "%s: %zu unexpected bytes after the last token", __func__,
                       len - pos);
    if (s == LLM_OK) {
        for (size_t i = 0; i < count; i++) refs[i].p = bytes.data + offs[i];
        s = vocab_make(out, &tok, refs, count, __func__);
    }
    llm__free(offs);
    llm__free(refs);
    llm__buf_free(&bytes);
    return s;
}
