/* lm_train: pretrains a small GPT-style language model on text, or goes on
 * pretraining a GPT-2 checkpoint (--init).
 *
 *   lm_train --data FILE|DIR --model OUT.safetensors [--ctx 128 --dim 128
 *            --layers 4 --heads 4 --batch 16 --steps N --lr 3e-4 ...]
 *   lm_train --data FILE|DIR --model OUT.safetensors --init GPT2_DIR [--export DIR]
 *
 * The text (files as they are; a folder of e-mail, such as the spam corpus,
 * read through the e-mail reader) is cut into a training part and a held-out
 * tail, tokenized (bytes by default, or a BPE trained on the training part),
 * and the model learns to predict each next token on random windows of the
 * training part with AdamW, a cosine schedule with warmup and gradient
 * clipping. It reports training and validation loss, bits per byte and the
 * unigram baseline, keeps the model with the best validation loss, and
 * writes checkpoints from which --resume goes on exactly. */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

static const char *prog = "lm_train";

typedef struct lm_opts {
    const char *data[16];
    int n_data;
    const char *model_path, *checkpoint, *resume, *init, *export_dir;
    int ctx, dim, layers, heads, batch, bpe_vocab, threads, quiet, eval_every, ckpt_every, bpe, distributed;
    int64_t steps, warmup, eval_tokens;
    double lr, min_lr, weight_decay, clip, val_fraction, dropout, time_limit;
    uint64_t seed;
    llm_backend_kind backend;
} lm_opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --data FILE|DIR [--data ...] --model OUT.safetensors [options]\n"
        "  --ctx 128            context length (tokens)\n"
        "  --dim 128            model width\n"
        "  --layers 4           Transformer blocks\n"
        "  --heads 4            attention heads\n"
        "  --batch 16           windows per step\n"
        "  --steps 2000         optimizer steps\n"
        "  --lr 3e-4            peak learning rate (AdamW, cosine decay to lr/10)\n"
        "  --warmup N           linear warmup steps [steps/20, at most 200]\n"
        "  --weight-decay 0.1   decoupled weight decay\n"
        "  --clip 1.0           gradient clipping (global L2 norm; 0 = off)\n"
        "  --dropout 0          residual dropout\n"
        "  --tokenizer bytes|bpe  byte-level (default) or a BPE trained on the training text\n"
        "  --bpe-vocab 2048     BPE vocabulary size\n"
        "  --val-fraction 0.05  held-out tail of the text for validation\n"
        "  --eval-every 200     steps between validation passes\n"
        "  --eval-tokens 65536  held-out tokens scored per validation pass\n"
        "  --checkpoint PATH    written every --checkpoint-every steps [OUT.safetensors.ckpt]; 'none' for none\n"
        "  --checkpoint-every 500\n"
        "  --resume CKPT        go on from a checkpoint (same data and options)\n"
        "  --init GPT2          start from a GPT-2 checkpoint (a Hugging Face folder or an llm.c\n"
        "                       file, with vocab.json and merges.txt beside it): its shape and\n"
        "                       tokenizer replace --dim, --layers, --heads and --tokenizer\n"
        "  --export DIR         at the end, also write the kept model as a Hugging Face GPT-2\n"
        "                       folder (model.safetensors, config.json, tokenizer files)\n"
        "  --time-limit SEC     stop (and evaluate, save) after this much training time\n"
        "  --distributed        data-parallel over MPI (automatic under mpirun with more than\n"
        "                       one process): --batch is the global batch, split across the\n"
        "                       ranks; rank 0 evaluates, prints and saves\n"
        "  --seed 1  --threads N  --backend cpu|cuda  --quiet  --help\n",
        prog);
}

static int parse_args(int argc, char **argv, lm_opts *o) {
    memset(o, 0, sizeof *o);
    o->ctx = 128; o->dim = 128; o->layers = 4; o->heads = 4; o->batch = 16; o->steps = 2000; o->warmup = -1;
    o->lr = 3e-4; o->weight_decay = 0.1; o->clip = 1.0; o->val_fraction = 0.05; o->bpe_vocab = 2048;
    o->eval_every = 200; o->eval_tokens = 65536; o->ckpt_every = 500; o->seed = 1; o->backend = LLM_BACKEND_CPU;
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        long long n = 0;
        if (strcmp(argv[a.i], "-h") == 0 || strcmp(argv[a.i], "--help") == 0) return -1;
        if (ex_arg_match(&a, "--data", &v)) {
            if (!a.bad && o->n_data == 16) { fprintf(stderr, "%s: at most 16 --data\n", prog); a.bad = 1; }
            if (!a.bad) o->data[o->n_data++] = v;
        }
        else if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--checkpoint-every", &v)) { ex_parse_int(&a, "--checkpoint-every", v, 1, 1LL << 40, &n); o->ckpt_every = (int)n; }
        else if (ex_arg_match(&a, "--checkpoint", &v)) { if (!a.bad) o->checkpoint = v; }
        else if (ex_arg_match(&a, "--resume", &v)) { if (!a.bad) o->resume = v; }
        else if (ex_arg_match(&a, "--init", &v)) { if (!a.bad) o->init = v; }
        else if (ex_arg_match(&a, "--export", &v)) { if (!a.bad) o->export_dir = v; }
        else if (ex_arg_match(&a, "--ctx", &v)) { ex_parse_int(&a, "--ctx", v, 2, 8192, &n); o->ctx = (int)n; }
        else if (ex_arg_match(&a, "--dim", &v)) { ex_parse_int(&a, "--dim", v, 1, 8192, &n); o->dim = (int)n; }
        else if (ex_arg_match(&a, "--layers", &v)) { ex_parse_int(&a, "--layers", v, 0, 256, &n); o->layers = (int)n; }
        else if (ex_arg_match(&a, "--heads", &v)) { ex_parse_int(&a, "--heads", v, 1, 256, &n); o->heads = (int)n; }
        else if (ex_arg_match(&a, "--batch", &v)) { ex_parse_int(&a, "--batch", v, 1, 65536, &n); o->batch = (int)n; }
        else if (ex_arg_match(&a, "--steps", &v)) { ex_parse_int(&a, "--steps", v, 0, 1LL << 40, &n); o->steps = n; }
        else if (ex_arg_match(&a, "--warmup", &v)) { ex_parse_int(&a, "--warmup", v, 0, 1LL << 40, &n); o->warmup = n; }
        else if (ex_arg_match(&a, "--bpe-vocab", &v)) { ex_parse_int(&a, "--bpe-vocab", v, 258, 65536, &n); o->bpe_vocab = (int)n; }
        else if (ex_arg_match(&a, "--threads", &v)) { ex_parse_int(&a, "--threads", v, 0, 1024, &n); o->threads = (int)n; }
        else if (ex_arg_match(&a, "--eval-every", &v)) { ex_parse_int(&a, "--eval-every", v, 1, 1LL << 40, &n); o->eval_every = (int)n; }
        else if (ex_arg_match(&a, "--eval-tokens", &v)) { ex_parse_int(&a, "--eval-tokens", v, 1, 1LL << 40, &n); o->eval_tokens = n; }
        else if (ex_arg_match(&a, "--lr", &v)) { ex_parse_real(&a, "--lr", v, 0, 1, 10, 0, &o->lr); }
        else if (ex_arg_match(&a, "--weight-decay", &v)) { ex_parse_real(&a, "--weight-decay", v, 0, 0, 10, 0, &o->weight_decay); }
        else if (ex_arg_match(&a, "--clip", &v)) { ex_parse_real(&a, "--clip", v, 0, 0, 1e6, 0, &o->clip); }
        else if (ex_arg_match(&a, "--dropout", &v)) { ex_parse_real(&a, "--dropout", v, 0, 0, 1, 1, &o->dropout); }
        else if (ex_arg_match(&a, "--val-fraction", &v)) { ex_parse_real(&a, "--val-fraction", v, 0, 1, 0.5, 0, &o->val_fraction); }
        else if (ex_arg_match(&a, "--time-limit", &v)) { ex_parse_real(&a, "--time-limit", v, 0, 1, 1e9, 0, &o->time_limit); }
        else if (ex_arg_match(&a, "--seed", &v)) { ex_parse_u64(&a, "--seed", v, &o->seed); }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &o->backend); }
        else if (ex_arg_match(&a, "--tokenizer", &v)) {
            if (a.bad) break;
            if (strcmp(v, "bpe") == 0) o->bpe = 1;
            else if (strcmp(v, "bytes") != 0) { fprintf(stderr, "%s: --tokenizer takes bytes or bpe\n", prog); a.bad = 1; }
        }
        else if (ex_arg_match(&a, "--quiet", NULL)) { o->quiet = 1; }
        else if (ex_arg_match(&a, "--distributed", NULL)) { o->distributed = 1; }
        else {
            fprintf(stderr, "%s: %s '%s'\n", prog, argv[a.i][0] == '-' ? "unknown option" : "unexpected argument", argv[a.i]);
            a.bad = 1;
        }
    }
    if (!a.bad && o->n_data == 0) { fprintf(stderr, "%s: --data FILE|DIR is required\n", prog); a.bad = 1; }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model OUT.safetensors is required\n", prog); a.bad = 1; }
    if (!a.bad && o->init && (o->resume || o->bpe)) {
        fprintf(stderr, "%s: --init brings its own tokenizer and weights: not with --resume or --tokenizer\n", prog);
        a.bad = 1;
    }
    if (!a.bad && !o->init && o->dim % o->heads) {
        fprintf(stderr, "%s: --dim %d is not a multiple of --heads %d\n", prog, o->dim, o->heads);
        a.bad = 1;
    }
    if (o->warmup < 0) o->warmup = o->steps / 20 < 200 ? o->steps / 20 : 200;
    return a.bad ? EX_USAGE : 0;
}

/* ---------------------------------------------------------- text */

typedef struct text_buf { char *p; size_t len, cap; } text_buf;

static int text_append(text_buf *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1 << 20;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) return -1;
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

/* Reads every --data into one text: files as they are, folders of e-mail
 * (one sub-folder per class, like the spam corpus) through the e-mail reader;
 * documents are separated by a blank line. */
static int read_text(const lm_opts *o, text_buf *t) {
    for (int d = 0; d < o->n_data; d++) {
        struct stat st;
        if (stat(o->data[d], &st) != 0) { fprintf(stderr, "%s: %s: %s\n", prog, o->data[d], strerror(errno)); return EX_FAILURE; }
        if (S_ISDIR(st.st_mode)) {
            llm_corpus_options co;
            llm_corpus_options_init(&co);
            co.format = LLM_CORPUS_EMAIL;
            co.skip_unreadable = 1;
            llm_text_corpus *c = NULL;
            llm_status s = llm_text_corpus_from_directory(&c, o->data[d], &co);
            if (s != LLM_OK) return ex_fail(prog, s, o->data[d]);
            int64_t n = 0;
            llm_text_corpus_count(c, &n);
            for (int64_t i = 0; i < n; i++) {
                const char *x;
                size_t len;
                if (llm_text_corpus_text(c, i, &x, &len) != LLM_OK || text_append(t, x, len) || text_append(t, "\n\n", 2)) {
                    llm_text_corpus_free(c);
                    fprintf(stderr, "%s: out of memory reading %s\n", prog, o->data[d]);
                    return EX_FAILURE;
                }
            }
            llm_text_corpus_free(c);
        } else {
            char *x = NULL;
            size_t len = 0;
            llm_status s = llm_text_read_file(o->data[d], (size_t)1 << 30, &x, &len);
            if (s != LLM_OK) return ex_fail(prog, s, o->data[d]);
            int bad = text_append(t, x, len) || text_append(t, "\n\n", 2);
            llm_text_free(x);
            if (bad) { fprintf(stderr, "%s: out of memory reading %s\n", prog, o->data[d]); return EX_FAILURE; }
        }
    }
    if (t->len < 1024) {
        fprintf(stderr, "%s: only %zu bytes of text; a language model needs more\n", prog, t->len);
        return EX_FAILURE;
    }
    return 0;
}

static int encode(const llm_bpe *bpe, const char *text, size_t len, int32_t **ids, size_t *n) {
    llm_status s = llm_bpe_encode(bpe, text, len, NULL, 0, n);
    if (s != LLM_OK) return ex_fail(prog, s, "tokenizing");
    *ids = malloc((*n ? *n : 1) * sizeof **ids);
    if (!*ids) { fprintf(stderr, "%s: out of memory\n", prog); return EX_FAILURE; }
    s = llm_bpe_encode(bpe, text, len, *ids, *n, n);
    return s == LLM_OK ? 0 : ex_fail(prog, s, "tokenizing");
}

/* Cross-entropy (bits per token) of the held-out tokens under the training
 * tokens' unigram distribution (add-one smoothing): the baseline to beat. */
static double unigram_bits(const int32_t *train, size_t nt, const int32_t *val, size_t nv, int32_t vocab) {
    double *count = calloc((size_t)vocab, sizeof *count);
    if (!count) return NAN;
    for (size_t i = 0; i < nt; i++) count[train[i]] += 1.0;
    double total = (double)nt + vocab, bits = 0.0;
    for (size_t i = 0; i < nv; i++) bits -= log2((count[val[i]] + 1.0) / total);
    free(count);
    return bits / (double)(nv ? nv : 1);
}

/* ---------------------------------------------------------- training */

/* data-parallel training over MPI: every rank runs this program on the same
 * text with the same options, samples the same global batches and trains on
 * its slice of each; rank 0 alone validates, prints and writes files */
static llm_dist *dist;
static int dist_rank, dist_size = 1;

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Batch `step` is a pure function of (seed, step), so a resumed run sees the
 * same windows as an uninterrupted one. */
static void sample_batch(const int32_t *ids, size_t n, int ctx, int batch, uint64_t seed, int64_t step, int32_t *x,
                         int32_t *y) {
    uint64_t span = (uint64_t)(n - (size_t)ctx - 1);
    for (int b = 0; b < batch; b++) {
        size_t at = (size_t)(mix64(seed ^ mix64((uint64_t)step * 1315423911ULL + (uint64_t)b)) % (span + 1));
        memcpy(x + (size_t)b * ctx, ids + at, (size_t)ctx * sizeof *x);
        memcpy(y + (size_t)b * ctx, ids + at + 1, (size_t)ctx * sizeof *y);
    }
}

static int build_model(const lm_opts *o, llm_backend *be, int32_t vocab, llm_model **out) {
    llm_model *m = NULL;
    llm_status s = llm_model_sequential(&m, be);
    if (s == LLM_OK) s = llm_model_set_seed(m, o->seed);
    llm_transformer_embedding_options eo;
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = vocab;
    eo.context = o->ctx;
    eo.dim = o->dim;
    eo.mask_zero = 0; /* every id is a real token */
    if (s == LLM_OK) s = llm_model_add(m, llm_layer_transformer_embedding_ex(&eo));
    for (int i = 0; s == LLM_OK && i < o->layers; i++) {
        llm_transformer_block_options bo;
        llm_transformer_block_options_init(&bo);
        bo.heads = o->heads;
        bo.causal = 1;
        bo.dropout = (float)o->dropout;
        s = llm_model_add(m, llm_layer_transformer_block_ex(&bo));
    }
    if (s == LLM_OK) s = llm_model_add(m, llm_layer_layernorm(1e-5f));
    if (s == LLM_OK) s = llm_model_add(m, llm_layer_lm_head(vocab, 1));
    int64_t T = o->ctx;
    if (s == LLM_OK) s = llm_model_build(m, LLM_DTYPE_I32, 1, &T);
    if (s != LLM_OK) { llm_model_free(m); return ex_fail(prog, s, "building the model"); }
    *out = m;
    return 0;
}

static int compile_model(const lm_opts *o, llm_model *m) {
    llm_optimizer_options oo;
    llm_optimizer_options_init(&oo, LLM_OPTIMIZER_ADAMW);
    oo.learning_rate = (float)o->lr;
    oo.beta2 = 0.95f;
    oo.epsilon = 1e-8f;
    oo.weight_decay = (float)o->weight_decay;
    oo.clip_norm = (float)o->clip;
    oo.schedule = LLM_SCHEDULE_COSINE;
    oo.warmup_steps = o->warmup;
    oo.decay_steps = o->steps > 0 ? o->steps : 1;
    oo.min_learning_rate = (float)(o->lr / 10);
    llm_optimizer *opt = NULL;
    llm_status s = llm_optimizer_create(&opt, &oo);
    if (s == LLM_OK) s = llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, opt, LLM_METRIC_NONE);
    llm_optimizer_free(opt);
    return s == LLM_OK ? 0 : ex_fail(prog, s, "compiling the model");
}

/* Mean validation loss (nats per token) over up to eval_tokens held-out tokens. */
static int validate(llm_model *m, llm_dataset *val, double *loss) {
    llm_metrics r;
    llm_metrics_init(&r);
    llm_status s = llm_model_evaluate(m, val, 16, &r);
    if (s != LLM_OK) return ex_fail(prog, s, "validating");
    *loss = r.loss;
    return 0;
}

static int make_val_dataset(const int32_t *ids, size_t n, int ctx, int64_t max_tokens, llm_dataset **out, int64_t *rows_out) {
    int64_t rows = (int64_t)((n - 1) / (size_t)ctx);
    if (rows * ctx > max_tokens) rows = max_tokens / ctx;
    if (rows < 1) { fprintf(stderr, "%s: the held-out text is shorter than one context; raise --val-fraction\n", prog); return EX_FAILURE; }
    int32_t *x = malloc((size_t)(rows * ctx) * sizeof *x), *y = malloc((size_t)(rows * ctx) * sizeof *y);
    if (!x || !y) { free(x); free(y); fprintf(stderr, "%s: out of memory\n", prog); return EX_FAILURE; }
    for (int64_t r = 0; r < rows; r++) {
        memcpy(x + r * ctx, ids + r * ctx, (size_t)ctx * sizeof *x);
        memcpy(y + r * ctx, ids + r * ctx + 1, (size_t)ctx * sizeof *y);
    }
    llm_status s = llm_dataset_from_host(out, LLM_DTYPE_I32, 2, (int64_t[]){ rows, ctx }, x, LLM_DTYPE_I32, 2,
                                         (int64_t[]){ rows, ctx }, y);
    free(x);
    free(y);
    *rows_out = rows;
    return s == LLM_OK ? 0 : ex_fail(prog, s, "validation data");
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* What one run holds, filled step by step by main. */
typedef struct lm_run {
    lm_opts o;
    int tty;
    text_buf text;
    size_t train_bytes, val_bytes;
    llm_backend *be;
    llm_model *m;
    llm_bpe *bpe;
    int64_t start_step;
    int32_t *train_ids, *val_ids;
    size_t n_train, n_val;
    double unigram, val_tok_per_byte;
    llm_dataset *val;
} lm_run;

/* A copy of a tokenizer the model owns, to encode with after it changes hands. */
static llm_status copy_tokenizer(const llm_bpe *from, llm_bpe **out) {
    size_t need = 0;
    llm_status s = llm_bpe_serialize(from, NULL, 0, &need);
    char *ser = s == LLM_OK ? malloc(need + 1) : NULL;
    if (s == LLM_OK && !ser) s = LLM_ERR_OUT_OF_MEMORY;
    if (s == LLM_OK) s = llm_bpe_serialize(from, ser, need + 1, &need);
    if (s == LLM_OK) s = llm_bpe_deserialize(out, ser, need);
    free(ser);
    return s;
}

/* The tokenizer (and, when resuming or starting from GPT-2, the model):
 * from the checkpoint, from the GPT-2 folder, else bytes or a BPE trained on
 * the training part. */
static int setup_tokenizer(lm_run *r) {
    const lm_opts *o = &r->o;
    llm_status s = LLM_OK;
    if (o->resume || o->init) {
        const llm_bpe *mb = NULL;
        const char *step = NULL;
        const char *what = o->resume ? o->resume : o->init;
        s = o->resume ? llm_model_load_checkpoint(&r->m, r->be, o->resume) : llm_model_load_gpt2(&r->m, r->be, o->init, o->ctx);
        if (s == LLM_OK) s = llm_model_tokenizer(r->m, &mb);
        if (s == LLM_OK && o->resume) s = llm_model_get_metadata(r->m, "lm.step", &step);
        if (s != LLM_OK) return ex_fail(prog, s, what);
        if (step) r->start_step = strtoll(step, NULL, 10);
        if ((s = copy_tokenizer(mb, &r->bpe)) != LLM_OK) return ex_fail(prog, s, "the model's tokenizer");
    } else if (o->bpe) {
        llm_bpe_train_options bo;
        llm_bpe_train_options_init(&bo);
        bo.vocab_size = o->bpe_vocab;
        s = llm_bpe_train(&r->bpe, r->text.p, r->train_bytes, &bo);
        if (s != LLM_OK) return ex_fail(prog, s, "training the BPE tokenizer");
    } else if ((s = llm_bpe_create_bytes(&r->bpe)) != LLM_OK) {
        return ex_fail(prog, s, "tokenizer");
    }
    return 0;
}

/* Encodes both parts and reports them with the unigram baseline. */
static int prepare_data(lm_run *r, double t0) {
    const lm_opts *o = &r->o;
    int32_t vocab = 0;
    llm_bpe_vocab_size(r->bpe, &vocab);
    int rc;
    if ((rc = encode(r->bpe, r->text.p, r->train_bytes, &r->train_ids, &r->n_train)) ||
        (rc = encode(r->bpe, r->text.p + r->train_bytes, r->val_bytes, &r->val_ids, &r->n_val)))
        return rc;
    if (r->n_train < (size_t)o->ctx + 2) {
        fprintf(stderr, "%s: %zu training tokens are too few for a context of %d\n", prog, r->n_train, o->ctx);
        return EX_FAILURE;
    }
    r->unigram = unigram_bits(r->train_ids, r->n_train, r->val_ids, r->n_val, vocab);
    r->val_tok_per_byte = (double)r->n_val / (double)r->val_bytes;
    if (!o->quiet)
        printf("text: %zu bytes (%zu training, %zu held out); tokenizer: %s, %d ids; %zu + %zu tokens "
               "(%.2f bytes/token); prepared in %.1f s\n", r->text.len, r->train_bytes, r->val_bytes,
               o->init ? "gpt2" : o->bpe ? "bpe" : "bytes", vocab, r->n_train, r->n_val,
               (double)r->train_bytes / (double)r->n_train, ex_now() - t0);
    int64_t val_rows = 0;
    return make_val_dataset(r->val_ids, r->n_val, o->ctx, o->eval_tokens, &r->val, &val_rows);
}

/* A new model (unless resuming), compiled (unless resuming), summarised. */
static int setup_model(lm_run *r) {
    const lm_opts *o = &r->o;
    llm_status s;
    int rc;
    if (!r->m) {
        int32_t vocab = 0;
        llm_bpe_vocab_size(r->bpe, &vocab);
        if ((rc = build_model(o, r->be, vocab, &r->m))) return rc;
        char heads[32];
        snprintf(heads, sizeof heads, "%d", o->heads);
        if ((s = llm_model_set_tokenizer(r->m, r->bpe)) != LLM_OK ||
            (s = llm_model_set_metadata(r->m, "lm.heads", heads)) != LLM_OK)
            return ex_fail(prog, s, "attaching the tokenizer");
    }
    if (!o->resume && (rc = compile_model(o, r->m))) return rc;
    if (dist && (s = llm_dist_sync_model(dist, r->m)) != LLM_OK) return ex_fail(prog, s, "starting distributed training");
    int64_t nparams = 0;
    llm_model_param_count(r->m, &nparams);
    if (!o->quiet) {
        size_t need = 0;
        llm_model_summary(r->m, NULL, 0, &need);
        char *summary = malloc(need + 1);
        if (summary && llm_model_summary(r->m, summary, need + 1, NULL) == LLM_OK) fputs(summary, stdout);
        free(summary);
        printf("parameters: %lld; unigram baseline on the held-out text: %.3f bits/token = %.3f bits/byte\n",
               (long long)nparams, r->unigram, r->unigram * r->val_tok_per_byte);
    }
    return 0;
}

static void print_eval(const lm_run *r, int64_t step, double smooth, double val_loss, double rate) {
    printf("step %lld: train_loss %.4f val_loss %.4f val_bits_per_byte %.4f (unigram %.4f)", (long long)step, smooth,
           val_loss, val_loss / log(2.0) * r->val_tok_per_byte, r->unigram * r->val_tok_per_byte);
    if (rate > 0) printf(" tokens/s %.0f", rate);
    printf("\n");
    fflush(stdout);
}

/* The training loop: steps until --steps, --time-limit or Ctrl-C; validates
 * every --eval-every steps (saving the best model) and checkpoints. */
static int train(lm_run *r) {
    const lm_opts *o = &r->o;
    llm_model *m = r->m;
    int rc = 0;
    llm_status s;
    int32_t *hx = malloc((size_t)o->batch * (size_t)o->ctx * sizeof *hx), *hy = malloc((size_t)o->batch * (size_t)o->ctx * sizeof *hy);
    llm_tensor *x = NULL, *y = NULL;
    /* this rank's rows [row0, row0 + rows) of every global batch */
    int64_t row0 = (int64_t)o->batch * dist_rank / dist_size, rows = (int64_t)o->batch * (dist_rank + 1) / dist_size - row0;
    int64_t shape[2] = { rows, o->ctx };
    if (!hx || !hy) { fprintf(stderr, "%s: out of memory\n", prog); rc = EX_FAILURE; goto out; }
    memset(hx, 0, (size_t)o->batch * (size_t)o->ctx * sizeof *hx);
    if ((s = llm_tensor_zeros(&x, r->be, LLM_DTYPE_I32, 2, shape)) != LLM_OK ||
        (s = llm_tensor_zeros(&y, r->be, LLM_DTYPE_I32, 2, shape)) != LLM_OK) {
        rc = ex_fail(prog, s, "tensors");
        goto out;
    }
    signal(SIGINT, on_sigint);
    double best = INFINITY, train_loss = NAN, smooth = NAN, last_val = NAN;
    double t_start = ex_now(), last_draw = 0;
    int64_t step = r->start_step, tokens = 0;
    size_t bytes = (size_t)rows * (size_t)o->ctx * sizeof *hx;
    const int32_t *lx = hx + row0 * o->ctx, *ly = hy + row0 * o->ctx;
    while (step < o->steps && !interrupted && !(o->time_limit > 0 && ex_now() - t_start > o->time_limit)) {
        sample_batch(r->train_ids, r->n_train, o->ctx, o->batch, o->seed, step, hx, hy);
        float loss = 0;
        if ((s = llm_tensor_copy_from_host(x, lx, bytes)) != LLM_OK || (s = llm_tensor_copy_from_host(y, ly, bytes)) != LLM_OK ||
            (s = dist ? llm_dist_train_on_batch(dist, m, x, y, o->batch, &loss)
                      : llm_model_train_on_batch(m, x, y, &loss, NULL)) != LLM_OK) {
            if (r->tty) fputc('\n', stderr);
            rc = ex_fail(prog, s, "training step");
            break;
        }
        step++;
        tokens += (int64_t)o->batch * o->ctx;
        train_loss = loss;
        smooth = isnan(smooth) ? loss : 0.95 * smooth + 0.05 * loss;
        double now = ex_now(), el = now - t_start, rate = (double)tokens / (el > 0 ? el : 1e-9);
        int eval_now = dist_rank == 0 && (step % o->eval_every == 0 || step == o->steps);
        if ((r->tty && now - last_draw > 0.2) || (!r->tty && !o->quiet && (step % 50 == 0)) || eval_now) {
            char eta[32];
            fmt_time((double)(o->steps - step) * (double)o->batch * o->ctx / rate, eta, sizeof eta);
            if (r->tty) fprintf(stderr, "\rstep %lld/%lld  loss %.4f  %.0f tokens/s  ETA %s   ", (long long)step,
                                (long long)o->steps, smooth, rate, eta);
            else if (!o->quiet && !eval_now) printf("step %lld/%lld loss %.4f tokens/s %.0f eta %s\n", (long long)step,
                                                   (long long)o->steps, smooth, rate, eta);
            last_draw = now;
        }
        if (eval_now) {
            if ((rc = validate(m, r->val, &last_val))) break;
            if (r->tty) fputc('\n', stderr);
            print_eval(r, step, smooth, last_val, rate);
            if (last_val < best) {
                best = last_val;
                if ((s = llm_model_save(m, o->model_path)) != LLM_OK) { rc = ex_fail(prog, s, o->model_path); break; }
            }
        }
        if (o->checkpoint && step % o->ckpt_every == 0) {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", (long long)step);
            if ((s = llm_model_set_metadata(m, "lm.step", buf)) != LLM_OK ||
                (s = llm_model_save_checkpoint(m, o->checkpoint)) != LLM_OK) {
                rc = ex_fail(prog, s, o->checkpoint);
                break;
            }
        }
    }
    if (!rc && dist_rank == 0 && step > r->start_step && step % o->eval_every != 0) {
        /* stopped early (time limit, Ctrl-C): score and keep what we have */
        if (r->tty) fputc('\n', stderr);
        if (!(rc = validate(m, r->val, &last_val))) {
            print_eval(r, step, smooth, last_val, 0);
            if (last_val < best) {
                best = last_val;
                if ((s = llm_model_save(m, o->model_path)) != LLM_OK) rc = ex_fail(prog, s, o->model_path);
            }
        }
    }
    if (!rc && step == r->start_step) {
        printf("done: no steps to run (--steps %lld); nothing saved\n", (long long)o->steps);
    } else if (!rc) {
        double el = ex_now() - t_start;
        printf("done: %lld steps, %.1f s, %.0f tokens/s; last train_loss %.4f; best val_loss %.4f = %.4f bits/byte "
               "(unigram baseline %.4f); model saved to %s\n", (long long)(step - r->start_step), el,
               (double)tokens / (el > 0 ? el : 1), train_loss, best, best / log(2.0) * r->val_tok_per_byte,
               r->unigram * r->val_tok_per_byte, o->model_path);
        if (interrupted) rc = 130;
    }
out:
    llm_tensor_free(x);
    llm_tensor_free(y);
    free(hx);
    free(hy);
    return rc;
}

/* --export: the kept model (the file --model names) as a Hugging Face GPT-2. */
static int export_gpt2(lm_run *r) {
    llm_model *kept = NULL;
    llm_status s = llm_model_load(&kept, r->be, r->o.model_path);
    if (s == LLM_OK) s = llm_model_save_gpt2(kept, r->o.export_dir);
    llm_model_free(kept);
    if (s != LLM_OK) return ex_fail(prog, s, r->o.export_dir);
    printf("exported to %s (Hugging Face GPT-2)\n", r->o.export_dir);
    return 0;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    lm_run r;
    memset(&r, 0, sizeof r);
    lm_opts *o = &r.o;
    int rc = parse_args(argc, argv, o);
    if (rc < 0) { usage(stdout); return 0; }
    if (rc) { usage(stderr); return rc; }
    if (ex_dist_wanted(o->distributed)) {
        if (o->time_limit > 0) {
            fprintf(stderr, "%s: --time-limit would stop the ranks at different steps; use --steps\n", prog);
            return EX_USAGE;
        }
        if (ex_dist_start(prog, &argc, &argv, &o->threads, &o->quiet, &dist, &dist_rank, &dist_size)) {
            llm_dist_free(dist);
            return EX_FAILURE;
        }
        if (o->batch < dist_size) {
            fprintf(stderr, "%s: --batch %d is smaller than the %d ranks\n", prog, o->batch, dist_size);
            llm_dist_free(dist);
            return EX_USAGE;
        }
    }
    char ckpt_default[4096];
    if (!o->checkpoint) {
        snprintf(ckpt_default, sizeof ckpt_default, "%s.ckpt", o->model_path);
        o->checkpoint = ckpt_default;
    }
    if (strcmp(o->checkpoint, "none") == 0 || dist_rank > 0) o->checkpoint = NULL;
    r.tty = isatty(STDERR_FILENO) && !o->quiet;
    double t0 = ex_now();
    if (!(rc = read_text(o, &r.text))) {
        r.train_bytes = (size_t)((double)r.text.len * (1.0 - o->val_fraction));
        r.val_bytes = r.text.len - r.train_bytes;
        if (!(rc = ex_backend(prog, o->backend, o->threads, o->quiet, &r.be)) && !(rc = setup_tokenizer(&r)) &&
            !(rc = prepare_data(&r, t0)) && !(rc = setup_model(&r)) && !(rc = train(&r)) && o->export_dir &&
            dist_rank == 0)
            rc = export_gpt2(&r);
    }
    llm_dataset_free(r.val);
    free(r.train_ids);
    free(r.val_ids);
    llm_bpe_free(r.bpe);
    llm_model_free(r.m);
    llm_backend_free(r.be);
    free(r.text.p);
    llm_dist_free(dist);
    return rc;
}
