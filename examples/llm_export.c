/* llm_export: writes a model saved by libllm (spam_train, lm_train,
 * llm_model_save) as an ONNX file, to run it with ONNX Runtime or any other
 * ONNX runtime:
 *
 *   llm_export --model spam.safetensors --onnx spam.onnx
 *
 * The ONNX model takes int64 token ids `ids` [batch, seq] and gives what
 * libllm's predict gives (docs/ONNX.md). The write is atomic: on failure
 * nothing is left at OUT.onnx and an older file there is untouched. */
#include "common.h"

static const char *prog = "llm_export";

typedef struct export_opts {
    const char *model_path, *onnx_path;
    llm_onnx_options onnx;
    int quiet;
} export_opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors --onnx OUT.onnx [options]\n"
        "\n"
        "Writes the model as ONNX: input 'ids' (int64 token ids [batch, seq]; 0 is\n"
        "padding), output 'probabilities' for a classifier, 'logits' for a language\n"
        "model; its metadata (class names, threshold, vocabulary size, sequence length)\n"
        "in metadata_props.\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --opset N          ONNX operator set, 17 to 21 [17]\n"
        "  --batch N          a fixed batch size instead of a dynamic one [dynamic]\n"
        "  --no-pipeline      leave the vocabulary or tokenizer out of the metadata\n"
        "  --quiet            print nothing on success\n"
        "  --help             this text\n",
        prog);
}

static int parse_args(int argc, char **argv, export_opts *o) {
    memset(o, 0, sizeof *o);
    llm_onnx_options_init(&o->onnx);
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        long long n = 0;
        const char *arg = argv[a.i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--onnx", &v)) { if (!a.bad) o->onnx_path = v; }
        else if (ex_arg_match(&a, "--opset", &v)) { ex_parse_int(&a, "--opset", v, 17, 21, &n); o->onnx.opset = (int)n; }
        else if (ex_arg_match(&a, "--batch", &v)) { ex_parse_int(&a, "--batch", v, 1, INT32_MAX, &n); o->onnx.batch = n; }
        else if (ex_arg_match(&a, "--no-pipeline", NULL)) { o->onnx.text_pipeline = 0; }
        else if (ex_arg_match(&a, "--quiet", NULL)) { o->quiet = 1; }
        else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
            a.bad = 1;
        }
    }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model M.safetensors is required\n", prog); a.bad = 1; }
    if (!a.bad && !o->onnx_path) { fprintf(stderr, "%s: --onnx OUT.onnx is required\n", prog); a.bad = 1; }
    return a.bad ? EX_USAGE : 0;
}

static int run(const export_opts *o) {
    int rc = EX_FAILURE;
    llm_status s;
    llm_backend *be = NULL;
    llm_model *model = NULL;
    char what[1024];
    if (ex_backend(prog, LLM_BACKEND_CPU, 1, 1, &be)) return EX_FAILURE;
    snprintf(what, sizeof what, "loading %s", o->model_path);
    if ((s = llm_model_load(&model, be, o->model_path)) != LLM_OK) { ex_fail(prog, s, what); goto done; }
    snprintf(what, sizeof what, "exporting to %s", o->onnx_path);
    if ((s = llm_model_export_onnx(model, o->onnx_path, &o->onnx)) != LLM_OK) { ex_fail(prog, s, what); goto done; }
    if (!o->quiet) {
        FILE *f = fopen(o->onnx_path, "rb");
        long bytes = -1;
        if (f && fseek(f, 0, SEEK_END) == 0) bytes = ftell(f);
        if (f) fclose(f);
        printf("%s: wrote %s (%ld bytes, ONNX opset %d)\n", prog, o->onnx_path, bytes, o->onnx.opset);
    }
    rc = 0;
done:
    llm_model_free(model);
    llm_backend_free(be);
    return rc;
}

int main(int argc, char **argv) {
    export_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == 0) r = run(&o);
    else if (r == -1) { usage(stdout); r = 0; }
    else { usage(stderr); r = EX_USAGE; }
    return r;
}
