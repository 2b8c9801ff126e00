/* The vectorizer: text -> a fixed-length row of token ids. */
#include "text/text_internal.h"
#include "core/rng.h"

void llm_vectorize_options_init(llm_vectorize_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->seq_len = 200;
    opts->padding = LLM_SEQ_PRE;
    opts->truncation = LLM_SEQ_POST;
    opts->bigram_buckets = 0;
    opts->char_ngram_buckets = 0;
    opts->char_ngram_min = 3;
    opts->char_ngram_max = 5;
}

llm_status llm__vectorize_options_resolve(llm_vectorize_options *dst,
                                          const llm_vectorize_options *src, const char *fn) {
    llm_vectorize_options_init(dst);
    LLM__CHECK(LLM__OPTIONS_MERGE(dst, src, fn));
    if (dst->seq_len < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vectorize options seq_len is %d; it must be >= 1",
                          fn, (int)dst->seq_len);
    if (dst->padding != LLM_SEQ_PRE && dst->padding != LLM_SEQ_POST)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: vectorize options padding is %d; use LLM_SEQ_PRE or LLM_SEQ_POST", fn,
                          (int)dst->padding);
    if (dst->truncation != LLM_SEQ_PRE && dst->truncation != LLM_SEQ_POST && dst->truncation != LLM_SEQ_MIDDLE)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: vectorize options truncation is %d; use LLM_SEQ_PRE, LLM_SEQ_POST or LLM_SEQ_MIDDLE",
                          fn, (int)dst->truncation);
    if (dst->bigram_buckets < 0 || dst->bigram_buckets > (1 << 24))
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: vectorize options bigram_buckets is %d; it must be in [0, 2^24]", fn,
                          (int)dst->bigram_buckets);
    if (dst->char_ngram_buckets < 0 || dst->char_ngram_buckets > (1 << 24) || dst->char_ngram_min < 1 ||
        dst->char_ngram_max < dst->char_ngram_min || dst->char_ngram_max > LLM__CHAR_NGRAM_MAX)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: vectorize options char_ngram_buckets is %d, char_ngram_min %d and char_ngram_max %d; "
                          "the buckets must be in [0, 2^24] and 1 <= min <= max <= %d",
                          fn, (int)dst->char_ngram_buckets, (int)dst->char_ngram_min, (int)dst->char_ngram_max,
                          LLM__CHAR_NGRAM_MAX);
    if ((dst->skip_unknown != 0 && dst->skip_unknown != 1) || (dst->unique != 0 && dst->unique != 1) ||
        (dst->reverse != 0 && dst->reverse != 1))
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: vectorize options skip_unknown is %d, unique %d and reverse %d; each must be 0 or 1", fn,
                          dst->skip_unknown, dst->unique, dst->reverse);
    return LLM_OK;
}

typedef struct vec_state {
    const llm_vocab *v;
    int32_t *ids;
    int64_t seq;
    int64_t head;  /* ids kept from the start; the rest of the row is a ring of the last
                      seq - head ids (truncation PRE: head 0; POST: head seq) */
    int64_t total;
    int32_t buckets, first_bucket; /* bigram ids: first_bucket + [0, buckets) */
    int32_t char_buckets, first_char_bucket, char_min, char_max; /* subword ids */
    uint64_t prev;                 /* hash of the previous token; 0 before the first */
    int skip_unknown;
    uint8_t *seen;                 /* unique: a bit per id, set once emitted; else NULL */
} vec_state;

static void vec_emit(vec_state *s, int32_t id) {
    if (s->seen) {
        if (s->seen[id >> 3] & (1u << (id & 7))) return;
        s->seen[id >> 3] |= (uint8_t)(1u << (id & 7));
    }
    if (s->total < s->head)
        s->ids[s->total] = id;
    else if (s->head < s->seq)
        s->ids[s->head + (s->total - s->head) % (s->seq - s->head)] = id;
    s->total++;
}

/* FNV-1a; never 0, the "no previous token" mark */
static uint64_t token_hash(const char *p, size_t n) { return llm__fnv1a(LLM__FNV1A_INIT, p, n) | 1; }

static int vec_token(const char *token, size_t len, void *user) {
    vec_state *s = user;
    const int32_t id = llm__vocab_find(s->v, token, len);
    if (id != LLM_VOCAB_OOV || !s->skip_unknown) vec_emit(s, id);
    if (s->buckets > 0) {
        uint64_t h = token_hash(token, len);
        if (s->prev)
            vec_emit(s, s->first_bucket + (int32_t)(llm__rng_mix(s->prev * 0x9e3779b97f4a7c15ULL ^ h) /* all bits of the pair */ % (uint64_t)s->buckets));
        s->prev = h;
    }
    if (s->char_buckets > 0) {
        /* "<token>": the brackets make a word's first and last letters n-grams of their own */
        char w[LLM_TOKEN_MAX_LENGTH + 2];
        w[0] = '<';
        memcpy(w + 1, token, len);
        w[len + 1] = '>';
        const size_t wl = len + 2;
        for (size_t n = (size_t)s->char_min; n <= (size_t)s->char_max && n <= wl; n++)
            for (size_t i = 0; i + n <= wl; i++)
                vec_emit(s, s->first_char_bucket + (int32_t)(llm__rng_mix(token_hash(w + i, n)) % (uint64_t)s->char_buckets));
    }
    return 0;
}

static void reverse(int32_t *a, int64_t n) {
    for (int64_t i = 0, j = n - 1; i < j; i++, j--) {
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

llm_status llm__vectorize(const llm_vocab *v, const char *text, size_t len,
                          const llm_vectorize_options *o, int32_t *out, int64_t *ntokens) {
    int64_t head = o->truncation == LLM_SEQ_PRE ? 0 : o->truncation == LLM_SEQ_POST ? o->seq_len : o->seq_len / 2;
    vec_state s = {v, out, o->seq_len, head, 0, o->bigram_buckets, 0,
                   o->char_ngram_buckets, 0, o->char_ngram_min, o->char_ngram_max, 0, o->skip_unknown, NULL};
    int32_t vsize = 0;
    LLM__CHECK(llm_vocab_size(v, &vsize));
    if (s.buckets > 0) s.first_bucket = vsize;
    s.first_char_bucket = vsize + s.buckets;
    if (o->unique) {
        /* one bit per id of the vocabulary and the buckets (at most 4 MiB) */
        s.seen = llm__calloc(((size_t)vsize + (size_t)s.buckets + (size_t)s.char_buckets + 7) / 8, 1);
        if (!s.seen) return llm__oom(__func__);
    }
    (void)llm__tokenize(text, len, llm__vocab_tokopts(v), vec_token, &s);
    llm__free(s.seen);
    int64_t seq = o->seq_len;
    int64_t m = s.total < seq ? s.total : seq;
    if (head < seq && s.total > seq) {
        /* the ring's oldest id sits at (total - head) % ring: rotate it to the ring's front */
        int64_t ring = seq - head, r = (s.total - head) % ring;
        int32_t *a = out + head;
        reverse(a, r);
        reverse(a + r, ring - r);
        reverse(a, ring);
    }
    if (o->reverse) reverse(out, m);
    if (o->padding == LLM_SEQ_PRE && m < seq) {
        memmove(out + (seq - m), out, (size_t)m * sizeof *out);
        for (int64_t i = 0; i < seq - m; i++) out[i] = LLM_VOCAB_PAD;
    } else {
        for (int64_t i = m; i < seq; i++) out[i] = LLM_VOCAB_PAD;
    }
    if (ntokens) *ntokens = s.total;
    return LLM_OK;
}

llm_status llm_vectorize(const llm_vocab *vocab, const char *text, size_t len,
                         const llm_vectorize_options *opts, int32_t *ids, int64_t ids_count,
                         int64_t *ntokens) {
    if (ntokens) *ntokens = 0;
    if (!vocab) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    if (!text && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but len is %zu", __func__,
                          len);
    if (!ids) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids is NULL", __func__);
    llm_vectorize_options o;
    LLM__CHECK(llm__vectorize_options_resolve(&o, opts, __func__));
    if (ids_count != o.seq_len)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids_count is %lld; it must equal seq_len %d",
                          __func__, (long long)ids_count, (int)o.seq_len);
    return llm__vectorize(vocab, text, len, &o, ids, ntokens);
}
