/* GPT-2's tokenizer from its two files (the same for every GPT-2 size):
 *
 *   vocab.json (encoder.json): {"token": id, ...}, every id in [0, count)
 *     once. A token is a byte string written with GPT-2's byte alphabet:
 *     each byte as one character (bytes_to_unicode: the printable bytes
 *     '!'..'~', 0xA1..0xAC and 0xAE..0xFF as themselves, the 68 others as
 *     U+0100.. in byte order), so "Ġthe" is " the".
 *   merges.txt (vocab.bpe): an optional "#version" line, then one merge per
 *     line, "left right", in rank order; both sides and their concatenation
 *     are tokens of vocab.json.
 *
 * Both are treated as hostile: LLM_ERR_FORMAT naming the file, line or token
 * for anything else. The files' bytes are kept to serialise the tokenizer
 * (format version 2) and to export them again. */
#include <stdio.h>
#include <cjson/cJSON.h>
#include "text/bpe_internal.h"

#define GPT2_MAX_FILE ((size_t)64 << 20) /* vocab.json and merges.txt */
#define EOT_TEXT "<|endoftext|>"

/* bytes_to_unicode: the character of each byte, and back (0..323). */
static void byte_alphabet(uint32_t to_char[256], int16_t to_byte[324]) {
    int n = 0;
    for (int i = 0; i < 324; i++) to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        to_char[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        to_byte[to_char[b]] = (int16_t)b;
    }
}

/* Decodes a token written in the byte alphabet (s, n bytes of UTF-8) into
 * out (room for LLM_BPE_MAX_CHUNK bytes); the number of bytes, or -1 for a
 * character outside the alphabet or bad UTF-8, -2 when it is too long. */
static long token_bytes(const unsigned char *s, size_t n, const int16_t *to_byte, unsigned char *out) {
    long k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (s[i] < 0x80) {
            cp = s[i++];
        } else if ((s[i] & 0xe0) == 0xc0 && i + 1 < n && (s[i + 1] & 0xc0) == 0x80) {
            cp = (uint32_t)(s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f);
            i += 2;
            if (cp < 0x80) return -1; /* overlong */
        } else {
            return -1; /* the alphabet ends at U+0143: two bytes at most */
        }
        if (cp >= 324 || to_byte[cp] < 0) return -1;
        if (k == LLM_BPE_MAX_CHUNK) return -2;
        out[k++] = (unsigned char)to_byte[cp];
    }
    return k;
}

/* A printable, shortened form of untrusted text for messages. */
static const char *show(const char *s, size_t n, char out[80]) {
    size_t o = 0;
    for (size_t i = 0; i < n && o < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    }
    snprintf(out + o, 80 - o, "%s", o >= 60 ? "..." : "");
    return out;
}

/* bytes -> id, open addressing over the token arena */
typedef struct tok_index {
    int32_t *slot; /* id + 1, 0 = empty */
    size_t mask;
} tok_index;

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* The id of the token with these bytes, or -1; with add >= 0, inserts it
 * when absent (returning -1) or returns the id that already has them. */
static int32_t index_find(const tok_index *x, const llm_bpe *b, const unsigned char *s, size_t n, int32_t add) {
    for (size_t k = hash_bytes(s, n) & x->mask;; k = (k + 1) & x->mask) {
        int32_t id = x->slot[k] - 1;
        if (id < 0) {
            if (add >= 0) x->slot[k] = add + 1;
            return -1;
        }
        if (b->tok_len[id] == n && memcmp(b->arena + b->tok_off[id], s, n) == 0) return id;
    }
}

/* Reads vocab.json into the token table and the index. */
static llm_status read_vocab(llm_bpe *b, tok_index *x, const char *text, size_t len, const int16_t *to_byte,
                             const char *label) {
    char sh[80];
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) return llm__error(LLM_ERR_FORMAT, "%s: vocab.json is not valid JSON", label);
    llm_status s = LLM_OK;
    size_t count = 0;
    if (!cJSON_IsObject(root)) s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json is not a JSON object", label);
    for (const cJSON *c = root ? root->child : NULL; s == LLM_OK && c; c = c->next) count++;
    if (s == LLM_OK && (count < 256 || count > LLM_BPE_MAX_VOCAB))
        s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json has %zu tokens; a byte-level vocabulary has 256 to %d", label,
                       count, LLM_BPE_MAX_VOCAB);
    if (s == LLM_OK) {
        b->vocab = (int32_t)count;
        size_t cap = 1;
        while (cap < 2 * count) cap *= 2;
        x->slot = llm__calloc(cap, sizeof *x->slot);
        x->mask = cap - 1;
        b->tok_off = llm__malloc(count * sizeof *b->tok_off);
        b->tok_len = llm__calloc(count, sizeof *b->tok_len);
        b->arena = llm__malloc(count * (LLM_BPE_MAX_CHUNK + 1));
        if (!x->slot || !b->tok_off || !b->tok_len || !b->arena) s = llm__oom(label);
        for (size_t i = 0; b->tok_off && i < count; i++) b->tok_off[i] = UINT32_MAX; /* not yet seen */
    }
    size_t at = 0;
    for (const cJSON *c = root ? root->child : NULL; s == LLM_OK && c; c = c->next) {
        const char *key = c->string;
        size_t klen = strlen(key);
        double v = cJSON_IsNumber(c) ? c->valuedouble : -1.0;
        if (!(v >= 0.0 && v < (double)count) || v != (double)(int32_t)v) {
            s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json: the id of '%s' is not an integer in [0, %zu)", label,
                           show(key, klen, sh), count);
            break;
        }
        int32_t id = (int32_t)v;
        if (b->tok_off[id] != UINT32_MAX) {
            s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json: id %d is given twice", label, (int)id);
            break;
        }
        long n = token_bytes((const unsigned char *)key, klen, to_byte, (unsigned char *)b->arena + at);
        if (n <= 0) {
            s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json: token '%s' is %s", label, show(key, klen, sh),
                           n == 0 ? "empty" : n == -2 ? "longer than 256 bytes"
                                                      : "not written in GPT-2's byte alphabet");
            break;
        }
        b->tok_off[id] = (uint32_t)at;
        b->tok_len[id] = (uint16_t)n;
        b->arena[at + (size_t)n] = '\0';
        int32_t was = index_find(x, b, (unsigned char *)b->arena + at, (size_t)n, id);
        if (was >= 0) {
            s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json: token '%s' appears twice (ids %d and %d)", label,
                           show(key, klen, sh), (int)was, (int)id);
            break;
        }
        at += (size_t)n + 1;
    }
    cJSON_Delete(root);
    for (int c = 0; s == LLM_OK && c < 256; c++) {
        unsigned char one = (unsigned char)c;
        b->byte_id[c] = index_find(x, b, &one, 1, -1);
        if (b->byte_id[c] < 0)
            s = llm__error(LLM_ERR_FORMAT, "%s: vocab.json has no token for the byte 0x%02x", label, c);
    }
    if (s == LLM_OK) {
        b->eot_id = index_find(x, b, (const unsigned char *)EOT_TEXT, sizeof EOT_TEXT - 1, -1);
        b->pad_id = b->eot_id >= 0 ? b->eot_id : 0;
    }
    return s;
}

/* Reads merges.txt into pairs / merge_result and the merge map. */
static llm_status read_merges(llm_bpe *b, const tok_index *x, const char *text, size_t len, const int16_t *to_byte,
                              const char *label) {
    char sh[80];
    /* count the lines first: a merge line has at least 4 bytes ("a b\n") */
    int32_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    lines++;
    if (lines - 1 > LLM_BPE_MAX_VOCAB)
        return llm__error(LLM_ERR_FORMAT, "%s: merges.txt has more than %d lines", label, LLM_BPE_MAX_VOCAB);
    b->pairs = llm__malloc((size_t)lines * 2 * sizeof *b->pairs);
    b->merge_result = llm__malloc((size_t)lines * sizeof *b->merge_result);
    if (!b->pairs || !b->merge_result) return llm__oom(label);
    LLM__CHECK(llm__bpe_map_alloc(b, lines, label));
    int32_t k = 0, line = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t n = e - i;
        const char *l = text + i;
        i = e + 1;
        if (n && l[n - 1] == '\r') n--;
        if (n == 0 || (line == 1 && n >= 8 && memcmp(l, "#version", 8) == 0)) continue;
        const char *sp = memchr(l, ' ', n);
        if (!sp || sp == l || sp == l + n - 1 || memchr(sp + 1, ' ', (size_t)(l + n - sp - 1)))
            return llm__error(LLM_ERR_FORMAT, "%s: merges.txt line %d: '%s' is not \"left right\"", label, (int)line,
                              show(l, n, sh));
        unsigned char left[LLM_BPE_MAX_CHUNK], right[LLM_BPE_MAX_CHUNK], both[2 * LLM_BPE_MAX_CHUNK];
        long ln = token_bytes((const unsigned char *)l, (size_t)(sp - l), to_byte, left);
        long rn = token_bytes((const unsigned char *)sp + 1, (size_t)(l + n - sp - 1), to_byte, right);
        int32_t lid = ln > 0 ? index_find(x, b, left, (size_t)ln, -1) : -1;
        int32_t rid = rn > 0 ? index_find(x, b, right, (size_t)rn, -1) : -1;
        if (lid < 0 || rid < 0)
            return llm__error(LLM_ERR_FORMAT, "%s: merges.txt line %d: '%s' is not a token of vocab.json", label,
                              (int)line, lid < 0 ? show(l, (size_t)(sp - l), sh) : show(sp + 1, (size_t)(l + n - sp - 1), sh));
        memcpy(both, left, (size_t)ln);
        memcpy(both + ln, right, (size_t)rn);
        int32_t id = index_find(x, b, both, (size_t)(ln + rn), -1);
        if (id < 0)
            return llm__error(LLM_ERR_FORMAT, "%s: merges.txt line %d makes '%s', which vocab.json lacks", label,
                              (int)line, show(l, n, sh));
        int32_t first = llm__bpe_map_put(b, lid, rid, k);
        if (first >= 0)
            return llm__error(LLM_ERR_FORMAT, "%s: merges.txt line %d repeats merge %d ('%s')", label, (int)line,
                              (int)first, show(l, n, sh));
        b->pairs[2 * k] = lid;
        b->pairs[2 * k + 1] = rid;
        b->merge_result[k] = id;
        k++;
    }
    b->n_merges = k;
    return LLM_OK;
}

llm_status llm__bpe_gpt2_make(llm_bpe **out, const char *vocab, size_t vlen, const char *merges, size_t mlen,
                              const char *label) {
    *out = NULL;
    if (memchr(vocab, 0, vlen) || memchr(merges, 0, mlen))
        return llm__error(LLM_ERR_FORMAT, "%s: vocab.json or merges.txt holds a NUL byte", label);
    uint32_t to_char[256];
    int16_t to_byte[324];
    byte_alphabet(to_char, to_byte);
    llm_bpe *b = llm__calloc(1, sizeof *b);
    if (!b) return llm__oom(label);
    b->gpt2 = 1;
    b->pad_id = b->eot_id = -1;
    tok_index x = { NULL, 0 };
    llm_status s = read_vocab(b, &x, vocab, vlen, to_byte, label);
    if (s == LLM_OK) s = read_merges(b, &x, merges, mlen, to_byte, label);
    llm__free(x.slot);
    if (s == LLM_OK) {
        b->vocab_json = llm__malloc(vlen + 1);
        b->merges_txt = llm__malloc(mlen + 1);
        if (!b->vocab_json || !b->merges_txt) s = llm__oom(label);
    }
    if (s != LLM_OK) {
        llm_bpe_free(b);
        return s;
    }
    memcpy(b->vocab_json, vocab, vlen);
    memcpy(b->merges_txt, merges, mlen);
    b->vocab_json[vlen] = b->merges_txt[mlen] = '\0';
    b->vocab_len = vlen;
    b->merges_len = mlen;
    *out = b;
    return LLM_OK;
}

llm_status llm_bpe_from_gpt2(llm_bpe **out, const char *vocab_json, size_t vocab_len, const char *merges,
                             size_t merges_len) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if ((!vocab_json && vocab_len) || (!merges && merges_len))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL data with a non-zero length", __func__);
    return llm__bpe_gpt2_make(out, vocab_json ? vocab_json : "", vocab_len, merges ? merges : "", merges_len,
                              __func__);
}

llm_status llm_bpe_load_gpt2(llm_bpe **out, const char *vocab_path, const char *merges_path) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!vocab_path || !merges_path) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL path", __func__);
    char *v = NULL, *m = NULL;
    size_t vl = 0, ml = 0;
    llm_status s = llm_text_read_file(vocab_path, GPT2_MAX_FILE + 1, &v, &vl);
    if (s == LLM_OK) s = llm_text_read_file(merges_path, GPT2_MAX_FILE + 1, &m, &ml);
    if (s == LLM_OK && (vl > GPT2_MAX_FILE || ml > GPT2_MAX_FILE))
        s = llm__error(LLM_ERR_FORMAT, "%s: %s is larger than %zu bytes", __func__,
                       vl > GPT2_MAX_FILE ? vocab_path : merges_path, GPT2_MAX_FILE);
    char label[512];
    snprintf(label, sizeof label, "%.240s + %.240s", vocab_path, merges_path);
    if (s == LLM_OK) s = llm__bpe_gpt2_make(out, v, vl, m, ml, label);
    llm_text_free(v);
    llm_text_free(m);
    return s;
}

llm_status llm__bpe_gpt2_files(const llm_bpe *b, char **vocab, size_t *vlen, char **merges, size_t *mlen) {
    *vocab = *merges = NULL;
    if (!b->gpt2) return LLM_ERR_NOT_SUPPORTED;
    *vocab = llm__malloc(b->vocab_len + 1);
    *merges = llm__malloc(b->merges_len + 1);
    if (!*vocab || !*merges) {
        llm__free(*vocab);
        llm__free(*merges);
        *vocab = *merges = NULL;
        return llm__oom("gpt2 tokenizer");
    }
    memcpy(*vocab, b->vocab_json, b->vocab_len + 1);
    memcpy(*merges, b->merges_txt, b->merges_len + 1);
    *vlen = b->vocab_len;
    *mlen = b->merges_len;
    return LLM_OK;
}

llm_status llm_bpe_special_ids(const llm_bpe *b, int32_t *pad, int32_t *eot) {
    if (!b || !pad || !eot) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", __func__);
    *pad = b->pad_id;
    *eot = b->eot_id;
    return LLM_OK;
}
