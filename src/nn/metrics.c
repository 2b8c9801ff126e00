/* Classification metrics: confusion matrix, precision/recall/F1, ROC AUC. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/internal.h"
#include "llm/metrics.h"
#include "llm/crossval.h"

void llm_metrics_init(llm_metrics *m) {
    if (!m) return;
    memset(m, 0, sizeof *m);
    m->size = sizeof *m;
    m->count = 0;
    m->loss = NAN;
    m->accuracy = NAN;
    m->precision = NAN;
    m->recall = NAN;
    m->f1 = NAN;
    m->auc = NAN;
    m->tp = m->fp = m->tn = m->fn = 0;
    m->threshold = NAN;
}

/* Every field this version writes must fit in the caller's struct. */
static llm_status check_metrics(const llm_metrics *m, const char *fn) {
    if (!m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: m is NULL", fn);
    if (m->size < sizeof *m)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: m->size is %zu, smaller than this library's llm_metrics (%zu); call "
                          "llm_metrics_init first",
                          fn, m->size, sizeof *m);
    return LLM_OK;
}

static llm_status check_binary_inputs(const float *scores, const int32_t *labels, int64_t n,
                                      const char *fn) {
    if (!scores) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: scores is NULL", fn);
    if (!labels) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: labels is NULL", fn);
    if (n <= 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n is %lld; it must be >= 1", fn,
                          (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] != 0 && labels[i] != 1)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: labels[%lld] is %d; binary labels are 0 or 1",
                              fn, (long long)i, (int)labels[i]);
        if (!isfinite(scores[i]))
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: scores[%lld] is %g; scores must be finite",
                              fn, (long long)i, (double)scores[i]);
    }
    return LLM_OK;
}

typedef struct scored {
    float score;
    int32_t label;
} scored;

static int by_score(const void *a, const void *b) {
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

/* Mann-Whitney U: AUC = (sum of positive ranks - P(P+1)/2) / (P N), tied
 * scores sharing their average rank. Inputs already checked. */
static llm_status auc_of(const float *scores, const int32_t *labels, int64_t n, double *auc,
                         const char *fn) {
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) pos += labels[i];
    int64_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        *auc = NAN;
        return LLM_OK;
    }
    size_t bytes;
    if (!llm__mul_size((size_t)n, sizeof(scored), &bytes))
        return llm__error(LLM_ERR_OVERFLOW, "%s: n = %lld is too large", fn, (long long)n);
    scored *s = llm__malloc(bytes);
    if (!s) return llm__oom(fn);
    for (int64_t i = 0; i < n; i++) s[i] = (scored){scores[i], labels[i]};
    qsort(s, (size_t)n, sizeof *s, by_score);
    double rank_sum = 0.0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        int64_t p = 0;
        while (j < n && s[j].score == s[i].score) p += s[j++].label;
        /* ranks i+1 .. j share (i+1+j)/2 */
        rank_sum += (double)p * ((double)(i + 1) + (double)j) / 2.0;
        i = j;
    }
    llm__free(s);
    double u = rank_sum - (double)pos * ((double)pos + 1.0) / 2.0;
    *auc = u / ((double)pos * (double)neg);
    return LLM_OK;
}

llm_status llm_metrics_binary(const float *scores, const int32_t *labels, int64_t n,
                              double threshold, llm_metrics *m) {
    LLM__CHECK(check_metrics(m, __func__));
    LLM__CHECK(check_binary_inputs(scores, labels, n, __func__));
    if (!isfinite(threshold))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: threshold is %g; it must be finite",
                          __func__, threshold);
    int64_t tp = 0, fp = 0, tn = 0, fn = 0;
    for (int64_t i = 0; i < n; i++) {
        int pred = (double)scores[i] >= threshold;
        if (labels[i]) {
            if (pred) tp++;
            else fn++;
        } else {
            if (pred) fp++;
            else tn++;
        }
    }
    double auc;
    LLM__CHECK(auc_of(scores, labels, n, &auc, __func__));
    m->count = n;
    m->tp = tp;
    m->fp = fp;
    m->tn = tn;
    m->fn = fn;
    m->threshold = threshold;
    m->accuracy = (double)(tp + tn) / (double)n;
    m->precision = tp + fp > 0 ? (double)tp / (double)(tp + fp) : NAN;
    m->recall = tp + fn > 0 ? (double)tp / (double)(tp + fn) : NAN;
    /* 2PR/(P+R) written with counts, so it is 0 rather than undefined when
     * there are positives but none is found */
    m->f1 = 2 * tp + fp + fn > 0 ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : NAN;
    m->auc = auc;
    return LLM_OK;
}

llm_status llm_metrics_roc_auc(const float *scores, const int32_t *labels, int64_t n, double *auc) {
    if (!auc) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: auc is NULL", __func__);
    *auc = NAN;
    LLM__CHECK(check_binary_inputs(scores, labels, n, __func__));
    double a;
    LLM__CHECK(auc_of(scores, labels, n, &a, __func__));
    if (isnan(a))
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: ROC AUC needs both classes, but every label is %d", __func__,
                          (int)labels[0]);
    *auc = a;
    return LLM_OK;
}

llm_status llm_metrics_accuracy(const float *scores, int64_t n, int64_t classes,
                                const int32_t *labels, double *accuracy) {
    if (!accuracy) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: accuracy is NULL", __func__);
    *accuracy = NAN;
    if (!scores) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: scores is NULL", __func__);
    if (!labels) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: labels is NULL", __func__);
    if (n <= 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n is %lld; it must be >= 1", __func__,
                          (long long)n);
    if (classes <= 0 || classes > INT32_MAX)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: classes is %lld; it must be in [1, %d]",
                          __func__, (long long)classes, INT32_MAX);
    if (n > INT64_MAX / classes)
        return llm__error(LLM_ERR_OVERFLOW, "%s: n * classes overflows", __func__);
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= classes)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: labels[%lld] is %d; it must be in [0, %lld)",
                              __func__, (long long)i, (int)labels[i], (long long)classes);
        const float *row = scores + i * classes;
        int64_t best = 0;
        for (int64_t k = 0; k < classes; k++) {
            if (!isfinite(row[k]))
                return llm__error(LLM_ERR_INVALID_ARGUMENT,
                                  "%s: scores[%lld][%lld] is %g; scores must be finite", __func__,
                                  (long long)i, (long long)k, (double)row[k]);
            if (row[k] > row[best]) best = k; /* strict: the first maximum wins */
        }
        correct += best == labels[i];
    }
    *accuracy = (double)correct / (double)n;
    return LLM_OK;
}

/* ------------------------------------------------------------- format */

typedef struct out_buf {
    char *buf;
    size_t len;
    size_t total;
} out_buf;

static void out_printf(out_buf *o, const char *fmt, ...) LLM__PRINTF(2, 3);
static void out_printf(out_buf *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->total < o->len ? o->len - o->total : 0;
    int n = vsnprintf(room ? o->buf + o->total : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) o->total += (size_t)n;
}

static void out_value(out_buf *o, const char *name, double v) {
    if (isnan(v))
        out_printf(o, "%-10s n/a\n", name);
    else
        out_printf(o, "%-10s %.4f\n", name, v);
}

llm_status llm_metrics_format(const llm_metrics *m, const char *negative_name,
                              const char *positive_name, char *buf, size_t len, size_t *needed) {
    if (needed) *needed = 0;
    if (buf && len > 0) buf[0] = '\0';
    LLM__CHECK(check_metrics(m, __func__));
    if (!negative_name)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: negative_name is NULL", __func__);
    if (!positive_name)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: positive_name is NULL", __func__);
    if (!buf && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buf is NULL but len is %zu", __func__,
                          len);
    out_buf o = {buf, len, 0};
    out_printf(&o, "%-10s %lld\n", "count", (long long)m->count);
    out_value(&o, "loss", m->loss);
    out_value(&o, "accuracy", m->accuracy);
    out_value(&o, "precision", m->precision);
    out_value(&o, "recall", m->recall);
    out_value(&o, "f1", m->f1);
    out_value(&o, "auc", m->auc);
    out_value(&o, "threshold", m->threshold);
    /* the 2x2 matrix: rows are the true class, columns the predicted one */
    char cells[4][24];
    snprintf(cells[0], sizeof cells[0], "%lld", (long long)m->tn);
    snprintf(cells[1], sizeof cells[1], "%lld", (long long)m->fp);
    snprintf(cells[2], sizeof cells[2], "%lld", (long long)m->fn);
    snprintf(cells[3], sizeof cells[3], "%lld", (long long)m->tp);
    int w0 = (int)strlen("true \\ predicted");
    int wn = (int)strlen(negative_name), wp = (int)strlen(positive_name);
    if (wn > w0) w0 = wn;
    if (wp > w0) w0 = wp;
    int w1 = wn, w2 = wp;
    if ((int)strlen(cells[0]) > w1) w1 = (int)strlen(cells[0]);
    if ((int)strlen(cells[2]) > w1) w1 = (int)strlen(cells[2]);
    if ((int)strlen(cells[1]) > w2) w2 = (int)strlen(cells[1]);
    if ((int)strlen(cells[3]) > w2) w2 = (int)strlen(cells[3]);
    out_printf(&o, "%-*s  %*s  %*s\n", w0, "true \\ predicted", w1, negative_name, w2, positive_name);
    out_printf(&o, "%-*s  %*s  %*s\n", w0, negative_name, w1, cells[0], w2, cells[1]);
    out_printf(&o, "%-*s  %*s  %*s\n", w0, positive_name, w1, cells[2], w2, cells[3]);
    if (needed) *needed = o.total;
    return LLM_OK;
}

/* ------------------------------------------------ over several runs */

#include <stddef.h>

/* Mean and sample sd of one double field over n metrics, two passes (one
 * pass loses the sd of near-equal values to rounding); NAN if any is NAN. */
static void field_mean_sd(const llm_metrics *per, int64_t n, size_t off, double *mean, double *sd) {
    double sum = 0, dev = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&per[i] + off);
        if (isnan(v)) { *mean = *sd = NAN; return; }
        sum += v;
    }
    double m = sum / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = *(const double *)((const char *)&per[i] + off) - m;
        dev += d * d;
    }
    *mean = m;
    *sd = n > 1 ? sqrt(dev / (double)(n - 1)) : 0.0;
}

llm_status llm_metrics_mean_sd(const llm_metrics *per, int64_t n, llm_metrics *mean, llm_metrics *sd) {
    static const char fn[] = "llm_metrics_mean_sd";
    if (!per) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: per is NULL", fn);
    if (n < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n is %lld; it must be >= 1", fn, (long long)n);
    LLM__CHECK(check_metrics(mean, fn));
    LLM__CHECK(check_metrics(sd, fn));
    static const size_t fields[] = {
        offsetof(llm_metrics, loss), offsetof(llm_metrics, accuracy), offsetof(llm_metrics, precision),
        offsetof(llm_metrics, recall), offsetof(llm_metrics, f1), offsetof(llm_metrics, auc),
        offsetof(llm_metrics, threshold),
    };
    llm_metrics_init(mean);
    llm_metrics_init(sd);
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        field_mean_sd(per, n, fields[k], (double *)((char *)mean + fields[k]), (double *)((char *)sd + fields[k]));
    for (int64_t i = 0; i < n; i++) {
        mean->count += per[i].count;
        mean->tp += per[i].tp;
        mean->fp += per[i].fp;
        mean->tn += per[i].tn;
        mean->fn += per[i].fn;
    }
    return LLM_OK;
}
