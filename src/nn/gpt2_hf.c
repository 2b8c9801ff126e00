/* GPT-2 in the Hugging Face layout: config.json (transformers' GPT2Config)
 * and model.safetensors (GPT2LMHeadModel / GPT2Model parameter names), read
 * and written. Conv1D weights are stored [in, out], the transpose of
 * libllm's (PyTorch Linear) [out, in]; F16 and BF16 tensors are widened to
 * float on load, the export writes float32. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "nn/gpt2_internal.h"
#include "nn/model_internal.h"
#include "io/safetensors.h"
#include "text/bpe_internal.h"

/* ---- config.json ---- */

/* An integer field in [lo, hi], left as it is when absent or null. */
static llm_status get_int(const cJSON *root, const char *key, int64_t lo, int64_t hi, int64_t *v, const char *label) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return LLM_OK;
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return llm__error(LLM_ERR_FORMAT, "%s: \"%s\" must be an integer in [%lld, %lld]", label, key, (long long)lo,
                          (long long)hi);
    *v = (int64_t)d;
    return LLM_OK;
}

static llm_status get_bool(const cJSON *root, const char *key, int *v, const char *label) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return LLM_OK;
    if (!cJSON_IsBool(j)) return llm__error(LLM_ERR_FORMAT, "%s: \"%s\" must be true or false", label, key);
    *v = cJSON_IsTrue(j);
    return LLM_OK;
}

/* The tanh approximations of GELU (what GPT-2 was trained with); "gelu" is
 * the exact erf form, which libllm's blocks do not compute. */
static const char *const tanh_gelus[] = { "gelu_new", "gelu_fast", "gelu_pytorch_tanh" };

static llm_status parse_config(const cJSON *root, const char *label, llm_gpt2_options *o, int *tie) {
    if (!cJSON_IsObject(root)) return llm__error(LLM_ERR_FORMAT, "%s: not a JSON object", label);
    /* a key given twice would be read one way here and maybe another elsewhere */
    int keys = 0;
    for (const cJSON *a = root->child; a; a = a->next) {
        if (++keys > 1000) return llm__error(LLM_ERR_FORMAT, "%s: more than 1000 keys", label);
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return llm__error(LLM_ERR_FORMAT, "%s: key \"%.64s\" appears twice", label, a->string);
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !(cJSON_IsString(mt) && strcmp(mt->valuestring, "gpt2") == 0))
        return llm__error(LLM_ERR_FORMAT, "%s: model_type is not \"gpt2\"", label);
    /* transformers' GPT2Config defaults for absent fields */
    llm_gpt2_options_init(o);
    LLM__CHECK(get_int(root, "n_layer", 0, 1024, &o->n_layer, label));
    LLM__CHECK(get_int(root, "n_head", 1, 4096, &o->n_head, label));
    LLM__CHECK(get_int(root, "n_embd", 1, 65536, &o->n_embd, label));
    int64_t ctx = -1, pos = -1;
    LLM__CHECK(get_int(root, "n_ctx", 1, 1 << 20, &ctx, label));
    LLM__CHECK(get_int(root, "n_positions", 1, 1 << 20, &pos, label));
    o->n_positions = pos > 0 ? pos : ctx > 0 ? ctx : o->n_positions;
    LLM__CHECK(get_int(root, "vocab_size", 2, INT32_MAX, &o->vocab_size, label));
    LLM__CHECK(get_int(root, "n_inner", 1, 1 << 20, &o->n_inner, label));
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0.0 && eps->valuedouble < 1.0))
            return llm__error(LLM_ERR_FORMAT, "%s: \"layer_norm_epsilon\" must be a number in (0, 1)", label);
        o->layer_norm_epsilon = (float)eps->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && !cJSON_IsNull(act)) {
        int ok = 0;
        for (size_t i = 0; cJSON_IsString(act) && i < sizeof tanh_gelus / sizeof tanh_gelus[0]; i++)
            ok |= strcmp(act->valuestring, tanh_gelus[i]) == 0;
        if (!ok)
            return llm__error(LLM_ERR_FORMAT, "%s: activation_function must be \"gelu_new\" (GPT-2's tanh GELU; also "
                              "\"gelu_fast\", \"gelu_pytorch_tanh\"); libllm has no %s", label,
                              cJSON_IsString(act) ? "other (\"gelu\" is the exact erf form)" : "non-string activation");
    }
    int flag = 1;
    *tie = 1;
    LLM__CHECK(get_bool(root, "tie_word_embeddings", tie, label));
    LLM__CHECK(get_bool(root, "scale_attn_weights", &flag, label));
    if (!flag) return llm__error(LLM_ERR_FORMAT, "%s: scale_attn_weights false is not GPT-2's attention", label);
    flag = 0;
    LLM__CHECK(get_bool(root, "scale_attn_by_inverse_layer_idx", &flag, label));
    if (flag) return llm__error(LLM_ERR_FORMAT, "%s: scale_attn_by_inverse_layer_idx is not supported", label);
    LLM__CHECK(get_bool(root, "add_cross_attention", &flag, label));
    if (flag) return llm__error(LLM_ERR_FORMAT, "%s: add_cross_attention (an encoder-decoder) is not supported", label);
    if (o->n_embd % o->n_head)
        return llm__error(LLM_ERR_FORMAT, "%s: n_head = %lld does not divide n_embd = %lld", label, (long long)o->n_head,
                          (long long)o->n_embd);
    return LLM_OK;
}

llm_status llm__gpt2_parse_config(const char *json, size_t len, const char *label, llm_gpt2_options *o, int *tie) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return llm__error(LLM_ERR_FORMAT, "%s: not valid JSON", label);
    llm_status s = parse_config(root, label, o, tie);
    cJSON_Delete(root);
    return s;
}

/* ---- model.safetensors in ---- */

/* Where the tensor named `name` (with the file's prefix) belongs: the index
 * into params, -1 for a buffer to skip (the attention masks), -2 for
 * lm_head.weight, -3 for a stranger. */
static int classify(const char *name, const char *prefix, const llm__gpt2_param *p, int n) {
    if (strcmp(name, "lm_head.weight") == 0) return -2;
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0) return -3;
    const char *rest = name + pl;
    for (int i = 0; i < n; i++)
        if (strcmp(rest, p[i].hf) == 0) return i;
    size_t rl = strlen(rest);
    if (strncmp(rest, "h.", 2) == 0 &&
        ((rl > 10 && strcmp(rest + rl - 10, ".attn.bias") == 0) ||
         (rl > 17 && strcmp(rest + rl - 17, ".attn.masked_bias") == 0)))
        return -1;
    return -3;
}

/* Converts tensor t (shape rows x cols as HF stores it when transpose, else
 * as libllm does) into dst [rows, cols] float; label/name for messages. */
static llm_status to_float(const llm__st_tensor *t, const llm__gpt2_param *p, float *dst, float *tmp,
                           const char *label) {
    int64_t n = p->rows * p->cols;
    int64_t want0 = p->transpose ? p->cols : p->rows, want1 = p->transpose ? p->rows : p->cols;
    int vec = p->cols == 1 && !p->transpose;
    int shape_ok = vec ? (t->ndim == 1 && t->shape[0] == p->rows)
                       : (t->ndim == 2 && t->shape[0] == want0 && t->shape[1] == want1);
    if (!shape_ok) {
        char got[96] = "[", need[64];
        for (int d = 0; d < t->ndim && strlen(got) < 60; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        strcat(got, "]");
        if (vec) snprintf(need, sizeof need, "[%lld]", (long long)want0);
        else snprintf(need, sizeof need, "[%lld, %lld]", (long long)want0, (long long)want1);
        return llm__error(LLM_ERR_FORMAT, "%s: tensor '%s' has shape %s; config.json makes it %s", label, t->name, got,
                          need);
    }
    float *raw = p->transpose ? tmp : dst;
    if (t->dtype == LLM_DTYPE_F32) memcpy(raw, t->data, (size_t)n * 4);
    else if (t->dtype == LLM__ST_F16) llm__f16_to_f32(t->data, n, raw);
    else if (t->dtype == LLM__ST_BF16) llm__bf16_to_f32(t->data, n, raw);
    else
        return llm__error(LLM_ERR_FORMAT, "%s: tensor '%s' is not F32, F16 or BF16 (the dtypes GPT-2 weights come in)",
                          label, t->name);
    int64_t bad = llm__first_nonfinite(raw, n);
    if (bad >= 0)
        return llm__error(LLM_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %lld", label, t->name,
                          (long long)bad);
    if (p->transpose) /* stored [cols, rows] (in, out); wanted [rows, cols] */
        for (int64_t r = 0; r < p->rows; r++)
            for (int64_t c = 0; c < p->cols; c++) dst[r * p->cols + c] = raw[c * p->rows + r];
    return LLM_OK;
}

/* Fills m from the file's tensors; every one is used, skipped on purpose or refused. */
static llm_status fill(llm_model *m, const llm__safetensors *f, const char *prefix, const llm__gpt2_param *p, int n,
                       int tie, const char *label) {
    char *seen = llm__calloc((size_t)n, 1);
    int64_t most = 0;
    for (int i = 0; i < n; i++) most = p[i].rows * p[i].cols > most ? p[i].rows * p[i].cols : most;
    float *buf = llm__malloc((size_t)most * 4), *tmp = llm__malloc((size_t)most * 4), *wte = NULL;
    llm_status s = seen && buf && tmp ? LLM_OK : llm__oom("llm_model_load_gpt2");
    const llm__st_tensor *head = NULL;
    for (int k = 0; s == LLM_OK && k < llm__safetensors_count(f); k++) {
        const llm__st_tensor *t = llm__safetensors_tensor(f, k);
        int i = classify(t->name, prefix, p, n);
        if (i == -1) continue;
        if (i == -2) { head = t; continue; }
        if (i == -3) {
            s = llm__error(LLM_ERR_FORMAT, "%s: unexpected tensor '%s' (not a GPT-2%s parameter)", label, t->name,
                           prefix[0] ? " with the \"transformer.\" prefix" : "");
            break;
        }
        s = to_float(t, &p[i], buf, tmp, label);
        if (s == LLM_OK) s = llm_model_set_param(m, p[i].ours, buf, (size_t)(p[i].rows * p[i].cols) * 4);
        seen[i] = 1;
    }
    for (int i = 0; s == LLM_OK && i < n; i++)
        if (!seen[i] && strcmp(p[i].hf, "lm_head.weight") != 0)
            s = llm__error(LLM_ERR_FORMAT, "%s: tensor '%s%s' is missing", label, prefix, p[i].hf);
    if (s == LLM_OK && !tie) {
        if (!head) s = llm__error(LLM_ERR_FORMAT, "%s: config.json unties the head but lm_head.weight is missing", label);
        if (s == LLM_OK) s = to_float(head, &p[n - 1], buf, tmp, label);
        if (s == LLM_OK) s = llm_model_set_param(m, p[n - 1].ours, buf, (size_t)(p[n - 1].rows * p[n - 1].cols) * 4);
    } else if (s == LLM_OK && head) {
        /* a tied head stored anyway (older exports): it must be the token table */
        size_t bytes = (size_t)(p[0].rows * p[0].cols) * 4;
        wte = llm__malloc(bytes);
        if (!wte) s = llm__oom("llm_model_load_gpt2");
        if (s == LLM_OK) s = to_float(head, &p[0], buf, tmp, label);
        if (s == LLM_OK) s = llm_model_get_param(m, p[0].ours, wte, bytes);
        if (s == LLM_OK && memcmp(wte, buf, bytes) != 0)
            s = llm__error(LLM_ERR_FORMAT, "%s: lm_head.weight differs from wte.weight, but config.json ties them "
                           "(tie_word_embeddings)", label);
    }
    llm__free(wte);
    llm__free(seen);
    llm__free(buf);
    llm__free(tmp);
    return s;
}

llm_status llm__gpt2_load_hf(llm_model **out, llm_backend *be, const char *path, const char *config_json,
                             size_t config_len, const char *config_label, int64_t seq_len) {
    static const char fn[] = "llm_model_load_gpt2";
    *out = NULL;
    llm_gpt2_options o;
    int tie = 1;
    LLM__CHECK(llm__gpt2_parse_config(config_json, config_len, config_label, &o, &tie));
    o.seq_len = seq_len;
    if (o.seq_len > o.n_positions)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len = %lld is longer than n_positions = %lld", fn,
                          (long long)seq_len, (long long)o.n_positions);
    LLM__CHECK(llm__gpt2_check_options(&o, fn));
    llm__safetensors *f = NULL;
    LLM__CHECK(llm__safetensors_open_any(&f, path, LLM__GPT2_MAX_FILE));
    const char *prefix = llm__safetensors_find(f, "transformer.wte.weight") ? "transformer." : "";
    if (!prefix[0] && !llm__safetensors_find(f, "wte.weight")) {
        llm__safetensors_close(f);
        return llm__error(LLM_ERR_FORMAT, "%s: no wte.weight or transformer.wte.weight: not a GPT-2 checkpoint", path);
    }
    llm__gpt2_param *p = NULL;
    int n = 0;
    llm_model *m = NULL;
    llm_status s = llm__gpt2_params(&o, tie, &p, &n);
    /* a config that asks for more weights than the file holds is refused
     * before any memory is spent on them */
    int64_t need = 0, have = 0;
    for (int i = 0; s == LLM_OK && i < n; i++) need += p[i].rows * p[i].cols;
    for (int k = 0; s == LLM_OK && k < llm__safetensors_count(f); k++) {
        const llm__st_tensor *t = llm__safetensors_tensor(f, k);
        if (t->dtype == LLM_DTYPE_F32) have += (int64_t)(t->bytes / 4);
        else if (t->dtype == LLM__ST_F16 || t->dtype == LLM__ST_BF16) have += (int64_t)(t->bytes / 2);
    }
    if (s == LLM_OK && need > have)
        s = llm__error(LLM_ERR_FORMAT, "%s: config.json describes %lld weights but the file holds %lld values", path,
                       (long long)need, (long long)have);
    if (s == LLM_OK) s = llm__gpt2_build(&m, be, &o, tie, fn);
    if (s == LLM_OK) s = fill(m, f, prefix, p, n, tie, path);
    llm__free(p);
    llm__safetensors_close(f);
    if (s != LLM_OK) {
        llm_model_free(m);
        return s;
    }
    *out = m;
    return LLM_OK;
}

/* ---- out ---- */

static char *config_json(const llm_gpt2_options *o, int tie, int32_t eot) {
    cJSON *c = cJSON_CreateObject(), *arch = cJSON_CreateStringArray((const char *const[]){ "GPT2LMHeadModel" }, 1);
    if (!c || !arch) { cJSON_Delete(c); cJSON_Delete(arch); return NULL; }
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_AddStringToObject(c, "model_type", "gpt2");
    cJSON_AddNumberToObject(c, "n_layer", (double)o->n_layer);
    cJSON_AddNumberToObject(c, "n_head", (double)o->n_head);
    cJSON_AddNumberToObject(c, "n_embd", (double)o->n_embd);
    cJSON_AddNumberToObject(c, "n_positions", (double)o->n_positions);
    cJSON_AddNumberToObject(c, "n_ctx", (double)o->n_positions);
    cJSON_AddNumberToObject(c, "vocab_size", (double)o->vocab_size);
    if (o->n_inner == 4 * o->n_embd) cJSON_AddNullToObject(c, "n_inner");
    else cJSON_AddNumberToObject(c, "n_inner", (double)o->n_inner);
    /* the float's shortest decimal, so that it reads back to the same float */
    char eps[32];
    snprintf(eps, sizeof eps, "%.9g", (double)o->layer_norm_epsilon);
    cJSON_AddItemToObject(c, "layer_norm_epsilon", cJSON_CreateRaw(eps));
    cJSON_AddStringToObject(c, "activation_function", "gelu_new");
    cJSON_AddBoolToObject(c, "tie_word_embeddings", tie);
    cJSON_AddBoolToObject(c, "scale_attn_weights", 1);
    if (eot >= 0) {
        cJSON_AddNumberToObject(c, "bos_token_id", eot);
        cJSON_AddNumberToObject(c, "eos_token_id", eot);
    }
    cJSON_AddStringToObject(c, "torch_dtype", "float32");
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

/* Writes len bytes to dir/name through a temporary file and a rename. */
static llm_status write_atomic(const char *dir, const char *name, const char *data, size_t len, const char *fn) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return llm__error(LLM_ERR_IO, "%s: cannot create %s: %s", fn, tmp, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return llm__error(LLM_ERR_IO, "%s: cannot write %s: %s", fn, path, strerror(e));
    }
    return LLM_OK;
}

static llm_status save_tokenizer(const llm_model *m, const char *dir, int32_t *eot, const char *fn) {
    *eot = -1;
    if (!m->bpe) return LLM_OK;
    char *vocab = NULL, *merges = NULL;
    size_t vlen = 0, mlen = 0;
    llm_status s = llm__bpe_gpt2_files(m->bpe, &vocab, &vlen, &merges, &mlen);
    if (s == LLM_ERR_NOT_SUPPORTED) return LLM_OK; /* libllm's own BPE: no GPT-2 files to write */
    int32_t pad = -1;
    if (s == LLM_OK) s = llm_bpe_special_ids(m->bpe, &pad, eot);
    if (s == LLM_OK) s = write_atomic(dir, "vocab.json", vocab, vlen, fn);
    if (s == LLM_OK) s = write_atomic(dir, "merges.txt", merges, mlen, fn);
    llm__free(vocab);
    llm__free(merges);
    return s;
}

llm_status llm__gpt2_save_hf(const llm_model *m, const char *dir, const char *fn) {
    llm_gpt2_options o;
    int tie = 1;
    LLM__CHECK(llm__gpt2_shape_of(m, &o, &tie, fn));
    llm__gpt2_param *p = NULL;
    int n = 0;
    LLM__CHECK(llm__gpt2_params(&o, tie, &p, &n));
    llm__st_tensor *t = llm__calloc((size_t)n, sizeof *t);
    float **data = llm__calloc((size_t)n, sizeof *data);
    char (*names)[64] = llm__calloc((size_t)n, sizeof *names);
    float *tmp = NULL;
    llm_status s = t && data && names ? LLM_OK : llm__oom(fn);
    int64_t most = 0;
    for (int i = 0; i < n; i++) most = p[i].rows * p[i].cols > most ? p[i].rows * p[i].cols : most;
    if (s == LLM_OK && !(tmp = llm__malloc((size_t)most * 4))) s = llm__oom(fn);
    for (int i = 0; s == LLM_OK && i < n; i++) {
        size_t bytes = (size_t)(p[i].rows * p[i].cols) * 4;
        if (!(data[i] = llm__malloc(bytes ? bytes : 4))) { s = llm__oom(fn); break; }
        s = llm_model_get_param(m, p[i].ours, p[i].transpose ? tmp : data[i], bytes);
        if (s != LLM_OK) break;
        if (p[i].transpose) /* [rows, cols] (out, in) to [cols, rows] */
            for (int64_t r = 0; r < p[i].rows; r++)
                for (int64_t c = 0; c < p[i].cols; c++) data[i][c * p[i].rows + r] = tmp[r * p[i].cols + c];
        snprintf(names[i], sizeof names[i], "%s%s", strcmp(p[i].hf, "lm_head.weight") ? "transformer." : "", p[i].hf);
        t[i].name = names[i];
        t[i].dtype = LLM_DTYPE_F32;
        t[i].data = data[i];
        t[i].bytes = bytes;
        if (p[i].cols == 1 && !p[i].transpose) {
            t[i].ndim = 1;
            t[i].shape[0] = p[i].rows;
        } else {
            t[i].ndim = 2;
            t[i].shape[0] = p[i].transpose ? p[i].cols : p[i].rows;
            t[i].shape[1] = p[i].transpose ? p[i].rows : p[i].cols;
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const llm__st_meta meta[] = { { "format", "pt" } };
    if (s == LLM_OK) s = llm__safetensors_write(path, t, n, meta, 1);
    int32_t eot = -1;
    if (s == LLM_OK) s = save_tokenizer(m, dir, &eot, fn);
    char *cfg = s == LLM_OK ? config_json(&o, tie, eot) : NULL;
    if (s == LLM_OK && !cfg) s = llm__oom(fn);
    if (s == LLM_OK) s = write_atomic(dir, "config.json", cfg, strlen(cfg), fn);
    if (cfg) cJSON_free(cfg);
    for (int i = 0; data && i < n; i++) llm__free(data[i]);
    llm__free(data);
    llm__free(names);
    llm__free(t);
    llm__free(tmp);
    llm__free(p);
    return s;
}
