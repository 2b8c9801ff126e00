/* BPE training: learns merges from a text.
 *
 * 1. The text is cut into chunks (bpe_internal.h) and the distinct chunks
 *    are counted in a hash table; each distinct chunk of two or more bytes
 *    becomes a "word": its symbols (ids) and its count.
 * 2. Every adjacent pair of symbols in the words is counted (weighted by the
 *    word's count) in a pair table, and each pair keeps an array of the
 *    places it occurs at (symbol position and word; an array rather than a
 *    linked list, since walking it is then a scan and not a chain of cache
 *    misses). A place whose symbols changed since is skipped when the array is
 *    walked, so arrays are only ever added to. The symbols of a word form a
 *    linked list (16-bit distances to the next and previous live symbol), so
 *    a merge changes a place in constant time however long its word is.
 * 3. A max-heap of (count, left, right) gives the next pair to merge. Counts
 *    only go down, except for pairs that contain the token just made, which
 *    are pushed after each merge; so an entry's count is never below its
 *    pair's count, and a popped entry whose count is out of date is pushed
 *    again with the right one (lazy deletion). The first up-to-date entry is
 *    the most frequent pair, ties to the lowest (left, right).
 * 4. Merging a pair rewrites only the places on its list, left to right
 *    within a word (which matters only for a pair of two equal tokens, whose
 *    places can overlap: "aaa" becomes "(aa)a"), and updates the counts of the
 *    pairs around each place, so one merge costs time in proportion to the
 *    places it touches, not to the text. */
#include <stdlib.h>
#include "text/bpe_internal.h"

void llm_bpe_train_options_init(llm_bpe_train_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->vocab_size = 2048;
    opts->min_frequency = 2;
}

typedef struct chunk_slot {
    uint64_t hash;
    size_t off; /* into the text; SIZE_MAX marks an empty slot */
    size_t len;
    int64_t count;
} chunk_slot;

typedef struct word {
    size_t off; /* of its first symbol in sym */
    size_t len;
    int64_t count;
} word;

typedef struct occ_entry {
    uint32_t pos; /* of the pair's left symbol in sym */
    int32_t word;
} occ_entry;

typedef struct pair_info {
    int32_t left, right;
    int64_t count;
    occ_entry *occ; /* where it occurs (and where it did) */
    size_t n_occ, occ_cap;
    uint32_t stamp; /* the merge step that last added to it */
} pair_info;

typedef struct heap_item {
    int64_t count;
    int32_t left, right;
    int32_t pair;
} heap_item;

typedef struct trainer {
    const char *fn;
    chunk_slot *chunks;
    size_t chunk_cap, chunk_used;
    word *words;
    size_t n_words;
    int32_t *sym;     /* every word's symbols, back to back; -1 once merged away */
    uint16_t *nd, *pd; /* distance to the next / previous live symbol of the word; 0: none */
    pair_info *pairs;
    size_t n_pairs, pairs_cap;
    uint64_t *map_key; /* left << 32 | right; 0 = empty */
    int32_t *map_val;  /* pair index */
    size_t map_cap, map_used;
    unsigned map_shift;
    heap_item *heap;
    size_t heap_n, heap_cap;
    int32_t *touched;
    size_t n_touched, touched_cap;
    uint32_t step;
    int64_t min_freq;
} trainer;

static void trainer_free(trainer *t) {
    llm__free(t->chunks);
    llm__free(t->words);
    llm__free(t->sym);
    llm__free(t->nd);
    llm__free(t->pd);
    for (size_t i = 0; i < t->n_pairs; i++) llm__free(t->pairs[i].occ);
    llm__free(t->pairs);
    llm__free(t->map_key);
    llm__free(t->map_val);
    llm__free(t->heap);
    llm__free(t->touched);
}

/* Grows an array of *cap elements of `size` bytes to hold `need` (from
 * `first` elements, then doubling); 0 on failure. */
static int grow_from(void **p, size_t *cap, size_t need, size_t size, size_t first) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2 / size) return 0;
        c *= 2;
    }
    void *q = llm__realloc(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    return grow_from(p, cap, need, size, 64);
}

/* ------------------------------------------------------ chunk counting */

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static chunk_slot *chunk_slots_new(size_t cap) {
    chunk_slot *s = llm__malloc(cap * sizeof *s);
    if (s)
        for (size_t i = 0; i < cap; i++) s[i].off = SIZE_MAX;
    return s;
}

static int chunks_grow(trainer *t) {
    if (t->chunk_cap > SIZE_MAX / 2 / sizeof(chunk_slot)) return 0;
    size_t cap = t->chunk_cap * 2;
    chunk_slot *s = chunk_slots_new(cap);
    if (!s) return 0;
    for (size_t i = 0; i < t->chunk_cap; i++) {
        if (t->chunks[i].off == SIZE_MAX) continue;
        size_t k = t->chunks[i].hash & (cap - 1);
        while (s[k].off != SIZE_MAX) k = (k + 1) & (cap - 1);
        s[k] = t->chunks[i];
    }
    llm__free(t->chunks);
    t->chunks = s;
    t->chunk_cap = cap;
    return 1;
}

static llm_status count_chunks(trainer *t, const unsigned char *s, size_t len) {
    t->chunk_cap = 4096;
    t->chunks = chunk_slots_new(t->chunk_cap);
    if (!t->chunks) return llm__oom(t->fn);
    for (size_t pos = 0; pos < len;) {
        size_t end = llm__bpe_chunk_end(s, len, pos), n = end - pos;
        if (n >= 2) { /* a single byte has no pair: it never takes part */
            uint64_t h = hash_bytes(s + pos, n);
            size_t k = h & (t->chunk_cap - 1);
            for (;;) {
                chunk_slot *c = &t->chunks[k];
                if (c->off == SIZE_MAX) {
                    if ((t->chunk_used + 1) * 10 > t->chunk_cap * 7) {
                        if (!chunks_grow(t)) return llm__oom(t->fn);
                        k = h & (t->chunk_cap - 1);
                        continue;
                    }
                    *c = (chunk_slot){h, pos, n, 1};
                    t->chunk_used++;
                    break;
                }
                if (c->hash == h && c->len == n && memcmp(s + c->off, s + pos, n) == 0) {
                    c->count++;
                    break;
                }
                k = (k + 1) & (t->chunk_cap - 1);
            }
        }
        pos = end;
    }
    return LLM_OK;
}

/* ----------------------------------------------------------- the pairs */

static inline uint64_t pair_key(int32_t l, int32_t r) {
    return (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
}
static inline size_t key_slot(uint64_t key, unsigned shift) {
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> shift);
}

static int map_grow(trainer *t) {
    size_t cap = t->map_cap ? t->map_cap * 2 : 4096;
    unsigned shift = 64;
    for (size_t c = cap; c > 1; c >>= 1) shift--;
    uint64_t *keys = llm__calloc(cap, sizeof *keys);
    int32_t *vals = llm__malloc(cap * sizeof *vals);
    if (!keys || !vals) {
        llm__free(keys);
        llm__free(vals);
        return 0;
    }
    for (size_t i = 0; i < t->map_cap; i++) {
        if (!t->map_key[i]) continue;
        size_t k = key_slot(t->map_key[i], shift);
        while (keys[k]) k = (k + 1) & (cap - 1);
        keys[k] = t->map_key[i];
        vals[k] = t->map_val[i];
    }
    llm__free(t->map_key);
    llm__free(t->map_val);
    t->map_key = keys;
    t->map_val = vals;
    t->map_cap = cap;
    t->map_shift = shift;
    return 1;
}

/* The index of pair (l, r), made (count 0) when missing; -1 out of memory. */
static int32_t pair_get(trainer *t, int32_t l, int32_t r) {
    uint64_t key = pair_key(l, r);
    size_t mask = t->map_cap - 1, k = key_slot(key, t->map_shift);
    for (;; k = (k + 1) & mask) {
        if (t->map_key[k] == key) return t->map_val[k];
        if (!t->map_key[k]) break;
    }
    if ((t->map_used + 1) * 2 > t->map_cap) {
        if (!map_grow(t)) return -1;
        mask = t->map_cap - 1;
        k = key_slot(key, t->map_shift);
        while (t->map_key[k]) k = (k + 1) & mask;
    }
    if (t->n_pairs >= INT32_MAX ||
        !grow((void **)&t->pairs, &t->pairs_cap, t->n_pairs + 1, sizeof *t->pairs))
        return -1;
    int32_t idx = (int32_t)t->n_pairs++;
    t->pairs[idx] = (pair_info){l, r, 0, NULL, 0, 0, UINT32_MAX};
    t->map_key[k] = key;
    t->map_val[k] = idx;
    t->map_used++;
    return idx;
}

/* Pair (l, r) occurs c more times, at position pos of word w. 0 when out
 * of memory. */
static int pair_add(trainer *t, int32_t l, int32_t r, int64_t c, int32_t w, size_t pos) {
    int32_t idx = pair_get(t, l, r);
    if (idx < 0) return 0;
    pair_info *p = &t->pairs[idx];
    p->count += c;
    if (!p->n_occ || p->occ[p->n_occ - 1].pos != pos) {
        /* most pairs occur a few times: small first */
        if (!grow_from((void **)&p->occ, &p->occ_cap, p->n_occ + 1, sizeof *p->occ, 2)) return 0;
        p->occ[p->n_occ++] = (occ_entry){(uint32_t)pos, w};
    }
    if (t->step && p->stamp != t->step) { /* step 0: the first count, all pushed after */
        if (!grow((void **)&t->touched, &t->touched_cap, t->n_touched + 1, sizeof *t->touched))
            return 0;
        t->touched[t->n_touched++] = idx;
        p->stamp = t->step;
    }
    return 1;
}

/* A pair's count only grows in the step that made its newer token, so one
 * below min_frequency after that will never be merged: its places go. */
static void forget(pair_info *p) {
    llm__free(p->occ);
    p->occ = NULL;
    p->n_occ = p->occ_cap = 0;
}

/* Pair (l, r), which exists, occurs c fewer times. */
static void pair_sub(trainer *t, int32_t l, int32_t r, int64_t c) {
    uint64_t key = pair_key(l, r);
    size_t mask = t->map_cap - 1, k = key_slot(key, t->map_shift);
    while (t->map_key[k] != key) {
        LLM__ASSERT(t->map_key[k] != 0);
        k = (k + 1) & mask;
    }
    t->pairs[t->map_val[k]].count -= c;
}

/* ------------------------------------------------------------ the heap */

/* a comes out before b: higher count, then lower (left, right) */
static inline int before(const heap_item *a, const heap_item *b) {
    if (a->count != b->count) return a->count > b->count;
    if (a->left != b->left) return a->left < b->left;
    return a->right < b->right;
}

static int heap_push(trainer *t, int32_t idx) {
    if (!grow((void **)&t->heap, &t->heap_cap, t->heap_n + 1, sizeof *t->heap)) return 0;
    const pair_info *p = &t->pairs[idx];
    heap_item e = {p->count, p->left, p->right, idx};
    size_t i = t->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(&e, &t->heap[up])) break;
        t->heap[i] = t->heap[up];
        i = up;
    }
    t->heap[i] = e;
    return 1;
}

static heap_item heap_pop(trainer *t) {
    heap_item top = t->heap[0], last = t->heap[--t->heap_n];
    size_t i = 0, n = t->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!before(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------ training */

/* Is (a, b) still at position p? */
static inline int pair_at(const trainer *t, size_t p, int32_t a, int32_t b) {
    return t->sym[p] == a && t->nd[p] && t->sym[p + t->nd[p]] == b;
}

/* Replaces (a, b) at position p of word w, which holds it, by z, updating
 * the counts of the pairs on either side. 0 when out of memory. */
static int merge_at(trainer *t, size_t p, int32_t w, int32_t a, int32_t b, int32_t z) {
    int64_t c = t->words[w].count;
    size_t q = p + t->nd[p];
    if (t->pd[p]) {
        size_t l = p - t->pd[p];
        pair_sub(t, t->sym[l], a, c);
        if (!pair_add(t, t->sym[l], z, c, w, l)) return 0;
    }
    size_t r = 0;
    if (t->nd[q]) {
        r = q + t->nd[q];
        pair_sub(t, b, t->sym[r], c);
        if (!pair_add(t, z, t->sym[r], c, w, p)) return 0;
    }
    pair_sub(t, a, b, c);
    t->sym[p] = z;
    t->sym[q] = -1;
    t->nd[p] = (uint16_t)(r ? r - p : 0);
    if (r) t->pd[r] = (uint16_t)(r - p);
    return 1;
}

static int by_pos(const void *x, const void *y) {
    uint32_t a = ((const occ_entry *)x)->pos, b = ((const occ_entry *)y)->pos;
    return a < b ? -1 : a > b;
}

/* Merges pair e everywhere it occurs. 0 when out of memory. */
static int merge_pair(trainer *t, const heap_item *e, int32_t z) {
    int32_t a = e->left, b = e->right;
    pair_info *p = &t->pairs[e->pair];
    occ_entry *occ = p->occ; /* taken: nothing adds to this pair again */
    size_t n = p->n_occ;
    p->occ = NULL;
    p->n_occ = p->occ_cap = 0;
    /* places of two different tokens cannot overlap, so any order gives the
     * same words; for "aaa" it must be left to right, as encoding does, and
     * positions order the places of a word (a place that a merge on its left
     * took is then no longer there) */
    if (a == b) qsort(occ, n, sizeof *occ, by_pos);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++)
        if (pair_at(t, occ[i].pos, a, b)) ok = merge_at(t, occ[i].pos, occ[i].word, a, b, z);
    llm__free(occ);
    return ok;
}

static llm_status train(trainer *t, const unsigned char *text, size_t len, int32_t max_merges,
                        int32_t *merges, int32_t *n_merges) {
    *n_merges = 0;
    LLM__CHECK(count_chunks(t, text, len));

    /* the words, and the pairs in them */
    size_t total = 0;
    for (size_t i = 0; i < t->chunk_cap; i++)
        if (t->chunks[i].off != SIZE_MAX) total += t->chunks[i].len;
    t->words = llm__malloc((t->chunk_used ? t->chunk_used : 1) * sizeof *t->words);
    t->sym = llm__malloc((total ? total : 1) * sizeof *t->sym);
    t->nd = llm__malloc((total ? total : 1) * sizeof *t->nd);
    t->pd = llm__malloc((total ? total : 1) * sizeof *t->pd);
    if (!t->words || !t->sym || !t->nd || !t->pd || !map_grow(t)) return llm__oom(t->fn);
    size_t at = 0; /* total <= len <= 1 GiB: positions fit in 32 bits */
    for (size_t i = 0; i < t->chunk_cap; i++) {
        const chunk_slot *c = &t->chunks[i];
        if (c->off == SIZE_MAX) continue;
        t->words[t->n_words++] = (word){at, c->len, c->count};
        for (size_t k = 0; k < c->len; k++, at++) {
            t->sym[at] = LLM_BPE_BYTE_BASE + text[c->off + k];
            t->nd[at] = k + 1 < c->len;
            t->pd[at] = k > 0;
        }
    }
    llm__free(t->chunks); /* no longer needed: free it before the pairs grow */
    t->chunks = NULL;
    t->chunk_cap = 0;
    for (size_t w = 0; w < t->n_words; w++) {
        size_t off = t->words[w].off;
        for (size_t i = 0; i + 1 < t->words[w].len; i++)
            if (!pair_add(t, t->sym[off + i], t->sym[off + i + 1], t->words[w].count, (int32_t)w,
                          off + i))
                return llm__oom(t->fn);
    }
    for (size_t p = 0; p < t->n_pairs; p++) {
        if (t->pairs[p].count < t->min_freq)
            forget(&t->pairs[p]);
        else if (!heap_push(t, (int32_t)p))
            return llm__oom(t->fn);
    }

    /* the merges */
    while (*n_merges < max_merges && t->heap_n > 0) {
        heap_item e = heap_pop(t);
        int64_t now = t->pairs[e.pair].count;
        if (now != e.count) { /* out of date: back in with its count */
            if (now >= t->min_freq && !heap_push(t, e.pair)) return llm__oom(t->fn);
            continue;
        }
        int32_t z = LLM_BPE_FIRST_MERGE + *n_merges;
        merges[2 * *n_merges] = e.left;
        merges[2 * *n_merges + 1] = e.right;
        ++*n_merges;
        t->step++;
        t->n_touched = 0;
        if (!merge_pair(t, &e, z)) return llm__oom(t->fn);
        LLM__ASSERT(t->pairs[e.pair].count == 0);
        for (size_t k = 0; k < t->n_touched; k++) {
            pair_info *p = &t->pairs[t->touched[k]];
            if (p->count < t->min_freq)
                forget(p);
            else if (!heap_push(t, t->touched[k]))
                return llm__oom(t->fn);
        }
    }
    return LLM_OK;
}

llm_status llm_bpe_train(llm_bpe **out, const char *text, size_t len,
                         const llm_bpe_train_options *opts) {
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", __func__);
    *out = NULL;
    if (!text && len > 0)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: text is NULL but len is %zu", __func__,
                          len);
    if (len > LLM_BPE_MAX_TRAIN_BYTES)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: a text of %zu bytes is too large to train on; at most %zu (train on "
                          "a sample)", __func__, len, LLM_BPE_MAX_TRAIN_BYTES);
    llm_bpe_train_options o;
    llm_bpe_train_options_init(&o);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, __func__));
    if (o.vocab_size < LLM_BPE_FIRST_MERGE || o.vocab_size > LLM_BPE_MAX_VOCAB)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: options vocab_size is %d; it must be in [%d, %d] (258 ids are "
                          "fixed: padding, end of text and the 256 bytes)", __func__,
                          (int)o.vocab_size, LLM_BPE_FIRST_MERGE, LLM_BPE_MAX_VOCAB);
    if (o.min_frequency < 1)
        return llm__error(LLM_ERR_INVALID_ARGUMENT,
                          "%s: options min_frequency is %d; it must be >= 1", __func__,
                          (int)o.min_frequency);
    int32_t max_merges = o.vocab_size - LLM_BPE_FIRST_MERGE, n_merges = 0;
    int32_t *merges = llm__malloc((size_t)(max_merges ? max_merges : 1) * 2 * sizeof *merges);
    if (!merges) return llm__oom(__func__);
    trainer t = {0};
    t.fn = __func__;
    t.min_freq = o.min_frequency;
    llm_status s = train(&t, (const unsigned char *)text, len, max_merges, merges, &n_merges);
    trainer_free(&t);
    if (s == LLM_OK) s = llm__bpe_make(out, merges, n_merges, 0, __func__);
    llm__free(merges);
    return s;
}
