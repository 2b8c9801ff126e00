/* The vectorizer for BPE tokenizers: text -> a fixed-length row of ids,
 * padded and truncated like llm_vectorize. */
#include "text/text_internal.h"

llm_status llm_bpe_vectorize(const llm_bpe *bpe, const char *text, size_t len, const llm_vectorize_options *opts,
                             int32_t *ids, int64_t ids_count, int64_t *ntokens) {
    static const char fn[] = "llm_bpe_vectorize";
    if (!bpe || !ids || (!text && len)) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    llm_vectorize_options o;
    LLM__CHECK(llm__vectorize_options_resolve(&o, opts, fn));
    if (llm__vectorize_options_word_only(&o))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s are for word vocabularies", fn, LLM__VECTORIZE_WORD_ONLY);
    if (ids_count != o.seq_len)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids_count = %lld but seq_len = %d", fn, (long long)ids_count,
                          (int)o.seq_len);
    size_t n = 0;
    LLM__CHECK(llm_bpe_encode(bpe, text, len, NULL, 0, &n));
    int32_t *all = llm__malloc((n ? n : 1) * sizeof *all);
    if (!all) return llm__oom(fn);
    llm_status s = llm_bpe_encode(bpe, text, len, all, n, &n);
    if (s == LLM_OK) {
        int64_t seq = o.seq_len, keep = (int64_t)n < seq ? (int64_t)n : seq;
        const int32_t *src = all + (o.truncation == LLM_SEQ_PRE ? (int64_t)n - keep : 0);
        int64_t start = o.padding == LLM_SEQ_PRE ? seq - keep : 0;
        int32_t pad = LLM_BPE_PAD, eot;
        llm_bpe_special_ids(bpe, &pad, &eot);
        for (int64_t i = 0; i < seq; i++) ids[i] = pad;
        memcpy(ids + start, src, (size_t)keep * sizeof *ids);
        if (ntokens) *ntokens = (int64_t)n;
    }
    llm__free(all);
    return s;
}
