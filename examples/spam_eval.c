/* spam_eval: scores every message of a folder of class sub-folders (ham/,
 * spam/) with a model saved by spam_train and prints the metrics, with the
 * model's positive class (spam) as class 1:
 *
 *   spam_eval --model spam.safetensors --data DIR [--threshold 0.5]
 *
 * Each file goes through the model's own text pipeline (the e-mail reader,
 * tokenizer, vocabulary and vectorizer saved with it) exactly as spam_predict
 * would score it. The last line is machine-readable:
 *   accuracy=0.9812 precision=0.9700 recall=0.9667 f1=0.9683 auc=0.9950 */
#include <unistd.h>
#include "common.h"

static const char *prog = "spam_eval";

typedef struct eval_opts {
    const char *model_path, *data;
    double threshold;
    int threshold_set, threads, quiet;
    llm_backend_kind backend;
} eval_opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors --data DIR [options]\n"
        "\n"
        "Scores every file under DIR/<class>/ with the model (class folders must be\n"
        "the model's classes, e.g. ham/ and spam/) and prints accuracy, precision,\n"
        "recall, F1, ROC AUC and the confusion matrix, the second class (spam)\n"
        "being the positive one. At most %zu bytes of each file are read.\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --threshold T   scores >= T count as the positive class [the model's\n"
        "                  threshold metadata (spam_train --threshold), else 0.5]\n"
        "  --threads N     CPU threads, 0 = all cores [0]\n"
        "  --backend B     cpu or cuda [cpu]\n"
        "  --quiet         no backend line and no progress display\n"
        "  --help          this text\n",
        prog, (size_t)EX_MAX_MESSAGE_BYTES);
}

static int parse_args(int argc, char **argv, eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->threshold = 0.5;
    o->backend = LLM_BACKEND_CPU;
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        long long n = 0;
        if (strcmp(argv[a.i], "-h") == 0 || strcmp(argv[a.i], "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--data", &v)) { if (!a.bad) o->data = v; }
        else if (ex_arg_match(&a, "--threshold", &v)) { if (!a.bad) ex_parse_real(&a, "--threshold", v, 0, 0, 1, 0, &o->threshold); o->threshold_set = 1; }
        else if (ex_arg_match(&a, "--threads", &v)) { if (!a.bad) ex_parse_int(&a, "--threads", v, 0, 1024, &n); o->threads = (int)n; }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &o->backend); }
        else if (ex_arg_match(&a, "--quiet", NULL)) { o->quiet = 1; }
        else if (argv[a.i][0] == '-') {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[a.i]);
            a.bad = 1;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[a.i]);
            a.bad = 1;
        }
    }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model M.safetensors is required\n", prog); a.bad = 1; }
    if (!a.bad && !o->data) { fprintf(stderr, "%s: --data DIR is required\n", prog); a.bad = 1; }
    return a.bad ? EX_USAGE : 0;
}

/* The files of --data as raw bytes (the model's pipeline reads them as
 * e-mail), and map[folder's label] = the model's label for that class. */
static int read_messages(const eval_opts *o, char names[2][EX_CLASS_NAME_MAX + 1], llm_text_corpus **corpus,
                         int32_t map[2]) {
    llm_corpus_options co;
    llm_corpus_options_init(&co);
    co.format = LLM_CORPUS_RAW;
    co.max_file_bytes = EX_MAX_MESSAGE_BYTES;
    co.skip_unreadable = 1;
    char what[1024];
    snprintf(what, sizeof what, "reading %s", o->data);
    llm_status s = llm_text_corpus_from_directory(corpus, o->data, &co);
    if (s != LLM_OK) return ex_fail(prog, s, what);
    int32_t classes = 0;
    llm_text_corpus_num_classes(*corpus, &classes);
    if (classes != 2) {
        fprintf(stderr, "%s: %s has %d class folders; the model knows two (%s, %s)\n", prog,
                o->data, (int)classes, names[0], names[1]);
        return EX_FAILURE;
    }
    for (int32_t c = 0; c < classes; c++) {
        const char *name = "";
        llm_text_corpus_class_name(*corpus, c, &name);
        map[c] = strcmp(name, names[0]) == 0 ? 0 : strcmp(name, names[1]) == 0 ? 1 : -1;
        if (map[c] < 0) {
            fprintf(stderr, "%s: class folder '%s' of %s is not a class of the model (%s, %s)\n",
                    prog, name, o->data, names[0], names[1]);
            return EX_FAILURE;
        }
    }
    int64_t skipped = 0;
    llm_text_corpus_skipped(*corpus, &skipped);
    if (skipped > 0) fprintf(stderr, "%s: warning: %lld unreadable files skipped\n", prog, (long long)skipped);
    return 0;
}

/* scores[i] and labels[i] (the model's label) for each of the n messages,
 * with a progress line on a terminal. */
static int score_messages(const eval_opts *o, llm_model *model, const llm_text_corpus *corpus, const int32_t map[2],
                          int64_t n, float *scores, int32_t *labels) {
    int tty = !o->quiet && isatty(STDERR_FILENO);
    double t0 = ex_now(), last = t0;
    for (int64_t i = 0; i < n; i++) {
        const char *text = NULL;
        size_t len = 0;
        int32_t label = 0;
        llm_text_corpus_text(corpus, i, &text, &len);
        llm_text_corpus_label(corpus, i, &label);
        labels[i] = map[label];
        llm_status s = llm_model_predict_text(model, text, len, &scores[i], 1);
        if (s != LLM_OK) {
            const char *src = "";
            char what[1024];
            llm_text_corpus_source(corpus, i, &src);
            snprintf(what, sizeof what, "scoring %s", src);
            if (tty) fprintf(stderr, "\r\033[K");
            return ex_fail(prog, s, what);
        }
        double now = ex_now();
        if (tty && (now - last >= 0.1 || i + 1 == n)) {
            last = now;
            fprintf(stderr, "\r\033[Kscored %lld/%lld", (long long)(i + 1), (long long)n);
            fflush(stderr);
        }
    }
    if (tty) fprintf(stderr, "\r\033[K");
    double secs = ex_now() - t0;
    printf("scored %lld messages from %s in %.1fs (%.2f ms per message)\n", (long long)n, o->data,
           secs, n > 0 ? secs * 1e3 / (double)n : 0.0);
    return 0;
}

/* The report (metrics and confusion matrix), then the machine-readable line. */
static int print_metrics(const float *scores, const int32_t *labels, int64_t n, double threshold,
                         char names[2][EX_CLASS_NAME_MAX + 1]) {
    llm_metrics m;
    llm_metrics_init(&m);
    llm_status s = llm_metrics_binary(scores, labels, n, threshold, &m);
    if (s != LLM_OK) return ex_fail(prog, s, "computing metrics");
    llm_clear_error();
    char report[2048];
    if ((s = llm_metrics_format(&m, names[0], names[1], report, sizeof report, NULL)) != LLM_OK)
        return ex_fail(prog, s, "formatting metrics");
    fputs(report, stdout);
    printf("accuracy=%.4f precision=%.4f recall=%.4f f1=%.4f auc=%.4f\n", m.accuracy, m.precision,
           m.recall, m.f1, m.auc);
    return 0;
}

static int run(const eval_opts *o) {
    llm_backend *be = NULL;
    llm_model *model = NULL;
    llm_text_corpus *corpus = NULL;
    float *scores = NULL;
    int32_t *labels = NULL, map[2] = { -1, -1 };
    char names[2][EX_CLASS_NAME_MAX + 1];
    double threshold = o->threshold;
    int64_t n = 0;
    int rc = ex_backend(prog, o->backend, o->threads, o->quiet, &be);
    if (!rc) rc = ex_load_classifier(prog, be, o->model_path, o->threshold_set, &model, names, &threshold);
    if (!rc) rc = read_messages(o, names, &corpus, map);
    if (!rc) {
        llm_text_corpus_count(corpus, &n);
        scores = malloc((size_t)n * sizeof *scores + 1);
        labels = malloc((size_t)n * sizeof *labels + 1);
        if (!scores || !labels) {
            fprintf(stderr, "%s: out of memory for %lld messages\n", prog, (long long)n);
            rc = EX_FAILURE;
        }
    }
    if (!rc) rc = score_messages(o, model, corpus, map, n, scores, labels);
    if (!rc) rc = print_metrics(scores, labels, n, threshold, names);
    fflush(stdout);
    free(scores);
    free(labels);
    llm_text_corpus_free(corpus);
    llm_model_free(model);
    llm_backend_free(be);
    return rc ? EX_FAILURE : 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    eval_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == -1) { usage(stdout); return 0; }
    if (r != 0) { usage(stderr); return EX_USAGE; }
    return run(&o);
}
