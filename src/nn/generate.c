/* Sampling (temperature, top-k, top-p) and the generation loop. */
#include <math.h>
#include <stdlib.h>
#include "model_internal.h"
#include "../core/rng.h"
#include "llm/generate.h"

void llm_generate_options_init(llm_generate_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->max_tokens = 100;
    o->temperature = 1.0f;
    o->top_k = 0;
    o->top_p = 1.0f;
    o->seed = 1;
    o->stop_token = -1;
}

static llm_status check_options(const llm_generate_options *o, const char *fn) {
    if (!(o->temperature >= 0.0f && o->temperature < 1e6f))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: temperature = %g must be finite and >= 0", fn, (double)o->temperature);
    if (o->top_k < 0) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: top_k = %d must be >= 0", fn, (int)o->top_k);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: top_p = %g must be in (0, 1]", fn, (double)o->top_p);
    if (o->max_tokens < 0) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: max_tokens must be >= 0", fn);
    return LLM_OK;
}

typedef struct cand { float logit; int32_t id; } cand;

/* Descending by logit, then ascending id: a total order, so ties are deterministic. */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* scratch: vocab candidates */
static llm_status sample(const float *logits, int64_t V, const llm_generate_options *o, uint64_t *counter,
                         cand *c, int32_t *token) {
    int64_t best = 0;
    for (int64_t i = 0; i < V; i++) {
        if (!isfinite(logits[i]) && !(isinf(logits[i]) && logits[i] < 0))
            return llm__error(LLM_ERR_NUMERIC, "llm_sample_token: logit %lld is %g", (long long)i, (double)logits[i]);
        if (logits[i] > logits[best]) best = i;
    }
    if (isinf(logits[best]))
        return llm__error(LLM_ERR_NUMERIC, "llm_sample_token: every logit is -infinity");
    uint64_t draw = (*counter)++;
    if (o->temperature == 0.0f || V == 1) { *token = (int32_t)best; return LLM_OK; }
    for (int64_t i = 0; i < V; i++) c[i] = (cand){ logits[i] / o->temperature, (int32_t)i };
    qsort(c, (size_t)V, sizeof *c, cand_cmp);
    int64_t keep = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    /* probabilities (unnormalised, stable) of the kept candidates */
    double total = 0.0;
    float top = c[0].logit;
    for (int64_t i = 0; i < keep; i++) total += exp((double)(c[i].logit - top));
    if (o->top_p < 1.0f) {
        double cum = 0.0;
        int64_t k = 0;
        while (k < keep) {
            cum += exp((double)(c[k].logit - top)) / total;
            k++;
            if (cum >= (double)o->top_p) break;
        }
        keep = k;
        total = 0.0;
        for (int64_t i = 0; i < keep; i++) total += exp((double)(c[i].logit - top));
    }
    double u = (double)llm__rng_uniform(o->seed, draw) * total, acc = 0.0;
    for (int64_t i = 0; i < keep; i++) {
        acc += exp((double)(c[i].logit - top));
        if (u < acc) { *token = c[i].id; return LLM_OK; }
    }
    *token = c[keep - 1].id;
    return LLM_OK;
}

llm_status llm_sample_token(const float *logits, int64_t V, const llm_generate_options *opts, uint64_t *counter,
                            int32_t *token) {
    static const char fn[] = "llm_sample_token";
    if (!logits || !opts || !counter || !token) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (V < 1 || V > INT32_MAX) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab = %lld", fn, (long long)V);
    llm_generate_options o;
    llm_generate_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    LLM__CHECK(check_options(&o, fn));
    cand *c = llm__malloc((size_t)V * sizeof *c);
    if (!c) return llm__oom(fn);
    llm_status s = sample(logits, V, &o, counter, c, token);
    llm__free(c);
    return s;
}

llm_status llm_model_generate(llm_model *m, const int32_t *prompt, int64_t n_prompt, const llm_generate_options *opts,
                              int32_t *out, int64_t cap, int64_t *n_out) {
    static const char fn[] = "llm_model_generate";
    if (!m || !prompt || !opts || !n_out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *n_out = 0;
    if (n_prompt < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the prompt needs at least one token", fn);
    if (cap < 0 || (cap > 0 && !out)) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bad output buffer", fn);
    llm_generate_options o;
    llm_generate_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    LLM__CHECK(check_options(&o, fn));
    if (out && cap < o.max_tokens)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out holds %lld tokens but max_tokens is %lld", fn,
                          (long long)cap, (long long)o.max_tokens);
    llm_decoder *d;
    LLM__CHECK(llm_decoder_create(&d, m));
    int64_t V;
    llm_decoder_vocab_size(d, &V);
    float *logits = llm__malloc((size_t)V * sizeof *logits);
    cand *c = llm__malloc((size_t)V * sizeof *c);
    llm_status s = logits && c ? llm_decoder_feed(d, prompt, n_prompt, logits) : llm__oom(fn);
    uint64_t counter = 0;
    for (int64_t i = 0; s == LLM_OK && i < o.max_tokens; i++) {
        int32_t tok;
        s = sample(logits, V, &o, &counter, c, &tok);
        if (s != LLM_OK) break;
        if (out) out[i] = tok;
        *n_out = i + 1;
        if (o.on_token && o.on_token(tok, o.user)) break;
        if (tok == o.stop_token || i + 1 == o.max_tokens) break;
        s = llm_decoder_feed(d, &tok, 1, logits);
    }
    llm__free(c);
    llm__free(logits);
    llm_decoder_free(d);
    return s;
}
