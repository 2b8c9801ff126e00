/* GPT-2 checkpoints in llm.c's format (train_gpt2.py's write_model, read by
 * train_gpt2.c's gpt2_build_from_checkpoint):
 *
 *   int32 header[256]: [0] magic 20240326, [1] version (3: float32 tensors,
 *     5: bfloat16), [2] max sequence length T, [3] vocabulary V, [4] layers L,
 *     [5] heads, [6] channels C, [7] padded vocabulary Vp >= V; the rest 0
 *   then 16 tensors back to back, each [out, in] as PyTorch's Linear keeps it:
 *     wte [Vp, C] (rows V.. are padding), wpe [T, C], and for each block
 *     tensor kind all L layers one after the other (ln_1 weights of every
 *     layer, then ln_1 biases, qkv [3C, C], qkv bias, attention projection
 *     [C, C] and bias, ln_2, fc [4C, C] and bias, fc projection [C, 4C] and
 *     bias), then ln_f weight and bias.
 *
 * The file must be exactly that long. LayerNorm epsilon (1e-5) and the GELU
 * are not stored: they are GPT-2's. The file is read one tensor slice at a
 * time, so loading needs no second copy of the weights. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include "nn/gpt2_internal.h"

#define LLMC_MAGIC 20240326
#define LLMC_HEADER_BYTES 1024

int llm__gpt2_is_llmc(const unsigned char *h, size_t n) {
    return n >= 4 && ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24) == LLMC_MAGIC;
}

static int32_t le32(const unsigned char *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

static int read_full(int fd, void *dst, size_t n, uint64_t pos) {
    char *c = dst;
    while (n > 0) {
        ssize_t r = pread(fd, c, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n, (off_t)pos);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? errno : -1;
        c += r;
        n -= (size_t)r;
        pos += (uint64_t)r;
    }
    return 0;
}

/* Checks the header against llm.c's rules and the file's size. */
static llm_status read_header(const char *path, const unsigned char *h, uint64_t file_bytes, llm_gpt2_options *o,
                              int64_t *vp, int *elem) {
    int32_t v[8];
    for (int i = 0; i < 8; i++) v[i] = le32(h + 4 * i);
    if (v[0] != LLMC_MAGIC) return llm__error(LLM_ERR_FORMAT, "%s: not an llm.c checkpoint (bad magic)", path);
    if (v[1] != 3 && v[1] != 5)
        return llm__error(LLM_ERR_FORMAT, "%s: llm.c checkpoint version %d; this reader takes 3 (float32) and 5 "
                          "(bfloat16, both with a padded vocabulary)", path, (int)v[1]);
    *elem = v[1] == 3 ? 4 : 2;
    llm_gpt2_options_init(o);
    o->n_positions = v[2];
    o->vocab_size = v[3];
    o->n_layer = v[4];
    o->n_head = v[5];
    o->n_embd = v[6];
    *vp = v[7];
    static const char *const what[] = { "", "", "max_seq_len", "vocab_size", "num_layers", "num_heads", "channels",
                                        "padded_vocab_size" };
    for (int i = 2; i < 8; i++)
        if (v[i] < (i == 4 ? 0 : 1))
            return llm__error(LLM_ERR_FORMAT, "%s: header %s = %d", path, what[i], (int)v[i]);
    llm_status s = llm__gpt2_check_options(o, path);
    if (s != LLM_OK) return llm__error(LLM_ERR_FORMAT, "%s", llm_last_error());
    if (*vp < o->vocab_size)
        return llm__error(LLM_ERR_FORMAT, "%s: padded_vocab_size %lld is smaller than vocab_size %lld", path,
                          (long long)*vp, (long long)o->vocab_size);
    /* every count below fits in 64 bits: each factor is < 2^31 and C <= 2^16 */
    uint64_t C = (uint64_t)o->n_embd, L = (uint64_t)o->n_layer;
    uint64_t floats = (uint64_t)*vp * C + (uint64_t)o->n_positions * C + L * (12 * C * C + 13 * C) + 2 * C;
    uint64_t need = LLMC_HEADER_BYTES + floats * (uint64_t)*elem;
    if (file_bytes != need)
        return llm__error(LLM_ERR_FORMAT, "%s: %llu bytes, but the header's shapes need %llu (%s)", path,
                          (unsigned long long)file_bytes, (unsigned long long)need,
                          file_bytes < need ? "truncated?" : "bytes after the last tensor");
    return LLM_OK;
}

llm_status llm__gpt2_load_llmc(llm_model **out, llm_backend *be, const char *path, int64_t seq_len) {
    static const char fn[] = "llm_model_load_gpt2";
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return llm__error(LLM_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    struct stat st;
    unsigned char h[LLMC_HEADER_BYTES];
    llm_status s = LLM_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) s = llm__error(LLM_ERR_IO, "%s: %s is not a readable file", fn, path);
    else if (st.st_size < LLMC_HEADER_BYTES)
        s = llm__error(LLM_ERR_FORMAT, "%s: %lld bytes is shorter than llm.c's 1024-byte header", path,
                       (long long)st.st_size);
    else if (read_full(fd, h, sizeof h, 0) != 0) s = llm__error(LLM_ERR_IO, "%s: cannot read the header", path);
    llm_gpt2_options o;
    llm_gpt2_options_init(&o);
    int64_t vp = 0;
    int elem = 4;
    if (s == LLM_OK) s = read_header(path, h, (uint64_t)st.st_size, &o, &vp, &elem);
    if (s == LLM_OK && seq_len > o.n_positions)
        s = llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: seq_len = %lld is longer than the checkpoint's %lld positions",
                       fn, (long long)seq_len, (long long)o.n_positions);
    o.seq_len = seq_len ? seq_len : o.n_positions;
    llm__gpt2_param *p = NULL;
    int n = 0;
    llm_model *m = NULL;
    if (s == LLM_OK) s = llm__gpt2_params(&o, 1, &p, &n);
    if (s == LLM_OK) s = llm__gpt2_build(&m, be, &o, 1, fn);
    /* one slice of the file at a time: the largest is the padded token table */
    int64_t most = vp * o.n_embd;
    for (int i = 0; i < n; i++) most = p[i].rows * p[i].cols > most ? p[i].rows * p[i].cols : most;
    unsigned char *raw = NULL;
    float *buf = NULL;
    if (s == LLM_OK && (!(raw = llm__malloc((size_t)most * (size_t)elem)) || !(buf = llm__malloc((size_t)most * 4))))
        s = llm__oom(fn);
    uint64_t pos = LLMC_HEADER_BYTES;
    for (int i = 0; s == LLM_OK && i < n; i++) {
        /* the file's rows of this tensor: the token table carries the padding rows */
        int64_t rows = i == 0 ? vp : p[i].rows, count = rows * p[i].cols;
        size_t bytes = (size_t)count * (size_t)elem;
        int err = read_full(fd, raw, bytes, pos);
        if (err) {
            s = llm__error(err < 0 ? LLM_ERR_FORMAT : LLM_ERR_IO, "%s: reading %s: %s", path, p[i].hf,
                           err < 0 ? "the file ended early" : strerror(err));
            break;
        }
        pos += bytes;
        int64_t keep = p[i].rows * p[i].cols; /* the real vocabulary's rows come first */
        if (elem == 4) memcpy(buf, raw, (size_t)keep * 4);
        else llm__bf16_to_f32(raw, keep, buf);
        int64_t bad = llm__first_nonfinite(buf, keep);
        if (bad >= 0) {
            s = llm__error(LLM_ERR_FORMAT, "%s: tensor %s (%s) holds a non-finite value at element %lld", path,
                           p[i].hf, p[i].ours, (long long)bad);
            break;
        }
        s = llm_model_set_param(m, p[i].ours, buf, (size_t)keep * 4);
    }
    llm__free(raw);
    llm__free(buf);
    llm__free(p);
    close(fd);
    if (s != LLM_OK) {
        llm_model_free(m);
        return s;
    }
    *out = m;
    return LLM_OK;
}
