/* libllm private: helpers shared by all of src/ (errors, allocation, options). */
#ifndef LLM_PRIVATE_INTERNAL_H
#define LLM_PRIVATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "llm/status.h"

#if defined(__GNUC__)
#  define LLM__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LLM__PRINTF(a, b)
#endif

/* Records a formatted message as the thread's last error and returns status,
 * so a failure reads: return llm__error(LLM_ERR_SHAPE, "%s: ...", __func__). */
llm_status llm__error(llm_status status, const char *fmt, ...) LLM__PRINTF(2, 3);

/* Out of memory: a message that needs no allocation. */
llm_status llm__oom(const char *where);

/* Logs through the user's callback, if any. */
void llm__log(llm_log_level level, const char *fmt, ...) LLM__PRINTF(2, 3);

/* Host allocation goes through these, so tests can make the N-th one fail
 * (hardening) and so every allocation site is easy to find. */
void *llm__malloc(size_t bytes);
void *llm__calloc(size_t count, size_t size);
void *llm__realloc(void *ptr, size_t bytes);
void llm__free(void *ptr);
char *llm__strdup(const char *s);

/* Allocation-failure injection, for tests only. llm__alloc_fail_after(n),
 * n >= 0, arms it and resets the count: n allocations succeed, the next one
 * fails (once), later ones succeed again; INT64_MAX only counts. n < 0
 * disarms (the default), when an allocation costs one relaxed atomic load.
 * llm__alloc_count: allocations since arming (llm__malloc/calloc/realloc/
 * strdup and the CPU backend's buffers; not cJSON's nor libc's own).
 * llm__alloc_fired: 1 once the armed failure happened. Other allocators
 * (a backend's) call llm__alloc_should_fail first and fail when it says 1.
 * Thread-safe (C11 atomics); process-wide. */
void llm__alloc_fail_after(int64_t n);
int64_t llm__alloc_count(void);
int llm__alloc_fired(void);
int llm__alloc_should_fail(void);

/* a * b into *out; returns 0 on overflow. */
static inline int llm__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* FNV-1a over n bytes, continuing from h (start with LLM__FNV1A_INIT): a
 * fingerprint for comparing data across processes, not a defence against
 * anyone crafting collisions. */
#define LLM__FNV1A_INIT 0xcbf29ce484222325ULL
static inline uint64_t llm__fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* Copies a caller's size-prefixed options struct over the defaults already
 * in *dst: only min(src->size, sizeof *dst) bytes are read, so a caller built
 * against an older (smaller) struct keeps working. Returns LLM_OK or an
 * invalid-argument error when size is too small to hold the size field. */
llm_status llm__options_merge(void *dst, size_t dst_size, const void *src, const char *fn);
#define LLM__OPTIONS_MERGE(dst, src, fn) \
    llm__options_merge((dst), sizeof *(dst), (src), (fn))

/* Debug-only invariant check: internal bugs, never caller input. */
#ifdef LLM_DEBUG
#  include <assert.h>
#  define LLM__ASSERT(x) assert(x)
#else
#  define LLM__ASSERT(x) ((void)0)
#endif

#define LLM__CHECK(expr) do { llm_status s__ = (expr); if (s__ != LLM_OK) return s__; } while (0)

#endif /* LLM_PRIVATE_INTERNAL_H */
