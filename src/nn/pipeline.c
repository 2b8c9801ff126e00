/* The text pipeline a model carries (vocabulary, vectorizer and e-mail
 * settings), string metadata, and scoring of raw text. */
#include <stdio.h>
#include "model_internal.h"
#include "text/text_internal.h"

/* A dataset of the corpus's texts as rows of seq_len ids, encoded with the
 * word vocabulary or (vocab NULL) the BPE tokenizer, and its labels. */
static llm_status dataset_from_corpus(llm_dataset **out, const llm_text_corpus *corpus, const llm_vocab *vocab,
                                      const llm_bpe *bpe, const llm_vectorize_options *vectorize, const char *fn) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!corpus || (!vocab && !bpe))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, corpus ? (vocab ? "bpe" : "vocab") : "corpus");
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    LLM__CHECK(LLM__OPTIONS_MERGE(&vo, vectorize, fn));
    int64_t n;
    LLM__CHECK(llm_text_corpus_count(corpus, &n));
    if (n < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the corpus is empty", fn);
    if (vo.seq_len < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len = %d must be >= 1", fn, vo.seq_len);
    size_t cells;
    if (!llm__mul_size((size_t)n, (size_t)vo.seq_len, &cells) || cells > SIZE_MAX / 4)
        return llm__error(LLM_ERR_OVERFLOW, "%s: %lld x %d ids overflow", fn, (long long)n, vo.seq_len);
    int32_t *ids = llm__malloc(cells * 4), *labels = llm__malloc((size_t)n * 4);
    llm_status s = ids && labels ? LLM_OK : llm__oom(fn);
    if (s == LLM_OK && vocab) s = llm_text_corpus_vectorize(corpus, vocab, &vo, ids, (int64_t)cells, labels, NULL, n);
    for (int64_t i = 0; s == LLM_OK && !vocab && i < n; i++) {
        const char *text;
        size_t len;
        s = llm_text_corpus_text(corpus, i, &text, &len);
        if (s == LLM_OK) s = llm_bpe_vectorize(bpe, text, len, &vo, ids + i * vo.seq_len, vo.seq_len, NULL);
        if (s == LLM_OK) s = llm_text_corpus_label(corpus, i, &labels[i]);
    }
    if (s == LLM_OK)
        s = llm_dataset_from_host(out, LLM_DTYPE_I32, 2, (int64_t[]){n, vo.seq_len}, ids, LLM_DTYPE_I32, 1,
                                  (int64_t[]){n}, labels);
    llm__free(ids);
    llm__free(labels);
    return s;
}

llm_status llm_dataset_from_corpus(llm_dataset **out, const llm_text_corpus *corpus, const llm_vocab *vocab,
                                   const llm_vectorize_options *vectorize) {
    if (!vocab && out) *out = NULL;
    if (!vocab) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dataset_from_corpus: %s is NULL", corpus ? "vocab" : "corpus");
    return dataset_from_corpus(out, corpus, vocab, NULL, vectorize, "llm_dataset_from_corpus");
}

llm_status llm_dataset_from_corpus_bpe(llm_dataset **out, const llm_text_corpus *corpus, const llm_bpe *bpe,
                                       const llm_vectorize_options *vectorize) {
    if (!bpe && out) *out = NULL;
    if (!bpe) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_dataset_from_corpus_bpe: %s is NULL", corpus ? "bpe" : "corpus");
    return dataset_from_corpus(out, corpus, NULL, bpe, vectorize, "llm_dataset_from_corpus_bpe");
}

void llm__model_release_pipeline(llm_model *m) {
    llm_vocab_free(m->vocab);
    m->vocab = NULL;
    llm_bpe_free(m->bpe);
    m->bpe = NULL;
    m->has_pipeline = 0;
    llm__free(m->email_headers);
    m->email_headers = NULL;
    for (int i = 0; i < m->n_meta; i++) { llm__free(m->meta_keys[i]); llm__free(m->meta_values[i]); }
    llm__free(m->meta_keys);
    llm__free(m->meta_values);
    m->meta_keys = m->meta_values = NULL;
    m->n_meta = m->cap_meta = 0;
}

/* Every id the text pipeline can produce must be one the first layer reads. */
static llm_status check_vocab_fits(const llm_model *m, int32_t vsize, const char *what, const char *fn) {
    int64_t reads = m->n_layers > 0 ? llm__layer_input_vocab(m->layers[0]) : 0;
    if (reads > 0 && reads < vsize)
        return llm__error(LLM_ERR_SHAPE, "%s: the %s has %d ids but the embedding only %lld", fn, what, vsize,
                          (long long)reads);
    return LLM_OK;
}

static llm_status copy_vocab(const llm_vocab *v, llm_vocab **out) {
    size_t need;
    LLM__CHECK(llm_vocab_serialize(v, NULL, 0, &need));
    char *buf = llm__malloc(need + 1);
    if (!buf) return llm__oom("llm_model_set_text_pipeline");
    llm_status s = llm_vocab_serialize(v, buf, need + 1, &need);
    if (s == LLM_OK) s = llm_vocab_deserialize(out, buf, need);
    llm__free(buf);
    return s;
}

llm_status llm_model_set_text_pipeline(llm_model *m, const llm_vocab *vocab, const llm_vectorize_options *vectorize,
                                       const llm_email_options *email) {
    static const char fn[] = "llm_model_set_text_pipeline";
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (!vocab && !m->bpe)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL and the model has no BPE tokenizer", fn);
    llm_vectorize_options vo; /* the ranges every vectorizer checks, then what a pipeline adds */
    LLM__CHECK(llm__vectorize_options_resolve(&vo, vectorize, fn));
    if (vo.seq_len > (1 << 24))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len = %d must be in [1, 2^24]", fn, vo.seq_len);
    if (!vocab && llm__vectorize_options_word_only(&vo))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s are for word vocabularies, not a BPE tokenizer", fn,
                          LLM__VECTORIZE_WORD_ONLY);
    llm_email_options eo;
    llm_email_options_init(&eo);
    if (email) LLM__CHECK(LLM__OPTIONS_MERGE(&eo, email, fn));
    if (m->topo.n_inputs > 1)
        return llm__error(LLM_ERR_SHAPE, "%s: the model has %d inputs; a text pipeline feeds a model whose one input is token ids",
                          fn, m->topo.n_inputs);
    if (m->topo.functional && !m->built) { /* its input is declared: check it now */
        const llm__shape *in = m->topo.n_inputs ? &m->topo.inputs[0]->shape : NULL;
        if (!in || in->dtype != LLM_DTYPE_I32 || in->ndim != 1 || in->d[0] != vo.seq_len)
            return llm__error(LLM_ERR_SHAPE, "%s: the model takes other input than int32 ids [%d]", fn, vo.seq_len);
    }
    if (m->built && (m->in_shape.dtype != LLM_DTYPE_I32 || m->in_shape.ndim != 1 || m->in_shape.d[0] != vo.seq_len))
        return llm__error(LLM_ERR_SHAPE, "%s: the model takes other input than int32 ids [%d]", fn, vo.seq_len);
    int32_t vsize;
    LLM__CHECK(vocab ? llm_vocab_size(vocab, &vsize) : llm_bpe_vocab_size(m->bpe, &vsize));
    LLM__CHECK(check_vocab_fits(m, vsize + vo.bigram_buckets + vo.char_ngram_buckets, vocab ? "vocabulary (with its buckets)" : "tokenizer", fn));
    llm_vocab *copy = NULL;
    if (vocab) LLM__CHECK(copy_vocab(vocab, &copy));
    char *headers = NULL;
    if (email && eo.keep_headers && !(headers = llm__strdup(eo.keep_headers))) { llm_vocab_free(copy); return llm__oom(fn); }
    llm_vocab_free(m->vocab);
    llm__free(m->email_headers);
    m->vocab = copy;
    m->has_pipeline = 1;
    m->vectorize = vo;
    m->has_email = email != NULL;
    m->email = eo;
    m->email.keep_headers = headers;
    m->email_headers = headers;
    return LLM_OK;
}

llm_status llm_model_set_tokenizer(llm_model *m, const llm_bpe *bpe) {
    static const char fn[] = "llm_model_set_tokenizer";
    if (!m || !bpe) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    int32_t vsize;
    LLM__CHECK(llm_bpe_vocab_size(bpe, &vsize));
    LLM__CHECK(check_vocab_fits(m, vsize, "tokenizer", fn));
    size_t need;
    LLM__CHECK(llm_bpe_serialize(bpe, NULL, 0, &need));
    char *buf = llm__malloc(need + 1);
    if (!buf) return llm__oom(fn);
    llm_bpe *copy = NULL;
    llm_status s = llm_bpe_serialize(bpe, buf, need + 1, &need);
    if (s == LLM_OK) s = llm_bpe_deserialize(&copy, buf, need);
    llm__free(buf);
    if (s != LLM_OK) return s;
    llm_bpe_free(m->bpe);
    m->bpe = copy;
    return LLM_OK;
}

llm_status llm_model_tokenizer(const llm_model *m, const llm_bpe **bpe) {
    if (!m || !bpe) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_tokenizer: NULL argument");
    if (!m->bpe) return llm__error(LLM_ERR_STATE, "llm_model_tokenizer: the model has no BPE tokenizer");
    *bpe = m->bpe;
    return LLM_OK;
}

llm_status llm_model_vocab(const llm_model *m, const llm_vocab **vocab) {
    if (!m || !vocab) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_vocab: NULL argument");
    if (!m->vocab) return llm__error(LLM_ERR_STATE, "llm_model_vocab: the model has no text pipeline");
    *vocab = m->vocab;
    return LLM_OK;
}

llm_status llm_model_predict_text(llm_model *m, const char *text, size_t len, float *out, size_t count) {
    static const char fn[] = "llm_model_predict_text";
    if (!m || (!text && len) || !out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (m->ensemble) return llm__ensemble_predict_text(m, text, len, out, count);
    if (!m->has_pipeline) return llm__error(LLM_ERR_STATE, "%s: the model has no text pipeline (llm_model_set_text_pipeline)", fn);
    int64_t shape[2] = { 1, m->vectorize.seq_len };
    LLM__CHECK(llm__model_ensure_built_locked(m, LLM_DTYPE_I32, 2, shape, fn));
    if (count != (size_t)m->out_elems)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model gives %lld output(s) per text, out has room for %zu", fn,
                          (long long)m->out_elems, count);
    char *parsed = NULL;
    size_t plen = 0;
    const char *src = text ? text : "";
    if (m->has_email) {
        LLM__CHECK(llm_email_parse(src, len, &m->email, &parsed, &plen));
        src = parsed;
        len = plen;
    }
    llm__infer_ctx *c = NULL;
    int64_t ntok;
    llm_status s = llm__infer_acquire(m, 1, &c);
    if (s == LLM_OK)
        s = m->vocab ? llm_vectorize(m->vocab, src, len, &m->vectorize, c->hx, m->vectorize.seq_len, &ntok)
                     : llm_bpe_vectorize(m->bpe, src, len, &m->vectorize, c->hx, m->vectorize.seq_len, &ntok);
    llm_text_free(parsed);
    if (s == LLM_OK) s = llm__model_check_inputs(m, c->hx, 1, fn);
    if (s == LLM_OK) s = llm__infer_run(m, c, 1);
    if (s == LLM_OK) memcpy(out, c->hout, count * 4);
    if (c) llm__infer_release(m, c);
    return s;
}

static int valid_key(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x20 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\') return 0;
    return 1;
}

llm_status llm_model_set_metadata(llm_model *m, const char *key, const char *value) {
    static const char fn[] = "llm_model_set_metadata";
    if (!m || !key) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!valid_key(key))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: key must be 1-64 printable ASCII bytes without '\"' or '\\\\'", fn);
    /* the file's own entries: "format" names the file type for every safetensors reader */
    if (strncmp(key, "libllm.", 7) == 0 || strcmp(key, "format") == 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: 'format' and keys starting with 'libllm.' are reserved", fn);
    int i = 0;
    while (i < m->n_meta && strcmp(m->meta_keys[i], key) != 0) i++;
    if (!value) {
        if (i == m->n_meta) return LLM_OK;
        llm__free(m->meta_keys[i]);
        llm__free(m->meta_values[i]);
        m->n_meta--;
        m->meta_keys[i] = m->meta_keys[m->n_meta];
        m->meta_values[i] = m->meta_values[m->n_meta];
        return LLM_OK;
    }
    char *v = llm__strdup(value);
    if (!v) return llm__oom(fn);
    if (i < m->n_meta) {
        llm__free(m->meta_values[i]);
        m->meta_values[i] = v;
        return LLM_OK;
    }
    if (m->n_meta == m->cap_meta) {
        int cap = m->cap_meta ? 2 * m->cap_meta : 8;
        char **k2 = llm__realloc(m->meta_keys, (size_t)cap * sizeof *k2);
        if (k2) m->meta_keys = k2;
        char **v2 = k2 ? llm__realloc(m->meta_values, (size_t)cap * sizeof *v2) : NULL;
        if (!v2) { llm__free(v); return llm__oom(fn); }
        m->meta_values = v2;
        m->cap_meta = cap;
    }
    char *k = llm__strdup(key);
    if (!k) { llm__free(v); return llm__oom(fn); }
    m->meta_keys[m->n_meta] = k;
    m->meta_values[m->n_meta] = v;
    m->n_meta++;
    return LLM_OK;
}

llm_status llm_model_get_metadata(const llm_model *m, const char *key, const char **value) {
    static const char fn[] = "llm_model_get_metadata";
    if (!m || !key || !value) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_keys[i], key) == 0) { *value = m->meta_values[i]; return LLM_OK; }
    return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: no metadata key '%s'", fn, key);
}
