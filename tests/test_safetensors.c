/* The safetensors reader and writer (src/io/safetensors.c): round trips,
 * the exact byte layout other readers expect, atomic replacement on every
 * failure, and a long list of malformed files, each of which must fail with
 * LLM_ERR_FORMAT and a message (run under ASan too: `make asan`). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "io/safetensors.h"

/* ------------------------------------------------------------ helpers */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static char *temp_dir(void) {
    char tmpl[] = "/tmp/llm_st_XXXXXX";
    char *d = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Entries of dir whose name contains ".tmp.": leftovers of a failed write. */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static uint64_t get_le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
    return v;
}

/* A file image: 8-byte size, the header as given (unpadded), then data_len
 * bytes 0, 1, 2, ... */
static unsigned char *mk(const char *json, size_t data_len, size_t *len) {
    size_t hn = strlen(json);
    *len = 8 + hn + data_len;
    unsigned char *b = malloc(*len ? *len : 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)hn >> (8 * k));
    memcpy(b + 8, json, hn);
    for (size_t i = 0; i < data_len; i++) b[8 + hn + i] = (unsigned char)i;
    return b;
}

/* Checks everything a successfully parsed file promises, touching every
 * data byte so ASan sees any bad pointer. */
static void check_invariants(const llm__safetensors *f) {
    int n = llm__safetensors_count(f);
    ck_assert_int_ge(n, 0);
    volatile unsigned sum = 0;
    for (int i = 0; i < n; i++) {
        const llm__st_tensor *t = llm__safetensors_tensor(f, i);
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_nonnull(t->name);
        size_t nl = strlen(t->name);
        ck_assert(nl >= 1 && nl < LLM__ST_MAX_NAME);
        ck_assert(t->dtype == LLM_DTYPE_F32 || t->dtype == LLM_DTYPE_I32);
        ck_assert(t->ndim >= 0 && t->ndim <= LLM_MAX_DIMS);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert(t->shape[d] >= 0);
            numel *= (uint64_t)t->shape[d];
        }
        ck_assert_uint_eq(numel * 4, t->bytes);
        ck_assert_ptr_nonnull(t->data);
        ck_assert_uint_eq((uintptr_t)t->data % 8, 0);
        for (size_t b = 0; b < t->bytes; b++) sum += ((const unsigned char *)t->data)[b];
        ck_assert_ptr_eq(llm__safetensors_find(f, t->name), t);
    }
    ck_assert_ptr_null(llm__safetensors_tensor(f, n));
    for (int i = 0; i < llm__safetensors_meta_count(f); i++) {
        const llm__st_meta *m = llm__safetensors_meta_at(f, i);
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_nonnull(m->key);
        ck_assert_ptr_nonnull(m->value);
        ck_assert_ptr_eq(llm__safetensors_meta(f, m->key), m->value);
    }
    (void)sum;
}

/* Parses b and expects LLM_ERR_FORMAT with `part` in the message. */
static void expect_bad_bytes(const unsigned char *b, size_t len, const char *part, int line) {
    llm__safetensors *f = (llm__safetensors *)&f; /* must be reset to NULL */
    llm_clear_error();
    llm_status s = llm__safetensors_parse(&f, b, len);
    ck_assert_msg(s == LLM_ERR_FORMAT, "line %d: status %d (%s), expected LLM_ERR_FORMAT; %s",
                  line, (int)s, llm_status_string(s), llm_last_error());
    ck_assert_msg(f == NULL, "line %d: *out not NULL on failure", line);
    ck_assert_msg(strstr(llm_last_error(), part) != NULL, "line %d: message '%s' lacks '%s'",
                  line, llm_last_error(), part);
    if (s == LLM_OK) llm__safetensors_close(f);
}

static void expect_bad_json(const char *json, size_t data_len, const char *part, int line) {
    size_t len;
    unsigned char *b = mk(json, data_len, &len);
    expect_bad_bytes(b, len, part, line);
    free(b);
}
#define BAD(json, data_len, part) expect_bad_json((json), (data_len), (part), __LINE__)

static llm__safetensors *parse_ok(const char *json, size_t data_len) {
    size_t len;
    unsigned char *b = mk(json, data_len, &len);
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_parse(&f, b, len));
    free(b);
    check_invariants(f);
    return f;
}

static llm__st_tensor T(const char *name, llm_dtype dt, int ndim, const int64_t *shape,
                        const void *data) {
    llm__st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = dt;
    t.ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        t.shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t.data = data;
    t.bytes = numel * 4;
    return t;
}

/* -------------------------------------------------------- round trips */

START_TEST(roundtrip_tensors_and_metadata) {
    char *dir = temp_dir();
    char *path = join(dir, "model.safetensors");

    float w[15], four[120], one[1] = { 3.5f }, scalar[1] = { -2.25f };
    int32_t ids[4] = { 0, -1, 2147483647, (int32_t)0x80000000u };
    tu_fill(w, 15, 1, -1, 1);
    tu_fill(four, 120, 2, -5, 5);
    const int64_t big_n = 1000 * 300;
    float *big = malloc((size_t)big_n * sizeof *big);
    tu_fill(big, big_n, 3, -1, 1);
    big[0] = -0.0f;
    big[1] = 1e-40f; /* subnormal survives bit-exact */

    llm__st_tensor t[7];
    t[0] = T("emb.weight", LLM_DTYPE_F32, 2, (int64_t[]){ 5, 3 }, w);
    t[1] = T("ids", LLM_DTYPE_I32, 1, (int64_t[]){ 4 }, ids);
    t[2] = T("big", LLM_DTYPE_F32, 2, (int64_t[]){ 1000, 300 }, big);
    t[3] = T("one", LLM_DTYPE_F32, 1, (int64_t[]){ 1 }, one);
    t[4] = T("layers.0/four d", LLM_DTYPE_F32, 4, (int64_t[]){ 2, 3, 4, 5 }, four);
    t[5] = T("scalar", LLM_DTYPE_F32, 0, NULL, scalar);
    t[6] = T("empty \xc3\xa9", LLM_DTYPE_F32, 2, (int64_t[]){ 0, 3 }, NULL);
    const char *odd_value = "quote\" backslash\\ slash/ nl\n cr\r tab\t bell\x07 del\x7f "
                            "utf8 \xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89";
    llm__st_meta meta[] = {
        { "format", "libllm" },
        { "odd \"key\"\n\\", odd_value },
        { "", "" },
        { "vocab", "the\nof\nand" },
    };
    ck_assert_ok(llm__safetensors_write(path, t, 7, meta, 4));
    ck_assert_int_eq(count_temps(dir), 0);

    /* from the file, and from its bytes in memory */
    size_t len;
    unsigned char *bytes = slurp(path, &len);
    llm__safetensors *files[2] = { NULL, NULL };
    ck_assert_ok(llm__safetensors_open(&files[0], path, 0));
    ck_assert_ok(llm__safetensors_parse(&files[1], bytes, len));
    free(bytes);
    for (int k = 0; k < 2; k++) {
        llm__safetensors *f = files[k];
        check_invariants(f);
        ck_assert_int_eq(llm__safetensors_count(f), 7);
        for (int i = 0; i < 7; i++) {
            const llm__st_tensor *r = llm__safetensors_tensor(f, i);
            ck_assert_str_eq(r->name, t[i].name); /* header order = write order */
            ck_assert_int_eq(r->dtype, t[i].dtype);
            ck_assert_int_eq(r->ndim, t[i].ndim);
            for (int d = 0; d < r->ndim; d++) ck_assert_int_eq(r->shape[d], t[i].shape[d]);
            ck_assert_uint_eq(r->bytes, t[i].bytes);
            if (r->bytes) ck_assert_int_eq(memcmp(r->data, t[i].data, r->bytes), 0);
            ck_assert_ptr_eq(llm__safetensors_find(f, t[i].name), r);
        }
        ck_assert_ptr_null(llm__safetensors_find(f, "missing"));
        ck_assert_ptr_null(llm__safetensors_find(f, "emb.weigh"));
        ck_assert_ptr_null(llm__safetensors_find(f, NULL));
        ck_assert_ptr_null(llm__safetensors_tensor(f, -1));
        ck_assert_int_eq(llm__safetensors_meta_count(f), 4);
        for (int i = 0; i < 4; i++) {
            ck_assert_str_eq(llm__safetensors_meta_at(f, i)->key, meta[i].key);
            ck_assert_str_eq(llm__safetensors_meta_at(f, i)->value, meta[i].value);
            ck_assert_str_eq(llm__safetensors_meta(f, meta[i].key), meta[i].value);
        }
        ck_assert_ptr_null(llm__safetensors_meta(f, "nope"));
        ck_assert_ptr_null(llm__safetensors_meta(f, NULL));
        ck_assert_ptr_null(llm__safetensors_meta_at(f, 4));
        ck_assert_ptr_null(llm__safetensors_meta_at(f, -1));
        llm__safetensors_close(f);
    }
    free(big);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(roundtrip_empty_files) {
    char *dir = temp_dir();
    char *path = join(dir, "e.safetensors");
    /* no tensors, no metadata: "{}" padded */
    ck_assert_ok(llm__safetensors_write(path, NULL, 0, NULL, 0));
    size_t len;
    unsigned char *b = slurp(path, &len);
    ck_assert_uint_eq(len, 16);
    ck_assert_uint_eq(get_le64(b), 8);
    ck_assert_int_eq(memcmp(b + 8, "{}      ", 8), 0);
    free(b);
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_open(&f, path, 16));
    ck_assert_int_eq(llm__safetensors_count(f), 0);
    ck_assert_int_eq(llm__safetensors_meta_count(f), 0);
    llm__safetensors_close(f);
    /* metadata only */
    llm__st_meta m = { "k", "v" };
    ck_assert_ok(llm__safetensors_write(path, NULL, 0, &m, 1));
    ck_assert_ok(llm__safetensors_open(&f, path, 0));
    ck_assert_int_eq(llm__safetensors_count(f), 0);
    ck_assert_str_eq(llm__safetensors_meta(f, "k"), "v");
    llm__safetensors_close(f);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

/* The exact bytes: 8-byte LE size, compact JSON with "__metadata__" first,
 * spaces up to a multiple of 8, then the tensors in order, back to back. */
START_TEST(layout_is_byte_exact) {
    char *dir = temp_dir();
    char *path = join(dir, "l.safetensors");
    float a[3] = { 1.0f, -2.0f, 0.5f };
    int32_t b[2] = { 7, -9 };
    llm__st_tensor t[2];
    t[0] = T("a", LLM_DTYPE_F32, 1, (int64_t[]){ 3 }, a);
    t[1] = T("b\"q", LLM_DTYPE_I32, 2, (int64_t[]){ 1, 2 }, b);
    llm__st_meta m[] = { { "format", "pt" }, { "x", "a\"b\\c\n\x01" } };
    ck_assert_ok(llm__safetensors_write(path, t, 2, m, 2));

    const char *expect = "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"a\\\"b\\\\c\\n\\u0001\"},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                         "\"b\\\"q\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[12,20]}}";
    size_t len;
    unsigned char *f = slurp(path, &len);
    uint64_t hn = get_le64(f);
    ck_assert_uint_eq(hn % 8, 0);
    ck_assert_uint_ge(hn, strlen(expect));
    ck_assert_uint_lt(hn, strlen(expect) + 8);
    ck_assert_int_eq(memcmp(f + 8, expect, strlen(expect)), 0);
    for (size_t i = strlen(expect); i < hn; i++) ck_assert_int_eq(f[8 + i], ' ');
    ck_assert_uint_eq(len, 8 + hn + 20);
    ck_assert_int_eq(memcmp(f + 8 + hn, a, 12), 0);
    ck_assert_int_eq(memcmp(f + 8 + hn + 12, b, 8), 0);
    /* little-endian on disk, whatever the host */
    ck_assert_int_eq(f[8 + hn + 12], 7);
    ck_assert_int_eq(f[8 + hn + 13], 0);
    free(f);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

/* The bytes the reference writer (Python safetensors.torch.save_file /
 * safetensors.numpy.save_file) produces for {"a": float32 [1, 2]}: the
 * header is padded with spaces to a multiple of 8. We read them and write
 * them identically. */
START_TEST(interop_reference_bytes) {
    static const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t hn = strlen(hdr);
    size_t padded = (hn + 7) / 8 * 8;
    unsigned char ref[256];
    memset(ref, 0, sizeof ref);
    for (int k = 0; k < 8; k++) ref[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    memcpy(ref + 8, hdr, hn);
    memset(ref + 8 + hn, ' ', padded - hn);
    const unsigned char data[8] = { 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40 }; /* 1.0, 2.0 */
    memcpy(ref + 8 + padded, data, 8);
    size_t ref_len = 8 + padded + 8;

    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_parse(&f, ref, ref_len));
    check_invariants(f);
    const llm__st_tensor *a = llm__safetensors_find(f, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->ndim, 1);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert(((const float *)a->data)[0] == 1.0f && ((const float *)a->data)[1] == 2.0f);
    llm__safetensors_close(f);

    char *dir = temp_dir();
    char *path = join(dir, "ref.safetensors");
    float v[2] = { 1.0f, 2.0f };
    llm__st_tensor t = T("a", LLM_DTYPE_F32, 1, (int64_t[]){ 2 }, v);
    ck_assert_ok(llm__safetensors_write(path, &t, 1, NULL, 0));
    size_t len;
    unsigned char *mine = slurp(path, &len);
    ck_assert_uint_eq(len, ref_len);
    ck_assert_int_eq(memcmp(mine, ref, ref_len), 0);
    free(mine);
    rm_rf(dir);
    free(path);
    free(dir);

    /* what torch writes: "__metadata__" {"format":"pt"} */
    f = parse_ok("{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                 "\"data_offsets\":[0,16]}}", 16);
    ck_assert_str_eq(llm__safetensors_meta(f, "format"), "pt");
    ck_assert_int_eq(llm__safetensors_count(f), 1);
    llm__safetensors_close(f);
}
END_TEST

/* Other writers: pretty-printed JSON, any key order, no padding, a data
 * section at an odd offset in the file. The data still arrives 8-byte
 * aligned and correct. */
START_TEST(other_writers_and_alignment) {
    const char *json = "{\n  \"b\": {\"data_offsets\": [0, 8], \"shape\": [2], \"dtype\": \"I32\"},\n"
                       "  \"a\" : { \"shape\" : [ ], \"dtype\":\"F32\", \"data_offsets\":[8,12] } ,"
                       "\t\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]}\r\n}\n  ";
    size_t len;
    unsigned char *b = mk(json, 12, &len); /* odd header length: unaligned data section */
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_parse(&f, b, len));
    check_invariants(f);
    ck_assert_int_eq(llm__safetensors_count(f), 3);
    const llm__st_tensor *tb = llm__safetensors_find(f, "b");
    const llm__st_tensor *ta = llm__safetensors_find(f, "a");
    const llm__st_tensor *tz = llm__safetensors_find(f, "z");
    ck_assert_ptr_eq(tb, llm__safetensors_tensor(f, 0));
    ck_assert_int_eq(ta->ndim, 0);
    ck_assert_uint_eq(ta->bytes, 4);
    ck_assert_uint_eq(tz->bytes, 0);
    /* mk fills the data with 0, 1, 2, ...: b holds bytes 0..7 */
    const unsigned char *pb = tb->data;
    for (int i = 0; i < 8; i++) ck_assert_int_eq(pb[i], i);
    ck_assert_int_eq(((const unsigned char *)ta->data)[0], 8);
    llm__safetensors_close(f);

    /* the same from a file */
    char *dir = temp_dir();
    char *path = join(dir, "o.safetensors");
    spit(path, b, len);
    ck_assert_ok(llm__safetensors_open(&f, path, len));
    check_invariants(f);
    ck_assert_int_eq(((const unsigned char *)llm__safetensors_find(f, "b")->data)[7], 7);
    llm__safetensors_close(f);
    free(b);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

/* ------------------------------------------------------ writer errors */

START_TEST(write_rejects_bad_arguments) {
    char *dir = temp_dir();
    char *path = join(dir, "m.safetensors");
    float v[4] = { 1, 2, 3, 4 };
    llm__st_tensor good = T("w", LLM_DTYPE_F32, 1, (int64_t[]){ 4 }, v);
    llm__st_meta gm = { "k", "v" };
    ck_assert_ok(llm__safetensors_write(path, &good, 1, &gm, 1));
    size_t old_len;
    unsigned char *old = slurp(path, &old_len);

    char long_name[LLM__ST_MAX_NAME + 1];
    memset(long_name, 'n', LLM__ST_MAX_NAME);
    long_name[LLM__ST_MAX_NAME] = '\0';

    ck_assert_fails(llm__safetensors_write(NULL, &good, 1, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write("", &good, 1, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write(path, NULL, 1, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write(path, &good, -1, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write(path, &good, 1, NULL, 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write(path, &good, 1, &gm, -1), LLM_ERR_INVALID_ARGUMENT);

    struct { const char *what; llm__st_tensor t; } cases[16];
    int nc = 0;
#define CASE(w, expr) do { cases[nc].what = (w); cases[nc].t = good; expr; nc++; } while (0)
    CASE("NULL name", cases[nc].t.name = NULL);
    CASE("empty name", cases[nc].t.name = "");
    CASE("1024-byte name", cases[nc].t.name = long_name);
    CASE("reserved name", cases[nc].t.name = "__metadata__");
    CASE("non-UTF-8 name", cases[nc].t.name = "bad\xff");
    CASE("overlong UTF-8 name", cases[nc].t.name = "\xc0\xaf");
    CASE("dtype", cases[nc].t.dtype = (llm_dtype)7);
    CASE("ndim 5", cases[nc].t.ndim = 5);
    CASE("ndim -1", cases[nc].t.ndim = -1);
    CASE("negative dim", (cases[nc].t.ndim = 2, cases[nc].t.shape[0] = -2, cases[nc].t.shape[1] = -2));
    CASE("bytes too small", cases[nc].t.bytes = 12);
    CASE("bytes too large", cases[nc].t.bytes = 20);
    CASE("NULL data", cases[nc].t.data = NULL);
    CASE("huge shape", (cases[nc].t.ndim = 4, cases[nc].t.shape[1] = 1 << 30,
                        cases[nc].t.shape[2] = 1 << 30, cases[nc].t.shape[3] = 1 << 30));
#undef CASE
    for (int i = 0; i < nc; i++) {
        llm_clear_error();
        llm_status s = llm__safetensors_write(path, &cases[i].t, 1, NULL, 0);
        ck_assert_msg(s == LLM_ERR_INVALID_ARGUMENT, "%s: status %d", cases[i].what, (int)s);
        ck_assert_msg(llm_last_error()[0] != '\0', "%s: no message", cases[i].what);
    }
    llm__st_tensor two[2] = { good, good };
    ck_assert_fails(llm__safetensors_write(path, two, 2, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert(strstr(llm_last_error(), "used twice"));
    llm__st_meta dup[2] = { { "k", "1" }, { "k", "2" } };
    ck_assert_fails(llm__safetensors_write(path, &good, 1, dup, 2), LLM_ERR_INVALID_ARGUMENT);
    llm__st_meta nk = { NULL, "v" }, nv = { "k", NULL }, bv = { "k", "\xe2\x82" };
    ck_assert_fails(llm__safetensors_write(path, &good, 1, &nk, 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write(path, &good, 1, &nv, 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_write(path, &good, 1, &bv, 1), LLM_ERR_INVALID_ARGUMENT);

    /* too many entries for the reader's token limit: refused up front; the
     * same count minus one tensor is written and read back */
    int many = (LLM__ST_MAX_TOKENS - 1) / 11 + 1; /* 1 + 11 per tensor of one dim */
    llm__st_tensor *lots = calloc((size_t)many, sizeof *lots);
    char (*names)[16] = calloc((size_t)many, sizeof *names);
    for (int i = 0; i < many; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        lots[i] = T(names[i], LLM_DTYPE_F32, 1, (int64_t[]){ 0 }, NULL);
    }
    ck_assert_fails(llm__safetensors_write(path, lots, many, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert(strstr(llm_last_error(), "JSON keys and values"));
    char *path2 = join(dir, "many.safetensors");
    ck_assert_ok(llm__safetensors_write(path2, lots, many - 1, NULL, 0));
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_open(&f, path2, 0));
    ck_assert_int_eq(llm__safetensors_count(f), many - 1);
    ck_assert_ptr_nonnull(llm__safetensors_find(f, "t12345"));
    llm__safetensors_close(f);
    ck_assert_int_eq(unlink(path2), 0);
    free(path2);
    free(names);
    free(lots);

    /* nothing touched the old file */
    size_t now_len;
    unsigned char *now = slurp(path, &now_len);
    ck_assert_uint_eq(now_len, old_len);
    ck_assert_int_eq(memcmp(now, old, old_len), 0);
    ck_assert_int_eq(count_temps(dir), 0);
    free(now);
    free(old);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(write_is_atomic_on_io_failure) {
    char *dir = temp_dir();
    char *path = join(dir, "m.safetensors");
    float v[4] = { 1, 2, 3, 4 };
    llm__st_tensor good = T("w", LLM_DTYPE_F32, 1, (int64_t[]){ 4 }, v);
    ck_assert_ok(llm__safetensors_write(path, &good, 1, NULL, 0));
    ck_assert_int_eq(chmod(path, 0600), 0);
    size_t old_len;
    unsigned char *old = slurp(path, &old_len);

    /* the directory does not exist */
    char *missing = join(dir, "no/such/dir/m.safetensors");
    ck_assert_fails(llm__safetensors_write(missing, &good, 1, NULL, 0), LLM_ERR_IO);
    ck_assert(strstr(llm_last_error(), missing));
    ck_assert(strstr(llm_last_error(), "No such file"));
    free(missing);

    /* the target is a directory: the temporary file is written, the rename
     * fails, and the temporary file must go */
    char *sub = join(dir, "sub");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_fails(llm__safetensors_write(sub, &good, 1, NULL, 0), LLM_ERR_IO);
    ck_assert(strstr(llm_last_error(), sub));
    struct stat st;
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(count_temps(dir), 0);
    free(sub);

    /* a write that fails half-way (file size limit: EFBIG), over the old file */
    int64_t big_n = 1 << 18;
    float *big = calloc((size_t)big_n, sizeof *big);
    llm__st_tensor bt = T("big", LLM_DTYPE_F32, 1, &big_n, big);
    struct rlimit saved, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = saved;
    lim.rlim_cur = 64 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    llm_clear_error();
    llm_status s = llm__safetensors_write(path, &bt, 1, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    ck_assert_int_eq(s, LLM_ERR_IO);
    ck_assert(strstr(llm_last_error(), path));
    ck_assert(strstr(llm_last_error(), "write failed"));
    ck_assert_int_eq(count_temps(dir), 0);

    size_t now_len;
    unsigned char *now = slurp(path, &now_len);
    ck_assert_uint_eq(now_len, old_len);
    ck_assert_int_eq(memcmp(now, old, old_len), 0);
    free(now);

    /* a successful replacement keeps the old file's mode */
    ck_assert_ok(llm__safetensors_write(path, &bt, 1, NULL, 0));
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_open(&f, path, 0));
    ck_assert_uint_eq(llm__safetensors_find(f, "big")->bytes, (size_t)big_n * 4);
    llm__safetensors_close(f);
    ck_assert_int_eq(count_temps(dir), 0);
    free(big);
    free(old);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

/* ------------------------------------------------------ reader errors */

START_TEST(open_errors) {
    llm__safetensors *f = NULL;
    ck_assert_fails(llm__safetensors_open(NULL, "x", 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_open(&f, NULL, 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_open(&f, "", 0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_parse(NULL, "x", 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_parse(&f, NULL, 1), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_parse(&f, NULL, 0), LLM_ERR_FORMAT);

    char *dir = temp_dir();
    char *path = join(dir, "m.safetensors");
    ck_assert_fails(llm__safetensors_open(&f, path, 0), LLM_ERR_IO);
    ck_assert(strstr(llm_last_error(), path));
    ck_assert_ptr_null(f);
    ck_assert_fails(llm__safetensors_open(&f, dir, 0), LLM_ERR_IO); /* a directory */
    ck_assert_fails(llm__safetensors_open(&f, "/dev/zero", 0), LLM_ERR_IO);

    spit(path, "\x08\0\0", 3);
    ck_assert_fails(llm__safetensors_open(&f, path, 0), LLM_ERR_FORMAT);
    ck_assert(strstr(llm_last_error(), "too short"));

    float v[4] = { 1, 2, 3, 4 };
    llm__st_tensor good = T("w", LLM_DTYPE_F32, 1, (int64_t[]){ 4 }, v);
    ck_assert_ok(llm__safetensors_write(path, &good, 1, NULL, 0));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_fails(llm__safetensors_open(&f, path, (size_t)st.st_size - 1), LLM_ERR_FORMAT);
    ck_assert(strstr(llm_last_error(), "limit"));
    ck_assert_ok(llm__safetensors_open(&f, path, (size_t)st.st_size));
    llm__safetensors_close(f);

    /* a truncated file: the header claims more than is there */
    ck_assert_int_eq(truncate(path, st.st_size - 1), 0);
    ck_assert_fails(llm__safetensors_open(&f, path, 0), LLM_ERR_FORMAT);
    ck_assert_ptr_null(f);
    llm__safetensors_close(NULL);
    ck_assert_int_eq(llm__safetensors_count(NULL), 0);
    ck_assert_int_eq(llm__safetensors_meta_count(NULL), 0);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(bad_sizes) {
    unsigned char b[32];
    memset(b, 0, sizeof b);
    for (size_t n = 0; n < 8; n++) expect_bad_bytes(b, n, "too short", __LINE__);
    expect_bad_bytes(b, 8, "header size is 0", __LINE__);
    expect_bad_bytes(b, 32, "header size is 0", __LINE__);
    b[0] = 25; /* 25 > 32 - 8 */
    expect_bad_bytes(b, 32, "larger than", __LINE__);
    uint64_t huge[] = { 100000001ull, 1ull << 32, 1ull << 63, UINT64_MAX };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        for (int k = 0; k < 8; k++) b[k] = (unsigned char)(huge[i] >> (8 * k));
        expect_bad_bytes(b, 32, "exceeds the limit", __LINE__);
    }
}
END_TEST

START_TEST(bad_json) {
    BAD("{\"a\":", 0, "not valid JSON");
    BAD("{\"a\" 1}", 0, "not valid JSON");
    BAD("{,}", 0, "not valid JSON");
    BAD("{\"a\":{}", 0, "not valid JSON");
    BAD("{\"a\":tru}", 0, "not valid JSON");
    BAD("{\"a\":\"\\q\"}", 0, "not valid JSON");
    BAD("{\"a\":\"\\ud800\"}", 0, "not valid JSON");  /* lone surrogate escape */
    BAD("[]", 0, "not a JSON object");
    BAD("\"x\"", 0, "not a JSON object");
    BAD("5", 0, "not a JSON object");
    BAD("null", 0, "not a JSON object");
    BAD("{} x", 0, "after the JSON");
    BAD("{}{}", 0, "after the JSON");
    BAD("{\"a\":@}", 0, "unexpected byte");
    BAD("{\"a\"\x01:1}", 0, "unexpected byte");       /* cJSON would skip it as space */
    BAD("{\"a\":\"x", 0, "not closed");
    BAD("{\"a\":\"x\\", 0, "not closed");
    BAD("{\"a\nb\":1}", 0, "control byte");            /* raw newline in a string */
    BAD("{\"a\\u0000b\":{}}", 0, "NUL");
    BAD("{\"__metadata__\":{\"k\":\"a\\u0000\"}}", 0, "NUL");
    BAD("{\"a\":1.5}", 0, "not a non-negative integer");
    BAD("{\"a\":-1}", 0, "not a non-negative integer");
    BAD("{\"a\":01}", 0, "not a non-negative integer");

    /* NUL bytes and bytes that are not UTF-8, inside and outside strings */
    static const struct { const char *s; size_t n; const char *why; } raw[] = {
#define R(lit, why) { lit, sizeof(lit) - 1, why }
        R("{\"a\0\":1}", "control byte"),
        R("{\"\xff\":1}", "UTF-8"),
        R("{\"\xc0\x80\":1}", "UTF-8"),          /* overlong NUL */
        R("{\"\xed\xa0\x80\":1}", "UTF-8"),      /* surrogate */
        R("{\"\xf4\x90\x80\x80\":1}", "UTF-8"), /* past U+10FFFF */
        R("{\"\xe2\x82\":1}", "UTF-8"),          /* cut short */
        R("{}\x80", "UTF-8"),
        R("{\"a\":\xc3\xa9}", "unexpected byte"), /* UTF-8 outside a string */
#undef R
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        unsigned char b[64];
        for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)raw[i].n >> (8 * k));
        memcpy(b + 8, raw[i].s, raw[i].n);
        expect_bad_bytes(b, 8 + raw[i].n, raw[i].why, __LINE__);
    }
    unsigned char nul[] = { 3, 0, 0, 0, 0, 0, 0, 0, '{', 0, '}' };
    expect_bad_bytes(nul, sizeof nul, "unexpected byte", __LINE__);
}
END_TEST

START_TEST(bad_nesting) {
    /* depth 8 is the limit; 9 fails before cJSON sees it */
    BAD("{\"__metadata__\":[[[[[[[[]]]]]]]]}", 0, "nested deeper than 8");
    BAD("{\"__metadata__\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}}", 0,
        "nested deeper");
    BAD("{\"__metadata__\":[[[[[[[]]]]]]]}", 0, "__metadata__ is not an object"); /* depth 8: ok */
    /* a million brackets: no stack overflow, no time */
    size_t n = 1000000;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = '\0';
    BAD(deep, 0, "nested deeper");
    memset(deep, '{', n);
    BAD(deep, 0, "nested deeper");
    free(deep);

    /* flat but huge: too many values for cJSON to hold cheaply. '{', the
     * key and '[' are tokens too: this is one over the limit. */
    size_t count = LLM__ST_MAX_TOKENS - 2;
    char *flat = malloc(20 + 2 * count + 4);
    strcpy(flat, "{\"__metadata__\":[");
    size_t at = strlen(flat);
    for (size_t i = 0; i < count; i++) {
        flat[at++] = '0';
        flat[at++] = ',';
    }
    strcpy(flat + at - 1, "]}");
    BAD(flat, 0, "more than 2000000 JSON keys and values");
    flat[at - 3] = ']'; /* one value less: within the limit, wrong type */
    flat[at - 2] = '}';
    flat[at - 1] = '\0';
    BAD(flat, 0, "__metadata__ is not an object");
    free(flat);
}
END_TEST

START_TEST(bad_duplicates) {
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a' appears twice");
    BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "appears twice");
    BAD("{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0, "key 'k' appears twice");
    BAD("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "field 'dtype' appears twice");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "field 'shape' appears twice");
}
END_TEST

START_TEST(bad_fields) {
    BAD("{\"a\":1}", 0, "not an object");
    BAD("{\"a\":[]}", 0, "not an object");
    BAD("{\"a\":\"F32\"}", 0, "not an object");
    BAD("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing field 'dtype'");
    BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing field 'shape'");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing field 'data_offsets'");
    BAD("{\"a\":{}}", 4, "missing field");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
        "unknown field 'x'");
    BAD("{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string");
    BAD("{\"a\":{\"dtype\":null,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "shape is not an array");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", 4, "shape is not an array");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4, "data_offsets is not");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4, "data_offsets is not");
    BAD("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty name");

    /* names of 1024 bytes are refused, 1023 accepted */
    char name[LLM__ST_MAX_NAME + 1];
    char *json = malloc(LLM__ST_MAX_NAME + 128);
    for (int len = LLM__ST_MAX_NAME; len >= LLM__ST_MAX_NAME - 1; len--) {
        memset(name, 'n', (size_t)len);
        name[len] = '\0';
        snprintf(json, LLM__ST_MAX_NAME + 128,
                 "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
        if (len == LLM__ST_MAX_NAME) {
            BAD(json, 4, "the limit is 1023");
        } else {
            llm__safetensors *f = parse_ok(json, 4);
            ck_assert_str_eq(llm__safetensors_tensor(f, 0)->name, name);
            llm__safetensors_close(f);
        }
    }
    free(json);
}
END_TEST

START_TEST(bad_dtypes) {
    const char *unsupported[] = { "F16", "BF16", "I64", "F64", "U8", "BOOL", "F8_E4M3" };
    char json[256];
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        snprintf(json, sizeof json, "{\"a\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                 unsupported[i]);
        char part[64];
        snprintf(part, sizeof part, "unsupported dtype '%s'", unsupported[i]);
        BAD(json, 4, part);
    }
    BAD("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'f32'");
    BAD("{\"a\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype");
    BAD("{\"a\":{\"dtype\":\"F32\\n\\u0001\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "unknown dtype 'F32\\x0a\\x01'"); /* shown escaped */
}
END_TEST

START_TEST(bad_shapes) {
#define SHAPE(s, off, len, part) \
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":" s ",\"data_offsets\":" off "}}", (len), (part))
    SHAPE("[-1]", "[0,4]", 4, "not a non-negative integer");
    SHAPE("[1.5]", "[0,4]", 4, "not a non-negative integer");
    SHAPE("[1.0]", "[0,4]", 4, "not a non-negative integer");
    SHAPE("[1e0]", "[0,4]", 4, "not a non-negative integer");
    SHAPE("[1E300]", "[0,4]", 4, "not a non-negative integer");
    SHAPE("[99999999999999999]", "[0,4]", 4, "not a non-negative integer"); /* 17 digits */
    SHAPE("[9007199254740992]", "[0,4]", 4, "shape[0] is not a non-negative integer"); /* 2^53 */
    SHAPE("[9999999999999999]", "[0,4]", 4, "shape[0] is not a non-negative integer");
    SHAPE("[\"1\"]", "[0,4]", 4, "shape[0] is not");
    SHAPE("[true]", "[0,4]", 4, "shape[0] is not");
    SHAPE("[null]", "[0,4]", 4, "shape[0] is not");
    SHAPE("[[1]]", "[0,4]", 4, "shape[0] is not");
    SHAPE("[1,1,1,1,1]", "[0,4]", 4, "more than 4 dimensions");
    SHAPE("[4294967296,4294967296,4294967296]", "[0,4]", 4, "too large");
    SHAPE("[9007199254740991,9007199254740991]", "[0,4]", 4, "too large");
    SHAPE("[4611686018427387]", "[0,4]", 4, "span");     /* fits, mismatches */
    SHAPE("[2]", "[0,4]", 8, "span 4 bytes");
    SHAPE("[1]", "[0,8]", 8, "span 8 bytes");
    SHAPE("[1]", "[0]", 8, "data_offsets is not an array of two");
    SHAPE("[1]", "[]", 8, "data_offsets is not an array of two");
    SHAPE("[1]", "[0,4,8]", 8, "data_offsets is not an array of two");
    SHAPE("[1]", "[-1,3]", 8, "not a non-negative integer");
    SHAPE("[1]", "[0.0,4]", 8, "not a non-negative integer");
    SHAPE("[1]", "[0,1e300]", 8, "not a non-negative integer");
    SHAPE("[1]", "[\"0\",4]", 8, "data_offsets are not");
    SHAPE("[1]", "[8,4]", 8, "begin 8 > end 4");
    SHAPE("[1]", "[4,8]", 7, "beyond the data section");
    SHAPE("[1]", "[9007199254740987,9007199254740991]", 8, "beyond the data section");
    SHAPE("[0]", "[9,9]", 8, "beyond the data section");
    /* zero dims: an empty tensor, fine */
    llm__safetensors *f = parse_ok("{\"a\":{\"dtype\":\"I32\",\"shape\":[3,0,9007199254740991],"
                                   "\"data_offsets\":[0,0]}}", 0);
    ck_assert_uint_eq(llm__safetensors_tensor(f, 0)->bytes, 0);
    llm__safetensors_close(f);
#undef SHAPE
}
END_TEST

START_TEST(bad_overlaps) {
#define E(n, b, e) "\"" n "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"
    BAD("{" E("a", 0, 8) "," E("b", 4, 12) "}", 16, "overlap");
    BAD("{" E("a", 8, 16) "," E("b", 0, 8) "," E("c", 12, 20) "}", 24, "overlap");
    BAD("{" E("a", 0, 8) "," E("b", 0, 8) "}", 16, "overlap");
    BAD("{" E("a", 0, 8) ",\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 16,
        "overlap");
    /* touching, in any order: fine */
    llm__safetensors *f = parse_ok("{" E("b", 8, 16) "," E("a", 0, 8) "," E("c", 16, 24) "}", 24);
    ck_assert_int_eq(llm__safetensors_count(f), 3);
    llm__safetensors_close(f);
#undef E
}
END_TEST

/* The tensors must fill the data section exactly (the format's rule against
 * polyglot files): no gap, nothing after the last tensor, no data at all
 * without tensors. */
START_TEST(bad_gaps_and_trailing_bytes) {
#define E(n, b, e) "\"" n "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"
    BAD("{" E("a", 0, 8) "," E("b", 12, 20) "}", 20, "4 unused bytes before tensor 'b'");
    BAD("{" E("a", 4, 12) "}", 12, "4 unused bytes before tensor 'a'");
    BAD("{" E("a", 0, 8) "," E("b", 8, 16) "}", 23, "7 bytes after the last tensor");
    BAD("{" E("a", 0, 8) "}", 9, "1 bytes after the last tensor");
    BAD("{\"__metadata__\":{\"k\":\"v\"}}", 3, "3 bytes after the last tensor");
    BAD("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 1, "after the last tensor");
#undef E
    /* a file the writer made, with 7 bytes appended */
    char *dir = temp_dir();
    char *path = join(dir, "m.safetensors");
    float v[4] = { 1, 2, 3, 4 };
    llm__st_tensor good = T("w", LLM_DTYPE_F32, 1, (int64_t[]){ 4 }, v);
    ck_assert_ok(llm__safetensors_write(path, &good, 1, NULL, 0));
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_open(&f, path, 0));
    llm__safetensors_close(f);
    FILE *fp = fopen(path, "ab");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite("garbage", 1, 7, fp), 7);
    fclose(fp);
    ck_assert_fails(llm__safetensors_open(&f, path, 0), LLM_ERR_FORMAT);
    ck_assert_msg(strstr(llm_last_error(), "7 bytes after the last tensor"), "%s", llm_last_error());
    ck_assert_ptr_null(f);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

/* A FIFO, a device and a directory are refused at once: opening a FIFO
 * would wait for a writer forever. */
START_TEST(open_refuses_special_files) {
    char *dir = temp_dir();
    char *fifo = join(dir, "fifo.safetensors");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    llm__safetensors *f = NULL;
    const char *paths[] = { fifo, "/dev/null", "/dev/zero", dir };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        ck_assert_fails(llm__safetensors_open(&f, paths[i], 0), LLM_ERR_IO);
        ck_assert_msg(strstr(llm_last_error(), "not a regular file"), "%s: %s", paths[i], llm_last_error());
        ck_assert_fails(llm__safetensors_open_lazy(&f, paths[i], 0), LLM_ERR_IO);
        ck_assert_ptr_null(f);
    }
    rm_rf(dir);
    free(fifo);
    free(dir);
}
END_TEST

/* open_lazy reads the header only: each tensor's data comes from the file
 * when it is loaded, once. */
START_TEST(lazy_open_reads_on_demand) {
    char *dir = temp_dir();
    char *path = join(dir, "m.safetensors");
    float a[3] = { 1, 2, 3 };
    int32_t b[2] = { 4, 5 };
    llm__st_tensor t[3];
    t[0] = T("a", LLM_DTYPE_F32, 1, (int64_t[]){ 3 }, a);
    t[1] = T("b", LLM_DTYPE_I32, 1, (int64_t[]){ 2 }, b);
    t[2] = T("e", LLM_DTYPE_F32, 1, (int64_t[]){ 0 }, NULL);
    ck_assert_ok(llm__safetensors_write(path, t, 3, NULL, 0));
    llm__safetensors *f = NULL;
    ck_assert_ok(llm__safetensors_open_lazy(&f, path, 0));
    const llm__st_tensor *ta = llm__safetensors_find(f, "a"), *tb = llm__safetensors_find(f, "b");
    const llm__st_tensor *te = llm__safetensors_find(f, "e");
    ck_assert_ptr_null(ta->data);
    ck_assert_ptr_null(tb->data);
    const void *d = NULL, *d2 = NULL;
    ck_assert_ok(llm__safetensors_load(f, tb, &d));
    ck_assert_ptr_eq(d, tb->data);
    ck_assert_int_eq(((const int32_t *)d)[1], 5);
    ck_assert_ptr_null(ta->data); /* only what was asked for */
    ck_assert_ok(llm__safetensors_load(f, tb, &d2));
    ck_assert_ptr_eq(d, d2); /* once */
    ck_assert_ok(llm__safetensors_load(f, ta, &d));
    ck_assert(((const float *)d)[2] == 3.0f);
    ck_assert_ok(llm__safetensors_load(f, te, &d));
    ck_assert_ptr_nonnull(d);
    /* a tensor of another handle, or none */
    llm__st_tensor other = *ta;
    ck_assert_fails(llm__safetensors_load(f, &other, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm__safetensors_load(f, NULL, &d), LLM_ERR_INVALID_ARGUMENT);
    llm__safetensors_close(f);

    /* the file shrinks after the header was read */
    ck_assert_ok(llm__safetensors_open_lazy(&f, path, 0));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(truncate(path, st.st_size - 4), 0);
    ck_assert_fails(llm__safetensors_load(f, llm__safetensors_find(f, "b"), &d), LLM_ERR_FORMAT);
    ck_assert_msg(strstr(llm_last_error(), "ended early"), "%s", llm_last_error());
    ck_assert_ptr_null(d);
    llm__safetensors_close(f);
    rm_rf(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(bad_metadata) {
    BAD("{\"__metadata__\":\"x\"}", 0, "__metadata__ is not an object");
    BAD("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    BAD("{\"__metadata__\":null}", 0, "__metadata__ is not an object");
    BAD("{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string");
    BAD("{\"__metadata__\":{\"k\":null}}", 0, "is not a string");
    BAD("{\"__metadata__\":{\"k\":{}}}", 0, "is not a string");
    BAD("{\"__metadata__\":{\"k\":[\"v\"]}}", 0, "is not a string");
    BAD("{\"__metadata__\":{\"k\":true}}", 0, "is not a string");
    llm__safetensors *f = parse_ok("{\"__metadata__\":{\"\\u00e9\\ud83c\\udf89\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}}", 0);
    ck_assert_str_eq(llm__safetensors_meta(f, "\xc3\xa9\xf0\x9f\x8e\x89"), "\"\\/\b\f\n\r\t");
    llm__safetensors_close(f);
}
END_TEST

/* ----------------------------------------------------------- fuzzing */

/* Either a file that keeps every promise, or LLM_ERR_FORMAT with a message. */
static void parse_any(const unsigned char *b, size_t len, const char *what, size_t at) {
    llm__safetensors *f = NULL;
    llm_clear_error();
    llm_status s = llm__safetensors_parse(&f, b, len);
    if (s == LLM_OK) {
        check_invariants(f);
        llm__safetensors_close(f);
        return;
    }
    ck_assert_msg(s == LLM_ERR_FORMAT, "%s at %zu: status %d: %s", what, at, (int)s,
                  llm_last_error());
    ck_assert_msg(llm_last_error()[0] != '\0', "%s at %zu: no message", what, at);
    ck_assert_ptr_null(f);
}

static unsigned char *small_valid(size_t *len) {
    char *dir = temp_dir();
    char *path = join(dir, "s.safetensors");
    float a[3] = { 1, 2, 3 };
    int32_t b[2] = { 4, 5 };
    llm__st_tensor t[2];
    t[0] = T("a", LLM_DTYPE_F32, 1, (int64_t[]){ 3 }, a);
    t[1] = T("bb", LLM_DTYPE_I32, 2, (int64_t[]){ 2, 1 }, b);
    llm__st_meta m = { "k", "v\"" };
    ck_assert_ok(llm__safetensors_write(path, t, 2, &m, 1));
    unsigned char *bytes = slurp(path, len);
    rm_rf(dir);
    free(path);
    free(dir);
    return bytes;
}

START_TEST(fuzz_truncate_and_flip) {
    size_t len;
    unsigned char *good = small_valid(&len);
    parse_any(good, len, "valid", 0);
    for (size_t n = 0; n < len; n++) {
        /* a fresh heap copy of exactly n bytes, so ASan catches any over-read */
        unsigned char *cut = malloc(n ? n : 1);
        memcpy(cut, good, n);
        parse_any(cut, n, "truncated", n);
        free(cut);
    }
    static const unsigned char repl[] = { '{', '}', '[', ']', '"', '\\', ',', ':', '0', '9', '-',
                                          '.', 'e', ' ', 0x00, 0x7f, 0x80, 0xc3, 0xff };
    unsigned char *m = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(m, good, len);
            m[i] ^= (unsigned char)(1u << bit);
            parse_any(m, len, "bit flip", i);
        }
        for (size_t r = 0; r < sizeof repl; r++) {
            memcpy(m, good, len);
            m[i] = repl[r];
            parse_any(m, len, "byte set", i);
        }
    }
    /* random multi-byte mutations, deterministic */
    uint64_t st = 12345;
    for (int it = 0; it < 20000; it++) {
        memcpy(m, good, len);
        int k = 1 + (int)(tu_next(&st) % 4);
        for (int j = 0; j < k; j++) {
            size_t pos = 8 + tu_next(&st) % (len - 8);
            m[pos] = (tu_next(&st) & 1) ? repl[tu_next(&st) % sizeof repl] : (unsigned char)tu_next(&st);
        }
        parse_any(m, len, "mutation", (size_t)it);
    }
    free(m);
    free(good);
}
END_TEST

Suite *suite_safetensors(void) {
    Suite *s = suite_create("safetensors");
    TCase *core = tcase_create("core");
    tcase_add_test(core, roundtrip_tensors_and_metadata);
    tcase_add_test(core, roundtrip_empty_files);
    tcase_add_test(core, layout_is_byte_exact);
    tcase_add_test(core, interop_reference_bytes);
    tcase_add_test(core, other_writers_and_alignment);
    suite_add_tcase(s, core);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, write_rejects_bad_arguments);
    tcase_add_test(errors, write_is_atomic_on_io_failure);
    tcase_add_test(errors, open_errors);
    tcase_add_test(errors, bad_sizes);
    tcase_add_test(errors, bad_json);
    tcase_add_test(errors, bad_nesting);
    tcase_add_test(errors, bad_duplicates);
    tcase_add_test(errors, bad_fields);
    tcase_add_test(errors, bad_dtypes);
    tcase_add_test(errors, bad_shapes);
    tcase_add_test(errors, bad_overlaps);
    tcase_add_test(errors, bad_gaps_and_trailing_bytes);
    tcase_add_test(errors, open_refuses_special_files);
    tcase_add_test(errors, lazy_open_reads_on_demand);
    tcase_add_test(errors, bad_metadata);
    suite_add_tcase(s, errors);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, fuzz_truncate_and_flip);
    tcase_set_timeout(limits, 120);
    suite_add_tcase(s, limits);
    return s;
}
