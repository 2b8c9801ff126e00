/* Naive-Bayes log-count ratios of token ids (Wang & Manning 2012, NBSVM):
 * how much more often an id occurs in positive than in negative texts. */
#include <math.h>
#include "text/text_internal.h"

llm_status llm_dataset_nb_ratios(const llm_dataset *ds, int32_t seq_len, int32_t ids, float alpha, float *r) {
    static const char fn[] = "llm_dataset_nb_ratios";
    if (!ds || !r) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (seq_len < 1 || ids < 2 || !(alpha > 0) || !isfinite(alpha))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len %d, ids %d, alpha %g: need >= 1, >= 2, > 0", fn,
                          (int)seq_len, (int)ids, (double)alpha);
    int64_t n;
    LLM__CHECK(llm_dataset_size(ds, &n));
    double *count[2];
    count[0] = llm__calloc((size_t)ids, sizeof(double));
    count[1] = llm__calloc((size_t)ids, sizeof(double));
    int64_t *last = llm__malloc((size_t)ids * sizeof *last); /* the last row that counted an id */
    int32_t *row = llm__malloc((size_t)seq_len * sizeof *row);
    llm_status s = count[0] && count[1] && last && row ? LLM_OK : llm__oom(fn);
    for (int32_t i = 0; s == LLM_OK && i < ids; i++) last[i] = -1;
    for (int64_t k = 0; s == LLM_OK && k < n; k++) {
        int32_t y;
        s = llm_dataset_get(ds, k, row, (size_t)seq_len * sizeof *row, &y, sizeof y);
        if (s == LLM_OK && y != 0 && y != 1)
            s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: label %d of row %lld is not 0 or 1", fn, (int)y, (long long)k);
        for (int32_t t = 0; s == LLM_OK && t < seq_len; t++) {
            int32_t id = row[t];
            if (id < 0 || id >= ids) {
                s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: id %d in row %lld is outside [0, %d)", fn, (int)id,
                               (long long)k, (int)ids);
            } else if (last[id] != k) { /* a row counts an id once: presence, not frequency */
                last[id] = k;
                count[y][id] += 1;
            }
        }
    }
    if (s == LLM_OK) {
        double total[2] = { 0, 0 };
        for (int c = 0; c < 2; c++)
            for (int32_t i = 1; i < ids; i++) total[c] += count[c][i] + alpha;
        r[0] = 0; /* padding */
        for (int32_t i = 1; i < ids; i++)
            r[i] = (float)(log((count[1][i] + alpha) / total[1]) - log((count[0][i] + alpha) / total[0]));
    }
    llm__free(count[0]);
    llm__free(count[1]);
    llm__free(last);
    llm__free(row);
    return s;
}
