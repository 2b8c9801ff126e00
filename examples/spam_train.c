/* spam_train: trains the spam classifier (Embedding -> LSTM -> Dense(1,
 * sigmoid)) on a folder of raw e-mail with one sub-folder per class
 * (ham/, spam/) and saves it, text pipeline included, as one .safetensors
 * file that spam_eval and spam_predict use on raw messages.
 *
 *   spam_train --data DIR --model OUT.safetensors [options]
 *
 * The pipeline: corpus from the folder -> stratified split (test part if
 * asked, then validation) -> vocabulary from the training part only ->
 * datasets -> model -> fit, saving the model after every epoch whose
 * validation loss is the best so far. */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

static const char *prog = "spam_train";

typedef struct train_opts {
    const char *data, *model_path, *keep_headers, *checkpoint, *resume, *init;
    int bag; /* --arch bag: no recurrent layer, the embeddings pooled */
    int two_branch; /* --arch two-branch: a functional model, LSTM and pooled branches */
    int nb;  /* --arch nb: one weight per id from Naive-Bayes ratios, pooled, Dense(1) */
    int transformer, layers, heads, bpe_vocab, causal, lr_set;
    int epochs, batch, seq, vocab, embed, hidden, threads, patience;
    double lr, val_split, test_split, dropout;
    int pool, pool_set; /* -1: the recurrent layer's last state; else an llm_pool_mode over all states */
    uint64_t seed;
    llm_backend_kind backend;
    int gru, bidirectional, quiet, truncate_pre, padding_post, padding_set, fold;
    int distributed;
    int threshold_mode;  /* 0 none stored, 1 the number below, 2 auto */
    double threshold;
    int cv, cv_repeats;  /* --cv K: K-fold cross-validation instead of one model */
    const char *cv_out;  /* out-of-fold probabilities as CSV */
    int recipe;          /* --recipe best: the ensemble of recipe_member */
    int bigrams;         /* --bigrams N: hashed word-pair ids in N buckets */
    int char_ngrams;     /* --char-ngrams N: hashed subword ids in N buckets */
    int char_min, char_max; /* --char-ngram-len MIN-MAX */
    int tag_headers;     /* --tag-headers: header words tagged with their header */
    int skip_unknown, unique, reverse; /* --skip-unknown, --unique-tokens, --reverse: 0, 1, -1 the arch's default */
    int raw_body;        /* --raw-body: the body verbatim (no MIME decoding, HTML markup kept) */
} train_opts;

/* data-parallel training over MPI (--distributed, or started by mpirun):
   every rank runs this program; rank 0 alone prints and writes files */
static llm_dist *dist;
static int dist_rank;

#define DEFAULT_HEADERS "From,To,Reply-To,Return-Path,X-Mailer,Content-Type"

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --data DIR --model OUT.safetensors [options]\n"
        "\n"
        "Trains Embedding -> LSTM -> Dense(1, sigmoid) on DIR, whose sub-folders are the\n"
        "two classes (sorted by name: ham = 0, spam = 1; spam is the positive class), and\n"
        "keeps the epoch with the best validation loss in OUT.safetensors.\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --epochs N         training epochs [10]\n"
        "  --batch N          mini-batch size [32]\n"
        "  --seq N            token ids per message [600 for --arch lstm, else 200]\n"
        "  --vocab N          vocabulary size, the 2 reserved ids included [20000]\n"
        "  --embed N          embedding size [64]\n"
        "  --hidden N         recurrent units; with --arch bag, the ReLU layer's units,\n"
        "                     0 = none [128]\n"
        "  --lr R             Adam learning rate [1e-3]\n"
        "  --val-split F      validation fraction of the training part, 0 = none [0.1]\n"
        "  --test-split F     hold out this stratified fraction first and report test\n"
        "                     metrics on it with the kept model [0]\n"
        "  --seed N           seed for splits, shuffling and initialisation [1]\n"
        "  --threads N        CPU threads, 0 = all cores [0]\n"
        "  --backend B        cpu or cuda [cpu]\n"
        "  --gru              a GRU instead of the LSTM\n"
        "  --bidirectional    read each message both ways\n"
        "  --dropout R        dropout rate before the output layer [0]\n"
        "  --pool P           what the output layers see: last (lstm: the state at the\n"
        "                     message's end), or max or average over every step's state\n"
        "                     (bag: over the embeddings) [lstm last, bag average]\n"
        "  --arch A           lstm; nb: Naive-Bayes log-count ratios as one weight per\n"
        "                     id (Embedding(ids, 1) initialised with them -> --pool ->\n"
        "                     Dense(1, sigmoid)), trained on (NBSVM); bag: no\n"
        "                     recurrent layer, the embeddings pooled over\n"
        "                     the whole message (Embedding -> --pool, average by default\n"
        "                     -> Dense(--hidden, relu) -> Dense(1, sigmoid)), cheap\n"
        "                     enough for long --seq; or transformer: a Transformer\n"
        "                     encoder over BPE tokens\n"
        "                     (Embedding+positions -> blocks -> LayerNorm -> mean pool ->\n"
        "                     Dense(1, sigmoid)), padded post; --embed is its width;\n"
        "                     or two-branch: a functional model (graph.h) whose one\n"
        "                     embedding feeds an LSTM(--hidden) branch and an average-\n"
        "                     pool branch, concatenated -> Dense(1, sigmoid) [lstm]\n"
        "  --init LM          transformer: start from a language model trained by lm_train,\n"
        "                     or a GPT-2 (a Hugging Face folder or an llm.c file, with\n"
        "                     vocab.json and merges.txt) (its tokenizer, embedding and\n"
        "                     blocks; width, heads and layers come from it)\n"
        "  --layers N         transformer blocks [2]\n"
        "  --heads N          attention heads [4]\n"
        "  --bpe-vocab N      transformer without --init: BPE vocabulary trained on the\n"
        "                     training messages [4096]\n"
        "  --causal           transformer: causal attention (as a language model) [off]\n"
        "  --patience N       stop after N epochs without improvement, 0 = never [0]\n"
        "  --keep-headers L   comma-separated headers kept as text, 'none' for none\n"
        "                     [" DEFAULT_HEADERS "]\n"
        "  --truncate SIDE    where long messages lose tokens: pre keeps the end (list\n"
        "                     footers, signatures), post the start, middle both halves\n"
        "                     (headers and subject, and the end) [middle for --arch\n"
        "                     lstm, else pre]\n"
        "  --padding SIDE     where short messages get padding ids [pre]\n"
        "  --fold             fold numbers, URLs and addresses into <num>, <url>, <email>\n"
        "  --tag-headers      header-aware tokens: words of the kept headers and the\n"
        "                     subject become name·word (subject·free is not the body's free)\n"
        "  --raw-body         read the body verbatim: no MIME decoding, HTML markup kept\n"
        "  --skip-unknown 0|1 leave out words not in the vocabulary instead of mapping\n"
        "                     them to [UNK] [1 for --arch lstm, else 0]\n"
        "  --unique-tokens 0|1 keep only each word's first occurrence, so --seq covers\n"
        "                     more of a long message [1 for --arch lstm, else 0]\n"
        "  --reverse 0|1      feed the words back to front: a recurrent model's last\n"
        "                     state then holds the subject and headers [1 for --arch lstm]\n"
        "  --bigrams N        also hashed word pairs, in N extra embedding rows\n"
        "                     (fastText-style; for --arch bag, whose --seq then counts\n"
        "                     both kinds of ids) [0: none]\n"
        "  --char-ngrams N    also each word's hashed character n-grams, in N extra\n"
        "                     embedding rows (fastText's subwords) [0: none]\n"
        "  --char-ngram-len A-B  their lengths in bytes [3-5]\n"
        "  --threshold T      decision threshold stored with the model (the default of\n"
        "                     spam_eval and spam_predict): a number in [0, 1], or auto:\n"
        "                     the one with the best F1 on the validation part, scored\n"
        "                     with the kept model (ties: closest to 0.5) [none: 0.5]\n"
        "  --checkpoint PATH  checkpoint written after every epoch [OUT.safetensors.ckpt];\n"
        "                     'none' writes none\n"
        "  --resume CKPT      go on from a checkpoint (same data, seed and options give\n"
        "                     the same result as an uninterrupted run)\n"
        "  --cv K             K-fold cross-validation instead of saving a model: the\n"
        "                     messages dealt into K stratified folds (--seed); K models,\n"
        "                     each trained (vocabulary included) without its fold and\n"
        "                     scored on it; one line per fold and the mean and sd\n"
        "  --cv-repeats R     R rounds of --cv, each with another deal of folds [1]\n"
        "  --cv-out FILE.csv  the out-of-fold probability of every message:\n"
        "                     repeat,fold,path,label,probability\n"
        "  --recipe best      the most accurate configuration cross-validation found\n"
        "                     (see README): an ensemble of six NBSVMs, a bag and an\n"
        "                     LSTM, each with its own text settings; the model and\n"
        "                     text options are the recipe's, --seed and --threads apply\n"
        "  --quiet            no progress display and no model summary\n"
        "  --distributed      data-parallel training over MPI, e.g. mpirun -np 4 %s ...\n"
        "                     (automatic under mpirun with more than one process);\n"
        "                     --batch is the global batch, split across the ranks\n"
        "  --help             this text\n",
        prog, prog);
}

/* 1 for "pre", 0 for "post", 2 for "middle" where allowed; anything else
 * is a usage error. */
static int parse_side(ex_args *a, const char *opt, const char *v) {
    if (strcmp(v, "pre") == 0) return 1;
    if (strcmp(v, "middle") == 0 && strcmp(opt, "--truncate") == 0) return 2;
    if (strcmp(v, "post") != 0) {
        fprintf(stderr, "%s: %s takes pre or post, not '%s'\n", prog, opt, v);
        a->bad = 1;
    }
    return 0;
}

/* --arch two-branch, with the functional API (llm/graph.h): one embedding
 * read by an LSTM branch (word order) and an average-pool branch (which
 * words), their outputs side by side into the output layer. */
static llm_status two_branch_model(llm_model *model, const train_opts *o, int64_t vsize, int64_t seq) {
    llm_node *ids, *emb, *last, *avg, *both, *out;
    llm_status s = llm_model_input(model, LLM_DTYPE_I32, 1, &seq, &ids);
    if (s == LLM_OK) s = llm_model_apply(model, llm_layer_embedding(vsize, o->embed), ids, &emb);
    if (s == LLM_OK) s = llm_model_apply(model, llm_layer_lstm(o->hidden, LLM_RETURN_LAST), emb, &last);
    if (s == LLM_OK) s = llm_model_apply(model, llm_layer_global_pool(LLM_POOL_AVERAGE), emb, &avg);
    llm_node *branches[2] = { last, avg };
    if (s == LLM_OK) s = llm_model_merge(model, llm_layer_concatenate(), 2, branches, &both);
    if (s == LLM_OK && o->dropout > 0) s = llm_model_apply(model, llm_layer_dropout((float)o->dropout), both, &both);
    if (s == LLM_OK) s = llm_model_apply(model, llm_layer_dense(1, LLM_ACT_SIGMOID), both, &out);
    if (s == LLM_OK) s = llm_model_set_outputs(model, 1, &out);
    return s;
}

/* Returns 0 to go on, EX_USAGE after printing why, -1 for --help. */
static int parse_args(int argc, char **argv, train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 10; o->batch = 32; o->seq = 0; o->vocab = 20000; o->embed = 64; o->hidden = 128;
    o->lr = 1e-3; o->val_split = 0.1; o->seed = 1; o->backend = LLM_BACKEND_CPU;
    /* measured on the SpamAssassin corpus (see README): these headers carry
     * sender and mailer signals; keeping the end of long messages (list
     * footers, signatures) helps the bag models, the LSTM's order is below */
    o->keep_headers = DEFAULT_HEADERS;
    o->heads = 4; o->bpe_vocab = 4096;
    o->truncate_pre = -1;
    o->pool = -1;
    o->skip_unknown = o->unique = o->reverse = -1;
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        long long n = 0;
        if (strcmp(argv[a.i], "-h") == 0 || strcmp(argv[a.i], "--help") == 0) return -1;
        if (ex_arg_match(&a, "--data", &v)) { if (!a.bad) o->data = v; }
        else if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--keep-headers", &v)) { if (!a.bad) o->keep_headers = v; }
        else if (ex_arg_match(&a, "--checkpoint", &v)) { if (!a.bad) o->checkpoint = v; }
        else if (ex_arg_match(&a, "--resume", &v)) { if (!a.bad) o->resume = v; }
        else if (ex_arg_match(&a, "--epochs", &v)) { if (!a.bad) ex_parse_int(&a, "--epochs", v, 1, 100000, &n); o->epochs = (int)n; }
        else if (ex_arg_match(&a, "--batch", &v)) { if (!a.bad) ex_parse_int(&a, "--batch", v, 1, 65536, &n); o->batch = (int)n; }
        else if (ex_arg_match(&a, "--seq", &v)) { if (!a.bad) ex_parse_int(&a, "--seq", v, 1, 100000, &n); o->seq = (int)n; }
        else if (ex_arg_match(&a, "--vocab", &v)) { if (!a.bad) ex_parse_int(&a, "--vocab", v, 3, 10000000, &n); o->vocab = (int)n; }
        else if (ex_arg_match(&a, "--embed", &v)) { if (!a.bad) ex_parse_int(&a, "--embed", v, 1, 65536, &n); o->embed = (int)n; }
        else if (ex_arg_match(&a, "--hidden", &v)) { if (!a.bad) ex_parse_int(&a, "--hidden", v, 0, 65536, &n); o->hidden = (int)n; }
        else if (ex_arg_match(&a, "--threads", &v)) { if (!a.bad) ex_parse_int(&a, "--threads", v, 0, 1024, &n); o->threads = (int)n; }
        else if (ex_arg_match(&a, "--patience", &v)) { if (!a.bad) ex_parse_int(&a, "--patience", v, 0, 100000, &n); o->patience = (int)n; }
        else if (ex_arg_match(&a, "--lr", &v)) { if (!a.bad) ex_parse_real(&a, "--lr", v, 0, 1, 10, 0, &o->lr); o->lr_set = 1; }
        else if (ex_arg_match(&a, "--val-split", &v)) { if (!a.bad) ex_parse_real(&a, "--val-split", v, 0, 0, 1, 1, &o->val_split); }
        else if (ex_arg_match(&a, "--test-split", &v)) { if (!a.bad) ex_parse_real(&a, "--test-split", v, 0, 0, 1, 1, &o->test_split); }
        else if (ex_arg_match(&a, "--pool", &v)) {
            o->pool_set = 1;
            if (a.bad) {
            } else if (strcmp(v, "last") == 0) {
                o->pool = -1;
            } else if (strcmp(v, "max") == 0) {
                o->pool = LLM_POOL_MAX;
            } else if (strcmp(v, "average") == 0) {
                o->pool = LLM_POOL_AVERAGE;
            } else {
                fprintf(stderr, "%s: --pool takes last, max or average, not '%s'\n", prog, v);
                a.bad = 1;
            }
        }
        else if (ex_arg_match(&a, "--dropout", &v)) { if (!a.bad) ex_parse_real(&a, "--dropout", v, 0, 0, 1, 1, &o->dropout); }
        else if (ex_arg_match(&a, "--seed", &v)) { if (!a.bad) ex_parse_u64(&a, "--seed", v, &o->seed); }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &o->backend); }
        else if (ex_arg_match(&a, "--gru", NULL)) { o->gru = 1; }
        else if (ex_arg_match(&a, "--causal", NULL)) { o->causal = 1; }
        else if (ex_arg_match(&a, "--init", &v)) { if (!a.bad) o->init = v; }
        else if (ex_arg_match(&a, "--layers", &v)) { if (!a.bad) ex_parse_int(&a, "--layers", v, 0, 256, &n); o->layers = (int)n; }
        else if (ex_arg_match(&a, "--heads", &v)) { if (!a.bad) ex_parse_int(&a, "--heads", v, 1, 256, &n); o->heads = (int)n; }
        else if (ex_arg_match(&a, "--bpe-vocab", &v)) { if (!a.bad) ex_parse_int(&a, "--bpe-vocab", v, 258, 65536, &n); o->bpe_vocab = (int)n; }
        else if (ex_arg_match(&a, "--arch", &v)) {
            if (!a.bad && strcmp(v, "transformer") == 0) o->transformer = 1;
            else if (!a.bad && strcmp(v, "bag") == 0) o->bag = 1;
            else if (!a.bad && strcmp(v, "two-branch") == 0) o->two_branch = 1;
            else if (!a.bad && strcmp(v, "nb") == 0) { o->bag = 1; o->nb = 1; }
            else if (!a.bad && strcmp(v, "lstm") != 0) { fprintf(stderr, "%s: --arch takes lstm, bag, nb, two-branch or transformer\n", prog); a.bad = 1; }
        }
        else if (ex_arg_match(&a, "--bidirectional", NULL)) { o->bidirectional = 1; }
        else if (ex_arg_match(&a, "--quiet", NULL)) { o->quiet = 1; }
        else if (ex_arg_match(&a, "--cv", &v)) { if (!a.bad) ex_parse_int(&a, "--cv (folds)", v, 2, 1000000, &n); o->cv = (int)n; }
        else if (ex_arg_match(&a, "--cv-repeats", &v)) { if (!a.bad) ex_parse_int(&a, "--cv-repeats", v, 1, 1000, &n); o->cv_repeats = (int)n; }
        else if (ex_arg_match(&a, "--cv-out", &v)) { if (!a.bad) o->cv_out = v; }
        else if (ex_arg_match(&a, "--recipe", &v)) {
            if (!a.bad && strcmp(v, "best") == 0) o->recipe = 1;
            else if (!a.bad) { fprintf(stderr, "%s: --recipe takes best, not '%s'\n", prog, v); a.bad = 1; }
        }
        else if (ex_arg_match(&a, "--distributed", NULL)) { o->distributed = 1; }
        else if (ex_arg_match(&a, "--fold", NULL)) { o->fold = 1; }
        else if (ex_arg_match(&a, "--raw-body", NULL)) { o->raw_body = 1; }
        else if (ex_arg_match(&a, "--skip-unknown", &v)) { if (!a.bad) ex_parse_int(&a, "--skip-unknown", v, 0, 1, &n); o->skip_unknown = (int)n; }
        else if (ex_arg_match(&a, "--unique-tokens", &v)) { if (!a.bad) ex_parse_int(&a, "--unique-tokens", v, 0, 1, &n); o->unique = (int)n; }
        else if (ex_arg_match(&a, "--reverse", &v)) { if (!a.bad) ex_parse_int(&a, "--reverse", v, 0, 1, &n); o->reverse = (int)n; }
        else if (ex_arg_match(&a, "--tag-headers", NULL)) { o->tag_headers = 1; }
        else if (ex_arg_match(&a, "--bigrams", &v)) { if (!a.bad) ex_parse_int(&a, "--bigrams", v, 0, 1 << 24, &n); o->bigrams = (int)n; }
        else if (ex_arg_match(&a, "--char-ngrams", &v)) { if (!a.bad) ex_parse_int(&a, "--char-ngrams", v, 0, 1 << 24, &n); o->char_ngrams = (int)n; }
        else if (ex_arg_match(&a, "--char-ngram-len", &v)) {
            int lo = 0, hi = 0, used = 0;
            if (!a.bad && (sscanf(v, "%d-%d%n", &lo, &hi, &used) != 2 || v[used] || lo < 1 || hi < lo || hi > 16)) {
                fprintf(stderr, "%s: --char-ngram-len takes MIN-MAX with 1 <= MIN <= MAX <= 16, not '%s'\n", prog, v);
                a.bad = 1;
            }
            o->char_min = lo;
            o->char_max = hi;
        }
        else if (ex_arg_match(&a, "--threshold", &v)) {
            if (!a.bad && strcmp(v, "auto") == 0) o->threshold_mode = 2;
            else if (!a.bad) { ex_parse_real(&a, "--threshold", v, 0, 0, 1, 0, &o->threshold); o->threshold_mode = 1; }
        }
        else if (ex_arg_match(&a, "--truncate", &v)) { if (!a.bad) o->truncate_pre = parse_side(&a, "--truncate", v); }
        else if (ex_arg_match(&a, "--padding", &v)) { if (!a.bad) o->padding_post = !parse_side(&a, "--padding", v); o->padding_set = 1; }
        else if (argv[a.i][0] == '-') {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[a.i]);
            a.bad = 1;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[a.i]);
            a.bad = 1;
        }
    }
    o->layers = o->layers ? o->layers : 2;
    if (!a.bad && o->transformer && (o->skip_unknown == 1 || o->unique == 1 || o->reverse == 1)) {
        fprintf(stderr, "%s: --skip-unknown, --unique-tokens and --reverse are for word vocabularies (not --arch transformer)\n", prog);
        a.bad = 1;
    }
    /* measured by 5-fold CV (README): the recurrent seed model reads more of a
     * message when unknown and repeated words take no steps, and is best when
     * it reads the message back to front, ending on the subject and headers,
     * from its first and last 300 words */
    const int recurrent = !o->transformer && !o->bag && !o->nb && !o->two_branch;
    if (!o->seq) o->seq = recurrent ? 600 : 200;
    if (o->skip_unknown < 0) o->skip_unknown = recurrent;
    if (o->unique < 0) o->unique = recurrent;
    if (o->reverse < 0) o->reverse = recurrent;
    if (o->truncate_pre < 0) o->truncate_pre = recurrent ? 2 : 1;
    if (!a.bad && o->init && !o->transformer) { fprintf(stderr, "%s: --init needs --arch transformer\n", prog); a.bad = 1; }
    if (!a.bad && (o->transformer || o->bag || o->two_branch) && (o->gru || o->bidirectional)) {
        fprintf(stderr, "%s: --gru and --bidirectional are for --arch lstm\n", prog);
        a.bad = 1;
    }
    if (!a.bad && o->bag && o->pool < 0 && o->pool_set) {
        fprintf(stderr, "%s: --arch bag has no last state: --pool takes max or average\n", prog);
        a.bad = 1;
    }
    if (!a.bad && (o->transformer || o->two_branch) && o->pool_set) {
        fprintf(stderr, "%s: --pool is for --arch lstm or bag\n", prog);
        a.bad = 1;
    }
    if (!a.bad && (o->bigrams || o->char_ngrams) && o->transformer) {
        fprintf(stderr, "%s: --bigrams and --char-ngrams are for word vocabularies (--arch lstm or bag)\n", prog);
        a.bad = 1;
    }
    if (!a.bad && o->hidden == 0 && !o->bag) {
        fprintf(stderr, "%s: --hidden 0 is for --arch bag\n", prog);
        a.bad = 1;
    }
    /* a Transformer reads from position 0 and learns slower than the LSTM at 1e-3 */
    if (o->transformer && !o->lr_set) o->lr = 5e-4;
    if (!a.bad && !o->data) { fprintf(stderr, "%s: --data DIR is required\n", prog); a.bad = 1; }
    if (!a.bad && (o->cv_repeats || o->cv_out) && !o->cv) { fprintf(stderr, "%s: --cv-repeats and --cv-out need --cv K\n", prog); a.bad = 1; }
    if (!o->cv_repeats) o->cv_repeats = 1;
    if (!a.bad && o->cv && o->resume) {
        fprintf(stderr, "%s: --cv trains a new model for every fold; it cannot --resume a checkpoint\n", prog);
        a.bad = 1;
    }
    if (!a.bad && o->cv && o->test_split > 0) {
        fprintf(stderr, "%s: --cv scores every message out of fold; --test-split has no place in it\n", prog);
        a.bad = 1;
    }
    if (!a.bad && o->cv && o->model_path) {
        fprintf(stderr, "%s: --cv saves no model; leave out --model (train the chosen configuration without --cv)\n", prog);
        a.bad = 1;
    }
    if (!a.bad && o->cv && o->distributed) { fprintf(stderr, "%s: --cv and --distributed do not go together\n", prog); a.bad = 1; }
    if (!a.bad && o->recipe && (o->resume || o->init || o->transformer)) {
        fprintf(stderr, "%s: --recipe best sets its own models; --resume, --init and --arch do not apply\n", prog);
        a.bad = 1;
    }
    if (!a.bad && !o->model_path && !o->cv) { fprintf(stderr, "%s: --model OUT.safetensors is required (or --cv K)\n", prog); a.bad = 1; }
    if (!a.bad && o->threshold_mode == 2 && o->val_split == 0) {
        fprintf(stderr, "%s: --threshold auto needs a validation part (--val-split > 0)\n", prog);
        a.bad = 1;
    }
    if (!a.bad && o->val_split + o->test_split >= 0.95) {
        fprintf(stderr, "%s: --val-split and --test-split leave (almost) nothing to train on\n", prog);
        a.bad = 1;
    }
    return a.bad ? EX_USAGE : 0;
}

/* ---------------------------------------------------------- progress */

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

typedef struct train_state {
    const train_opts *o;
    llm_model *model;
    int tty;             /* stderr is a terminal: redraw one line */
    int64_t n_train;     /* training examples per epoch */
    double last_draw;    /* when the progress was last shown */
    int has_val;
    int write;           /* save the model at every best epoch (not inside --cv) */
    double best;         /* best monitored loss so far (NAN before the first epoch) */
    int best_epoch;      /* 0-based, -1 before any save */
    int epochs_done;     /* epochs completed (with their validation) */
    llm_status save_status;
    char save_error[512];
} train_state;

static void format_eta(double s, char *buf, size_t len) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, len, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

static int on_batch(const llm_progress *p, void *user) {
    train_state *st = user;
    if (interrupted) return 1;
    if (st->o->quiet || p->batches <= 0) return 0;
    double now = ex_now();
    int64_t seen = p->batch * (int64_t)st->o->batch;
    if (seen > st->n_train) seen = st->n_train;
    double rate = p->elapsed_s > 0 ? (double)seen / p->elapsed_s : 0;
    double eta = p->batch > 0 ? p->elapsed_s / (double)p->batch * (double)(p->batches - p->batch) : NAN;
    char eta_s[32];
    format_eta(eta, eta_s, sizeof eta_s);
    if (st->tty) {
        /* redraw at most ten times a second, and always on the last batch */
        if (p->batch != p->batches && now - st->last_draw < 0.1) return 0;
        st->last_draw = now;
        enum { W = 24 };
        char bar[W + 1];
        int fill = (int)(W * p->batch / p->batches);
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[W] = '\0';
        fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %lld/%lld loss=%.4f accuracy=%.4f %.0f samples/s ETA %s",
                p->epoch + 1, p->epochs, bar, (long long)p->batch, (long long)p->batches, p->loss,
                p->accuracy, rate, eta_s);
        fflush(stderr);
    } else {
        /* a plain line at each tenth of the epoch, at most one every 2 s,
           none on the last batch (the epoch line follows) */
        if (p->batch == p->batches) return 0;
        int64_t tenth = p->batch * 10 / p->batches, prev = (p->batch - 1) * 10 / p->batches;
        if (tenth == prev || now - st->last_draw < 2.0) return 0;
        st->last_draw = now;
        fprintf(stderr, "epoch %d/%d batch %lld/%lld loss=%.4f accuracy=%.4f samples/s=%.0f eta=%s\n",
                p->epoch + 1, p->epochs, (long long)p->batch, (long long)p->batches, p->loss,
                p->accuracy, rate, eta_s);
        fflush(stderr);
    }
    return 0;
}

static int on_epoch(const llm_progress *p, void *user) {
    train_state *st = user;
    if (st->tty && !st->o->quiet) fprintf(stderr, "\r\033[K");
    st->epochs_done = p->epoch + 1;
    double monitored = st->has_val ? p->val_loss : p->loss;
    int better = !isnan(monitored) && (isnan(st->best) || monitored < st->best);
    if (!st->write) {
        /* inside cross-validation: fit keeps the best epoch; nothing to show */
        if (better) { st->best = monitored; st->best_epoch = p->epoch; }
        return interrupted ? 1 : 0;
    }
    printf("epoch %d/%d loss=%.4f accuracy=%.4f", p->epoch + 1, p->epochs, p->loss, p->accuracy);
    if (st->has_val) printf(" val_loss=%.4f val_accuracy=%.4f", p->val_loss, p->val_accuracy);
    printf(" time=%.1fs", p->elapsed_s);
    if (better) {
        /* the library writes atomically, so an interrupted run never leaves
           a half-written model behind */
        llm_status s = dist_rank == 0 ? llm_model_save(st->model, st->o->model_path) : LLM_OK;
        if (s != LLM_OK) {
            printf("\n");
            fflush(stdout);
            st->save_status = s;
            snprintf(st->save_error, sizeof st->save_error, "%s", llm_last_error());
            return 1;
        }
        st->best = monitored;
        st->best_epoch = p->epoch;
        printf(" (best so far, saved)");
    }
    printf("\n");
    fflush(stdout);
    st->last_draw = ex_now();
    return interrupted ? 1 : 0;
}

/* ---------------------------------------------------------- helpers */

static void print_corpus(const char *what, const llm_text_corpus *c, const char *const *names) {
    int64_t n = 0, n0 = 0, n1 = 0;
    llm_text_corpus_count(c, &n);
    llm_text_corpus_class_count(c, 0, &n0);
    llm_text_corpus_class_count(c, 1, &n1);
    printf("%s: %lld messages (%s %lld, %s %lld)\n", what, (long long)n, names[0], (long long)n0,
           names[1], (long long)n1);
}

static int64_t corpus_count(const llm_text_corpus *c) {
    int64_t n = 0;
    if (c) llm_text_corpus_count(c, &n);
    return n;
}

/* Concatenates the training messages (as the e-mail reader gave them) for
 * training a BPE tokenizer. */
static llm_status train_bpe(const llm_text_corpus *c, int vocab, llm_bpe **out) {
    int64_t n = corpus_count(c);
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *t;
        if (llm_text_corpus_text(c, i, &t, &len) == LLM_OK) total += len + 1;
    }
    char *buf = malloc(total + 1), *p = buf;
    if (!buf) return LLM_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *t;
        if (llm_text_corpus_text(c, i, &t, &len) != LLM_OK) continue;
        memcpy(p, t, len);
        p += len;
        *p++ = '\n';
    }
    llm_bpe_train_options bo;
    llm_bpe_train_options_init(&bo);
    bo.vocab_size = vocab;
    llm_status s = llm_bpe_train(out, buf, (size_t)(p - buf), &bo);
    free(buf);
    return s;
}

/* llm.c's checkpoint magic (a GPT-2 file for --init). */
static int has_llmc_magic(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char m[4] = { 0 };
    size_t n = f ? fread(m, 1, 4, f) : 0;
    if (f) fclose(f);
    return n == 4 && (m[0] | m[1] << 8 | m[2] << 16 | (uint32_t)m[3] << 24) == 20240326u;
}

/* The shape of a language model from lm_train or a GPT-2: width, context, blocks, heads. */
static int lm_shape(const llm_model *lm, int64_t *dim, int64_t *ctx, int *layers, int *heads) {
    int np = 0;
    llm_model_num_params(lm, &np);
    *dim = *ctx = 0;
    *layers = 0;
    for (int i = 0; i < np; i++) {
        const char *name;
        int nd;
        int64_t shape[LLM_MAX_DIMS];
        if (llm_model_param_info(lm, i, &name, &nd, shape) != LLM_OK) continue;
        if (strcmp(name, "transformer_embedding_0.token") == 0) *dim = shape[1];
        if (strcmp(name, "transformer_embedding_0.position") == 0) *ctx = shape[0];
        size_t n = strlen(name);
        if (n > 10 && strcmp(name + n - 10, ".ln1_gamma") == 0) (*layers)++;
    }
    const char *h = NULL;
    if (llm_model_get_metadata(lm, "lm.heads", &h) == LLM_OK) *heads = atoi(h);
    if (*dim <= 0 || *ctx <= 0 || *heads <= 0) {
        fprintf(stderr, "%s: --init: not a language model from lm_train (learned positions, lm.heads metadata)\n", prog);
        return -1;
    }
    return 0;
}

/* --threshold auto: scores the validation part with the kept model and picks
 * the threshold with the best F1 there among 0.5 and the midpoints between
 * consecutive distinct scores (ties: the one closest to 0.5, so it moves off
 * 0.5 only for a strictly better F1). *f1 and *f1_half are the validation F1
 * at the chosen threshold and at 0.5. */
typedef struct scored { float s; int32_t y; } scored;
static int cmp_scored(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}
static double f1_of(int64_t tp, int64_t fp, int64_t fn) {
    return tp > 0 ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
}
static llm_status choose_threshold(llm_model *model, llm_backend *be, const llm_dataset *val, int seq,
                                   double *threshold, double *f1, double *f1_half) {
    int64_t n = 0;
    llm_status s = llm_dataset_size(val, &n);
    if (s != LLM_OK) return s;
    enum { B = 64 };
    scored *v = malloc((size_t)n * sizeof *v);
    int32_t *x = malloc((size_t)B * (size_t)seq * sizeof *x);
    float out[B];
    if (!v || !x) { free(v); free(x); return LLM_ERR_OUT_OF_MEMORY; }
    for (int64_t i = 0; i < n && s == LLM_OK; i += B) {
        int64_t b = n - i < B ? n - i : B;
        for (int64_t j = 0; j < b && s == LLM_OK; j++)
            s = llm_dataset_get(val, i + j, x + j * seq, (size_t)seq * sizeof *x, &v[i + j].y, sizeof v[i + j].y);
        llm_tensor *in = NULL, *pred = NULL;
        int64_t shape[2] = { b, seq };
        if (s == LLM_OK) s = llm_tensor_from_host(&in, be, LLM_DTYPE_I32, 2, shape, x, (size_t)(b * seq) * sizeof *x);
        if (s == LLM_OK) s = llm_model_predict(model, in, &pred);
        if (s == LLM_OK) s = llm_tensor_to_host(pred, out, (size_t)b * sizeof *out);
        for (int64_t j = 0; j < b && s == LLM_OK; j++) v[i + j].s = out[j];
        llm_tensor_free(pred);
        llm_tensor_free(in);
    }
    free(x);
    if (s != LLM_OK) { free(v); return s; }
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    int64_t pos = 0, tp_half = 0, fp_half = 0;
    for (int64_t i = 0; i < n; i++) {
        pos += v[i].y == 1;
        if ((double)v[i].s >= 0.5) { tp_half += v[i].y == 1; fp_half += v[i].y != 1; }
    }
    *threshold = 0.5;
    *f1 = *f1_half = f1_of(tp_half, fp_half, pos - tp_half);
    /* sweep: a threshold between v[k] and v[k + 1] calls v[k + 1 ..] positive */
    int64_t tp = pos, fp = n - pos;
    for (int64_t k = 0; k + 1 < n; k++) {
        tp -= v[k].y == 1;
        fp -= v[k].y != 1;
        if (!(v[k].s < v[k + 1].s)) continue;
        double t = ((double)v[k].s + (double)v[k + 1].s) / 2, f = f1_of(tp, fp, pos - tp);
        if (f > *f1 || (f == *f1 && fabs(t - 0.5) < fabs(*threshold - 0.5))) { *threshold = t; *f1 = f; }
    }
    free(v);
    return LLM_OK;
}

/* --arch nb: the embedding (one weight per id) starts at the ids'
 * Naive-Bayes log-count ratios on the training part, so training starts
 * from Naive Bayes and moves towards a linear model (NBSVM). */
static llm_status init_nb(llm_model *model, const llm_dataset *train, int seq, int32_t rows) {
    float *r = malloc((size_t)rows * sizeof *r);
    if (!r) return LLM_ERR_OUT_OF_MEMORY;
    llm_status s = llm_dataset_nb_ratios(train, seq, rows, 1.0f, r);
    if (s == LLM_OK) s = llm_model_set_param(model, "embedding_0.weight", r, (size_t)rows * sizeof *r);
    free(r);
    /* the output layer starts by passing the mean ratio on with its sign
       (a random weight may start it inverted) */
    int np = 0;
    llm_model_num_params(model, &np);
    for (int i = 0; s == LLM_OK && i < np; i++) {
        const char *name;
        int nd;
        int64_t shape[LLM_MAX_DIMS];
        if (llm_model_param_info(model, i, &name, &nd, shape) != LLM_OK || strncmp(name, "dense_", 6) != 0) continue;
        const float one = 1.0f, zero = 0.0f;
        s = llm_model_set_param(model, name, nd == 2 ? &one : &zero, sizeof one);
    }
    return s;
}

/* What every training run of this process shares. */
typedef struct run_env {
    llm_backend *be;
    const char *names[2];
    int cv;       /* inside cross-validation: no file written, no epoch lines */
} run_env;

/* The e-mail reader settings of a configuration: used to read its training
 * messages and saved with its model, so that prediction reads messages
 * exactly as training did. keep_headers points into o. */
static void email_options_of(const train_opts *o, llm_email_options *eo) {
    llm_email_options_init(eo);
    eo->keep_headers = strcmp(o->keep_headers, "none") == 0 ? NULL : o->keep_headers;
    eo->tag_headers = o->tag_headers;
    eo->decode_mime = !o->raw_body;
}

/* Trains one model of configuration o on raw_train (raw messages: the
 * e-mail reader runs here with o's settings) and, outside cross-validation,
 * saves it and reports test metrics on raw_test (may be NULL). The model
 * goes to *out when out is not NULL. Returns 0, 130 when interrupted, or
 * EX_FAILURE after printing why. */
static int train_model(const train_opts *o, const run_env *env, const llm_text_corpus *raw_train,
                       const llm_text_corpus *raw_test, llm_model **out) {
    int rc = EX_FAILURE;
    llm_status s;
    llm_backend *be = env->be;
    const char *const *names = env->names;
    llm_text_corpus *rest = NULL, *test = NULL, *train = NULL, *val = NULL;
    llm_vocab *vocab = NULL;
    llm_bpe *bpe = NULL;
    llm_model *lm = NULL;
    llm_dataset *train_ds = NULL, *val_ds = NULL, *test_ds = NULL;
    llm_model *model = NULL;
    llm_optimizer *adam = NULL;
    llm_history *hist = NULL;
    char *summary = NULL;
    char what[1024];
    double t0 = ex_now();
    if (out) *out = NULL;

    llm_email_options eo;
    email_options_of(o, &eo);
    if ((s = llm_text_corpus_read_email(&rest, raw_train, &eo)) != LLM_OK) { ex_fail(prog, s, "reading the training messages"); goto done; }
    if (raw_test && (s = llm_text_corpus_read_email(&test, raw_test, &eo)) != LLM_OK) { ex_fail(prog, s, "reading the test messages"); goto done; }
    if ((s = llm_text_corpus_split(rest, o->val_split, o->seed + 1, &train, &val)) != LLM_OK) { ex_fail(prog, s, "splitting off the validation part"); goto done; }
    int64_t n_train = corpus_count(train), n_val = corpus_count(val), n_test = corpus_count(test);
    if (!env->cv) {
        print_corpus("train", train, names);
        if (n_val > 0) print_corpus("validation", val, names);
        else if (o->val_split > 0) fprintf(stderr, "%s: warning: too few messages for a validation part; keeping the epoch with the lowest training loss\n", prog);
        if (n_test > 0) print_corpus("test", test, names);
        else if (o->test_split > 0) fprintf(stderr, "%s: warning: too few messages for a test part; no test metrics\n", prog);
    }
    const llm_vocab *use_vocab = NULL;
    const llm_bpe *use_bpe = NULL;
    int64_t tf_dim = o->embed, tf_ctx = o->seq;
    int tf_layers = o->layers, tf_heads = o->heads;
    int seq = o->seq;
    if (o->resume) {
        /* the checkpoint holds the model, its vocabulary and the training state */
        snprintf(what, sizeof what, "loading checkpoint %s", o->resume);
        if ((s = llm_model_load_checkpoint(&model, be, o->resume)) != LLM_OK) { ex_fail(prog, s, what); goto done; }
        if (llm_model_vocab(model, &use_vocab) != LLM_OK &&
            (s = llm_model_tokenizer(model, &use_bpe)) != LLM_OK) { ex_fail(prog, s, "the checkpoint's vocabulary"); goto done; }
    } else if (o->transformer && o->init) {
        snprintf(what, sizeof what, "loading the language model %s", o->init);
        /* a GPT-2 checkpoint (a folder, or an llm.c file) or lm_train's model */
        struct stat ist;
        int gpt2 = stat(o->init, &ist) == 0 && (S_ISDIR(ist.st_mode) || has_llmc_magic(o->init));
        if ((s = gpt2 ? llm_model_load_gpt2(&lm, be, o->init, 0) : llm_model_load(&lm, be, o->init)) != LLM_OK) { ex_fail(prog, s, what); goto done; }
        if ((s = llm_model_tokenizer(lm, &use_bpe)) != LLM_OK) { ex_fail(prog, s, "the language model's tokenizer"); goto done; }
        if (lm_shape(lm, &tf_dim, &tf_ctx, &tf_layers, &tf_heads)) goto done;
        if (seq > tf_ctx) {
            fprintf(stderr, "%s: note: --seq %d is longer than the language model's context; using %lld\n", prog, seq,
                    (long long)tf_ctx);
            seq = (int)tf_ctx;
        }
    } else if (o->transformer) {
        if ((s = train_bpe(train, o->bpe_vocab, &bpe)) != LLM_OK) { ex_fail(prog, s, "training the BPE tokenizer"); goto done; }
        use_bpe = bpe;
    } else {
        llm_vocab_options vopt;
        llm_vocab_options_init(&vopt);
        vopt.max_tokens = o->vocab;
        llm_tokenizer_options topt;
        llm_tokenizer_options_init(&topt);
        topt.fold_numbers = topt.fold_urls = topt.fold_emails = o->fold;
        if ((s = llm_vocab_build_from_corpus(&vocab, train, &topt, &vopt)) != LLM_OK) { ex_fail(prog, s, "building the vocabulary"); goto done; }
        use_vocab = vocab;
    }
    int32_t vsize = 0;
    if (use_vocab) llm_vocab_size(use_vocab, &vsize);
    else llm_bpe_vocab_size(use_bpe, &vsize);

    llm_vectorize_options vec;
    llm_vectorize_options_init(&vec);
    vec.seq_len = seq;
    vec.bigram_buckets = use_vocab ? o->bigrams : 0;
    vec.char_ngram_buckets = use_vocab ? o->char_ngrams : 0;
    if (o->char_min) {
        vec.char_ngram_min = o->char_min;
        vec.char_ngram_max = o->char_max;
    }
    vec.skip_unknown = use_vocab ? o->skip_unknown : 0;
    vec.unique = use_vocab ? o->unique : 0;
    vec.reverse = use_vocab ? o->reverse : 0;
    vec.truncation = o->truncate_pre == 2 && use_vocab ? LLM_SEQ_MIDDLE : o->truncate_pre ? LLM_SEQ_PRE : LLM_SEQ_POST;
    /* a Transformer's positions count from the first token: pad after it */
    vec.padding = o->padding_post || (use_bpe && !o->padding_set) ? LLM_SEQ_POST : LLM_SEQ_PRE;
#define VECTORIZE(ds, part) (use_bpe ? llm_dataset_from_corpus_bpe(ds, part, use_bpe, &vec) : llm_dataset_from_corpus(ds, part, use_vocab, &vec))
    if ((s = VECTORIZE(&train_ds, train)) != LLM_OK) { ex_fail(prog, s, "vectorizing the training part"); goto done; }
    if (n_val > 0 && (s = VECTORIZE(&val_ds, val)) != LLM_OK) { ex_fail(prog, s, "vectorizing the validation part"); goto done; }
    if (n_test > 0 && (s = VECTORIZE(&test_ds, test)) != LLM_OK) { ex_fail(prog, s, "vectorizing the test part"); goto done; }
#undef VECTORIZE
    if (!env->cv) printf("%s: %d ids; %d ids per message; data ready in %.1fs\n", use_bpe ? "tokenizer (BPE)" : "vocabulary",
           (int)vsize, seq, ex_now() - t0);

    if (!model) {
        /* the model */
        s = o->two_branch ? llm_model_functional(&model, be) : llm_model_sequential(&model, be);
        if (s != LLM_OK) { ex_fail(prog, s, "creating the model"); goto done; }
        if ((s = llm_model_set_seed(model, o->seed)) != LLM_OK) { ex_fail(prog, s, "seeding the model"); goto done; }
        if (o->two_branch) {
            if ((s = two_branch_model(model, o, vsize, seq)) != LLM_OK) { ex_fail(prog, s, "building the two-branch graph"); goto done; }
        } else if (o->transformer) {
            llm_transformer_embedding_options te;
            llm_transformer_embedding_options_init(&te);
            te.vocab = vsize;
            te.context = tf_ctx;
            te.dim = tf_dim;
            int32_t eot;
            if (use_bpe) llm_bpe_special_ids(use_bpe, &te.pad_id, &eot); /* GPT-2's pads with <|endoftext|> */
            if ((s = llm_model_add(model, llm_layer_transformer_embedding_ex(&te))) != LLM_OK) { ex_fail(prog, s, "adding the embedding"); goto done; }
            for (int i = 0; i < tf_layers; i++) {
                llm_transformer_block_options tb;
                llm_transformer_block_options_init(&tb);
                tb.heads = tf_heads;
                tb.causal = o->causal;
                if ((s = llm_model_add(model, llm_layer_transformer_block_ex(&tb))) != LLM_OK) { ex_fail(prog, s, "adding a block"); goto done; }
            }
            if ((s = llm_model_add(model, llm_layer_layernorm(1e-5f))) != LLM_OK ||
                (s = llm_model_add(model, llm_layer_global_pool(LLM_POOL_AVERAGE))) != LLM_OK) { ex_fail(prog, s, "adding the pooling"); goto done; }
        } else {
            if ((s = llm_model_add(model, llm_layer_embedding(vsize + vec.bigram_buckets + vec.char_ngram_buckets, o->nb ? 1 : o->embed))) != LLM_OK) { ex_fail(prog, s, "adding the embedding"); goto done; }
            llm_return_mode ret = o->pool < 0 ? LLM_RETURN_LAST : LLM_RETURN_SEQUENCES;
            llm_layer *rnn = o->bag ? NULL : o->gru ? llm_layer_gru(o->hidden, ret) : llm_layer_lstm(o->hidden, ret);
            if (rnn && o->bidirectional) rnn = llm_layer_bidirectional(rnn);
            if (rnn && (s = llm_model_add(model, rnn)) != LLM_OK) { ex_fail(prog, s, "adding the recurrent layer"); goto done; }
            int pool = o->bag && o->pool < 0 ? LLM_POOL_AVERAGE : o->pool;
            if (pool >= 0 && (s = llm_model_add(model, llm_layer_global_pool((llm_pool_mode)pool))) != LLM_OK) { ex_fail(prog, s, "adding the pooling"); goto done; }
            if (o->bag && !o->nb && o->hidden > 0 && (s = llm_model_add(model, llm_layer_dense(o->hidden, LLM_ACT_RELU))) != LLM_OK) { ex_fail(prog, s, "adding the hidden layer"); goto done; }
        }
        if (!o->two_branch && o->dropout > 0 && (s = llm_model_add(model, llm_layer_dropout((float)o->dropout))) != LLM_OK) { ex_fail(prog, s, "adding dropout"); goto done; }
        if (!o->two_branch && (s = llm_model_add(model, llm_layer_dense(1, LLM_ACT_SIGMOID))) != LLM_OK) { ex_fail(prog, s, "adding the output layer"); goto done; }
        if ((s = llm_optimizer_adam(&adam, (float)o->lr)) != LLM_OK) { ex_fail(prog, s, "creating the optimizer"); goto done; }
        if ((s = llm_model_compile(model, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY)) != LLM_OK) { ex_fail(prog, s, "compiling"); goto done; }

        /* what prediction needs to read raw mail, saved with the weights */
        if (use_bpe && (s = llm_model_set_tokenizer(model, use_bpe)) != LLM_OK) { ex_fail(prog, s, "attaching the tokenizer"); goto done; }
        if ((s = llm_model_set_text_pipeline(model, vocab, &vec, &eo)) != LLM_OK) { ex_fail(prog, s, "attaching the text pipeline"); goto done; }
        char class_names[2 * EX_CLASS_NAME_MAX + 2];
        snprintf(class_names, sizeof class_names, "%s,%s", names[0], names[1]);
        if ((s = llm_model_set_metadata(model, "class_names", class_names)) != LLM_OK) { ex_fail(prog, s, "setting class_names"); goto done; }
        char made_by[64];
        snprintf(made_by, sizeof made_by, "spam_train (libllm %s)", llm_version_string());
        if ((s = llm_model_set_metadata(model, "created_by", made_by)) != LLM_OK) { ex_fail(prog, s, "setting created_by"); goto done; }

        int64_t sample_shape[1] = { seq };
        if ((s = llm_model_build(model, LLM_DTYPE_I32, 1, sample_shape)) != LLM_OK) { ex_fail(prog, s, "building the model"); goto done; }
        if (o->nb && (s = init_nb(model, train_ds, seq, vsize + vec.bigram_buckets + vec.char_ngram_buckets)) != LLM_OK) { ex_fail(prog, s, "the Naive-Bayes ratios"); goto done; }
        if (lm) {
            int copied = 0;
            if ((s = llm_model_copy_weights(model, lm, &copied)) != LLM_OK) { ex_fail(prog, s, "copying the pretrained weights"); goto done; }
            printf("initialised %d parameter tensors from %s\n", copied, o->init);
        }
    }
    if (!o->quiet && !env->cv) {
        size_t need = 0;
        if ((s = llm_model_summary(model, NULL, 0, &need)) != LLM_OK) { ex_fail(prog, s, "model summary"); goto done; }
        summary = malloc(need + 1);
        if (!summary) { fprintf(stderr, "%s: out of memory\n", prog); goto done; }
        if ((s = llm_model_summary(model, summary, need + 1, NULL)) != LLM_OK) { ex_fail(prog, s, "model summary"); goto done; }
        fputs(summary, stdout);
        if (need > 0 && summary[need - 1] != '\n') putchar('\n');
    }
    fflush(stdout);

    train_state st;
    memset(&st, 0, sizeof st);
    st.o = o;
    st.write = !env->cv;
    st.model = model;
    st.tty = isatty(STDERR_FILENO);
    st.n_train = n_train;
    st.has_val = val_ds != NULL;
    st.best = NAN;
    st.best_epoch = -1;
    st.last_draw = ex_now();

    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = o->epochs;
    fo.batch_size = o->batch;
    fo.seed = o->seed;
    fo.validation = val_ds;
    fo.on_batch = on_batch;
    fo.on_epoch = on_epoch;
    fo.user = &st;
    fo.dist = dist;
    /* the same monitor as the saving in on_epoch, so that the model in
       memory at the end (used for the test part) is the one in the file */
    fo.early_stopping = val_ds ? LLM_MONITOR_VAL_LOSS : LLM_MONITOR_LOSS;
    fo.patience = o->patience;
    fo.restore_best = 1;
    char ckpt[4096];
    if (!o->checkpoint) snprintf(ckpt, sizeof ckpt, "%s.ckpt", o->model_path);
    else snprintf(ckpt, sizeof ckpt, "%s", o->checkpoint);
    if (strcmp(ckpt, "none") != 0 && !env->cv) fo.checkpoint_path = ckpt;
    int done_before = 0;
    if (o->resume) {
        llm_model_epochs_done(model, &done_before);
        if (done_before >= o->epochs) {
            fprintf(stderr, "%s: the checkpoint has %d epochs done; --epochs %d leaves nothing to do\n", prog, done_before, o->epochs);
            goto done;
        }
        fo.initial_epoch = done_before;
        printf("resuming after epoch %d of %d\n", done_before, o->epochs);
    }

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    double t_fit = ex_now();
    s = llm_model_fit(model, train_ds, &fo, &hist);
    sigaction(SIGINT, &old_sa, NULL);
    if (st.tty && !o->quiet) fprintf(stderr, "\r\033[K");
    if (s != LLM_OK) { ex_fail(prog, s, "training"); goto done; }
    if (st.save_status != LLM_OK) {
        fprintf(stderr, "%s: saving %s: %s: %s\n", prog, o->model_path, llm_status_string(st.save_status), st.save_error);
        goto done;
    }
    int stopped = 0;
    llm_history_stopped_early(hist, &stopped);
    if (!env->cv) printf("training: %d epoch%s in %.1fs%s\n", st.epochs_done, st.epochs_done == 1 ? "" : "s",
           ex_now() - t_fit, interrupted ? " (interrupted)" : stopped ? " (early stopping)" : "");
    if (st.best_epoch < 0) {
        fprintf(stderr, "%s: no epoch completed; nothing was saved\n", prog);
        goto done;
    }
    /* fit ends holding the best epoch's weights, also across a resume;
       the file gets exactly those */
    int kept = st.best_epoch;
    llm_history_best_epoch(hist, &kept);
    if (o->threshold_mode && !interrupted) {
        /* %.9g keeps a midpoint strictly between the two float scores it
           separates, so the stored text classifies as the value chosen here */
        double t = o->threshold, f1 = NAN, f1_half = NAN;
        if (o->threshold_mode == 2 && !val_ds)
            fprintf(stderr, "%s: warning: no validation part for --threshold auto; none stored (0.5)\n", prog);
        else if (o->threshold_mode == 2 && (s = choose_threshold(model, be, val_ds, seq, &t, &f1, &f1_half)) != LLM_OK) { ex_fail(prog, s, "scoring the validation part"); goto done; }
        char tbuf[32];
        snprintf(tbuf, sizeof tbuf, "%.9g", t);
        if (o->threshold_mode == 1 || val_ds) {
            if ((s = llm_model_set_metadata(model, "threshold", tbuf)) != LLM_OK) { ex_fail(prog, s, "setting threshold"); goto done; }
            if (env->cv)
                ;
            else if (o->threshold_mode == 2)
                printf("threshold: %s (validation F1 %.4f; %.4f at 0.5)\n", tbuf, f1, f1_half);
            else
                printf("threshold: %s\n", tbuf);
        }
    }
    if (!env->cv) {
        if (!interrupted && dist_rank == 0 && (s = llm_model_save(model, o->model_path)) != LLM_OK) { ex_fail(prog, s, "saving the kept model"); goto done; }
        printf("kept epoch %d in %s\n", kept + 1, o->model_path);
    }

    if (test_ds && !interrupted) {
        llm_metrics m;
        llm_metrics_init(&m);
        if ((s = llm_model_evaluate(model, test_ds, o->batch, &m)) != LLM_OK) { ex_fail(prog, s, "evaluating the test part"); goto done; }
        char report[2048];
        if ((s = llm_metrics_format(&m, names[0], names[1], report, sizeof report, NULL)) != LLM_OK) { ex_fail(prog, s, "formatting metrics"); goto done; }
        printf("test part (%lld messages, kept model):\n%s", (long long)n_test, report);
        printf("test accuracy=%.4f precision=%.4f recall=%.4f f1=%.4f auc=%.4f\n", m.accuracy,
               m.precision, m.recall, m.f1, m.auc);
    }
    rc = interrupted ? 130 : 0;
    if (out && !interrupted) {
        *out = model;
        model = NULL;
    }

done:
    fflush(stdout);
    free(summary);
    llm_history_free(hist);
    llm_optimizer_free(adam);
    llm_model_free(model);
    llm_dataset_free(train_ds);
    llm_dataset_free(val_ds);
    llm_dataset_free(test_ds);
    llm_vocab_free(vocab);
    llm_bpe_free(bpe);
    llm_model_free(lm);
    llm_text_corpus_free(train);
    llm_text_corpus_free(val);
    llm_text_corpus_free(rest);
    llm_text_corpus_free(test);
    return rc;
}


/* ------------------------------------------------------- --recipe best */

/* The members of --recipe best, chosen by 5-fold cross-validation on the
 * SpamAssassin corpus (README): models that miss different messages, whose
 * mean probability is the ensemble's. */
typedef struct recipe_spec {
    const char *what;
    int nb, bag, seq, epochs, vocab, truncate_pre, tag_headers;
    double lr;
    const char *keep_headers;
    int bigrams;
    int unique;   /* --unique-tokens 1 --skip-unknown 1 */
    int raw_body, reverse;
    int char_ngrams; /* --char-ngrams N (lengths 3-5) */
} recipe_spec;
static const recipe_spec recipe[] = {
    /* NBSVM over every header, tagged, and the first 3000 tokens; every token (vocab 200000) */
    { .what = "nb", .nb = 1, .bag = 1, .seq = 3000, .epochs = 40, .vocab = 200000, .tag_headers = 1, .lr = 1e-2,
      .keep_headers = "*" },
    /* the same with hashed word pairs (ids of both kinds share the 6000) */
    { .what = "nb-bigrams", .nb = 1, .bag = 1, .seq = 6000, .epochs = 40, .vocab = 200000, .tag_headers = 1,
      .lr = 1e-2, .keep_headers = "*", .bigrams = 1 << 20 },
    /* the same counting each word once (presence, as NBSVM's binarised features):
     * a long message's repeated words no longer outweigh the rest */
    { .what = "nb-presence", .nb = 1, .bag = 1, .seq = 3000, .epochs = 40, .vocab = 200000, .tag_headers = 1,
      .lr = 1e-2, .keep_headers = "*", .unique = 1 },
    /* the same over the first 400 tokens only, which are the headers and the
     * subject: who sent the mail and how, with little of the body's say (the
     * hard-ham newsletters are sales text from senders the mailbox knows) */
    { .what = "nb-headers", .nb = 1, .bag = 1, .seq = 400, .epochs = 40, .vocab = 200000, .tag_headers = 1,
      .lr = 1e-2, .keep_headers = "*" },
    /* nb-presence plus each word's character 3- to 5-grams, so a misspelt,
     * obfuscated or unseen word shares features with the words it resembles
     * (a row holds about 3300 ids at the median, 10700 at the 99th percentile) */
    { .what = "nb-subwords", .nb = 1, .bag = 1, .seq = 20000, .epochs = 40, .vocab = 200000, .tag_headers = 1,
      .lr = 1e-2, .keep_headers = "*", .unique = 1, .char_ngrams = 1 << 20 },
    /* nb over the raw body: HTML markup and MIME structure as words */
    { .what = "nb-raw", .nb = 1, .bag = 1, .seq = 3000, .epochs = 40, .vocab = 200000, .tag_headers = 1, .lr = 1e-2,
      .keep_headers = "*", .raw_body = 1 },
    /* the bag of embeddings over the default headers, tagged, and the last 2000 tokens */
    { .what = "bag", .bag = 1, .seq = 2000, .epochs = 40, .vocab = 20000, .truncate_pre = 1, .tag_headers = 1,
      .lr = 3e-3, .keep_headers = DEFAULT_HEADERS },
    /* the seed model (Embedding -> LSTM(128) -> Dense) at spam_train's defaults: word order */
    { .what = "lstm", .seq = 600, .epochs = 10, .vocab = 20000, .truncate_pre = 2, .lr = 1e-3,
      .keep_headers = DEFAULT_HEADERS, .unique = 1, .reverse = 1 },
};
enum { RECIPE_MEMBERS = (int)(sizeof recipe / sizeof recipe[0]) };

/* Member i of the recipe: o's general settings (seed, threads, quiet) with
 * the member's model and text settings. */
static void recipe_member(const train_opts *o, int i, train_opts *m) {
    const recipe_spec *r = &recipe[i];
    *m = *o;
    m->recipe = 0;
    m->threshold_mode = 0;
    m->nb = r->nb;
    m->bag = r->bag;
    m->gru = m->bidirectional = m->transformer = 0;
    m->pool = -1;
    m->seq = r->seq;
    m->epochs = r->epochs;
    m->vocab = r->vocab;
    m->lr = r->lr;
    m->hidden = 128;
    m->embed = 64;
    m->batch = 32;
    m->val_split = 0.1;
    m->dropout = 0;
    m->bigrams = r->bigrams;
    m->char_ngrams = r->char_ngrams;
    m->char_min = m->char_max = 0; /* the defaults, 3-5 */
    m->fold = 0;
    m->raw_body = r->raw_body;
    m->truncate_pre = r->truncate_pre;
    m->padding_post = 0;
    m->tag_headers = r->tag_headers;
    m->keep_headers = r->keep_headers;
    m->skip_unknown = m->unique = r->unique;
    m->reverse = r->reverse;
}

/* Trains every member of the recipe on raw_train and puts them into one
 * ensemble; outside cross-validation saves it and scores raw_test. */
static int train_recipe(const train_opts *o, const run_env *env, const llm_text_corpus *raw_train,
                        const llm_text_corpus *raw_test, llm_model **out) {
    llm_model *ens = NULL;
    llm_status s;
    int rc = EX_FAILURE;
    if (out) *out = NULL;
    if ((s = llm_model_ensemble(&ens, env->be)) != LLM_OK) { ex_fail(prog, s, "creating the ensemble"); goto done; }
    run_env quiet_env = *env;
    quiet_env.cv = 1; /* members write nothing of their own */
    for (int i = 0; i < RECIPE_MEMBERS; i++) {
        train_opts m;
        recipe_member(o, i, &m);
        llm_model *member = NULL;
        double t = ex_now();
        if ((rc = train_model(&m, &quiet_env, raw_train, NULL, &member)) != 0) goto done;
        rc = EX_FAILURE;
        if ((s = llm_model_ensemble_add(ens, member)) != LLM_OK) { llm_model_free(member); ex_fail(prog, s, "adding a member"); goto done; }
        if (!env->cv) printf("recipe member %d/%d (%s) trained in %.1fs\n", i + 1, RECIPE_MEMBERS, recipe[i].what, ex_now() - t);
    }
    char class_names[2 * EX_CLASS_NAME_MAX + 2], made_by[64];
    snprintf(class_names, sizeof class_names, "%s,%s", env->names[0], env->names[1]);
    snprintf(made_by, sizeof made_by, "spam_train --recipe best (libllm %s)", llm_version_string());
    if ((s = llm_model_set_metadata(ens, "class_names", class_names)) != LLM_OK ||
        (s = llm_model_set_metadata(ens, "created_by", made_by)) != LLM_OK) { ex_fail(prog, s, "setting metadata"); goto done; }
    if (!env->cv) {
        if ((s = llm_model_save(ens, o->model_path)) != LLM_OK) { ex_fail(prog, s, "saving the ensemble"); goto done; }
        printf("saved the %d-member ensemble in %s\n", RECIPE_MEMBERS, o->model_path);
    }
    int64_t n_test = corpus_count(raw_test);
    if (n_test > 0) {
        float *p = malloc((size_t)n_test * sizeof *p);
        int32_t *y = malloc((size_t)n_test * sizeof *y);
        s = p && y ? LLM_OK : LLM_ERR_OUT_OF_MEMORY;
        for (int64_t i = 0; i < n_test && s == LLM_OK; i++) {
            const char *text;
            size_t len;
            s = llm_text_corpus_text(raw_test, i, &text, &len);
            if (s == LLM_OK) s = llm_text_corpus_label(raw_test, i, &y[i]);
            if (s == LLM_OK) s = llm_model_predict_text(ens, text, len, &p[i], 1);
        }
        llm_metrics m;
        llm_metrics_init(&m);
        if (s == LLM_OK) s = llm_metrics_binary(p, y, n_test, 0.5, &m);
        free(p);
        free(y);
        if (s != LLM_OK) { ex_fail(prog, s, "scoring the test part"); goto done; }
        printf("test accuracy=%.4f precision=%.4f recall=%.4f f1=%.4f auc=%.4f\n", m.accuracy, m.precision, m.recall,
               m.f1, m.auc);
    }
    rc = 0;
    if (out) {
        *out = ens;
        ens = NULL;
    }
done:
    llm_model_free(ens);
    return rc;
}

/* ------------------------------------------------------------ --cv K */

typedef struct cv_state {
    const train_opts *o;
    const run_env *env;
    int failed;     /* the exit status of a failed training (already reported) */
    double t_fold;
} cv_state;

/* The model factory: one configuration (or the recipe) trained on the fold's
 * training part, which is all it is given. */
static llm_status cv_train(llm_model **model, const llm_text_corpus *train, const llm_cv_fold *fold, void *user) {
    cv_state *c = user;
    (void)fold;
    c->t_fold = ex_now();
    int rc = c->o->recipe ? train_recipe(c->o, c->env, train, NULL, model) : train_model(c->o, c->env, train, NULL, model);
    if (rc == 0) return LLM_OK;
    c->failed = rc;
    return LLM_ERR_CANCELLED;
}

static int cv_line(const llm_cv_fold *f, const llm_metrics *m, void *user) {
    cv_state *c = user;
    if (f->repeats > 1) printf("repeat %d/%d ", f->repeat + 1, f->repeats);
    printf("fold %d/%d accuracy=%.4f precision=%.4f recall=%.4f f1=%.4f auc=%.4f (train %lld, scored %lld, %.1fs)\n",
           f->fold + 1, f->folds, m->accuracy, m->precision, m->recall, m->f1, m->auc, (long long)f->train_count,
           (long long)f->test_count, ex_now() - c->t_fold);
    fflush(stdout);
    return interrupted ? 1 : 0;
}

/* A CSV field: quoted when it holds a comma, quote or line end. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_cv_csv(FILE *f, const llm_text_corpus *all, const llm_cv_result *r, int repeats, const char *const *names) {
    fprintf(f, "repeat,fold,path,label,probability\n");
    for (int rep = 0; rep < repeats; rep++) {
        const float *p;
        const int32_t *fold_of;
        int64_t n;
        if (llm_cv_result_scores(r, rep, &p, &fold_of, &n) != LLM_OK) return -1;
        for (int64_t i = 0; i < n; i++) {
            const char *src = "";
            int32_t y = 0;
            llm_text_corpus_source(all, i, &src);
            llm_text_corpus_label(all, i, &y);
            fprintf(f, "%d,%d,", rep, (int)fold_of[i]);
            csv_field(f, src);
            fprintf(f, ",%s,%.9g\n", names[y], (double)p[i]);
        }
    }
    return ferror(f) ? -1 : 0;
}

/* --cv K: K models per repeat, each scored on the messages it never saw. */
static int run_cv(const train_opts *o, const run_env *env, const llm_text_corpus *all) {
    int rc = EX_FAILURE;
    llm_cv_result *r = NULL;
    FILE *csv = NULL;
    if (o->cv_out && !(csv = fopen(o->cv_out, "w"))) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, o->cv_out, strerror(errno));
        return EX_FAILURE;
    }
    cv_state c = { o, env, 0, 0 };
    llm_cv_options co;
    llm_cv_options_init(&co);
    co.folds = o->cv;
    co.repeats = o->cv_repeats;
    co.seed = o->seed;
    co.train = cv_train;
    co.on_fold = cv_line;
    co.user = &c;
    printf("cross-validation: %d folds%s, stratified, seed %llu\n", o->cv,
           o->cv_repeats > 1 ? " repeated" : "", (unsigned long long)o->seed);
    double t0 = ex_now();
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    llm_status s = llm_cross_validate(all, &co, &r);
    sigaction(SIGINT, &old_sa, NULL);
    if (c.failed) { rc = c.failed; goto done; }
    if (s != LLM_OK) { rc = interrupted ? 130 : ex_fail(prog, s, "cross-validation"); goto done; }
    llm_metrics mean, sd;
    llm_metrics_init(&mean);
    llm_metrics_init(&sd);
    if ((s = llm_cv_result_summary(r, &mean, &sd)) != LLM_OK) { ex_fail(prog, s, "averaging the folds"); goto done; }
    printf("cv mean accuracy=%.4f precision=%.4f recall=%.4f f1=%.4f auc=%.4f sd accuracy=%.4f precision=%.4f "
           "recall=%.4f f1=%.4f auc=%.4f (%d folds x %d, %.1fs)\n",
           mean.accuracy, mean.precision, mean.recall, mean.f1, mean.auc, sd.accuracy, sd.precision, sd.recall, sd.f1,
           sd.auc, o->cv, o->cv_repeats, ex_now() - t0);
    if (csv) {
        if (write_cv_csv(csv, all, r, o->cv_repeats, env->names) != 0 || fclose(csv) != 0) {
            csv = NULL;
            fprintf(stderr, "%s: writing %s failed\n", prog, o->cv_out);
            goto done;
        }
        csv = NULL;
        printf("out-of-fold probabilities in %s\n", o->cv_out);
    }
    rc = 0;
done:
    if (csv) fclose(csv);
    llm_cv_result_free(r);
    return rc;
}

/* ---------------------------------------------------------------- run */

/* Loads the raw messages of o->data: two class folders, ham then spam. */
static int load_messages(const train_opts *o, run_env *env, llm_text_corpus **all) {
    llm_status s;
    char what[1024];
    llm_corpus_options co;
    llm_corpus_options_init(&co);
    co.format = LLM_CORPUS_RAW; /* each configuration reads them with its own e-mail settings */
    co.max_file_bytes = EX_MAX_MESSAGE_BYTES;
    co.skip_unreadable = 1;
    snprintf(what, sizeof what, "reading %s", o->data);
    if ((s = llm_text_corpus_from_directory(all, o->data, &co)) != LLM_OK) return ex_fail(prog, s, what);
    int32_t classes = 0;
    llm_text_corpus_num_classes(*all, &classes);
    if (classes != 2) {
        fprintf(stderr, "%s: %s has %d class folders; a binary classifier needs exactly two "
                "(e.g. ham/ and spam/)\n", prog, o->data, (int)classes);
        return EX_FAILURE;
    }
    for (int32_t c = 0; c < 2; c++) {
        if ((s = llm_text_corpus_class_name(*all, c, &env->names[c])) != LLM_OK) return ex_fail(prog, s, "class name");
        if (strchr(env->names[c], ',') || strlen(env->names[c]) > EX_CLASS_NAME_MAX) {
            fprintf(stderr, "%s: class folder name '%s' must be at most %d bytes without ','\n",
                    prog, env->names[c], EX_CLASS_NAME_MAX);
            return EX_FAILURE;
        }
    }
    int64_t skipped = 0;
    llm_text_corpus_skipped(*all, &skipped);
    print_corpus("data", *all, env->names);
    if (skipped > 0) fprintf(stderr, "%s: warning: %lld unreadable files skipped\n", prog, (long long)skipped);
    return 0;
}

/* Fails now rather than after the first epoch when the model cannot be
 * written (saving goes through a temporary file in the same folder). */
static int check_writable(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    if (access(dir, W_OK | X_OK) == 0) return 0;
    fprintf(stderr, "%s: cannot write %s: folder '%s': %s\n", prog, path, dir, strerror(errno));
    return EX_FAILURE;
}

/* The whole program after option parsing: load, then cross-validate or
 * train (one configuration or the recipe); every resource is freed on
 * every path (the examples run under LeakSanitizer in `make asan`). */
static int run(const train_opts *o) {
    int rc = EX_FAILURE;
    llm_status s;
    run_env env;
    memset(&env, 0, sizeof env);
    llm_text_corpus *all = NULL, *rest = NULL, *test = NULL;
    if (!o->cv && check_writable(o->model_path)) goto done;
    if (ex_backend(prog, o->backend, o->threads, 0, &env.be)) goto done;
    if (load_messages(o, &env, &all)) goto done;
    if (o->cv) {
        env.cv = 1;
        rc = run_cv(o, &env, all);
        goto done;
    }
    /* the test part first (never seen in training), then validation */
    if (o->test_split > 0 &&
        (s = llm_text_corpus_split(all, o->test_split, o->seed, &rest, &test)) != LLM_OK) { ex_fail(prog, s, "splitting off the test part"); goto done; }
    rc = o->recipe ? train_recipe(o, &env, rest ? rest : all, test, NULL) : train_model(o, &env, rest ? rest : all, test, NULL);
done:
    llm_text_corpus_free(test);
    llm_text_corpus_free(rest);
    llm_text_corpus_free(all);
    llm_backend_free(env.be);
    return rc;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    train_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == -1) { usage(stdout); return 0; }
    if (r != 0) { usage(stderr); return EX_USAGE; }
    int dist_size = 1;
    if (ex_dist_wanted(o.distributed) &&
        ex_dist_start(prog, &argc, &argv, &o.threads, &o.quiet, &dist, &dist_rank, &dist_size)) {
        llm_dist_free(dist);
        return EX_FAILURE;
    }
    int rc = run(&o);
    llm_dist_free(dist); /* after a failed collective: MPI is left as it is (see llm/dist.h) */
    return rc;
}
