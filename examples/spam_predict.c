/* spam_predict: classifies raw e-mail messages with a model saved by
 * spam_train, one output line per message:
 *
 *   spam_predict --model spam.safetensors [--threshold 0.5] [FILE...]
 *
 *   mail/offer.eml	spam	0.9731
 *   mail/lunch.eml	ham	0.0214
 *
 * (file name, class, probability of the positive class, tab-separated).
 * With no FILE, or FILE "-", the message is read from standard input and
 * named "-". A file that cannot be read is reported on stderr, the others are
 * still classified, and the exit status is then 1. */
#include "common.h"

static const char *prog = "spam_predict";

typedef struct predict_opts {
    const char *model_path;
    double threshold;
    int threshold_set, threads, quiet;
    llm_backend_kind backend;
    int nfiles;
    char **files;   /* points into argv; room for argc entries */
} predict_opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors [options] [FILE...]\n"
        "\n"
        "Prints one line per message: FILE<TAB>CLASS<TAB>PROBABILITY, PROBABILITY being\n"
        "the model's probability of its second class (spam). No FILE or '-' reads one\n"
        "message from standard input. At most %zu bytes of each message are read.\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --threshold T   probabilities >= T give the second class [the model's\n"
        "                  threshold metadata (spam_train --threshold), else 0.5]\n"
        "  --threads N     CPU threads, 0 = all cores [0]\n"
        "  --backend B     cpu or cuda [cpu]\n"
        "  --verbose       print the backend line first (on stderr)\n"
        "  --help          this text\n",
        prog, (size_t)EX_MAX_MESSAGE_BYTES);
}

static int parse_args(int argc, char **argv, predict_opts *o) {
    char **files = o->files;
    memset(o, 0, sizeof *o);
    o->files = files;
    o->threshold = 0.5;
    o->backend = LLM_BACKEND_CPU;
    o->quiet = 1;
    ex_args a = { prog, argc, argv, 1, 0 };
    int only_files = 0;
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        long long n = 0;
        const char *arg = argv[a.i];
        if (only_files || arg[0] != '-' || strcmp(arg, "-") == 0) { o->files[o->nfiles++] = argv[a.i++]; continue; }
        if (strcmp(arg, "--") == 0) { only_files = 1; a.i++; continue; }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--threshold", &v)) { if (!a.bad) ex_parse_real(&a, "--threshold", v, 0, 0, 1, 0, &o->threshold); o->threshold_set = 1; }
        else if (ex_arg_match(&a, "--threads", &v)) { if (!a.bad) ex_parse_int(&a, "--threads", v, 0, 1024, &n); o->threads = (int)n; }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &o->backend); }
        else if (ex_arg_match(&a, "--verbose", NULL)) { o->quiet = 0; }
        else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
            a.bad = 1;
        }
    }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model M.safetensors is required\n", prog); a.bad = 1; }
    return a.bad ? EX_USAGE : 0;
}

/* Scores one message and prints its line; 0 or EX_FAILURE. */
static int classify(llm_model *model, const char *name, const char *text, size_t len,
                    double threshold, char names[2][EX_CLASS_NAME_MAX + 1]) {
    float p = 0;
    llm_status s = llm_model_predict_text(model, text, len, &p, 1);
    if (s != LLM_OK) {
        char what[1024];
        snprintf(what, sizeof what, "classifying %s", name);
        return ex_fail(prog, s, what);
    }
    printf("%s\t%s\t%.4f\n", name, (double)p >= threshold ? names[1] : names[0], (double)p);
    fflush(stdout);
    return 0;
}

/* The backend, described on stderr unless quiet, so that stdout stays one
 * line per message. */
static int open_backend(const predict_opts *o, llm_backend **be) {
    if (ex_backend(prog, o->backend, o->threads, 1, be)) return EX_FAILURE;
    char desc[512];
    if (!o->quiet && llm_backend_describe(*be, desc, sizeof desc, NULL) == LLM_OK) fprintf(stderr, "backend: %s\n", desc);
    return 0;
}

/* Reads one message (path "-": standard input, only once) and classifies
 * it; 0 or EX_FAILURE after printing why. */
static int classify_path(llm_model *model, const char *path, double threshold, char names[2][EX_CLASS_NAME_MAX + 1],
                         int *stdin_used) {
    char *text = NULL;
    size_t len = 0;
    if (strcmp(path, "-") == 0) {
        if (*stdin_used) {
            fprintf(stderr, "%s: -: standard input was already read\n", prog);
            return EX_FAILURE;
        }
        *stdin_used = 1;
        if (ex_read_stream(stdin, EX_MAX_MESSAGE_BYTES, &text, &len) != 0) {
            fprintf(stderr, "%s: -: cannot read standard input: %s\n", prog, strerror(errno));
            return EX_FAILURE;
        }
        int rc = classify(model, "-", text, len, threshold, names);
        free(text);
        return rc;
    }
    llm_status s = llm_text_read_file(path, EX_MAX_MESSAGE_BYTES, &text, &len);
    if (s != LLM_OK) {
        fprintf(stderr, "%s: %s: %s: %s\n", prog, path, llm_status_string(s), llm_last_error());
        return EX_FAILURE;
    }
    int rc = classify(model, path, text, len, threshold, names);
    llm_text_free(text);
    return rc;
}

/* Every file named (standard input when none), going on after a failure:
 * the exit status says whether any failed. */
static int run(const predict_opts *o) {
    llm_backend *be = NULL;
    llm_model *model = NULL;
    char names[2][EX_CLASS_NAME_MAX + 1];
    double threshold = o->threshold;
    int rc = open_backend(o, &be);
    if (!rc) rc = ex_load_classifier(prog, be, o->model_path, o->threshold_set, &model, names, &threshold);
    int stdin_used = 0, failed = 0;
    for (int i = 0; !rc && i < (o->nfiles > 0 ? o->nfiles : 1); i++)
        if (classify_path(model, o->nfiles > 0 ? o->files[i] : "-", threshold, names, &stdin_used)) failed = 1;
    if (failed) rc = EX_FAILURE;
    fflush(stdout);
    llm_model_free(model);
    llm_backend_free(be);
    return rc ? EX_FAILURE : 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    predict_opts o;
    o.files = calloc((size_t)argc + 1, sizeof *o.files);
    if (!o.files) { fprintf(stderr, "%s: out of memory\n", prog); return EX_FAILURE; }
    int r = parse_args(argc, argv, &o);
    if (r == 0) r = run(&o);
    else if (r == -1) { usage(stdout); r = 0; }
    else { usage(stderr); r = EX_USAGE; }
    free(o.files);
    return r;
}
