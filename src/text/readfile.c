/* Reading files with a size cap: a 50 MB file costs max_bytes, not 50 MB. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include "text/text_internal.h"

llm_status llm__read_file_capped(const char *path, size_t max_bytes, llm__buf *out,
                                 const char *fn) {
    FILE *f = fopen(path, "rb");
    if (!f) return llm__error(LLM_ERR_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return llm__error(LLM_ERR_IO, "%s: '%s' is a directory, not a file", fn, path);
    }
    /* Size the buffer from the file when it can be known, but never above the
     * cap; pipes and growing files fall back to doubling. */
    size_t want = 4096;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        want = (uint64_t)st.st_size < (uint64_t)max_bytes ? (size_t)st.st_size : max_bytes;
    if (want > max_bytes) want = max_bytes;
    if (!llm__buf_reserve(out, want)) {
        fclose(f);
        return llm__oom(fn);
    }
    while (out->len < max_bytes) {
        if (out->len == out->cap) {
            size_t grow = out->cap < max_bytes - out->len ? out->cap : max_bytes - out->len;
            if (grow == 0) grow = 1;
            if (!llm__buf_reserve(out, grow)) {
                fclose(f);
                return llm__oom(fn);
            }
        }
        size_t room = out->cap - out->len;
        if (room > max_bytes - out->len) room = max_bytes - out->len;
        size_t got = fread(out->data + out->len, 1, room, f);
        out->len += got;
        if (got < room) {
            if (ferror(f)) {
                int e = errno;
                fclose(f);
                return llm__error(LLM_ERR_IO, "%s: cannot read '%s': %s", fn, path,
                                  e ? strerror(e) : "read error");
            }
            break; /* end of file */
        }
    }
    fclose(f);
    out->data[out->len] = '\0';
    return LLM_OK;
}

llm_status llm_text_read_file(const char *path, size_t max_bytes, char **text, size_t *text_len) {
    if (!text) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL", __func__);
    *text = NULL;
    if (text_len) *text_len = 0;
    if (!path) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: path is NULL", __func__);
    if (max_bytes == 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: max_bytes is 0; it must be >= 1",
                          __func__);
    llm__buf b = {0};
    llm_status s = llm__read_file_capped(path, max_bytes, &b, __func__);
    if (s != LLM_OK) {
        llm__buf_free(&b);
        return s;
    }
    *text = llm__buf_take(&b, text_len);
    return LLM_OK;
}

void llm_text_free(char *text) { llm__free(text); }
