/* Host allocation: one place, so hardening tests can inject failures. */
#include <stdatomic.h>
#include <stdlib.h>
#include "internal.h"

/* Failure injection for tests (see internal.h). One word says it all:
 *   -1       off, the normal state: an allocation costs one relaxed load;
 *   n >= 0   armed: n more allocations succeed, the next one fails;
 *   -2       fired: no more failures, allocations still counted.
 * alloc_count counts allocations from the moment of arming. */
#define HOOK_OFF ((int64_t)-1)
#define HOOK_FIRED ((int64_t)-2)
static _Atomic int64_t hook = HOOK_OFF;
static _Atomic int64_t alloc_count = 0;

void llm__alloc_fail_after(int64_t n) {
    if (n < 0) {
        atomic_store_explicit(&hook, HOOK_OFF, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&alloc_count, 0, memory_order_relaxed);
    atomic_store_explicit(&hook, n, memory_order_relaxed);
}

int64_t llm__alloc_count(void) { return atomic_load_explicit(&alloc_count, memory_order_relaxed); }

int llm__alloc_fired(void) {
    return atomic_load_explicit(&hook, memory_order_relaxed) == HOOK_FIRED;
}

static int hook_slow(int64_t h) {
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    while (h >= 0) { /* count down; the allocation that finds 0 fails */
        int64_t next = h == 0 ? HOOK_FIRED : h - 1;
        if (atomic_compare_exchange_weak_explicit(&hook, &h, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return h == 0;
    }
    return 0;
}

int llm__alloc_should_fail(void) {
    int64_t h = atomic_load_explicit(&hook, memory_order_relaxed);
    if (__builtin_expect(h == HOOK_OFF, 1)) return 0;
    return hook_slow(h);
}

void *llm__malloc(size_t bytes) {
    if (llm__alloc_should_fail()) return NULL;
    return malloc(bytes ? bytes : 1);
}

void *llm__calloc(size_t count, size_t size) {
    if (llm__alloc_should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *llm__realloc(void *ptr, size_t bytes) {
    if (llm__alloc_should_fail()) return NULL;
    return realloc(ptr, bytes ? bytes : 1);
}

void llm__free(void *ptr) { free(ptr); }

char *llm__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = llm__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
