/* The growable byte buffer behind the text pipeline's outputs. */
#include "text/text_internal.h"

int llm__buf_reserve(llm__buf *b, size_t extra) {
    if (extra <= b->cap - b->len) return 1;
    if (extra > SIZE_MAX - b->len - 1) return 0;
    size_t need = b->len + extra + 1; /* room for the final NUL */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = llm__realloc(b->data, cap);
    if (!d) return 0;
    b->data = d;
    b->cap = cap - 1;
    return 1;
}

int llm__buf_append(llm__buf *b, const void *p, size_t n) {
    if (n == 0) return 1;
    if (!llm__buf_reserve(b, n)) return 0;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

int llm__buf_putc(llm__buf *b, char c) {
    if (b->len == b->cap && !llm__buf_reserve(b, 1)) return 0;
    b->data[b->len++] = c;
    return 1;
}

char *llm__buf_take(llm__buf *b, size_t *len) {
    if (!b->data && !llm__buf_reserve(b, 1)) return NULL;
    b->data[b->len] = '\0';
    char *d = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void llm__buf_free(llm__buf *b) {
    llm__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
