/* Saving and loading models as .safetensors files (docs/FORMAT.md).
 *
 * Weights go under their parameter names with PyTorch layouts; everything
 * needed to rebuild the model (architecture, input shape, text pipeline,
 * user metadata) goes into __metadata__ as strings, the structured ones as
 * JSON. Loading treats the file as hostile: every field is checked and the
 * layers are rebuilt through the public constructors, which validate too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <cjson/cJSON.h>
#include "llm/version.h"
#include "model_internal.h"
#include "text/text_internal.h"
#include "../io/safetensors.h"
#include "model_contents.h"
#include "layers/kinds.h" /* llm__json_int and friends, shared with the kinds */

#define FORMAT_NAME "libllm"
#define FORMAT_VERSION "1"       /* Sequential models; functional ones write 2 (graph_io.c) */
#define MAX_MODEL_FILE ((size_t)1 << 34) /* 16 GiB */

/* ---- architecture to JSON ---- */

/* Each layer's entry is its kind's own (src/nn/layers/registry.c). */
static char *architecture_json(const llm_model *m) {
    cJSON *root = cJSON_CreateObject(), *input = cJSON_CreateObject(), *layers = cJSON_CreateArray();
    if (!root || !input || !layers) { cJSON_Delete(root); cJSON_Delete(input); cJSON_Delete(layers); return NULL; }
    cJSON_AddItemToObject(root, "input", input);
    cJSON_AddItemToObject(root, "layers", layers);
    cJSON_AddStringToObject(input, "dtype", m->in_shape.dtype == LLM_DTYPE_I32 ? "int32" : "float32");
    cJSON *shape = cJSON_AddArrayToObject(input, "shape");
    for (int i = 0; shape && i < m->in_shape.ndim; i++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)m->in_shape.d[i]));
    for (int i = 0; i < m->n_layers; i++) {
        cJSON *l = llm__layer_to_json(m->layers[i]);
        if (!l) { cJSON_Delete(root); return NULL; }
        cJSON_AddItemToArray(layers, l);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static char *vectorize_json(const llm_model *m) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "seq_len", m->vectorize.seq_len);
    cJSON_AddStringToObject(o, "padding", m->vectorize.padding == LLM_SEQ_PRE ? "pre" : "post");
    cJSON_AddStringToObject(o, "truncation", m->vectorize.truncation == LLM_SEQ_PRE ? "pre" : m->vectorize.truncation == LLM_SEQ_POST ? "post" : "middle");
    if (m->vectorize.bigram_buckets > 0) cJSON_AddNumberToObject(o, "bigram_buckets", m->vectorize.bigram_buckets);
    if (m->vectorize.char_ngram_buckets > 0) {
        cJSON_AddNumberToObject(o, "char_ngram_buckets", m->vectorize.char_ngram_buckets);
        cJSON_AddNumberToObject(o, "char_ngram_min", m->vectorize.char_ngram_min);
        cJSON_AddNumberToObject(o, "char_ngram_max", m->vectorize.char_ngram_max);
    }
    if (m->vectorize.skip_unknown) cJSON_AddBoolToObject(o, "skip_unknown", 1);
    if (m->vectorize.unique) cJSON_AddBoolToObject(o, "unique", 1);
    if (m->vectorize.reverse) cJSON_AddBoolToObject(o, "reverse", 1);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *email_json(const llm_model *m) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "max_bytes", (double)m->email.max_bytes);
    cJSON_AddBoolToObject(o, "keep_subject", m->email.keep_subject != 0);
    if (m->email.keep_headers) cJSON_AddStringToObject(o, "keep_headers", m->email.keep_headers);
    cJSON_AddBoolToObject(o, "decode_mime", m->email.decode_mime != 0);
    cJSON_AddBoolToObject(o, "text_attachments", m->email.text_attachments != 0);
    /* written only when on, so files without it read the same in older builds */
    if (m->email.tag_headers) cJSON_AddBoolToObject(o, "tag_headers", 1);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- save ---- */

static const char *const opt_kinds[] = { "sgd", "adam", "adamw" };
static const char *const schedules[] = { "constant", "step", "cosine" };
static const char *const losses[] = { "binary_crossentropy", "binary_crossentropy_logits",
                                      "sparse_categorical_crossentropy", "sparse_categorical_crossentropy_logits", "mse" };

/* Training state for checkpoints: everything but the tensors. */
static char *checkpoint_json(const llm_model *m) {
    cJSON *o = cJSON_CreateObject(), *opt = cJSON_CreateObject(), *es = cJSON_CreateObject();
    if (!o || !opt || !es) { cJSON_Delete(o); cJSON_Delete(opt); cJSON_Delete(es); return NULL; }
    cJSON_AddItemToObject(o, "optimizer", opt);
    cJSON_AddItemToObject(o, "early_stopping", es);
    cJSON_AddStringToObject(o, "loss", losses[m->loss]);
    cJSON_AddNumberToObject(o, "metrics", (double)m->metrics);
    cJSON_AddNumberToObject(o, "step", (double)m->step);
    cJSON_AddNumberToObject(o, "epochs_done", m->epochs_done);
    /* the seed drives dropout masks: a string keeps all 64 bits */
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)m->seed);
    cJSON_AddStringToObject(o, "seed", seed);
    const llm_optimizer_options *p = &m->opt;
    cJSON_AddStringToObject(opt, "kind", opt_kinds[p->kind]);
    cJSON_AddNumberToObject(opt, "learning_rate", (double)p->learning_rate);
    cJSON_AddNumberToObject(opt, "beta1", (double)p->beta1);
    cJSON_AddNumberToObject(opt, "beta2", (double)p->beta2);
    cJSON_AddNumberToObject(opt, "epsilon", (double)p->epsilon);
    cJSON_AddNumberToObject(opt, "momentum", (double)p->momentum);
    cJSON_AddBoolToObject(opt, "nesterov", p->nesterov != 0);
    cJSON_AddNumberToObject(opt, "weight_decay", (double)p->weight_decay);
    cJSON_AddNumberToObject(opt, "clip_norm", (double)p->clip_norm);
    cJSON_AddStringToObject(opt, "schedule", schedules[p->schedule]);
    cJSON_AddNumberToObject(opt, "warmup_steps", (double)p->warmup_steps);
    cJSON_AddNumberToObject(opt, "decay_steps", (double)p->decay_steps);
    cJSON_AddNumberToObject(opt, "decay_rate", (double)p->decay_rate);
    cJSON_AddNumberToObject(opt, "min_learning_rate", (double)p->min_learning_rate);
    if (isnan(m->es_best_value)) cJSON_AddNullToObject(es, "best_value");
    else cJSON_AddNumberToObject(es, "best_value", m->es_best_value);
    cJSON_AddNumberToObject(es, "best_epoch", m->es_best_epoch);
    cJSON_AddNumberToObject(es, "wait", m->es_wait);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* What one file holds, gathered before the write: tensor and metadata
 * entries, and every buffer they point into (freed after the write). An
 * ensemble gathers each member the way its own file would, under a prefix. */
typedef struct file_parts {
    llm__st_tensor *t;
    int nt, cap_t;
    llm__st_meta *meta;
    int nm, cap_m;
    void **owned;
    int n_owned, cap_owned;
} file_parts;

static int grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return 1;
    int c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *p = llm__realloc(*arr, (size_t)c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

/* Hands p to the parts (freed with them); NULL p is out of memory, and p is
 * freed when it cannot be recorded. */
static void *own(file_parts *fp, void *p) {
    if (!p) return NULL;
    if (!grow((void **)&fp->owned, &fp->cap_owned, fp->n_owned + 1, sizeof *fp->owned)) { llm__free(p); return NULL; }
    fp->owned[fp->n_owned++] = p;
    return p;
}

/* cJSON's strings come from its allocator, the library's own from llm__malloc. */
static char *own_json(file_parts *fp, char *json) {
    if (!json) return NULL;
    char *copy = llm__strdup(json);
    cJSON_free(json);
    return own(fp, copy);
}

static char *own_concat(file_parts *fp, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = llm__malloc(la + lb + 1);
    if (s) { memcpy(s, a, la); memcpy(s + la, b, lb + 1); }
    return own(fp, s);
}

static llm_status add_meta(file_parts *fp, const char *prefix, const char *key, const char *value, const char *fn) {
    const char *k = *prefix ? own_concat(fp, prefix, key) : key;
    if (!k || !value || !grow((void **)&fp->meta, &fp->cap_m, fp->nm + 1, sizeof *fp->meta)) return llm__oom(fn);
    fp->meta[fp->nm++] = (llm__st_meta){ k, value };
    return LLM_OK;
}

static llm__st_tensor *add_tensor(file_parts *fp, const char *prefix, const char *name, const char *fn) {
    const char *n = own_concat(fp, prefix, name);
    if (!n || !grow((void **)&fp->t, &fp->cap_t, fp->nt + 1, sizeof *fp->t)) { llm__oom(fn); return NULL; }
    llm__st_tensor *x = &fp->t[fp->nt++];
    memset(x, 0, sizeof *x);
    x->name = n;
    x->dtype = LLM_DTYPE_F32;
    return x;
}

static void free_parts(file_parts *fp) {
    for (int i = 0; i < fp->n_owned; i++) llm__free(fp->owned[i]);
    llm__free(fp->owned);
    llm__free(fp->t);
    llm__free(fp->meta);
}

/* Gathers one built model: its weights as tensors named tprefix + name and
 * its entries (architecture, pipeline, user metadata, checkpoint state) as
 * keys mprefix + the key its own file has. */
static llm_status gather_model(file_parts *fp, const llm_model *m, int checkpoint, const char *tprefix,
                               const char *mprefix, const char *fn) {
    llm_backend *be = m->be;
    size_t nbytes = (size_t)m->n_scalars * 4;
    float *host = own(fp, llm__malloc(nbytes ? nbytes : 4));
    if (!host) return llm__oom(fn);
    LLM__CHECK(be->ops->copy_d2h(be, host, m->w, nbytes));
    int64_t max_bias = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].p->torch_bias_pair && m->params[i].p->numel > max_bias) max_bias = m->params[i].p->numel;
    float *zeros = max_bias ? own(fp, llm__calloc((size_t)max_bias, 4)) : NULL;
    if (max_bias && !zeros) return llm__oom(fn);
    for (int i = 0; i < m->n_params; i++) {
        const llm__param *p = m->params[i].p;
        const char *pname = m->params[i].name;
        size_t len = strlen(pname);
        /* LSTM: PyTorch has two biases; ours is their sum, saved as bias_ih
         * with a zero bias_hh so that PyTorch code loads it unchanged. */
        int pair = p->torch_bias_pair && len > 5;
        char name[112];
        snprintf(name, sizeof name, pair ? "%.*s.bias_ih" : "%.*s", (int)(pair ? len - 5 : len), pname);
        llm__st_tensor *x = add_tensor(fp, tprefix, name, fn);
        if (!x) return LLM_ERR_OUT_OF_MEMORY;
        x->ndim = p->ndim;
        x->shape[0] = p->shape[0];
        x->shape[1] = p->shape[1];
        x->data = host + p->offset;
        x->bytes = (size_t)p->numel * 4;
        if (pair) {
            llm__st_tensor z = *x;
            snprintf(name, sizeof name, "%.*s.bias_hh", (int)(len - 5), pname);
            llm__st_tensor *y = add_tensor(fp, tprefix, name, fn);
            if (!y) return LLM_ERR_OUT_OF_MEMORY;
            z.name = y->name;
            z.data = zeros;
            *y = z;
        }
    }
    /* checkpoints: optimizer moments and the best weights, flat [n_scalars] */
    static const char *const state_names[3] = { "optimizer.m1", "optimizer.m2", "training.best_weights" };
    for (int k = 0; checkpoint && k < 3; k++) {
        const float *src = k == 0 ? m->m1 : k == 1 ? m->m2 : (m->es_best_epoch >= 0 ? m->es_best_w : NULL);
        if (!src && k == 2) break;
        float *dst = own(fp, llm__malloc(nbytes ? nbytes : 4));
        if (!dst) return llm__oom(fn);
        if (src) LLM__CHECK(be->ops->copy_d2h(be, dst, src, nbytes));
        else memset(dst, 0, nbytes);
        llm__st_tensor *x = add_tensor(fp, tprefix, state_names[k], fn);
        if (!x) return LLM_ERR_OUT_OF_MEMORY;
        x->ndim = 1;
        x->shape[0] = m->n_scalars;
        x->data = dst;
        x->bytes = nbytes;
    }
    LLM__CHECK(add_meta(fp, mprefix, "libllm.architecture", own_json(fp, architecture_json(m)), fn));
    if (m->topo.functional) LLM__CHECK(add_meta(fp, mprefix, "libllm.graph", own_json(fp, llm__topo_record_json(m)), fn));
    if (m->bpe) {
        size_t need;
        LLM__CHECK(llm_bpe_serialize(m->bpe, NULL, 0, &need));
        char *bpe = own(fp, llm__malloc(need + 1));
        if (!bpe) return llm__oom(fn);
        LLM__CHECK(llm_bpe_serialize(m->bpe, bpe, need + 1, &need));
        bpe[need] = '\0';
        LLM__CHECK(add_meta(fp, mprefix, "libllm.bpe", bpe, fn));
    }
    if (m->has_pipeline) {
        if (m->vocab) {
            size_t need;
            LLM__CHECK(llm_vocab_serialize(m->vocab, NULL, 0, &need));
            char *vocab = own(fp, llm__malloc(need + 1));
            if (!vocab) return llm__oom(fn);
            LLM__CHECK(llm_vocab_serialize(m->vocab, vocab, need + 1, &need));
            vocab[need] = '\0';
            LLM__CHECK(add_meta(fp, mprefix, "libllm.vocab", vocab, fn));
        }
        LLM__CHECK(add_meta(fp, mprefix, "libllm.vectorize", own_json(fp, vectorize_json(m)), fn));
        if (m->has_email) LLM__CHECK(add_meta(fp, mprefix, "libllm.email", own_json(fp, email_json(m)), fn));
    }
    for (int i = 0; i < m->n_meta; i++) LLM__CHECK(add_meta(fp, mprefix, m->meta_keys[i], m->meta_values[i], fn));
    if (checkpoint) LLM__CHECK(add_meta(fp, mprefix, "libllm.checkpoint", own_json(fp, checkpoint_json(m)), fn));
    return LLM_OK;
}

static llm_status save_file(const llm_model *m, const char *path, int checkpoint, const char *fn) {
    if (!m || !path) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!path[0]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the path is empty", fn);
    if (m->ensemble) {
        if (checkpoint) return llm__error(LLM_ERR_STATE, "%s: an ensemble has no training state; checkpoint its members", fn);
        if (!m->n_members) return llm__error(LLM_ERR_STATE, "%s: the ensemble has no members (llm_model_ensemble_add)", fn);
    } else {
        if (!m->built) return llm__error(LLM_ERR_STATE, "%s: build or train the model before saving it", fn);
        if (checkpoint && !m->compiled) return llm__error(LLM_ERR_STATE, "%s: a checkpoint needs a compiled model", fn);
    }
    file_parts fp = { 0 };
    char version[32], members[64]; /* borrowed by fp until the write */
    snprintf(version, sizeof version, "%s", llm_version_string());
    llm_status s = add_meta(&fp, "", "format", FORMAT_NAME, fn);
    if (s == LLM_OK) s = add_meta(&fp, "", "libllm.format_version", llm__topo_format_version(m), fn);
    if (s == LLM_OK) s = add_meta(&fp, "", "libllm.library_version", version, fn);
    if (!m->ensemble) {
        if (s == LLM_OK) s = gather_model(&fp, m, checkpoint, "", "", fn);
    } else {
        snprintf(members, sizeof members, "{\"members\":%d,\"combine\":\"mean\"}", m->n_members);
        if (s == LLM_OK) s = add_meta(&fp, "", "libllm.ensemble", members, fn);
        for (int i = 0; s == LLM_OK && i < m->n_members; i++) {
            char tprefix[32], mprefix[40];
            snprintf(tprefix, sizeof tprefix, "members.%d.", i);
            snprintf(mprefix, sizeof mprefix, "libllm.members.%d.", i);
            s = gather_model(&fp, m->members[i], 0, tprefix, mprefix, fn);
        }
        for (int i = 0; s == LLM_OK && i < m->n_meta; i++) s = add_meta(&fp, "", m->meta_keys[i], m->meta_values[i], fn);
    }
    if (s == LLM_OK) s = llm__safetensors_write(path, fp.t, fp.nt, fp.meta, fp.nm);
    free_parts(&fp);
    return s;
}

llm_status llm_model_save(const llm_model *m, const char *path) {
    return save_file(m, path, 0, "llm_model_save");
}

llm_status llm_model_save_checkpoint(const llm_model *m, const char *path) {
    return save_file(m, path, 1, "llm_model_save_checkpoint");
}

llm_status llm__model_contents_get(const llm_model *m, llm__model_contents *out, const char *fn) {
    memset(out, 0, sizeof *out);
    if (m->ensemble) return llm__error(LLM_ERR_STATE, "%s: an ensemble has no contents of its own", fn);
    if (!m->built) return llm__error(LLM_ERR_STATE, "%s: build or train the model first", fn);
    file_parts *fp = llm__calloc(1, sizeof *fp);
    if (!fp) return llm__oom(fn);
    out->owner = fp;
    LLM__CHECK(gather_model(fp, m, 0, "", "", fn));
    out->tensors = fp->t;
    out->n_tensors = fp->nt;
    out->meta = fp->meta;
    out->n_meta = fp->nm;
    return LLM_OK;
}

void llm__model_contents_free(llm__model_contents *c) {
    if (!c || !c->owner) return;
    free_parts(c->owner);
    llm__free(c->owner);
    memset(c, 0, sizeof *c);
}

/* ---- load ---- */

#define BAD(...) llm__error(LLM_ERR_FORMAT, __VA_ARGS__)

static llm_status parse_json(const char *text, const char *what, cJSON **out) {
    if (!text) return BAD("llm_model_load: the file has no %s", what);
    size_t n = strlen(text);
    /* nesting: the architecture needs depth 5; refuse anything deeper
     * before cJSON recurses into it */
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_str) { if (c == '\\') i++; else if (c == '"') in_str = 0; continue; }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') { if (++depth > 8) return BAD("llm_model_load: %s is nested too deeply", what); }
        else if (c == '}' || c == ']') depth--;
    }
    *out = cJSON_ParseWithLength(text, n);
    if (!*out) return BAD("llm_model_load: %s is not valid JSON", what);
    return LLM_OK;
}

static llm_status build_from_architecture(llm_model *m, const char *text, const char *graph) {
    cJSON *root;
    LLM__CHECK(parse_json(text, "architecture", &root));
    llm_status s = LLM_OK;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(input, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(input, "shape");
    if (!cJSON_IsArray(layers) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape))
        s = BAD("llm_model_load: the architecture lacks input or layers");
    llm_dtype dt = LLM_DTYPE_F32;
    if (s == LLM_OK) {
        if (strcmp(dtype->valuestring, "int32") == 0) dt = LLM_DTYPE_I32;
        else if (strcmp(dtype->valuestring, "float32") != 0) s = BAD("llm_model_load: unknown input dtype");
    }
    int64_t dims[LLM_MAX_DIMS];
    int nd = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (s != LLM_OK) break;
        if (nd == LLM_MAX_DIMS - 1 || !cJSON_IsNumber(d) || !(d->valuedouble >= 1 && d->valuedouble <= (double)INT32_MAX) ||
            d->valuedouble != floor(d->valuedouble))
            s = BAD("llm_model_load: invalid input shape");
        else
            dims[nd++] = (int64_t)d->valuedouble;
    }
    if (s == LLM_OK && nd == 0) s = BAD("llm_model_load: empty input shape");
    int count = 0;
    const cJSON *l;
    llm_layer **pending = NULL; /* a functional model's layers wait for its graph record */
    if (s == LLM_OK && graph && !(pending = llm__calloc(1024, sizeof *pending))) s = llm__oom("llm_model_load");
    cJSON_ArrayForEach(l, layers) {
        if (s != LLM_OK) break;
        if (++count > 1024) { s = BAD("llm_model_load: too many layers"); break; }
        llm_layer *layer = llm__layer_from_json(l, 0);
        if (!layer) { s = LLM_ERR_FORMAT; break; }
        llm_status ls = llm_layer_status(layer);
        if (ls != LLM_OK) {
            s = ls == LLM_ERR_OUT_OF_MEMORY ? llm__oom("llm_model_load")
                                            : BAD("llm_model_load: invalid layer: %s", llm_layer_error(layer));
            llm_layer_free(layer);
            break;
        }
        if (pending) pending[count - 1] = layer;
        else s = llm_model_add(m, layer);
    }
    if (s == LLM_OK && count == 0) s = BAD("llm_model_load: the architecture has no layers");
    if (pending) {
        int n = count - (s == LLM_OK ? 0 : 1);
        if (s == LLM_OK) s = llm__topo_record_load(m, graph, pending, n);
        else for (int i = 0; i < n; i++) llm_layer_free(pending[i]);
        llm__free(pending);
    }
    if (s == LLM_OK) {
        s = graph ? llm_model_build(m, dt, 0, NULL) : llm_model_build(m, dt, nd, dims);
        if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY)
            s = BAD("llm_model_load: the architecture does not fit together: %s", llm_last_error());
    }
    cJSON_Delete(root);
    return s;
}

/* A model's part of a file: the whole file, or one member of an ensemble,
 * whose tensor names and metadata keys carry a prefix. */
typedef struct file_view {
    const llm__safetensors *f;
    const char *tprefix, *mprefix;
} file_view;

static const char *view_meta(const file_view *v, const char *key) {
    char k[160];
    snprintf(k, sizeof k, "%s%s", v->mprefix, key);
    return llm__safetensors_meta(v->f, k);
}

static const llm__st_tensor *view_find(const file_view *v, const char *name) {
    char k[LLM__ST_MAX_NAME + 64];
    snprintf(k, sizeof k, "%s%s", v->tprefix, name);
    return llm__safetensors_find(v->f, k);
}

/* The tensors of the file that belong to the view, and their bytes. */
static int view_tensors(const file_view *v, size_t *bytes) {
    size_t n = strlen(v->tprefix), b = 0;
    int count = 0;
    for (int i = 0; i < llm__safetensors_count(v->f); i++) {
        const llm__st_tensor *t = llm__safetensors_tensor(v->f, i);
        if (strncmp(t->name, v->tprefix, n) == 0) { count++; b += t->bytes; }
    }
    if (bytes) *bytes = b;
    return count;
}

static llm_status load_weights(llm_model *m, const file_view *v) {
    float *host = llm__calloc((size_t)(m->n_scalars ? m->n_scalars : 1), 4);
    if (!host) return llm__oom("llm_model_load");
    llm_status s = LLM_OK;
    int used = 0;
    for (int i = 0; s == LLM_OK && i < m->n_params; i++) {
        const llm__param *p = m->params[i].p;
        const char *name = m->params[i].name;
        float *dst = host + p->offset;
        const llm__st_tensor *t = view_find(v, name);
        int lstm_bias = p->torch_bias_pair && strlen(name) > 5;
        const llm__st_tensor *parts[2] = { t, NULL };
        char alt[2][112];
        if (!t && lstm_bias) {
            size_t len = strlen(name) - 5;
            snprintf(alt[0], sizeof alt[0], "%.*s.bias_ih", (int)len, name);
            snprintf(alt[1], sizeof alt[1], "%.*s.bias_hh", (int)len, name);
            parts[0] = view_find(v, alt[0]);
            parts[1] = view_find(v, alt[1]);
            if (!parts[0] || !parts[1]) { s = BAD("llm_model_load: missing tensor %s (or %s and %s)", name, alt[0], alt[1]); break; }
        } else if (!t) {
            s = BAD("llm_model_load: missing tensor %s", name);
            break;
        }
        for (int k = 0; k < 2 && parts[k]; k++) {
            const llm__st_tensor *x = parts[k];
            int ok = x->dtype == LLM_DTYPE_F32 && x->ndim == p->ndim && x->shape[0] == p->shape[0] &&
                     (p->ndim < 2 || x->shape[1] == p->shape[1]) && x->bytes == (size_t)p->numel * 4;
            if (!ok) { s = BAD("llm_model_load: tensor %s has the wrong dtype or shape for the architecture", x->name); break; }
            const void *data; /* read only now that its name, dtype and shape fit */
            if ((s = llm__safetensors_load(v->f, x, &data)) != LLM_OK) break;
            const float *src = data;
            for (int64_t j = 0; j < p->numel; j++) {
                if (!isfinite(src[j])) { s = BAD("llm_model_load: tensor %s holds NaN or infinity", x->name); break; }
                dst[j] = k ? dst[j] + src[j] : src[j];
                if (!isfinite(dst[j])) { s = BAD("llm_model_load: %s overflows to infinity", name); break; }
            }
            used++;
        }
    }
    /* checkpoint state: only a whole file is a checkpoint */
    if (!*v->tprefix && view_meta(v, "libllm.checkpoint"))
        for (int i = 0; i < llm__safetensors_count(v->f); i++) {
            const char *name = llm__safetensors_tensor(v->f, i)->name;
            used += strncmp(name, "optimizer.", 10) == 0 || strncmp(name, "training.", 9) == 0;
        }
    int have = view_tensors(v, NULL);
    if (s == LLM_OK && used != have)
        s = BAD("llm_model_load: the file has %d tensors the architecture does not use", have - used);
    if (s == LLM_OK) s = m->be->ops->copy_h2d(m->be, m->w, host, (size_t)m->n_scalars * 4);
    llm__free(host);
    return s;
}

static int side_of(const cJSON *o, const char *key, llm_seq_side *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) return 0;
    if (strcmp(v->valuestring, "pre") == 0) { *out = LLM_SEQ_PRE; return 1; }
    if (strcmp(v->valuestring, "post") == 0) { *out = LLM_SEQ_POST; return 1; }
    return 0;
}

static llm_status load_pipeline(llm_model *m, const file_view *v) {
    const char *bpe_text = view_meta(v, "libllm.bpe");
    if (bpe_text) {
        llm_bpe *bpe = NULL;
        llm_status s = llm_bpe_deserialize(&bpe, bpe_text, strlen(bpe_text));
        if (s == LLM_OK) s = llm_model_set_tokenizer(m, bpe);
        llm_bpe_free(bpe);
        if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY) return BAD("llm_model_load: bad tokenizer: %s", llm_last_error());
        if (s != LLM_OK) return s;
    }
    const char *vocab_text = view_meta(v, "libllm.vocab");
    if (!view_meta(v, "libllm.vectorize"))
        return vocab_text ? BAD("llm_model_load: a vocabulary without vectorizer settings") : LLM_OK;
    if (!vocab_text && !bpe_text) return BAD("llm_model_load: a text pipeline without a vocabulary or tokenizer");
    llm_vocab *vocab = NULL;
    cJSON *vj = NULL, *ej = NULL;
    llm_status s = vocab_text ? llm_vocab_deserialize(&vocab, vocab_text, strlen(vocab_text)) : LLM_OK;
    if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY) s = BAD("llm_model_load: bad vocabulary: %s", llm_last_error());
    if (s == LLM_OK) s = parse_json(view_meta(v, "libllm.vectorize"), "vectorizer settings", &vj);
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    int64_t seq = 0;
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(vj, "truncation");
    int middle = cJSON_IsString(tr) && strcmp(tr->valuestring, "middle") == 0;
    if (s == LLM_OK && (!llm__json_int(vj, "seq_len", 1, 1 << 24, &seq) || !side_of(vj, "padding", &vo.padding) ||
                        (!middle && !side_of(vj, "truncation", &vo.truncation))))
        s = BAD("llm_model_load: invalid vectorizer settings");
    if (s == LLM_OK) vo.seq_len = (int32_t)seq;
    if (middle) vo.truncation = LLM_SEQ_MIDDLE;
    int64_t buckets = 0;
    if (s == LLM_OK && cJSON_GetObjectItemCaseSensitive(vj, "bigram_buckets") && !llm__json_int(vj, "bigram_buckets", 1, 1 << 24, &buckets))
        s = BAD("llm_model_load: invalid vectorizer settings");
    vo.bigram_buckets = (int32_t)buckets;
    if (s == LLM_OK && cJSON_GetObjectItemCaseSensitive(vj, "char_ngram_buckets")) {
        int64_t cb = 0, lo = 0, hi = 0;
        if (!llm__json_int(vj, "char_ngram_buckets", 1, 1 << 24, &cb) || !llm__json_int(vj, "char_ngram_min", 1, LLM__CHAR_NGRAM_MAX, &lo) ||
            !llm__json_int(vj, "char_ngram_max", lo, LLM__CHAR_NGRAM_MAX, &hi))
            s = BAD("llm_model_load: invalid vectorizer settings");
        vo.char_ngram_buckets = (int32_t)cb;
        vo.char_ngram_min = (int32_t)lo;
        vo.char_ngram_max = (int32_t)hi;
    }
    if (s == LLM_OK && ((cJSON_GetObjectItemCaseSensitive(vj, "skip_unknown") && !llm__json_bool(vj, "skip_unknown", &vo.skip_unknown)) ||
                        (cJSON_GetObjectItemCaseSensitive(vj, "unique") && !llm__json_bool(vj, "unique", &vo.unique)) ||
                        (cJSON_GetObjectItemCaseSensitive(vj, "reverse") && !llm__json_bool(vj, "reverse", &vo.reverse))))
        s = BAD("llm_model_load: invalid vectorizer settings");
    llm_email_options eo;
    llm_email_options_init(&eo);
    const char *email = view_meta(v, "libllm.email");
    if (s == LLM_OK && email) {
        s = parse_json(email, "e-mail settings", &ej);
        int64_t max_bytes = 0;
        int a = 0, b = 0, c = 0;
        if (s == LLM_OK && (!llm__json_int(ej, "max_bytes", 1, (int64_t)1 << 40, &max_bytes) || !llm__json_bool(ej, "keep_subject", &a) ||
                            !llm__json_bool(ej, "decode_mime", &b) || !llm__json_bool(ej, "text_attachments", &c)))
            s = BAD("llm_model_load: invalid e-mail settings");
        if (s == LLM_OK) {
            eo.max_bytes = (size_t)max_bytes;
            eo.keep_subject = a;
            eo.decode_mime = b;
            eo.text_attachments = c;
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(ej, "keep_headers");
            if (cJSON_IsString(h)) eo.keep_headers = h->valuestring;
            else if (h) s = BAD("llm_model_load: invalid e-mail settings");
            int tag = 0;
            if (cJSON_GetObjectItemCaseSensitive(ej, "tag_headers") && !llm__json_bool(ej, "tag_headers", &tag))
                s = BAD("llm_model_load: invalid e-mail settings");
            eo.tag_headers = tag;
        }
    }
    if (s == LLM_OK) {
        s = llm_model_set_text_pipeline(m, vocab, &vo, email ? &eo : NULL);
        if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY)
            s = BAD("llm_model_load: the text pipeline does not fit the model: %s", llm_last_error());
    }
    llm_vocab_free(vocab);
    cJSON_Delete(vj);
    cJSON_Delete(ej);
    return s;
}

static int name_index(const cJSON *o, const char *key, const char *const *names, int n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) return -1;
    for (int i = 0; i < n; i++) if (strcmp(v->valuestring, names[i]) == 0) return i;
    return -1;
}

static llm_status upload_state(llm_model *m, const llm__safetensors *f, const char *name, float **dst, int required) {
    const llm__st_tensor *t = llm__safetensors_find(f, name);
    if (!t) return required ? BAD("llm_model_load_checkpoint: missing tensor %s", name) : LLM_OK;
    if (t->dtype != LLM_DTYPE_F32 || t->ndim != 1 || t->shape[0] != m->n_scalars)
        return BAD("llm_model_load_checkpoint: tensor %s has the wrong dtype or shape", name);
    const void *data;
    LLM__CHECK(llm__safetensors_load(f, t, &data));
    const float *src = data;
    for (int64_t i = 0; i < m->n_scalars; i++)
        if (!isfinite(src[i])) return BAD("llm_model_load_checkpoint: tensor %s holds NaN or infinity", name);
    size_t bytes = (size_t)m->n_scalars * 4;
    if (!*dst) LLM__CHECK(m->be->ops->alloc(m->be, bytes ? bytes : 4, (void **)dst));
    return m->be->ops->copy_h2d(m->be, *dst, src, bytes);
}

/* Compiles a loaded model from its checkpoint state and restores the optimizer. */
static llm_status load_training_state(llm_model *m, const llm__safetensors *f) {
    cJSON *root;
    LLM__CHECK(parse_json(llm__safetensors_meta(f, "libllm.checkpoint"), "checkpoint state", &root));
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(root, "optimizer");
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(root, "early_stopping");
    llm_optimizer_options o;
    int kind = name_index(opt, "kind", opt_kinds, 3), sched = name_index(opt, "schedule", schedules, 3);
    int loss_kind = name_index(root, "loss", losses, 5), nesterov = 0;
    int64_t metrics = 0, step = 0, epochs = 0, warm = 0, decay = 0, best_epoch = 0, wait = 0;
    llm_status s = LLM_OK;
    if (kind < 0 || sched < 0 || loss_kind < 0 || !cJSON_IsObject(es)) s = BAD("llm_model_load_checkpoint: invalid training state");
    if (s == LLM_OK) {
        llm_optimizer_options_init(&o, (llm_optimizer_kind)kind);
        o.schedule = (llm_schedule_kind)sched;
        if (!llm__json_float(opt, "learning_rate", &o.learning_rate) || !llm__json_float(opt, "beta1", &o.beta1) ||
            !llm__json_float(opt, "beta2", &o.beta2) || !llm__json_float(opt, "epsilon", &o.epsilon) ||
            !llm__json_float(opt, "momentum", &o.momentum) || !llm__json_bool(opt, "nesterov", &nesterov) ||
            !llm__json_float(opt, "weight_decay", &o.weight_decay) || !llm__json_float(opt, "clip_norm", &o.clip_norm) ||
            !llm__json_int(opt, "warmup_steps", 0, INT64_C(1) << 52, &warm) || !llm__json_int(opt, "decay_steps", 0, INT64_C(1) << 52, &decay) ||
            !llm__json_float(opt, "decay_rate", &o.decay_rate) || !llm__json_float(opt, "min_learning_rate", &o.min_learning_rate) ||
            !llm__json_int(root, "metrics", 0, LLM_METRIC_ACCURACY, &metrics) || !llm__json_int(root, "step", 0, INT64_C(1) << 52, &step) ||
            !llm__json_int(root, "epochs_done", 0, INT32_MAX, &epochs) || !llm__json_int(es, "best_epoch", -1, INT32_MAX, &best_epoch) ||
            !llm__json_int(es, "wait", 0, INT32_MAX, &wait))
            s = BAD("llm_model_load_checkpoint: invalid training state");
        o.nesterov = nesterov;
        o.warmup_steps = warm;
        o.decay_steps = decay;
    }
    llm_optimizer *optimizer = NULL;
    if (s == LLM_OK && (s = llm_optimizer_create(&optimizer, &o)) != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY)
        s = BAD("llm_model_load_checkpoint: invalid optimizer settings: %s", llm_last_error());
    if (s == LLM_OK) s = llm_model_compile(m, (llm_loss)loss_kind, optimizer, (unsigned)metrics);
    llm_optimizer_free(optimizer);
    if (s == LLM_OK) s = upload_state(m, f, "optimizer.m1", &m->m1, 1);
    if (s == LLM_OK) s = upload_state(m, f, "optimizer.m2", &m->m2, 1);
    if (s == LLM_OK && best_epoch >= 0) s = upload_state(m, f, "training.best_weights", &m->es_best_w, 1);
    if (s == LLM_OK) {
        const cJSON *bv = cJSON_GetObjectItemCaseSensitive(es, "best_value");
        m->es_best_value = cJSON_IsNumber(bv) ? bv->valuedouble : NAN;
        m->es_best_epoch = (int)best_epoch;
        m->es_wait = (int)wait;
        m->step = step;
        m->epochs_done = (int)epochs;
        const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
        char *end = NULL;
        unsigned long long v = cJSON_IsString(seed) ? strtoull(seed->valuestring, &end, 10) : 0;
        if (!cJSON_IsString(seed) || !end || *end || !seed->valuestring[0]) s = BAD("llm_model_load_checkpoint: invalid seed");
        else m->seed = (uint64_t)v;
    }
    cJSON_Delete(root);
    return s;
}

/* User metadata: the view's keys that are not the library's own. */
static llm_status load_user_metadata(llm_model *m, const file_view *v, const char *path, const char *fn) {
    size_t n = strlen(v->mprefix);
    for (int i = 0; i < llm__safetensors_meta_count(v->f); i++) {
        const llm__st_meta *kv = llm__safetensors_meta_at(v->f, i);
        if (strncmp(kv->key, v->mprefix, n) != 0) continue;
        const char *k = kv->key + n;
        if (strcmp(k, "format") == 0 || strncmp(k, "libllm.", 7) == 0) continue;
        llm_status s = llm_model_set_metadata(m, k, kv->value);
        if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY) s = BAD("%s: invalid metadata key in %s: %s", fn, path, llm_last_error());
        if (s != LLM_OK) return s;
    }
    return LLM_OK;
}

/* Rebuilds the model a view holds into the empty model m. */
static llm_status load_view(llm_model *m, const file_view *v, int checkpoint, const char *path, const char *fn) {
    /* a few bytes of architecture must not make us allocate gigabytes:
     * the weights have to be in the file */
    size_t bytes;
    view_tensors(v, &bytes);
    m->param_bytes_limit = bytes ? bytes : 1;
    llm_status s = build_from_architecture(m, view_meta(v, "libllm.architecture"), view_meta(v, "libllm.graph"));
    m->param_bytes_limit = 0;
    if (s == LLM_OK) s = load_weights(m, v);
    if (s == LLM_OK) s = load_pipeline(m, v);
    if (s == LLM_OK && checkpoint) {
        if (!view_meta(v, "libllm.checkpoint"))
            s = BAD("%s: %s is a model file, not a checkpoint", fn, path);
        else
            s = load_training_state(m, v->f);
    }
    if (s == LLM_OK) s = load_user_metadata(m, v, path, fn);
    return s;
}

/* An ensemble file: {"members": N, "combine": "mean"}, then each member as
 * its own file would hold it, under "members.<i>." (tensors) and
 * "libllm.members.<i>." (metadata). */
static llm_status load_ensemble(llm_model *m, const llm__safetensors *f, const char *path, const char *fn) {
    cJSON *root;
    LLM__CHECK(parse_json(llm__safetensors_meta(f, "libllm.ensemble"), "ensemble description", &root));
    int64_t n = 0;
    const cJSON *combine = cJSON_GetObjectItemCaseSensitive(root, "combine");
    llm_status s = LLM_OK;
    if (!llm__json_int(root, "members", 1, LLM_ENSEMBLE_MAX_MEMBERS, &n) || !cJSON_IsString(combine) ||
        strcmp(combine->valuestring, "mean") != 0)
        s = BAD("%s: %s: invalid ensemble description", fn, path);
    cJSON_Delete(root);
    int owned = 0;
    for (int i = 0; s == LLM_OK && i < (int)n; i++) {
        char tprefix[32], mprefix[40];
        snprintf(tprefix, sizeof tprefix, "members.%d.", i);
        snprintf(mprefix, sizeof mprefix, "libllm.members.%d.", i);
        file_view v = { f, tprefix, mprefix };
        owned += view_tensors(&v, NULL);
        llm_model *member = NULL;
        s = llm_model_sequential(&member, m->be);
        if (s == LLM_OK) s = load_view(member, &v, 0, path, fn);
        if (s == LLM_OK) s = llm_model_ensemble_add(m, member);
        if (s != LLM_OK) {
            llm_model_free(member);
            if (s != LLM_ERR_OUT_OF_MEMORY) s = BAD("%s: %s: ensemble member %d: %s", fn, path, i, llm_last_error());
        }
    }
    if (s == LLM_OK && owned != llm__safetensors_count(f))
        s = BAD("%s: %s has %d tensors that belong to no ensemble member", fn, path, llm__safetensors_count(f) - owned);
    return s;
}

static llm_status load_file(llm_model **out, llm_backend *be, const char *path, int checkpoint, const char *fn) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!be || !path) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, be ? "path" : "backend");
    if (!path[0]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: the path is empty", fn);
    /* the header, metadata and tensor table first: a tensor's data is read
       only once the architecture has asked for it by name, dtype and shape */
    llm__safetensors *f;
    LLM__CHECK(llm__safetensors_open_lazy(&f, path, MAX_MODEL_FILE));
    llm_model *m = NULL;
    llm_status s = LLM_OK;
    const char *format = llm__safetensors_meta(f, "format");
    const char *version = llm__safetensors_meta(f, "libllm.format_version");
    int ensemble = llm__safetensors_meta(f, "libllm.ensemble") != NULL;
    if (!format || strcmp(format, FORMAT_NAME) != 0 || !version)
        s = BAD("%s: %s is a safetensors file but not a libllm model (no libllm metadata)", fn, path);
    else if (strcmp(version, FORMAT_VERSION) != 0 && strcmp(version, "2") != 0)
        s = BAD("%s: %s has model format version %.16s; this library reads versions 1 and 2", fn, path, version);
    else if (ensemble && checkpoint)
        s = BAD("%s: %s is an ensemble, not a checkpoint", fn, path);
    if (s == LLM_OK) s = ensemble ? llm_model_ensemble(&m, be) : llm_model_sequential(&m, be);
    if (s == LLM_OK && ensemble) {
        s = load_ensemble(m, f, path, fn);
        if (s == LLM_OK) s = load_user_metadata(m, &(file_view){ f, "", "" }, path, fn);
    } else if (s == LLM_OK) {
        s = load_view(m, &(file_view){ f, "", "" }, checkpoint, path, fn);
    }
    llm__safetensors_close(f);
    if (s != LLM_OK) { llm_model_free(m); return s; }
    *out = m;
    return LLM_OK;
}

llm_status llm_model_load(llm_model **out, llm_backend *be, const char *path) {
    return load_file(out, be, path, 0, "llm_model_load");
}

llm_status llm_model_load_checkpoint(llm_model **out, llm_backend *be, const char *path) {
    return load_file(out, be, path, 1, "llm_model_load_checkpoint");
}
