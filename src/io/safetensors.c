/* safetensors: an atomic writer and a reader that treats every file as
 * hostile. See safetensors.h for the format and the contracts.
 *
 * The reader checks the header in two passes. A byte scan first rejects what
 * cJSON would accept but the format forbids or what could hurt cJSON: bytes
 * that are not UTF-8, NUL and control bytes, nesting deeper than
 * LLM__ST_MAX_DEPTH (cJSON recurses up to 1000 levels), more than
 * LLM__ST_MAX_TOKENS keys and values (cJSON spends ~100 bytes on each, so a
 * 100 MB header of "[0,0,0,..." would cost gigabytes), numbers that are not
 * plain non-negative integers (every number in a valid header is a shape
 * entry or an offset) and "\u0000" escapes (which would cut a C string
 * short). cJSON then builds the tree, and the tree is checked field by field. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "core/internal.h"
#include "io/safetensors.h"
#include "io/atomic_file.h"

/* Data is stored and read as the host's bytes; the format is little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#  error "safetensors.c assumes a little-endian host"
#endif

#define META_KEY "__metadata__"

/* The dtypes libllm reads and writes: the format's name and the element
 * size. A new dtype is one more line here (and in llm_dtype). The
 * import-only ones are read by llm__safetensors_open_any alone (other
 * libraries' checkpoints, converted by the importer: src/nn/gpt2_hf.c). */
static const struct dtype_info {
    const char *name;
    llm_dtype dtype;
    unsigned bytes;
    int import_only;
} dtypes[] = {
    { "F32", LLM_DTYPE_F32, 4, 0 },
    { "I32", LLM_DTYPE_I32, 4, 0 },
    { "F16", LLM__ST_F16, 2, 1 },
    { "BF16", LLM__ST_BF16, 2, 1 },
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

struct llm__safetensors {
    llm__st_tensor *tensors;
    int n;
    llm__st_meta *meta;
    int n_meta;
    struct keyidx *by_name; /* tensor names sorted, for find */
    struct keyidx *by_key;  /* metadata keys sorted */
    uint64_t *begin;        /* each tensor's offset in the data section */
    int fd;                 /* the file while tensors are read on demand, else -1 */
    uint64_t data_pos;      /* where the data section starts in it */
    char label[224];        /* the path, shortened, for messages */
    int any_dtype;          /* opened with llm__safetensors_open_any */
};

typedef struct keyidx {
    const char *key;
    int idx;
} keyidx;

static int keyidx_cmp(const void *a, const void *b) {
    return strcmp(((const keyidx *)a)->key, ((const keyidx *)b)->key);
}

/* Sorts v and returns the index of the first of two equal keys, or -1. */
static long keyidx_sort_dup(keyidx *v, size_t n) {
    if (n < 2) return -1;
    qsort(v, n, sizeof *v, keyidx_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1].key, v[i].key) == 0) return (long)i;
    return -1;
}

static const keyidx *keyidx_find(const keyidx *v, int n, const char *key) {
    keyidx k = { key, 0 };
    return n > 0 ? bsearch(&k, v, (size_t)n, sizeof *v, keyidx_cmp) : NULL;
}

static const struct dtype_info *dtype_of(llm_dtype d) {
    for (size_t k = 0; k < N_DTYPES; k++)
        if (dtypes[k].dtype == d && !dtypes[k].import_only) return &dtypes[k];
    return NULL;
}

/* A printable, shortened copy of untrusted text for error messages. */
#define SHOW_MAX 48
static const char *show(const char *s, char out[SHOW_MAX * 4 + 4]) {
    size_t o = 0, i = 0;
    for (; s[i] && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    if (s[i]) { memcpy(out + o, "...", 3); o += 3; }
    out[o] = '\0';
    return out;
}

/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF); else 0 with the offending byte's offset in *bad. */
static int utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            *bad = i;
            return 0;
        }
        if (n - i < len) { *bad = i; return 0; }
        if (s[i + 1] < lo || s[i + 1] > hi) { *bad = i; return 0; }
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) { *bad = i; return 0; }
        i += len;
    }
    return 1;
}

static int utf8_str(const char *s) {
    size_t bad;
    return utf8_valid((const unsigned char *)s, strlen(s), &bad);
}

/* ================================================================ writer */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (n > SIZE_MAX / 2 - b->len) { b->failed = 1; return; }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = llm__realloc(b->p, cap);
        if (!p) { b->failed = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char t[24];
    int k = snprintf(t, sizeof t, "%" PRIu64, v);
    sb_put(b, t, (size_t)k);
}

/* A JSON string literal as serde_json writes it: quote, backslash and
 * control bytes escaped, UTF-8 passed through. */
static void sb_json(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) { snprintf(u, sizeof u, "\\u%04x", c); esc = u; }
        }
        if (esc) {
            sb_put(b, run, (size_t)(s - run));
            sb_str(b, esc);
            run = s + 1;
        }
    }
    sb_put(b, run, (size_t)(s - run));
    sb_put(b, "\"", 1);
}

static llm_status check_write_args(const char *fn, const llm__st_tensor *t, int n,
                                   const llm__st_meta *meta, int n_meta) {
    char sh[SHOW_MAX * 4 + 4];
    if (n < 0 || n_meta < 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: negative count (n = %d, n_meta = %d)", fn,
                          n, n_meta);
    if (n > 0 && !t) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensors is NULL", fn);
    if (n_meta > 0 && !meta) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: meta is NULL", fn);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const llm__st_tensor *x = &t[i];
        if (!x->name) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor %d has no name", fn, i);
        size_t len = strlen(x->name);
        if (len == 0 || len >= LLM__ST_MAX_NAME || !utf8_str(x->name) ||
            strcmp(x->name, META_KEY) == 0)
            return llm__error(LLM_ERR_INVALID_ARGUMENT,
                              "%s: tensor %d name '%s' must be 1 to %d bytes of UTF-8 and not '"
                              META_KEY "'", fn, i, show(x->name, sh), LLM__ST_MAX_NAME - 1);
        const struct dtype_info *di = dtype_of(x->dtype);
        if (!di)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': unknown dtype %d", fn,
                              show(x->name, sh), (int)x->dtype);
        if (x->ndim < 0 || x->ndim > LLM_MAX_DIMS)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': ndim %d not in 0..%d", fn,
                              show(x->name, sh), x->ndim, LLM_MAX_DIMS);
        uint64_t numel = 1;
        int overflow = 0;
        for (int d = 0; d < x->ndim; d++) {
            int64_t v = x->shape[d];
            if (v < 0 || (double)v > LLM__ST_MAX_INT)
                return llm__error(LLM_ERR_INVALID_ARGUMENT,
                                  "%s: tensor '%s': shape[%d] = %" PRId64 " out of range", fn,
                                  show(x->name, sh), d, v);
            if (v != 0 && numel > UINT64_MAX / (uint64_t)v) overflow = 1;
            else numel *= (uint64_t)v;
        }
        for (int d = 0; d < x->ndim; d++) if (x->shape[d] == 0) { overflow = 0; numel = 0; }
        if (numel > UINT64_MAX / di->bytes) overflow = 1;
        if (overflow || numel * di->bytes != (uint64_t)x->bytes)
            return llm__error(LLM_ERR_INVALID_ARGUMENT,
                              "%s: tensor '%s': %zu bytes given, the shape needs %s%" PRIu64, fn,
                              show(x->name, sh), x->bytes, overflow ? "more than " : "",
                              overflow ? UINT64_MAX : numel * di->bytes);
        if (x->bytes > 0 && !x->data)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': data is NULL", fn,
                              show(x->name, sh));
        off += x->bytes; /* each is < 2^63 after the check above; n < 2^31 */
        if ((double)off > LLM__ST_MAX_INT)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensors total more than 2^53 bytes", fn);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: metadata entry %d has a NULL %s", fn,
                              i, meta[i].key ? "value" : "key");
        if (!utf8_str(meta[i].key) || !utf8_str(meta[i].value))
            return llm__error(LLM_ERR_INVALID_ARGUMENT,
                              "%s: metadata entry %d ('%s') is not valid UTF-8", fn, i,
                              show(meta[i].key, sh));
    }
    return LLM_OK;
}

/* Rejects repeated tensor names and metadata keys. */
static llm_status check_unique(const char *fn, const llm__st_tensor *t, int n,
                               const llm__st_meta *meta, int n_meta) {
    char sh[SHOW_MAX * 4 + 4];
    int most = n > n_meta ? n : n_meta;
    keyidx *v = llm__malloc((size_t)(most > 0 ? most : 1) * sizeof *v);
    if (!v) return llm__oom(fn);
    for (int i = 0; i < n; i++) v[i] = (keyidx){ t[i].name, i };
    long d = keyidx_sort_dup(v, (size_t)n);
    if (d >= 0) {
        llm_status s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: tensor name '%s' is used twice",
                                  fn, show(v[d].key, sh));
        llm__free(v);
        return s;
    }
    for (int i = 0; i < n_meta; i++) v[i] = (keyidx){ meta[i].key, i };
    d = keyidx_sort_dup(v, (size_t)n_meta);
    if (d >= 0) {
        llm_status s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: metadata key '%s' is used twice",
                                  fn, show(v[d].key, sh));
        llm__free(v);
        return s;
    }
    llm__free(v);
    return LLM_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes so that the
 * data starts 8-byte aligned (8 + N is then a multiple of 8). */
static llm_status build_header(const char *fn, const llm__st_tensor *t, int n,
                               const llm__st_meta *meta, int n_meta, sbuf *b) {
    /* JSON keys and values as the reader counts them (see prescan) */
    size_t tokens = 1 + (n_meta > 0 ? 2 + 2 * (size_t)n_meta : 0);
    for (int i = 0; i < n; i++) tokens += 10 + (size_t)t[i].ndim;
    if (tokens > LLM__ST_MAX_TOKENS)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: %d tensors and %d metadata entries need %zu JSON keys and values, "
                          "more than the %d the reader accepts", fn, n, n_meta, tokens,
                          LLM__ST_MAX_TOKENS);
    sb_put(b, "{", 1);
    if (n_meta > 0) {
        sb_str(b, "\"" META_KEY "\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_put(b, ",", 1);
            sb_json(b, meta[i].key);
            sb_put(b, ":", 1);
            sb_json(b, meta[i].value);
        }
        sb_put(b, "}", 1);
        if (n > 0) sb_put(b, ",", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i) sb_put(b, ",", 1);
        sb_json(b, t[i].name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, dtype_of(t[i].dtype)->name);
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            if (d) sb_put(b, ",", 1);
            sb_u64(b, (uint64_t)t[i].shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, off);
        sb_put(b, ",", 1);
        off += t[i].bytes;
        sb_u64(b, off);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (!b->failed && b->len % 8 != 0) sb_put(b, " ", 1);
    if (b->failed) return llm__oom(fn);
    if (b->len > LLM__ST_MAX_HEADER)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: the header would be %zu bytes, more than the %u readers accept", fn,
                          b->len, LLM__ST_MAX_HEADER);
    return LLM_OK;
}

static const char *errstr(int err, char *buf, size_t len) {
    /* GNU strerror_r (we build with _GNU_SOURCE): thread-safe, returns the text. */
    return strerror_r(err, buf, len);
}

static llm_status io_error(const char *path, const char *what, int err) {
    char eb[128];
    return llm__error(LLM_ERR_IO, "%.200s: %s: %s", path, what, errstr(err, eb, sizeof eb));
}

/* The file's bytes, written by llm__write_atomic's fill: the 8-byte header
 * size, the header, the tensors. */
typedef struct file_contents {
    const sbuf *hdr;
    const llm__st_tensor *t;
    int n;
} file_contents;

static int write_contents(int fd, void *user) {
    const file_contents *c = user;
    unsigned char size8[8];
    uint64_t hn = c->hdr->len;
    for (int k = 0; k < 8; k++) size8[k] = (unsigned char)(hn >> (8 * k));
    int err = llm__write_all(fd, size8, sizeof size8);
    if (!err) err = llm__write_all(fd, c->hdr->p, c->hdr->len);
    for (int i = 0; i < c->n && !err; i++)
        if (c->t[i].bytes) err = llm__write_all(fd, c->t[i].data, c->t[i].bytes);
    return err;
}

llm_status llm__safetensors_write(const char *path, const llm__st_tensor *tensors, int n,
                                  const llm__st_meta *meta, int n_meta) {
    if (!path || !path[0])
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "cannot write a safetensors file: the path is %s",
                          path ? "empty" : "NULL");
    /* messages name the file, as the reader's do */
    char fn[224];
    snprintf(fn, sizeof fn, "%.200s%s", path, strlen(path) > 200 ? "..." : "");
    LLM__CHECK(check_write_args(fn, tensors, n, meta, n_meta));
    LLM__CHECK(check_unique(fn, tensors, n, meta, n_meta));
    sbuf hdr = { 0 };
    llm_status s = build_header(fn, tensors, n, meta, n_meta, &hdr);
    if (s != LLM_OK) {
        llm__free(hdr.p);
        return s;
    }

    file_contents c = { &hdr, tensors, n };
    s = llm__write_atomic(path, write_contents, &c);
    llm__free(hdr.p);
    return s;
}

/* ================================================================ reader */

static llm_status bad(const char *label, const char *fmt, ...) LLM__PRINTF(2, 3);
static llm_status bad(const char *label, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return llm__error(LLM_ERR_FORMAT, "%s: %s", label, msg);
}

/* The byte scan described at the top of this file. */
static llm_status prescan(const char *label, const unsigned char *h, size_t n) {
    size_t at;
    if (!utf8_valid(h, n, &at)) return bad(label, "header is not valid UTF-8 (byte %zu)", at);
    int depth = 0;
    size_t i = 0, tokens = 0;
    while (i < n) {
        unsigned char c = h[i];
        if ((c == '"' || c == '{' || c == '[' || c == '-' || (c >= '0' && c <= '9') ||
             (c >= 'a' && c <= 'z')) && ++tokens > LLM__ST_MAX_TOKENS)
            return bad(label, "header: more than %d JSON keys and values (byte %zu)",
                       LLM__ST_MAX_TOKENS, i);
        if (c == '"') {
            size_t start = i++;
            for (;;) {
                if (i >= n) return bad(label, "header: string at byte %zu is not closed", start);
                c = h[i];
                if (c == '"') { i++; break; }
                if (c < 0x20)
                    return bad(label, "header: control byte 0x%02x in a string (byte %zu)", c, i);
                if (c == '\\') {
                    if (i + 1 >= n) return bad(label, "header: string at byte %zu is not closed", start);
                    if (h[i + 1] == 'u' && n - i >= 6 && memcmp(h + i + 2, "0000", 4) == 0)
                        return bad(label, "header: NUL character (\\u0000) in a string (byte %zu)", i);
                    i += 2;
                    continue;
                }
                i++;
            }
        } else if (c == '{' || c == '[') {
            if (++depth > LLM__ST_MAX_DEPTH)
                return bad(label, "header: JSON nested deeper than %d levels (byte %zu)",
                           LLM__ST_MAX_DEPTH, i);
            i++;
        } else if (c == '}' || c == ']') {
            depth--;
            i++;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':' || c == ',') {
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t s = i;
            int digits_only = 1;
            while (i < n && ((h[i] >= '0' && h[i] <= '9') || h[i] == '-' || h[i] == '+' ||
                             h[i] == '.' || h[i] == 'e' || h[i] == 'E')) {
                if (h[i] < '0' || h[i] > '9') digits_only = 0;
                i++;
            }
            size_t len = i - s;
            /* 16 digits reach past 2^53; the tree check refuses those exactly */
            if (!digits_only || len > 16 || (len > 1 && h[s] == '0'))
                return bad(label,
                           "header: number '%.*s' at byte %zu is not a non-negative integer "
                           "below 2^53", (int)(len > 32 ? 32 : len), (const char *)h + s, s);
        } else if (c >= 'a' && c <= 'z') {
            while (i < n && h[i] >= 'a' && h[i] <= 'z') i++; /* cJSON checks the word */
        } else {
            return bad(label, "header: unexpected byte 0x%02x at byte %zu", c, i);
        }
    }
    return LLM_OK;
}

/* A JSON number that is an integer in [0, 2^53). */
static int get_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0.0 && v <= LLM__ST_MAX_INT)) return 0;
    uint64_t u = (uint64_t)v;
    if ((double)u != v) return 0;
    *out = u;
    return 1;
}

/* The format's other dtypes, for a clearer message, with their bytes per
 * element: llm__safetensors_open_any reads those of whole bytes as
 * LLM__ST_OTHER (never interpreted); 0 marks the sub-byte ones. */
static const struct { const char *name; unsigned bytes; } other_dtypes[] = {
    { "BOOL", 1 }, { "U8", 1 }, { "I8", 1 }, { "U16", 2 }, { "I16", 2 }, { "U32", 4 }, { "F64", 8 },
    { "U64", 8 }, { "I64", 8 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 }, { "F8_E8M0", 1 }, { "F4", 0 },
    { "F6_E2M3", 0 }, { "F6_E3M2", 0 }, { "C64", 8 },
};

static int cmp_range(const void *a, const void *b, const uint64_t *beg, const uint64_t *end) {
    int x = *(const int *)a, y = *(const int *)b;
    if (beg[x] != beg[y]) return beg[x] < beg[y] ? -1 : 1;
    if (end[x] != end[y]) return end[x] < end[y] ? -1 : 1;
    return 0;
}
typedef struct range_ctx { const uint64_t *beg, *end; } range_ctx;
static int cmp_range_r(const void *a, const void *b, void *ctx) {
    const range_ctx *c = ctx;
    return cmp_range(a, b, c->beg, c->end);
}

/* The dtype named by a header string, or an error; any_dtype also takes the
 * import-only ones and, as LLM__ST_OTHER, the other whole-byte ones. */
static llm_status read_dtype(const char *label, const char *name, const cJSON *dt, int any_dtype,
                             struct dtype_info *out) {
    char sh[SHOW_MAX * 4 + 4];
    if (!cJSON_IsString(dt)) return bad(label, "tensor '%s': dtype is not a string", name);
    for (size_t k = 0; k < N_DTYPES; k++)
        if (strcmp(dt->valuestring, dtypes[k].name) == 0 && (any_dtype || !dtypes[k].import_only)) {
            *out = dtypes[k];
            return LLM_OK;
        }
    for (size_t k = 0; k < sizeof other_dtypes / sizeof other_dtypes[0]; k++)
        if (strcmp(dt->valuestring, other_dtypes[k].name) == 0 && any_dtype && other_dtypes[k].bytes) {
            *out = (struct dtype_info){ other_dtypes[k].name, LLM__ST_OTHER, other_dtypes[k].bytes, 1 };
            return LLM_OK;
        }
    for (size_t k = 0; k < N_DTYPES; k++)
        if (strcmp(dt->valuestring, dtypes[k].name) == 0) goto unsupported;
    for (size_t k = 0; k < sizeof other_dtypes / sizeof other_dtypes[0]; k++)
        if (strcmp(dt->valuestring, other_dtypes[k].name) == 0) goto unsupported;
    return bad(label, "tensor '%s': unknown dtype '%s'", name, show(dt->valuestring, sh));
unsupported:
    return bad(label, "tensor '%s': unsupported dtype '%s' (libllm reads F32 and I32)", name,
               dt->valuestring);
}

/* Checks one tensor entry and fills t (name not yet set) and its range. */
static llm_status read_entry(const char *label, const cJSON *e, uint64_t data_len, int any_dtype,
                             llm__st_tensor *t, uint64_t *beg, uint64_t *end) {
    char sh[SHOW_MAX * 4 + 4], sh2[SHOW_MAX * 4 + 4];
    const char *name = show(e->string, sh);
    if (!cJSON_IsObject(e)) return bad(label, "tensor '%s': entry is not an object", name);
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = NULL;
        if (strcmp(f->string, "dtype") == 0) slot = &dt;
        else if (strcmp(f->string, "shape") == 0) slot = &shape;
        else if (strcmp(f->string, "data_offsets") == 0) slot = &offs;
        else return bad(label, "tensor '%s': unknown field '%s'", name, show(f->string, sh2));
        if (*slot) return bad(label, "tensor '%s': field '%s' appears twice", name, f->string);
        *slot = f;
    }
    if (!dt || !shape || !offs)
        return bad(label, "tensor '%s': missing field '%s'", name,
                   !dt ? "dtype" : !shape ? "shape" : "data_offsets");

    struct dtype_info info = { 0 };
    LLM__CHECK(read_dtype(label, name, dt, any_dtype, &info));
    const struct dtype_info *di = &info;
    t->dtype = di->dtype;

    if (!cJSON_IsArray(shape)) return bad(label, "tensor '%s': shape is not an array", name);
    int nd = 0;
    uint64_t numel = 1;
    int overflow = 0;
    for (const cJSON *d = shape->child; d; d = d->next, nd++) {
        uint64_t v;
        if (nd >= LLM_MAX_DIMS)
            return bad(label, "tensor '%s': shape has more than %d dimensions", name, LLM_MAX_DIMS);
        if (!get_uint(d, &v))
            return bad(label, "tensor '%s': shape[%d] is not a non-negative integer below 2^53",
                       name, nd);
        t->shape[nd] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / v) overflow = 1;
        else numel *= v;
    }
    t->ndim = nd;
    /* a zero dimension anywhere makes the tensor empty, whatever the others */
    for (int d = 0; d < nd; d++) if (t->shape[d] == 0) { overflow = 0; numel = 0; }
    if (overflow || numel > UINT64_MAX / di->bytes || numel * di->bytes > SIZE_MAX)
        return bad(label, "tensor '%s': shape is too large", name);
    uint64_t nbytes = numel * di->bytes;

    if (!cJSON_IsArray(offs) || !offs->child || !offs->child->next || offs->child->next->next)
        return bad(label, "tensor '%s': data_offsets is not an array of two integers", name);
    uint64_t b, en;
    if (!get_uint(offs->child, &b) || !get_uint(offs->child->next, &en))
        return bad(label, "tensor '%s': data_offsets are not non-negative integers below 2^53",
                   name);
    if (b > en) return bad(label, "tensor '%s': data_offsets begin %" PRIu64 " > end %" PRIu64,
                           name, b, en);
    if (en > data_len)
        return bad(label, "tensor '%s': data_offsets end %" PRIu64
                   " is beyond the data section (%" PRIu64 " bytes)", name, en, data_len);
    if (en - b != nbytes)
        return bad(label, "tensor '%s': data_offsets span %" PRIu64 " bytes, its shape and dtype "
                   "need %" PRIu64, name, en - b, nbytes);
    t->bytes = (size_t)nbytes;
    *beg = b;
    *end = en;
    return LLM_OK;
}

static llm_status read_meta(const char *label, const cJSON *m, llm__safetensors *f) {
    char sh[SHOW_MAX * 4 + 4];
    if (!cJSON_IsObject(m)) return bad(label, "__metadata__ is not an object");
    size_t n = 0;
    for (const cJSON *c = m->child; c; c = c->next) n++;
    if (n > INT_MAX) return bad(label, "__metadata__ has too many entries");
    f->meta = llm__calloc(n + 1, sizeof *f->meta); /* + 1: see llm__safetensors_close */
    f->by_key = llm__calloc(n ? n : 1, sizeof *f->by_key);
    if (!f->meta || !f->by_key) return llm__oom("safetensors");
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return bad(label, "__metadata__ value of '%s' is not a string", show(c->string, sh));
        llm__st_meta *e = &f->meta[f->n_meta];
        e->key = llm__strdup(c->string);
        e->value = e->key ? llm__strdup(c->valuestring) : NULL;
        if (!e->value) return llm__oom("safetensors"); /* key, if any, freed with f */
        f->by_key[f->n_meta] = (keyidx){ e->key, f->n_meta };
        f->n_meta++;
    }
    long d = keyidx_sort_dup(f->by_key, (size_t)f->n_meta);
    if (d >= 0) return bad(label, "__metadata__ key '%s' appears twice", show(f->by_key[d].key, sh));
    return LLM_OK;
}

static int read_at(int fd, void *dst, size_t n, uint64_t pos) {
    char *c = dst;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = pread(fd, c, chunk, (off_t)pos);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return -1; /* the file ended early */
        c += r;
        n -= (size_t)r;
        pos += (uint64_t)r;
    }
    return 0;
}

/* The byte ranges, sorted, must tile the data section exactly: no two share
 * a byte, and (as the format requires, against polyglot files) there is no
 * gap between them and nothing after the last one. */
static llm_status check_tiling(const char *label, const llm__safetensors *f, const uint64_t *beg,
                               const uint64_t *end, int *order, uint64_t data_len) {
    char sh[SHOW_MAX * 4 + 4], sh2[SHOW_MAX * 4 + 4];
    range_ctx rc = { beg, end };
    qsort_r(order, (size_t)f->n, sizeof *order, cmp_range_r, &rc);
    uint64_t filled = 0;
    for (int k = 0; k < f->n; k++) {
        int b = order[k];
        if (k > 0 && beg[b] < filled)
            return bad(label, "tensors '%s' and '%s' overlap in the data section",
                       show(f->tensors[order[k - 1]].name, sh), show(f->tensors[b].name, sh2));
        if (beg[b] > filled)
            return bad(label, "the data section has %" PRIu64 " unused bytes before tensor '%s' "
                       "(the format requires the tensors to fill it exactly)", beg[b] - filled,
                       show(f->tensors[b].name, sh));
        if (end[b] > filled) filled = end[b];
    }
    if (filled != data_len)
        return bad(label, "the data section has %" PRIu64 " bytes after the last tensor "
                   "(the format requires the tensors to fill it exactly)", data_len - filled);
    return LLM_OK;
}

/* Validates the tree and fills f (everything but the data). */
static llm_status read_tree(const char *label, const cJSON *root, uint64_t data_len,
                            llm__safetensors *f) {
    char sh[SHOW_MAX * 4 + 4];
    if (!cJSON_IsObject(root)) return bad(label, "header is not a JSON object");
    size_t nkeys = 0;
    for (const cJSON *c = root->child; c; c = c->next) nkeys++;
    if (nkeys > INT_MAX) return bad(label, "header has too many entries");

    /* every top-level key once, "__metadata__" included */
    keyidx *keys = llm__malloc((nkeys ? nkeys : 1) * sizeof *keys);
    if (!keys) return llm__oom("safetensors");
    const cJSON *meta = NULL;
    int n = 0;
    {
        size_t k = 0;
        for (const cJSON *c = root->child; c; c = c->next) {
            keys[k++] = (keyidx){ c->string, 0 };
            if (strcmp(c->string, META_KEY) == 0) meta = c;
            else n++;
        }
    }
    long d = keyidx_sort_dup(keys, nkeys);
    if (d >= 0) {
        llm_status s = bad(label, "header key '%s' appears twice", show(keys[d].key, sh));
        llm__free(keys);
        return s;
    }
    llm__free(keys);

    f->tensors = llm__calloc((size_t)(n ? n : 1), sizeof *f->tensors);
    f->by_name = llm__calloc((size_t)(n ? n : 1), sizeof *f->by_name);
    f->begin = llm__calloc((size_t)(n ? n : 1), sizeof *f->begin);
    uint64_t *end = llm__calloc((size_t)(n ? n : 1), sizeof *end);
    int *order = llm__calloc((size_t)(n ? n : 1), sizeof *order);
    llm_status s = LLM_OK;
    if (!f->tensors || !f->by_name || !f->begin || !end || !order) {
        s = llm__oom("safetensors");
        goto done;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        size_t len = strlen(c->string);
        if (len == 0) { s = bad(label, "a tensor has an empty name"); goto done; }
        if (len >= LLM__ST_MAX_NAME) {
            s = bad(label, "tensor name '%s' is %zu bytes, the limit is %d", show(c->string, sh), len,
                    LLM__ST_MAX_NAME - 1);
            goto done;
        }
        llm__st_tensor *t = &f->tensors[f->n];
        s = read_entry(label, c, data_len, f->any_dtype, t, &f->begin[f->n], &end[f->n]);
        if (s != LLM_OK) goto done;
        t->name = llm__strdup(c->string);
        if (!t->name) { s = llm__oom("safetensors"); goto done; }
        f->by_name[f->n] = (keyidx){ t->name, f->n };
        order[f->n] = f->n;
        f->n++;
    }
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, keyidx_cmp);
    s = check_tiling(label, f, f->begin, end, order, data_len);
    if (s != LLM_OK) goto done;
    if (meta) s = read_meta(label, meta, f);
    else {
        f->meta = llm__calloc(1, sizeof *f->meta);
        f->by_key = llm__calloc(1, sizeof *f->by_key);
        if (!f->meta || !f->by_key) s = llm__oom("safetensors");
    }
done:
    llm__free(end);
    llm__free(order);
    return s;
}

/* Parses a header (hdr holds n bytes plus a NUL) into a new handle without
 * any data; label names the source in messages. */
static llm_status parse_header(llm__safetensors **out, const char *label, const char *hdr, size_t n,
                               uint64_t data_len, int any_dtype) {
    LLM__CHECK(prescan(label, (const unsigned char *)hdr, n));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        return bad(label, "header is not valid JSON (near byte %zu)", at);
    }
    llm_status s = LLM_OK;
    for (const char *p = end; p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = bad(label, "header has bytes after the JSON object (byte %zu)", (size_t)(p - hdr));
            break;
        }
    llm__safetensors *f = NULL;
    if (s == LLM_OK) {
        f = llm__calloc(1, sizeof *f);
        if (!f) s = llm__oom("safetensors");
        else {
            f->fd = -1;
            f->any_dtype = any_dtype;
            snprintf(f->label, sizeof f->label, "%s", label);
        }
    }
    if (s == LLM_OK) s = read_tree(label, root, data_len, f);
    cJSON_Delete(root);
    if (s != LLM_OK) {
        llm__safetensors_close(f);
        return s;
    }
    *out = f;
    return LLM_OK;
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
    return v;
}

/* The 8-byte size against the file size; returns the header size. */
static llm_status check_size(const char *label, const unsigned char *b8, uint64_t file_len,
                             size_t *hn) {
    uint64_t v = le64(b8);
    if (v == 0) return bad(label, "header size is 0");
    if (v > LLM__ST_MAX_HEADER)
        return bad(label, "header size %" PRIu64 " exceeds the limit of %u bytes", v,
                   LLM__ST_MAX_HEADER);
    if (v > file_len - 8)
        return bad(label, "header size %" PRIu64 " is larger than the %" PRIu64
                   " bytes after it", v, file_len - 8);
    *hn = (size_t)v;
    return LLM_OK;
}

/* Where an empty tensor's data points: never NULL, never freed. */
static const uint64_t empty_data;

/* A buffer for tensor i (malloc's alignment: at least 8 bytes). */
static llm_status tensor_buffer(llm__safetensors *f, int i, unsigned char **out) {
    llm__st_tensor *t = &f->tensors[i];
    *out = t->bytes ? llm__malloc(t->bytes) : (unsigned char *)&empty_data;
    if (!*out) return llm__oom("safetensors");
    t->data = *out;
    return LLM_OK;
}

llm_status llm__safetensors_parse(llm__safetensors **out, const void *data, size_t len) {
    static const char label[] = "safetensors data";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "safetensors: out is NULL");
    *out = NULL;
    if (!data && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "safetensors: data is NULL");
    const unsigned char *b = data;
    if (len < 8) return bad(label, "%zu bytes is too short for a safetensors file", len);
    size_t hn;
    LLM__CHECK(check_size(label, b, (uint64_t)len, &hn));
    char *hdr = llm__malloc(hn + 1); /* NUL-terminated: cJSON never reads past it */
    if (!hdr) return llm__oom("safetensors");
    memcpy(hdr, b + 8, hn);
    hdr[hn] = '\0';
    llm__safetensors *f = NULL;
    llm_status s = parse_header(&f, label, hdr, hn, (uint64_t)(len - 8 - hn), 0);
    llm__free(hdr);
    /* a memory image is copied now: the caller may free it afterwards */
    for (int i = 0; s == LLM_OK && i < f->n; i++) {
        unsigned char *dst;
        s = tensor_buffer(f, i, &dst);
        if (s == LLM_OK && f->tensors[i].bytes)
            memcpy(dst, b + 8 + hn + f->begin[i], f->tensors[i].bytes);
    }
    if (s != LLM_OK) {
        llm__safetensors_close(f);
        return s;
    }
    *out = f;
    return LLM_OK;
}

/* Opens path for reading without ever blocking on it: a FIFO or a device
 * is refused before it is opened (opening a FIFO waits for a writer), and
 * O_NONBLOCK covers one swapped in between the stat and the open. */
static llm_status open_regular(const char *label, const char *path, int *fd_out, uint64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0) return io_error(label, "cannot open", errno);
    if (!S_ISREG(st.st_mode)) return llm__error(LLM_ERR_IO, "%s: not a regular file", label);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return io_error(label, "cannot open", errno);
    if (fstat(fd, &st) != 0) {
        llm_status s = io_error(label, "cannot stat", errno);
        close(fd);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return llm__error(LLM_ERR_IO, "%s: not a regular file", label);
    }
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return LLM_OK;
}

static llm_status open_lazy(llm__safetensors **out, const char *path, size_t max_file_bytes, int any_dtype) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "safetensors: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "cannot open a safetensors file: the path is %s",
                          path ? "empty" : "NULL");
    char label[224];
    snprintf(label, sizeof label, "%.200s%s", path, strlen(path) > 200 ? "..." : "");
    int fd = -1;
    uint64_t size = 0;
    LLM__CHECK(open_regular(label, path, &fd, &size));
    llm_status s = LLM_OK;
    char *hdr = NULL;
    if (max_file_bytes && size > (uint64_t)max_file_bytes) {
        s = bad(label, "file is %" PRIu64 " bytes, more than the limit of %zu", size,
                max_file_bytes);
        goto done;
    }
    if (size < 8) {
        s = bad(label, "%" PRIu64 " bytes is too short for a safetensors file", size);
        goto done;
    }
    unsigned char b8[8];
    int err = read_at(fd, b8, 8, 0);
    size_t hn = 0;
    if (err == 0) {
        s = check_size(label, b8, size, &hn);
        if (s != LLM_OK) goto done;
        hdr = llm__malloc(hn + 1);
        if (!hdr) {
            s = llm__oom("safetensors");
            goto done;
        }
        err = read_at(fd, hdr, hn, 8);
    }
    if (err < 0) {
        s = bad(label, "the file ended early (changed while being read?)");
        goto done;
    }
    if (err > 0) {
        s = io_error(label, "read failed", err);
        goto done;
    }
    hdr[hn] = '\0';
    s = parse_header(out, label, hdr, hn, size - 8 - hn, any_dtype);
    if (s == LLM_OK) {
        (*out)->fd = fd;
        (*out)->data_pos = 8 + (uint64_t)hn;
        fd = -1;
    }
done:
    llm__free(hdr);
    if (fd >= 0) close(fd);
    return s;
}

llm_status llm__safetensors_load(const llm__safetensors *cf, const llm__st_tensor *t, const void **data) {
    if (!cf || !t || !data)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "safetensors: NULL argument to load");
    *data = NULL;
    /* the handle owns the tensors and their data cache (see the header) */
    llm__safetensors *f = (llm__safetensors *)cf;
    ptrdiff_t i = t - f->tensors;
    if (i < 0 || i >= f->n || t != &f->tensors[i])
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "safetensors: the tensor is not from this file");
    if (!t->data) {
        if (f->fd < 0) return llm__error(LLM_ERR_STATE, "%s: the file is no longer open", f->label);
        unsigned char *dst;
        LLM__CHECK(tensor_buffer(f, (int)i, &dst));
        int err = t->bytes ? read_at(f->fd, dst, t->bytes, f->data_pos + f->begin[i]) : 0;
        if (err != 0) {
            llm__free(dst);
            f->tensors[i].data = NULL;
            if (err < 0) return bad(f->label, "the file ended early (changed while being read?)");
            return io_error(f->label, "read failed", err);
        }
    }
    *data = t->data;
    return LLM_OK;
}

llm_status llm__safetensors_open_lazy(llm__safetensors **out, const char *path, size_t max_file_bytes) {
    return open_lazy(out, path, max_file_bytes, 0);
}

/* open_lazy, then every tensor read. */
static llm_status open_whole(llm__safetensors **out, const char *path, size_t max_file_bytes, int any_dtype) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "safetensors: out is NULL");
    *out = NULL;
    llm__safetensors *f;
    LLM__CHECK(open_lazy(&f, path, max_file_bytes, any_dtype));
    llm_status s = LLM_OK;
    for (int i = 0; s == LLM_OK && i < f->n; i++) {
        const void *data;
        s = llm__safetensors_load(f, &f->tensors[i], &data);
    }
    if (s != LLM_OK) {
        llm__safetensors_close(f);
        return s;
    }
    close(f->fd);
    f->fd = -1;
    *out = f;
    return LLM_OK;
}

llm_status llm__safetensors_open(llm__safetensors **out, const char *path, size_t max_file_bytes) {
    return open_whole(out, path, max_file_bytes, 0);
}

llm_status llm__safetensors_open_any(llm__safetensors **out, const char *path, size_t max_file_bytes) {
    return open_whole(out, path, max_file_bytes, 1);
}

int llm__safetensors_count(const llm__safetensors *f) { return f ? f->n : 0; }

const llm__st_tensor *llm__safetensors_tensor(const llm__safetensors *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const llm__st_tensor *llm__safetensors_find(const llm__safetensors *f, const char *name) {
    if (!f || !name) return NULL;
    const keyidx *k = keyidx_find(f->by_name, f->n, name);
    return k ? &f->tensors[k->idx] : NULL;
}

const char *llm__safetensors_meta(const llm__safetensors *f, const char *key) {
    if (!f || !key) return NULL;
    const keyidx *k = keyidx_find(f->by_key, f->n_meta, key);
    return k ? f->meta[k->idx].value : NULL;
}

int llm__safetensors_meta_count(const llm__safetensors *f) { return f ? f->n_meta : 0; }

const llm__st_meta *llm__safetensors_meta_at(const llm__safetensors *f, int i) {
    return f && i >= 0 && i < f->n_meta ? &f->meta[i] : NULL;
}

void llm__safetensors_close(llm__safetensors *f) {
    if (!f) return;
    if (f->tensors)
        for (int i = 0; i < f->n; i++) {
            llm__free((char *)f->tensors[i].name);
            if (f->tensors[i].bytes) llm__free((void *)f->tensors[i].data);
        }
    if (f->meta)
        for (int i = 0; i <= f->n_meta; i++) {
            /* entry n_meta may hold a key whose value failed to allocate */
            llm__free((char *)f->meta[i].key);
            llm__free((char *)f->meta[i].value);
        }
    if (f->fd >= 0) close(f->fd);
    llm__free(f->tensors);
    llm__free(f->meta);
    llm__free(f->by_name);
    llm__free(f->by_key);
    llm__free(f->begin);
    llm__free(f);
}
