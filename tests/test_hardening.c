/* Hardening: the library under failing allocations, and model files under
 * interrupted work.
 *
 * alloc: a small end-to-end run (backend, text pipeline, Embedding -> LSTM
 * -> Dense, compile, fit with a checkpoint, save, load, predict,
 * predict_text, free) is first counted (K allocations), then repeated with
 * allocation N failing for N = 0 .. K-1 (llm__alloc_fail_after, a private
 * hook in src/core/internal.h). Every call must return LLM_OK or
 * LLM_ERR_OUT_OF_MEMORY with a message, never crash, and the cleanup must
 * free everything: `make asan` (CK_FORK=no, LeakSanitizer) catches leaks.
 * LLM_HARDENING_STRIDE=s tries only every s-th N (default 1: all).
 *
 * kill: spam_train is SIGKILLed at several points, many of them inside the
 * write window of the model or checkpoint file (a *.tmp.* file present);
 * after each kill the model and checkpoint must load, and leftover temporary
 * files are tolerated but never taken for them (LLM_HARDENING_VERBOSE=1
 * lists the kill points). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"
#include "core/internal.h"

extern char **environ;

/* ------------------------------------------------------ helpers */

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Number of entries of dir whose name contains ".tmp." (*tmp) and of any
 * other name outside the two allowed (*other, whose first name goes to
 * other_name). */
static void scan_dir(const char *dir, const char *allow1, const char *allow2, int *tmp,
                     int *other, char *other_name, size_t other_len) {
    *tmp = *other = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) continue;
        if (strcmp(n, allow1) == 0 || (allow2 && strcmp(n, allow2) == 0)) continue;
        if (strstr(n, ".tmp.")) { (*tmp)++; continue; }
        if (*other == 0 && other_name) snprintf(other_name, other_len, "%s", n);
        (*other)++;
    }
    closedir(d);
}

/* ------------------------------------------- allocation failures */

#define SEQ 12
static const char *const TEXTS[] = {
    "cheap pills buy now limited offer", "meeting notes for monday morning",
    "buy cheap watches now now now", "lunch on monday with the team?",
    "win money fast click here", "please review the attached report",
    "free prize claim your reward today", "the build is green again",
};
#define NTEXTS ((int)(sizeof TEXTS / sizeof TEXTS[0]))
static const char MAIL[] = "From: a@b.c\nSubject: cheap pills\n\nbuy now, claim your prize";

typedef struct scenario {
    const char *dir;
    int variant;            /* 0: Embedding, LSTM, Dense; 1: Embedding, bidirectional GRU,
                               pooling, LayerNorm, Dropout, Dense, with e-mail input;
                               2: a functional model (graph.h), one embedding applied
                               twice, LSTM and pooled branches concatenated, Dense */
    int failed;             /* a call failed */
    llm_status status;      /* its status */
    char call[128];         /* and what it was */
    char error[512];        /* and its message */
    float pred[2], text_pred; /* outputs of a run where every call succeeded */
    float ensemble_pred;
} scenario;

/* A step: LLM_OK goes on; a failure records itself and jumps to cleanup. */
#define STEP(sc, expr) do { \
        llm_clear_error(); \
        llm_status st__ = (expr); \
        if (st__ != LLM_OK) { \
            (sc)->failed = 1; \
            (sc)->status = st__; \
            snprintf((sc)->call, sizeof (sc)->call, "%s", #expr); \
            snprintf((sc)->error, sizeof (sc)->error, "%s", llm_last_error()); \
            goto cleanup; \
        } \
    } while (0)

static void scenario_run(scenario *sc) {
    char model_path[256], ckpt_path[256];
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", sc->dir);
    snprintf(ckpt_path, sizeof ckpt_path, "%s/model.ckpt", sc->dir);
    llm_backend *be = NULL;
    llm_text_corpus *corpus = NULL;
    llm_vocab_builder *vb = NULL;
    llm_vocab *vocab = NULL;
    llm_dataset *ds = NULL;
    llm_model *m = NULL, *loaded = NULL, *resumed = NULL, *member = NULL, *ens = NULL, *ens_loaded = NULL;
    llm_optimizer *adam = NULL;
    llm_history *hist = NULL;
    llm_tensor *x = NULL, *y = NULL;
    const char *classes[] = { "ham", "spam" };

    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 2; /* the pool too; kernels allocate nothing, so the order is fixed */
    STEP(sc, llm_backend_create(&be, LLM_BACKEND_CPU, &bo));

    /* text: a corpus, a vocabulary built with the builder, a dataset */
    STEP(sc, llm_text_corpus_create(&corpus, classes, 2));
    for (int i = 0; i < NTEXTS; i++)
        STEP(sc, llm_text_corpus_add(corpus, TEXTS[i], strlen(TEXTS[i]), i % 2 == 0 ? 1 : 0));
    STEP(sc, llm_vocab_builder_create(&vb, NULL));
    for (int i = 0; i < NTEXTS; i++)
        STEP(sc, llm_vocab_builder_add(vb, TEXTS[i], strlen(TEXTS[i])));
    llm_vocab_options vopt;
    llm_vocab_options_init(&vopt);
    vopt.max_tokens = 40;
    STEP(sc, llm_vocab_builder_build(vb, &vopt, &vocab));
    llm_vectorize_options vec;
    llm_vectorize_options_init(&vec);
    vec.seq_len = SEQ;
    STEP(sc, llm_dataset_from_corpus(&ds, corpus, vocab, &vec));

    /* the model */
    if (sc->variant == 2) {
        STEP(sc, llm_model_functional(&m, be));
        STEP(sc, llm_model_set_seed(m, 7));
        int64_t seq = SEQ;
        llm_node *in, *e1, *e2, *a, *b, *both, *out;
        STEP(sc, llm_model_input(m, LLM_DTYPE_I32, 1, &seq, &in));
        llm_layer *emb = llm_layer_embedding(40, 4); /* the first apply takes it, also on failure */
        STEP(sc, llm_model_apply(m, emb, in, &e1));
        STEP(sc, llm_model_apply(m, emb, in, &e2));
        STEP(sc, llm_model_apply(m, llm_layer_lstm(5, LLM_RETURN_LAST), e1, &a));
        STEP(sc, llm_model_apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), e2, &b));
        STEP(sc, llm_model_merge(m, llm_layer_concatenate(), 2, (llm_node *[]){ a, b }, &both));
        STEP(sc, llm_model_apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), both, &out));
        STEP(sc, llm_model_set_outputs(m, 1, &out));
    } else {
        STEP(sc, llm_model_sequential(&m, be));
        STEP(sc, llm_model_set_seed(m, 7));
        STEP(sc, llm_model_add(m, llm_layer_embedding(40, 4)));
        if (sc->variant == 0) {
            STEP(sc, llm_model_add(m, llm_layer_lstm(5, LLM_RETURN_LAST)));
        } else {
            STEP(sc, llm_model_add(m, llm_layer_bidirectional(llm_layer_gru(3, LLM_RETURN_SEQUENCES))));
            STEP(sc, llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)));
            STEP(sc, llm_model_add(m, llm_layer_layernorm(1e-5f)));
            STEP(sc, llm_model_add(m, llm_layer_dropout(0.1f)));
        }
        STEP(sc, llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    }
    llm_email_options eo;
    llm_email_options_init(&eo);
    eo.keep_headers = "From";
    STEP(sc, llm_model_set_text_pipeline(m, vocab, &vec, sc->variant == 1 ? &eo : NULL));
    STEP(sc, llm_model_set_metadata(m, "class_names", "ham,spam"));
    STEP(sc, llm_optimizer_adam(&adam, 1e-2f));
    STEP(sc, llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 1;
    fo.batch_size = 4;
    fo.checkpoint_path = ckpt_path;
    if (sc->variant == 1) {
        fo.epochs = 2;
        fo.validation_split = 0.25f;
        fo.early_stopping = LLM_MONITOR_VAL_LOSS;
        fo.restore_best = 1;
    }
    STEP(sc, llm_model_fit(m, ds, &fo, &hist));
    llm_metrics met;
    llm_metrics_init(&met);
    STEP(sc, llm_model_evaluate(m, ds, 4, &met));
    float direct;
    STEP(sc, llm_model_predict_text(m, MAIL, strlen(MAIL), &direct, 1));

    /* files */
    STEP(sc, llm_model_save(m, model_path));
    STEP(sc, llm_model_load(&loaded, be, model_path));
    STEP(sc, llm_model_load_checkpoint(&resumed, be, ckpt_path));
    /* an ensemble of the saved model and the resumed one, saved over the
     * model file and read back */
    STEP(sc, llm_model_ensemble(&ens, be));
    STEP(sc, llm_model_load(&member, be, model_path));
    STEP(sc, llm_model_ensemble_add(ens, member));
    member = NULL; /* the ensemble owns it now */
    STEP(sc, llm_model_ensemble_add(ens, resumed));
    resumed = NULL;
    STEP(sc, llm_model_save(ens, model_path));
    STEP(sc, llm_model_load(&ens_loaded, be, model_path));
    STEP(sc, llm_model_predict_text(ens_loaded, MAIL, strlen(MAIL), &sc->ensemble_pred, 1));

    /* predictions */
    int32_t ids[2 * SEQ];
    for (int i = 0; i < 2 * SEQ; i++) ids[i] = i % 3 == 0 ? 0 : 2 + (i * 5) % 30;
    STEP(sc, llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ 2, SEQ }, ids, sizeof ids));
    STEP(sc, llm_model_predict(loaded, x, &y));
    STEP(sc, llm_tensor_to_host(y, sc->pred, sizeof sc->pred));
    STEP(sc, llm_model_predict_text(loaded, MAIL, strlen(MAIL), &sc->text_pred, 1));

cleanup:
    llm_tensor_free(y);
    llm_tensor_free(x);
    llm_history_free(hist);
    llm_optimizer_free(adam);
    llm_model_free(ens_loaded);
    llm_model_free(ens);
    llm_model_free(member);
    llm_model_free(resumed);
    llm_model_free(loaded);
    llm_model_free(m);
    llm_dataset_free(ds);
    llm_vocab_free(vocab);
    llm_vocab_builder_free(vb);
    llm_text_corpus_free(corpus);
    llm_backend_free(be);
}

START_TEST(every_allocation_may_fail) {
    char dir[] = "/tmp/llm_hardening_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int64_t stride = 1;
    const char *env = getenv("LLM_HARDENING_STRIDE");
    if (env && atoll(env) > 0) stride = atoll(env);
    for (int variant = 0; variant < 3; variant++) {
        /* counted run: the reference */
        scenario ref = { .dir = dir, .variant = variant };
        llm__alloc_fail_after(INT64_MAX);
        scenario_run(&ref);
        int64_t k = llm__alloc_count();
        llm__alloc_fail_after(-1);
        ck_assert_msg(!ref.failed, "reference run: %s: %s: %s", ref.call,
                      llm_status_string(ref.status), ref.error);
        ck_assert_int_gt(k, 100);

        int64_t tried = 0, failed_calls = 0, absorbed = 0;
        for (int64_t n = 0; n < k; n += stride) {
            rm_tree(dir);
            ck_assert_int_eq(mkdir(dir, 0700), 0);
            scenario sc = { .dir = dir, .variant = variant };
            llm__alloc_fail_after(n);
            scenario_run(&sc);
            int fired = llm__alloc_fired();
            llm__alloc_fail_after(-1);
            tried++;
            ck_assert_msg(fired, "variant %d: allocation %lld of %lld was never made", variant,
                          (long long)n, (long long)k);
            if (sc.failed) {
                failed_calls++;
                ck_assert_msg(sc.status == LLM_ERR_OUT_OF_MEMORY,
                              "variant %d, allocation %lld failing: %s returned %s (expected out "
                              "of memory): %s", variant, (long long)n, sc.call,
                              llm_status_string(sc.status), sc.error);
                ck_assert_msg(sc.error[0] != '\0', "variant %d, allocation %lld failing: %s left "
                              "no message", variant, (long long)n, sc.call);
            } else {
                /* the failure was absorbed (e.g. a fallback): results must not change */
                absorbed++;
                ck_assert_msg(memcmp(sc.pred, ref.pred, sizeof ref.pred) == 0 &&
                                  memcmp(&sc.text_pred, &ref.text_pred, sizeof ref.text_pred) == 0 &&
                                  memcmp(&sc.ensemble_pred, &ref.ensemble_pred, sizeof ref.ensemble_pred) == 0,
                              "variant %d, allocation %lld failing: every call succeeded but the "
                              "predictions differ", variant, (long long)n);
            }
            /* a failed save removes its temporary file */
            int tmp, other;
            char other_name[256] = "";
            scan_dir(dir, "model.safetensors", "model.ckpt", &tmp, &other, other_name,
                     sizeof other_name);
            ck_assert_msg(tmp == 0 && other == 0,
                          "variant %d, allocation %lld failing (%s): %d temporary and %d other "
                          "files left (%s)", variant, (long long)n,
                          sc.failed ? sc.call : "no call failed", tmp, other, other_name);
        }
        fprintf(stderr, "hardening: variant %d: %lld allocations in the run, %lld failure points "
                        "tried (stride %lld): %lld failed with out of memory, %lld absorbed\n",
                variant, (long long)k, (long long)tried, (long long)stride,
                (long long)failed_calls, (long long)absorbed);
    }
    rm_tree(dir);
}
END_TEST

/* ----------------------------------------------- interrupted work */

static int has_tmp(const char *dir) {
    int tmp, other;
    scan_dir(dir, "m.safetensors", "m.ckpt", &tmp, &other, NULL, 0);
    return tmp;
}

static int mtime_ns(const char *path, long long *t) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    *t = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec + (long long)st.st_ino;
    return 1;
}

static void spin_us(double us) {
    double t = tu_now() + us * 1e-6;
    while (tu_now() < t) {}
}

/* How a run is stopped. */
typedef enum { KILL_IN_WINDOW, KILL_AFTER_CHANGE, KILL_AT_TIME } kill_kind;

START_TEST(killed_training_leaves_loadable_files) {
    char dir[] = "/tmp/llm_killtest_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char model[256], ckpt[256], prog[4200];
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
    snprintf(prog, sizeof prog, "%s/spam_train", tu_bin_dir());
    ck_assert_msg(access(prog, X_OK) == 0, "%s is missing: build the examples first", prog);
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));

    /* kill plan: kind, the change/window to wait for (1-based), then a delay */
    static const struct { kill_kind kind; int nth; double delay_us; } plan[] = {
        { KILL_AT_TIME, 0, 0 }, /* before anything is written: no file at all */
        { KILL_IN_WINDOW, 1, 0 },    { KILL_IN_WINDOW, 2, 20 },   { KILL_IN_WINDOW, 3, 50 },
        { KILL_IN_WINDOW, 5, 100 },  { KILL_IN_WINDOW, 8, 200 },  { KILL_IN_WINDOW, 13, 400 },
        { KILL_IN_WINDOW, 21, 0 },   { KILL_IN_WINDOW, 4, 10 },   { KILL_IN_WINDOW, 6, 800 },
        { KILL_AFTER_CHANGE, 1, 0 }, { KILL_AFTER_CHANGE, 2, 30 }, { KILL_AFTER_CHANGE, 4, 150 },
        { KILL_AFTER_CHANGE, 7, 500 }, { KILL_AFTER_CHANGE, 10, 1000 },
        { KILL_AT_TIME, 0, 30000 },  { KILL_AT_TIME, 0, 60000 }, { KILL_AT_TIME, 0, 90000 },
        { KILL_AT_TIME, 0, 120000 }, { KILL_AT_TIME, 0, 150000 },
    };
    int nplan = (int)(sizeof plan / sizeof plan[0]);
    int killed = 0, in_window = 0, mid_write = 0, loads = 0, stray_max = 0, finished = 0;
    for (int i = 0; i < nplan; i++) {
        char *argv[] = { "spam_train", "--data", "data/emails", "--model", model,
                         "--checkpoint", ckpt, "--epochs", "3000", "--seq", "40", "--vocab", "300",
                         "--embed", "8", "--hidden", "8", "--threads", "1", "--quiet", NULL };
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        pid_t pid;
        int strays_before = has_tmp(dir);
        long long m0 = -1, c0 = -1;
        mtime_ns(model, &m0);
        mtime_ns(ckpt, &c0);
        int rc = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        ck_assert_msg(rc == 0, "posix_spawn %s: %s", prog, strerror(rc));
        double t0 = tu_now();
        int status = 0, exited = 0, seen = 0, was_tmp = 0;
        if (plan[i].kind == KILL_AT_TIME) {
            spin_us(plan[i].delay_us);
        } else {
            /* watch tightly: a window (a *.tmp.* file present) or a change
               of either file; give up waiting when the program ends */
            /* stray files of earlier kills stay: a window is one more */
            int prev_tmp = 0, strays = has_tmp(dir);
            for (;;) {
                if (waitpid(pid, &status, WNOHANG) == pid) { exited = 1; break; }
                ck_assert_msg(tu_now() - t0 < 60, "spam_train ran longer than 60 s");
                if (plan[i].kind == KILL_IN_WINDOW) {
                    int t = has_tmp(dir) > strays;
                    if (t && !prev_tmp && ++seen == plan[i].nth) { was_tmp = 1; break; }
                    prev_tmp = t;
                } else {
                    long long m1 = -1, c1 = -1;
                    mtime_ns(model, &m1);
                    mtime_ns(ckpt, &c1);
                    if (m1 != m0 || c1 != c0) {
                        m0 = m1;
                        c0 = c1;
                        if (++seen == plan[i].nth) break;
                    }
                }
            }
            if (!exited) spin_us(plan[i].delay_us);
        }
        if (!exited) {
            kill(pid, SIGKILL);
            ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        }
        if (getenv("LLM_HARDENING_VERBOSE"))
            fprintf(stderr, "kill point %d: kind %d nth %d seen %d window %d exited %d after %.1f ms\n",
                    i, (int)plan[i].kind, plan[i].nth, seen, was_tmp, exited, (tu_now() - t0) * 1e3);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
            killed++;
            in_window += was_tmp;
        } else {
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "kill point %d: spam_train ended with status %d", i, status);
            finished++;
        }

        /* whatever exists must load; stray temporary files are ignored */
        struct stat st;
        if (stat(model, &st) == 0) {
            llm_model *m;
            ck_assert_msg(llm_model_load(&m, be, model) == LLM_OK, "kill point %d: model: %s", i,
                          llm_last_error());
            llm_model_free(m);
            loads++;
        }
        if (stat(ckpt, &st) == 0) {
            llm_model *m;
            ck_assert_msg(llm_model_load_checkpoint(&m, be, ckpt) == LLM_OK,
                          "kill point %d: checkpoint: %s", i, llm_last_error());
            int done = 0;
            ck_assert_ok(llm_model_epochs_done(m, &done));
            ck_assert_int_ge(done, 1);
            llm_model_free(m);
            loads++;
        }
        int tmp, other;
        char other_name[256] = "";
        scan_dir(dir, "m.safetensors", "m.ckpt", &tmp, &other, other_name, sizeof other_name);
        ck_assert_msg(other == 0, "kill point %d: unexpected file %s", i, other_name);
        if (tmp > stray_max) stray_max = tmp;
        mid_write += tmp > strays_before; /* killed while writing: its temporary file stayed */
        /* a half-written temporary file is refused cleanly, never a crash */
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strstr(e->d_name, ".tmp.")) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            llm_model *m = NULL;
            llm_status ls = llm_model_load(&m, be, p);
            if (ls == LLM_OK) llm_model_free(m);
            else ck_assert_msg(llm_last_error()[0] != '\0', "loading %s: no message", p);
        }
        closedir(d);
    }
    /* 3000 epochs outlast every kill point, so each run is killed, whatever
     * the machine's speed; every run but the first starts from the files
     * the last one left */
    ck_assert_int_ge(killed, nplan - 1);
    ck_assert_int_ge(in_window, 5);
    fprintf(stderr, "hardening: %d kill points (%d of them sent in a write window, %d caught a "
                    "write half-done; %d runs finished first), %d files loaded, %d stray *.tmp.* "
                    "files left\n", killed, in_window, mid_write, finished, loads, stray_max);
    llm_backend_free(be);
    rm_tree(dir);
}
END_TEST

Suite *suite_hardening(void) {
    Suite *s = suite_create("hardening");
    TCase *a = tcase_create("alloc");
    tcase_set_timeout(a, 300);
    tcase_add_test(a, every_allocation_may_fail);
    suite_add_tcase(s, a);
    TCase *k = tcase_create("kill");
    tcase_set_timeout(k, 300);
    tcase_add_test(k, killed_training_leaves_loadable_files);
    suite_add_tcase(s, k);
    return s;
}
