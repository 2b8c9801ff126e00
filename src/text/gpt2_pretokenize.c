/* GPT-2's pre-tokenisation: the text is cut where the reference's regular
 * expression
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * cuts it (first alternative that matches, each as long as it goes), written
 * out by hand over UTF-8 with the classes of unicode_classes.h. The reference
 * (gpt-3-encoder) runs it as a JavaScript regular expression, so \s is
 * JavaScript's white space. Bytes that do not form valid UTF-8 count one by
 * one as "other" characters: what a JavaScript string holding them as lone
 * surrogates (Python's surrogateescape) would make of them. */
#include "text/bpe_internal.h"
#include "text/unicode_classes.h"

/* The class and byte length of the character at s[i] (i < n). */
static inline int char_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = s[i];
    if (c < 0x80) {
        *len = 1;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return LLM__UC_LETTER;
        if (c >= '0' && c <= '9') return LLM__UC_NUMBER;
        if (c == ' ' || (c >= '\t' && c <= '\r')) return LLM__UC_SPACE;
        return LLM__UC_OTHER;
    }
    size_t k;
    uint32_t cp;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) { k = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) {
        k = 3; cp = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4; cp = c & 0x07;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; /* nothing past U+10FFFF */
    } else {
        *len = 1;
        return LLM__UC_OTHER;
    }
    if (n - i < k || s[i + 1] < lo || s[i + 1] > hi) { *len = 1; return LLM__UC_OTHER; }
    for (size_t j = 1; j < k; j++) {
        if (j > 1 && (s[i + j] & 0xc0) != 0x80) { *len = 1; return LLM__UC_OTHER; }
        cp = cp << 6 | (s[i + j] & 0x3f);
    }
    *len = k;
    return llm__unicode_class(cp);
}

/* 2 or 3 when a contraction ('s 't 'm 'd / 're 've 'll) starts at s[i]. */
static size_t contraction(const unsigned char *s, size_t n, size_t i) {
    if (s[i] != '\'' || i + 1 >= n) return 0;
    unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

size_t llm__gpt2_chunk_end(const unsigned char *s, size_t n, size_t i) {
    size_t k = contraction(s, n, i);
    if (k) return i + k;
    size_t len, j = i;
    int c = char_at(s, n, i, &len);
    if (s[i] == ' ' && i + 1 < n) { /* " ?" before a letter, number or other run */
        size_t len2;
        int c2 = char_at(s, n, i + 1, &len2);
        if (c2 != LLM__UC_SPACE) {
            c = c2;
            j = i + 1;
            len = len2;
        }
    }
    if (c != LLM__UC_SPACE) { /* a run of one class */
        j += len;
        while (j < n && char_at(s, n, j, &len) == c) j += len;
        return j;
    }
    /* white space: the whole run when it ends the text or only one character
     * precedes a non-space; else all but its last character, which then
     * leads (or is) the next chunk */
    size_t last = i;
    j = i + len;
    while (j < n && char_at(s, n, j, &len) == LLM__UC_SPACE) {
        last = j;
        j += len;
    }
    return j < n && last > i ? last : j;
}
