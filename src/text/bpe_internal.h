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

/* A tokenizer is its merges plus what is derived from them. libllm's own
 * (bpe.c, bpe_train.c) has fixed ids: special 0 and 1, byte b at 2 + b, merge
 * k at 258 + k. GPT-2's (bpe_gpt2.c) takes ids, byte tokens and merge results
 * from vocab.json and merges.txt, and cuts text with GPT-2's rule. */
struct llm_bpe {
    int32_t n_merges;
    int32_t vocab;        /* ids in all */
    int32_t *pairs;       /* [2 * n_merges]: left, right id of merge k (its rank) */
    int32_t *merge_result;/* [n_merges]: the id merge k makes */
    int32_t byte_id[256]; /* the id of each single byte */
    uint32_t *tok_off;    /* [vocab]: offset of each token's bytes in arena */
    uint16_t *tok_len;    /* [vocab]: <= LLM_BPE_MAX_CHUNK */
    char *arena;
    uint64_t *map_key;    /* [map_cap]: pair_key(left, right), 0 = empty */
    int32_t *map_rank;    /* [map_cap] */
    unsigned map_shift;   /* 64 - log2(map_cap) */
    size_t map_cap;
    /* GPT-2's tokenizer only */
    int gpt2;
    int32_t pad_id, eot_id;  /* -1 when absent */
    char *vocab_json, *merges_txt; /* the files it was made from, kept for
                                      serialising and for export */
    size_t vocab_len, merges_len;
};

/* The merge map: sized for n merges, then filled. llm__bpe_map_put returns
 * -1 when the pair was new, else the rank it already had (nothing changed). */
llm_status llm__bpe_map_alloc(llm_bpe *b, int32_t n, const char *fn);
int32_t llm__bpe_map_put(llm_bpe *b, int32_t left, int32_t right, int32_t rank);

/* GPT-2's pre-tokenisation (gpt2_pretokenize.c): the end of the chunk that
 * starts at s[i] (i < n), > i. Chunks have no length limit. */
size_t llm__gpt2_chunk_end(const unsigned char *s, size_t n, size_t i);

/* GPT-2's tokenizer from the bytes of vocab.json and merges.txt (bpe_gpt2.c);
 * label names them in messages. */
llm_status llm__bpe_gpt2_make(llm_bpe **out, const char *vocab, size_t vlen, const char *merges, size_t mlen,
                              const char *label);

/* Copies of the vocab.json and merges.txt a GPT-2 tokenizer was made from
 * (llm__free them); LLM_ERR_NOT_SUPPORTED, without a message, for libllm's own. */
llm_status llm__bpe_gpt2_files(const llm_bpe *b, char **vocab, size_t *vlen, char **merges, size_t *mlen);

/* Makes a tokenizer from n merges (pairs[2k], pairs[2k + 1] = left and right
 * of id 258 + k). With `loading`, every rule of the format is checked and a
 * broken one is LLM_ERR_FORMAT (pairs[] coming from a file); otherwise the
 * merges are trusted (from training). */
llm_status llm__bpe_make(llm_bpe **out, const int32_t *pairs, int32_t n, int loading,
                         const char *fn);

#endif /* LLM_PRIVATE_BPE_INTERNAL_H */
