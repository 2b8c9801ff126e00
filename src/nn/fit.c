/* Training loops over datasets: fit (epochs, validation, callbacks, early
 * stopping), evaluate, predict, and the per-epoch history. */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include "model_internal.h"
#include "../core/rng.h"
#include "../core/tensor_internal.h"
#include "data_parallel.h"

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
    if (ds->n_inputs)
        LLM__CHECK(llm__model_ensure_built_inputs(m, ds->n_inputs, ds->in_dtype, ds->in_ndim,
                                                  (const int64_t (*)[LLM_MAX_DIMS])ds->in_shape, fn));
    else
        LLM__CHECK(llm__model_ensure_built(m, ds->x_dtype, ds->x_ndim, ds->x_shape, fn));
    if (ds->y_elems <= 0) return llm__error(LLM_ERR_SHAPE, "%s: %s has no targets", fn, what);
    return LLM_OK;
}

/* Mean loss and accuracy over a dataset in inference mode; optionally keeps
 * every output (scores, [n * out_elems]) for the binary metrics. Each rank
 * of the exchange evaluates its slice of the examples and the sums are
 * combined (scores need the whole set: llm__solo_exchange). */
static llm_status run_eval(llm_model *m, const llm_dataset *ds, int64_t batch, double *loss, double *acc,
                           float *scores, int32_t *labels, const llm__grad_exchange *ex, const char *fn) {
    double loss_sum = 0, correct = 0;
    int64_t lo = 0, count = ds->n;
    llm__exchange_slice(ex, ds->n, &lo, &count);
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
    char what[160];
    llm__exchange_what(ex, what, sizeof what, "%s: validation", fn);
    LLM__CHECK(llm__exchange_agree(ex, s, NULL, what));
    double v[2] = { loss_sum, correct };
    LLM__CHECK(ex->reduce_f64(ex->ctx, v, 2, LLM__EXCHANGE_SUM, what));
    *loss = v[0] / (double)ds->n;
    *acc = (m->metrics & LLM_METRIC_ACCURACY) || scores ? v[1] / (double)ds->n : NAN;
    return LLM_OK;
}

static int improved(llm_monitor mon, double value, double best, double min_delta) {
    if (isnan(value)) return 0;
    if (isnan(best)) return 1;
    if (mon == LLM_MONITOR_ACCURACY || mon == LLM_MONITOR_VAL_ACCURACY) return value > best + min_delta;
    return value < best - min_delta;
}

static double monitored(llm_monitor mon, const llm_progress *p) {
    switch (mon) {
    case LLM_MONITOR_LOSS: return p->loss;
    case LLM_MONITOR_ACCURACY: return p->accuracy;
    case LLM_MONITOR_VAL_LOSS: return p->val_loss;
    case LLM_MONITOR_VAL_ACCURACY: return p->val_accuracy;
    case LLM_MONITOR_NONE: break;
    }
    return NAN;
}

/* ---- fit, step by step ---- */

/* Everything one llm_model_fit call works with. */
typedef struct fit_run {
    llm_model *m;
    llm_fit_options o;
    const char *fn;
    llm_dataset *tr, *val;              /* what trains and what validates (val may be NULL) */
    llm_dataset *split_tr, *split_val;  /* made by validation_split, freed at the end */
    int64_t batch, batches;             /* rows of a global batch, batches per epoch */
    int64_t *perm;                      /* this epoch's order of the training rows */
    void *raw_y;                        /* one batch's targets as the dataset holds them */
    llm_history *h;
    llm__grad_exchange ex;              /* the other ranks; llm__solo_exchange when alone */
    int any_on_batch;                   /* some rank has an on_batch callback */
    int track_best;                     /* early stopping keeps the best epoch's weights */
    int last_epoch;                     /* the last epoch in the history, -1 before the first */
} fit_run;

/* Merges and checks the options. */
static llm_status start_run(fit_run *r, llm_model *m, const llm_fit_options *opts, const char *fn) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->fn = fn;
    r->last_epoch = -1;
    r->ex = llm__solo_exchange;
    llm_fit_options *o = &r->o;
    llm_fit_options_init(o);
    LLM__CHECK(LLM__OPTIONS_MERGE(o, opts, fn));
    if (!m->compiled) return llm__error(LLM_ERR_STATE, "%s: compile the model first (llm_model_compile)", fn);
    if (o->epochs < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: epochs = %d must be >= 1", fn, o->epochs);
    if (o->batch_size < 1) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: batch_size = %d must be >= 1", fn, o->batch_size);
    if (!(o->validation_split >= 0.0f && o->validation_split < 1.0f))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: validation_split = %g must be in [0, 1)", fn, (double)o->validation_split);
    if ((int)o->early_stopping < LLM_MONITOR_NONE || (int)o->early_stopping > LLM_MONITOR_VAL_ACCURACY)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown early_stopping monitor %d", fn, (int)o->early_stopping);
    if (o->initial_epoch < 0 || o->initial_epoch > o->epochs)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: initial_epoch = %d must be in [0, epochs = %d]", fn, o->initial_epoch, o->epochs);
    if (o->patience < 0 || !(o->min_delta >= 0))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: patience and min_delta must be >= 0", fn);
    if ((o->early_stopping == LLM_MONITOR_ACCURACY || o->early_stopping == LLM_MONITOR_VAL_ACCURACY) &&
        !(m->metrics & LLM_METRIC_ACCURACY))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: monitoring accuracy needs LLM_METRIC_ACCURACY at compile", fn);
    r->track_best = o->early_stopping != LLM_MONITOR_NONE && o->restore_best;
    return LLM_OK;
}

/* The training and validation sets: train and the validation option, or
 * the two parts of train when validation_split asks for them. */
static llm_status choose_data(fit_run *r, llm_dataset *train) {
    r->tr = train;
    r->val = r->o.validation;
    if (!r->val && r->o.validation_split > 0.0f) {
        LLM__CHECK(llm_dataset_split(train, r->o.validation_split, r->o.seed, &r->split_tr, &r->split_val));
        r->tr = r->split_tr;
        r->val = r->split_val;
    }
    if ((r->o.early_stopping == LLM_MONITOR_VAL_LOSS || r->o.early_stopping == LLM_MONITOR_VAL_ACCURACY) && !r->val)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: monitoring a validation metric needs validation data or a split",
                          r->fn);
    return LLM_OK;
}

/* Builds the model from the data if needed, checks that both sets fit it,
 * and allocates what the epochs use: the shuffle, one batch's targets, the
 * history, the copy of the best weights. Early-stopping state lives in the
 * model so that checkpoints carry it; a fit that does not continue the
 * last one starts it afresh. */
static llm_status prepare(fit_run *r) {
    llm_model *m = r->m;
    const char *fn = r->fn;
    LLM__CHECK(check_dataset(m, r->tr, fn, "the training set"));
    if (r->val) {
        LLM__CHECK(check_dataset(m, r->val, fn, "the validation set"));
        if (r->val->x_elems != r->tr->x_elems || r->val->y_elems != r->tr->y_elems)
            return llm__error(LLM_ERR_SHAPE, "%s: validation examples are shaped differently from the training examples", fn);
    }
    r->batch = r->o.batch_size < r->tr->n ? r->o.batch_size : r->tr->n;
    r->batches = (r->tr->n + r->batch - 1) / r->batch;
    r->h = llm__calloc(1, sizeof *r->h);
    r->perm = llm__malloc((size_t)r->tr->n * sizeof *r->perm);
    r->raw_y = llm__malloc((size_t)(r->batch * r->tr->y_elems) * 4);
    if (!r->h || !r->perm || !r->raw_y) return llm__oom(fn);
    LLM__CHECK(llm__model_stage(m, r->batch));
    if (r->track_best && !m->es_best_w) LLM__CHECK(m->be->ops->alloc(m->be, (size_t)m->n_scalars * 4, (void **)&m->es_best_w));
    if (r->o.initial_epoch == 0 || r->o.initial_epoch != m->epochs_done) {
        m->es_best_value = NAN;
        m->es_best_epoch = -1;
        m->es_wait = 0;
    }
    return LLM_OK;
}

/* Every rank learns whether all set up (local_s), checks that they train
 * the same thing, and takes rank 0's weights. Alone, only local_s counts. */
static llm_status join_ranks(fit_run *r, llm_status local_s) {
    if (r->o.dist) LLM__CHECK(llm__dist_exchange(r->o.dist, &r->ex, r->fn));
    return llm__parallel_begin(&r->ex, local_s, r->m, r->tr, r->val, r->batch, &r->o, &r->any_on_batch, r->fn);
}

/* One global batch of B rows (idx): this rank stages its slice, then one
 * step across the ranks. */
static llm_status train_batch(fit_run *r, const int64_t *idx, int64_t B, double *loss, double *correct) {
    llm_model *m = r->m;
    int64_t off, rows;
    llm__exchange_slice(&r->ex, B, &off, &rows);
    llm__dataset_gather(r->tr, idx + off, rows, m->hx, r->raw_y);
    llm_status s = llm__model_check_inputs(m, m->hx, rows, r->fn);
    if (s == LLM_OK) s = llm__model_prepare_targets(m, r->tr->y_dtype, r->tr->y_elems, r->raw_y, rows, m->hy, r->fn);
    return llm__parallel_step(&r->ex, m, s, rows, B, loss, correct, r->fn);
}

/* One rank's on_batch asking to stop stops every rank after the same batch. */
static llm_status agree_on_stopping(fit_run *r, int *stop) {
    if (!r->any_on_batch) return LLM_OK;
    char what[160];
    llm__exchange_what(&r->ex, what, sizeof what, "%s: agreeing on stopping after step %lld", r->fn, (long long)r->m->step);
    return llm__exchange_agree(&r->ex, LLM_OK, stop, what);
}

/* The epoch's batches in the shuffled order, with the running figures in
 * *p and on_batch after each. */
static llm_status train_batches(fit_run *r, int epoch, llm_progress *p, double t0, int *stop) {
    llm_model *m = r->m;
    const llm_dataset *tr = r->tr;
    if (r->o.shuffle) llm__permutation(r->perm, tr->n, llm__rng_derive(r->o.seed, (uint64_t)epoch));
    else for (int64_t i = 0; i < tr->n; i++) r->perm[i] = i;
    double loss_sum = 0, correct = 0;
    int64_t seen = 0;
    for (int64_t b = 0; b < r->batches && !*stop; b++) {
        int64_t start = b * r->batch, B = tr->n - start < r->batch ? tr->n - start : r->batch;
        double l = 0, c = 0;
        p->learning_rate = llm__schedule_lr(&m->opt, m->step);
        LLM__CHECK(train_batch(r, r->perm + start, B, &l, &c));
        loss_sum += l * (double)B;
        correct += c;
        seen += B;
        p->batch = b + 1;
        p->step = m->step;
        p->loss = loss_sum / (double)seen;
        p->accuracy = (m->metrics & LLM_METRIC_ACCURACY) ? correct / (double)seen : NAN;
        p->elapsed_s = now_s() - t0;
        if (r->o.on_batch && r->o.on_batch(p, r->o.user)) *stop = 1;
        LLM__CHECK(agree_on_stopping(r, stop));
    }
    return LLM_OK;
}

/* The epoch's row of the history and on_epoch; then every rank learns
 * whether all got here and whether one stops, and that all hold the same
 * weights. */
static llm_status record_epoch(fit_run *r, int epoch, const llm_progress *p, int *stop) {
    double row[H_KEYS] = { p->loss, p->accuracy, p->val_loss, p->val_accuracy, p->learning_rate };
    llm_status s = history_push(r->h, row);
    if (s == LLM_OK) {
        r->last_epoch = epoch;
        if (!*stop && r->o.on_epoch && r->o.on_epoch(p, r->o.user)) *stop = 1;
    }
    char what[160];
    llm__exchange_what(&r->ex, what, sizeof what, "%s: end of epoch %d", r->fn, epoch + 1);
    LLM__CHECK(llm__exchange_agree(&r->ex, s, stop, what));
    return llm__parallel_check_weights(&r->ex, r->m, epoch, r->fn);
}

/* Early stopping: remembers an improved epoch (and its weights), or counts
 * one more without improvement and stops after `patience` of them. */
static llm_status watch_progress(fit_run *r, int epoch, const llm_progress *p, int *stop) {
    llm_model *m = r->m;
    if (r->o.early_stopping == LLM_MONITOR_NONE) return LLM_OK;
    double value = monitored(r->o.early_stopping, p);
    if (improved(r->o.early_stopping, value, m->es_best_value, r->o.min_delta)) {
        m->es_best_value = value;
        m->es_best_epoch = epoch;
        m->es_wait = 0;
        if (r->track_best) return m->be->ops->copy_d2d(m->be, m->es_best_w, m->w, (size_t)m->n_scalars * 4);
    } else if (r->o.patience > 0 && ++m->es_wait >= r->o.patience) {
        *stop = 1;
    }
    return LLM_OK;
}

/* A whole epoch is done: counts it and writes the checkpoint, if asked
 * (rank 0 writes it; every rank learns whether that worked). */
static llm_status complete_epoch(fit_run *r, int epoch) {
    r->m->epochs_done = epoch + 1;
    if (!r->o.checkpoint_path) return LLM_OK;
    llm_status s = r->ex.rank == 0 ? llm_model_save_checkpoint(r->m, r->o.checkpoint_path) : LLM_OK;
    char what[160];
    llm__exchange_what(&r->ex, what, sizeof what, "%s: writing the checkpoint after epoch %d (rank 0)", r->fn, epoch + 1);
    return llm__exchange_agree(&r->ex, s, NULL, what);
}

static llm_status run_epoch(fit_run *r, int epoch, int *stop) {
    llm_progress p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    p.epoch = epoch;
    p.epochs = r->o.epochs;
    p.batches = r->batches;
    p.val_loss = p.val_accuracy = NAN;
    double t0 = now_s();
    LLM__CHECK(train_batches(r, epoch, &p, t0, stop));
    if (r->val && !*stop)
        LLM__CHECK(run_eval(r->m, r->val, r->batch, &p.val_loss, &p.val_accuracy, NULL, NULL, &r->ex, r->fn));
    p.elapsed_s = now_s() - t0;
    LLM__CHECK(record_epoch(r, epoch, &p, stop));
    if (!*stop) LLM__CHECK(watch_progress(r, epoch, &p, stop));
    if (p.batch == r->batches) LLM__CHECK(complete_epoch(r, epoch));
    if (*stop) r->h->stopped_early = epoch + 1 < r->o.epochs || p.batch < r->batches;
    return LLM_OK;
}

/* With restore_best, the model ends with the best epoch's weights. */
static llm_status restore_best(fit_run *r) {
    llm_model *m = r->m;
    if (!r->track_best || m->es_best_epoch < 0 || m->es_best_epoch == r->last_epoch) return LLM_OK;
    LLM__CHECK(m->be->ops->copy_d2d(m->be, m->w, m->es_best_w, (size_t)m->n_scalars * 4));
    r->h->best_epoch = m->es_best_epoch;
    return LLM_OK;
}

static llm_status finish(fit_run *r, llm_status s, llm_history **history) {
    if (r->h) r->h->best_epoch = r->last_epoch;
    if (s == LLM_OK) s = restore_best(r);
    llm__parallel_end(r->m);
    llm__free(r->perm);
    llm__free(r->raw_y);
    llm_dataset_free(r->split_tr);
    llm_dataset_free(r->split_val);
    if (s == LLM_OK && history) *history = r->h;
    else llm_history_free(r->h);
    return s;
}

llm_status llm_model_fit(llm_model *m, llm_dataset *train, const llm_fit_options *opts, llm_history **history) {
    static const char fn[] = "llm_model_fit";
    if (history) *history = NULL;
    if (!m || !train) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, m ? "dataset" : "model");
    fit_run r;
    LLM__CHECK(start_run(&r, m, opts, fn));
    llm_status s = choose_data(&r, train);
    if (s == LLM_OK) s = prepare(&r);
    s = join_ranks(&r, s);
    int stop = 0;
    for (int epoch = r.o.initial_epoch; s == LLM_OK && !stop && epoch < r.o.epochs; epoch++)
        s = run_epoch(&r, epoch, &stop);
    return finish(&r, s, history);
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
    llm_status s = run_eval(m, ds, batch, &loss, &acc, scores, labels, &llm__solo_exchange, fn);
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

llm_status llm__model_predict_rows(llm_model *m, const void *hx, int64_t N, llm_tensor **out, const char *fn) {
    int64_t chunk = N < 64 ? N : 64;
    float *hy = llm__malloc((size_t)(N * m->out_elems) * 4);
    llm__infer_ctx *c = NULL;
    llm_status s = hy ? LLM_OK : llm__oom(fn);
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
    llm__free(hy);
    return s;
}

llm_status llm_model_predict(llm_model *m, const llm_tensor *x, llm_tensor **out) {
    static const char fn[] = "llm_model_predict";
    if (out) *out = NULL;
    if (!m || !x || !out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (x->ndim < 2) return llm__error(LLM_ERR_SHAPE, "%s: x must be [batch, ...], got 1 dimension", fn);
    LLM__CHECK(llm__model_ensure_built_locked(m, x->dtype, x->ndim, x->shape, fn));
    void *hx = llm__malloc(x->bytes);
    llm_status s = hx ? LLM_OK : llm__oom(fn);
    if (s == LLM_OK) s = llm_tensor_to_host(x, hx, x->bytes);
    if (s == LLM_OK) s = llm__model_predict_rows(m, hx, x->shape[0], out, fn);
    llm__free(hx);
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
