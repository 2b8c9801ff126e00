/* Helpers shared by the spam_* example programs: strict option parsing,
 * error reporting, backend set-up, class names and reading a capped amount of
 * input. Header-only (every function static and marked unused) because the
 * Makefile builds each examples/NAME.c into its own program. */
#ifndef LLM_EXAMPLES_COMMON_H
#define LLM_EXAMPLES_COMMON_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <llm/llm.h>

#define EX_UNUSED __attribute__((unused))

/* Exit statuses of the examples: 1 for a failure while running, 2 for a bad
 * command line (as most Unix tools). */
#define EX_FAILURE 1
#define EX_USAGE 2

/* At most this many bytes of one message are read: the e-mail reader's own
 * default cap, so a 50 MB file costs no more than a 1 MiB one. */
#define EX_MAX_MESSAGE_BYTES LLM_EMAIL_DEFAULT_MAX_BYTES

/* The longest class name kept from a model's "class_names" metadata. */
#define EX_CLASS_NAME_MAX 64

/* Reports a failed library call: "prog: what: status: message". Returns
 * EX_FAILURE so callers can write `return ex_fail(...)`. */
EX_UNUSED static int ex_fail(const char *prog, llm_status s, const char *what) {
    const char *msg = llm_last_error();
    fprintf(stderr, "%s: %s: %s%s%s\n", prog, what, llm_status_string(s), msg[0] ? ": " : "", msg);
    return EX_FAILURE;
}

EX_UNUSED static double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------- options */

/* Debian's OpenBLAS 0.3.21 does not know CPUs newer than itself and falls
 * back to its generic SSE3 kernels on them (GEMM ~6x slower); it reads
 * OPENBLAS_CORETYPE only while it loads. When libllm reports that, the
 * program runs itself again, once, with the core named: SkylakeX on a CPU
 * with AVX-512, else Haswell. An OPENBLAS_CORETYPE of the user's, or
 * LLM_KEEP_BLAS_CORE=1, is left alone. Call first thing in main(). */
EX_UNUSED static void ex_fast_blas(char **argv) {
#if defined(__x86_64__) && defined(__linux__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("LLM_KEEP_BLAS_CORE")) return;
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 1;
    llm_backend *be = NULL;
    if (llm_backend_create(&be, LLM_BACKEND_CPU, &o) != LLM_OK) return;
    char d[512] = "";
    llm_backend_describe(be, d, sizeof d, NULL);
    llm_backend_free(be);
    if (!strstr(d, "set OPENBLAS_CORETYPE")) return;
    const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    fprintf(stderr, "%s: OpenBLAS chose its generic kernels for this CPU: running again with OPENBLAS_CORETYPE=%s "
            "(LLM_KEEP_BLAS_CORE=1 keeps them)\n", argv[0], core);
    fflush(stderr);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* could not: carry on as we are */
#else
    (void)argv;
#endif
}

/* Walks argv. ex_arg_match() recognises "--name VALUE" and "--name=VALUE"
 * (or a bare "--name" flag when value is NULL). */
typedef struct ex_args {
    const char *prog;
    int argc;
    char **argv;
    int i;          /* index of the argument being looked at */
    int bad;        /* set once a message has been printed */
} ex_args;

/* Returns 1 when argv[i] is option `name` (and then advances past it and its
 * value, storing the value in *value when it takes one), 0 when it is another
 * argument, and sets a->bad (after printing why) when the value is missing.
 * A separate value that starts with "--" counts as missing: it is almost
 * always the next option, not a value. */
EX_UNUSED static int ex_arg_match(ex_args *a, const char *name, const char **value) {
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == '\0') {
        if (!value) { a->i++; return 1; }
        if (a->i + 1 >= a->argc || strncmp(a->argv[a->i + 1], "--", 2) == 0) {
            fprintf(stderr, "%s: option %s needs a value\n", a->prog, name);
            a->bad = 1;
            a->i++;
            return 1;
        }
        *value = a->argv[a->i + 1];
        a->i += 2;
        return 1;
    }
    if (arg[n] == '=') {
        if (!value) {
            fprintf(stderr, "%s: option %s takes no value\n", a->prog, name);
            a->bad = 1;
        } else if (arg[n + 1] == '\0') {
            fprintf(stderr, "%s: option %s needs a value\n", a->prog, name);
            a->bad = 1;
        } else {
            *value = arg + n + 1;
        }
        a->i++;
        return 1;
    }
    return 0; /* a longer option with the same prefix */
}

/* Integer option in [lo, hi]; prints why and sets a->bad otherwise. */
EX_UNUSED static void ex_parse_int(ex_args *a, const char *name, const char *s, long long lo,
                                   long long hi, long long *out) {
    if (a->bad) return;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "%s: %s wants a whole number, not '%s'\n", a->prog, name, s);
        a->bad = 1;
    } else if (v < lo || v > hi) {
        fprintf(stderr, "%s: %s = %lld is out of range [%lld, %lld]\n", a->prog, name, v, lo, hi);
        a->bad = 1;
    } else {
        *out = v;
    }
}

EX_UNUSED static void ex_parse_u64(ex_args *a, const char *name, const char *s, uint64_t *out) {
    if (a->bad) return;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || s[0] == '-') {
        fprintf(stderr, "%s: %s wants a non-negative whole number, not '%s'\n", a->prog, name, s);
        a->bad = 1;
    } else {
        *out = (uint64_t)v;
    }
}

/* Real option in [lo, hi] (hi_open: [lo, hi); lo_open: (lo, ...]). */
EX_UNUSED static void ex_parse_real(ex_args *a, const char *name, const char *s, double lo,
                                    int lo_open, double hi, int hi_open, double *out) {
    if (a->bad) return;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "%s: %s wants a number, not '%s'\n", a->prog, name, s);
        a->bad = 1;
    } else if (v < lo || (lo_open && v == lo) || v > hi || (hi_open && v == hi)) {
        fprintf(stderr, "%s: %s = %s is out of range %c%g, %g%c\n", a->prog, name, s,
                lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
        a->bad = 1;
    } else {
        *out = v;
    }
}

EX_UNUSED static void ex_parse_backend(ex_args *a, const char *s, llm_backend_kind *out) {
    if (a->bad) return;
    if (strcmp(s, "cpu") == 0) *out = LLM_BACKEND_CPU;
    else if (strcmp(s, "cuda") == 0) *out = LLM_BACKEND_CUDA;
    else {
        fprintf(stderr, "%s: --backend wants cpu or cuda, not '%s'\n", a->prog, s);
        a->bad = 1;
    }
}

/* ---------------------------------------------------------- backend */

/* Creates the backend and, unless quiet, prints its one-line description
 * (which also says when OpenBLAS runs its slow generic kernels). */
EX_UNUSED static int ex_backend(const char *prog, llm_backend_kind kind, int threads, int quiet,
                                llm_backend **out) {
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_status s = llm_backend_create(out, kind, &bo);
    if (s != LLM_OK) return ex_fail(prog, s, "creating the backend");
    if (!quiet) {
        char desc[512];
        s = llm_backend_describe(*out, desc, sizeof desc, NULL);
        if (s == LLM_OK) printf("backend: %s\n", desc);
    }
    return 0;
}

/* ---------------------------------------------------------- class names */

/* The two class names of a binary model from its "class_names" metadata
 * ("ham,spam": names[0] is label 0, names[1] label 1, the positive class).
 * A model without the key gets "0" and "1" and a note. Returns 0 or
 * EX_FAILURE after printing why. */
EX_UNUSED static int ex_class_names(const char *prog, const llm_model *model,
                                    char names[2][EX_CLASS_NAME_MAX + 1]) {
    const char *v = NULL;
    if (llm_model_get_metadata(model, "class_names", &v) != LLM_OK || !v) {
        llm_clear_error();
        fprintf(stderr, "%s: note: the model has no class_names metadata; calling the classes 0 and 1\n",
                prog);
        strcpy(names[0], "0");
        strcpy(names[1], "1");
        return 0;
    }
    const char *comma = strchr(v, ',');
    size_t n0 = comma ? (size_t)(comma - v) : 0;
    size_t n1 = comma ? strlen(comma + 1) : 0;
    if (!comma || n0 == 0 || n1 == 0 || strchr(comma + 1, ',') || n0 > EX_CLASS_NAME_MAX ||
        n1 > EX_CLASS_NAME_MAX) {
        fprintf(stderr, "%s: the model's class_names metadata '%s' does not name two classes "
                "(expected e.g. \"ham,spam\")\n", prog, v);
        return EX_FAILURE;
    }
    memcpy(names[0], v, n0);
    names[0][n0] = '\0';
    memcpy(names[1], comma + 1, n1);
    names[1][n1] = '\0';
    return 0;
}

/* The decision threshold: the user's --threshold when given, else the
 * model's "threshold" metadata (spam_train --threshold), else 0.5. Returns 0
 * or EX_FAILURE after printing why (metadata that is not a number in [0, 1]). */
EX_UNUSED static int ex_threshold(const char *prog, const llm_model *model, int given,
                                  double *threshold) {
    const char *v = NULL;
    if (given) return 0;
    *threshold = 0.5;
    if (llm_model_get_metadata(model, "threshold", &v) != LLM_OK || !v) {
        llm_clear_error();
        return 0;
    }
    char *end = NULL;
    double t = strtod(v, &end);
    if (end == v || *end != '\0' || !(t >= 0 && t <= 1)) {
        fprintf(stderr, "%s: the model's threshold metadata '%s' is not a number in [0, 1]\n", prog, v);
        return EX_FAILURE;
    }
    *threshold = t;
    return 0;
}

/* Loads a binary classifier saved by spam_train with what it says about
 * itself: its class names and, unless the user gave one (threshold_given),
 * its decision threshold into *threshold. Returns 0 or EX_FAILURE after
 * printing why. */
EX_UNUSED static int ex_load_classifier(const char *prog, llm_backend *be, const char *path, int threshold_given,
                                        llm_model **model, char names[2][EX_CLASS_NAME_MAX + 1],
                                        double *threshold) {
    char what[1024];
    snprintf(what, sizeof what, "loading %s", path);
    llm_status s = llm_model_load(model, be, path);
    if (s != LLM_OK) return ex_fail(prog, s, what);
    if (ex_class_names(prog, *model, names)) return EX_FAILURE;
    return ex_threshold(prog, *model, threshold_given, threshold);
}

/* ---------------------------------------------------------- MPI */

/* Whether this run is distributed: asked for (--distributed) or launched by
 * mpirun with more than one process. */
EX_UNUSED static int ex_dist_wanted(int requested) {
    int launched = 0;
    llm_dist_launched(&launched);
    return requested || launched > 1;
}

/* Starts data-parallel training over MPI: ranks other than 0 become quiet
 * (stdout to /dev/null), and a thread count left at 0 becomes the node's
 * cores shared among the ranks on it (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE).
 * Returns 0 or EX_FAILURE after printing why. */
EX_UNUSED static int ex_dist_start(const char *prog, int *argc, char ***argv, int *threads, int *quiet,
                                   llm_dist **dist, int *rank, int *size) {
    llm_status s = llm_dist_init(dist, argc, argv);
    if (s != LLM_OK) return ex_fail(prog, s, "starting distributed training");
    llm_dist_rank(*dist, rank);
    llm_dist_size(*dist, size);
    if (*rank > 0) {
        *quiet = 1;
        if (!freopen("/dev/null", "w", stdout)) return EX_FAILURE;
    }
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long cores = sysconf(_SC_NPROCESSORS_ONLN), per = local ? atol(local) : 1;
    if (*threads == 0 && per > 0 && cores > 0) *threads = cores / per > 1 ? (int)(cores / per) : 1;
    return 0;
}

/* ---------------------------------------------------------- input */

/* Reads at most max_bytes bytes of a stream into a new NUL-terminated
 * buffer (free()); the rest is left unread. Returns 0, or -1 with errno. */
EX_UNUSED static int ex_read_stream(FILE *f, size_t max_bytes, char **text, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return -1;
    for (;;) {
        if (n == cap && cap < max_bytes) {
            size_t ncap = cap * 2 < max_bytes ? cap * 2 : max_bytes;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) { free(buf); return -1; }
            buf = nb;
            cap = ncap;
        }
        size_t want = (cap < max_bytes ? cap : max_bytes) - n;
        if (want == 0) break;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want) {
            if (ferror(f)) { int e = errno; free(buf); errno = e ? e : EIO; return -1; }
            break;
        }
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

#endif /* LLM_EXAMPLES_COMMON_H */
