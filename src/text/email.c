/* The e-mail reader: one raw RFC 822 message in, one text out (kept headers,
 * subject, decoded text parts). Malformed mail never fails: whatever can be
 * read is read, the rest is skipped. */
#include "text/text_internal.h"

/* Deeper nesting is ignored: real mail stays within a few levels, and the
 * limit bounds the recursion on hostile input. */
#define EMAIL_MAX_DEPTH 32

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct email_ctx {
    const llm_email_options *o;
} email_ctx;

void llm_email_options_init(llm_email_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->max_bytes = LLM_EMAIL_DEFAULT_MAX_BYTES;
    opts->keep_subject = 1;
    opts->keep_headers = NULL;
    opts->decode_mime = 1;
    opts->text_attachments = 1;
    opts->tag_headers = 0;
}

llm_status llm__email_options_resolve(llm_email_options *dst, const llm_email_options *src,
                                      const char *fn) {
    llm_email_options_init(dst);
    LLM__CHECK(LLM__OPTIONS_MERGE(dst, src, fn));
    if (dst->max_bytes == 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: email options max_bytes is 0; it must be >= 1",
                          fn);
    if (dst->keep_subject != 0 && dst->keep_subject != 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: email options keep_subject is %d; use 0 or 1",
                          fn, dst->keep_subject);
    if (dst->decode_mime != 0 && dst->decode_mime != 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: email options decode_mime is %d; use 0 or 1",
                          fn, dst->decode_mime);
    if (dst->tag_headers != 0 && dst->tag_headers != 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: email options tag_headers is %d; use 0 or 1",
                          fn, dst->tag_headers);
    if (dst->text_attachments != 0 && dst->text_attachments != 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: email options text_attachments is %d; use 0 or 1", fn,
                          dst->text_attachments);
    return LLM_OK;
}

/* ------------------------------------------------------------ lines */

/* The line at *pos: content without its LF or CRLF; advances *pos past it. */
static span next_line(span s, size_t *pos) {
    size_t i = *pos;
    const char *nl = memchr(s.p + i, '\n', s.n - i);
    size_t end = nl ? (size_t)(nl - s.p) : s.n;
    *pos = nl ? end + 1 : s.n;
    size_t len = end - i;
    if (len > 0 && s.p[i + len - 1] == '\r') len--;
    return (span){s.p + i, len};
}

/* A header line is "Name:" with a name of printable ASCII and no space. */
static int is_header_start(span line) {
    size_t i = 0;
    while (i < line.n && line.p[i] > ' ' && line.p[i] < 127 && line.p[i] != ':') i++;
    return i > 0 && i < line.n && line.p[i] == ':';
}

/* Splits an entity into its header block and body. An entity that does not
 * start with a header line has no headers (a MIME part may begin with an
 * empty line, and spam sometimes has no headers at all). */
static void split_entity(span e, span *hdr, span *body) {
    size_t pos = 0;
    span first = next_line(e, &pos);
    if (e.n == 0 || !is_header_start(first)) {
        *hdr = (span){e.p, 0};
        /* an empty first line still separates (empty) headers from the body */
        *body = (first.n == 0 && e.n > 0) ? (span){e.p + pos, e.n - pos} : e;
        return;
    }
    while (pos < e.n) {
        size_t at = pos;
        span line = next_line(e, &pos);
        if (line.n == 0) {
            *hdr = (span){e.p, at};
            *body = (span){e.p + pos, e.n - pos};
            return;
        }
    }
    *hdr = e;
    *body = (span){e.p + e.n, 0};
}

/* ---------------------------------------------------------- headers */

typedef struct field_iter {
    span h;
    size_t pos;
} field_iter;

/* The next header field: its name and its raw value (continuation lines
 * included, line breaks still in). Lines that are neither a field nor a
 * continuation are skipped. */
static int field_next(field_iter *it, span *name, span *value) {
    while (it->pos < it->h.n) {
        span line = next_line(it->h, &it->pos);
        if (!is_header_start(line)) continue;
        const char *colon = memchr(line.p, ':', line.n);
        *name = (span){line.p, (size_t)(colon - line.p)};
        const char *vstart = colon + 1;
        const char *vend = line.p + line.n;
        while (it->pos < it->h.n) {
            size_t save = it->pos;
            span cont = next_line(it->h, &it->pos);
            if (cont.n > 0 && (cont.p[0] == ' ' || cont.p[0] == '\t')) {
                vend = cont.p + cont.n;
            } else {
                it->pos = save;
                break;
            }
        }
        *value = (span){vstart, (size_t)(vend - vstart)};
        return 1;
    }
    return 0;
}

/* Unfolds a raw value into out: line breaks removed, ends trimmed. */
static int unfold(llm__buf *out, span v) {
    size_t a = 0, b = v.n;
    while (a < b && llm__is_space((unsigned char)v.p[a])) a++;
    while (b > a && llm__is_space((unsigned char)v.p[b - 1])) b--;
    for (size_t i = a; i < b; i++)
        if (v.p[i] != '\r' && v.p[i] != '\n')
            if (!llm__buf_putc(out, v.p[i])) return 0;
    return 1;
}

static int name_is(span name, const char *want) {
    return name.n == strlen(want) && llm__ieq(name.p, want, name.n);
}

/* The first field called `want` (lower case), unfolded into out. */
static int header_get(span hdr, const char *want, llm__buf *out, int *found) {
    field_iter it = {hdr, 0};
    span name, value;
    *found = 0;
    while (field_next(&it, &name, &value)) {
        if (name_is(name, want)) {
            *found = 1;
            return unfold(out, value);
        }
    }
    return 1;
}

/* The media type of a Content-Type value, lower-cased into t (cap bytes). */
static void media_type(const char *v, size_t n, char *t, size_t cap) {
    size_t i = 0, k = 0;
    while (i < n && llm__is_space((unsigned char)v[i])) i++;
    while (i < n && v[i] != ';' && !llm__is_space((unsigned char)v[i]) && k + 1 < cap)
        t[k++] = (char)llm__lower((unsigned char)v[i++]);
    t[k] = '\0';
}

/* The value of parameter `want` (lower case) of a structured header value,
 * e.g. boundary in `multipart/mixed; boundary="b1"`. */
static int param_get(const char *v, size_t n, const char *want, llm__buf *out, int *found) {
    size_t m = strlen(want);
    size_t i = 0;
    *found = 0;
    while (i < n) {
        while (i < n && v[i] != ';') {
            if (v[i] == '"') { /* skip quoted strings, which may hold ';' */
                i++;
                while (i < n && v[i] != '"') i += (v[i] == '\\' && i + 1 < n) ? 2 : 1;
            }
            i++;
        }
        if (i >= n) break;
        i++; /* ';' */
        while (i < n && llm__is_space((unsigned char)v[i])) i++;
        size_t ns = i;
        while (i < n && v[i] != '=' && v[i] != ';' && !llm__is_space((unsigned char)v[i])) i++;
        size_t nl = i - ns;
        while (i < n && llm__is_space((unsigned char)v[i])) i++;
        if (i >= n || v[i] != '=') continue;
        i++;
        while (i < n && llm__is_space((unsigned char)v[i])) i++;
        if (nl != m || !llm__ieq(v + ns, want, m)) continue;
        *found = 1;
        if (i < n && v[i] == '"') {
            i++;
            while (i < n && v[i] != '"') {
                if (v[i] == '\\' && i + 1 < n) i++;
                if (!llm__buf_putc(out, v[i])) return 0;
                i++;
            }
        } else {
            while (i < n && v[i] != ';' && !llm__is_space((unsigned char)v[i]))
                if (!llm__buf_putc(out, v[i++])) return 0;
        }
        return 1;
    }
    return 1;
}

/* ----------------------------------------------------------- output */

/* Appends one piece of text as its own line(s): CR LF and stray CRs become LF, trailing
 * white space goes, and a piece with nothing visible is dropped. */
static int piece_add(llm__buf *dst, const char *p, size_t n) {
    while (n > 0 && llm__is_space((unsigned char)p[n - 1])) n--;
    size_t a = 0;
    while (a < n && llm__is_space((unsigned char)p[a])) a++;
    if (a == n) return 1;
    if (!llm__buf_reserve(dst, n + 1)) return 0;
    if (dst->len > 0) dst->data[dst->len++] = '\n';
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\r') {
            dst->data[dst->len++] = p[i];
            continue;
        }
        /* CR LF, CR CR LF (seen in real mail) and a lone CR all end a line */
        size_t j = i;
        while (j < n && p[j] == '\r') j++;
        if (j < n && p[j] == '\n') {
            i = j - 1;
            continue;
        }
        dst->data[dst->len++] = '\n';
        i = j - 1;
    }
    return 1;
}

static int has_text(const llm__buf *b) {
    for (size_t i = 0; i < b->len; i++)
        if (!llm__is_space((unsigned char)b->data[i])) return 1;
    return 0;
}

/* ----------------------------------------------------------- bodies */

static int render_entity(const email_ctx *c, span hdr, span body, int depth,
                         const char *default_type, llm__buf *dst);

/* Looks like an HTML document (used when no Content-Type says so). */
static int looks_like_html(const char *p, size_t n) {
    size_t i = 0;
    while (i < n && llm__is_space((unsigned char)p[i])) i++;
    return (n - i >= 5 && llm__ieq(p + i, "<html", 5)) ||
           (n - i >= 9 && llm__ieq(p + i, "<!doctype", 9)) ||
           (n - i >= 5 && llm__ieq(p + i, "<head", 5)) ||
           (n - i >= 5 && llm__ieq(p + i, "<body", 5));
}

/* A leaf text part: undo the transfer encoding, then HTML if it is HTML. */
static int render_text(span hdr, span body, int html, int untyped, llm__buf *dst) {
    llm__buf cte = {0}, raw = {0}, txt = {0};
    int found, ok = 1;
    char enc[32];
    if (!header_get(hdr, "content-transfer-encoding", &cte, &found)) return 0;
    media_type(cte.data ? cte.data : "", cte.len, enc, sizeof enc);
    llm__buf_free(&cte);
    span decoded = body;
    if (strcmp(enc, "base64") == 0) {
        ok = llm__base64_decode(&raw, body.p, body.n);
        decoded = (span){raw.data, raw.len};
    } else if (strcmp(enc, "quoted-printable") == 0) {
        ok = llm__qp_decode(&raw, body.p, body.n, 0);
        decoded = (span){raw.data, raw.len};
    }
    if (ok && untyped && looks_like_html(decoded.p, decoded.n)) html = 1;
    if (ok && html) {
        ok = llm__html_to_text(&txt, decoded.p, decoded.n);
        decoded = (span){txt.data, txt.len};
    }
    if (ok) ok = piece_add(dst, decoded.p, decoded.n);
    llm__buf_free(&raw);
    llm__buf_free(&txt);
    return ok;
}

/* The parts of a multipart body between "--boundary" lines, one callback
 * each. Preamble and epilogue are not parts. Returns the part count, or -1
 * when memory ran out. */
typedef int (*part_fn)(const email_ctx *c, span part, int depth, const char *default_type,
                       void *user);

static long for_each_part(const email_ctx *c, span body, const char *boundary, size_t blen,
                          int depth, const char *default_type, part_fn fn, void *user) {
    size_t pos = 0;
    long parts = 0;
    const char *part_start = NULL;
    while (pos < body.n) {
        size_t line_at = pos;
        span line = next_line(body, &pos);
        if (line.n < blen + 2 || line.p[0] != '-' || line.p[1] != '-' ||
            memcmp(line.p + 2, boundary, blen) != 0)
            continue;
        size_t rest = blen + 2;
        int closing = line.n >= rest + 2 && line.p[rest] == '-' && line.p[rest + 1] == '-';
        if (!closing) {
            size_t k = rest;
            while (k < line.n && (line.p[k] == ' ' || line.p[k] == '\t')) k++;
            if (k != line.n) continue; /* a longer boundary that starts with ours */
        }
        if (part_start) {
            /* the line break before a delimiter belongs to the delimiter */
            size_t end = line_at;
            const char *e = body.p + end;
            if (e > part_start && e[-1] == '\n') e--;
            if (e > part_start && e[-1] == '\r') e--;
            if (!fn(c, (span){part_start, (size_t)(e - part_start)}, depth, default_type, user))
                return -1;
            parts++;
        }
        if (closing) return parts;
        part_start = body.p + pos;
    }
    if (part_start && part_start < body.p + body.n) {
        /* no closing delimiter (often a message cut by the size cap) */
        if (!fn(c, (span){part_start, (size_t)(body.p + body.n - part_start)}, depth,
                default_type, user))
            return -1;
        parts++;
    }
    return parts;
}

static int part_render(const email_ctx *c, span part, int depth, const char *default_type,
                       void *user) {
    span hdr, body;
    split_entity(part, &hdr, &body);
    return render_entity(c, hdr, body, depth + 1, default_type, (llm__buf *)user);
}

/* multipart/alternative: the text/plain version when it has text, else the
 * first version that has. Both would say the same thing twice. */
typedef struct alt_state {
    llm__buf best;
    int best_plain;
} alt_state;

static int part_alternative(const email_ctx *c, span part, int depth, const char *default_type,
                            void *user) {
    alt_state *a = user;
    if (a->best_plain) return 1;
    span hdr, body;
    split_entity(part, &hdr, &body);
    llm__buf ct = {0}, tmp = {0};
    int found;
    char type[64];
    if (!header_get(hdr, "content-type", &ct, &found)) return 0;
    media_type(ct.data ? ct.data : "", ct.len, type, sizeof type);
    llm__buf_free(&ct);
    int plain = !found || strcmp(type, "text/plain") == 0;
    if (!render_entity(c, hdr, body, depth + 1, default_type, &tmp)) {
        llm__buf_free(&tmp);
        return 0;
    }
    if (has_text(&tmp) && (plain || a->best.len == 0)) {
        llm__buf_free(&a->best);
        a->best = tmp;
        a->best_plain = plain;
    } else {
        llm__buf_free(&tmp);
    }
    return 1;
}

static int render_multipart(const email_ctx *c, span hdr, span body, int depth,
                            const char *type, const char *ct, size_t ct_len, llm__buf *dst,
                            int *handled) {
    llm__buf boundary = {0};
    int found;
    *handled = 0;
    if (!param_get(ct, ct_len, "boundary", &boundary, &found)) return 0;
    if (!found || boundary.len == 0) {
        llm__buf_free(&boundary);
        return 1; /* no boundary: read the body as plain text */
    }
    const char *child_type = strcmp(type, "multipart/digest") == 0 ? "message/rfc822" : "text/plain";
    long parts;
    if (strcmp(type, "multipart/alternative") == 0) {
        alt_state a = {{0}, 0};
        parts = for_each_part(c, body, boundary.data, boundary.len, depth, child_type,
                              part_alternative, &a);
        if (parts > 0 && a.best.len > 0 && !piece_add(dst, a.best.data, a.best.len)) parts = -1;
        llm__buf_free(&a.best);
    } else {
        parts = for_each_part(c, body, boundary.data, boundary.len, depth, child_type,
                              part_render, dst);
    }
    llm__buf_free(&boundary);
    if (parts < 0) return 0;
    *handled = parts > 0;
    return 1;
}

static int render_entity(const email_ctx *c, span hdr, span body, int depth,
                         const char *default_type, llm__buf *dst) {
    if (depth > EMAIL_MAX_DEPTH) return 1;
    llm__buf ct = {0};
    int found, ok = 1;
    char type[64];
    if (!header_get(hdr, "content-type", &ct, &found)) return 0;
    media_type(ct.data ? ct.data : "", ct.len, type, sizeof type);
    int untyped = !found || strchr(type, '/') == NULL;
    if (untyped) {
        strncpy(type, default_type, sizeof type - 1);
        type[sizeof type - 1] = '\0';
    }

    if (strncmp(type, "multipart/", 10) == 0) {
        int handled;
        ok = render_multipart(c, hdr, body, depth, type, ct.data, ct.len, dst, &handled);
        llm__buf_free(&ct);
        if (!ok || handled) return ok;
        return render_text(hdr, body, 0, 1, dst); /* malformed: take the body as text */
    }
    llm__buf_free(&ct);

    if (strcmp(type, "message/rfc822") == 0 || strcmp(type, "message/global") == 0) {
        span h2, b2;
        split_entity(body, &h2, &b2);
        if (c->o->keep_subject) {
            llm__buf subj = {0}, dec = {0};
            ok = header_get(h2, "subject", &subj, &found);
            if (ok && found) ok = llm__rfc2047_decode(&dec, subj.data ? subj.data : "", subj.len);
            if (ok && found) ok = piece_add(dst, dec.data, dec.len);
            llm__buf_free(&subj);
            llm__buf_free(&dec);
            if (!ok) return 0;
        }
        return render_entity(c, h2, b2, depth + 1, "text/plain", dst);
    }
    if (strncmp(type, "text/", 5) != 0) return 1; /* images, applications, signatures */

    if (!c->o->text_attachments) {
        llm__buf disp = {0};
        char dtype[32];
        if (!header_get(hdr, "content-disposition", &disp, &found)) return 0;
        media_type(disp.data ? disp.data : "", disp.len, dtype, sizeof dtype);
        llm__buf_free(&disp);
        if (found && strcmp(dtype, "attachment") == 0) return 1;
    }
    return render_text(hdr, body, strcmp(type, "text/html") == 0, untyped, dst);
}

/* ------------------------------------------------------------ entry */

/* Is `name` in the comma-separated list (case-insensitive)? */
static int in_list(const char *list, span name) {
    if (strcmp(list, "*") == 0) return !name_is(name, "subject"); /* the subject has its own line */
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t') p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) == name.n && name.n > 0) {
            size_t k = 0;
            while (k < name.n && llm__lower((unsigned char)s[k]) == llm__lower((unsigned char)name.p[k])) k++;
            if (k == name.n) return 1;
        }
    }
    return 0;
}

/* tag_headers: the words of a header's value as "name\xc2\xb7word" (the
 * lower-case name, U+00B7 MIDDLE DOT), one piece. Words are what the default
 * tokenizer keeps whole: runs of ASCII letters and digits and bytes >= 0x80,
 * so a tagged word stays one token and `subject·free` is not the body's `free`. */
static int word_byte(unsigned char b) {
    return b >= 0x80 || (b >= '0' && b <= '9') || ((b | 0x20) >= 'a' && (b | 0x20) <= 'z');
}

static int tagged_piece(llm__buf *dst, span name, const char *v, size_t n) {
    llm__buf t = {0};
    int ok = 1;
    for (size_t i = 0; i < n && ok;) {
        if (!word_byte((unsigned char)v[i])) { i++; continue; }
        size_t j = i;
        while (j < n && word_byte((unsigned char)v[j])) j++;
        if (t.len > 0) ok = llm__buf_putc(&t, ' ');
        for (size_t k = 0; k < name.n && ok; k++) ok = llm__buf_putc(&t, (char)llm__lower((unsigned char)name.p[k]));
        ok = ok && llm__buf_append(&t, "\xc2\xb7", 2) && llm__buf_append(&t, v + i, j - i);
        i = j;
    }
    ok = ok && piece_add(dst, t.data ? t.data : "", t.len);
    llm__buf_free(&t);
    return ok;
}

static int kept_headers(const email_ctx *c, span hdr, llm__buf *dst) {
    field_iter it = {hdr, 0};
    span name, value;
    while (field_next(&it, &name, &value)) {
        if (!in_list(c->o->keep_headers, name)) continue;
        llm__buf raw = {0}, line = {0};
        int ok = unfold(&raw, value);
        if (ok && c->o->tag_headers)
            ok = llm__rfc2047_decode(&line, raw.data ? raw.data : "", raw.len) &&
                 tagged_piece(dst, name, line.data ? line.data : "", line.len);
        else if (ok)
            ok = llm__buf_append(&line, name.p, name.n) && llm__buf_append(&line, ": ", 2) &&
                 llm__rfc2047_decode(&line, raw.data ? raw.data : "", raw.len) &&
                 piece_add(dst, line.data, line.len);
        llm__buf_free(&raw);
        llm__buf_free(&line);
        if (!ok) return 0;
    }
    return 1;
}

llm_status llm__email_parse(const char *data, size_t len, const llm_email_options *opts,
                            llm__buf *out, const char *fn) {
    email_ctx c = {opts};
    span msg = {data ? data : "", len < opts->max_bytes ? len : opts->max_bytes};
    /* an mbox separator line ("From sender date") is not part of the message */
    if (msg.n >= 5 && memcmp(msg.p, "From ", 5) == 0) {
        size_t pos = 0;
        (void)next_line(msg, &pos);
        msg.p += pos;
        msg.n -= pos;
    }
    span hdr, body;
    split_entity(msg, &hdr, &body);
    int ok = 1, found;
    if (opts->keep_headers) ok = kept_headers(&c, hdr, out);
    if (ok && opts->keep_subject) {
        llm__buf subj = {0}, dec = {0};
        ok = header_get(hdr, "subject", &subj, &found);
        if (ok && found) ok = llm__rfc2047_decode(&dec, subj.data ? subj.data : "", subj.len);
        if (ok && found && opts->tag_headers) ok = tagged_piece(out, (span){"subject", 7}, dec.data ? dec.data : "", dec.len);
        else if (ok && found) ok = piece_add(out, dec.data, dec.len);
        llm__buf_free(&subj);
        llm__buf_free(&dec);
    }
    if (ok) {
        if (opts->decode_mime)
            ok = render_entity(&c, hdr, body, 0, "text/plain", out);
        else
            ok = piece_add(out, body.p, body.n);
    }
    if (!ok) return llm__oom(fn);
    return LLM_OK;
}

llm_status llm_email_parse(const char *data, size_t len, const llm_email_options *opts,
                           char **text, size_t *text_len) {
    if (!text) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL", __func__);
    *text = NULL;
    if (text_len) *text_len = 0;
    if (!data && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: data is NULL but len is %zu", __func__,
                          len);
    llm_email_options o;
    LLM__CHECK(llm__email_options_resolve(&o, opts, __func__));
    llm__buf out = {0};
    llm_status s = llm__email_parse(data, len, &o, &out, __func__);
    if (s == LLM_OK) {
        *text = llm__buf_take(&out, text_len);
        if (!*text) s = llm__oom(__func__);
    }
    llm__buf_free(&out);
    return s;
}

llm_status llm_email_read_file(const char *path, const llm_email_options *opts, char **text,
                               size_t *text_len) {
    if (!text) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL", __func__);
    *text = NULL;
    if (text_len) *text_len = 0;
    if (!path) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: path is NULL", __func__);
    llm_email_options o;
    LLM__CHECK(llm__email_options_resolve(&o, opts, __func__));
    llm__buf raw = {0}, out = {0};
    llm_status s = llm__read_file_capped(path, o.max_bytes, &raw, __func__);
    if (s == LLM_OK) s = llm__email_parse(raw.data, raw.len, &o, &out, __func__);
    llm__buf_free(&raw);
    if (s == LLM_OK) {
        *text = llm__buf_take(&out, text_len);
        if (!*text) s = llm__oom(__func__);
    }
    llm__buf_free(&out);
    return s;
}
