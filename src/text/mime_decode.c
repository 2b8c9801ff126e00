/* Content-Transfer-Encoding and RFC 2047 decoders. Lenient by design: mail
 * in the wild is often malformed, and a reader that gives up loses the text
 * a classifier needs, so what cannot be decoded is kept or skipped. */
#include "text/text_internal.h"

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62; /* '-' and '_': the URL-safe alphabet */
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Emits the bytes of a partial quantum of k sextets (k = 2 or 3). */
static int b64_flush(llm__buf *out, uint32_t acc, int k) {
    if (k == 2) return llm__buf_putc(out, (char)((acc >> 4) & 0xff));
    if (k == 3) {
        char two[2] = {(char)((acc >> 10) & 0xff), (char)((acc >> 2) & 0xff)};
        return llm__buf_append(out, two, 2);
    }
    return 1;
}

int llm__base64_decode(llm__buf *out, const char *s, size_t n) {
    if (!llm__buf_reserve(out, n / 4 * 3 + 3)) return 0;
    uint32_t acc = 0;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            /* padding ends a quantum; more data may follow (concatenated
             * encodings), so restart the quantum */
            if (!b64_flush(out, acc, k)) return 0;
            acc = 0;
            k = 0;
            continue;
        }
        int v = b64val(c);
        if (v < 0) continue; /* line breaks, spaces, junk */
        acc = (acc << 6) | (uint32_t)v;
        if (++k == 4) {
            char three[3] = {(char)((acc >> 16) & 0xff), (char)((acc >> 8) & 0xff),
                             (char)(acc & 0xff)};
            if (!llm__buf_append(out, three, 3)) return 0;
            acc = 0;
            k = 0;
        }
    }
    return b64_flush(out, acc, k);
}

int llm__qp_decode(llm__buf *out, const char *s, size_t n, int q_mode) {
    if (!llm__buf_reserve(out, n)) return 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '_' && q_mode) {
            out->data[out->len++] = ' ';
            i++;
            continue;
        }
        if (c != '=') {
            out->data[out->len++] = (char)c;
            i++;
            continue;
        }
        int hi = i + 1 < n ? llm__hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? llm__hexval((unsigned char)s[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            out->data[out->len++] = (char)(hi * 16 + lo);
            i += 3;
            continue;
        }
        /* "=" then optional trailing blanks then a line break: a soft break */
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
        if (j < n && s[j] == '\r') j++;
        if (j < n && s[j] == '\n') {
            i = j + 1;
            continue;
        }
        if (j == n) break; /* "=" at the very end: a soft break with the line end cut off */
        out->data[out->len++] = '='; /* malformed: keep it as it is */
        i++;
    }
    return 1;
}

/* An encoded-word at s: "=?charset?B|Q?text?=". On success sets the
 * encoding, the text span and the total length. */
static int parse_encoded_word(const char *s, size_t n, char *enc, size_t *text_start,
                              size_t *text_len, size_t *total) {
    if (n < 8 || s[0] != '=' || s[1] != '?') return 0;
    size_t i = 2;
    while (i < n && s[i] != '?' && !llm__is_space((unsigned char)s[i])) i++;
    if (i == 2 || i + 2 >= n || s[i] != '?') return 0;
    char e = (char)llm__lower((unsigned char)s[i + 1]);
    if ((e != 'b' && e != 'q') || s[i + 2] != '?') return 0;
    size_t t = i + 3;
    size_t j = t;
    /* the encoded text holds no '?' and no white space, so the scan stops at
     * the first of them: a header full of "=?" stays linear */
    while (j < n && s[j] != '?' && !llm__is_space((unsigned char)s[j])) j++;
    if (j + 1 >= n || s[j] != '?' || s[j + 1] != '=') return 0;
    *enc = e;
    *text_start = t;
    *text_len = j - t;
    *total = j + 2;
    return 1;
}

int llm__rfc2047_decode(llm__buf *out, const char *s, size_t n) {
    size_t i = 0;
    int prev_encoded = 0;
    char enc;
    size_t ts, tl, total;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (llm__is_space(c)) {
            size_t j = i;
            while (j < n && llm__is_space((unsigned char)s[j])) j++;
            /* white space between two encoded-words is not part of the text */
            if (prev_encoded && parse_encoded_word(s + j, n - j, &enc, &ts, &tl, &total)) {
                i = j;
                continue;
            }
            if (!llm__buf_append(out, s + i, j - i)) return 0;
            i = j;
            continue;
        }
        if (c == '=' && parse_encoded_word(s + i, n - i, &enc, &ts, &tl, &total)) {
            int ok = enc == 'b' ? llm__base64_decode(out, s + i + ts, tl)
                                : llm__qp_decode(out, s + i + ts, tl, 1);
            if (!ok) return 0;
            i += total;
            prev_encoded = 1;
            continue;
        }
        if (!llm__buf_putc(out, (char)c)) return 0;
        prev_encoded = 0;
        i++;
    }
    return 1;
}
