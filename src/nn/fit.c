/* Training loops over datasets: fit (epochs, validation, callbacks, early
 * stopping), evaluate, predict, and the per-epoch history. */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include "model_internal.h"
#include "../core/rng.h"
#include "../core/tensor_internal.h"
#include "../dist/dist_internal.h"

enum { H_LOSS, H_ACC, H_VAL_LOSS, H_VAL_ACC, H_LR, H_KEYS };
static const char *const history_keys[H_KEYS] = { "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate" };

struct llm_history {
    int epochs, cap;
    double *v[H_KEYS];
    int stopped_early;
    int best_epoch;
};

void llm_fit_options_init(llm_fit_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->epochs = 1;
    o->batch_size = 32;
    o->shuffle = 1;
    o->seed = 1;
    o->restore_best = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static llm_status history_push(llm_history *h, const double *row) {
    if (h->epochs == h->cap) {
        int cap = h->cap ? 2 * h->cap : 16;
        for (int k = 0; k < H_KEYS; k++) {
            double *p = llm__realloc(h->v[k], (size_t)cap * sizeof *p);
            if (!p) return llm__oom("llm_model_fit");
            h->v[k] = p;
        }
        h->cap = cap;
    }
    for (int k = 0; k < H_KEYS; k++) h->v[k][h->epochs] = row[k];
    h->epochs++;
    return LLM_OK;
}

/* Checks that a dataset fits the (built) model and its loss. */
static llm_status check_dataset(llm_model *m, const llm_dataset *ds, const char *fn, const char *what) {
    LLM__CHECK(llm__model_ensure_built(m, ds->x_dtype, ds->x_ndim, ds->x_shape, fn));
    if (ds->y_elems <= 0) return llm__error(LLM_ERR_SHAPE, "%s: %s has no targets", fn, what);
    return LLM_OK;
}

/* Mean loss and accuracy over a dataset in inference mode; optionally keeps
 * every output (scores, [n * out_elems]) for the binary metrics. With df
 * (distributed fit, no scores), each rank evaluates its slice of the
 * examples and the sums are combined. */
static llm_status run_eval(llm_model *m, const llm_dataset *ds, int64_t batch, double *loss, double *acc,
                           float *scores, int32_t *labels, llm__dist_fit *df, const char *fn) {
    double loss_sum = 0, correct = 0;
    int64_t lo = 0, count = ds->n;
    if (df) llm__dist_slice(df->d, ds->n, &lo, &count);
    int track = (m->metrics & LLM_METRIC_ACCURACY) || scores;
    LLM__CHECK(llm__model_stage(m, batch));
    int64_t *idx = llm__malloc((size_t)batch * sizeof *idx);
    void *raw_y = llm__malloc((size_t)(batch * ds->y_elems) * 4);
    llm_status s = (idx && raw_y) ? LLM_OK : llm__oom(fn);
    for (int64_t start = lo; s == LLM_OK && start < lo + count; start += batch) {
        int64_t B = lo + count - start < batch ? lo + count - start : batch;
        for (int64_t i = 0; i < B; i++) idx[i] = start + i;
        llm__dataset_gather(ds, idx, B, m->hx, raw_y);
        s = llm__model_check_inputs(m, m->hx, B, fn);
        if (s == LLM_OK) s = llm__model_prepare_targets(m, ds->y_dtype, ds->y_elems, raw_y, B, m->hy, fn);
        double l = 0;
        if (s == LLM_OK) s = llm__model_infer(m, m->hx, m->hy, B, &l);
        if (s != LLM_OK) break;
        loss_sum += l * (double)B;
        if (track) correct += llm__model_count_correct(m, m->hout, m->hy, B);
        if (scores) {
            memcpy(scores + start * m->out_elems, m->hout, (size_t)(B * m->out_elems) * 4);
            const float *t = m->hy;
            for (int64_t i = 0; i < B * m->out_elems; i++) labels[start * m->out_elems + i] = t[i] >= 0.5f;
        }
    }
    llm__free(idx);
    llm__free(raw_y);
    if (df) {
        snprintf(df->what, sizeof df->what, "%s: validation", fn);
        s = llm__dist_agree(df, s, NULL, df->what);
        double v[2] = { loss_sum, correct };
        if (s == LLM_OK) s = llm__dist_sum(df, v, 2, df->what);
        loss_sum = v[0];
        correct = v[1];
    }
    if (s != LLM_OK) return s;
    *loss = loss_sum / (double)ds->n;
    *acc = (m->metrics & LLM_METRIC_ACCURACY) || scores ? correct / (double)ds->n : NAN;
    return LLM_OK;
}

static int improved(llm_monitor mon, double value, double best, double min_delta) {
    if (isnan(value)) return 0;
    if (isnan(best)) return 1;
    if (mon == LLM_MONITOR_ACCURACY || mon == LLM_MONITOR_VAL_ACCURACY) return value > best + min_delta;
    return value < best - min_delta;
}

llm_status llm_model_fit(llm_model *m, llm_dataset *train, const llm_fit_options *opts, llm_history **history) {
    static const char fn[] = "llm_model_fit";
    if (history) *history = NULL;
    if (!m || !train) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, m ? "dataset" : "model");
    llm_fit_options o;
    llm_fit_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    if (!m->compiled) return llm__error(LLM_ERR_STATE, "%s: compile the model first (llm_model_compile)", fn);
    if (o.epochs < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: epochs = %d must be >= 1", fn, o.epochs);
    if (o.batch_size < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: batch_size = %d must be >= 1", fn, o.batch_size);
    if (!(o.validation_split >= 0.0f && o.validation_split < 1.0f))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: validation_split = %g must be in [0, 1)", fn, (double)o.validation_split);
    if ((int)o.early_stopping < LLM_MONITOR_NONE || (int)o.early_stopping > LLM_MONITOR_VAL_ACCURACY)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown early_stopping monitor %d", fn, (int)o.early_stopping);
    if (o.initial_epoch < 0 || o.initial_epoch > o.epochs)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: initial_epoch = %d must be in [0, epochs = %d]", fn, o.initial_epoch, o.epochs);
    if (o.patience < 0 || !(o.min_delta >= 0))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: patience and min_delta must be >= 0", fn);
    if ((o.early_stopping == LLM_MONITOR_ACCURACY || o.early_stopping == LLM_MONITOR_VAL_ACCURACY) &&
        !(m->metrics & LLM_METRIC_ACCURACY))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: monitoring accuracy needs LLM_METRIC_ACCURACY at compile", fn);

    llm_dataset *tr = train, *val = o.validation, *split_tr = NULL, *split_val = NULL;
    if (!val && o.validation_split > 0.0f) {
        LLM__CHECK(llm_dataset_split(train, o.validation_split, o.seed, &split_tr, &split_val));
        tr = split_tr;
        val = split_val;
    }
    if ((o.early_stopping == LLM_MONITOR_VAL_LOSS || o.early_stopping == LLM_MONITOR_VAL_ACCURACY) && !val) {
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: monitoring a validation metric needs validation data or a split", fn);
    }

    llm_status s = check_dataset(m, tr, fn, "the training set");
    if (s == LLM_OK && val) {
        s = check_dataset(m, val, fn, "the validation set");
        if (s == LLM_OK && (val->x_elems != tr->x_elems || val->y_elems != tr->y_elems))
            s = llm__error(LLM_ERR_SHAPE, "%s: validation examples are shaped differently from the training examples", fn);
    }
    int64_t batch = o.batch_size < tr->n ? o.batch_size : tr->n;
    int64_t batches = (tr->n + batch - 1) / batch;
    int64_t *perm = NULL;
    void *raw_y = NULL;
    llm_history *h = llm__calloc(1, sizeof *h);
    if (s == LLM_OK && !h) s = llm__oom(fn);
    if (s == LLM_OK) s = llm__model_stage(m, batch);
    if (s == LLM_OK) {
        perm = llm__malloc((size_t)tr->n * sizeof *perm);
        raw_y = llm__malloc((size_t)(batch * tr->y_elems) * 4);
        if (!perm || !raw_y) s = llm__oom(fn);
    }
    /* distributed: every rank agrees it got this far, then takes rank 0's weights */
    llm__dist_fit df_, *df = NULL;
    if (o.dist) {
        s = llm__dist_fit_begin(&df_, o.dist, s, m, tr, val, batch, &o, fn);
        if (s == LLM_OK) df = &df_;
    }
    int track_best = o.early_stopping != LLM_MONITOR_NONE && o.restore_best;
    if (s == LLM_OK && track_best && !m->es_best_w)
        s = m->be->ops->alloc(m->be, (size_t)m->n_scalars * 4, (void **)&m->es_best_w);
    /* Early-stopping state lives in the model so that checkpoints carry it;
     * a fit that does not continue the last one starts it afresh. */
    if (o.initial_epoch == 0 || o.initial_epoch != m->epochs_done) {
        m->es_best_value = NAN;
        m->es_best_epoch = -1;
        m->es_wait = 0;
    }
    int last_epoch = -1;
    for (int epoch = o.initial_epoch; s == LLM_OK && epoch < o.epochs; epoch++) {
        if (o.shuffle) llm__permutation(perm, tr->n, llm__rng_derive(o.seed, (uint64_t)epoch));
        else for (int64_t i = 0; i < tr->n; i++) perm[i] = i;
        double t0 = now_s(), loss_sum = 0, correct = 0;
        int64_t seen = 0;
        int stop = 0;
        llm_progress p;
        memset(&p, 0, sizeof p);
        p.size = sizeof p;
        p.epoch = epoch;
        p.epochs = o.epochs;
        p.batches = batches;
        p.val_loss = p.val_accuracy = NAN;
        for (int64_t b = 0; b < batches && s == LLM_OK; b++) {
            int64_t start = b * batch, B = tr->n - start < batch ? tr->n - start : batch;
            int64_t off = 0, rows = B; /* this rank's slice of the global batch */
            if (df) llm__dist_slice(df->d, B, &off, &rows);
            llm__dataset_gather(tr, perm + start + off, rows, m->hx, raw_y);
            s = llm__model_check_inputs(m, m->hx, rows, fn);
            if (s == LLM_OK) s = llm__model_prepare_targets(m, tr->y_dtype, tr->y_elems, raw_y, rows, m->hy, fn);
            double l = 0, c = 0;
            p.learning_rate = llm__schedule_lr(&m->opt, m->step);
            if (df) s = llm__dist_step(df, m, s, rows, B, &l, &c, fn);
            else if (s == LLM_OK) s = llm__model_step(m, m->hx, m->hy, B, 1, &l, &c);
            if (s != LLM_OK) break;
            loss_sum += l * (double)B;
            correct += c;
            seen += B;
            p.batch = b + 1;
            p.step = m->step;
            p.loss = loss_sum / (double)seen;
            p.accuracy = (m->metrics & LLM_METRIC_ACCURACY) ? correct / (double)seen : NAN;
            p.elapsed_s = now_s() - t0;
            if (o.on_batch && o.on_batch(&p, o.user)) stop = 1;
            if (df && df->any_on_batch) { /* one rank's callback stops every rank */
                snprintf(df->what, sizeof df->what, "%s: agreeing on stopping after step %lld", fn, (long long)m->step);
                s = llm__dist_agree(df, LLM_OK, &stop, df->what);
            }
            if (stop) break;
        }
        if (s != LLM_OK) break;
        if (val && !stop) s = run_eval(m, val, batch, &p.val_loss, &p.val_accuracy, NULL, NULL, df, fn);
        if (s != LLM_OK) break;
        p.elapsed_s = now_s() - t0;
        double row[H_KEYS] = { p.loss, p.accuracy, p.val_loss, p.val_accuracy, p.learning_rate };
        s = history_push(h, row);
        if (s == LLM_OK) {
            last_epoch = epoch;
            if (!stop && o.on_epoch && o.on_epoch(&p, o.user)) stop = 1;
        }
        if (df) { /* every rank learns whether all got here, and whether one stops */
            snprintf(df->what, sizeof df->what, "%s: end of epoch %d", fn, epoch + 1);
            s = llm__dist_agree(df, s, &stop, df->what);
            if (s == LLM_OK) s = llm__dist_check_sync(df, m, epoch, fn);
        }
        if (s != LLM_OK) break;
        if (o.early_stopping != LLM_MONITOR_NONE && !stop) {
            double value = row[o.early_stopping - 1];
            if (improved(o.early_stopping, value, m->es_best_value, o.min_delta)) {
                m->es_best_value = value;
                m->es_best_epoch = epoch;
                m->es_wait = 0;
                if (track_best) s = m->be->ops->copy_d2d(m->be, m->es_best_w, m->w, (size_t)m->n_scalars * 4);
            } else if (o.patience > 0 && ++m->es_wait >= o.patience) {
                stop = 1;
            }
        }
        if (s == LLM_OK && p.batch == batches) {
            m->epochs_done = epoch + 1;
            if (o.checkpoint_path && (!df || df->d->rank == 0)) s = llm_model_save_checkpoint(m, o.checkpoint_path);
            if (df && o.checkpoint_path) { /* rank 0 writes it; every rank learns whether that worked */
                snprintf(df->what, sizeof df->what, "%s: writing the checkpoint after epoch %d (rank 0)", fn, epoch + 1);
                s = llm__dist_agree(df, s, NULL, df->what);
            }
        }
        if (stop) {
            h->stopped_early = epoch + 1 < o.epochs || p.batch < batches;
            break;
        }
    }
    if (h) h->best_epoch = last_epoch; /* NULL when its allocation failed */
    if (s == LLM_OK && track_best && m->es_best_epoch >= 0 && m->es_best_epoch != last_epoch) {
        s = m->be->ops->copy_d2d(m->be, m->w, m->es_best_w, (size_t)m->n_scalars * 4);
        h->best_epoch = m->es_best_epoch;
    }
    if (df) llm__dist_fit_end(df, m);
    llm__free(perm);
    llm__free(raw_y);
    llm_dataset_free(split_tr);
    llm_dataset_free(split_val);
    if (s == LLM_OK && history) *history = h;
    else llm_history_free(h);
    return s;
}

llm_status llm_model_evaluate(llm_model *m, llm_dataset *ds, int batch_size, llm_metrics *out) {
    static const char fn[] = "llm_model_evaluate";
    if (!m || !ds || !out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (out->size < sizeof(size_t)) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: metrics->size is %zu; call llm_metrics_init", fn, out->size);
    if (batch_size < 0) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: batch_size = %d must be >= 0", fn, batch_size);
    if (!m->compiled) return llm__error(LLM_ERR_STATE, "%s: compile the model first (it defines the loss)", fn);
    LLM__CHECK(check_dataset(m, ds, fn, "the dataset"));
    int64_t batch = batch_size ? batch_size : 32;
    int binary = m->out_elems == 1 && (m->loss == LLM_LOSS_BINARY_CROSSENTROPY || m->loss == LLM_LOSS_BINARY_CROSSENTROPY_LOGITS);
    float *scores = NULL;
    int32_t *labels = NULL;
    if (binary) {
        scores = llm__malloc((size_t)ds->n * sizeof *scores);
        labels = llm__malloc((size_t)ds->n * sizeof *labels);
        if (!scores || !labels) { llm__free(scores); llm__free(labels); return llm__oom(fn); }
    }
    double loss, acc;
    llm_status s = run_eval(m, ds, batch, &loss, &acc, scores, labels, NULL, fn);
    llm_metrics r;
    llm_metrics_init(&r);
    if (s == LLM_OK && binary) {
        if (m->loss == LLM_LOSS_BINARY_CROSSENTROPY_LOGITS)
            for (int64_t i = 0; i < ds->n; i++) scores[i] = 1.0f / (1.0f + expf(-scores[i]));
        s = llm_metrics_binary(scores, labels, ds->n, 0.5, &r);
        if (s == LLM_OK && isnan(r.auc)) llm_clear_error();
    }
    llm__free(scores);
    llm__free(labels);
    if (s != LLM_OK) return s;
    r.count = ds->n;
    r.loss = loss;
    if (!binary) r.accuracy = acc;
    size_t n = out->size < sizeof r ? out->size : sizeof r;
    size_t keep = out->size;
    memcpy(out, &r, n);
    out->size = keep;
    return LLM_OK;
}

/* Builds on first use under the inference lock, so that concurrent first
 * predictions do not race; a built model is only read. The flag is read
 * under the lock too: a thread that saw it set without the lock could read
 * the weights before the building thread's writes reach it. */
llm_status llm__model_ensure_built_locked(llm_model *m, llm_dtype dt, int ndim, const int64_t *shape, const char *fn) {
    pthread_mutex_lock(&m->infer_lock);
    llm_status s = llm__model_ensure_built(m, dt, ndim, shape, fn);
    pthread_mutex_unlock(&m->infer_lock);
    return s;
}

llm_status llm_model_predict(llm_model *m, const llm_tensor *x, llm_tensor **out) {
    static const char fn[] = "llm_model_predict";
    if (out) *out = NULL;
    if (!m || !x || !out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (x->ndim < 2) return llm__error(LLM_ERR_SHAPE, "%s: x must be [batch, ...], got 1 dimension", fn);
    LLM__CHECK(llm__model_ensure_built_locked(m, x->dtype, x->ndim, x->shape, fn));
    int64_t N = x->shape[0], chunk = N < 64 ? N : 64;
    void *hx = llm__malloc(x->bytes);
    float *hy = llm__malloc((size_t)(N * m->out_elems) * 4);
    llm__infer_ctx *c = NULL;
    llm_status s = hx && hy ? LLM_OK : llm__oom(fn);
    if (s == LLM_OK) s = llm_tensor_to_host(x, hx, x->bytes);
    if (s == LLM_OK) s = llm__model_check_inputs(m, hx, N, fn);
    if (s == LLM_OK) s = llm__infer_acquire(m, chunk, &c);
    for (int64_t start = 0; s == LLM_OK && start < N; start += chunk) {
        int64_t B = N - start < chunk ? N - start : chunk;
        memcpy(c->hx, (const char *)hx + (size_t)(start * m->in_elems) * 4, (size_t)(B * m->in_elems) * 4);
        s = llm__infer_run(m, c, B);
        if (s == LLM_OK) memcpy(hy + start * m->out_elems, c->hout, (size_t)(B * m->out_elems) * 4);
    }
    if (c) llm__infer_release(m, c);
    if (s == LLM_OK) {
        int64_t shape[LLM_MAX_DIMS];
        shape[0] = N;
        for (int i = 0; i < m->out_shape.ndim; i++) shape[i + 1] = m->out_shape.d[i];
        s = llm_tensor_from_host(out, m->be, LLM_DTYPE_F32, m->out_shape.ndim + 1, shape, hy,
                                 (size_t)(N * m->out_elems) * 4);
    }
    llm__free(hx);
    llm__free(hy);
    return s;
}

/* ---- history ---- */

llm_status llm_history_epochs(const llm_history *h, int *epochs) {
    if (!h || !epochs) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_history_epochs: NULL argument");
    *epochs = h->epochs;
    return LLM_OK;
}

llm_status llm_history_get(const llm_history *h, const char *key, int epoch, double *value) {
    static const char fn[] = "llm_history_get";
    if (!h || !key || !value) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (epoch < 0 || epoch >= h->epochs)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: epoch %d outside [0, %d)", fn, epoch, h->epochs);
    for (int k = 0; k < H_KEYS; k++)
        if (strcmp(key, history_keys[k]) == 0) { *value = h->v[k][epoch]; return LLM_OK; }
    return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown key '%s' (loss, accuracy, val_loss, val_accuracy, learning_rate)", fn, key);
}

llm_status llm_history_stopped_early(const llm_history *h, int *stopped) {
    if (!h || !stopped) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_history_stopped_early: NULL argument");
    *stopped = h->stopped_early;
    return LLM_OK;
}

llm_status llm_history_best_epoch(const llm_history *h, int *epoch) {
    if (!h || !epoch) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_history_best_epoch: NULL argument");
    *epoch = h->best_epoch;
    return LLM_OK;
}

void llm_history_free(llm_history *h) {
    if (!h) return;
    for (int k = 0; k < H_KEYS; k++) llm__free(h->v[k]);
    llm__free(h);
}
