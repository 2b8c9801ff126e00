/* The byte-level BPE tokenizer: the token table, encoding, decoding and the
 * serialised form. Training is in bpe_train.c.
 *
 * A tokenizer is its list of merges; everything else is derived: the bytes
 * of every token (an arena, each token NUL-terminated) and a hash map from a
 * pair (left id, right id) to its rank (merge index). Encoding cuts the text
 * into chunks (bpe_internal.h) and merges inside each chunk by rank with a
 * small heap, all on the stack since a chunk has at most LLM_BPE_MAX_CHUNK
 * bytes; a per-call cache of chunk -> ids saves the work for the words that
 * repeat. */
#include <stdio.h>
#include "text/bpe_internal.h"

#define BPE_FORMAT_VERSION 1
/* GPT-2's chunks have no length limit; one longer than this is cut (the
 * reference encoder would spend hours on it) to bound the scratch memory. */
#define GPT2_MAX_CHUNK ((size_t)1 << 20)
#define MAX_MERGES (LLM_BPE_MAX_VOCAB - LLM_BPE_FIRST_MERGE)

/* never 0, the empty slot's key */
static inline uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)((uint32_t)left + 1) << 32 | (uint32_t)right;
}

static inline size_t key_slot(uint64_t key, unsigned shift) {
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> shift);
}

/* The rank of merge (left, right), or -1. */
static inline int32_t merge_rank(const llm_bpe *b, int32_t left, int32_t right) {
    uint64_t key = pair_key(left, right);
    size_t mask = b->map_cap - 1;
    for (size_t k = key_slot(key, b->map_shift);; k = (k + 1) & mask) {
        uint64_t have = b->map_key[k];
        if (have == key) return b->map_rank[k];
        if (have == 0) return -1;
    }
}

void llm_bpe_free(llm_bpe *b) {
    if (!b) return;
    llm__free(b->vocab_json);
    llm__free(b->merges_txt);
    llm__free(b->merge_result);
    llm__free(b->pairs);
    llm__free(b->tok_off);
    llm__free(b->tok_len);
    llm__free(b->arena);
    llm__free(b->map_key);
    llm__free(b->map_rank);
    llm__free(b);
}

llm_status llm__bpe_map_alloc(llm_bpe *b, int32_t n, const char *fn) {
    b->map_cap = 16;
    b->map_shift = 60;
    while (b->map_cap < (size_t)n * 2) {
        b->map_cap *= 2;
        b->map_shift--;
    }
    b->map_key = llm__calloc(b->map_cap, sizeof *b->map_key);
    b->map_rank = llm__malloc(b->map_cap * sizeof *b->map_rank);
    return b->map_key && b->map_rank ? LLM_OK : llm__oom(fn);
}

int32_t llm__bpe_map_put(llm_bpe *b, int32_t left, int32_t right, int32_t rank) {
    uint64_t key = pair_key(left, right);
    size_t mask = b->map_cap - 1, slot = key_slot(key, b->map_shift);
    while (b->map_key[slot] != 0) {
        if (b->map_key[slot] == key) return b->map_rank[slot];
        slot = (slot + 1) & mask;
    }
    b->map_key[slot] = key;
    b->map_rank[slot] = rank;
    return -1;
}

llm_status llm__bpe_make(llm_bpe **out, const int32_t *pairs, int32_t n, int loading,
                         const char *fn) {
    *out = NULL;
    if (n < 0 || n > MAX_MERGES)
        return llm__error(loading ? LLM_ERR_FORMAT : LLM_ERR_INTERNAL,
                          "%s: %d merges; at most %d fit in %d ids", fn, (int)n, MAX_MERGES,
                          LLM_BPE_MAX_VOCAB);
    llm_bpe *b = llm__calloc(1, sizeof *b);
    if (!b) return llm__oom(fn);
    b->n_merges = n;
    b->vocab = LLM_BPE_FIRST_MERGE + n;
    b->pad_id = LLM_BPE_PAD;
    b->eot_id = LLM_BPE_EOT;
    size_t vocab = (size_t)b->vocab;
    b->pairs = llm__malloc((size_t)(n ? n : 1) * 2 * sizeof *b->pairs);
    b->merge_result = llm__malloc((size_t)(n ? n : 1) * sizeof *b->merge_result);
    b->tok_off = llm__malloc(vocab * sizeof *b->tok_off);
    b->tok_len = llm__malloc(vocab * sizeof *b->tok_len);
    if (!b->pairs || !b->merge_result || !b->tok_off || !b->tok_len ||
        llm__bpe_map_alloc(b, n, fn) != LLM_OK) {
        llm_bpe_free(b);
        return llm__oom(fn);
    }
    if (n) memcpy(b->pairs, pairs, (size_t)n * 2 * sizeof *pairs);
    for (int c = 0; c < 256; c++) b->byte_id[c] = LLM_BPE_BYTE_BASE + c;

    /* lengths first (and every check), then the bytes */
    b->tok_len[LLM_BPE_PAD] = b->tok_len[LLM_BPE_EOT] = 0;
    for (int c = 0; c < 256; c++) b->tok_len[LLM_BPE_BYTE_BASE + c] = 1;
    size_t total = vocab + 256; /* the bytes, and a NUL after each token */
    for (int32_t k = 0; k < n; k++) {
        int32_t id = LLM_BPE_FIRST_MERGE + k, l = pairs[2 * k], r = pairs[2 * k + 1];
        b->merge_result[k] = id;
        if (l < LLM_BPE_BYTE_BASE || l >= id || r < LLM_BPE_BYTE_BASE || r >= id) {
            llm_bpe_free(b);
            return llm__error(loading ? LLM_ERR_FORMAT : LLM_ERR_INTERNAL,
                              "%s: merge %d (line %d) joins ids %d and %d; each must name an "
                              "earlier token in [2, %d)", fn, (int)k, (int)k + 2, (int)l, (int)r,
                              (int)id);
        }
        size_t len = (size_t)b->tok_len[l] + b->tok_len[r];
        if (len > LLM_BPE_MAX_CHUNK) {
            llm_bpe_free(b);
            return llm__error(loading ? LLM_ERR_FORMAT : LLM_ERR_INTERNAL,
                              "%s: merge %d (line %d) makes a token of %zu bytes; tokens have at "
                              "most %d (no chunk is longer)", fn, (int)k, (int)k + 2, len,
                              LLM_BPE_MAX_CHUNK);
        }
        b->tok_len[id] = (uint16_t)len;
        total += len;
        int32_t first = llm__bpe_map_put(b, l, r, k);
        if (first >= 0) {
            llm_bpe_free(b);
            return llm__error(loading ? LLM_ERR_FORMAT : LLM_ERR_INTERNAL,
                              "%s: merge %d (line %d) repeats merge %d (%d %d)", fn, (int)k,
                              (int)k + 2, (int)first, (int)l, (int)r);
        }
    }
    /* total <= 65536 * 257, so offsets fit in 32 bits */
    b->arena = llm__malloc(total);
    if (!b->arena) {
        llm_bpe_free(b);
        return llm__oom(fn);
    }
    size_t at = 0;
    for (int32_t id = 0; id < b->vocab; id++) {
        b->tok_off[id] = (uint32_t)at;
        if (id >= LLM_BPE_FIRST_MERGE) {
            int32_t l = b->pairs[2 * (id - LLM_BPE_FIRST_MERGE)];
            int32_t r = b->pairs[2 * (id - LLM_BPE_FIRST_MERGE) + 1];
            memcpy(b->arena + at, b->arena + b->tok_off[l], b->tok_len[l]);
            memcpy(b->arena + at + b->tok_len[l], b->arena + b->tok_off[r], b->tok_len[r]);
        } else if (id >= LLM_BPE_BYTE_BASE) {
            b->arena[at] = (char)(id - LLM_BPE_BYTE_BASE);
        }
        at += b->tok_len[id];
        b->arena[at++] = '\0';
    }
    *out = b;
    return LLM_OK;
}

llm_status llm_bpe_create_bytes(llm_bpe **out) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    return llm__bpe_make(out, NULL, 0, 0, __func__);
}

llm_status llm_bpe_vocab_size(const llm_bpe *b, int32_t *size) {
    if (!size) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: size is NULL", __func__);
    *size = 0;
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bpe is NULL", __func__);
    *size = b->vocab;
    return LLM_OK;
}

llm_status llm_bpe_token_bytes(const llm_bpe *b, int32_t id, const char **bytes, size_t *len) {
    if (!bytes) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bytes is NULL", __func__);
    *bytes = NULL;
    if (len) *len = 0;
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bpe is NULL", __func__);
    if (id < 0 || id >= b->vocab)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: id %d is outside [0, %d)", __func__,
                          (int)id, (int)b->vocab);
    *bytes = b->arena + b->tok_off[id];
    if (len) *len = b->tok_len[id];
    return LLM_OK;
}

/* ------------------------------------------------------------ encoding */

/* Merges one chunk (n >= 2 bytes) into out, returning the number of ids.
 * Symbols form a linked list over the byte positions; a min-heap holds
 * (rank, position) of candidate pairs, checked when popped since merges
 * around them may have changed them. Popping in (rank, position) order
 * merges every occurrence of the best pair, leftmost first, before any other
 * pair: what training does and what GPT-2's reference does (merge all
 * occurrences of the lowest-ranked pair, then look again). A merge's new
 * pairs normally rank after it (their tokens are newer); when a merges file
 * breaks that, they wait in `defer` until the current rank is done, so the
 * result is still the reference's. */
typedef struct heap_ent {
    int32_t rank;
    int32_t pos;
} heap_ent;

static inline int ent_less(heap_ent a, heap_ent b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static inline void heap_push(heap_ent *h, int *n, heap_ent e) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!ent_less(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static inline heap_ent heap_pop(heap_ent *h, int *n) {
    heap_ent top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(h[c + 1], h[c])) c++;
        if (!ent_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

/* Scratch for one chunk of up to cap bytes. */
typedef struct chunk_work {
    int32_t *sym, *next, *prev, *out;
    heap_ent *heap, *defer;
    size_t cap;
} chunk_work;

static size_t encode_chunk(const llm_bpe *b, const unsigned char *s, size_t n, const chunk_work *w) {
    int32_t *sym = w->sym, *next = w->next, *prev = w->prev;
    heap_ent *heap = w->heap, *defer = w->defer;
    int hn = 0, dn = 0;
    int32_t cur = -1;
    for (size_t i = 0; i < n; i++) {
        sym[i] = b->byte_id[s[i]];
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = merge_rank(b, sym[i], sym[i + 1]);
        if (r >= 0) heap_push(heap, &hn, (heap_ent){r, (int32_t)i});
    }
    while (hn > 0 || dn > 0) {
        if (dn > 0 && (hn == 0 || heap[0].rank != cur)) {
            while (dn > 0) heap_push(heap, &hn, defer[--dn]);
            continue;
        }
        heap_ent e = heap_pop(heap, &hn);
        cur = e.rank;
        int32_t p = e.pos, q = next[p];
        if (sym[p] < 0 || q < 0 || sym[p] != b->pairs[2 * e.rank] ||
            sym[q] != b->pairs[2 * e.rank + 1])
            continue; /* stale */
        sym[p] = b->merge_result[e.rank];
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        int32_t around[2] = { prev[p], next[p] >= 0 ? p : -1 };
        for (int k = 0; k < 2; k++) {
            int32_t at = around[k];
            if (at < 0) continue;
            int32_t r = merge_rank(b, sym[at], sym[next[at]]);
            if (r < 0) continue;
            if (r > cur) heap_push(heap, &hn, (heap_ent){r, at});
            else defer[dn++] = (heap_ent){r, at};
        }
    }
    size_t m = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) w->out[m++] = sym[i];
    return m;
}

/* Makes w hold chunks of n bytes: the stack arrays of `small` up to
 * LLM_BPE_MAX_CHUNK, else memory owned by *big (grown, freed by the caller). */
typedef struct small_work {
    int32_t sym[LLM_BPE_MAX_CHUNK], next[LLM_BPE_MAX_CHUNK], prev[LLM_BPE_MAX_CHUNK], out[LLM_BPE_MAX_CHUNK];
    /* n - 1 initial pairs, then at most two per merge, and at most n - 1 merges */
    heap_ent heap[3 * LLM_BPE_MAX_CHUNK], defer[2 * LLM_BPE_MAX_CHUNK];
} small_work;

static int work_for(size_t n, small_work *small, void **big, size_t *big_cap, chunk_work *w) {
    if (n <= LLM_BPE_MAX_CHUNK) {
        *w = (chunk_work){ small->sym, small->next, small->prev, small->out, small->heap, small->defer,
                           LLM_BPE_MAX_CHUNK };
        return 1;
    }
    size_t per = 4 * sizeof(int32_t) + 5 * sizeof(heap_ent);
    if (n > *big_cap) {
        void *p = llm__realloc(*big, n * per);
        if (!p) return 0;
        *big = p;
        *big_cap = n;
    }
    char *c = *big;
    size_t cap = *big_cap;
    *w = (chunk_work){ (int32_t *)c, (int32_t *)c + cap, (int32_t *)c + 2 * cap, (int32_t *)c + 3 * cap,
                       (heap_ent *)(c + 4 * cap * sizeof(int32_t)),
                       (heap_ent *)(c + 4 * cap * sizeof(int32_t)) + 3 * cap, cap };
    return 1;
}

/* The per-call cache: chunk bytes (by offset into the caller's text) ->
 * their ids (in a pool). Bounded: when full it is emptied and refilled. */
#define CACHE_MAX_ENTRIES ((size_t)1 << 16)
#define CACHE_MAX_IDS ((size_t)1 << 20)
#define CACHE_MIN_TEXT 2048 /* shorter texts are encoded without a cache */
#define CACHE_MIN_CHUNK 3   /* shorter chunks are quicker to encode than to look up */

typedef struct cache_slot {
    uint64_t hash; /* 0 = empty */
    size_t text_off;
    uint32_t ids_off;
    uint16_t len;
    uint16_t n_ids;
} cache_slot;

typedef struct enc_cache {
    cache_slot *slots;
    size_t cap; /* power of two, or 0 when there is no cache */
    size_t used;
    int32_t *ids;
    size_t ids_len, ids_cap;
} enc_cache;

static uint64_t hash_chunk(const unsigned char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL ^ n; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 31;
    return h ? h : 1;
}

static void cache_free(enc_cache *c) {
    llm__free(c->slots);
    llm__free(c->ids);
    memset(c, 0, sizeof *c);
}

static void cache_clear(enc_cache *c) {
    memset(c->slots, 0, c->cap * sizeof *c->slots);
    c->used = 0;
    c->ids_len = 0;
}

static int cache_grow(enc_cache *c) {
    size_t cap = c->cap * 2;
    cache_slot *s = llm__calloc(cap, sizeof *s);
    if (!s) return 0;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].hash) continue;
        size_t k = c->slots[i].hash & (cap - 1);
        while (s[k].hash) k = (k + 1) & (cap - 1);
        s[k] = c->slots[i];
    }
    llm__free(c->slots);
    c->slots = s;
    c->cap = cap;
    return 1;
}

/* Adds a chunk's ids at slot k (where the lookup stopped). When the cache
 * is full it is emptied; when it cannot grow it is dropped, and encoding
 * goes on without one. */
static void cache_put(enc_cache *c, uint64_t h, size_t k, size_t text_off, size_t len,
                      const int32_t *ids, size_t n) {
    if (c->used + 1 > CACHE_MAX_ENTRIES || c->ids_len + n > CACHE_MAX_IDS) {
        cache_clear(c);
        k = h & (c->cap - 1);
    } else if ((c->used + 1) * 10 > c->cap * 7) { /* never past 2 * CACHE_MAX_ENTRIES slots */
        if (!cache_grow(c)) {
            cache_free(c);
            return;
        }
        k = h & (c->cap - 1);
        while (c->slots[k].hash) k = (k + 1) & (c->cap - 1);
    }
    if (c->ids_len + n > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap * 2 : 4096;
        while (cap < c->ids_len + n) cap *= 2;
        int32_t *p = llm__realloc(c->ids, cap * sizeof *p);
        if (!p) {
            cache_free(c);
            return;
        }
        c->ids = p;
        c->ids_cap = cap;
    }
    memcpy(c->ids + c->ids_len, ids, n * sizeof *ids);
    c->slots[k] = (cache_slot){h, text_off, (uint32_t)c->ids_len, (uint16_t)len, (uint16_t)n};
    c->ids_len += n;
    c->used++;
}

llm_status llm_bpe_encode(const llm_bpe *b, const char *text, size_t len, int32_t *ids,
                          size_t cap, size_t *n_ids) {
    if (!n_ids) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: n_ids is NULL", __func__);
    *n_ids = 0;
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bpe is NULL", __func__);
    if (!text && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but len is %zu", __func__,
                          len);
    if (!ids && cap > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids is NULL but cap is %zu", __func__,
                          cap);
    const unsigned char *s = (const unsigned char *)text;
    enc_cache cache = {0};
    if (b->n_merges > 0 && len >= CACHE_MIN_TEXT) {
        cache.slots = llm__calloc(1024, sizeof *cache.slots);
        if (cache.slots) cache.cap = 1024;
    }
    size_t count = 0;
    small_work small;
    void *big = NULL;
    size_t big_cap = 0;
    llm_status st = LLM_OK;
    for (size_t pos = 0; pos < len;) {
        size_t end = b->gpt2 ? llm__gpt2_chunk_end(s, len, pos) : llm__bpe_chunk_end(s, len, pos);
        if (end - pos > GPT2_MAX_CHUNK) end = pos + GPT2_MAX_CHUNK;
        size_t n = end - pos, m;
        chunk_work w;
        if (!work_for(n, &small, &big, &big_cap, &w)) {
            st = llm__oom(__func__);
            break;
        }
        const int32_t *res = w.out;
        if (n == 1 || b->n_merges == 0) {
            for (size_t i = 0; i < n; i++) w.out[i] = b->byte_id[s[pos + i]];
            m = n;
        } else if (cache.cap && n >= CACHE_MIN_CHUNK && n <= UINT16_MAX) {
            uint64_t h = hash_chunk(s + pos, n);
            size_t k = h & (cache.cap - 1);
            const cache_slot *hit = NULL;
            for (; cache.slots[k].hash; k = (k + 1) & (cache.cap - 1)) {
                const cache_slot *e = &cache.slots[k];
                if (e->hash == h && e->len == n && memcmp(s + e->text_off, s + pos, n) == 0) {
                    hit = e;
                    break;
                }
            }
            if (hit) {
                res = cache.ids + hit->ids_off;
                m = hit->n_ids;
            } else {
                m = encode_chunk(b, s + pos, n, &w);
                cache_put(&cache, h, k, pos, n, w.out, m);
            }
        } else {
            m = encode_chunk(b, s + pos, n, &w);
        }
        if (count < cap) {
            size_t k = cap - count < m ? cap - count : m;
            memcpy(ids + count, res, k * sizeof *ids);
        }
        count += m;
        pos = end;
    }
    llm__free(big);
    if (st != LLM_OK) {
        cache_free(&cache);
        return st;
    }
    cache_free(&cache);
    *n_ids = count;
    if (ids && count > cap)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: room for %zu ids is too little; the text needs %zu", __func__, cap,
                          count);
    return LLM_OK;
}

/* ------------------------------------------------------------ decoding */

llm_status llm_bpe_decode(const llm_bpe *b, const int32_t *ids, size_t n, char *buf, size_t cap,
                          size_t *len) {
    if (!len) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: len is NULL", __func__);
    *len = 0;
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bpe is NULL", __func__);
    if (!ids && n > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids is NULL but n is %zu", __func__, n);
    if (!buf && cap > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buf is NULL but cap is %zu", __func__,
                          cap);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= b->vocab)
            return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: ids[%zu] = %d is outside [0, %d)",
                              __func__, i, (int)id, (int)b->vocab);
        size_t tl = b->tok_len[id];
        if (tl > SIZE_MAX - at) /* only where size_t is 32 bits */
            return llm__error(LLM_ERR_OVERFLOW, "%s: the %zu ids decode to more than %zu bytes",
                              __func__, n, (size_t)SIZE_MAX);
        if (at < cap) memcpy(buf + at, b->arena + b->tok_off[id], cap - at < tl ? cap - at : tl);
        at += tl;
    }
    *len = at;
    if (buf && at > cap)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: a buffer of %zu bytes is too small; the ids decode to %zu", __func__,
                          cap, at);
    return LLM_OK;
}

/* ------------------------------------------------------- serialisation */

llm_status llm_bpe_serialize(const llm_bpe *b, char *buf, size_t cap, size_t *len) {
    if (!len) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: len is NULL", __func__);
    *len = 0;
    if (!b) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: bpe is NULL", __func__);
    if (!buf && cap > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: buf is NULL but cap is %zu", __func__,
                          cap);
    char line[64];
    if (b->gpt2) { /* version 2: GPT-2's two files as they were read */
        int ln = snprintf(line, sizeof line, "llm-bpe 2 gpt2 %zu %zu\n", b->vocab_len, b->merges_len);
        size_t need = (size_t)ln + b->vocab_len + b->merges_len;
        *len = need;
        if (!buf) return LLM_OK;
        if (cap < need)
            return llm__error(LLM_ERR_INVALID_ARGUMENT,
                              "%s: a buffer of %zu bytes is too small; %zu are needed", __func__, cap, need);
        memcpy(buf, line, (size_t)ln);
        memcpy(buf + ln, b->vocab_json, b->vocab_len);
        memcpy(buf + ln + b->vocab_len, b->merges_txt, b->merges_len);
        return LLM_OK;
    }
    int ln = snprintf(line, sizeof line, "llm-bpe %d %d\n", BPE_FORMAT_VERSION, (int)b->n_merges);
    size_t at = 0;
    if (buf && (size_t)ln <= cap) memcpy(buf, line, (size_t)ln);
    at += (size_t)ln;
    for (int32_t k = 0; k < b->n_merges; k++) {
        ln = snprintf(line, sizeof line, "%d %d\n", (int)b->pairs[2 * k], (int)b->pairs[2 * k + 1]);
        if (buf && at + (size_t)ln <= cap) memcpy(buf + at, line, (size_t)ln);
        at += (size_t)ln;
    }
    *len = at;
    if (buf && at > cap)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: a buffer of %zu bytes is too small; %zu are needed", __func__, cap,
                          at);
    return LLM_OK;
}

/* A decimal number in [0, max] without sign or leading zeros that ends at
 * `stop`; *pos moves past the stop byte. 0 when anything is off. */
static int parse_num(const char *d, size_t n, size_t *pos, char stop, int32_t max, int32_t *out) {
    size_t i = *pos;
    int64_t v = 0;
    size_t digits = 0;
    while (i < n && d[i] >= '0' && d[i] <= '9') {
        v = v * 10 + (d[i] - '0');
        if (v > max) return 0;
        i++;
        digits++;
    }
    if (digits == 0 || (digits > 1 && d[*pos] == '0')) return 0;
    if (i >= n || d[i] != stop) return 0;
    *pos = i + 1;
    *out = (int32_t)v;
    return 1;
}

/* Version 2, after "llm-bpe 2 ": "gpt2 <vocab.json bytes> <merges.txt bytes>\n"
 * and the two files. */
static llm_status deserialize_gpt2(llm_bpe **out, const char *data, size_t len, size_t pos) {
    static const char fn[] = "llm_bpe_deserialize";
    int32_t vl, ml;
    if (len - pos < 5 || memcmp(data + pos, "gpt2 ", 5) != 0)
        return llm__error(LLM_ERR_FORMAT, "%s: line 1: version 2 names no known tokenizer kind (\"gpt2\")", fn);
    pos += 5;
    if (!parse_num(data, len, &pos, ' ', INT32_MAX, &vl) || !parse_num(data, len, &pos, '\n', INT32_MAX, &ml))
        return llm__error(LLM_ERR_FORMAT, "%s: line 1: malformed file sizes", fn);
    if ((size_t)vl + (size_t)ml != len - pos)
        return llm__error(LLM_ERR_FORMAT, "%s: the header announces %d + %d bytes but %zu follow", fn, (int)vl,
                          (int)ml, len - pos);
    return llm__bpe_gpt2_make(out, data + pos, (size_t)vl, data + pos + vl, (size_t)ml, fn);
}

llm_status llm_bpe_deserialize(llm_bpe **out, const char *data, size_t len) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!data && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: data is NULL but len is %zu", __func__,
                          len);
    static const char magic[] = "llm-bpe ";
    size_t pos = sizeof magic - 1;
    if (len < pos || memcmp(data, magic, pos) != 0)
        return llm__error(LLM_ERR_FORMAT,
                          "%s: not a serialised BPE tokenizer (it must start with \"llm-bpe \")",
                          __func__);
    int32_t version, n;
    if (!parse_num(data, len, &pos, ' ', INT32_MAX / 10, &version))
        return llm__error(LLM_ERR_FORMAT, "%s: line 1: malformed format version", __func__);
    if (version == 2) return deserialize_gpt2(out, data, len, pos);
    if (version != BPE_FORMAT_VERSION)
        return llm__error(LLM_ERR_FORMAT,
                          "%s: unsupported BPE format version %d (this build reads %d)", __func__,
                          (int)version, BPE_FORMAT_VERSION);
    if (!parse_num(data, len, &pos, '\n', INT32_MAX / 10, &n))
        return llm__error(LLM_ERR_FORMAT,
                          "%s: line 1: the number of merges is missing or malformed", __func__);
    if (n > MAX_MERGES)
        return llm__error(LLM_ERR_FORMAT, "%s: line 1: %d merges; at most %d fit in %d ids",
                          __func__, (int)n, MAX_MERGES, LLM_BPE_MAX_VOCAB);
    /* a merge line has at least 4 bytes ("2 3\n"): a lying count is refused
     * before anything is allocated for it */
    if ((size_t)n > (len - pos) / 4)
        return llm__error(LLM_ERR_FORMAT,
                          "%s: %d merges announced but only %zu bytes follow the first line "
                          "(truncated?)", __func__, (int)n, len - pos);
    int32_t *pairs = llm__malloc((size_t)(n ? n : 1) * 2 * sizeof *pairs);
    if (!pairs) return llm__oom(__func__);
    for (int32_t k = 0; k < n; k++) {
        if (!parse_num(data, len, &pos, ' ', LLM_BPE_MAX_VOCAB, &pairs[2 * k]) ||
            !parse_num(data, len, &pos, '\n', LLM_BPE_MAX_VOCAB, &pairs[2 * k + 1])) {
            llm__free(pairs);
            return llm__error(LLM_ERR_FORMAT,
                              "%s: line %d: expected \"<left id> <right id>\" (decimal, one "
                              "space, ending in a newline)", __func__, (int)k + 2);
        }
    }
    if (pos != len) {
        llm__free(pairs);
        return llm__error(LLM_ERR_FORMAT, "%s: %zu unexpected bytes after the %d merges", __func__,
                          len - pos, (int)n);
    }
    llm_status s = llm__bpe_make(out, pairs, n, 1, __func__);
    llm__free(pairs);
    return s;
}
