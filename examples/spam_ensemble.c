/* spam_ensemble: combines classifiers saved by spam_train into one model
 * file whose probability is the mean of theirs:
 *
 *   spam_ensemble --model both.safetensors lstm.safetensors bag.safetensors
 *
 * Each member keeps its own text pipeline (vocabulary, sequence length,
 * reader settings), so an LSTM over the end of a message and a bag of
 * embeddings over all of it can be combined. spam_eval, spam_predict and
 * spam_server read the result like any model. */
#include "common.h"

static const char *prog = "spam_ensemble";

typedef struct ensemble_opts {
    const char *model_path;
    double threshold;
    int threshold_set;
    int nfiles;
    char **files;   /* points into argv; room for argc entries */
} ensemble_opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model OUT.safetensors [options] MEMBER.safetensors MEMBER.safetensors...\n"
        "\n"
        "Writes one model that scores a message with every MEMBER (2 to %d binary\n"
        "classifiers from spam_train, with the same class names) and gives the mean\n"
        "of their probabilities. The members' own thresholds are not used.\n"
        "\n"
        "options:\n"
        "  --threshold T   decision threshold stored with the ensemble [none: 0.5]\n"
        "  --help          this text\n",
        prog, LLM_ENSEMBLE_MAX_MEMBERS);
}

static int parse_args(int argc, char **argv, ensemble_opts *o) {
    char **files = o->files;
    memset(o, 0, sizeof *o);
    o->files = files;
    ex_args a = { prog, argc, argv, 1, 0 };
    int only_files = 0;
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        const char *arg = argv[a.i];
        if (only_files || arg[0] != '-') { o->files[o->nfiles++] = argv[a.i++]; continue; }
        if (strcmp(arg, "--") == 0) { only_files = 1; a.i++; continue; }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--threshold", &v)) { if (!a.bad) ex_parse_real(&a, "--threshold", v, 0, 0, 1, 0, &o->threshold); o->threshold_set = 1; }
        else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
            a.bad = 1;
        }
    }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model OUT.safetensors is required\n", prog); a.bad = 1; }
    if (!a.bad && (o->nfiles < 2 || o->nfiles > LLM_ENSEMBLE_MAX_MEMBERS)) {
        fprintf(stderr, "%s: give 2 to %d member models, not %d\n", prog, LLM_ENSEMBLE_MAX_MEMBERS, o->nfiles);
        a.bad = 1;
    }
    return a.bad ? EX_USAGE : 0;
}

/* Loads the i-th member, checks that it is a classifier from spam_train
 * with the same classes as the first (whose names it sets), and hands it
 * to the ensemble. 0 or EX_FAILURE after printing why. */
static int add_member(const ensemble_opts *o, int i, llm_backend *be, llm_model *ensemble,
                      char first_names[2][EX_CLASS_NAME_MAX + 1]) {
    const char *path = o->files[i];
    llm_model *member = NULL;
    char what[1024], names[2][EX_CLASS_NAME_MAX + 1];
    snprintf(what, sizeof what, "loading %s", path);
    llm_status s = llm_model_load(&member, be, path);
    if (s != LLM_OK) return ex_fail(prog, s, what);
    const char *v = NULL;
    int rc = 0;
    if (llm_model_get_metadata(member, "class_names", &v) != LLM_OK) {
        fprintf(stderr, "%s: %s has no class_names metadata: not a classifier from spam_train\n", prog, path);
        rc = EX_FAILURE;
    }
    if (!rc) rc = ex_class_names(prog, member, names);
    if (!rc && i == 0) memcpy(first_names, names, sizeof names);
    if (!rc && (strcmp(names[0], first_names[0]) != 0 || strcmp(names[1], first_names[1]) != 0)) {
        fprintf(stderr, "%s: %s has classes %s,%s but %s has %s,%s\n", prog, path, names[0], names[1],
                o->files[0], first_names[0], first_names[1]);
        rc = EX_FAILURE;
    }
    int64_t params = 0;
    llm_model_param_count(member, &params);
    snprintf(what, sizeof what, "adding %s", path);
    if (!rc && (s = llm_model_ensemble_add(ensemble, member)) != LLM_OK) rc = ex_fail(prog, s, what);
    if (rc) {
        llm_model_free(member); /* the ensemble owns it only once added */
        return rc;
    }
    printf("member %d: %s (%lld parameters)\n", i, path, (long long)params);
    return 0;
}

/* The ensemble's own metadata (class names, who made it, the threshold if
 * given), then the file. */
static int save_ensemble(const ensemble_opts *o, llm_model *ensemble, char names[2][EX_CLASS_NAME_MAX + 1]) {
    char classes[2 * (EX_CLASS_NAME_MAX + 1) + 1], made_by[64], tbuf[32], what[1024];
    snprintf(classes, sizeof classes, "%s,%s", names[0], names[1]);
    snprintf(made_by, sizeof made_by, "spam_ensemble (libllm %s)", llm_version_string());
    llm_status s;
    if ((s = llm_model_set_metadata(ensemble, "class_names", classes)) != LLM_OK ||
        (s = llm_model_set_metadata(ensemble, "created_by", made_by)) != LLM_OK)
        return ex_fail(prog, s, "setting metadata");
    if (o->threshold_set) {
        snprintf(tbuf, sizeof tbuf, "%.6g", o->threshold);
        if ((s = llm_model_set_metadata(ensemble, "threshold", tbuf)) != LLM_OK) return ex_fail(prog, s, "setting threshold");
    }
    snprintf(what, sizeof what, "saving %s", o->model_path);
    if ((s = llm_model_save(ensemble, o->model_path)) != LLM_OK) return ex_fail(prog, s, what);
    printf("saved the mean of %d models in %s\n", o->nfiles, o->model_path);
    return 0;
}

static int run(const ensemble_opts *o) {
    llm_backend *be = NULL;
    llm_model *ensemble = NULL;
    char names[2][EX_CLASS_NAME_MAX + 1];
    int rc = ex_backend(prog, LLM_BACKEND_CPU, 1, 1, &be);
    llm_status s;
    if (!rc && (s = llm_model_ensemble(&ensemble, be)) != LLM_OK) rc = ex_fail(prog, s, "creating the ensemble");
    for (int i = 0; !rc && i < o->nfiles; i++) rc = add_member(o, i, be, ensemble, names);
    if (!rc) rc = save_ensemble(o, ensemble, names);
    fflush(stdout);
    llm_model_free(ensemble);
    llm_backend_free(be);
    return rc ? EX_FAILURE : 0;
}

int main(int argc, char **argv) {
    ensemble_opts o;
    o.files = calloc((size_t)argc + 1, sizeof *o.files);
    if (!o.files) { fprintf(stderr, "%s: out of memory\n", prog); return EX_FAILURE; }
    int r = parse_args(argc, argv, &o);
    if (r == 0) r = run(&o);
    else if (r == -1) { usage(stdout); r = 0; }
    else { usage(stderr); r = EX_USAGE; }
    free(o.files);
    return r;
}
