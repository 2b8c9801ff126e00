/* What llm_model_fit does differently with fit_options.dist: data-parallel
 * training over MPI (docs/DISTRIBUTED.md).
 *
 * Every rank holds the whole model and the whole dataset and runs the same
 * loop as a single process: the same shuffle (from the seed), the same
 * global batches of batch_size rows. Rank r takes its contiguous slice of
 * each global batch (llm__dist_slice), computes the mean-loss gradient of
 * its rows, scales it by rows_r / rows_global, and one allreduce (sum) over
 * the whole contiguous gradient buffer m->gw gives every rank the gradient
 * of the mean loss over the global batch, as one process would compute it.
 * The optimizer step (non-finite check, clipping by the global norm, update)
 * then runs after the allreduce on identical inputs, so the weights stay
 * identical everywhere. One allreduce per step, after the whole backward
 * pass: no bucketing, no overlap with backward.
 *
 * Before that allreduce, a small one (doubles, sum) carries the batch's
 * loss and correct predictions (so every rank reports global figures) and
 * whether any rank failed locally (non-finite loss, bad input): then every
 * rank fails, none hangs. */
#include <math.h>
#include <stdio.h>
#include "../core/internal.h"
#include "../nn/model_internal.h"
#include "dist_internal.h"

/* Host view of backend memory: the buffer itself when it is host memory, else
 * f->stage after a copy. */
static int on_host(const llm_model *m) { return llm__backend_has(m->be, LLM__BACKEND_HOST_MEMORY); }

/* f->stage for a model on a device backend: the handle's host buffer, grown
 * once to the model's size and reused by every later step. */
static llm_status stage_for(llm__dist_fit *f, const llm_model *m, const char *fn) {
    llm_dist *d = f->d;
    f->stage = NULL;
    if (on_host(m)) return LLM_OK;
    if (d->stage_floats < (size_t)m->n_scalars) {
        float *p = llm__realloc(d->stage, (size_t)m->n_scalars * 4);
        if (!p) return llm__oom(fn);
        d->stage = p;
        d->stage_floats = (size_t)m->n_scalars;
    }
    f->stage = d->stage;
    return LLM_OK;
}

static llm_status bcast_param_buffer(llm__dist_fit *f, llm_model *m, float *buf, const char *what) {
    size_t bytes = (size_t)m->n_scalars * 4;
    if (on_host(m)) return llm__dist_bcast(f->d, buf, bytes, 0, what);
    if (f->d->rank == 0) LLM__CHECK(m->be->ops->copy_d2h(m->be, f->stage, buf, bytes));
    LLM__CHECK(llm__dist_bcast(f->d, f->stage, bytes, 0, what));
    return m->be->ops->copy_h2d(m->be, buf, f->stage, bytes);
}

/* rank 0's weights and, when there are some, optimizer moments */
static llm_status bcast_state(llm__dist_fit *f, llm_model *m, const char *fn) {
    snprintf(f->what, sizeof f->what, "%s: broadcast of the weights from rank 0", fn);
    LLM__CHECK(bcast_param_buffer(f, m, m->w, f->what));
    if (m->m1 && m->m2) {
        snprintf(f->what, sizeof f->what, "%s: broadcast of the optimizer state from rank 0", fn);
        LLM__CHECK(bcast_param_buffer(f, m, m->m1, f->what));
        LLM__CHECK(bcast_param_buffer(f, m, m->m2, f->what));
    }
    return LLM_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* A fingerprint of a dataset: its size and up to 64 evenly spaced examples. */
static uint64_t data_hash(const llm_dataset *ds) {
    uint64_t h = fnv(0xcbf29ce484222325ULL, &ds->n, sizeof ds->n);
    if (!ds->n) return h;
    for (int64_t k = 0; k < 64; k++) {
        int64_t i = k * ds->n / 64;
        h = fnv(h, (const char *)ds->x + (size_t)(i * ds->x_elems) * 4, (size_t)ds->x_elems * 4);
        h = fnv(h, (const char *)ds->y + (size_t)(i * ds->y_elems) * 4, (size_t)ds->y_elems * 4);
    }
    return h;
}

llm_status llm__dist_agree(llm__dist_fit *f, llm_status local_s, int *flag, const char *what) {
    char msg[512];
    if (local_s != LLM_OK) snprintf(msg, sizeof msg, "%s", llm_last_error());
    double v[2] = { local_s != LLM_OK, flag && *flag };
    LLM__CHECK(llm__dist_allreduce(f->d, v, 2, LLM__MPI_F64, LLM__MPI_MAX, what));
    if (flag) *flag = v[1] > 0;
    if (local_s != LLM_OK) return llm__error(local_s, "%s", msg);
    if (v[0] > 0) return llm__error(LLM_ERR_DISTRIBUTED, "%s: another rank failed (its own error says why)", what);
    return LLM_OK;
}

llm_status llm__dist_sum(llm__dist_fit *f, double *v, int n, const char *what) {
    return llm__dist_allreduce(f->d, v, n, LLM__MPI_F64, LLM__MPI_SUM, what);
}

llm_status llm__dist_fit_begin(llm__dist_fit *f, llm_dist *d, llm_status local_s, llm_model *m, const llm_dataset *tr,
                               const llm_dataset *val, int64_t batch, const llm_fit_options *o, const char *fn) {
    memset(f, 0, sizeof *f);
    f->d = d;
    if (local_s == LLM_OK) local_s = stage_for(f, m, fn);
    snprintf(f->what, sizeof f->what, "%s: start of distributed training", fn);
    llm_status s = llm__dist_agree(f, local_s, NULL, f->what);
    if (s != LLM_OK) { llm__dist_fit_end(f, m); return s; }

    /* what must be equal on every rank; each value and its negation go into
       one max-reduction, so max == -max(-v) says all ranks agree */
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
    snprintf(f->what, sizeof f->what, "%s: comparing the ranks' set-up", fn);
    s = llm__dist_allreduce(d, v, 2 * K + 1, LLM__MPI_F64, LLM__MPI_MAX, f->what);
    if (s != LLM_OK) { llm__dist_fit_end(f, m); return s; }
    for (int k = 0; k < K; k++)
        if (v[k] != -v[K + k]) {
            llm__dist_fit_end(f, m);
            return llm__error(LLM_ERR_INVALID_ARGUMENT,
                              "%s: the ranks disagree on the %s (this rank: %.17g; range %.17g to %.17g): every "
                              "rank must fit the same model on the same data with the same options",
                              fn, names[k], mine[k], -v[K + k], v[k]);
        }
    f->any_on_batch = v[2 * K] > 0;
    s = bcast_state(f, m, fn);
    if (s != LLM_OK) { llm__dist_fit_end(f, m); return s; }
    /* each rank's rows get their own dropout masks; rank 0's are those of
       a single process */
    m->dropout_stream = (uint64_t)d->rank;
    return LLM_OK;
}

void llm__dist_fit_end(llm__dist_fit *f, llm_model *m) {
    f->stage = NULL;
    m->dropout_stream = 0;
}

llm_status llm__dist_step(llm__dist_fit *f, llm_model *m, llm_status local_s, int64_t B_local, int64_t B_global,
                          double *loss, double *correct, const char *fn) {
    llm_backend *be = m->be;
    const llm__backend_ops *op = be->ops;
    size_t bytes = (size_t)m->n_scalars * 4;
    double l = 0, c = (m->metrics & LLM_METRIC_ACCURACY) ? 0 : NAN;
    if (local_s == LLM_OK) {
        if (B_local > 0) local_s = llm__model_step(m, m->hx, m->hy, B_local, 0, &l, &c);
        else local_s = op->memset_zero(be, m->gw, bytes);  /* no rows here: contributes nothing */
    }
    char msg[512];
    if (local_s != LLM_OK) snprintf(msg, sizeof msg, "%s", llm_last_error());
    int64_t step = m->step;

    double v[5] = { local_s == LLM_OK ? l * (double)B_local : 0, local_s == LLM_OK ? c : 0, (double)B_local,
                    local_s != LLM_OK, local_s == LLM_ERR_NUMERIC };
    snprintf(f->what, sizeof f->what, "%s: allreduce of the loss at step %lld", fn, (long long)step);
    LLM__CHECK(llm__dist_sum(f, v, 5, f->what));
    if (v[3] > 0) {
        if (local_s != LLM_OK) return llm__error(local_s, "%s", msg);
        if (v[4] == v[3])
            return llm__error(LLM_ERR_NUMERIC, "training step %lld: the loss is not finite on another rank; weights "
                              "left unchanged", (long long)step);
        return llm__error(LLM_ERR_DISTRIBUTED, "%s: training step %lld failed on another rank (its own error says "
                          "why); weights left unchanged", fn, (long long)step);
    }
    if (v[2] != (double)B_global)
        return llm__error(LLM_ERR_INTERNAL, "%s: step %lld: the ranks' rows add up to %.0f, not %lld", fn,
                          (long long)step, v[2], (long long)B_global);

    /* local gradient of the mean over B_local rows, weighted by
       B_local / B_global: the sum over ranks is the global batch's mean */
    if (B_local > 0 && B_local != B_global)
        LLM__CHECK(op->scale(be, m->n_scalars, (float)((double)B_local / (double)B_global), m->gw));
    snprintf(f->what, sizeof f->what, "%s: allreduce of the gradients at step %lld", fn, (long long)step);
    if (on_host(m)) {
        LLM__CHECK(llm__dist_allreduce(f->d, m->gw, m->n_scalars, LLM__MPI_F32, LLM__MPI_SUM, f->what));
    } else {
        LLM__CHECK(op->copy_d2h(be, f->stage, m->gw, bytes));
        LLM__CHECK(llm__dist_allreduce(f->d, f->stage, m->n_scalars, LLM__MPI_F32, LLM__MPI_SUM, f->what));
        LLM__CHECK(op->copy_h2d(be, m->gw, f->stage, bytes));
    }
    /* identical gradients on every rank: the non-finite check and clipping
       agree everywhere */
    LLM__CHECK(llm__model_update(m));
    *loss = v[0] / (double)B_global;
    *correct = v[1];
    return LLM_OK;
}

llm_status llm__dist_check_sync(llm__dist_fit *f, llm_model *m, int epoch, const char *fn) {
    size_t bytes = (size_t)m->n_scalars * 4;
    const float *w = m->w;
    if (!on_host(m)) {
        LLM__CHECK(m->be->ops->copy_d2h(m->be, f->stage, m->w, bytes));
        w = f->stage;
    }
    uint64_t h = fnv(0xcbf29ce484222325ULL, w, bytes);
    double v[4] = { (double)(h & 0xffffffffu), (double)(h >> 32) };
    v[2] = -v[0];
    v[3] = -v[1];
    snprintf(f->what, sizeof f->what, "%s: comparing the weights after epoch %d", fn, epoch + 1);
    LLM__CHECK(llm__dist_allreduce(f->d, v, 4, LLM__MPI_F64, LLM__MPI_MAX, f->what));
    if (v[0] == -v[2] && v[1] == -v[3]) return LLM_OK;
    llm__log(LLM_LOG_WARN, "%s: the ranks' weights differ after epoch %d (the MPI library's sums are not "
             "identical on every rank); copying rank 0's", fn, epoch + 1);
    return bcast_state(f, m, fn);
}

/* ---- a loop of the caller's own (include/llm/dist.h) ---- */

static llm_status dist_usable(const llm_dist *d, const char *fn) {
    if (!d->healthy)
        return llm__error(LLM_ERR_DISTRIBUTED, "%s: the distributed handle is unusable after an earlier failure: %s",
                          fn, d->broken);
    return LLM_OK;
}

llm_status llm_dist_sync_model(llm_dist *d, llm_model *m) {
    static const char fn[] = "llm_dist_sync_model";
    if (!d || !m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    LLM__CHECK(dist_usable(d, fn));
    llm__dist_fit f;
    memset(&f, 0, sizeof f);
    f.d = d;
    llm_status local = m->built && m->compiled ? LLM_OK
                                               : llm__error(LLM_ERR_STATE, "%s: build and compile the model first", fn);
    if (local == LLM_OK) local = stage_for(&f, m, fn);
    snprintf(f.what, sizeof f.what, "%s: start", fn);
    llm_status s = llm__dist_agree(&f, local, NULL, f.what);
    if (s == LLM_OK) {
        /* the same number of parameters everywhere, or the broadcast would mismatch */
        double v[2] = { (double)m->n_scalars, -(double)m->n_scalars };
        snprintf(f.what, sizeof f.what, "%s: comparing the models", fn);
        s = llm__dist_allreduce(d, v, 2, LLM__MPI_F64, LLM__MPI_MAX, f.what);
        if (s == LLM_OK && v[0] != -v[1])
            s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the ranks' models differ in size (%.0f to %.0f parameters)",
                           fn, -v[1], v[0]);
    }
    if (s == LLM_OK) s = bcast_state(&f, m, fn);
    return s;
}

llm_status llm_dist_train_on_batch(llm_dist *d, llm_model *m, const llm_tensor *x, const llm_tensor *y,
                                   int64_t global_batch, float *loss) {
    static const char fn[] = "llm_dist_train_on_batch";
    if (!d || !m) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    LLM__CHECK(dist_usable(d, fn));
    llm__dist_fit f;
    memset(&f, 0, sizeof f);
    f.d = d;
    int64_t B = 0;
    llm_status local = global_batch >= 1 ? llm__model_stage_tensors(m, x, y, fn, &B)
                                         : llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: global_batch = %lld", fn,
                                                      (long long)global_batch);
    if (local == LLM_OK) local = stage_for(&f, m, fn);
    /* each rank's rows get their own dropout masks; rank 0's are those of one process */
    m->dropout_stream = (uint64_t)d->rank;
    double l = 0, c = 0;
    llm_status s = llm__dist_step(&f, m, local, local == LLM_OK ? B : 0, global_batch, &l, &c, fn);
    m->dropout_stream = 0;
    if (s == LLM_OK && loss) *loss = (float)l;
    return s;
}
