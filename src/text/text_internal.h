/* libllm private: helpers shared by the text pipeline (src/text/). */
#ifndef LLM_PRIVATE_TEXT_INTERNAL_H
#define LLM_PRIVATE_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "core/internal.h"
#include "llm/text.h"

#define LLM__CHAR_NGRAM_MAX 16 /* the longest subword llm_vectorize_options allows */

/* A growable byte buffer. Every append returns 1, or 0 when memory ran out
 * (the buffer is then unchanged), so callers turn 0 into llm__oom(). */
typedef struct llm__buf {
    char *data;
    size_t len;
    size_t cap;
} llm__buf;

int llm__buf_reserve(llm__buf *b, size_t extra);
int llm__buf_append(llm__buf *b, const void *p, size_t n);
int llm__buf_putc(llm__buf *b, char c);
/* NUL-terminates (not counted in len) and hands the memory to the caller. */
char *llm__buf_take(llm__buf *b, size_t *len);
void llm__buf_free(llm__buf *b);

/* Decoders that append to out; each returns 0 only on out-of-memory. They
 * never fail on malformed input: what cannot be decoded is kept or dropped. */
int llm__base64_decode(llm__buf *out, const char *s, size_t n);
/* Quoted-printable; q_mode adds RFC 2047's "_" = space. */
int llm__qp_decode(llm__buf *out, const char *s, size_t n, int q_mode);
/* A header value with RFC 2047 encoded-words decoded to their bytes. */
int llm__rfc2047_decode(llm__buf *out, const char *s, size_t n);
/* HTML reduced to text: tags stripped, script/style dropped, entities decoded. */
int llm__html_to_text(llm__buf *out, const char *s, size_t n);

/* Reads at most max_bytes of path into *out (NUL-terminated). LLM_ERR_IO with
 * the reason in the message, naming `fn`. */
llm_status llm__read_file_capped(const char *path, size_t max_bytes, llm__buf *out,
                                 const char *fn);

/* Email parsing on checked options (opts fully merged). */
llm_status llm__email_parse(const char *data, size_t len, const llm_email_options *opts,
                            llm__buf *out, const char *fn);
/* Merges and validates caller email options over the defaults. */
llm_status llm__email_options_resolve(llm_email_options *dst, const llm_email_options *src,
                                      const char *fn);

/* Merges and validates caller tokenizer options over the defaults. */
llm_status llm__tokenizer_options_resolve(llm_tokenizer_options *dst,
                                          const llm_tokenizer_options *src, const char *fn);
/* llm_tokenize on already checked options; returns LLM_ERR_CANCELLED
 * (without a message) when fn stops. */
llm_status llm__tokenize(const char *text, size_t len, const llm_tokenizer_options *o,
                         llm_token_fn fn, void *user);

/* Vocabulary internals used by the vectorizer. */
int32_t llm__vocab_find(const llm_vocab *v, const char *token, size_t len);
const llm_tokenizer_options *llm__vocab_tokopts(const llm_vocab *v);

/* Vectorizes one text on checked options; out has o->seq_len entries. */
llm_status llm__vectorize(const llm_vocab *v, const char *text, size_t len,
                          const llm_vectorize_options *o, int32_t *out, int64_t *ntokens);
/* Whether resolved options use what only a word vocabulary has (middle
 * truncation, bigram or subword buckets, skip_unknown, unique, reverse);
 * LLM__VECTORIZE_WORD_ONLY names them for an error message. */
#define LLM__VECTORIZE_WORD_ONLY "LLM_SEQ_MIDDLE, bigram_buckets, char_ngram_buckets, skip_unknown, unique and reverse"
static inline int llm__vectorize_options_word_only(const llm_vectorize_options *o) {
    return o->truncation == LLM_SEQ_MIDDLE || o->bigram_buckets || o->char_ngram_buckets || o->skip_unknown ||
           o->unique || o->reverse;
}
llm_status llm__vectorize_options_resolve(llm_vectorize_options *dst,
                                          const llm_vectorize_options *src, const char *fn);

static inline int llm__is_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline int llm__is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}
static inline unsigned char llm__lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}
/* Case-insensitive (ASCII) comparison of n bytes of a with the lower-case b. */
static inline int llm__ieq(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (llm__lower((unsigned char)a[i]) != (unsigned char)b[i]) return 0;
    return 1;
}
static inline int llm__hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#endif /* LLM_PRIVATE_TEXT_INTERNAL_H */
