/* Strict JSON for spam_server: what cJSON lets through but RFC 8259 (or
 * common sense for a classifier's input) does not, and error-message text
 * that is always valid UTF-8.
 *
 * cJSON accepts bytes that are not UTF-8 and raw control characters inside
 * strings, turns 1e99999 into infinity, keeps the first of two equal keys
 * and reads "\u12G4" as a short string instead of failing. A request body
 * is therefore scanned first (sj_check: the JSON grammar, UTF-8, escapes,
 * number range, nesting) and the parsed tree checked for repeated keys
 * (sj_duplicate_key). Header-only like common.h: spam_server is one file. */
#ifndef LLM_EXAMPLES_STRICT_JSON_H
#define LLM_EXAMPLES_STRICT_JSON_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#define SJ_UNUSED __attribute__((unused))

/* Deeper nesting is refused: a request needs 2 levels; cJSON itself
 * recurses up to 1000. */
#define SJ_MAX_DEPTH 64

/* The length (1-4) of the UTF-8 character at s[0..n), or 0 when the bytes
 * there are not one (overlong forms, surrogates and code points past
 * U+10FFFF included). */
SJ_UNUSED static size_t sj_utf8_char(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
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
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xbf) return 0;
    return len;
}

/* Copies at most max bytes of untrusted in[0..len) into out (cap >= max + 4)
 * so that the result is valid UTF-8 with no control characters: a byte that
 * is not part of a valid character, or a control byte, becomes the text
 * \xNN; a cut is made at a character boundary and marked "...". */
SJ_UNUSED static void sj_safe_text(char *out, size_t cap, const char *in, size_t len, size_t max) {
    size_t o = 0, i = 0;
    if (max + 4 > cap) max = cap > 4 ? cap - 4 : 0;
    while (i < len) {
        const unsigned char *p = (const unsigned char *)in + i;
        size_t k = sj_utf8_char(p, len - i);
        int plain = k > 1 || (k == 1 && p[0] >= 0x20 && p[0] != 0x7f);
        size_t need = plain ? k : 4;
        if (o + need > max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) memcpy(out + o, p, k);
        else snprintf(out + o, 5, "\\x%02x", p[0]);
        o += need;
        i += plain ? k : 1;
    }
    out[o] = '\0';
}

/* Cuts s back to its last whole UTF-8 character (after a truncating
 * snprintf). */
SJ_UNUSED static void sj_trim_utf8(char *s) {
    size_t n = strlen(s), i = 0, good = 0;
    while (i < n) {
        size_t k = sj_utf8_char((const unsigned char *)s + i, n - i);
        if (k == 0) break;
        i += k;
        good = i;
    }
    s[good] = '\0';
}

static int sj_hex(unsigned char c) {
    return (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 :
           (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* The 4 hex digits at s (n bytes left) as a number, or -1. */
static long sj_hex4(const unsigned char *s, size_t n) {
    if (n < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = sj_hex(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

typedef struct sj_scan {
    const unsigned char *s;
    size_t n, i;
    const char *why; /* set on failure */
} sj_scan;

/* A string from its opening quote: escapes valid (a \u high surrogate
 * followed by a \u low one), no raw control characters, valid UTF-8. */
static int sj_string(sj_scan *z) {
    z->i++;
    while (z->i < z->n) {
        unsigned char c = z->s[z->i];
        if (c == '"') { z->i++; return 1; }
        if (c < 0x20) { z->why = "a control character inside a string (escape it)"; return 0; }
        if (c == '\\') {
            if (z->i + 1 >= z->n) break;
            unsigned char e = z->s[z->i + 1];
            if (e != 'u') {
                if (!strchr("\"\\/bfnrt", e) || e == '\0') { z->why = "an invalid escape in a string"; return 0; }
                z->i += 2;
                continue;
            }
            long u = sj_hex4(z->s + z->i + 2, z->n - z->i - 2);
            if (u < 0) { z->why = "a \\u escape without 4 hex digits"; return 0; }
            z->i += 6;
            if (u >= 0xdc00 && u <= 0xdfff) { z->why = "a lone low surrogate escape"; return 0; }
            if (u >= 0xd800 && u <= 0xdbff) {
                long lo = z->i + 1 < z->n && z->s[z->i] == '\\' && z->s[z->i + 1] == 'u'
                              ? sj_hex4(z->s + z->i + 2, z->n - z->i - 2) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) { z->why = "a high surrogate escape without its low half"; return 0; }
                z->i += 6;
            }
            continue;
        }
        size_t k = sj_utf8_char(z->s + z->i, z->n - z->i);
        if (k == 0) { z->why = "bytes that are not UTF-8"; return 0; }
        z->i += k;
    }
    z->why = "a string that is not closed";
    return 0;
}

/* A number in RFC 8259's grammar whose value is a finite double. */
static int sj_number(sj_scan *z) {
    size_t start = z->i, i = z->i;
    const unsigned char *s = z->s;
#define SJ_DIGITS(j) while ((j) < z->n && s[j] >= '0' && s[j] <= '9') (j)++
    if (i < z->n && s[i] == '-') i++;
    if (i < z->n && s[i] == '0') i++;
    else if (i < z->n && s[i] >= '1' && s[i] <= '9') { i++; SJ_DIGITS(i); }
    else { z->why = "a malformed number"; return 0; }
    if (i < z->n && s[i] == '.') {
        size_t d = ++i;
        SJ_DIGITS(i);
        if (i == d) { z->why = "a malformed number"; return 0; }
    }
    if (i < z->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < z->n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        SJ_DIGITS(i);
        if (i == d) { z->why = "a malformed number"; return 0; }
    }
#undef SJ_DIGITS
    /* the body is NUL-terminated and the number ends before i: strtod
       stops there */
    double v = strtod((const char *)s + start, NULL);
    if (!isfinite(v)) { z->why = "a number out of range"; return 0; }
    z->i = i;
    return 1;
}

static void sj_space(sj_scan *z) {
    while (z->i < z->n && (z->s[z->i] == ' ' || z->s[z->i] == '\t' || z->s[z->i] == '\n' || z->s[z->i] == '\r'))
        z->i++;
}

static int sj_word(sj_scan *z, const char *w) {
    size_t k = strlen(w);
    if (z->n - z->i < k || memcmp(z->s + z->i, w, k) != 0) { z->why = "an unexpected character"; return 0; }
    z->i += k;
    return 1;
}

static int sj_value(sj_scan *z, int depth);

/* An object or array from its opening bracket. */
static int sj_container(sj_scan *z, int depth) {
    unsigned char close = z->s[z->i] == '{' ? '}' : ']';
    if (depth >= SJ_MAX_DEPTH) { z->why = "nesting deeper than 64 levels"; return 0; }
    z->i++;
    sj_space(z);
    if (z->i < z->n && z->s[z->i] == close) { z->i++; return 1; }
    for (;;) {
        if (close == '}') {
            if (z->i >= z->n || z->s[z->i] != '"') { z->why = "an object key that is not a string"; return 0; }
            if (!sj_string(z)) return 0;
            sj_space(z);
            if (z->i >= z->n || z->s[z->i] != ':') { z->why = "a missing ':' after an object key"; return 0; }
            z->i++;
        }
        if (!sj_value(z, depth + 1)) return 0;
        sj_space(z);
        if (z->i < z->n && z->s[z->i] == ',') { z->i++; sj_space(z); continue; }
        if (z->i < z->n && z->s[z->i] == close) { z->i++; return 1; }
        z->why = close == '}' ? "a missing ',' or '}'" : "a missing ',' or ']'";
        return 0;
    }
}

static int sj_value(sj_scan *z, int depth) {
    sj_space(z);
    if (z->i >= z->n) { z->why = "the body ends early"; return 0; }
    unsigned char c = z->s[z->i];
    if (c == '{' || c == '[') return sj_container(z, depth);
    if (c == '"') return sj_string(z);
    if (c == '-' || (c >= '0' && c <= '9')) return sj_number(z);
    if (c == 't') return sj_word(z, "true");
    if (c == 'f') return sj_word(z, "false");
    if (c == 'n') return sj_word(z, "null");
    z->why = c < 0x20 || c >= 0x7f ? "an unexpected byte" : "an unexpected character";
    return 0;
}

/* 1 when s[0..n) (with s[n] == '\0') is one JSON value under the rules
 * above with only white space around it; else 0 with the offending byte's
 * offset in *at and the reason in *why. */
SJ_UNUSED static int sj_check(const char *s, size_t n, size_t *at, const char **why) {
    sj_scan z = { (const unsigned char *)s, n, 0, NULL };
    int ok = sj_value(&z, 0);
    if (ok) {
        sj_space(&z);
        if (z.i < n) { ok = 0; z.why = "bytes after the JSON value"; }
    }
    *at = z.i;
    *why = z.why;
    return ok;
}

static int sj_key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice in one object anywhere in the tree, or
 * NULL (also NULL when out of memory for the check: cJSON then failed
 * first). */
SJ_UNUSED static const char *sj_duplicate_key(const cJSON *node) {
    if (!node) return NULL;
    if (cJSON_IsObject(node) && node->child && node->child->next) {
        size_t n = 0;
        for (const cJSON *c = node->child; c; c = c->next) n++;
        const char **keys = malloc(n * sizeof *keys);
        if (keys) {
            size_t k = 0;
            for (const cJSON *c = node->child; c; c = c->next) keys[k++] = c->string;
            qsort(keys, n, sizeof *keys, sj_key_cmp);
            const char *dup = NULL;
            for (size_t i = 1; i < n && !dup; i++)
                if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
            free(keys);
            if (dup) return dup;
        }
    }
    for (const cJSON *c = node->child; c; c = c->next) {
        const char *d = sj_duplicate_key(c);
        if (d) return d;
    }
    return NULL;
}

#endif /* LLM_EXAMPLES_STRICT_JSON_H */
