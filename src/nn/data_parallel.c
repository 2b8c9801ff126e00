/* Data-parallel training over a gradient exchange (docs/DISTRIBUTED.md):
 * what llm_model_fit does with fit_options.dist, and the llm_dist_* calls
 * for a training loop of the caller's own.
 *
 * Every rank holds the whole model and the whole dataset and runs the same
 * loop as a single process: the same shuffle (from the seed), the same
 * global batches of batch_size rows. Rank r takes its contiguous slice of
 * each global batch (llm__exchange_slice), computes the mean-loss gradient
 * of its rows, scales it by rows_r / rows_global, and one sum over the
 * whole contiguous gradient buffer m->gw gives every rank the gradient of
 * the mean loss over the global batch, as one process would compute it.
 * The optimizer step (non-finite check, clipping by the global norm,
 * update) then runs after the sum on identical inputs, so the weights stay
 * identical everywhere. One sum per step, after the whole backward pass: no
 * bucketing, no overlap with backward.
 *
 * Before that sum, a small one (doubles) carries the batch's loss and
 * correct predictions (so every rank reports global figures) and whether
 * any rank failed locally (non-finite loss, bad input): then every rank
 * fails, none hangs. */
#include <math.h>
#include <stdio.h>
#include "../core/internal.h"
#include "data_parallel.h"

/* rank 0's weights and, when there are some, optimizer moments */
static llm_status broadcast_state(const llm__grad_exchange *ex, llm_model *m, const char *fn) {
    char what[160];
    llm__exchange_what(ex, what, sizeof what, "%s: broadcast of the weights from rank 0", fn);
    LLM__CHECK(ex->broadcast_f32(ex->ctx, m->be, m->w, m->n_scalars, what));
    if (m->m1 && m->m2) {
        llm__exchange_what(ex, what, sizeof what, "%s: broadcast of the optimizer state from rank 0", fn);
        LLM__CHECK(ex->broadcast_f32(ex->ctx, m->be, m->m1, m->n_scalars, what));
        LLM__CHECK(ex->broadcast_f32(ex->ctx, m->be, m->m2, m->n_scalars, what));
    }
    return LLM_OK;
}

/* A fingerprint of a dataset: its size and up to 64 evenly spaced examples. */
static uint64_t data_hash(const llm_dataset *ds) {
    uint64_t h = llm__fnv1a(LLM__FNV1A_INIT, &ds->n, sizeof ds->n);
    if (!ds->n) return h;
    for (int64_t k = 0; k < 64; k++) {
        int64_t i = k * ds->n / 64;
        h = llm__fnv1a(h, (const char *)ds->x + (size_t)(i * ds->x_elems) * 4, (size_t)ds->x_elems * 4);
        h = llm__fnv1a(h, (const char *)ds->y + (size_t)(i * ds->y_elems) * 4, (size_t)ds->y_elems * 4);
    }
    return h;
}

/* What must be equal on every rank; each value and its negation go into
 * one max-reduction, so max == -max(-v) says all ranks agree. The last
 * slot says whether some rank has an on_batch callback. */
static llm_status compare_setup(const llm__grad_exchange *ex, const llm_model *m, const llm_dataset *tr,
                                const llm_dataset *val, int64_t batch, const llm_fit_options *o, int *any_on_batch,
                                const char *fn) {
    uint64_t dh = data_hash(tr), vh = val ? data_hash(val) : 0;
    static const char *const names[] = {
        "number of parameters", "optimizer step", "epochs done", "training examples", "batch size",
        "seed (low bits)", "seed (high bits)", "epochs", "initial epoch", "shuffle",
        "optimizer state", "training data (sampled fingerprint)", "training data (sampled fingerprint)",
        "validation examples", "validation data (sampled fingerprint)", "validation data (sampled fingerprint)",
        "early-stopping monitor",
    };
    enum { K = (int)(sizeof names / sizeof names[0]) };
    double v[2 * K + 1] = {
        (double)m->n_scalars, (double)m->step, (double)m->epochs_done, (double)tr->n, (double)batch,
        (double)(o->seed & 0xffffffffu), (double)(o->seed >> 32), (double)o->epochs, (double)o->initial_epoch,
        (double)(o->shuffle != 0), (double)(m->m1 != NULL && m->m2 != NULL), (double)(dh & 0xffffffffu),
        (double)(dh >> 32), val ? (double)val->n : -1.0, (double)(vh & 0xffffffffu), (double)(vh >> 32),
        (double)o->early_stopping,
    };
    for (int k = 0; k < K; k++) v[K + k] = -v[k];
    v[2 * K] = o->on_batch != NULL;
    double mine[K];
    memcpy(mine, v, sizeof mine);
    char what[160];
    llm__exchange_what(ex, what, sizeof what, "%s: comparing the ranks' set-up", fn);
    LLM__CHECK(ex->reduce_f64(ex->ctx, v, 2 * K + 1, LLM__EXCHANGE_MAX, what));
    for (int k = 0; k < K; k++)
        if (v[k] != -v[K + k])
            return llm__error(LLM_ERR_INVALID_ARGUMENT,
                              "%s: the ranks disagree on the %s (this rank: %.17g; range %.17g to %.17g): every "
                              "rank must fit the same model on the same data with the same options",
                              fn, names[k], mine[k], -v[K + k], v[k]);
    *any_on_batch = v[2 * K] > 0;
    return LLM_OK;
}

llm_status llm__parallel_begin(const llm__grad_exchange *ex, llm_status local_s, llm_model *m,
                               const llm_dataset *tr, const llm_dataset *val, int64_t batch,
                               const llm_fit_options *o, int *any_on_batch, const char *fn) {
    char what[160];
    if (local_s == LLM_OK) local_s = ex->reserve(ex->ctx, m->be, m->n_scalars, fn);
    llm__exchange_what(ex, what, sizeof what, "%s: start of distributed training", fn);
    LLM__CHECK(llm__exchange_agree(ex, local_s, NULL, what));
    LLM__CHECK(compare_setup(ex, m, tr, val, batch, o, any_on_batch, fn));
    LLM__CHECK(broadcast_state(ex, m, fn));
    /* each rank's rows get their own dropout masks; rank 0's are those of
       a single process */
    m->dropout_stream = (uint64_t)ex->rank;
    return LLM_OK;
}

void llm__parallel_end(llm_model *m) { m->dropout_stream = 0; }

llm_status llm__parallel_step(const llm__grad_exchange *ex, llm_model *m, llm_status local_s, int64_t B_local,
                              int64_t B_global, double *loss, double *correct, const char *fn) {
    llm_backend *be = m->be;
    double l = 0, c = (m->metrics & LLM_METRIC_ACCURACY) ? 0 : NAN;
    if (local_s == LLM_OK) {
        if (B_local > 0) local_s = llm__model_step(m, m->hx, m->hy, B_local, 0, &l, &c);
        else local_s = be->ops->memset_zero(be, m->gw, (size_t)m->n_scalars * 4); /* no rows here: adds nothing */
    }
    int64_t step = m->step;
    char what[160];
    double v[5] = { local_s == LLM_OK ? l * (double)B_local : 0, local_s == LLM_OK ? c : 0, (double)B_local,
                    local_s != LLM_OK, local_s == LLM_ERR_NUMERIC };
    llm__exchange_what(ex, what, sizeof what, "%s: allreduce of the loss at step %lld", fn, (long long)step);
    LLM__CHECK(ex->reduce_f64(ex->ctx, v, 5, LLM__EXCHANGE_SUM, what));
    if (v[3] > 0) {
        if (local_s != LLM_OK) return local_s; /* its message is still the last error */
        if (v[4] == v[3])
            return llm__error(LLM_ERR_NUMERIC, "training step %lld: the loss is not finite on another rank; weights "
                              "left unchanged", (long long)step);
        return llm__error(LLM_ERR_DISTRIBUTED, "%s: training step %lld failed on another rank (its own error says "
                          "why); weights left unchanged", fn, (long long)step);
    }
    if (v[2] != (double)B_global) /* only llm_dist_train_on_batch's caller can get the shares wrong */
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: step %lld: the ranks' rows add up to %.0f, not the global "
                          "batch of %lld", fn, (long long)step, v[2], (long long)B_global);

    /* local gradient of the mean over B_local rows, weighted by
       B_local / B_global: the sum over ranks is the global batch's mean */
    if (B_local > 0 && B_local != B_global)
        LLM__CHECK(be->ops->scale(be, m->n_scalars, (float)((double)B_local / (double)B_global), m->gw));
    llm__exchange_what(ex, what, sizeof what, "%s: allreduce of the gradients at step %lld", fn, (long long)step);
    LLM__CHECK(ex->sum_f32(ex->ctx, be, m->gw, m->n_scalars, what));
    /* identical gradients on every rank: the non-finite check and clipping
       agree everywhere */
    LLM__CHECK(llm__model_update(m));
    *loss = v[0] / (double)B_global;
    *correct = v[1];
    return LLM_OK;
}

llm_status llm__parallel_check_weights(const llm__grad_exchange *ex, llm_model *m, int epoch, const char *fn) {
    char what[160];
    llm__exchange_what(ex, what, sizeof what, "%s: comparing the weights after epoch %d", fn, epoch + 1);
    int same = 0;
    LLM__CHECK(ex->same_f32(ex->ctx, m->be, m->w, m->n_scalars, &same, what));
    if (same) return LLM_OK;
    llm__log(LLM_LOG_WARN, "%s: the ranks' weights differ after epoch %d (the MPI library's sums are not "
             "identical on every rank); copying rank 0's", fn, epoch + 1);
    return broadcast_state(ex, m, fn);
}

/* ---- a loop of the caller's own (include/llm/dist.h) ---- */

llm_status llm_dist_sync_model(llm_dist *d, llm_model *m) {
    static const char fn[] = "llm_dist_sync_model";
    if (!d || !m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    llm__grad_exchange ex;
    LLM__CHECK(llm__dist_exchange(d, &ex, fn));
    llm_status local = m->built && m->compiled ? LLM_OK
                                               : llm__error(LLM_ERR_STATE, "%s: build and compile the model first", fn);
    if (local == LLM_OK) local = ex.reserve(ex.ctx, m->be, m->n_scalars, fn);
    char what[160];
    llm__exchange_what(&ex, what, sizeof what, "%s: start", fn);
    LLM__CHECK(llm__exchange_agree(&ex, local, NULL, what));
    /* the same number of parameters everywhere, or the broadcast would mismatch */
    double v[2] = { (double)m->n_scalars, -(double)m->n_scalars };
    llm__exchange_what(&ex, what, sizeof what, "%s: comparing the models", fn);
    LLM__CHECK(ex.reduce_f64(ex.ctx, v, 2, LLM__EXCHANGE_MAX, what));
    if (v[0] != -v[1])
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the ranks' models differ in size (%.0f to %.0f parameters)",
                          fn, -v[1], v[0]);
    return broadcast_state(&ex, m, fn);
}

/* Stages this rank's share of a batch (x and y both NULL: none, then the
 * model must be built) and makes the exchange ready for the gradients. */
static llm_status stage_share(const llm__grad_exchange *ex, llm_model *m, const llm_tensor *x, const llm_tensor *y,
                              int64_t global_batch, int64_t *B, const char *fn) {
    *B = 0;
    if (global_batch < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: global_batch = %lld must be >= 1", fn, (long long)global_batch);
    if (x || y) LLM__CHECK(llm__model_stage_tensors(m, x, y, fn, B));
    else if (!m->built || !m->compiled)
        return llm__error(LLM_ERR_STATE, "%s: a rank without rows needs a built and compiled model", fn);
    if (*B > global_batch)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %lld rows on this rank, more than global_batch = %lld", fn,
                          (long long)*B, (long long)global_batch);
    return ex->reserve(ex->ctx, m->be, m->n_scalars, fn);
}

llm_status llm_dist_train_on_batch(llm_dist *d, llm_model *m, const llm_tensor *x, const llm_tensor *y,
                                   int64_t global_batch, float *loss) {
    static const char fn[] = "llm_dist_train_on_batch";
    if (!d || !m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    llm__grad_exchange ex;
    LLM__CHECK(llm__dist_exchange(d, &ex, fn));
    int64_t B = 0;
    llm_status local = stage_share(&ex, m, x, y, global_batch, &B, fn);
    /* each rank's rows get their own dropout masks; rank 0's are those of one process */
    m->dropout_stream = (uint64_t)ex.rank;
    double l = 0, c = 0;
    llm_status s = llm__parallel_step(&ex, m, local, local == LLM_OK ? B : 0, global_batch, &l, &c, fn);
    m->dropout_stream = 0;
    if (s == LLM_OK && loss) *loss = (float)l;
    return s;
}
