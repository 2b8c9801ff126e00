/* lm_generate: continues a prompt with a language model: one trained by
 * lm_train, or a GPT-2 checkpoint.
 *
 *   lm_generate --model M.safetensors|GPT2_DIR|gpt2.bin --prompt TEXT
 *               [--tokens 200 --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1]
 *
 * A libllm model file carries its tokenizer; a GPT-2 is a Hugging Face folder
 * (config.json, model.safetensors, vocab.json, merges.txt) or an llm.c file
 * with vocab.json and merges.txt beside it, read by llm_model_load_gpt2.
 * stdout gets the prompt, then each token as soon as it is chosen (the KV
 * cache makes each one cost a single row of work). */
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

static const char *prog = "lm_generate";

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors|GPT2_DIR|gpt2.bin [--prompt TEXT | --prompt-file FILE] [options]\n"
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

typedef struct gen_opts {
    const char *model_path, *prompt, *prompt_file;
    long long tokens, top_k, threads;
    double temperature, top_p;
    uint64_t seed;
    int quiet, stop_eot;
    llm_backend_kind kind;
} gen_opts;

/* 0 to go on, -1 after --help, EX_USAGE for a bad command line. */
static int parse_args(int argc, char **argv, gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->tokens = 200; o->top_k = 40; o->temperature = 0.8; o->top_p = 0.95; o->seed = 1; o->kind = LLM_BACKEND_CPU;
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        if (strcmp(argv[a.i], "-h") == 0 || strcmp(argv[a.i], "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--prompt-file", &v)) { if (!a.bad) o->prompt_file = v; }
        else if (ex_arg_match(&a, "--prompt", &v)) { if (!a.bad) o->prompt = v; }
        else if (ex_arg_match(&a, "--tokens", &v)) { ex_parse_int(&a, "--tokens", v, 0, 1LL << 30, &o->tokens); }
        else if (ex_arg_match(&a, "--top-k", &v)) { ex_parse_int(&a, "--top-k", v, 0, 1LL << 30, &o->top_k); }
        else if (ex_arg_match(&a, "--threads", &v)) { ex_parse_int(&a, "--threads", v, 0, 1024, &o->threads); }
        else if (ex_arg_match(&a, "--temperature", &v)) { ex_parse_real(&a, "--temperature", v, 0, 0, 100, 0, &o->temperature); }
        else if (ex_arg_match(&a, "--top-p", &v)) { ex_parse_real(&a, "--top-p", v, 0, 1, 1, 0, &o->top_p); }
        else if (ex_arg_match(&a, "--seed", &v)) { ex_parse_u64(&a, "--seed", v, &o->seed); }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &o->kind); }
        else if (ex_arg_match(&a, "--stop-at-eot", NULL)) { o->stop_eot = 1; }
        else if (ex_arg_match(&a, "--quiet", NULL)) { o->quiet = 1; }
        else {
            fprintf(stderr, "%s: %s '%s'\n", prog, argv[a.i][0] == '-' ? "unknown option" : "unexpected argument", argv[a.i]);
            a.bad = 1;
        }
    }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model is required\n", prog); a.bad = 1; }
    if (!a.bad && o->prompt && o->prompt_file) { fprintf(stderr, "%s: give --prompt or --prompt-file, not both\n", prog); a.bad = 1; }
    return a.bad ? EX_USAGE : 0;
}

/* A GPT-2 checkpoint is a folder (Hugging Face) or a file with llm.c's magic. */
static int is_gpt2(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) return 1;
    FILE *f = fopen(path, "rb");
    unsigned char m[4] = { 0 };
    size_t n = f ? fread(m, 1, 4, f) : 0;
    if (f) fclose(f);
    return n == 4 && (m[0] | m[1] << 8 | m[2] << 16 | (uint32_t)m[3] << 24) == 20240326u;
}

static int load_model(const char *path, llm_backend *be, llm_model **m, const llm_bpe **bpe) {
    llm_status s = is_gpt2(path) ? llm_model_load_gpt2(m, be, path, 0) : llm_model_load(m, be, path);
    if (s != LLM_OK) return ex_fail(prog, s, path);
    if ((s = llm_model_tokenizer(*m, bpe)) != LLM_OK)
        return ex_fail(prog, s, is_gpt2(path) ? "the tokenizer (vocab.json and merges.txt beside the weights)"
                                              : "the model's tokenizer");
    return 0;
}

static int encode_prompt(const llm_bpe *bpe, const char *prompt, size_t plen, int32_t **ids, size_t *n) {
    llm_status s = llm_bpe_encode(bpe, prompt, plen, NULL, 0, n);
    if (s != LLM_OK) return ex_fail(prog, s, "encoding the prompt");
    if (*n == 0) { fprintf(stderr, "%s: the prompt is empty\n", prog); return EX_USAGE; }
    if (!(*ids = malloc(*n * sizeof **ids))) { fprintf(stderr, "%s: out of memory\n", prog); return EX_FAILURE; }
    s = llm_bpe_encode(bpe, prompt, plen, *ids, *n, n);
    return s == LLM_OK ? 0 : ex_fail(prog, s, "encoding the prompt");
}

/* Prints the prompt, then streams the generated tokens. */
static int generate(const gen_opts *o, llm_model *m, const llm_bpe *bpe, const char *prompt, size_t plen,
                    const int32_t *ids, size_t n) {
    llm_generate_options go;
    llm_generate_options_init(&go);
    go.max_tokens = o->tokens;
    go.temperature = (float)o->temperature;
    go.top_k = (int32_t)o->top_k;
    go.top_p = (float)o->top_p;
    go.seed = o->seed;
    int32_t pad, eot;
    llm_bpe_special_ids(bpe, &pad, &eot);
    go.stop_token = o->stop_eot ? eot : -1;
    stream st = { bpe, 0 };
    go.on_token = print_token;
    go.user = &st;
    fwrite(prompt, 1, plen, stdout);
    double t0 = ex_now();
    int64_t produced = 0;
    llm_status s = llm_model_generate(m, ids, (int64_t)n, &go, NULL, 0, &produced);
    double el = ex_now() - t0;
    fputc('\n', stdout);
    if (s != LLM_OK) return ex_fail(prog, s, "generating");
    if (!o->quiet)
        fprintf(stderr, "%s: %lld prompt tokens, %lld generated in %.2f s (%.1f tokens/s)\n", prog, (long long)n,
                (long long)produced, el, (double)produced / (el > 0 ? el : 1e-9));
    return 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    gen_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) { usage(stdout); return 0; }
    if (rc) { usage(stderr); return rc; }
    char *file_text = NULL;
    const char *prompt = o.prompt;
    size_t plen = 0;
    if (o.prompt_file) {
        llm_status s = llm_text_read_file(o.prompt_file, 1 << 20, &file_text, &plen);
        if (s != LLM_OK) return ex_fail(prog, s, o.prompt_file);
        prompt = file_text;
    } else {
        if (!prompt) prompt = "\n";
        plen = strlen(prompt);
    }
    llm_backend *be = NULL;
    llm_model *m = NULL;
    int32_t *ids = NULL;
    const llm_bpe *bpe = NULL;
    size_t n = 0;
    if (!(rc = ex_backend(prog, o.kind, (int)o.threads, 1, &be)) && !(rc = load_model(o.model_path, be, &m, &bpe)) &&
        !(rc = encode_prompt(bpe, prompt, plen, &ids, &n)))
        rc = generate(&o, m, bpe, prompt, plen, ids, n);
    free(ids);
    llm_text_free(file_text);
    llm_model_free(m);
    llm_backend_free(be);
    return rc;
}
