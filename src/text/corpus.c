/* The corpus: labelled texts, loaded from a directory of class folders (like
 * Keras text_dataset_from_directory) or added one by one, with a seeded
 * shuffle, a stratified split and conversion to id matrices. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "core/rng.h"
#include "text/text_internal.h"
#include "llm/crossval.h"

typedef struct corpus_item {
    char *text;
    size_t len;
    int32_t label;
    char *source; /* NULL for added texts */
} corpus_item;

struct llm_text_corpus {
    int32_t num_classes;
    char **class_names;
    corpus_item *items;
    int64_t count;
    int64_t cap;
    int64_t skipped;
};

void llm_corpus_options_init(llm_corpus_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->format = LLM_CORPUS_EMAIL;
    opts->max_file_bytes = LLM_EMAIL_DEFAULT_MAX_BYTES;
    opts->skip_unreadable = 0;
    opts->email = NULL;
}

void llm_text_corpus_free(llm_text_corpus *c) {
    if (!c) return;
    for (int64_t i = 0; i < c->count; i++) {
        llm__free(c->items[i].text);
        llm__free(c->items[i].source);
    }
    llm__free(c->items);
    if (c->class_names)
        for (int32_t k = 0; k < c->num_classes; k++) llm__free(c->class_names[k]);
    llm__free(c->class_names);
    llm__free(c);
}

static llm_text_corpus *corpus_new(int32_t num_classes, const char *const *names) {
    llm_text_corpus *c = llm__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->class_names = llm__calloc((size_t)num_classes, sizeof *c->class_names);
    if (!c->class_names) {
        llm__free(c);
        return NULL;
    }
    c->num_classes = num_classes;
    for (int32_t k = 0; k < num_classes; k++) {
        c->class_names[k] = llm__strdup(names[k]);
        if (!c->class_names[k]) {
            llm_text_corpus_free(c);
            return NULL;
        }
    }
    return c;
}

/* Takes ownership of text and source (freed here on failure). */
static int corpus_push(llm_text_corpus *c, char *text, size_t len, int32_t label, char *source) {
    if (c->count == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 64;
        corpus_item *it = llm__realloc(c->items, (size_t)cap * sizeof *it);
        if (!it) {
            llm__free(text);
            llm__free(source);
            return 0;
        }
        c->items = it;
        c->cap = cap;
    }
    c->items[c->count++] = (corpus_item){text, len, label, source};
    return 1;
}

llm_status llm_text_corpus_create(llm_text_corpus **out, const char *const *class_names,
                                  int32_t num_classes) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!class_names) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: class_names is NULL", __func__);
    if (num_classes < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: num_classes is %d; it must be >= 1",
                          __func__, (int)num_classes);
    for (int32_t k = 0; k < num_classes; k++)
        if (!class_names[k])
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: class_names[%d] is NULL", __func__,
                              (int)k);
    llm_text_corpus *c = corpus_new(num_classes, class_names);
    if (!c) return llm__oom(__func__);
    *out = c;
    return LLM_OK;
}

llm_status llm_text_corpus_add(llm_text_corpus *c, const char *text, size_t len, int32_t label) {
    if (!c) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: corpus is NULL", __func__);
    if (!text && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but len is %zu", __func__,
                          len);
    if (label < 0 || label >= c->num_classes)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: label %d is outside [0, %d)", __func__,
                          (int)label, (int)c->num_classes);
    if (len == SIZE_MAX) return llm__error(LLM_ERR_OVERFLOW, "%s: len is too large", __func__);
    char *copy = llm__malloc(len + 1);
    if (!copy) return llm__oom(__func__);
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    if (!corpus_push(c, copy, len, label, NULL)) return llm__oom(__func__);
    return LLM_OK;
}

/* ------------------------------------------------------------ loading */

typedef struct name_list {
    char **names;
    size_t count;
    size_t cap;
} name_list;

static void names_free(name_list *l) {
    for (size_t i = 0; i < l->count; i++) llm__free(l->names[i]);
    llm__free(l->names);
    l->names = NULL;
    l->count = l->cap = 0;
}

static int names_push(name_list *l, const char *name) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **n = llm__realloc(l->names, cap * sizeof *n);
        if (!n) return 0;
        l->names = n;
        l->cap = cap;
    }
    char *d = llm__strdup(name);
    if (!d) return 0;
    l->names[l->count++] = d;
    return 1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] == '/';
    char *p = llm__malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    if (!slash) p[la++] = '/';
    memcpy(p + la, b, lb + 1);
    return p;
}

enum { ENTRY_DIRS = 0, ENTRY_FILES = 1 };

/* Lists the entries of dir, sorted. ENTRY_DIRS: sub-folders. ENTRY_FILES:
 * everything that is not a folder (regular or not; the reader decides). */
static llm_status list_dir(const char *dir, int kind, name_list *out, const char *fn) {
    DIR *d = opendir(dir);
    if (!d)
        return llm__error(LLM_ERR_IO, "%s: cannot open directory '%s': %s", fn, dir, strerror(errno));
    struct dirent *e;
    llm_status s = LLM_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", and hidden files such as .DS_Store */
        char *p = path_join(dir, e->d_name);
        if (!p) {
            s = llm__oom(fn);
            break;
        }
        struct stat st;
        int is_dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        llm__free(p);
        if (is_dir != (kind == ENTRY_DIRS)) continue;
        if (!names_push(out, e->d_name)) {
            s = llm__oom(fn);
            break;
        }
    }
    closedir(d);
    if (s != LLM_OK) return s;
    if (out->count > 1) qsort(out->names, out->count, sizeof *out->names, by_name);
    return LLM_OK;
}

static llm_status corpus_options_resolve(llm_corpus_options *dst, const llm_corpus_options *src,
                                         llm_email_options *email, const char *fn) {
    llm_corpus_options_init(dst);
    LLM__CHECK(LLM__OPTIONS_MERGE(dst, src, fn));
    if (dst->format != LLM_CORPUS_EMAIL && dst->format != LLM_CORPUS_RAW)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: corpus options format is %d; use LLM_CORPUS_EMAIL or LLM_CORPUS_RAW",
                          fn, (int)dst->format);
    if (dst->max_file_bytes == 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: corpus options max_file_bytes is 0; it must be >= 1", fn);
    if (dst->skip_unreadable != 0 && dst->skip_unreadable != 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: corpus options skip_unreadable is %d; use 0 or 1", fn,
                          dst->skip_unreadable);
    return llm__email_options_resolve(email, dst->email, fn);
}

/* Reads one file into the corpus. LLM_ERR_IO only for unreadable files. */
static llm_status load_file(llm_text_corpus *c, const char *path, int32_t label,
                            const llm_corpus_options *o, const llm_email_options *email,
                            const char *fn) {
    llm__buf raw = {0}, text = {0};
    struct stat st;
    llm_status s;
    if (stat(path, &st) != 0)
        s = llm__error(LLM_ERR_IO, "%s: cannot read '%s': %s", fn, path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = llm__error(LLM_ERR_IO, "%s: '%s' is not a regular file", fn, path);
    else
        s = llm__read_file_capped(path, o->max_file_bytes, &raw, fn);
    if (s == LLM_OK && o->format == LLM_CORPUS_EMAIL) {
        s = llm__email_parse(raw.data, raw.len, email, &text, fn);
        llm__buf_free(&raw);
    } else {
        text = raw;
    }
    if (s != LLM_OK) {
        llm__buf_free(&text);
        return s;
    }
    size_t len;
    char *t = llm__buf_take(&text, &len);
    char *src = llm__strdup(path);
    if (!t || !src) {
        llm__free(t);
        llm__free(src);
        return llm__oom(fn);
    }
    if (!corpus_push(c, t, len, label, src)) return llm__oom(fn);
    return LLM_OK;
}

llm_status llm_text_corpus_from_directory(llm_text_corpus **out, const char *dir,
                                          const llm_corpus_options *opts) {
    static const char *const fn = "llm_text_corpus_from_directory";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!dir) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: dir is NULL", fn);
    llm_corpus_options o;
    llm_email_options email;
    LLM__CHECK(corpus_options_resolve(&o, opts, &email, fn));
    struct stat st;
    if (stat(dir, &st) != 0)
        return llm__error(LLM_ERR_IO, "%s: cannot open directory '%s': %s", fn, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return llm__error(LLM_ERR_IO, "%s: '%s' is not a directory", fn, dir);

    name_list classes = {0};
    LLM__CHECK(list_dir(dir, ENTRY_DIRS, &classes, fn));
    if (classes.count < 2) {
        llm_status s = llm__error(LLM_ERR_INVALID_ARGUMENT,
                                  "%s: '%s' has %zu class sub-folder%s; at least 2 are needed "
                                  "(one folder per class, e.g. ham/ and spam/)",
                                  fn, dir, classes.count, classes.count == 1 ? "" : "s");
        names_free(&classes);
        return s;
    }
    if (classes.count > INT32_MAX) {
        names_free(&classes);
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: too many class folders", fn);
    }
    llm_text_corpus *c = corpus_new((int32_t)classes.count, (const char *const *)classes.names);
    if (!c) {
        names_free(&classes);
        return llm__oom(fn);
    }
    llm_status s = LLM_OK;
    for (size_t k = 0; k < classes.count && s == LLM_OK; k++) {
        char *cdir = path_join(dir, classes.names[k]);
        if (!cdir) {
            s = llm__oom(fn);
            break;
        }
        name_list files = {0};
        s = list_dir(cdir, ENTRY_FILES, &files, fn);
        int64_t before = c->count;
        for (size_t i = 0; i < files.count && s == LLM_OK; i++) {
            char *path = path_join(cdir, files.names[i]);
            if (!path) {
                s = llm__oom(fn);
                break;
            }
            s = load_file(c, path, (int32_t)k, &o, &email, fn);
            if (s == LLM_ERR_IO && o.skip_unreadable) {
                c->skipped++;
                s = LLM_OK;
            }
            llm__free(path);
        }
        if (s == LLM_OK && c->count == before)
            s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: class folder '%s' holds no %sfile", fn,
                           cdir, files.count > 0 ? "readable " : "");
        names_free(&files);
        llm__free(cdir);
    }
    names_free(&classes);
    if (s != LLM_OK) {
        llm_text_corpus_free(c);
        return s;
    }
    *out = c;
    return LLM_OK;
}

/* ------------------------------------------------------------ queries */

#define CHECK_CORPUS(c) \
    do { if (!(c)) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: corpus is NULL", __func__); } while (0)
#define CHECK_OUT(p) \
    do { if (!(p)) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %s is NULL", __func__, #p); } while (0)

static llm_status check_index(const llm_text_corpus *c, int64_t i, const char *fn) {
    if (i < 0 || i >= c->count)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: index %lld is outside [0, %lld)", fn,
                          (long long)i, (long long)c->count);
    return LLM_OK;
}

static llm_status check_label(const llm_text_corpus *c, int32_t label, const char *fn) {
    if (label < 0 || label >= c->num_classes)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: label %d is outside [0, %d)", fn,
                          (int)label, (int)c->num_classes);
    return LLM_OK;
}

llm_status llm_text_corpus_count(const llm_text_corpus *c, int64_t *count) {
    CHECK_OUT(count);
    *count = 0;
    CHECK_CORPUS(c);
    *count = c->count;
    return LLM_OK;
}

llm_status llm_text_corpus_num_classes(const llm_text_corpus *c, int32_t *num_classes) {
    CHECK_OUT(num_classes);
    *num_classes = 0;
    CHECK_CORPUS(c);
    *num_classes = c->num_classes;
    return LLM_OK;
}

llm_status llm_text_corpus_class_count(const llm_text_corpus *c, int32_t label, int64_t *count) {
    CHECK_OUT(count);
    *count = 0;
    CHECK_CORPUS(c);
    LLM__CHECK(check_label(c, label, __func__));
    int64_t n = 0;
    for (int64_t i = 0; i < c->count; i++) n += c->items[i].label == label;
    *count = n;
    return LLM_OK;
}

llm_status llm_text_corpus_skipped(const llm_text_corpus *c, int64_t *skipped) {
    CHECK_OUT(skipped);
    *skipped = 0;
    CHECK_CORPUS(c);
    *skipped = c->skipped;
    return LLM_OK;
}

llm_status llm_text_corpus_class_name(const llm_text_corpus *c, int32_t label, const char **name) {
    CHECK_OUT(name);
    *name = NULL;
    CHECK_CORPUS(c);
    LLM__CHECK(check_label(c, label, __func__));
    *name = c->class_names[label];
    return LLM_OK;
}

llm_status llm_text_corpus_text(const llm_text_corpus *c, int64_t i, const char **text,
                                size_t *len) {
    CHECK_OUT(text);
    *text = NULL;
    if (len) *len = 0;
    CHECK_CORPUS(c);
    LLM__CHECK(check_index(c, i, __func__));
    *text = c->items[i].text;
    if (len) *len = c->items[i].len;
    return LLM_OK;
}

llm_status llm_text_corpus_label(const llm_text_corpus *c, int64_t i, int32_t *label) {
    CHECK_OUT(label);
    *label = -1;
    CHECK_CORPUS(c);
    LLM__CHECK(check_index(c, i, __func__));
    *label = c->items[i].label;
    return LLM_OK;
}

llm_status llm_text_corpus_source(const llm_text_corpus *c, int64_t i, const char **path) {
    CHECK_OUT(path);
    *path = NULL;
    CHECK_CORPUS(c);
    LLM__CHECK(check_index(c, i, __func__));
    *path = c->items[i].source ? c->items[i].source : "";
    return LLM_OK;
}

/* ------------------------------------------------- shuffle and split */

/* Fisher-Yates on n elements of `size` bytes, driven by the counter RNG. */
static void shuffle_items(corpus_item *a, int64_t n, uint64_t key) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(llm__rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1));
        corpus_item t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void shuffle_idx(int64_t *a, int64_t n, uint64_t key) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(llm__rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

llm_status llm_text_corpus_shuffle(llm_text_corpus *c, uint64_t seed) {
    CHECK_CORPUS(c);
    shuffle_items(c->items, c->count, llm__rng_derive(seed, 0x5e0ff1e));
    return LLM_OK;
}

static llm_status copy_item(llm_text_corpus *dst, const corpus_item *it, const char *fn) {
    char *t = llm__malloc(it->len + 1);
    char *src = it->source ? llm__strdup(it->source) : NULL;
    if (!t || (it->source && !src)) {
        llm__free(t);
        llm__free(src);
        return llm__oom(fn);
    }
    memcpy(t, it->text, it->len + 1);
    if (!corpus_push(dst, t, it->len, it->label, src)) return llm__oom(fn);
    return LLM_OK;
}

llm_status llm_text_corpus_split(const llm_text_corpus *c, double val_fraction, uint64_t seed,
                                 llm_text_corpus **train, llm_text_corpus **val) {
    CHECK_OUT(train);
    CHECK_OUT(val);
    *train = NULL;
    *val = NULL;
    CHECK_CORPUS(c);
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: val_fraction is %g; it must be in [0, 1)",
                          __func__, val_fraction);
    llm_text_corpus *tr = corpus_new(c->num_classes, (const char *const *)c->class_names);
    llm_text_corpus *va = corpus_new(c->num_classes, (const char *const *)c->class_names);
    int64_t *idx = llm__malloc((size_t)(c->count ? c->count : 1) * sizeof *idx);
    llm_status s = LLM_OK;
    if (!tr || !va || !idx) s = llm__oom(__func__);
    if (s == LLM_OK) tr->skipped = va->skipped = 0;
    for (int32_t k = 0; k < c->num_classes && s == LLM_OK; k++) {
        int64_t n = 0;
        for (int64_t i = 0; i < c->count; i++)
            if (c->items[i].label == k) idx[n++] = i;
        shuffle_idx(idx, n, llm__rng_derive(seed, (uint64_t)k));
        int64_t nv = (int64_t)floor(val_fraction * (double)n + 0.5);
        if (nv > n - 1) nv = n > 0 ? n - 1 : 0; /* every class keeps a training example */
        for (int64_t j = 0; j < n && s == LLM_OK; j++)
            s = copy_item(j < nv ? va : tr, &c->items[idx[j]], __func__);
    }
    llm__free(idx);
    if (s != LLM_OK) {
        llm_text_corpus_free(tr);
        llm_text_corpus_free(va);
        return s;
    }
    /* interleave the classes, which were appended one after another */
    shuffle_items(tr->items, tr->count, llm__rng_derive(seed, 0x7a1a0001ULL));
    shuffle_items(va->items, va->count, llm__rng_derive(seed, 0x7a1a0002ULL));
    *train = tr;
    *val = va;
    return LLM_OK;
}

/* ------------------------------------------------------------ k folds */

llm_status llm_text_corpus_folds(const llm_text_corpus *c, int32_t folds, uint64_t seed,
                                 int32_t *fold_of, int64_t count) {
    CHECK_CORPUS(c);
    CHECK_OUT(fold_of);
    if (folds < 2)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: %d folds; cross-validation needs at least 2",
                          __func__, (int)folds);
    if (count != c->count)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: count is %lld but the corpus holds %lld texts",
                          __func__, (long long)count, (long long)c->count);
    /* the smallest class bounds the folds: every fold needs each class */
    int32_t small = 0;
    int64_t n_small = INT64_MAX;
    for (int32_t k = 0; k < c->num_classes; k++) {
        int64_t n = 0;
        for (int64_t i = 0; i < c->count; i++) n += c->items[i].label == k;
        if (n < n_small) { n_small = n; small = k; }
    }
    if (n_small < folds)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: class '%s' has %lld text%s, fewer than the %d folds (every fold "
                          "needs each class); use at most %lld folds",
                          __func__, c->class_names[small], (long long)n_small, n_small == 1 ? "" : "s",
                          (int)folds, (long long)n_small);
    int64_t *idx = llm__malloc((size_t)(c->count ? c->count : 1) * sizeof *idx);
    if (!idx) return llm__oom(__func__);
    /* the deal goes on from class to class, so the folds' sizes stay within
       one of each other even when every class leaves a remainder */
    int64_t dealt = 0;
    for (int32_t k = 0; k < c->num_classes; k++) {
        int64_t n = 0;
        for (int64_t i = 0; i < c->count; i++)
            if (c->items[i].label == k) idx[n++] = i;
        shuffle_idx(idx, n, llm__rng_derive(seed, 0xf01d0000ULL + (uint64_t)k));
        for (int64_t j = 0; j < n; j++, dealt++) fold_of[idx[j]] = (int32_t)(dealt % folds);
    }
    llm__free(idx);
    return LLM_OK;
}

llm_status llm_text_corpus_fold_split(const llm_text_corpus *c, const int32_t *fold_of, int32_t fold,
                                      llm_text_corpus **train, llm_text_corpus **test) {
    CHECK_OUT(train);
    CHECK_OUT(test);
    *train = NULL;
    *test = NULL;
    CHECK_CORPUS(c);
    CHECK_OUT(fold_of);
    llm_text_corpus *tr = corpus_new(c->num_classes, (const char *const *)c->class_names);
    llm_text_corpus *te = corpus_new(c->num_classes, (const char *const *)c->class_names);
    llm_status s = tr && te ? LLM_OK : llm__oom(__func__);
    for (int64_t i = 0; i < c->count && s == LLM_OK; i++)
        s = copy_item(fold_of[i] == fold ? te : tr, &c->items[i], __func__);
    if (s != LLM_OK) {
        llm_text_corpus_free(tr);
        llm_text_corpus_free(te);
        return s;
    }
    *train = tr;
    *test = te;
    return LLM_OK;
}

llm_status llm_text_corpus_read_email(llm_text_corpus **out, const llm_text_corpus *raw,
                                      const llm_email_options *opts) {
    CHECK_OUT(out);
    *out = NULL;
    if (!raw) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: raw is NULL", __func__);
    llm_email_options eo;
    LLM__CHECK(llm__email_options_resolve(&eo, opts, __func__));
    llm_text_corpus *c = corpus_new(raw->num_classes, (const char *const *)raw->class_names);
    llm_status s = c ? LLM_OK : llm__oom(__func__);
    for (int64_t i = 0; i < raw->count && s == LLM_OK; i++) {
        const corpus_item *it = &raw->items[i];
        llm__buf text = {0};
        s = llm__email_parse(it->text, it->len, &eo, &text, __func__);
        size_t len = 0;
        char *t = s == LLM_OK ? llm__buf_take(&text, &len) : NULL;
        char *src = it->source ? llm__strdup(it->source) : NULL;
        llm__buf_free(&text);
        if (s == LLM_OK && (!t || (it->source && !src))) {
            llm__free(t);
            llm__free(src);
            s = llm__oom(__func__);
        } else if (s == LLM_OK && !corpus_push(c, t, len, it->label, src)) {
            s = llm__oom(__func__);
        }
    }
    if (s != LLM_OK) {
        llm_text_corpus_free(c);
        return s;
    }
    c->skipped = raw->skipped;
    *out = c;
    return LLM_OK;
}

/* ---------------------------------------------------------- vectorize */

llm_status llm_text_corpus_vectorize(const llm_text_corpus *c, const llm_vocab *vocab,
                                     const llm_vectorize_options *opts, int32_t *ids,
                                     int64_t ids_count, int32_t *labels, int32_t *lengths,
                                     int64_t rows) {
    CHECK_CORPUS(c);
    if (!vocab) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: vocab is NULL", __func__);
    if (!ids) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids is NULL", __func__);
    llm_vectorize_options o;
    LLM__CHECK(llm__vectorize_options_resolve(&o, opts, __func__));
    if (rows != c->count)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: rows is %lld but the corpus holds %lld texts",
                          __func__, (long long)rows, (long long)c->count);
    if (rows > INT64_MAX / o.seq_len || ids_count != rows * o.seq_len)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: ids_count is %lld; it must be rows * seq_len = %lld * %d", __func__,
                          (long long)ids_count, (long long)rows, (int)o.seq_len);
    for (int64_t i = 0; i < rows; i++) {
        int64_t n;
        LLM__CHECK(llm__vectorize(vocab, c->items[i].text, c->items[i].len, &o,
                                  ids + i * o.seq_len, &n));
        if (labels) labels[i] = c->items[i].label;
        if (lengths) lengths[i] = (int32_t)(n < o.seq_len ? n : o.seq_len);
    }
    return LLM_OK;
}
