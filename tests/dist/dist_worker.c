/* The program suite_dist (tests/test_dist.c) runs under mpirun, or alone:
 * trains a small Embedding -> LSTM -> Dense(1, sigmoid) model on synthetic
 * data with llm_model_fit, distributed (--dist) or not, and leaves in OUTDIR
 * what the test compares, per rank R:
 *   status.R    "<status code> <llm_last_error()>" of the whole run
 *   weights.R   every parameter, as raw floats in parameter order
 *   history.R   "steps stopped_early" then, per epoch, "loss accuracy
 *               val_loss val_accuracy" (%.9g)
 *
 *   dist_worker OUTDIR [--dist] [--epochs N] [--batch N] [--timeout S]
 *               [--seed-by-rank] [--stop-rank R --stop-step K]
 *               [--die-rank R --die-step K --die-signal kill|stop]
 *               [--oom-rank R --oom-step K]
 *               [--checkpoint] [--own-loop]
 *
 * --stop-*: rank R's on_batch callback asks to stop once K steps are done.
 * --die-*: rank R raises SIGKILL or SIGSTOP in its callback after step K,
 * as a crashed or hung node would. --oom-*: rank R's next allocation after
 * step K fails (libllm's test hook), a local failure. --checkpoint writes OUTDIR/ckpt.
 * --own-loop trains without fit: llm_dist_sync_model, then llm_dist_train_on_batch
 * (alone: llm_model_train_on_batch) on global batches of 1, 3 and 32 rows in turn,
 * so that with 2 ranks rank 1 often has no rows and passes x = y = NULL; no
 * history is written. Exit status 0 when training succeeded, 3 when it failed, 2
 * for bad arguments. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llm/llm.h>
#include "core/internal.h" /* llm__alloc_fail_after: a failure on one rank only */

typedef struct opts {
    const char *out;
    int dist, epochs, batch, seed_by_rank, stop_rank, stop_step, die_rank, die_step, die_signal, checkpoint;
    int oom_rank, oom_step, own_loop;
    double timeout;
} opts;

static int rank;
static const opts *g_opts;

static int on_batch(const llm_progress *p, void *user) {
    (void)user;
    if (g_opts->die_step > 0 && rank == g_opts->die_rank && p->step == g_opts->die_step) {
        fflush(NULL);
        raise(g_opts->die_signal);
    }
    if (g_opts->oom_step > 0 && rank == g_opts->oom_rank && p->step == g_opts->oom_step) llm__alloc_fail_after(0);
    if (g_opts->stop_step > 0 && rank == g_opts->stop_rank && p->step >= g_opts->stop_step) return 1;
    return 0;
}

static void write_status(const opts *o, llm_status s, const char *msg) {
    char path[4096];
    snprintf(path, sizeof path, "%s/status.%d", o->out, rank);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%d %s\n", (int)s, msg);
    fclose(f);
}

/* x [n, seq] ids in [1, 50), y = 1 when most ids are small */
static llm_status make_data(llm_dataset **out, int64_t n, int64_t seq, uint64_t seed) {
    int32_t *x = malloc((size_t)(n * seq) * 4);
    float *y = malloc((size_t)n * 4);
    if (!x || !y) { free(x); free(y); return LLM_ERR_OUT_OF_MEMORY; }
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        int small = 0;
        for (int64_t t = 0; t < seq; t++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int32_t id = 1 + (int32_t)((s >> 33) % 49);
            x[i * seq + t] = id;
            small += id < 25;
        }
        y[i] = 2 * small > seq ? 1.0f : 0.0f;
    }
    llm_status st = llm_dataset_from_host(out, LLM_DTYPE_I32, 2, (int64_t[]){ n, seq }, x, LLM_DTYPE_F32, 1,
                                          (int64_t[]){ n }, y);
    free(x);
    free(y);
    return st;
}

#define TRY(call) do { s = (call); if (s != LLM_OK) goto done; } while (0)

/* Rows [start, start + n) of data (wrapping around) as tensors on be. */
static llm_status batch_tensors(const llm_dataset *data, llm_backend *be, int64_t start, int64_t n, llm_tensor **x,
                                llm_tensor **y) {
    enum { SEQ = 12 };
    int64_t count = 0;
    int32_t ids[32 * SEQ];
    float labels[32];
    llm_status s = llm_dataset_size(data, &count);
    for (int64_t i = 0; s == LLM_OK && i < n; i++)
        s = llm_dataset_get(data, (start + i) % count, ids + i * SEQ, SEQ * sizeof *ids, labels + i, sizeof *labels);
    if (s == LLM_OK) s = llm_tensor_from_host(x, be, LLM_DTYPE_I32, 2, (int64_t[]){ n, SEQ }, ids, (size_t)(n * SEQ) * 4);
    if (s == LLM_OK) s = llm_tensor_from_host(y, be, LLM_DTYPE_F32, 1, (int64_t[]){ n }, labels, (size_t)n * 4);
    return s;
}

/* --own-loop: 30 steps on global batches of 1, 3 and 32 rows; rank r of p
 * takes its contiguous share of each (as fit slices), which is nothing for
 * rank 1 of 2 in a batch of 1. */
static llm_status own_loop(llm_model *m, llm_backend *be, llm_dist *dist, int size, const llm_dataset *data) {
    static const int64_t batches[] = { 1, 3, 32 };
    llm_status s = llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){ 12 });
    if (s == LLM_OK && dist) s = llm_dist_sync_model(dist, m);
    int64_t start = 0;
    for (int step = 0; s == LLM_OK && step < 30; step++) {
        int64_t B = batches[step % 3], off = B / size * rank + (rank < B % size ? rank : B % size);
        int64_t rows = B / size + (rank < B % size ? 1 : 0);
        llm_tensor *x = NULL, *y = NULL;
        if (rows > 0) s = batch_tensors(data, be, start + off, rows, &x, &y);
        float loss = 0;
        if (s == LLM_OK) s = dist ? llm_dist_train_on_batch(dist, m, x, y, B, &loss) : llm_model_train_on_batch(m, x, y, &loss, NULL);
        llm_tensor_free(x);
        llm_tensor_free(y);
        start += B;
    }
    return s;
}

static int run(opts *o, int *argc, char ***argv) {
    llm_status s = LLM_OK;
    llm_dist *dist = NULL;
    llm_backend *be = NULL;
    llm_model *m = NULL;
    llm_optimizer *opt = NULL;
    llm_dataset *data = NULL;
    llm_history *h = NULL;
    int size = 1;
    if (o->dist) {
        TRY(llm_dist_init(&dist, argc, argv));
        TRY(llm_dist_rank(dist, &rank));
        TRY(llm_dist_size(dist, &size));
        if (o->timeout >= 0) TRY(llm_dist_set_timeout(dist, o->timeout));
    }
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    TRY(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    TRY(llm_model_sequential(&m, be));
    TRY(llm_model_set_seed(m, 7));
    TRY(llm_model_add(m, llm_layer_embedding(50, 8)));
    TRY(llm_model_add(m, llm_layer_lstm(16, LLM_RETURN_LAST)));
    TRY(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_optimizer_options oo;
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_ADAM);
    oo.learning_rate = 0.01f;
    oo.clip_norm = 0.5f; /* clipping must see the summed gradient */
    TRY(llm_optimizer_create(&opt, &oo));
    TRY(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_ACCURACY));
    if (dist && rank > 0) {
        /* a different initialisation: fit must start from rank 0's weights */
        TRY(llm_model_set_seed(m, 1000 + (uint64_t)rank));
    }
    TRY(make_data(&data, 129, 12, 42));

    if (o->own_loop) {
        TRY(own_loop(m, be, dist, size, data));
        goto weights;
    }
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = o->epochs;
    fo.batch_size = o->batch;
    fo.seed = o->seed_by_rank ? 5 + (uint64_t)rank : 5;
    fo.validation_split = 0.2f; /* 103 training rows: a ragged last batch */
    fo.on_batch = on_batch;
    fo.dist = dist;
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", o->out);
    if (o->checkpoint) fo.checkpoint_path = ckpt;
    TRY(llm_model_fit(m, data, &fo, &h));

weights:;
    char path[4096];
    snprintf(path, sizeof path, "%s/weights.%d", o->out, rank);
    FILE *f = fopen(path, "wb");
    int np = 0;
    llm_model_num_params(m, &np);
    for (int i = 0; f && i < np; i++) {
        const char *name;
        int nd;
        int64_t shape[8], count = 1;
        TRY(llm_model_param_info(m, i, &name, &nd, shape));
        for (int k = 0; k < nd; k++) count *= shape[k];
        float *w = malloc((size_t)count * 4);
        if (!w) { s = LLM_ERR_OUT_OF_MEMORY; break; }
        s = llm_model_get_param(m, name, w, (size_t)count * 4);
        if (s == LLM_OK) fwrite(w, 4, (size_t)count, f);
        free(w);
        if (s != LLM_OK) break;
    }
    if (f) fclose(f);
    if (s != LLM_OK || !h) goto done;
    snprintf(path, sizeof path, "%s/history.%d", o->out, rank);
    f = fopen(path, "w");
    int epochs = 0, stopped = 0;
    llm_history_epochs(h, &epochs);
    llm_history_stopped_early(h, &stopped);
    if (f) {
        fprintf(f, "%d %d\n", epochs, stopped);
        for (int e = 0; e < epochs; e++) {
            double v[4];
            const char *keys[4] = { "loss", "accuracy", "val_loss", "val_accuracy" };
            for (int k = 0; k < 4; k++) llm_history_get(h, keys[k], e, &v[k]);
            fprintf(f, "%.9g %.9g %.9g %.9g\n", v[0], v[1], v[2], v[3]);
        }
        fclose(f);
    }
done:;
    char msg[600];
    snprintf(msg, sizeof msg, "%s", s == LLM_OK ? "" : llm_last_error());
    write_status(o, s, msg);
    if (s != LLM_OK) fprintf(stderr, "dist_worker: rank %d: %s: %s\n", rank, llm_status_string(s), msg);
    llm_history_free(h);
    llm_dataset_free(data);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_backend_free(be);
    llm_dist_free(dist);
    return s == LLM_OK ? 0 : 3;
}

int main(int argc, char **argv) {
    opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 2;
    o.batch = 32;
    o.timeout = -1;
    o.stop_rank = o.die_rank = o.oom_rank = 1;
    o.die_signal = SIGKILL;
    if (argc < 2) { fprintf(stderr, "usage: dist_worker OUTDIR [options]\n"); return 2; }
    o.out = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dist") == 0) o.dist = 1;
        else if (strcmp(a, "--seed-by-rank") == 0) o.seed_by_rank = 1;
        else if (strcmp(a, "--checkpoint") == 0) o.checkpoint = 1;
        else if (strcmp(a, "--own-loop") == 0) o.own_loop = 1;
        else if (v && strcmp(a, "--epochs") == 0) { o.epochs = atoi(v); i++; }
        else if (v && strcmp(a, "--batch") == 0) { o.batch = atoi(v); i++; }
        else if (v && strcmp(a, "--timeout") == 0) { o.timeout = atof(v); i++; }
        else if (v && strcmp(a, "--stop-rank") == 0) { o.stop_rank = atoi(v); i++; }
        else if (v && strcmp(a, "--stop-step") == 0) { o.stop_step = atoi(v); i++; }
        else if (v && strcmp(a, "--die-rank") == 0) { o.die_rank = atoi(v); i++; }
        else if (v && strcmp(a, "--die-step") == 0) { o.die_step = atoi(v); i++; }
        else if (v && strcmp(a, "--oom-rank") == 0) { o.oom_rank = atoi(v); i++; }
        else if (v && strcmp(a, "--oom-step") == 0) { o.oom_step = atoi(v); i++; }
        else if (v && strcmp(a, "--die-signal") == 0) { o.die_signal = strcmp(v, "stop") == 0 ? SIGSTOP : SIGKILL; i++; }
        else { fprintf(stderr, "dist_worker: bad argument '%s'\n", a); return 2; }
    }
    g_opts = &o;
    return run(&o, &argc, &argv);
}
