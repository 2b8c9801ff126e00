/* libllm private: what the BPE tokenizer (bpe.c) and its trainer
 * (bpe_train.c) share. */
#ifndef LLM_PRIVATE_BPE_INTERNAL_H
#define LLM_PRIVATE_BPE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "core/internal.h"
#include "llm/text.h"

/* Byte classes of the pre-tokenizer (llm/text.h describes the rules). */
enum { LLM__BPE_SPACE = 0, LLM__BPE_LETTER = 1, LLM__BPE_DIGIT = 2, LLM__BPE_OTHER = 3 };

static inline int llm__bpe_class(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return LLM__BPE_LETTER;
    if (c >= '0' && c <= '9') return LLM__BPE_DIGIT;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return LLM__BPE_SPACE;
    return LLM__BPE_OTHER;
}

/* The end of the chunk that starts at s[i] (i < n): > i and at most
 * i + LLM_BPE_MAX_CHUNK. */
static inline size_t llm__bpe_chunk_end(const unsigned char *s, size_t n, size_t i) {
    size_t k = i, j;
    size_t lim = n - i > LLM_BPE_MAX_CHUNK ? i + LLM_BPE_MAX_CHUNK : n;
    int c = llm__bpe_class(s[i]);
    if (c == LLM__BPE_SPACE) {
        if (s[i] == ' ' && i + 1 < n && llm__bpe_class(s[i + 1]) != LLM__BPE_SPACE) {
            k = i + 1; /* a space that leads the run after it */
            c = llm__bpe_class(s[k]);
        } else {
            j = i + 1;
            while (j < n && llm__bpe_class(s[j]) == LLM__BPE_SPACE) j++;
            /* the last space before a non-space byte goes with that byte */
            if (j < n && j - i >= 2 && s[j - 1] == ' ') j--;
            return j < lim ? j : lim;
        }
    }
    j = k + 1;
    while (j < lim && llm__bpe_class(s[j]) == c) j++;
    return j < lim ? j : lim;
}

/* Makes a tokenizer from n merges (pairs[2k], pairs[2k + 1] = left and right
 * of id 258 + k). With `loading`, every rule of the format is checked and a
 * broken one is LLM_ERR_FORMAT (pairs[] coming from a file); otherwise the
 * merges are trusted (from training). */
llm_status llm__bpe_make(llm_bpe **out, const int32_t *pairs, int32_t n, int loading,
                         const char *fn);

#endif /* LLM_PRIVATE_BPE_INTERNAL_H */
