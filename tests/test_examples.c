/* The example programs spam_train, spam_eval, spam_predict and llm_export, run as
 * processes: strict option parsing (exit status 2 and a message), bad data
 * (a clean failure or success with a message, never a signal), a tiny
 * end-to-end run on the fixture folder data/emails, and the exact output
 * formats the tools promise.
 *
 * The programs are looked up in $LLM_BIN_DIR (by default the bin/ folder of
 * the build tree this runner is in, else ../build/bin; tests run from
 * tests/), so `make asan` runs its own sanitizer-built copies. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <regex.h>
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

#define FIXTURES "data/emails"
#define HAM1 FIXTURES "/ham/easy-ham-1-00002.eml"
#define SPAM1 FIXTURES "/spam/spam-2-00809.eml"
/* a small, fast model for every run that trains */
#define NUM "([0-9]+\\.[0-9]{4}|nan)"
#define TINY "--epochs", "1", "--seq", "20", "--vocab", "200", "--embed", "4", "--hidden", "4", "--quiet"

/* ------------------------------------------------------------ running */

typedef struct run_result {
    int code;    /* exit status, or -1 when killed by a signal */
    int sig;     /* the signal, or 0 */
    char *out;   /* everything written to stdout / stderr */
    char *err;
    double secs;
} run_result;

static char *slurp_fd(int fd) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    return buf;
}

static int temp_fd(void) {
    char tmpl[] = "/tmp/llm_examples_out_XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    unlink(tmpl);
    return fd;
}

/* Runs tu_bin_dir()/argv[0] with argv, stdin from stdin_path (NULL:
 * /dev/null), collecting its output; a run over limit_s is killed and fails
 * the test. */
static void run_argv(run_result *r, const char *stdin_path, double limit_s, char *const argv[]) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", tu_bin_dir(), argv[0]);
    ck_assert_msg(access(path, X_OK) == 0, "%s is missing: build the examples first (make examples)",
                  path);
    int out = temp_fd(), err = temp_fd();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_path ? stdin_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    pid_t pid;
    double t0 = tu_now();
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_msg(rc == 0, "posix_spawn %s: %s", path, strerror(rc));
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        ck_assert_msg(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (tu_now() - t0 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ck_abort_msg("%s ran longer than %.0f s and was killed", argv[0], limit_s);
        }
        nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
    }
    r->secs = tu_now() - t0;
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r->out = slurp_fd(out);
    r->err = slurp_fd(err);
    close(out);
    close(err);
}

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

#define RUN_IN(r, stdin_path, ...) do { \
        char *argv__[] = { __VA_ARGS__, NULL }; \
        run_argv((r), (stdin_path), 120.0, argv__); \
    } while (0)
#define RUN(r, ...) RUN_IN(r, NULL, __VA_ARGS__)

/* The program ended by itself (no signal) with `code`. */
#define ASSERT_EXIT(r, expected) \
    ck_assert_msg((r)->sig == 0 && (r)->code == (expected), \
                  "expected exit %d, got exit %d signal %d\nstdout:\n%s\nstderr:\n%s", (expected), \
                  (r)->code, (r)->sig, (r)->out, (r)->err)

/* A clean failure: exit 1 with a message on stderr. */
#define ASSERT_FAILS_CLEANLY(r) do { \
        ASSERT_EXIT((r), 1); \
        ck_assert_msg(strlen((r)->err) > 0, "no message on stderr"); \
    } while (0)

static int matches(const char *text, const char *pattern) {
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
    int ok = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* The last line of s (without its newline) copied into buf. */
static const char *last_line(const char *s, char *buf, size_t len) {
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n') n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '\n') start--;
    size_t k = n - start < len - 1 ? n - start : len - 1;
    memcpy(buf, s + start, k);
    buf[k] = '\0';
    return buf;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------ temp data */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static char *temp_dir(void) {
    char tmpl[] = "/tmp/llm_examples_XXXXXX";
    char *d = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

static void make_dir(const char *base, const char *sub) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", base, sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void write_bytes(const char *base, const char *rel, const void *data, size_t len) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *base, const char *rel, const char *text) {
    write_bytes(base, rel, text, strlen(text));
}

/* A few small messages per class, so that a split leaves some of each. */
static void write_messages(const char *base, const char *cls, int n) {
    for (int i = 0; i < n; i++) {
        char rel[256], msg[512];
        snprintf(rel, sizeof rel, "%s/m%02d.eml", cls, i);
        if (strcmp(cls, "spam") == 0)
            snprintf(msg, sizeof msg, "Subject: cheap offer %d\n\nBuy now, free money, click here %d!\n", i, i);
        else
            snprintf(msg, sizeof msg, "Subject: meeting %d\n\nThe patch for the build is attached, see you at %d.\n", i, i);
        write_text(base, rel, msg);
    }
}

/* A 50 MB "message": headers, then lines of words; only the first MiB may
 * ever be read. */
static void write_big(const char *path) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("From: big@example.com\nSubject: a very long message\n\n", f);
    static char block[1 << 16];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (i % 64 == 63) ? '\n' : "free money "[i % 11];
    for (int i = 0; i < 50 * 16; i++) ck_assert_uint_eq(fwrite(block, 1, sizeof block, f), sizeof block);
    ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------ options */

typedef struct bad_case {
    const char *args[12];
    const char *message; /* expected in stderr */
} bad_case;

static void check_bad_cases(const char *program, const bad_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *argv[16];
        int k = 0;
        argv[k++] = (char *)program;
        for (int j = 0; cases[i].args[j]; j++) argv[k++] = (char *)cases[i].args[j];
        argv[k] = NULL;
        run_result r;
        run_argv(&r, NULL, 60.0, argv);
        ck_assert_msg(r.sig == 0 && r.code == 2, "%s case %zu: expected exit 2, got %d (signal %d)\n%s",
                      program, i, r.code, r.sig, r.err);
        ck_assert_msg(strstr(r.err, cases[i].message) != NULL,
                      "%s case %zu: stderr lacks '%s':\n%s", program, i, cases[i].message, r.err);
        ck_assert_msg(strstr(r.err, "usage:") != NULL, "%s case %zu: no usage text", program, i);
        ck_assert_msg(r.out[0] == '\0', "%s case %zu: wrote to stdout:\n%s", program, i, r.out);
        run_free(&r);
    }
}

#define D "--data", "d"
#define M "--model", "m.safetensors"

START_TEST(train_bad_options) {
    static const bad_case cases[] = {
        { { M }, "--data DIR is required" },
        { { D }, "--model OUT.safetensors is required" },
        { { 0 }, "required" },
        { { D, M, "--bogus" }, "unknown option '--bogus'" },
        { { D, M, "-x" }, "unknown option" },
        { { D, M, "stray" }, "unexpected argument 'stray'" },
        { { D, M, "--epochs" }, "--epochs needs a value" },
        { { D, M, "--epochs", "--batch", "4" }, "--epochs needs a value" },
        { { D, "--model" }, "--model needs a value" },
        { { D, M, "--epochs=" }, "--epochs needs a value" },
        { { D, M, "--epochs", "ten" }, "whole number" },
        { { D, M, "--epochs", "5x" }, "whole number" },
        { { D, M, "--epochs", "0" }, "out of range" },
        { { D, M, "--epochs", "-3" }, "out of range" },
        { { D, M, "--epochs", "99999999999999999999" }, "whole number" },
        { { D, M, "--batch", "0" }, "out of range" },
        { { D, M, "--batch=1000000" }, "out of range" },
        { { D, M, "--lr", "0" }, "out of range" },
        { { D, M, "--lr", "-0.1" }, "out of range" },
        { { D, M, "--lr", "fast" }, "wants a number" },
        { { D, M, "--lr", "nan" }, "wants a number" },
        { { D, M, "--val-split", "1" }, "out of range" },
        { { D, M, "--test-split", "-0.2" }, "out of range" },
        { { D, M, "--val-split", "0.5", "--test-split", "0.5" }, "nothing to train on" },
        { { D, M, "--vocab", "2" }, "out of range" },
        { { D, M, "--seed", "-1" }, "non-negative" },
        { { D, M, "--threads", "x" }, "whole number" },
        { { D, M, "--backend", "tpu" }, "cpu or cuda" },
        { { D, M, "--gru=1" }, "takes no value" },
        { { D, M, "--threshold" }, "needs a value" },
        { { D, M, "--threshold", "best" }, "wants a number" },
        { { D, M, "--threshold", "1.5" }, "out of range" },
        { { D, M, "--threshold", "auto", "--val-split", "0" }, "needs a validation part" },
        { { D, M, "--arch", "cnn" }, "lstm, bag, nb, two-branch or transformer" },
        { { D, M, "--arch", "two-branch", "--gru" }, "for --arch lstm" },
        { { D, M, "--arch", "two-branch", "--pool", "max" }, "for --arch lstm or bag" },
        { { D, M, "--pool", "min" }, "last, max or average" },
        { { D, M, "--arch", "bag", "--pool", "last" }, "no last state" },
        { { D, M, "--arch", "bag", "--bidirectional" }, "for --arch lstm" },
        { { D, M, "--arch", "transformer", "--pool", "max" }, "for --arch lstm or bag" },
        { { D, M, "--hidden", "0" }, "for --arch bag" },
        { { D, "--cv", "1" }, "out of range [2," },
        { { D, "--cv", "5", "--resume", "x.ckpt" }, "cannot --resume" },
        { { D, "--cv", "5", "--test-split", "0.2" }, "--test-split has no place" },
        { { D, M, "--cv", "5" }, "saves no model" },
        { { D, M, "--cv-repeats", "2" }, "need --cv K" },
        { { D, "--cv", "3", "--cv-repeats", "0" }, "out of range" },
        { { D, M, "--recipe", "fast" }, "--recipe takes best" },
        { { D, M, "--skip-unknown", "2" }, "out of range" },
        { { D, M, "--reverse", "-1" }, "out of range" },
        { { D, M, "--arch", "transformer", "--unique-tokens", "1" }, "for word vocabularies" },
        { { D, M, "--recipe", "best", "--arch", "transformer" }, "--recipe best sets its own models" },
    };
    check_bad_cases("spam_train", cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(eval_bad_options) {
    static const bad_case cases[] = {
        { { D }, "--model M.safetensors is required" },
        { { M }, "--data DIR is required" },
        { { D, M, "--nope" }, "unknown option" },
        { { D, M, "--threshold" }, "needs a value" },
        { { D, M, "--threshold", "1.5" }, "out of range" },
        { { D, M, "--threshold", "half" }, "wants a number" },
        { { D, M, "extra" }, "unexpected argument" },
    };
    check_bad_cases("spam_eval", cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(predict_bad_options) {
    static const bad_case cases[] = {
        { { "file.eml" }, "--model M.safetensors is required" },
        { { M, "--threshold", "-1" }, "out of range" },
        { { M, "--threads", "-1" }, "out of range" },
        { { M, "--bogus", "file.eml" }, "unknown option" },
        { { "--model" }, "needs a value" },
    };
    check_bad_cases("spam_predict", cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(ensemble_bad_options) {
    static const bad_case cases[] = {
        { { "a.safetensors", "b.safetensors" }, "--model OUT.safetensors is required" },
        { { M, "a.safetensors" }, "give 2 to 64 member models, not 1" },
        { { M }, "not 0" },
        { { M, "--threshold", "2", "a", "b" }, "out of range" },
        { { M, "--bogus", "a", "b" }, "unknown option" },
    };
    check_bad_cases("spam_ensemble", cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(export_bad_options) {
    static const bad_case cases[] = {
        { { "--onnx", "x.onnx" }, "--model M.safetensors is required" },
        { { M }, "--onnx OUT.onnx is required" },
        { { M, "--onnx", "x.onnx", "--opset", "16" }, "--opset = 16 is out of range [17, 21]" },
        { { M, "--onnx", "x.onnx", "--batch", "0" }, "--batch = 0 is out of range" },
        { { M, "--onnx" }, "--onnx needs a value" },
        { { M, "--onnx", "x.onnx", "--bogus" }, "unknown option '--bogus'" },
    };
    check_bad_cases("llm_export", cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(help_exits_zero) {
    static const char *const progs[] = { "spam_train", "spam_eval", "spam_predict", "spam_ensemble", "llm_export" };
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        run_result r;
        RUN(&r, (char *)progs[i], "--help");
        ASSERT_EXIT(&r, 0);
        ck_assert_msg(strstr(r.out, "usage:") != NULL, "%s --help: %s", progs[i], r.out);
        run_free(&r);
    }
}
END_TEST

/* On a CPU that OpenBLAS does not know (played by a preloaded
 * openblas_get_corename that says "Prescott"), a program runs itself again
 * once with OPENBLAS_CORETYPE named, then does its work; an
 * OPENBLAS_CORETYPE of the user's is left alone. */
START_TEST(generic_blas_core_reexec) {
    if (!__builtin_cpu_supports("avx2")) {
        printf("examples: generic_blas_core_reexec not run: this CPU has no AVX2, so libllm rightly keeps "
               "OpenBLAS's generic kernels\n");
        return;
    }
    char shim[8192];
    snprintf(shim, sizeof shim, "%s/../tests/libfake_blas_core.so", tu_bin_dir());
    ck_assert_msg(access(shim, R_OK) == 0, "%s is missing (make builds it with run_tests)", shim);
    /* under CK_FORK=no the tests share this process: the environment is put
     * back at the end */
    char *old_preload = getenv("LD_PRELOAD") ? strdup(getenv("LD_PRELOAD")) : NULL;
    char *old_asan = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
    ck_assert_int_eq(setenv("LD_PRELOAD", shim, 1), 0);
    /* the shim is not instrumented: under ASan it comes ahead of the runtime */
    char asan[1024];
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", old_asan ? old_asan : "",
             old_asan && *old_asan ? ":" : "");
    ck_assert_int_eq(setenv("ASAN_OPTIONS", asan, 1), 0);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("LLM_KEEP_BLAS_CORE");
    const char *want = __builtin_cpu_supports("avx512f") ? "OPENBLAS_CORETYPE=SkylakeX" : "OPENBLAS_CORETYPE=Haswell";
    run_result r;
    RUN(&r, "spam_predict", "--help");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "usage:") != NULL, "spam_predict --help after the restart: %s", r.out);
    const char *hit = strstr(r.err, want);
    ck_assert_msg(hit && !strstr(hit + 1, "running again"), "expected one restart with %s, stderr: %s", want, r.err);
    run_free(&r);
    /* the user's choice, or LLM_KEEP_BLAS_CORE, is kept */
    ck_assert_int_eq(setenv("LLM_KEEP_BLAS_CORE", "1", 1), 0);
    RUN(&r, "spam_predict", "--help");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(!strstr(r.err, "running again"), "restarted despite LLM_KEEP_BLAS_CORE: %s", r.err);
    run_free(&r);
    unsetenv("LLM_KEEP_BLAS_CORE");
    if (old_preload) setenv("LD_PRELOAD", old_preload, 1);
    else unsetenv("LD_PRELOAD");
    if (old_asan) setenv("ASAN_OPTIONS", old_asan, 1);
    else unsetenv("ASAN_OPTIONS");
    free(old_preload);
    free(old_asan);
}
END_TEST

/* ------------------------------------------------------------ bad data */

static char *dir_;   /* a fresh temp folder for each test of the case */

static void bad_data_setup(void) { dir_ = temp_dir(); }
static void bad_data_teardown(void) {
    rm_rf(dir_);
    free(dir_);
    dir_ = NULL;
}

static void path_in(char *buf, size_t len, const char *rel) { snprintf(buf, len, "%s/%s", dir_, rel); }

START_TEST(train_missing_dir) {
    char data[512], model[512];
    path_in(data, sizeof data, "no-such-folder");
    path_in(model, sizeof model, "m.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", data, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "no-such-folder") != NULL, "%s", r.err);
    ck_assert_int_ne(access(model, F_OK), 0);
    run_free(&r);
}
END_TEST

START_TEST(train_empty_dir) {
    char model[512];
    path_in(model, sizeof model, "m.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", dir_, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    run_free(&r);
    /* class folders without files */
    make_dir(dir_, "ham");
    make_dir(dir_, "spam");
    RUN(&r, "spam_train", "--data", dir_, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_int_ne(access(model, F_OK), 0);
    run_free(&r);
}
END_TEST

START_TEST(train_one_class) {
    make_dir(dir_, "ham");
    write_messages(dir_, "ham", 5);
    char model[512];
    path_in(model, sizeof model, "m.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", dir_, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    run_free(&r);
}
END_TEST

START_TEST(train_three_classes) {
    make_dir(dir_, "ham");
    make_dir(dir_, "spam");
    make_dir(dir_, "other");
    write_messages(dir_, "ham", 4);
    write_messages(dir_, "spam", 4);
    write_messages(dir_, "other", 4);
    char model[512];
    path_in(model, sizeof model, "m.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", dir_, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "exactly two") != NULL, "%s", r.err);
    run_free(&r);
}
END_TEST

/* Empty files, a binary file and a 50 MB one are all just texts: training
 * goes through, reading at most a MiB of the big one. */
START_TEST(train_odd_files) {
    make_dir(dir_, "ham");
    make_dir(dir_, "spam");
    write_messages(dir_, "ham", 5);
    write_messages(dir_, "spam", 5);
    write_text(dir_, "ham/empty.eml", "");
    write_text(dir_, "spam/empty.eml", "");
    unsigned char bin[4096];
    uint64_t st = 7;
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (unsigned char)(tu_next(&st) >> 56);
    bin[10] = 0;
    write_bytes(dir_, "spam/binary.bin", bin, sizeof bin);
    char big[512], model[512];
    path_in(big, sizeof big, "ham/big.eml");
    write_big(big);
    path_in(model, sizeof model, "m.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", dir_, "--model", model, TINY);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "data: 14 messages (ham 7, spam 7)") != NULL, "%s", r.out);
    ck_assert_msg(r.secs < 30.0, "training on the 50 MB file took %.1f s", r.secs);
    ck_assert_int_eq(access(model, R_OK), 0);
    run_free(&r);

    /* the tools read the same folder and the big file quickly */
    RUN(&r, "spam_eval", "--model", model, "--data", dir_, "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "scored 14 messages") != NULL, "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", model, big);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(r.secs < 20.0, "classifying the 50 MB file took %.1f s", r.secs);
    ck_assert_int_eq(count_lines(r.out), 1);
    run_free(&r);
}
END_TEST

START_TEST(train_unwritable_model) {
    char data[512], model[512];
    path_in(data, sizeof data, "data");
    make_dir(dir_, "data");
    make_dir(data, "ham");
    make_dir(data, "spam");
    write_messages(data, "ham", 4);
    write_messages(data, "spam", 4);
    path_in(model, sizeof model, "no-such-folder/m.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", data, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "no-such-folder") != NULL, "%s", r.err);
    ck_assert_msg(strstr(r.out, "epoch") == NULL, "trained before failing:\n%s", r.out);
    run_free(&r);
    /* a folder in the way: found when the first epoch is saved */
    make_dir(dir_, "taken");
    path_in(model, sizeof model, "taken");
    RUN(&r, "spam_train", "--data", data, "--model", model, TINY);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "saving") != NULL, "%s", r.err);
    run_free(&r);
}
END_TEST

START_TEST(tools_bad_model_file) {
    char model[512];
    path_in(model, sizeof model, "garbage.safetensors");
    write_text(dir_, "garbage.safetensors", "this is not a model\n");
    run_result r;
    RUN(&r, "spam_eval", "--model", model, "--data", FIXTURES);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "garbage.safetensors") != NULL, "%s", r.err);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", model, HAM1);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    path_in(model, sizeof model, "missing.safetensors");
    RUN(&r, "spam_predict", "--model", model, HAM1);
    ASSERT_FAILS_CLEANLY(&r);
    run_free(&r);
}
END_TEST

/* A copy of model `from` with metadata key set to value (NULL: removed). */
static void copy_with_metadata(const char *from, const char *to, const char *key, const char *value) {
    llm_backend *be = NULL;
    llm_model *m = NULL;
    ck_assert_int_eq(llm_backend_create(&be, LLM_BACKEND_CPU, NULL), LLM_OK);
    ck_assert_int_eq(llm_model_load(&m, be, from), LLM_OK);
    ck_assert_int_eq(llm_model_set_metadata(m, key, value), LLM_OK);
    ck_assert_int_eq(llm_model_save(m, to), LLM_OK);
    llm_model_free(m);
    llm_backend_free(be);
}

/* The "threshold" line of spam_eval's report. */
static double eval_threshold(const char *out) {
    const char *t = strstr(out, "\nthreshold ");
    ck_assert_msg(t != NULL, "no threshold line:\n%s", out);
    return strtod(t + strlen("\nthreshold "), NULL);
}

/* spam_train --threshold stores the decision threshold in the model (auto:
 * the best F1 on the validation part); spam_eval and spam_predict use it
 * unless --threshold says otherwise. */
/* --arch bag and --pool build the models they describe, which the other
 * programs then load and use like the default one. */
START_TEST(train_architectures) {
    static const struct {
        const char *args[6];
        const char *layers[4]; /* kinds after the embedding, in order */
    } cases[] = {
        /* (--seed 1 fills the unused places) */
        { { "--arch", "bag", "--seed", "1", "--seed", "1" }, { "global_pool", "dense", "dense" } },
        { { "--arch", "bag", "--pool", "max", "--hidden", "0" }, { "global_pool", "dense" } },
        { { "--pool", "average", "--seed", "1", "--seed", "1" }, { "lstm", "global_pool", "dense" } },
        { { "--pool", "last", "--seed", "1", "--seed", "1" }, { "lstm", "dense" } },
        /* a functional model: one embedding, two branches, merged */
        { { "--arch", "two-branch", "--seed", "1", "--seed", "1" }, { "lstm", "global_pool", "concatenate", "dense" } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char model[512];
        path_in(model, sizeof model, "arch.safetensors");
        const char *const *a = cases[i].args;
        run_result r;
        RUN(&r, "spam_train", "--data", FIXTURES, "--model", model, TINY, (char *)a[0], (char *)a[1], (char *)a[2],
            (char *)a[3], (char *)a[4], (char *)a[5]);
        ASSERT_EXIT(&r, 0);
        run_free(&r);

        llm_backend *be = NULL;
        llm_model *m = NULL;
        ck_assert_int_eq(llm_backend_create(&be, LLM_BACKEND_CPU, NULL), LLM_OK);
        ck_assert_int_eq(llm_model_load(&m, be, model), LLM_OK);
        char summary[4096];
        ck_assert_int_eq(llm_model_summary(m, summary, sizeof summary, NULL), LLM_OK);
        /* each expected kind after the previous one, and nothing recurrent in a bag */
        const char *at = strstr(summary, "(embedding)");
        ck_assert_msg(at != NULL, "case %zu:\n%s", i, summary);
        for (int k = 0; k < 4 && cases[i].layers[k]; k++) {
            char kind[48];
            snprintf(kind, sizeof kind, "(%s)", cases[i].layers[k]);
            at = strstr(at + 1, kind);
            ck_assert_msg(at != NULL, "case %zu: no %s in order:\n%s", i, kind, summary);
        }
        if (strcmp(a[1], "bag") == 0) ck_assert_msg(strstr(summary, "(lstm)") == NULL, "%s", summary);
        llm_model_free(m);
        llm_backend_free(be);

        RUN(&r, "spam_predict", "--model", model, HAM1);
        ASSERT_EXIT(&r, 0);
        ck_assert_msg(matches(r.out, "^" HAM1 "\t(spam|ham)\t[01]\\.[0-9]{4}$"), "case %zu: %s", i, r.out);
        run_free(&r);
        if (strcmp(a[1], "two-branch") != 0) continue;
        RUN(&r, "spam_eval", "--model", model, "--data", FIXTURES);
        ASSERT_EXIT(&r, 0);
        ck_assert_msg(strstr(r.out, "accuracy=") != NULL, "%s", r.out);
        run_free(&r);
        /* the graph exports to ONNX too (make onnx-check runs it in ONNX Runtime) */
        char onnx[600];
        path_in(onnx, sizeof onnx, "two.onnx");
        RUN(&r, "llm_export", "--model", model, "--onnx", onnx);
        ASSERT_EXIT(&r, 0);
        ck_assert_msg(strstr(r.out, "wrote") != NULL, "%s", r.out);
        run_free(&r);
    }
}
END_TEST

/* examples/two_branch_spam.c, the functional-API example, trains briefly,
 * saves, loads and scores a message; its file records the graph. */
START_TEST(two_branch_example) {
    char model[512];
    path_in(model, sizeof model, "two_branch.safetensors");
    run_result r;
    RUN(&r, "two_branch_spam", FIXTURES, "2", model);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "epoch 2/2: loss " NUM), "%s", r.out);
    ck_assert_msg(matches(r.out, "P\\(spam\\) of a prize mail: 0\\.[0-9]{4}"), "%s", r.out);
    run_free(&r);
    llm_backend *be = NULL;
    llm_model *m = NULL;
    ck_assert_int_eq(llm_backend_create(&be, LLM_BACKEND_CPU, NULL), LLM_OK);
    ck_assert_int_eq(llm_model_load(&m, be, model), LLM_OK);
    char summary[4096];
    ck_assert_int_eq(llm_model_summary(m, summary, sizeof summary, NULL), LLM_OK);
    ck_assert_msg(strstr(summary, "lstm_0, global_pool_0") != NULL, "%s", summary);
    llm_model_free(m);
    llm_backend_free(be);
}
END_TEST

/* spam_train --cv K: one line per fold, the mean and sd line, every message
 * once in the out-of-fold CSV; --arch bag and --recipe best too; too many
 * folds for the smallest class is a clear error. */
START_TEST(train_cross_validation) {
    char csv[512];
    path_in(csv, sizeof csv, "oof.csv");
    run_result r;
    RUN(&r, "spam_train", "--data", FIXTURES, TINY, "--cv", "3", "--cv-out", csv);
    ASSERT_EXIT(&r, 0);
    for (int k = 1; k <= 3; k++) {
        char want[32];
        snprintf(want, sizeof want, "\nfold %d/3 accuracy=", k);
        ck_assert_msg(strstr(r.out, want), "no line for fold %d: %s", k, r.out);
    }
    ck_assert_msg(matches(r.out, "^cv mean accuracy=" NUM " precision=" NUM " recall=" NUM " f1=" NUM " auc=" NUM
                          " sd accuracy=" NUM " precision=" NUM " recall=" NUM " f1=" NUM " auc=" NUM " .*$"),
                  "%s", r.out);
    run_free(&r);
    char *text = tu_read_text(csv);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strncmp(text, "repeat,fold,path,label,probability\n", 35) == 0, "%s", text);
    int rows = 0, folds[3] = { 0 };
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        int rep = -1, fold = -1;
        ck_assert_int_eq(sscanf(line + 1, "%d,%d,", &rep, &fold), 2);
        ck_assert_int_eq(rep, 0);
        ck_assert(fold >= 0 && fold < 3);
        folds[fold]++;
        rows++;
    }
    ck_assert_int_eq(rows, 37); /* every message of the fixtures, once */
    ck_assert(folds[0] >= 12 && folds[1] >= 12 && folds[2] >= 12);
    free(text);
    RUN(&r, "spam_train", "--data", FIXTURES, TINY, "--arch", "bag", "--cv", "2", "--cv-repeats", "2");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "repeat 2/2 fold 2/2 ") && strstr(r.out, "(2 folds x 2,"), "%s", r.out);
    run_free(&r);
    /* every architecture: each fold builds its own vocabulary or BPE tokenizer */
    RUN(&r, "spam_train", "--data", FIXTURES, TINY, "--arch", "nb", "--tag-headers", "--bigrams", "64", "--cv", "2");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "cv mean accuracy="), "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_train", "--data", FIXTURES, TINY, "--arch", "nb", "--seq", "800", "--char-ngrams", "256",
        "--char-ngram-len", "2-4", "--cv", "2");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "cv mean accuracy="), "%s", r.out);
    run_free(&r);
    const char *bad_lengths[] = { "5-3", "0-2", "3-17", "3", "3-5x" };
    for (size_t i = 0; i < sizeof bad_lengths / sizeof bad_lengths[0]; i++) {
        RUN(&r, "spam_train", "--data", FIXTURES, "--char-ngrams", "64", "--char-ngram-len", (char *)bad_lengths[i]);
        ASSERT_EXIT(&r, 2);
        ck_assert_msg(strstr(r.err, "--char-ngram-len takes MIN-MAX"), "%s: %s", bad_lengths[i], r.err);
        run_free(&r);
    }
    RUN(&r, "spam_train", "--data", FIXTURES, "--arch", "transformer", "--char-ngrams", "64");
    ASSERT_EXIT(&r, 2);
    ck_assert_msg(strstr(r.err, "--char-ngrams are for word vocabularies"), "%s", r.err);
    run_free(&r);
    RUN(&r, "spam_train", "--data", FIXTURES, "--arch", "transformer", "--epochs", "1", "--seq", "32", "--embed", "16",
        "--layers", "1", "--heads", "2", "--bpe-vocab", "300", "--quiet", "--cv", "2");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "cv mean accuracy="), "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_train", "--data", FIXTURES, "--recipe", "best", "--epochs", "1", "--quiet", "--cv", "2");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "cv mean accuracy="), "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_train", "--data", FIXTURES, TINY, "--cv", "19");
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "class 'spam' has 18 texts, fewer than the 19 folds"), "%s", r.err);
    run_free(&r);
}
END_TEST

/* --recipe best saves one ensemble file (its members with their own text
 * settings) that spam_eval and the library read like any model. */
START_TEST(train_recipe_best) {
    char model[512];
    path_in(model, sizeof model, "best.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", model, "--recipe", "best", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "recipe member 1/8 (nb) trained") && strstr(r.out, "recipe member 4/8 (nb-headers) trained") &&
                      strstr(r.out, "recipe member 5/8 (nb-subwords) trained") &&
                      strstr(r.out, "saved the 8-member ensemble"), "%s", r.out);
    run_free(&r);
    llm_backend *be = NULL;
    llm_model *m = NULL;
    int n = 0;
    ck_assert_int_eq(llm_backend_create(&be, LLM_BACKEND_CPU, NULL), LLM_OK);
    ck_assert_int_eq(llm_model_load(&m, be, model), LLM_OK);
    ck_assert_int_eq(llm_model_ensemble_size(m, &n), LLM_OK);
    ck_assert_int_eq(n, 8);
    llm_model_free(m);
    llm_backend_free(be);
    RUN(&r, "spam_eval", "--model", model, "--data", FIXTURES, "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^accuracy=" NUM " precision=" NUM " recall=" NUM " f1=" NUM " auc=" NUM "$"), "%s", r.out);
    run_free(&r);
}
END_TEST

/* The probability spam_predict prints for one message. */
static double predicted(const char *model, const char *message) {
    run_result r;
    RUN(&r, "spam_predict", "--model", (char *)model, (char *)message);
    ASSERT_EXIT(&r, 0);
    const char *tab = strrchr(r.out, '\t');
    ck_assert_msg(tab != NULL, "%s", r.out);
    double p = strtod(tab + 1, NULL);
    run_free(&r);
    return p;
}

/* spam_ensemble combines an LSTM and a bag of embeddings (different
 * sequence lengths) into one file that the other programs use like any
 * model, scoring the mean of the members' probabilities. */
START_TEST(ensemble_of_two_architectures) {
    char lstm[512], bag[512], both[512], other[512], bare[512];
    path_in(lstm, sizeof lstm, "lstm.safetensors");
    path_in(bag, sizeof bag, "bag.safetensors");
    path_in(both, sizeof both, "both.safetensors");
    path_in(other, sizeof other, "other.safetensors");
    path_in(bare, sizeof bare, "bare.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", lstm, TINY);
    ASSERT_EXIT(&r, 0);
    run_free(&r);
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", bag, TINY, "--arch", "bag", "--seq", "60", "--seed", "2");
    ASSERT_EXIT(&r, 0);
    run_free(&r);
    RUN(&r, "spam_ensemble", "--model", both, "--threshold", "0.4", lstm, bag);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "member 1: ") && strstr(r.out, "saved the mean of 2 models"), "%s", r.out);
    run_free(&r);

    const char *messages[] = { HAM1, SPAM1 };
    for (int i = 0; i < 2; i++) {
        double a = predicted(lstm, messages[i]), b = predicted(bag, messages[i]), e = predicted(both, messages[i]);
        /* each printed to 4 decimals: the printed mean may be off by 1e-4 */
        ck_assert_msg(fabs(e - (a + b) / 2) <= 1.5e-4, "%s: ensemble %.4f, members %.4f and %.4f", messages[i], e, a, b);
    }
    llm_backend *be = NULL;
    llm_model *m = NULL;
    const char *v;
    int n;
    ck_assert_int_eq(llm_backend_create(&be, LLM_BACKEND_CPU, NULL), LLM_OK);
    ck_assert_int_eq(llm_model_load(&m, be, both), LLM_OK);
    ck_assert_int_eq(llm_model_ensemble_size(m, &n), LLM_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(llm_model_get_metadata(m, "threshold", &v), LLM_OK);
    ck_assert_str_eq(v, "0.4");
    ck_assert_int_eq(llm_model_get_metadata(m, "class_names", &v), LLM_OK);
    ck_assert_str_eq(v, "ham,spam");
    llm_model_free(m);
    llm_backend_free(be);
    RUN(&r, "spam_eval", "--model", both, "--data", FIXTURES, "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^accuracy=" NUM " precision=" NUM " recall=" NUM " f1=" NUM " auc=" NUM "$"), "%s", r.out);
    ck_assert_msg(matches(r.out, "^threshold +0\\.4000$"), "%s", r.out);
    run_free(&r);

    /* members that do not fit together, or are not classifiers */
    copy_with_metadata(bag, other, "class_names", "good,bad");
    RUN(&r, "spam_ensemble", "--model", both, lstm, other);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "has classes good,bad but"), "%s", r.err);
    run_free(&r);
    copy_with_metadata(bag, bare, "class_names", NULL);
    RUN(&r, "spam_ensemble", "--model", both, lstm, bare);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "no class_names"), "%s", r.err);
    run_free(&r);
    RUN(&r, "spam_ensemble", "--model", other, lstm, both);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "an ensemble cannot be a member"), "%s", r.err);
    run_free(&r);
    RUN(&r, "spam_ensemble", "--model", other, lstm, "no-such.safetensors");
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "no-such.safetensors"), "%s", r.err);
    run_free(&r);
}
END_TEST

START_TEST(train_threshold) {
    char model[512], m0[512], bad[512];
    path_in(model, sizeof model, "auto.safetensors");
    run_result r;
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", model, TINY, "--threshold", "auto");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^threshold: [0-9.e-]+ \\(validation F1 [0-9.]+; [0-9.]+ at 0\\.5\\)$"),
                  "%s", r.out);
    double printed = strtod(strstr(r.out, "threshold: ") + strlen("threshold: "), NULL);
    run_free(&r);

    /* in the saved file */
    llm_backend *be = NULL;
    llm_model *m = NULL;
    const char *v = NULL;
    ck_assert_int_eq(llm_backend_create(&be, LLM_BACKEND_CPU, NULL), LLM_OK);
    ck_assert_int_eq(llm_model_load(&m, be, model), LLM_OK);
    ck_assert_int_eq(llm_model_get_metadata(m, "threshold", &v), LLM_OK);
    char *end = NULL;
    double stored = strtod(v, &end);
    ck_assert_msg(*end == '\0' && stored >= 0 && stored <= 1, "threshold metadata '%s'", v);
    ck_assert_msg(stored == printed, "stored %s, printed %g", v, printed);
    llm_model_free(m);
    llm_backend_free(be);

    /* spam_eval's default; an explicit --threshold wins */
    RUN(&r, "spam_eval", "--model", model, "--data", FIXTURES, "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(fabs(eval_threshold(r.out) - stored) <= 5e-5, "stored %g:\n%s", stored, r.out);
    run_free(&r);
    char *other = stored < 0.5 ? "0.9" : "0.1";
    RUN(&r, "spam_eval", "--model", model, "--data", FIXTURES, "--quiet", "--threshold", other);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(fabs(eval_threshold(r.out) - atof(other)) < 1e-9, "%s", r.out);
    run_free(&r);

    /* a stored 0 calls everything spam, in both tools, unless overridden */
    path_in(m0, sizeof m0, "zero.safetensors");
    copy_with_metadata(model, m0, "threshold", "0");
    RUN(&r, "spam_eval", "--model", m0, "--data", FIXTURES, "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "recall=1.0000") != NULL && eval_threshold(r.out) == 0, "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", m0, HAM1);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^" HAM1 "\tspam\t"), "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", m0, "--threshold", "1", HAM1);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^" HAM1 "\tham\t"), "%s", r.out);
    run_free(&r);

    /* a number given to spam_train is stored as given */
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", model, TINY, "--threshold", "0.3");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^threshold: 0\\.3$"), "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_eval", "--model", model, "--data", FIXTURES, "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(eval_threshold(r.out) == 0.3, "%s", r.out);
    run_free(&r);

    /* metadata that is not a threshold: a clean failure */
    path_in(bad, sizeof bad, "bad.safetensors");
    copy_with_metadata(model, bad, "threshold", "high");
    RUN(&r, "spam_eval", "--model", bad, "--data", FIXTURES, "--quiet");
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "threshold metadata 'high'") != NULL, "%s", r.err);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", bad, HAM1);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    /* ... unless the user gives one */
    RUN(&r, "spam_predict", "--model", bad, "--threshold", "0.5", HAM1);
    ASSERT_EXIT(&r, 0);
    run_free(&r);
}
END_TEST

/* ------------------------------------------------------------ end to end */

/* Trained once for the whole test case (an unchecked fixture runs in the
 * runner's own process): the tests below check what came out. */
static char *e2e_dir;
static char e2e_model[512];
static run_result e2e_train;

static void e2e_setup(void) {
    char tmpl[] = "/tmp/llm_examples_e2e_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d) return;
    e2e_dir = strdup(d);
    snprintf(e2e_model, sizeof e2e_model, "%s/spam.safetensors", e2e_dir);
    RUN(&e2e_train, "spam_train", "--data", FIXTURES, "--model", e2e_model, "--epochs", "2",
        "--seq", "50", "--vocab", "500", "--embed", "8", "--hidden", "8", "--threads", "2");
}

static void e2e_teardown(void) {
    if (e2e_dir) rm_rf(e2e_dir);
    free(e2e_dir);
    e2e_dir = NULL;
    run_free(&e2e_train);
}

static void need_model(void) {
    ck_assert_msg(e2e_dir != NULL, "no temp folder");
    ck_assert_msg(e2e_train.out != NULL, "spam_train did not run");
    ASSERT_EXIT(&e2e_train, 0);
    ck_assert_msg(access(e2e_model, R_OK) == 0, "no model file %s", e2e_model);
}


START_TEST(e2e_train_output) {
    need_model();
    const char *out = e2e_train.out;
    ck_assert_msg(strstr(out, "backend: cpu") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "data: 37 messages (ham 19, spam 18)") != NULL, "%s", out);
    ck_assert_msg(matches(out, "^epoch 1/2 loss=[0-9]+\\.[0-9]{4} accuracy=[0-9.]+ val_loss=[0-9.]+ "
                          "val_accuracy=[0-9.]+ time=[0-9]+\\.[0-9]s"), "%s", out);
    ck_assert_msg(matches(out, "^epoch 2/2 loss="), "%s", out);
    ck_assert_msg(matches(out, "^kept epoch [12] in "), "%s", out);
    ck_assert_msg(strstr(out, "Total") != NULL || strstr(out, "total") != NULL,
                  "no model summary:\n%s", out);
}
END_TEST

START_TEST(e2e_eval_format) {
    need_model();
    run_result r;
    RUN(&r, "spam_eval", "--model", e2e_model, "--data", FIXTURES);
    ASSERT_EXIT(&r, 0);
    char line[512];
    last_line(r.out, line, sizeof line);
    ck_assert_msg(matches(line, "^accuracy=" NUM " precision=" NUM " recall=" NUM " f1=" NUM
                          " auc=" NUM "$"), "last line: '%s'", line);
    ck_assert_msg(strstr(r.out, "scored 37 messages") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "spam") != NULL && strstr(r.out, "ham") != NULL, "%s", r.out);
    ck_assert_msg(r.out[strlen(r.out) - 1] == '\n', "no newline at the end");
    run_free(&r);

    /* a threshold of 0 calls everything spam: recall 1 */
    RUN(&r, "spam_eval", "--model", e2e_model, "--data", FIXTURES, "--threshold", "0", "--quiet");
    ASSERT_EXIT(&r, 0);
    last_line(r.out, line, sizeof line);
    ck_assert_msg(strstr(line, "recall=1.0000") != NULL, "%s", line);
    run_free(&r);
}
END_TEST

START_TEST(e2e_eval_wrong_classes) {
    need_model();
    char *d = temp_dir();
    make_dir(d, "good");
    make_dir(d, "bad");
    write_messages(d, "good", 2);
    write_messages(d, "bad", 2);
    run_result r;
    RUN(&r, "spam_eval", "--model", e2e_model, "--data", d);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_msg(strstr(r.err, "not a class of the model") != NULL, "%s", r.err);
    run_free(&r);
    RUN(&r, "spam_eval", "--model", e2e_model, "--data", "no-such-folder");
    ASSERT_FAILS_CLEANLY(&r);
    run_free(&r);
    rm_rf(d);
    free(d);
}
END_TEST

#define PRED "\t(ham|spam)\t[01]\\.[0-9]{4}$"

START_TEST(e2e_predict_files) {
    need_model();
    run_result r;
    RUN(&r, "spam_predict", "--model", e2e_model, HAM1, SPAM1);
    ASSERT_EXIT(&r, 0);
    ck_assert_int_eq(count_lines(r.out), 2);
    ck_assert_msg(matches(r.out, "^" HAM1 PRED), "%s", r.out);
    ck_assert_msg(matches(r.out, "^" SPAM1 PRED), "%s", r.out);
    ck_assert_msg(strncmp(r.out, HAM1 "\t", strlen(HAM1) + 1) == 0, "order: %s", r.out);
    run_free(&r);

    /* the class follows the threshold */
    RUN(&r, "spam_predict", "--model", e2e_model, "--threshold", "0", HAM1);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^" HAM1 "\tspam\t"), "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", e2e_model, "--threshold", "1", HAM1);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^" HAM1 "\tham\t"), "%s", r.out);
    run_free(&r);
}
END_TEST

START_TEST(e2e_predict_stdin) {
    need_model();
    run_result r, f;
    RUN_IN(&r, SPAM1, "spam_predict", "--model", e2e_model);
    ASSERT_EXIT(&r, 0);
    ck_assert_int_eq(count_lines(r.out), 1);
    ck_assert_msg(matches(r.out, "^-" PRED), "%s", r.out);
    /* the same score as from the file */
    RUN(&f, "spam_predict", "--model", e2e_model, SPAM1);
    ASSERT_EXIT(&f, 0);
    ck_assert_str_eq(strchr(r.out, '\t'), strchr(f.out, '\t'));
    run_free(&r);
    run_free(&f);
    /* "-" among files */
    RUN_IN(&r, SPAM1, "spam_predict", "--model", e2e_model, HAM1, "-");
    ASSERT_EXIT(&r, 0);
    ck_assert_int_eq(count_lines(r.out), 2);
    ck_assert_msg(matches(r.out, "^-" PRED), "%s", r.out);
    run_free(&r);
    /* an empty message is a message */
    RUN(&r, "spam_predict", "--model", e2e_model);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^-" PRED), "%s", r.out);
    run_free(&r);
}
END_TEST

START_TEST(e2e_predict_missing_file) {
    need_model();
    run_result r;
    RUN(&r, "spam_predict", "--model", e2e_model, HAM1, "no-such-file.eml", SPAM1);
    ASSERT_EXIT(&r, 1);
    ck_assert_int_eq(count_lines(r.out), 2);
    ck_assert_msg(matches(r.out, "^" HAM1 PRED), "%s", r.out);
    ck_assert_msg(matches(r.out, "^" SPAM1 PRED), "%s", r.out);
    ck_assert_msg(strstr(r.err, "no-such-file.eml") != NULL, "%s", r.err);
    run_free(&r);
    /* a folder is not a message either */
    RUN(&r, "spam_predict", "--model", e2e_model, FIXTURES);
    ASSERT_FAILS_CLEANLY(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
}
END_TEST

/* llm_export writes the trained model as ONNX (the file's contents are the
 * onnx suite's business); a file it cannot read fails cleanly, leaving
 * nothing behind. */
START_TEST(e2e_export_onnx) {
    need_model();
    char onnx[600], missing[600];
    snprintf(onnx, sizeof onnx, "%s/spam.onnx", e2e_dir);
    snprintf(missing, sizeof missing, "%s/none.safetensors", e2e_dir);
    run_result r;
    RUN(&r, "llm_export", "--model", e2e_model, "--onnx", onnx);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(matches(r.out, "^llm_export: wrote .*spam\\.onnx \\([0-9]+ bytes, ONNX opset 17\\)$"), "%s", r.out);
    struct stat st;
    ck_assert_int_eq(stat(onnx, &st), 0);
    ck_assert_int_gt(st.st_size, 1000);
    run_free(&r);
    RUN(&r, "llm_export", "--model", e2e_model, "--onnx", onnx, "--opset", "21", "--batch", "8", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    snprintf(missing, sizeof missing, "%s/none.safetensors", e2e_dir);
    RUN(&r, "llm_export", "--model", missing, "--onnx", onnx);
    ASSERT_EXIT(&r, 1);
    ck_assert_msg(strstr(r.err, "none.safetensors") != NULL, "%s", r.err);
    run_free(&r);
    unlink(onnx);
}
END_TEST

/* ---- language models: lm_train, lm_generate, spam_train --arch transformer ---- */

/* Writes ~40 KB of template sentences (subject, verb, object drawn by a
 * fixed generator): structure within and between words for a language
 * model to learn. */
static void write_lm_text(const char *path) {
    static const char *subj[] = { "the nation", "our people", "the congress", "every family", "this union" };
    static const char *verb[] = { "will build", "must protect", "can defend", "shall renew", "will honor" };
    static const char *obj[] = { "a better future", "the common peace", "our great land", "the free world" };
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    uint64_t s = 7;
    for (int i = 0; i < 1200; i++) {
        uint64_t r[3];
        for (int k = 0; k < 3; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            r[k] = s >> 33;
        }
        fprintf(f, "%s %s %s.%s", subj[r[0] % 5], verb[r[1] % 5], obj[r[2] % 4], i % 4 == 3 ? "\n" : " ");
    }
    fclose(f);
}

START_TEST(language_model_programs) {
    char dir[] = "/tmp/llm_lm_programs_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char text[256], lm[256], cls[256];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(lm, sizeof lm, "%s/lm.safetensors", dir);
    snprintf(cls, sizeof cls, "%s/cls.safetensors", dir);
    write_lm_text(text);
    run_result r;

    /* pretraining learns: the best validation bits per byte end below the unigram baseline */
    RUN(&r, "lm_train", "--data", text, "--model", lm, "--ctx", "32", "--dim", "16", "--layers", "1", "--heads",
        "2", "--batch", "8", "--steps", "400", "--eval-every", "100", "--lr", "1e-2", "--checkpoint", "none",
        "--threads", "1", "--quiet");
    ASSERT_EXIT(&r, 0);
    const char *done = strstr(r.out, "bits/byte (unigram baseline ");
    ck_assert_msg(done != NULL, "no summary line:\n%s", r.out);
    const char *eq = done;
    while (eq > r.out && *eq != '=') eq--;
    double bpb = atof(eq + 1), unigram = atof(done + strlen("bits/byte (unigram baseline "));
    ck_assert_msg(bpb > 0 && bpb < 0.9 * unigram, "validation %.3f bits/byte vs unigram %.3f", bpb, unigram);
    run_free(&r);

    /* generation: the prompt first, then tokens; the same seed gives the same text */
    RUN(&r, "lm_generate", "--model", lm, "--prompt", "the state", "--tokens", "30", "--seed", "3", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strncmp(r.out, "the state", 9) == 0 && strlen(r.out) > 12, "output: %s", r.out);
    char *first = strdup(r.out);
    run_free(&r);
    RUN(&r, "lm_generate", "--model", lm, "--prompt", "the state", "--tokens", "30", "--seed", "3", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_str_eq(r.out, first);
    free(first);
    run_free(&r);

    /* bad input: a clean failure or a usage error */
    RUN(&r, "lm_generate", "--model", text, "--prompt", "x");
    ASSERT_EXIT(&r, 1);
    run_free(&r);
    RUN(&r, "lm_generate", "--model", lm, "--top-p", "0");
    ASSERT_EXIT(&r, 2);
    run_free(&r);
    RUN(&r, "lm_train", "--data", text);
    ASSERT_EXIT(&r, 2);
    run_free(&r);
    RUN(&r, "lm_train", "--data", dir, "--model", lm); /* a folder without class folders of mail */
    ck_assert_msg(r.sig == 0 && r.code == 1, "exit %d: %s", r.code, r.err);
    run_free(&r);

    /* fine-tuning: the transformer classifier starts from the language model */
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", cls, "--arch", "transformer", "--init", lm, "--epochs",
        "1", "--threads", "1", "--checkpoint", "none", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "initialised") != NULL, "no initialisation line:\n%s", r.out);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", cls, FIXTURES "/spam/spam-1-00194.eml");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "spam-1-00194.eml\t") != NULL, "output: %s", r.out);
    run_free(&r);
    RUN(&r, "spam_train", "--data", FIXTURES, "--model", cls, "--init", lm);
    ASSERT_EXIT(&r, 2); /* --init needs --arch transformer */
    run_free(&r);

    unlink(text);
    unlink(lm);
    unlink(cls);
    rmdir(dir);
}
END_TEST

/* GPT-2 checkpoints in the programs: greedy generation prints the prompt and
 * then exactly what llm_model_generate picks, lm_train goes on pretraining
 * and exports, spam_train fine-tunes into a classifier. */
#define GPT2_DIR "data/gpt2/hf"

START_TEST(gpt2_programs) {
    char dir[] = "/tmp/llm_gpt2_programs_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char text[256], lm[256], exp[256], cls[256], cmd[320];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(lm, sizeof lm, "%s/lm.safetensors", dir);
    snprintf(exp, sizeof exp, "%s/export", dir);
    snprintf(cls, sizeof cls, "%s/cls.safetensors", dir);
    write_lm_text(text);
    run_result r;

    char prompt[] = "They'll see the numbers";
    RUN(&r, "lm_generate", "--model", GPT2_DIR, "--prompt", prompt, "--tokens", "12", "--temperature", "0", "--quiet");
    ASSERT_EXIT(&r, 0);
    llm_backend *be;
    llm_model *m;
    const llm_bpe *bpe;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    ck_assert_ok(llm_model_load_gpt2(&m, be, GPT2_DIR, 0));
    ck_assert_ok(llm_model_tokenizer(m, &bpe));
    int32_t ids[64], gen[12];
    size_t n, len;
    ck_assert_ok(llm_bpe_encode(bpe, prompt, strlen(prompt), ids, 64, &n));
    llm_generate_options go;
    llm_generate_options_init(&go);
    go.max_tokens = 12;
    go.temperature = 0.0f;
    int64_t got;
    ck_assert_ok(llm_model_generate(m, ids, (int64_t)n, &go, gen, 12, &got));
    char want[512];
    size_t p = strlen(prompt);
    memcpy(want, prompt, p);
    ck_assert_ok(llm_bpe_decode(bpe, gen, (size_t)got, want + p, sizeof want - p - 2, &len));
    want[p + len] = '\n';
    want[p + len + 1] = '\0';
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    llm_model_free(m);
    llm_backend_free(be);

    RUN(&r, "lm_train", "--data", text, "--model", lm, "--init", GPT2_DIR, "--ctx", "16", "--batch", "4", "--steps",
        "20", "--eval-every", "10", "--lr", "3e-3", "--checkpoint", "none", "--threads", "1", "--quiet", "--export", exp);
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "exported to") != NULL, "%s", r.out);
    run_free(&r);
    RUN(&r, "lm_generate", "--model", exp, "--prompt", "the nation", "--tokens", "5", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert(strncmp(r.out, "the nation", 10) == 0);
    run_free(&r);
    RUN(&r, "lm_train", "--data", text, "--model", lm, "--init", GPT2_DIR, "--tokenizer", "bpe");
    ASSERT_EXIT(&r, 2);
    run_free(&r);

    RUN(&r, "spam_train", "--data", FIXTURES, "--model", cls, "--arch", "transformer", "--init", GPT2_DIR, "--seq",
        "32", "--epochs", "1", "--threads", "1", "--checkpoint", "none", "--quiet");
    ASSERT_EXIT(&r, 0);
    ck_assert_msg(strstr(r.out, "initialised 28 parameter tensors") != NULL, "%s", r.out);
    run_free(&r);
    RUN(&r, "spam_predict", "--model", cls, FIXTURES "/spam/spam-1-00194.eml");
    ASSERT_EXIT(&r, 0);
    run_free(&r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *suite_examples(void) {
    Suite *s = suite_create("examples");
    TCase *opts = tcase_create("options");
    tcase_set_timeout(opts, 120);
    tcase_add_test(opts, train_bad_options);
    tcase_add_test(opts, eval_bad_options);
    tcase_add_test(opts, predict_bad_options);
    tcase_add_test(opts, ensemble_bad_options);
    tcase_add_test(opts, export_bad_options);
    tcase_add_test(opts, help_exits_zero);
    tcase_add_test(opts, generic_blas_core_reexec);
    suite_add_tcase(s, opts);

    TCase *data = tcase_create("bad_data");
    tcase_set_timeout(data, 120); /* sanitizer builds are several times slower */
    tcase_add_checked_fixture(data, bad_data_setup, bad_data_teardown);
    tcase_add_test(data, train_missing_dir);
    tcase_add_test(data, train_empty_dir);
    tcase_add_test(data, train_one_class);
    tcase_add_test(data, train_three_classes);
    tcase_add_test(data, train_odd_files);
    tcase_add_test(data, train_unwritable_model);
    tcase_add_test(data, tools_bad_model_file);
    tcase_add_test(data, train_threshold);
    tcase_add_test(data, train_architectures);
    tcase_add_test(data, two_branch_example);
    tcase_add_test(data, ensemble_of_two_architectures);
    tcase_add_test(data, train_cross_validation);
    tcase_add_test(data, train_recipe_best);
    suite_add_tcase(s, data);

    TCase *e2e = tcase_create("end_to_end");
    tcase_set_timeout(e2e, 120);
    tcase_add_unchecked_fixture(e2e, e2e_setup, e2e_teardown);
    tcase_add_test(e2e, e2e_train_output);
    tcase_add_test(e2e, e2e_eval_format);
    tcase_add_test(e2e, e2e_eval_wrong_classes);
    tcase_add_test(e2e, e2e_predict_files);
    tcase_add_test(e2e, e2e_predict_stdin);
    tcase_add_test(e2e, e2e_predict_missing_file);
    tcase_add_test(e2e, e2e_export_onnx);
    suite_add_tcase(s, e2e);

    TCase *lm = tcase_create("language_models");
    tcase_set_timeout(lm, 300);
    tcase_add_test(lm, language_model_programs);
    tcase_add_test(lm, gpt2_programs);
    suite_add_tcase(s, lm);
    return s;
}
