/* lm_generate: continues a prompt with a language model trained by lm_train.
 *
 *   lm_generate --model M.safetensors --prompt TEXT [--tokens 200
 *               --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1]
 *
 * The model file carries its tokenizer; tokens are printed as soon as they
 * are chosen (the KV cache makes each one cost a single row of work). */
#include <unistd.h>
#include "common.h"

static const char *prog = "lm_generate";

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors [--prompt TEXT | --prompt-file FILE] [options]\n"
        "  --tokens 200         tokens to generate\n"
        "  --temperature 0.8    0 = always the most likely token\n"
        "  --top-k 40           sample among the k most likely (0 = all)\n"
        "  --top-p 0.95         ... and the smallest set reaching probability p (1 = all)\n"
        "  --seed 1             the same seed gives the same text\n"
        "  --stop-at-eot        stop at the end-of-text token\n"
        "  --threads N  --backend cpu|cuda  --quiet (no timing line)  --help\n",
        prog);
}

typedef struct stream { const llm_bpe *bpe; int64_t n; } stream;

static int print_token(int32_t token, void *user) {
    stream *st = user;
    const char *bytes;
    size_t len;
    if (llm_bpe_token_bytes(st->bpe, token, &bytes, &len) == LLM_OK) fwrite(bytes, 1, len, stdout);
    fflush(stdout);
    st->n++;
    return 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL;
    long long tokens = 200, top_k = 40, threads = 0;
    double temperature = 0.8, top_p = 0.95;
    uint64_t seed = 1;
    int quiet = 0, stop_eot = 0;
    llm_backend_kind kind = LLM_BACKEND_CPU;
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        if (strcmp(argv[a.i], "-h") == 0 || strcmp(argv[a.i], "--help") == 0) { usage(stdout); return 0; }
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) model_path = v; }
        else if (ex_arg_match(&a, "--prompt-file", &v)) { if (!a.bad) prompt_file = v; }
        else if (ex_arg_match(&a, "--prompt", &v)) { if (!a.bad) prompt = v; }
        else if (ex_arg_match(&a, "--tokens", &v)) { ex_parse_int(&a, "--tokens", v, 0, 1LL << 30, &tokens); }
        else if (ex_arg_match(&a, "--top-k", &v)) { ex_parse_int(&a, "--top-k", v, 0, 1LL << 30, &top_k); }
        else if (ex_arg_match(&a, "--threads", &v)) { ex_parse_int(&a, "--threads", v, 0, 1024, &threads); }
        else if (ex_arg_match(&a, "--temperature", &v)) { ex_parse_real(&a, "--temperature", v, 0, 0, 100, 0, &temperature); }
        else if (ex_arg_match(&a, "--top-p", &v)) { ex_parse_real(&a, "--top-p", v, 0, 1, 1, 0, &top_p); }
        else if (ex_arg_match(&a, "--seed", &v)) { ex_parse_u64(&a, "--seed", v, &seed); }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &kind); }
        else if (ex_arg_match(&a, "--stop-at-eot", NULL)) { stop_eot = 1; }
        else if (ex_arg_match(&a, "--quiet", NULL)) { quiet = 1; }
        else {
            fprintf(stderr, "%s: %s '%s'\n", prog, argv[a.i][0] == '-' ? "unknown option" : "unexpected argument", argv[a.i]);
            a.bad = 1;
        }
    }
    if (!a.bad && !model_path) { fprintf(stderr, "%s: --model is required\n", prog); a.bad = 1; }
    if (!a.bad && prompt && prompt_file) { fprintf(stderr, "%s: give --prompt or --prompt-file, not both\n", prog); a.bad = 1; }
    if (a.bad) { usage(stderr); return EX_USAGE; }

    char *file_text = NULL;
    size_t plen = 0;
    if (prompt_file) {
        llm_status s = llm_text_read_file(prompt_file, 1 << 20, &file_text, &plen);
        if (s != LLM_OK) return ex_fail(prog, s, prompt_file);
        prompt = file_text;
    } else {
        if (!prompt) prompt = "\n";
        plen = strlen(prompt);
    }
    int rc = 0;
    llm_backend *be = NULL;
    llm_model *m = NULL;
    int32_t *ids = NULL;
    const llm_bpe *bpe = NULL;
    llm_status s;
    if ((rc = ex_backend(prog, kind, (int)threads, 1, &be))) goto out;
    if ((s = llm_model_load(&m, be, model_path)) != LLM_OK) { rc = ex_fail(prog, s, model_path); goto out; }
    if ((s = llm_model_tokenizer(m, &bpe)) != LLM_OK) { rc = ex_fail(prog, s, "the model's tokenizer"); goto out; }
    size_t n = 0;
    if ((s = llm_bpe_encode(bpe, prompt, plen, NULL, 0, &n)) != LLM_OK) { rc = ex_fail(prog, s, "encoding the prompt"); goto out; }
    if (n == 0) { fprintf(stderr, "%s: the prompt is empty\n", prog); rc = EX_USAGE; goto out; }
    if (!(ids = malloc(n * sizeof *ids))) { fprintf(stderr, "%s: out of memory\n", prog); rc = EX_FAILURE; goto out; }
    if ((s = llm_bpe_encode(bpe, prompt, plen, ids, n, &n)) != LLM_OK) { rc = ex_fail(prog, s, "encoding the prompt"); goto out; }

    llm_generate_options go;
    llm_generate_options_init(&go);
    go.max_tokens = tokens;
    go.temperature = (float)temperature;
    go.top_k = (int32_t)top_k;
    go.top_p = (float)top_p;
    go.seed = seed;
    go.stop_token = stop_eot ? LLM_BPE_EOT : -1;
    stream st = { bpe, 0 };
    go.on_token = print_token;
    go.user = &st;
    fwrite(prompt, 1, plen, stdout);
    double t0 = ex_now();
    int64_t produced = 0;
    s = llm_model_generate(m, ids, (int64_t)n, &go, NULL, 0, &produced);
    double el = ex_now() - t0;
    fputc('\n', stdout);
    if (s != LLM_OK) { rc = ex_fail(prog, s, "generating"); goto out; }
    if (!quiet)
        fprintf(stderr, "%s: %lld prompt tokens, %lld generated in %.2f s (%.1f tokens/s)\n", prog, (long long)n,
                (long long)produced, el, (double)produced / (el > 0 ? el : 1e-9));
out:
    free(ids);
    llm_text_free(file_text);
    llm_model_free(m);
    llm_backend_free(be);
    return rc;
}
