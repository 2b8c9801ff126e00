/* Ensembles: a model that scores text with several trained models, each
 * through its own text pipeline, and averages their outputs. Saving and
 * loading them is in model_io.c, their summary in model.c. */
#include <stdio.h>
#include "model_internal.h"

llm_status llm__refuse_ensemble(const llm_model *m, const char *fn) {
    if (!m || !m->ensemble) return LLM_OK;
    return llm__error(LLM_ERR_STATE,
                      "%s: the model is an ensemble, which has no layers, weights or training of its own; "
                      "use its members (llm_model_ensemble_member)", fn);
}

llm_status llm_model_ensemble(llm_model **out, llm_backend *be) {
    LLM__CHECK(llm_model_sequential(out, be));
    (*out)->ensemble = 1;
    return LLM_OK;
}

llm_status llm_model_ensemble_add(llm_model *e, llm_model *member) {
    static const char fn[] = "llm_model_ensemble_add";
    if (!e || !member) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, e ? "member" : "ensemble");
    if (!e->ensemble) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the first model is not an ensemble (llm_model_ensemble)", fn);
    if (member->ensemble) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: an ensemble cannot be a member", fn);
    if (member->owner) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model is already a member of an ensemble", fn);
    if (member->be != e->be)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the member runs on another backend than the ensemble", fn);
    if (!member->built || !member->has_pipeline)
        return llm__error(LLM_ERR_STATE, "%s: a member must be built and carry a text pipeline (llm_model_set_text_pipeline)", fn);
    if (e->n_members == LLM_ENSEMBLE_MAX_MEMBERS)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: an ensemble has at most %d members", fn, LLM_ENSEMBLE_MAX_MEMBERS);
    if (e->n_members && member->out_elems != e->members[0]->out_elems)
        return llm__error(LLM_ERR_SHAPE, "%s: the member gives %lld output(s) per text, the ensemble's members %lld", fn,
                          (long long)member->out_elems, (long long)e->members[0]->out_elems);
    llm_model **grown = llm__realloc(e->members, (size_t)(e->n_members + 1) * sizeof *grown);
    if (!grown) return llm__oom(fn);
    e->members = grown;
    e->members[e->n_members++] = member;
    member->owner = e;
    return LLM_OK;
}

llm_status llm_model_ensemble_remove(llm_model *e, int i, llm_model **member) {
    static const char fn[] = "llm_model_ensemble_remove";
    if (member) *member = NULL;
    if (!e || !member) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!e->ensemble) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model is not an ensemble", fn);
    if (i < 0 || i >= e->n_members)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: member %d of %d", fn, i, e->n_members);
    llm_model *m = e->members[i];
    memmove(&e->members[i], &e->members[i + 1], (size_t)(e->n_members - i - 1) * sizeof *e->members);
    e->n_members--;
    m->owner = NULL;
    *member = m;
    return LLM_OK;
}

llm_status llm_model_ensemble_size(const llm_model *m, int *members) {
    if (!m || !members) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_model_ensemble_size: NULL argument");
    *members = m->ensemble ? m->n_members : 0;
    return LLM_OK;
}

llm_status llm_model_ensemble_member(const llm_model *e, int i, llm_model **member) {
    static const char fn[] = "llm_model_ensemble_member";
    if (member) *member = NULL;
    if (!e || !member) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!e->ensemble) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the model is not an ensemble", fn);
    if (i < 0 || i >= e->n_members)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: member %d of %d", fn, i, e->n_members);
    *member = e->members[i];
    return LLM_OK;
}

llm_status llm__ensemble_predict_text(llm_model *m, const char *text, size_t len, float *out, size_t count) {
    static const char fn[] = "llm_model_predict_text";
    if (m->n_members == 0) return llm__error(LLM_ERR_STATE, "%s: the ensemble has no members (llm_model_ensemble_add)", fn);
    if (count != (size_t)m->members[0]->out_elems)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the ensemble gives %lld output(s) per text, out has room for %zu", fn,
                          (long long)m->members[0]->out_elems, count);
    /* classifiers have a handful of outputs; a language model's vocabulary
     * of them is the rare case that allocates */
    enum { SMALL = 16 };
    float one_small[SMALL];
    double sum_small[SMALL];
    float *one = count <= SMALL ? one_small : llm__malloc(count * sizeof *one);
    double *sum = count <= SMALL ? sum_small : llm__calloc(count, sizeof *sum);
    llm_status s = one && sum ? LLM_OK : llm__oom(fn);
    for (size_t j = 0; s == LLM_OK && j < count; j++) sum[j] = 0.0;
    for (int i = 0; s == LLM_OK && i < m->n_members; i++) {
        s = llm_model_predict_text(m->members[i], text, len, one, count);
        for (size_t j = 0; s == LLM_OK && j < count; j++) sum[j] += one[j];
    }
    for (size_t j = 0; s == LLM_OK && j < count; j++) out[j] = (float)(sum[j] / m->n_members);
    if (one != one_small) llm__free(one);
    if (sum != sum_small) llm__free(sum);
    return s;
}

llm_status llm__ensemble_param_count(const llm_model *m, int64_t *count) {
    int64_t total = 0;
    for (int i = 0; i < m->n_members; i++) {
        int64_t n;
        LLM__CHECK(llm_model_param_count(m->members[i], &n));
        total += n;
    }
    *count = total;
    return LLM_OK;
}

void llm__ensemble_release(llm_model *m) {
    for (int i = 0; i < m->n_members; i++) {
        m->members[i]->owner = NULL;
        llm_model_free(m->members[i]);
    }
    llm__free(m->members);
    m->members = NULL;
    m->n_members = 0;
}
