/* K-fold cross-validation: a model factory trained on K - 1 folds, scored
 * on the one left out, for every fold (and repeat). */
#include <math.h>
#include <stdlib.h>
#include "core/internal.h"
#include "core/rng.h"
#include "llm/crossval.h"

struct llm_cv_result {
    int32_t folds, repeats;
    int64_t count;         /* texts in the corpus */
    llm_cv_fold *fold;     /* [repeats * folds] */
    llm_metrics *metrics;  /* [repeats * folds] */
    float *scores;         /* [repeats * count] out-of-fold probabilities */
    int32_t *fold_of;      /* [repeats * count] */
};

void llm_cv_options_init(llm_cv_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->folds = 5;
    opts->repeats = 1;
    opts->seed = 1;
    opts->threshold = -1;
}

void llm_cv_result_free(llm_cv_result *r) {
    if (!r) return;
    llm__free(r->fold);
    llm__free(r->metrics);
    llm__free(r->scores);
    llm__free(r->fold_of);
    llm__free(r);
}

/* Run 0 keeps the caller's seed, so one repeat is exactly llm_text_corpus_folds(seed). */
static uint64_t repeat_seed(uint64_t seed, int32_t repeat) {
    return repeat == 0 ? seed : llm__rng_derive(seed, 0xc5000000ULL + (uint64_t)repeat);
}

/* The threshold the fold's metrics use: the caller's, else the model's own. */
static double model_threshold(const llm_model *m, double asked) {
    if (asked >= 0) return asked;
    const char *v = NULL;
    if (llm_model_get_metadata(m, "threshold", &v) != LLM_OK) {
        llm_clear_error(); /* no stored threshold is the usual case, not an error */
        return 0.5;
    }
    char *end = NULL;
    double t = strtod(v, &end);
    return end != v && *end == '\0' && t >= 0 && t <= 1 ? t : 0.5;
}

/* Trains on every fold but one and scores that one into scores[] (corpus order). */
static llm_status run_fold(const llm_text_corpus *corpus, const llm_cv_options *o, const int32_t *fold_of,
                           llm_cv_fold *info, float *scores, llm_metrics *m, const char *fn) {
    llm_text_corpus *train = NULL, *test = NULL;
    llm_model *model = NULL;
    float *test_scores = NULL;
    int32_t *test_labels = NULL;
    llm_status s = llm_text_corpus_fold_split(corpus, fold_of, info->fold, &train, &test);
    if (s == LLM_OK) s = llm_text_corpus_count(train, &info->train_count);
    if (s == LLM_OK) s = llm_text_corpus_count(test, &info->test_count);
    if (s == LLM_OK) {
        s = o->train(&model, train, info, o->user);
        if (s == LLM_OK && !model)
            s = llm__error(LLM_ERR_STATE, "%s: the model factory returned LLM_OK but no model (fold %d)", fn,
                           (int)info->fold);
    }
    /* the training part goes before scoring: the factory may not keep it */
    llm_text_corpus_free(train);
    int64_t n = info->test_count;
    if (s == LLM_OK) {
        test_scores = llm__malloc((size_t)n * sizeof *test_scores);
        test_labels = llm__malloc((size_t)n * sizeof *test_labels);
        if (!test_scores || !test_labels) s = llm__oom(fn);
    }
    for (int64_t i = 0; i < n && s == LLM_OK; i++) {
        const char *text;
        size_t len;
        s = llm_text_corpus_text(test, i, &text, &len);
        if (s == LLM_OK) s = llm_text_corpus_label(test, i, &test_labels[i]);
        if (s == LLM_OK) s = llm_model_predict_text(model, text, len, &test_scores[i], 1);
    }
    if (s == LLM_OK) s = llm_metrics_binary(test_scores, test_labels, n, model_threshold(model, o->threshold), m);
    /* back into corpus order: the test part keeps it, fold by fold */
    for (int64_t i = 0, j = 0; s == LLM_OK && j < n; i++)
        if (fold_of[i] == info->fold) scores[i] = test_scores[j++];
    llm_model_free(model);
    llm_text_corpus_free(test);
    llm__free(test_scores);
    llm__free(test_labels);
    return s;
}

llm_status llm_cross_validate(const llm_text_corpus *corpus, const llm_cv_options *opts, llm_cv_result **out) {
    static const char fn[] = "llm_cross_validate";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!corpus) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: corpus is NULL", fn);
    llm_cv_options o;
    llm_cv_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    if (!o.train) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: no model factory (opts->train is NULL)", fn);
    if (o.folds < 2)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %d folds; cross-validation needs at least 2", fn, (int)o.folds);
    if (o.repeats < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %d repeats; it must be >= 1", fn, (int)o.repeats);
    if (o.threshold > 1 || isnan(o.threshold))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: threshold %g is not in [0, 1] (or < 0 for the model's)", fn,
                          o.threshold);
    int32_t classes = 0;
    int64_t n = 0;
    LLM__CHECK(llm_text_corpus_num_classes(corpus, &classes));
    LLM__CHECK(llm_text_corpus_count(corpus, &n));
    if (classes != 2)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the corpus has %d classes; binary cross-validation needs 2", fn,
                          (int)classes);
    if (n < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the corpus is empty", fn);
    if ((size_t)o.repeats > SIZE_MAX / sizeof(float) / (size_t)n / (size_t)o.folds)
        return llm__error(LLM_ERR_OVERFLOW, "%s: %d repeats of %lld texts overflow", fn, (int)o.repeats, (long long)n);
    llm_cv_result *r = llm__calloc(1, sizeof *r);
    size_t runs = (size_t)o.repeats * (size_t)o.folds, cells = (size_t)o.repeats * (size_t)n;
    if (r) {
        r->folds = o.folds;
        r->repeats = o.repeats;
        r->count = n;
        r->fold = llm__calloc(runs, sizeof *r->fold);
        r->metrics = llm__calloc(runs, sizeof *r->metrics);
        r->scores = llm__calloc(cells, sizeof *r->scores);
        r->fold_of = llm__calloc(cells, sizeof *r->fold_of);
    }
    llm_status s = r && r->fold && r->metrics && r->scores && r->fold_of ? LLM_OK : llm__oom(fn);
    for (int32_t rep = 0; rep < o.repeats && s == LLM_OK; rep++) {
        int32_t *fold_of = r->fold_of + (size_t)rep * (size_t)n;
        s = llm_text_corpus_folds(corpus, o.folds, repeat_seed(o.seed, rep), fold_of, n);
        for (int32_t k = 0; k < o.folds && s == LLM_OK; k++) {
            size_t at = (size_t)rep * (size_t)o.folds + (size_t)k;
            llm_cv_fold *info = &r->fold[at];
            *info = (llm_cv_fold){ .size = sizeof *info, .repeat = rep, .fold = k, .repeats = o.repeats, .folds = o.folds };
            llm_metrics_init(&r->metrics[at]);
            s = run_fold(corpus, &o, fold_of, info, r->scores + (size_t)rep * (size_t)n, &r->metrics[at], fn);
            if (s == LLM_OK && o.on_fold && o.on_fold(info, &r->metrics[at], o.user))
                s = llm__error(LLM_ERR_CANCELLED, "%s: stopped by on_fold after fold %d of repeat %d", fn, (int)k,
                               (int)rep);
        }
    }
    if (s != LLM_OK) {
        llm_cv_result_free(r);
        return s;
    }
    *out = r;
    return LLM_OK;
}

llm_status llm_cv_result_count(const llm_cv_result *r, int32_t *count) {
    if (!r || !count) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_cv_result_count: NULL argument");
    *count = r->repeats * r->folds;
    return LLM_OK;
}

llm_status llm_cv_result_fold(const llm_cv_result *r, int32_t i, llm_cv_fold *fold, llm_metrics *metrics) {
    static const char fn[] = "llm_cv_result_fold";
    if (!r || !metrics) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (i < 0 || i >= r->repeats * r->folds)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: fold %d is outside [0, %d)", fn, (int)i,
                          (int)(r->repeats * r->folds));
    if (metrics->size < sizeof *metrics || (fold && fold->size < sizeof *fold))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: set the structs' size first (llm_metrics_init)", fn);
    *metrics = r->metrics[i];
    if (fold) *fold = r->fold[i];
    return LLM_OK;
}

llm_status llm_cv_result_summary(const llm_cv_result *r, llm_metrics *mean, llm_metrics *sd) {
    if (!r) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_cv_result_summary: r is NULL");
    return llm_metrics_mean_sd(r->metrics, (int64_t)r->repeats * r->folds, mean, sd);
}

llm_status llm_cv_result_scores(const llm_cv_result *r, int32_t repeat, const float **scores, const int32_t **fold_of,
                                int64_t *count) {
    static const char fn[] = "llm_cv_result_scores";
    if (!r) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: r is NULL", fn);
    if (repeat < 0 || repeat >= r->repeats)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: repeat %d is outside [0, %d)", fn, (int)repeat, (int)r->repeats);
    if (scores) *scores = r->scores + (size_t)repeat * (size_t)r->count;
    if (fold_of) *fold_of = r->fold_of + (size_t)repeat * (size_t)r->count;
    if (count) *count = r->count;
    return LLM_OK;
}
