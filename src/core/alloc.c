/* Host allocation: one place, so hardening tests can inject failures. */
#include <stdlib.h>
#include "internal.h"

void *llm__malloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void *llm__calloc(size_t count, size_t size) { return calloc(count ? count : 1, size ? size : 1); }
void *llm__realloc(void *ptr, size_t bytes) { return realloc(ptr, bytes ? bytes : 1); }
void llm__free(void *ptr) { free(ptr); }

char *llm__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = llm__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
