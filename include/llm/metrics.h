/* libllm: classification metrics.
 *
 * The results struct carries its size as the first field so that fields can
 * be appended in later versions without breaking callers: fill it with
 * llm_metrics_init() before passing it in. */
#ifndef LLM_METRICS_H
#define LLM_METRICS_H

#include "common.h"
#include "status.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_metrics {
    size_t size;        /* sizeof(llm_metrics), set by llm_metrics_init */
    int64_t count;      /* number of examples scored */
    double loss;        /* mean loss (set by llm_model_evaluate; NAN when not computed) */
    double accuracy;
    /* Binary classification, class 1 positive. NAN where undefined (e.g. no
     * positive predictions for precision, or a single class for AUC). */
    double precision;
    double recall;
    double f1;
    double auc;         /* ROC AUC, ties handled by averaging ranks */
    int64_t tp, fp, tn, fn; /* confusion matrix at the threshold */
    double threshold;   /* decision threshold used */
} llm_metrics;

/* Sets every field to its "not computed" value (NAN, 0) and m->size. */
LLM_API void llm_metrics_init(llm_metrics *m);

/* Binary metrics from n scores (probabilities of class 1) and labels (0 or 1):
 * predicted positive iff score >= threshold. Labels other than 0/1 or
 * non-finite scores give LLM_ERR_INVALID_ARGUMENT. m->loss is left as is. */
LLM_API llm_status llm_metrics_binary(const float *scores, const int32_t *labels, int64_t n,
                                      double threshold, llm_metrics *m);

/* ROC AUC alone (Mann-Whitney U with tie-averaged ranks). LLM_ERR_INVALID_ARGUMENT
 * when both classes are not present. */
LLM_API llm_status llm_metrics_roc_auc(const float *scores, const int32_t *labels, int64_t n,
                                       double *auc);

/* Multi-class accuracy from a row-major [n, classes] score matrix (argmax per
 * row, first maximum wins) and labels in [0, classes). */
LLM_API llm_status llm_metrics_accuracy(const float *scores, int64_t n, int64_t classes,
                                        const int32_t *labels, double *accuracy);

/* Writes a human-readable report (metrics and a 2x2 confusion matrix with
 * the given class names, e.g. "ham", "spam") into buf, snprintf-style:
 * *needed gets the full length. */
LLM_API llm_status llm_metrics_format(const llm_metrics *m, const char *negative_name,
                                      const char *positive_name, char *buf, size_t len,
                                      size_t *needed);

LLM_EXTERN_C_END

#endif /* LLM_METRICS_H */
