/* HTML reduced to the text a reader sees. Not a full HTML parser: tags go,
 * script and style contents go, block-level tags become line breaks, runs
 * of white space become one, and the common entities are decoded. Inline
 * tags vanish without a space, so "V<b></b>iagra" reads "Viagra", which is
 * what the recipient saw. Link targets are kept as text: a classifier learns
 * from them. */
#include "text/text_internal.h"

enum { WS_NONE = 0, WS_SPACE = 1, WS_NEWLINE = 2 };

typedef struct html_state {
    llm__buf *out;
    size_t start; /* where this document's text begins in out */
    int pending;  /* white space owed before the next visible byte */
} html_state;

static int put_byte(html_state *h, char c) {
    if (h->pending != WS_NONE && h->out->len > h->start)
        if (!llm__buf_putc(h->out, h->pending == WS_NEWLINE ? '\n' : ' ')) return 0;
    h->pending = WS_NONE;
    return llm__buf_putc(h->out, c);
}

static void want_ws(html_state *h, int ws) {
    if (ws > h->pending) h->pending = ws;
}

/* Code point to UTF-8; invalid code points give nothing. */
static int put_codepoint(html_state *h, uint32_t cp) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xA0) {
        want_ws(h, WS_SPACE);
        return 1;
    }
    char b[4];
    int n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (int i = 0; i < n; i++)
        if (!put_byte(h, b[i])) return 0;
    return 1;
}

/* An entity at s[0] == '&'. Returns the bytes consumed (0: not an entity). */
static size_t entity(html_state *h, const char *s, size_t n, int *ok) {
    static const struct { const char *name; uint32_t cp; } named[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0},
        {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122}, {"euro", 0x20AC}, {"pound", 0xA3},
        {"mdash", 0x2014}, {"ndash", 0x2013}, {"hellip", 0x2026}, {"bull", 0x2022},
        {"laquo", 0xAB}, {"raquo", 0xBB}, {"middot", 0xB7},
    };
    *ok = 1;
    if (n >= 3 && s[1] == '#') {
        size_t i = 2;
        int hex = 0;
        if (s[i] == 'x' || s[i] == 'X') {
            hex = 1;
            i++;
        }
        uint32_t cp = 0;
        size_t digits = 0;
        while (i < n) {
            int v = hex ? llm__hexval((unsigned char)s[i])
                        : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
            if (v < 0) break;
            if (cp <= 0x10FFFF) cp = cp * (hex ? 16u : 10u) + (uint32_t)v;
            digits++;
            i++;
        }
        if (digits == 0) return 0;
        if (i < n && s[i] == ';') i++; /* browsers accept a missing ';' here */
        *ok = put_codepoint(h, cp);
        return i;
    }
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        size_t len = strlen(named[k].name);
        if (n >= len + 2 && memcmp(s + 1, named[k].name, len) == 0 && s[len + 1] == ';') {
            *ok = put_codepoint(h, named[k].cp);
            return len + 2;
        }
    }
    return 0;
}

static int is_block_tag(const char *name, size_t len) {
    static const char *const blocks[] = {
        "br", "p", "div", "tr", "td", "th", "li", "ul", "ol", "dl", "dt", "dd", "table",
        "thead", "tbody", "tfoot", "caption", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "title", "blockquote", "pre", "body", "html", "head", "center", "form", "address",
        "section", "article", "header", "footer", "nav", "option", "select", "textarea",
        "frame", "iframe", "img",
    };
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++)
        if (strlen(blocks[k]) == len && llm__ieq(name, blocks[k], len)) return 1;
    return 0;
}

/* Finds `needle` (lower case) case-insensitively in s[from, n); n if none. */
static size_t find_ci(const char *s, size_t n, size_t from, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = from; i + m <= n; i++)
        if (llm__ieq(s + i, needle, m)) return i;
    return n;
}

/* The value of attribute `attr` inside tag text t[0, n), as a span. */
static int tag_attr(const char *t, size_t n, const char *attr, size_t *vs, size_t *vl) {
    size_t m = strlen(attr);
    for (size_t i = 0; i + m < n; i++) {
        if (!llm__ieq(t + i, attr, m)) continue;
        if (i > 0 && !llm__is_space((unsigned char)t[i - 1])) continue;
        size_t j = i + m;
        while (j < n && llm__is_space((unsigned char)t[j])) j++;
        if (j >= n || t[j] != '=') continue;
        j++;
        while (j < n && llm__is_space((unsigned char)t[j])) j++;
        if (j >= n) return 0;
        if (t[j] == '"' || t[j] == '\'') {
            char q = t[j++];
            size_t k = j;
            while (k < n && t[k] != q) k++;
            *vs = j;
            *vl = k - j;
            return 1;
        }
        size_t k = j;
        while (k < n && !llm__is_space((unsigned char)t[k]) && t[k] != '>') k++;
        *vs = j;
        *vl = k - j;
        return 1;
    }
    return 0;
}

int llm__html_to_text(llm__buf *out, const char *s, size_t n) {
    html_state h = {out, out->len, WS_NONE};
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '<') {
            if (i + 3 < n && memcmp(s + i, "<!--", 4) == 0) {
                size_t e = find_ci(s, n, i + 4, "-->");
                i = e == n ? n : e + 3;
                continue;
            }
            size_t j = i + 1;
            int closing = 0;
            if (j < n && s[j] == '/') {
                closing = 1;
                j++;
            }
            size_t name_start = j;
            while (j < n && (llm__is_alnum((unsigned char)s[j]) || s[j] == ':' || s[j] == '-')) j++;
            size_t name_len = j - name_start;
            int letter = name_len > 0 && !(s[name_start] >= '0' && s[name_start] <= '9');
            int special = !closing && name_len == 0 && j < n && (s[j] == '!' || s[j] == '?');
            if (!letter && !special) {
                /* "a < b": a literal '<', not a tag */
                if (!put_byte(&h, '<')) return 0;
                i++;
                continue;
            }
            size_t end = j;
            while (end < n && s[end] != '>') end++;
            const char *name = s + name_start;
            if (!closing && ((name_len == 6 && llm__ieq(name, "script", 6)) ||
                             (name_len == 5 && llm__ieq(name, "style", 5)))) {
                /* contents are code, not text: skip to the closing tag */
                size_t close = find_ci(s, n, end, name_len == 6 ? "</script" : "</style");
                if (close == n) return 1;
                end = close;
                while (end < n && s[end] != '>') end++;
                want_ws(&h, WS_SPACE);
            } else if (letter && is_block_tag(name, name_len)) {
                want_ws(&h, WS_NEWLINE);
            }
            if (!closing && name_len == 1 && llm__lower((unsigned char)name[0]) == 'a') {
                size_t vs, vl;
                if (tag_attr(s + j, end - j, "href", &vs, &vl) && vl > 0) {
                    want_ws(&h, WS_SPACE);
                    for (size_t k = 0; k < vl; k++)
                        if (!put_byte(&h, s[j + vs + k])) return 0;
                    want_ws(&h, WS_SPACE);
                }
            }
            i = end < n ? end + 1 : n;
            continue;
        }
        if (c == '&') {
            int ok;
            size_t used = entity(&h, s + i, n - i, &ok);
            if (!ok) return 0;
            if (used > 0) {
                i += used;
                continue;
            }
        }
        if (llm__is_space(c)) {
            want_ws(&h, WS_SPACE);
            i++;
            continue;
        }
        if (!put_byte(&h, (char)c)) return 0;
        i++;
    }
    return 1;
}
