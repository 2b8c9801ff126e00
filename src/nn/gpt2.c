/* GPT-2 as a libllm model: its shape, the stack of layers, the map from its
 * parameters to other formats' tensor names, and the front door of the
 * importers (which file a path names) and of the exporter. The formats
 * themselves are in gpt2_hf.c and gpt2_llmc.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include "nn/gpt2_internal.h"
#include "nn/model_internal.h"
#include "nn/layers/kinds.h"

void llm_gpt2_options_init(llm_gpt2_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->n_layer = 12;
    o->n_head = 12;
    o->n_embd = 768;
    o->n_positions = 1024;
    o->vocab_size = 50257;
    o->n_inner = 0;
    o->layer_norm_epsilon = 1e-5f;
    o->seq_len = 0;
    o->seed = 1;
}

llm_status llm__gpt2_check_options(llm_gpt2_options *o, const char *fn) {
    if (o->n_layer < 0 || o->n_layer > 1024)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n_layer = %lld must be in [0, 1024]", fn, (long long)o->n_layer);
    if (o->n_embd < 1 || o->n_embd > 65536)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n_embd = %lld must be in [1, 65536]", fn, (long long)o->n_embd);
    if (o->n_head < 1 || o->n_head > LLM__MAX_HEADS || o->n_embd % o->n_head)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n_head = %lld must be in [1, %d] and divide n_embd = %lld", fn,
                          (long long)o->n_head, LLM__MAX_HEADS, (long long)o->n_embd);
    if (o->n_positions < 1 || o->n_positions > (1 << 20))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n_positions = %lld must be in [1, 2^20]", fn,
                          (long long)o->n_positions);
    if (o->vocab_size < 2 || o->vocab_size > INT32_MAX)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab_size = %lld must be in [2, 2^31)", fn,
                          (long long)o->vocab_size);
    if (o->n_inner < 0 || o->n_inner > (1 << 20))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n_inner = %lld must be in [0, 2^20]", fn, (long long)o->n_inner);
    if (!(o->layer_norm_epsilon > 0.0f && o->layer_norm_epsilon < 1.0f))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: layer_norm_epsilon = %g must be in (0, 1)", fn,
                          (double)o->layer_norm_epsilon);
    if (o->seq_len < 0 || o->seq_len > o->n_positions)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len = %lld must be in [0, n_positions = %lld]", fn,
                          (long long)o->seq_len, (long long)o->n_positions);
    if (o->n_inner == 0) o->n_inner = 4 * o->n_embd;
    if (o->seq_len == 0) o->seq_len = o->n_positions;
    return LLM_OK;
}

llm_status llm__gpt2_build(llm_model **out, llm_backend *be, const llm_gpt2_options *o, int tie, const char *fn) {
    *out = NULL;
    llm_model *m;
    LLM__CHECK(llm_model_sequential(&m, be));
    llm_status s = llm_model_set_seed(m, o->seed);
    llm_transformer_embedding_options eo;
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = o->vocab_size;
    eo.context = o->n_positions;
    eo.dim = o->n_embd;
    eo.positional = LLM_POSITIONAL_LEARNED;
    eo.mask_zero = 0; /* id 0 is a real token ("!") */
    if (s == LLM_OK) s = llm_model_add(m, llm_layer_transformer_embedding_ex(&eo));
    for (int64_t i = 0; s == LLM_OK && i < o->n_layer; i++) {
        llm_transformer_block_options bo;
        llm_transformer_block_options_init(&bo);
        bo.heads = o->n_head;
        bo.mlp_hidden = o->n_inner;
        bo.causal = 1;
        bo.eps = o->layer_norm_epsilon;
        s = llm_model_add(m, llm_layer_transformer_block_ex(&bo));
    }
    if (s == LLM_OK) s = llm_model_add(m, llm_layer_layernorm(o->layer_norm_epsilon));
    if (s == LLM_OK) s = llm_model_add(m, llm_layer_lm_head(o->vocab_size, tie));
    if (s == LLM_OK) s = llm_model_build(m, LLM_DTYPE_I32, 1, &o->seq_len);
    char heads[24];
    snprintf(heads, sizeof heads, "%lld", (long long)o->n_head);
    if (s == LLM_OK) s = llm_model_set_metadata(m, "lm.heads", heads);
    if (s != LLM_OK) {
        llm_model_free(m);
        return s == LLM_ERR_OUT_OF_MEMORY ? s : llm__error(s, "%s: building the model: %s", fn, llm_last_error());
    }
    *out = m;
    return LLM_OK;
}

llm_status llm_model_gpt2(llm_model **out, llm_backend *be, const llm_gpt2_options *opts) {
    static const char fn[] = "llm_model_gpt2";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!be || !opts) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    llm_gpt2_options o;
    llm_gpt2_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    LLM__CHECK(llm__gpt2_check_options(&o, fn));
    return llm__gpt2_build(out, be, &o, 1, fn);
}

/* ---- the name map ---- */

/* A block's tensors in llm.c's order, with their Hugging Face names. */
static const struct { const char *ours, *hf; int transpose; } block_map[] = {
    { "ln1_gamma", "ln_1.weight", 0 },        { "ln1_beta", "ln_1.bias", 0 },
    { "qkv_weight", "attn.c_attn.weight", 1 }, { "qkv_bias", "attn.c_attn.bias", 0 },
    { "proj_weight", "attn.c_proj.weight", 1 }, { "proj_bias", "attn.c_proj.bias", 0 },
    { "ln2_gamma", "ln_2.weight", 0 },        { "ln2_beta", "ln_2.bias", 0 },
    { "fc1_weight", "mlp.c_fc.weight", 1 },    { "fc1_bias", "mlp.c_fc.bias", 0 },
    { "fc2_weight", "mlp.c_proj.weight", 1 },  { "fc2_bias", "mlp.c_proj.bias", 0 },
};
#define BLOCK_TENSORS ((int)(sizeof block_map / sizeof block_map[0]))

llm_status llm__gpt2_params(const llm_gpt2_options *o, int tie, llm__gpt2_param **out, int *n) {
    int64_t L = o->n_layer, D = o->n_embd, M = o->n_inner, V = o->vocab_size;
    int total = 2 + BLOCK_TENSORS * (int)L + 2 + !tie;
    llm__gpt2_param *p = llm__calloc((size_t)total, sizeof *p);
    if (!p) return llm__oom("gpt2");
    int k = 0;
#define PUT(OURS, HF, T, R, C) do { \
        snprintf(p[k].ours, sizeof p[k].ours, "%s", OURS); snprintf(p[k].hf, sizeof p[k].hf, "%s", HF); \
        p[k].transpose = (T); p[k].rows = (R); p[k].cols = (C); k++; } while (0)
    PUT("transformer_embedding_0.token", "wte.weight", 0, V, D);
    PUT("transformer_embedding_0.position", "wpe.weight", 0, o->n_positions, D);
    const int64_t rows[BLOCK_TENSORS] = { D, D, 3 * D, 3 * D, D, D, D, D, M, M, D, D };
    const int64_t cols[BLOCK_TENSORS] = { 1, 1, D, 1, D, 1, 1, 1, D, 1, M, 1 };
    for (int t = 0; t < BLOCK_TENSORS; t++)
        for (int64_t i = 0; i < L; i++) {
            char ours[80], hf[48];
            snprintf(ours, sizeof ours, "transformer_block_%lld.%s", (long long)i, block_map[t].ours);
            snprintf(hf, sizeof hf, "h.%lld.%s", (long long)i, block_map[t].hf);
            PUT(ours, hf, block_map[t].transpose, rows[t], cols[t]);
        }
    PUT("layernorm_0.gamma", "ln_f.weight", 0, D, 1);
    PUT("layernorm_0.beta", "ln_f.bias", 0, D, 1);
    if (!tie) PUT("lm_head_0.weight", "lm_head.weight", 0, V, D);
#undef PUT
    *out = p;
    *n = k;
    return LLM_OK;
}

/* The shape of a GPT-2-like model from its layers' settings (their states
 * as src/nn/layers/kinds.h declares them, the same decoder.c reads). */
llm_status llm__gpt2_shape_of(const llm_model *m, llm_gpt2_options *o, int *tie, const char *fn) {
    llm_gpt2_options_init(o);
    if (!m->built) return llm__error(LLM_ERR_STATE, "%s: the model is not built", fn);
    int n = m->n_layers;
    if (m->topo.functional)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: the model is functional (graph.h); a GPT-2 is a Sequential stack", fn);
    if (n < 3 || m->layers[0]->vt != &llm__transformer_embedding_kind)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: a GPT-2 starts with a transformer_embedding", fn);
    const llm_layer *e = m->layers[0];
    const llm_transformer_embedding_options *eo = &LLM__STATE(const llm__transformer_embedding_state, e)->opt;
    if (eo->positional != LLM_POSITIONAL_LEARNED)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: %s: GPT-2 has learned positions", fn, e->name);
    if (eo->mask_zero)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: %s: id 0 is padding (mask_zero); in GPT-2 it is a token", fn,
                          e->name);
    o->vocab_size = eo->vocab;
    o->n_positions = eo->context;
    o->n_embd = eo->dim;
    o->n_layer = n - 3;
    for (int i = 1; i < n - 2; i++) {
        const llm_layer *b = m->layers[i];
        if (b->vt != &llm__transformer_block_kind)
            return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: layer %s (%s) is not a transformer_block", fn, b->name,
                              b->vt->kind);
        const llm__transformer_block_state *bs = b->state;
        if (!bs->opt.causal) return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: %s is not causal", fn, b->name);
        if (i == 1) {
            o->n_head = bs->opt.heads;
            o->n_inner = bs->mlp;
            o->layer_norm_epsilon = bs->opt.eps;
        } else if (bs->opt.heads != o->n_head || bs->mlp != o->n_inner || bs->opt.eps != o->layer_norm_epsilon) {
            return llm__error(LLM_ERR_NOT_SUPPORTED,
                              "%s: %s has other heads, MLP width or epsilon than the first block; GPT-2's blocks "
                              "are all alike", fn, b->name);
        }
    }
    const llm_layer *ln = m->layers[n - 2], *head = m->layers[n - 1];
    if (ln->vt != &llm__layernorm_kind)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: layer %s (%s) where GPT-2 has its final layernorm", fn,
                          ln->name, ln->vt->kind);
    float ln_eps = LLM__STATE(const llm__layernorm_state, ln)->eps;
    if (o->n_layer == 0) o->layer_norm_epsilon = ln_eps;
    if (ln_eps != o->layer_norm_epsilon)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: %s's epsilon differs from the blocks'", fn, ln->name);
    if (head->vt != &llm__lm_head_kind)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: the last layer %s (%s) is not an lm_head", fn, head->name,
                          head->vt->kind);
    *tie = LLM__STATE(const llm__lm_head_state, head)->opt.tie != 0;
    if (o->n_inner == 0) o->n_inner = 4 * o->n_embd;
    o->seq_len = m->in_shape.d[0];
    return LLM_OK;
}

/* ---- number formats ---- */

void llm__f16_to_f32(const unsigned char *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)src[2 * i] | (uint32_t)src[2 * i + 1] << 8;
        uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
        if (exp == 0x1f) {
            bits = sign | 0x7f800000u | man << 13; /* infinity or NaN */
        } else if (exp != 0) {
            bits = sign | (exp + 112) << 23 | man << 13;
        } else if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | (uint32_t)(112 - e) << 23 | (man & 0x3ff) << 13;
        }
        memcpy(&dst[i], &bits, 4);
    }
}

void llm__bf16_to_f32(const unsigned char *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = ((uint32_t)src[2 * i] | (uint32_t)src[2 * i + 1] << 8) << 16;
        memcpy(&dst[i], &bits, 4);
    }
}

int64_t llm__first_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* ---- the front door ---- */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/name into buf; 0 when it does not fit. */
static int join(char *buf, size_t cap, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    if (a + b + 2 > cap) return 0;
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    return 1;
}

/* The folder of a file path ("." when it has none). */
static void dirname_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap) n = cap - 1;
    if (!slash) memcpy(buf, ".", 2);
    else { memcpy(buf, path, n); buf[n] = '\0'; }
}

/* Attaches dir/vocab.json + dir/merges.txt when both are there. */
static llm_status attach_tokenizer(llm_model *m, const char *dir, const char *fn) {
    char vocab[4096], merges[4096];
    if (!join(vocab, sizeof vocab, dir, "vocab.json") || !join(merges, sizeof merges, dir, "merges.txt") ||
        !is_file(vocab) || !is_file(merges))
        return LLM_OK;
    llm_bpe *bpe = NULL;
    llm_status s = llm_bpe_load_gpt2(&bpe, vocab, merges);
    if (s == LLM_OK) {
        int32_t n = 0;
        llm_bpe_vocab_size(bpe, &n);
        int64_t model_vocab = llm__layer_input_vocab(m->layers[0]);
        if (n != model_vocab)
            s = llm__error(LLM_ERR_FORMAT, "%s: %s has %d tokens but the model's vocabulary is %lld", fn, vocab, (int)n,
                           (long long)model_vocab);
    }
    if (s == LLM_OK) s = llm_model_set_tokenizer(m, bpe);
    llm_bpe_free(bpe);
    return s;
}

/* Reads a whole small text file (config.json), refusing one over max bytes. */
static llm_status read_small(const char *path, size_t max, char **text, size_t *len, const char *fn) {
    LLM__CHECK(llm_text_read_file(path, max + 1, text, len));
    if (*len > max) {
        llm_text_free(*text);
        *text = NULL;
        return llm__error(LLM_ERR_FORMAT, "%s: %s is larger than %zu bytes", fn, path, max);
    }
    return LLM_OK;
}

llm_status llm_model_load_gpt2(llm_model **out, llm_backend *be, const char *path, int64_t seq_len) {
    static const char fn[] = "llm_model_load_gpt2";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!be || !path || !path[0]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL backend or empty path", fn);
    if (seq_len < 0) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len = %lld must be >= 0", fn, (long long)seq_len);
    char dir[4096], weights[4096], config[4096];
    if (strlen(path) >= sizeof dir - 32) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: path is too long", fn);
    if (is_dir(path)) {
        memcpy(dir, path, strlen(path) + 1);
        join(weights, sizeof weights, dir, "model.safetensors");
        if (!is_file(weights)) {
            char index[4096];
            join(index, sizeof index, dir, "model.safetensors.index.json");
            if (is_file(index))
                return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: %s holds a sharded checkpoint; merge the shards into one "
                                  "model.safetensors", fn, path);
            return llm__error(LLM_ERR_IO, "%s: %s has no model.safetensors (give an llm.c file by its path)", fn, path);
        }
    } else {
        dirname_of(path, dir, sizeof dir);
        memcpy(weights, path, strlen(path) + 1);
    }
    FILE *f = fopen(weights, "rb");
    if (!f) return llm__error(LLM_ERR_IO, "%s: cannot open %s: %s", fn, weights, strerror(errno));
    unsigned char head[4];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    llm_model *m = NULL;
    llm_status s;
    const char *source;
    if (llm__gpt2_is_llmc(head, got)) {
        source = "llm.c";
        s = llm__gpt2_load_llmc(&m, be, weights, seq_len);
    } else {
        source = "huggingface";
        join(config, sizeof config, dir, "config.json");
        if (!is_file(config))
            return llm__error(LLM_ERR_IO, "%s: %s: no config.json beside the weights (n_head cannot be read from "
                              "the tensors)", fn, weights);
        char *cfg = NULL;
        size_t cfg_len = 0;
        LLM__CHECK(read_small(config, LLM__GPT2_MAX_CONFIG, &cfg, &cfg_len, fn));
        s = llm__gpt2_load_hf(&m, be, weights, cfg, cfg_len, config, seq_len);
        llm_text_free(cfg);
    }
    if (s == LLM_OK) s = llm_model_set_metadata(m, "gpt2.source", source);
    if (s == LLM_OK) s = attach_tokenizer(m, dir, fn);
    if (s != LLM_OK) {
        llm_model_free(m);
        return s;
    }
    *out = m;
    return LLM_OK;
}

llm_status llm_model_save_gpt2(const llm_model *m, const char *dir) {
    static const char fn[] = "llm_model_save_gpt2";
    if (!m || !dir || !dir[0]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL model or empty folder", fn);
    LLM__CHECK(llm__refuse_ensemble(m, fn));
    if (strlen(dir) >= 4000) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: folder path is too long", fn);
    if (!is_dir(dir) && mkdir(dir, 0777) != 0 && errno != EEXIST)
        return llm__error(LLM_ERR_IO, "%s: cannot create %s: %s", fn, dir, strerror(errno));
    return llm__gpt2_save_hf(m, dir, fn);
}
