/* Data-parallel training over MPI (llm/dist.h, docs/DISTRIBUTED.md).
 *
 * The MPI cases run tests/dist/dist_worker.c (built next to this runner)
 * under `mpirun --oversubscribe --allow-run-as-root -np N` (Open MPI's
 * options) and compare what it leaves in a temporary folder:
 *   - 2 and 3 ranks with a global batch of 32 end with the weights and the
 *     per-epoch figures of one process with batch 32 (float tolerance), and
 *     all ranks hold identical weights;
 *   - a job of one rank without mpirun is bit-for-bit a plain fit;
 *   - llm_dist_train_on_batch with a rank that has no rows (x = y = NULL)
 *     matches one process;
 *   - ranks set up differently fail at once with a message, not a hang;
 *   - one rank's callback stopping stops every rank after the same step;
 *   - a failure on one rank fails every rank at once;
 *   - a rank that hangs (SIGSTOP) or dies (SIGKILL) makes rank 0 fail with
 *     the timeout error within a bounded time, and the last checkpoint
 *     still loads; under a plain mpirun the job ends non-zero.
 * Without mpirun on PATH the MPI cases are skipped with the reason printed;
 * LLM_TEST_REQUIRE_MPI=1 (.ci/run) turns that skip into a failure. The
 * cases without MPI (the missing module, the options, detection) always run. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"

extern char **environ;

static char g_mpirun[4096];

static int find_mpirun(void) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    const char *p = path;
    while (*p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n < sizeof g_mpirun - 16) {
            snprintf(g_mpirun, sizeof g_mpirun, "%.*s/mpirun", (int)n, p);
            if (access(g_mpirun, X_OK) == 0) return 1;
        }
        if (!end) break;
        p = end + 1;
    }
    g_mpirun[0] = '\0';
    return 0;
}

/* The folder of this runner (build/tests), where dist_worker is. */
static const char *self_dir(void) {
    static char dir[3072]; /* room for a file name after it in 4096 */
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    ck_assert_int_gt(n, 0);
    dir[n] = '\0';
    *strrchr(dir, '/') = '\0';
    return dir;
}

static void worker_path(char *buf, size_t len) {
    snprintf(buf, len, "%s/dist_worker", self_dir());
    ck_assert_msg(access(buf, X_OK) == 0, "%s is missing: build it with make (it comes with the test runner)", buf);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static char *make_tmpdir(void) {
    char *d = strdup("/tmp/llm_dist_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static void rm_tmpdir(char *d) {
    nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

typedef struct run_result {
    int code;       /* exit status, -1 when killed by a signal */
    double secs;
    char out[3000];  /* the tail of stdout and stderr together (Check caps messages at 4 KiB) */
} run_result;

/* Runs argv (argv[0] a path) with the output in r->out; extra_env
 * ("NAME=value") is added to the environment. Killed and failed past limit_s. */
static void run(run_result *r, double limit_s, const char *extra_env, char *const argv[]) {
    char log[] = "/tmp/llm_dist_out_XXXXXX";
    int fd = mkstemp(log);
    ck_assert_int_ge(fd, 0);
    unlink(log);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    /* the environment, plus extra_env, plus LeakSanitizer suppressions for
       Open MPI's own allocations when the worker is a sanitizer build (with
       the slow unwinder: the fast one stops in Open MPI's frames, which have
       no frame pointers, before reaching a frame the suppressions name) */
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 4, sizeof *env);
    ck_assert_ptr_nonnull(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LSAN_OPTIONS=", 13) != 0 && strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
            env[k++] = environ[i];
    char lsan[4200], asan[1200];
    snprintf(lsan, sizeof lsan, "LSAN_OPTIONS=suppressions=%s/../../tests/dist/lsan-mpi.supp:print_suppressions=0",
             self_dir());
    const char *asan_now = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%sfast_unwind_on_malloc=0", asan_now ? asan_now : "",
             asan_now && asan_now[0] ? ":" : "");
    env[k++] = lsan;
    env[k++] = asan;
    if (extra_env) env[k++] = (char *)extra_env;
    env[k] = NULL;
    pid_t pid;
    double t0 = tu_now();
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    ck_assert_msg(rc == 0, "posix_spawn %s: %s", argv[0], strerror(rc));
    int status = 0;
    int timed_out = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (tu_now() - t0 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = 1;
            break;
        }
        nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
    }
    r->secs = tu_now() - t0;
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof r->out - 1 ? size - (off_t)sizeof r->out + 1 : 0;
    ssize_t got = pread(fd, r->out, sizeof r->out - 1, from);
    r->out[got > 0 ? got : 0] = '\0';
    close(fd);
    ck_assert_msg(!timed_out, "%s ran longer than %.0f s and was killed (a hang); output:\n%s", argv[0], limit_s,
                  r->out);
}

/* mpirun with Open MPI's options for a test box (root in CI, 2 cores, no
 * single-copy shared memory in containers), then np ranks of the worker. */
#define MPI_ARGS(np) g_mpirun, "--oversubscribe", "--allow-run-as-root", "--mca", \
    "btl_vader_single_copy_mechanism", "none", "-np", np
#define RUN_MPI(r, limit, ...) do { \
        char w__[4096]; worker_path(w__, sizeof w__); \
        char *argv__[] = { __VA_ARGS__, NULL }; \
        for (char **a__ = argv__; *a__; a__++) if (strcmp(*a__, "WORKER") == 0) *a__ = w__; \
        run((r), (limit), NULL, argv__); \
    } while (0)

static char *read_file(const char *dir, const char *name, int rank, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%d", dir, name, rank);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    if (len) *len = got;
    return buf;
}

/* status.R as written by the worker: the code, and the message into msg. */
static int worker_status(const char *dir, int rank, char *msg, size_t len) {
    char *s = read_file(dir, "status", rank, NULL);
    ck_assert_msg(s != NULL, "rank %d wrote no status in %s", rank, dir);
    int code = atoi(s);
    const char *sp = strchr(s, ' ');
    snprintf(msg, len, "%s", sp ? sp + 1 : "");
    free(s);
    return code;
}

/* rank's fit succeeded, and the whole run exited 0 (which also catches a
 * sanitizer's report at exit) */
static void assert_ok(const char *dir, int rank, const run_result *r) {
    char msg[1024];
    int code = worker_status(dir, rank, msg, sizeof msg);
    ck_assert_msg(code == 0, "rank %d failed: %d %s\noutput:\n%s", rank, code, msg, r->out);
    ck_assert_msg(r->code == 0, "the run exited with %d; output:\n%s", r->code, r->out);
}

static void compare_weights(const char *dir_a, int rank_a, const char *dir_b, int rank_b, double atol, double rtol) {
    size_t na = 0, nb = 0;
    char *a = read_file(dir_a, "weights", rank_a, &na), *b = read_file(dir_b, "weights", rank_b, &nb);
    ck_assert_msg(a && b, "weights missing");
    ck_assert_uint_eq(na, nb);
    ck_assert_uint_gt(na, 1000 * 4);
    int64_t bad = -1;
    int ok = tu_close((const float *)a, (const float *)b, (int64_t)(na / 4), atol, rtol, &bad);
    ck_assert_msg(ok, "weights differ at %lld: %.9g vs %.9g (%s rank %d vs %s rank %d)", (long long)bad,
                  (double)((const float *)a)[bad], (double)((const float *)b)[bad], dir_a, rank_a, dir_b, rank_b);
    free(a);
    free(b);
}

static void compare_history(const char *dir_a, int rank_a, const char *dir_b, int rank_b, double rtol) {
    char *a = read_file(dir_a, "history", rank_a, NULL), *b = read_file(dir_b, "history", rank_b, NULL);
    ck_assert_msg(a && b, "history missing");
    char *pa = a, *pb = b;
    int n = 0;
    for (;;) {
        char *ea, *eb;
        double x = strtod(pa, &ea), y = strtod(pb, &eb);
        if (ea == pa || eb == pb) { ck_assert_msg(ea == pa && eb == pb, "histories differ in length"); break; }
        ck_assert_msg(fabs(x - y) <= rtol * fabs(y) + 1e-7, "history value %d: %.9g vs %.9g", n, x, y);
        pa = ea;
        pb = eb;
        n++;
    }
    ck_assert_int_ge(n, 2 + 4 * 2); /* at least two epochs */
    free(a);
    free(b);
}

/* ---------------------------------------------------------- always */

START_TEST(missing_module_is_unavailable) {
    char w[4096], *dir = make_tmpdir();
    worker_path(w, sizeof w);
    run_result r;
    char *argv[] = { w, dir, "--dist", NULL };
    run(&r, 60, "LLM_MPI_MODULE=/nonexistent/libllm-mpi.so", argv);
    char msg[1024];
    ck_assert_int_eq(r.code, 3);
    ck_assert_int_eq(worker_status(dir, 0, msg, sizeof msg), LLM_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(msg, "llm_dist_init") && strstr(msg, "LLM_MPI_MODULE=/nonexistent/libllm-mpi.so"), "%s", msg);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(api_arguments) {
    int n = -1;
    ck_assert_ok(llm_dist_launched(&n));
    ck_assert_int_ge(n, 0);
    ck_assert_fails(llm_dist_launched(NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dist_init(NULL, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_dist *d = (llm_dist *)1;
    int argc = 1;
    ck_assert_fails(llm_dist_init(&d, &argc, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d);
    ck_assert_fails(llm_dist_from_comm(&d, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dist_rank(NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dist_size(NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dist_set_timeout(NULL, 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_dist_barrier(NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_dist_free(NULL);
    ck_assert_str_eq(llm_status_string(LLM_ERR_DISTRIBUTED), "distributed training failure");
}
END_TEST

START_TEST(launcher_detection) {
    /* Check forks each test by default; under CK_FORK=no restore the variables */
    const char *keep = getenv("OMPI_COMM_WORLD_SIZE"), *keep_pmi = getenv("PMI_SIZE");
    char *k1 = keep ? strdup(keep) : NULL, *k2 = keep_pmi ? strdup(keep_pmi) : NULL;
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    unsetenv("MV2_COMM_WORLD_SIZE");
    int n = -1;
    ck_assert_ok(llm_dist_launched(&n));
    ck_assert_int_eq(n, 0);
    setenv("PMI_SIZE", "8", 1);
    ck_assert_ok(llm_dist_launched(&n));
    ck_assert_int_eq(n, 8);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    ck_assert_ok(llm_dist_launched(&n));
    ck_assert_int_eq(n, 4);
    setenv("OMPI_COMM_WORLD_SIZE", "x", 1);
    ck_assert_ok(llm_dist_launched(&n));
    ck_assert_int_eq(n, 8);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    if (k1) setenv("OMPI_COMM_WORLD_SIZE", k1, 1);
    if (k2) setenv("PMI_SIZE", k2, 1);
    free(k1);
    free(k2);
}
END_TEST

/* A program built against the struct before `dist` was appended keeps
 * working: the library reads only its size and takes dist = NULL. */
START_TEST(older_fit_options_mean_no_dist) {
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adam(&opt, 1e-2f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_NONE));
    float x[16 * 3], y[16];
    tu_fill(x, 48, 3, -1, 1);
    for (int i = 0; i < 16; i++) y[i] = x[3 * i] > 0;
    llm_dataset *ds;
    ck_assert_ok(llm_dataset_from_host(&ds, LLM_DTYPE_F32, 2, (int64_t[]){ 16, 3 }, x, LLM_DTYPE_F32, 1,
                                       (int64_t[]){ 16 }, y));
    struct { llm_fit_options o; char junk[64]; } big;
    llm_fit_options_init(&big.o);
    memset(big.junk, 0xff, sizeof big.junk);
    big.o.dist = (llm_dist *)big.junk; /* garbage the library must not read */
    big.o.size = offsetof(llm_fit_options, dist);
    big.o.batch_size = 4;
    ck_assert_ok(llm_model_fit(m, ds, &big.o, NULL));
    llm_dataset_free(ds);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_backend_free(be);
}
END_TEST

/* ---------------------------------------------------------- with mpirun */

START_TEST(equivalent_to_one_process) {
    char *one = make_tmpdir(), *two = make_tmpdir(), *three = make_tmpdir();
    run_result r;
    /* one process, batch 32, three epochs (103 training rows: 32, 32, 32, 7) */
    RUN_MPI(&r, 120, "WORKER", one, "--epochs", "3");
    assert_ok(one, 0, &r);
    double t1 = r.secs;
    RUN_MPI(&r, 120, MPI_ARGS("2"), "WORKER", two, "--dist", "--epochs", "3");
    for (int k = 0; k < 2; k++) assert_ok(two, k, &r);
    double t2 = r.secs;
    /* three ranks: slices of 11, 11, 10 and 3, 2, 2 rows */
    RUN_MPI(&r, 120, MPI_ARGS("3"), "WORKER", three, "--dist", "--epochs", "3");
    for (int k = 0; k < 3; k++) assert_ok(three, k, &r);
    fprintf(stderr, "dist: equivalence runs took %.1f s (1 process), %.1f s (mpirun -np 2), %.1f s (-np 3)\n", t1, t2,
            r.secs);
    compare_weights(two, 0, one, 0, 2e-5, 1e-4);
    compare_weights(three, 0, one, 0, 2e-5, 1e-4);
    compare_history(two, 0, one, 0, 1e-5);
    compare_history(three, 0, one, 0, 1e-5);
    /* every rank holds exactly the same weights and reports the same figures */
    compare_weights(two, 1, two, 0, 0, 0);
    compare_weights(three, 2, three, 0, 0, 0);
    compare_history(two, 1, two, 0, 0);
    compare_history(three, 1, three, 0, 0);
    rm_tmpdir(one);
    rm_tmpdir(two);
    rm_tmpdir(three);
}
END_TEST

/* lm_train's own loop (llm_dist_sync_model + llm_dist_train_on_batch): two
 * ranks at a global batch of 8 end with the weights and validation loss of
 * one process. */
static double best_val_loss(const char *out) {
    const char *p = strstr(out, "best val_loss ");
    ck_assert_msg(p != NULL, "no summary line in:\n%s", out);
    return atof(p + strlen("best val_loss "));
}

START_TEST(lm_train_distributed_matches_one_process) {
    char *dir = make_tmpdir();
    char text[4200], one[4200], two[4200], bin[4200];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(one, sizeof one, "%s/one.safetensors", dir);
    snprintf(two, sizeof two, "%s/two.safetensors", dir);
    snprintf(bin, sizeof bin, "%s/lm_train", tu_bin_dir());
    FILE *f = fopen(text, "w");
    ck_assert_ptr_nonnull(f);
    uint64_t st = 3;
    for (int i = 0; i < 6000; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        static const char *w[] = { "peace ", "union ", "the ", "of ", "nation ", "we ", "will ", "build.\n" };
        fputs(w[(st >> 33) % 8], f);
    }
    fclose(f);
    run_result r;
#define LM_ARGS "--data", text, "--ctx", "16", "--dim", "16", "--layers", "1", "--heads", "2", "--batch", "8", \
        "--steps", "40", "--eval-every", "20", "--lr", "3e-3", "--checkpoint", "none", "--threads", "1", "--quiet"
    { char *argv[] = { bin, LM_ARGS, "--model", one, NULL }; run(&r, 120, NULL, argv); }
    ck_assert_msg(r.code == 0, "one process: exit %d\n%s", r.code, r.out);
    double v1 = best_val_loss(r.out);
    { char *argv[] = { MPI_ARGS("2"), bin, LM_ARGS, "--model", two, "--distributed", NULL }; run(&r, 120, NULL, argv); }
    ck_assert_msg(r.code == 0, "two ranks: exit %d\n%s", r.code, r.out);
    double v2 = best_val_loss(r.out);
#undef LM_ARGS
    ck_assert_msg(fabs(v1 - v2) <= 1e-4 * fabs(v1), "validation loss %.7f (one process) vs %.7f (two ranks)", v1, v2);
    llm_backend *be = NULL;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    llm_model *a = NULL, *b = NULL;
    ck_assert_ok(llm_model_load(&a, be, one));
    ck_assert_ok(llm_model_load(&b, be, two));
    static float wa[258 * 16], wb[258 * 16];
    ck_assert_ok(llm_model_get_param(a, "transformer_embedding_0.token", wa, sizeof wa));
    ck_assert_ok(llm_model_get_param(b, "transformer_embedding_0.token", wb, sizeof wb));
    double worst = 0;
    for (size_t i = 0; i < sizeof wa / sizeof wa[0]; i++) worst = fmax(worst, fabs((double)wa[i] - wb[i]));
    ck_assert_msg(worst <= 1e-5, "token table differs by %g", worst);
    llm_model_free(a);
    llm_model_free(b);
    llm_backend_free(be);
    rm_tmpdir(dir);
}
END_TEST

/* llm_dist_train_on_batch in a loop of one's own on global batches of 1, 3
 * and 32 rows: rank 1 of 2 has no rows in every batch of 1 and passes x = y
 * = NULL, and the weights still equal one process's after 30 steps. */
START_TEST(own_loop_with_empty_shares) {
    char *one = make_tmpdir(), *two = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 120, "WORKER", one, "--own-loop");
    assert_ok(one, 0, &r);
    RUN_MPI(&r, 120, MPI_ARGS("2"), "WORKER", two, "--dist", "--own-loop");
    assert_ok(two, 0, &r);
    assert_ok(two, 1, &r);
    compare_weights(two, 0, one, 0, 2e-5, 1e-4);
    compare_weights(two, 1, two, 0, 0, 0);
    rm_tmpdir(one);
    rm_tmpdir(two);
}
END_TEST

START_TEST(one_rank_without_mpirun_is_a_plain_fit) {
    char *plain = make_tmpdir(), *single = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 120, "WORKER", plain);
    assert_ok(plain, 0, &r);
    RUN_MPI(&r, 120, "WORKER", single, "--dist");
    assert_ok(single, 0, &r);
    compare_weights(single, 0, plain, 0, 0, 0);
    compare_history(single, 0, plain, 0, 0);
    rm_tmpdir(plain);
    rm_tmpdir(single);
}
END_TEST

START_TEST(different_setups_fail_fast) {
    char *dir = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 60, MPI_ARGS("2"), "WORKER", dir, "--dist", "--seed-by-rank", "--timeout", "30");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(r.secs < 20, "took %.1f s: waited for a timeout instead of failing at once", r.secs);
    for (int k = 0; k < 2; k++) {
        char msg[1024];
        ck_assert_int_eq(worker_status(dir, k, msg, sizeof msg), LLM_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(msg, "ranks disagree on the seed"), "rank %d: %s", k, msg);
    }
    rm_tmpdir(dir);
}
END_TEST

/* rank 1's next allocation after step 2 fails (at the end of the first
 * epoch): rank 1 reports it, rank 0 learns of it at the same point */
START_TEST(local_failure_fails_every_rank) {
    char *dir = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 90, MPI_ARGS("2"), "WORKER", dir, "--dist", "--epochs", "3", "--timeout", "30", "--oom-rank", "1",
            "--oom-step", "2");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(r.secs < 20, "took %.1f s: waited for a timeout instead of failing at once", r.secs);
    char msg[1024];
    int code = worker_status(dir, 1, msg, sizeof msg);
    ck_assert_msg(code == LLM_ERR_OUT_OF_MEMORY, "rank 1: %d %s", code, msg);
    code = worker_status(dir, 0, msg, sizeof msg);
    ck_assert_msg(code == LLM_ERR_DISTRIBUTED && strstr(msg, "another rank failed"), "rank 0: %d %s", code, msg);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(one_callback_stops_every_rank) {
    char *dir = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 60, MPI_ARGS("2"), "WORKER", dir, "--dist", "--epochs", "3", "--stop-rank", "1", "--stop-step", "3");
    for (int k = 0; k < 2; k++) assert_ok(dir, k, &r);
    for (int k = 0; k < 2; k++) {
        char *h = read_file(dir, "history", k, NULL);
        ck_assert_msg(h && strncmp(h, "1 1\n", 4) == 0, "rank %d: history %s", k, h ? h : "(none)");
        free(h);
    }
    compare_weights(dir, 1, dir, 0, 0, 0);
    rm_tmpdir(dir);
}
END_TEST

/* rank 0's status after rank 1 stopped answering at step 6 (epoch 2; the
 * checkpoint of epoch 1 is written), and the checkpoint */
static void check_survivor(const char *dir, const run_result *r) {
    char msg[1024];
    int code = worker_status(dir, 0, msg, sizeof msg);
    ck_assert_msg(code == LLM_ERR_DISTRIBUTED, "rank 0: %d %s\noutput:\n%s", code, msg, r->out);
    ck_assert_msg(strstr(msg, "timed out after 5 s") && strstr(msg, "llm_model_fit"), "rank 0: %s", msg);
    ck_assert_msg(strstr(r->out, "timed out after 5 s"), "the worker printed no timeout error:\n%s", r->out);
    ck_assert_msg(r->secs < 40, "the job took %.1f s", r->secs);
}

static void check_checkpoint(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/ckpt", dir);
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    llm_model *m = NULL;
    ck_assert_ok(llm_model_load_checkpoint(&m, be, path));
    int done = 0;
    ck_assert_ok(llm_model_epochs_done(m, &done));
    ck_assert_int_ge(done, 1);
    llm_model_free(m);
    llm_backend_free(be);
}

START_TEST(hung_rank_times_out) {
    char *dir = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 90, MPI_ARGS("2"), "WORKER", dir, "--dist", "--epochs", "200", "--checkpoint", "--timeout", "5",
            "--die-rank", "1", "--die-step", "6", "--die-signal", "stop");
    ck_assert_int_ne(r.code, 0);
    check_survivor(dir, &r);
    check_checkpoint(dir);
    fprintf(stderr, "dist: a stopped rank: rank 0 failed and the job ended in %.1f s (timeout 5 s)\n", r.secs);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(dead_rank_times_out) {
    /* --enable-recovery: mpirun lets rank 0 live on after rank 1 dies, as on
       a cluster where the launcher does not notice a lost node */
    char *dir = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 90, MPI_ARGS("2"), "--enable-recovery", "WORKER", dir, "--dist", "--epochs", "200", "--checkpoint",
            "--timeout", "5", "--die-rank", "1", "--die-step", "6", "--die-signal", "kill");
    check_survivor(dir, &r);
    check_checkpoint(dir);
    fprintf(stderr, "dist: a killed rank: rank 0 failed with the timeout after %.1f s in all\n", r.secs);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(dead_rank_ends_the_job) {
    /* a plain mpirun ends the job itself when a rank dies */
    char *dir = make_tmpdir();
    run_result r;
    RUN_MPI(&r, 90, MPI_ARGS("2"), "WORKER", dir, "--dist", "--epochs", "200", "--checkpoint", "--timeout", "5",
            "--die-rank", "1", "--die-step", "6", "--die-signal", "kill");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(r.secs < 40, "the job took %.1f s", r.secs);
    check_checkpoint(dir);
    fprintf(stderr, "dist: a killed rank under a plain mpirun: the job ended (status %d) in %.1f s\n", r.code, r.secs);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(mpi_required_but_absent) {
    ck_abort_msg("LLM_TEST_REQUIRE_MPI=1 but mpirun is not on PATH (Debian: scripts/deps.sh mpi)");
}
END_TEST

Suite *suite_dist(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, api_arguments);
    tcase_add_test(tc, launcher_detection);
    tcase_add_test(tc, older_fit_options_mean_no_dist);
    tcase_add_test(tc, missing_module_is_unavailable);
    suite_add_tcase(s, tc);

    if (!find_mpirun()) {
        const char *req = getenv("LLM_TEST_REQUIRE_MPI");
        if (req && strcmp(req, "1") == 0) {
            tc = tcase_create("required");
            tcase_add_test(tc, mpi_required_but_absent);
            suite_add_tcase(s, tc);
        } else {
            fprintf(stderr, "dist: skipping the MPI cases (mpirun -np 2 training, timeouts): no mpirun on PATH "
                            "(Debian: scripts/deps.sh mpi)\n");
        }
        return s;
    }
    tc = tcase_create("mpi");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, equivalent_to_one_process);
    tcase_add_test(tc, one_rank_without_mpirun_is_a_plain_fit);
    tcase_add_test(tc, lm_train_distributed_matches_one_process);
    tcase_add_test(tc, own_loop_with_empty_shares);
    tcase_add_test(tc, different_setups_fail_fast);
    tcase_add_test(tc, one_callback_stops_every_rank);
    tcase_add_test(tc, local_failure_fails_every_rank);
    tcase_add_test(tc, hung_rank_times_out);
    tcase_add_test(tc, dead_rank_times_out);
    tcase_add_test(tc, dead_rank_ends_the_job);
    suite_add_tcase(s, tc);
    return s;
}
