/* libllm: the CUDA backend's caching allocator (see gpu.h).
 *
 * Sizes are rounded to a class: multiples of 512 bytes up to 1 MiB, then
 * eight classes per power of two (at most 12.5% rounding). A free list per
 * class holds blocks ready for reuse; a hash table finds the live block of a
 * pointer on free. cudaMalloc is called only when a class's list is empty,
 * which in a training loop happens during the first steps alone. */
#include <stdlib.h>
#include <string.h>
#include "gpu.h"

#define GRANULE 512
#define SMALL_MAX ((size_t)1 << 20)
#define SMALL_CLASSES ((int)(SMALL_MAX / GRANULE))
#define MAX_LOG2 47 /* 128 TiB: larger requests are refused */
#define LLM__GPU_CLASSES (SMALL_CLASSES + (MAX_LOG2 - 20 + 1) * 8)

/* Class of a request and its rounded size; -1 if too large. */
static int size_class(size_t bytes, size_t *rounded) {
    if (bytes == 0) bytes = 1;
    if (bytes <= SMALL_MAX) {
        size_t k = (bytes + GRANULE - 1) / GRANULE;
        *rounded = k * GRANULE;
        return (int)k - 1;
    }
    int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^e < bytes <= 2^(e+1) */
    if (e > MAX_LOG2) return -1;
    size_t step = (size_t)1 << (e - 3);
    size_t k = (bytes + step - 1) / step; /* 9 .. 16 */
    *rounded = k * step;
    return SMALL_CLASSES + (e - 20) * 8 + (int)(k - 9);
}

static size_t bucket_of(const llm__gpu_cache *c, const void *p) {
    uint64_t h = ((uint64_t)(uintptr_t)p >> 9) * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 32) & (c->live_buckets - 1);
}

void llm__gpu_cache_init(llm__gpu_cache *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

/* Doubles the live table; on allocation failure keeps the old one (still
 * correct, only slower). */
static void grow_live(llm__gpu_cache *c) {
    size_t nb = c->live_buckets ? c->live_buckets * 2 : 1024;
    llm__gpu_block **t = (llm__gpu_block **)calloc(nb, sizeof *t);
    if (!t) return;
    llm__gpu_block **old = c->live;
    size_t ob = c->live_buckets;
    c->live = t;
    c->live_buckets = nb;
    for (size_t i = 0; i < ob; i++) {
        llm__gpu_block *b = old[i];
        while (b) {
            llm__gpu_block *next = b->next;
            size_t k = bucket_of(c, b->ptr);
            b->next = t[k];
            t[k] = b;
            b = next;
        }
    }
    free(old);
}

/* Gives every cached (free) block back to the driver. Caller holds the lock. */
static void drop_cached(llm__gpu *g) {
    llm__gpu_cache *c = &g->cache;
    if (!c->free_lists) return;
    /* Work queued before the blocks were freed may still read them. */
    cudaStreamSynchronize(g->stream);
    for (int k = 0; k < LLM__GPU_CLASSES; k++) {
        llm__gpu_block *b = c->free_lists[k];
        while (b) {
            llm__gpu_block *next = b->next;
            cudaFree(b->ptr);
            free(b);
            b = next;
        }
        c->free_lists[k] = NULL;
    }
    c->bytes_cached = 0;
}

llm_status llm__gpu_cache_alloc(llm__gpu *g, size_t bytes, void **out) {
    llm__gpu_cache *c = &g->cache;
    size_t rounded = 0;
    int cls = size_class(bytes, &rounded);
    if (cls < 0)
        return LLM__GPU_ERROR(LLM_ERR_OUT_OF_MEMORY, "cuda: a device allocation of %zu bytes is too large", bytes);
    pthread_mutex_lock(&c->lock);
    if (!c->free_lists) {
        c->free_lists = (llm__gpu_block **)calloc(LLM__GPU_CLASSES, sizeof *c->free_lists);
        if (!c->free_lists) {
            pthread_mutex_unlock(&c->lock);
            return LLM__GPU_ERROR(LLM_ERR_OUT_OF_MEMORY, "cuda allocator: out of host memory");
        }
    }
    if (c->live_count >= c->live_buckets) grow_live(c);
    if (!c->live) {
        pthread_mutex_unlock(&c->lock);
        return LLM__GPU_ERROR(LLM_ERR_OUT_OF_MEMORY, "cuda allocator: out of host memory");
    }
    llm__gpu_block *b = c->free_lists[cls];
    if (b) {
        c->free_lists[cls] = b->next;
        c->bytes_cached -= b->size;
        c->hits++;
    } else {
        b = (llm__gpu_block *)malloc(sizeof *b);
        if (!b) {
            pthread_mutex_unlock(&c->lock);
            return LLM__GPU_ERROR(LLM_ERR_OUT_OF_MEMORY, "cuda allocator: out of host memory");
        }
        void *p = NULL;
        cudaError_t err = cudaMalloc(&p, rounded);
        if (err == cudaErrorMemoryAllocation && c->bytes_cached > 0) {
            (void)cudaGetLastError();
            drop_cached(g);
            err = cudaMalloc(&p, rounded);
        }
        if (err != cudaSuccess) {
            free(b);
            size_t fr = 0, total = 0;
            size_t live = c->bytes_live;
            (void)cudaGetLastError();
            pthread_mutex_unlock(&c->lock);
            if (err == cudaErrorMemoryAllocation) {
                cudaMemGetInfo(&fr, &total);
                (void)cudaGetLastError();
                return LLM__GPU_ERROR(LLM_ERR_OUT_OF_MEMORY,
                                      "cuda: out of device memory allocating %.1f MiB (this backend holds "
                                      "%.1f MiB; %.1f MiB of %.1f MiB free on the device)",
                                      rounded / 1048576.0, live / 1048576.0, fr / 1048576.0,
                                      total / 1048576.0);
            }
            return llm__gpu_cuda_error(err, "cudaMalloc");
        }
        b->ptr = p;
        b->size = rounded;
        b->cls = cls;
        c->mallocs++;
    }
    size_t k = bucket_of(c, b->ptr);
    b->next = c->live[k];
    c->live[k] = b;
    c->live_count++;
    c->bytes_live += b->size;
    if (c->bytes_live > c->peak_live) c->peak_live = c->bytes_live;
    pthread_mutex_unlock(&c->lock);
    *out = b->ptr;
    return LLM_OK;
}

void llm__gpu_cache_free(llm__gpu *g, void *ptr) {
    if (!ptr) return;
    llm__gpu_cache *c = &g->cache;
    pthread_mutex_lock(&c->lock);
    llm__gpu_block *b = NULL;
    if (c->live) {
        llm__gpu_block **pp = &c->live[bucket_of(c, ptr)];
        while (*pp && (*pp)->ptr != ptr) pp = &(*pp)->next;
        b = *pp;
        if (b) *pp = b->next;
    }
    if (!b) {
        pthread_mutex_unlock(&c->lock);
        llm__gpu_host->log(LLM_LOG_ERROR, "cuda backend: free of %p, which this backend did not "
                           "allocate or already freed; ignored", ptr);
        return;
    }
    c->live_count--;
    c->bytes_live -= b->size;
    b->next = c->free_lists[b->cls];
    c->free_lists[b->cls] = b;
    c->bytes_cached += b->size;
    pthread_mutex_unlock(&c->lock);
}

void llm__gpu_cache_destroy(llm__gpu *g) {
    llm__gpu_cache *c = &g->cache;
    pthread_mutex_lock(&c->lock);
    drop_cached(g);
    for (size_t i = 0; i < c->live_buckets; i++) {
        llm__gpu_block *b = c->live[i];
        while (b) {
            llm__gpu_block *next = b->next;
            cudaFree(b->ptr);
            free(b);
            b = next;
        }
    }
    free(c->live);
    free(c->free_lists);
    c->live = NULL;
    c->free_lists = NULL;
    c->live_buckets = c->live_count = 0;
    c->bytes_live = 0;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
}
