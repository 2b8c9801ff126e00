/* Transformer language models: the KV-cache decoder against full forward
 * passes (also across the sliding window), sampling and generation, saving
 * a tied model, error handling, and a tiny model that learns a pattern.
 * (Parity with PyTorch is in test_torch_parity.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include "testutil.h"

static llm_backend *be;
static void setup(void) { ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL)); }
static void teardown(void) { llm_backend_free(be); be = NULL; }

/* ---- building small GPTs ---- */

enum { HEAD_TIED = 0, HEAD_UNTIED = 1, HEAD_DENSE = 2 };

typedef struct gpt_cfg {
    int64_t vocab, ctx, dim, heads, layers;
    int64_t seq;               /* the build length; 0 = ctx */
    llm_positional positional;
    int mask_zero, causal, final_ln, head, dropout;
    float scale;               /* > 0: every weight uniform in [-scale, scale]
                                  (LayerNorm scales 1 +- scale); 0: the default init */
    uint64_t seed;
} gpt_cfg;

static gpt_cfg gpt_defaults(void) {
    gpt_cfg c;
    memset(&c, 0, sizeof c);
    c.vocab = 13;
    c.ctx = 16;
    c.dim = 16;
    c.heads = 4;
    c.layers = 2;
    c.positional = LLM_POSITIONAL_LEARNED;
    c.mask_zero = 0;
    c.causal = 1;
    c.final_ln = 1;
    c.head = HEAD_TIED;
    c.scale = 0.3f;
    c.seed = 11;
    return c;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every parameter uniform in [-scale, scale]; LayerNorm scales around 1. */
static void randomize(llm_model *m, uint64_t seed, float scale) {
    int count = 0;
    ck_assert_ok(llm_model_num_params(m, &count));
    for (int i = 0; i < count; i++) {
        const char *name = NULL;
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS] = {0}, n = 1;
        ck_assert_ok(llm_model_param_info(m, i, &name, &nd, shape));
        for (int d = 0; d < nd; d++) n *= shape[d];
        float *w = malloc((size_t)n * sizeof *w);
        ck_assert_ptr_nonnull(w);
        tu_fill(w, n, seed * 1000 + (uint64_t)i, -scale, scale);
        if (ends_with(name, "gamma"))
            for (int64_t j = 0; j < n; j++) w[j] += 1.0f;
        ck_assert_ok(llm_model_set_param(m, name, w, (size_t)n * sizeof *w));
        free(w);
    }
}

static void add_layers(llm_model *m, const gpt_cfg *c) {
    llm_transformer_embedding_options eo;
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = c->vocab;
    eo.context = c->ctx;
    eo.dim = c->dim;
    eo.positional = c->positional;
    eo.mask_zero = c->mask_zero;
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&eo)));
    if (c->dropout) ck_assert_ok(llm_model_add(m, llm_layer_dropout(0.5f)));
    for (int64_t i = 0; i < c->layers; i++) {
        llm_transformer_block_options bo;
        llm_transformer_block_options_init(&bo);
        bo.heads = c->heads;
        bo.causal = c->causal;
        bo.dropout = c->dropout ? 0.25f : 0.0f;
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block_ex(&bo)));
    }
    if (c->final_ln) ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
    if (c->dropout) ck_assert_ok(llm_model_add(m, llm_layer_dropout(0.5f)));
    if (c->head == HEAD_DENSE)
        ck_assert_ok(llm_model_add(m, llm_layer_dense(c->vocab, LLM_ACT_NONE)));
    else
        ck_assert_ok(llm_model_add(m, llm_layer_lm_head(c->vocab, c->head == HEAD_TIED)));
}

static llm_model *gpt_build(const gpt_cfg *c) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, c->seed));
    add_layers(m, c);
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){c->seq ? c->seq : c->ctx}));
    if (c->scale > 0.0f) randomize(m, c->seed, c->scale);
    return m;
}

static void random_ids(int32_t *ids, int64_t n, int64_t lo, int64_t vocab, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(lo + (int64_t)(tu_next(&s) % (uint64_t)(vocab - lo)));
}

/* Logits [rows, T, V] of ids [rows, T] by llm_model_predict. */
static void predict_logits(llm_model *m, const int32_t *ids, int64_t rows, int64_t T, int64_t V, float *out) {
    llm_tensor *x = NULL, *y = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){rows, T}, ids,
                                      (size_t)(rows * T) * sizeof *ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    int64_t n = 0;
    ck_assert_ok(llm_tensor_numel(y, &n));
    ck_assert_int_eq(n, rows * T * V);
    ck_assert_ok(llm_tensor_to_host(y, out, (size_t)n * sizeof *out));
    llm_tensor_free(y);
    llm_tensor_free(x);
}

static void expect_near(const char *what, int64_t step, const float *got, const float *want, int64_t n, double tol) {
    int64_t bad = -1;
    if (!tu_close(got, want, n, tol, tol, &bad))
        ck_abort_msg("%s (step %lld): [%lld] is %.9g, expected %.9g", what, (long long)step, (long long)bad,
                     (double)got[bad], (double)want[bad]);
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

/* Gap between the largest and the second largest value. */
static float top_gap(const float *x, int64_t n) {
    int32_t b = argmax(x, n);
    float second = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (i != b && x[i] > second) second = x[i];
    return x[b] - second;
}

/* ---- KV cache = full recompute ---- */

#define KV_TOL 1e-4

/* A causal model: the logits at position t of a full forward over T = ctx
 * tokens are those after the first t + 1 tokens, which the decoder must
 * reproduce fed one token at a time, in one prompt, or in chunks. */
static void kv_case(const gpt_cfg *c) {
    llm_model *m = gpt_build(c);
    int64_t T = c->ctx, V = c->vocab;
    int32_t ids[64];
    ck_assert_int_le(T, 64);
    random_ids(ids, T, 0, V, 77 + c->seed);
    float *full = malloc((size_t)(T * V) * sizeof *full), *lg = malloc((size_t)V * sizeof *lg);
    ck_assert_ptr_nonnull(full);
    ck_assert_ptr_nonnull(lg);
    predict_logits(m, ids, 1, T, V, full);

    llm_decoder *d = NULL;
    ck_assert_ok(llm_decoder_create(&d, m));
    int64_t v = 0, len = -1;
    ck_assert_ok(llm_decoder_vocab_size(d, &v));
    ck_assert_int_eq(v, V);
    ck_assert_ok(llm_decoder_length(d, &len));
    ck_assert_int_eq(len, 0);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < V; i++) lg[i] = NAN;
        ck_assert_ok(llm_decoder_feed(d, &ids[t], 1, lg));
        expect_near("token by token vs full forward", t, lg, full + t * V, V, KV_TOL);
        ck_assert_ok(llm_decoder_length(d, &len));
        ck_assert_int_eq(len, t + 1);
    }

    /* the prompt in one call, then a chunk of 3, then single tokens (one
     * without logits) */
    int64_t p = T / 2 + 1;
    ck_assert_ok(llm_decoder_reset(d));
    ck_assert_ok(llm_decoder_length(d, &len));
    ck_assert_int_eq(len, 0);
    ck_assert_ok(llm_decoder_feed(d, ids, p, lg));
    expect_near("prompt in one call", p - 1, lg, full + (p - 1) * V, V, KV_TOL);
    ck_assert_ok(llm_decoder_feed(d, ids + p, 3, lg));
    expect_near("chunk of 3", p + 2, lg, full + (p + 2) * V, V, KV_TOL);
    ck_assert_ok(llm_decoder_feed(d, ids + p + 3, 1, NULL));
    for (int64_t t = p + 4; t < T; t++) {
        ck_assert_ok(llm_decoder_feed(d, &ids[t], 1, lg));
        expect_near("after the chunks", t, lg, full + t * V, V, KV_TOL);
    }
    /* the whole context in one call */
    ck_assert_ok(llm_decoder_reset(d));
    ck_assert_ok(llm_decoder_feed(d, ids, T, lg));
    expect_near("the whole context in one call", T - 1, lg, full + (T - 1) * V, V, KV_TOL);
    llm_decoder_free(d);
    free(lg);
    free(full);
    llm_model_free(m);
}

START_TEST(kv_cache_learned_positions) {
    gpt_cfg c = gpt_defaults();
    kv_case(&c);
}
END_TEST

/* mask_zero: id 0 (present in the random ids) is padding, hidden from
 * attention in the decoder exactly as in the full forward */
START_TEST(kv_cache_mask_zero) {
    gpt_cfg c = gpt_defaults();
    c.mask_zero = 1;
    kv_case(&c);
}
END_TEST

START_TEST(kv_cache_sinusoidal_positions) {
    gpt_cfg c = gpt_defaults();
    c.positional = LLM_POSITIONAL_SINUSOIDAL;
    kv_case(&c);
    c.positional = LLM_POSITIONAL_NONE;
    kv_case(&c);
}
END_TEST

/* Untied head without a final layer norm, and a dense head (with bias),
 * both with dropout layers (identity in inference, skipped by the decoder). */
START_TEST(kv_cache_head_variants) {
    gpt_cfg c = gpt_defaults();
    c.head = HEAD_UNTIED;
    c.final_ln = 0;
    c.dropout = 1;
    c.layers = 1;
    c.heads = 1;
    kv_case(&c);
    c = gpt_defaults();
    c.head = HEAD_DENSE;
    c.dropout = 1;
    c.heads = 2;
    c.layers = 3;
    kv_case(&c);
}
END_TEST

/* A model built for sequences shorter than its context still decodes the
 * whole context (the decoder sizes its cache by the context). */
START_TEST(kv_cache_built_short) {
    gpt_cfg c = gpt_defaults();
    gpt_cfg full_cfg = c;
    c.seq = 3;
    llm_model *m = gpt_build(&c), *ref = gpt_build(&full_cfg); /* same seed, same weights */
    int64_t T = c.ctx, V = c.vocab;
    int32_t ids[16];
    random_ids(ids, T, 0, V, 5);
    float full[16 * 13], lg[13];
    predict_logits(ref, ids, 1, T, V, full);
    llm_decoder *d = NULL;
    ck_assert_ok(llm_decoder_create(&d, m));
    for (int64_t t = 0; t < T; t++) {
        ck_assert_ok(llm_decoder_feed(d, &ids[t], 1, lg));
        expect_near("short-built model vs full forward", t, lg, full + t * V, V, KV_TOL);
    }
    llm_decoder_free(d);
    llm_model_free(ref);
    llm_model_free(m);
}
END_TEST

/* Past the context the decoder keeps the newest ctx/2 tokens of its window
 * (recomputing their cache) and goes on; its logits are then those of a full
 * forward over the retained window. Feeding everything in one call ends in
 * the same window. */
static void window_case(int64_t ctx) {
    gpt_cfg c = gpt_defaults();
    c.ctx = ctx;
    c.heads = 2;
    llm_model *m = gpt_build(&c);
    int64_t V = c.vocab;
    enum { N = 29 };
    int32_t ids[N], win[32], padded[32];
    random_ids(ids, N, 0, V, 123);
    float full[32 * 13], lg[13];
    ck_assert_int_le(ctx, 32);
    llm_decoder *d = NULL;
    ck_assert_ok(llm_decoder_create(&d, m));
    int64_t len = 0, shifts = 0;
    for (int64_t i = 0; i < N; i++) {
        if (len == ctx) {
            int64_t keep = ctx / 2;
            memmove(win, win + len - keep, (size_t)keep * sizeof *win);
            len = keep;
            shifts++;
        }
        win[len++] = ids[i];
        ck_assert_ok(llm_decoder_feed(d, &ids[i], 1, lg));
        int64_t got = -1;
        ck_assert_ok(llm_decoder_length(d, &got));
        ck_assert_int_eq(got, len);
        /* the window padded to ctx with any token: causality hides the tail */
        for (int64_t t = 0; t < ctx; t++) padded[t] = t < len ? win[t] : (int32_t)((t * 5) % V);
        predict_logits(m, padded, 1, ctx, V, full);
        expect_near("sliding window vs full forward over the window", i, lg, full + (len - 1) * V, V, KV_TOL);
    }
    ck_assert_int_ge(shifts, 3);
    float last[13];
    memcpy(last, lg, sizeof last);
    ck_assert_ok(llm_decoder_reset(d));
    ck_assert_ok(llm_decoder_feed(d, ids, N, lg));
    int64_t got = -1;
    ck_assert_ok(llm_decoder_length(d, &got));
    ck_assert_int_eq(got, len);
    expect_near("all tokens in one call vs one by one", N - 1, lg, last, V, KV_TOL);
    llm_decoder_free(d);
    llm_model_free(m);
}

START_TEST(kv_cache_sliding_window) {
    window_case(8);
    window_case(7);
}
END_TEST

/* ---- generation ---- */

static llm_model *gen_model(void) {
    gpt_cfg c = gpt_defaults();
    c.vocab = 64;
    c.ctx = 16;
    c.dim = 16;
    c.heads = 2;
    c.layers = 1;
    c.scale = 0.4f;
    return gpt_build(&c);
}

static const int32_t PROMPT[3] = { 5, 17, 42 };

static void generate(llm_model *m, const llm_generate_options *o, int32_t *out, int64_t cap, int64_t *n) {
    *n = -1;
    ck_assert_ok(llm_model_generate(m, PROMPT, 3, o, out, cap, n));
}

START_TEST(generate_deterministic) {
    llm_model *m = gen_model();
    llm_generate_options o;
    llm_generate_options_init(&o);
    o.max_tokens = 24; /* prompt + 24 > context: the window slides */
    o.temperature = 1.0f;
    o.seed = 7;
    int32_t a[24], b[24], c[24];
    int64_t na, nb, nc;
    generate(m, &o, a, 24, &na);
    generate(m, &o, b, 24, &nb);
    ck_assert_int_eq(na, 24);
    ck_assert_int_eq(nb, 24);
    ck_assert_msg(memcmp(a, b, sizeof a) == 0, "the same seed gave different tokens");
    for (int i = 0; i < 24; i++) ck_assert(a[i] >= 0 && a[i] < 64);
    o.seed = 8;
    generate(m, &o, c, 24, &nc);
    ck_assert_int_eq(nc, 24);
    ck_assert_msg(memcmp(a, c, sizeof a) != 0, "seeds 7 and 8 gave the same 24 tokens");
    int distinct = 0;
    for (int i = 0; i < 24; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= a[j] == a[i];
        distinct += !seen;
    }
    ck_assert_msg(distinct >= 8, "temperature 1 on a random model gave only %d distinct tokens", distinct);
    llm_model_free(m);
}
END_TEST

/* Greedy decoding picks the argmax of the decoder's logits at every step
 * (checked against full forward passes while the text fits the context),
 * whatever the seed. */
START_TEST(generate_greedy_is_argmax) {
    llm_model *m = gen_model();
    enum { V = 64, CTX = 16, N = 20 };
    llm_generate_options o;
    llm_generate_options_init(&o);
    o.max_tokens = N;
    o.temperature = 0.0f;
    int32_t out[N], out2[N];
    int64_t n;
    generate(m, &o, out, N, &n);
    ck_assert_int_eq(n, N);
    o.seed = 999;
    generate(m, &o, out2, N, &n);
    ck_assert_msg(memcmp(out, out2, sizeof out) == 0, "greedy decoding depends on the seed");

    int32_t text[3 + N];
    memcpy(text, PROMPT, sizeof PROMPT);
    memcpy(text + 3, out, sizeof out);
    llm_decoder *d = NULL;
    ck_assert_ok(llm_decoder_create(&d, m));
    float lg[V], full[CTX * V];
    ck_assert_ok(llm_decoder_feed(d, PROMPT, 3, lg));
    int checked_full = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(out[i] == argmax(lg, V), "greedy token %d is %d, the argmax is %d", i, out[i], argmax(lg, V));
        int64_t len = 3 + i; /* tokens before out[i] */
        if (len <= CTX && top_gap(lg, V) > 1e-3f) {
            int32_t padded[CTX];
            for (int t = 0; t < CTX; t++) padded[t] = t < len ? text[t] : 0;
            predict_logits(m, padded, 1, CTX, V, full);
            ck_assert_int_eq(out[i], argmax(full + (len - 1) * V, V));
            checked_full++;
        }
        ck_assert_ok(llm_decoder_feed(d, &out[i], 1, lg));
    }
    ck_assert_int_ge(checked_full, 10);
    llm_decoder_free(d);
    llm_model_free(m);
}
END_TEST

typedef struct collect {
    int32_t tokens[64];
    int n, stop_after;
} collect;

static int on_token(int32_t token, void *user) {
    collect *c = user;
    if (c->n < 64) c->tokens[c->n] = token;
    c->n++;
    return c->stop_after > 0 && c->n >= c->stop_after;
}

START_TEST(generate_streaming) {
    llm_model *m = gen_model();
    llm_generate_options o;
    llm_generate_options_init(&o);
    o.max_tokens = 20;
    o.seed = 3;
    int32_t ref[20], out[20];
    int64_t n;
    generate(m, &o, ref, 20, &n);
    ck_assert_int_eq(n, 20);

    collect c;
    memset(&c, 0, sizeof c);
    o.on_token = on_token;
    o.user = &c;
    generate(m, &o, out, 20, &n);
    ck_assert_int_eq(n, 20);
    ck_assert_int_eq(c.n, 20);
    ck_assert_msg(memcmp(c.tokens, ref, sizeof ref) == 0, "the callback saw other tokens");
    ck_assert_msg(memcmp(out, ref, sizeof ref) == 0, "a callback changed the tokens");

    /* only the callback (out NULL) */
    memset(&c, 0, sizeof c);
    ck_assert_ok(llm_model_generate(m, PROMPT, 3, &o, NULL, 0, &n));
    ck_assert_int_eq(n, 20);
    ck_assert_int_eq(c.n, 20);
    ck_assert_msg(memcmp(c.tokens, ref, sizeof ref) == 0, "the callback (no out buffer) saw other tokens");

    /* stopping early */
    memset(&c, 0, sizeof c);
    c.stop_after = 5;
    for (int i = 0; i < 20; i++) out[i] = -7;
    generate(m, &o, out, 20, &n);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(c.n, 5);
    ck_assert_msg(memcmp(out, ref, 5 * sizeof *out) == 0, "the first 5 tokens differ");
    ck_assert_int_eq(out[5], -7);
    llm_model_free(m);
}
END_TEST

START_TEST(generate_stop_token) {
    llm_model *m = gen_model();
    llm_generate_options o;
    llm_generate_options_init(&o);
    o.max_tokens = 24;
    o.seed = 5;
    int32_t ref[24], out[24];
    int64_t n;
    generate(m, &o, ref, 24, &n);
    ck_assert_int_eq(n, 24);
    int32_t stop = ref[12];
    int first = 0;
    while (ref[first] != stop) first++;
    o.stop_token = stop;
    for (int i = 0; i < 24; i++) out[i] = -7;
    generate(m, &o, out, 24, &n);
    ck_assert_int_eq(n, first + 1);
    ck_assert_msg(memcmp(out, ref, (size_t)(first + 1) * sizeof *out) == 0, "tokens before the stop token differ");
    ck_assert_int_eq(out[first], stop);
    if (first + 1 < 24) ck_assert_int_eq(out[first + 1], -7);
    /* a stop token that never comes changes nothing */
    int32_t absent = -1;
    for (int32_t t = 0; t < 64 && absent < 0; t++) {
        int seen = 0;
        for (int i = 0; i < 24; i++) seen |= ref[i] == t;
        if (!seen) absent = t;
    }
    ck_assert_int_ge(absent, 0);
    o.stop_token = absent;
    generate(m, &o, out, 24, &n);
    ck_assert_int_eq(n, 24);
    ck_assert_msg(memcmp(out, ref, sizeof ref) == 0, "an absent stop token changed the text");
    /* max_tokens 0: nothing */
    o.max_tokens = 0;
    generate(m, &o, out, 24, &n);
    ck_assert_int_eq(n, 0);
    llm_model_free(m);
}
END_TEST

/* ---- llm_sample_token ---- */

static const float LOGITS10[10] = { 0.5f, 2.0f, -1.0f, 1.8f, 0.0f, -0.5f, 1.0f, 0.2f, -2.0f, 0.9f };

static int32_t sample1(const float *logits, int64_t V, const llm_generate_options *o, uint64_t *counter) {
    int32_t tok = -1;
    uint64_t before = *counter;
    ck_assert_ok(llm_sample_token(logits, V, o, counter, &tok));
    ck_assert_msg(*counter == before + 1, "the counter went from %llu to %llu", (unsigned long long)before,
                  (unsigned long long)*counter);
    ck_assert(tok >= 0 && tok < V);
    return tok;
}

START_TEST(sample_top_k_top_p) {
    llm_generate_options o;
    llm_generate_options_init(&o);
    uint64_t counter = 0;
    /* top_k = 1, and a tiny top_p, and temperature 0: the argmax */
    o.top_k = 1;
    for (int i = 0; i < 300; i++) ck_assert_int_eq(sample1(LOGITS10, 10, &o, &counter), 1);
    o.top_k = 0;
    o.top_p = 0.05f;
    for (int i = 0; i < 300; i++) ck_assert_int_eq(sample1(LOGITS10, 10, &o, &counter), 1);
    o.top_p = 1.0f;
    o.temperature = 0.0f;
    for (int i = 0; i < 50; i++) ck_assert_int_eq(sample1(LOGITS10, 10, &o, &counter), 1);
    /* top_k = 2: only tokens 1 and 3, in the ratio e^2 : e^1.8 */
    o.temperature = 1.0f;
    o.top_k = 2;
    int count[10] = {0};
    for (int i = 0; i < 1000; i++) count[sample1(LOGITS10, 10, &o, &counter)]++;
    ck_assert_int_eq(count[1] + count[3], 1000);
    double want = exp(2.0) / (exp(2.0) + exp(1.8));
    ck_assert_msg(fabs(count[1] / 1000.0 - want) < 0.05, "top_k=2: token 1 drawn %d/1000 times, expected %.3f",
                  count[1], want);
    /* top_p = 0.6 keeps the smallest head of the distribution reaching 0.6 */
    o.top_k = 0;
    o.top_p = 0.6f;
    double p[10], z = 0.0;
    for (int i = 0; i < 10; i++) z += p[i] = exp((double)LOGITS10[i]);
    /* descending order 1, 3, 6, 9, 0, ...: p1 + p3 = 0.57 < 0.6 <= p1 + p3 + p6 = 0.68 */
    ck_assert((p[1] + p[3]) / z < 0.6 && (p[1] + p[3] + p[6]) / z >= 0.6);
    memset(count, 0, sizeof count);
    for (int i = 0; i < 1000; i++) count[sample1(LOGITS10, 10, &o, &counter)]++;
    ck_assert_int_eq(count[1] + count[3] + count[6], 1000);
    ck_assert(count[1] > 0 && count[3] > 0 && count[6] > 0);
    /* -inf logits are never drawn */
    const float masked[4] = { -INFINITY, 0.0f, -INFINITY, 0.0f };
    o.top_p = 1.0f;
    for (int i = 0; i < 200; i++) {
        int32_t t = sample1(masked, 4, &o, &counter);
        ck_assert(t == 1 || t == 3);
    }
}
END_TEST

/* Temperature sharpens (< 1) or flattens (> 1) the distribution: empirical
 * frequencies over 2000 draws match softmax(logits / T). */
START_TEST(sample_temperature) {
    const float logits[4] = { 1.0f, 0.0f, 0.0f, 0.0f };
    const float temps[3] = { 0.5f, 1.0f, 2.0f };
    double freq[3];
    llm_generate_options o;
    llm_generate_options_init(&o);
    o.seed = 1234;
    uint64_t counter = 0;
    for (int k = 0; k < 3; k++) {
        o.temperature = temps[k];
        int hits = 0;
        for (int i = 0; i < 2000; i++) hits += sample1(logits, 4, &o, &counter) == 0;
        freq[k] = hits / 2000.0;
        double e = exp(1.0 / temps[k]), want = e / (e + 3.0);
        ck_assert_msg(fabs(freq[k] - want) < 0.04, "temperature %g: token 0 drawn %.3f of the time, expected %.3f",
                      (double)temps[k], freq[k], want);
    }
    ck_assert(freq[0] > freq[1] + 0.1 && freq[1] > freq[2] + 0.05);
    /* the same seed and counter give the same token; the seed matters */
    o.temperature = 1.0f;
    int32_t a[64], b[64], c[64];
    uint64_t ca = 100, cb = 100, cc = 100;
    for (int i = 0; i < 64; i++) {
        a[i] = sample1(LOGITS10, 10, &o, &ca);
        b[i] = sample1(LOGITS10, 10, &o, &cb);
    }
    o.seed = 1235;
    for (int i = 0; i < 64; i++) c[i] = sample1(LOGITS10, 10, &o, &cc);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
}
END_TEST

START_TEST(sample_invalid) {
    llm_generate_options o;
    uint64_t counter = 0;
    int32_t tok = -1;
    const float bad_t[] = { -1.0f, NAN, INFINITY };
    for (size_t i = 0; i < sizeof bad_t / sizeof bad_t[0]; i++) {
        llm_generate_options_init(&o);
        o.temperature = bad_t[i];
        ck_assert_fails(llm_sample_token(LOGITS10, 10, &o, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);
    }
    llm_generate_options_init(&o);
    o.top_k = -1;
    ck_assert_fails(llm_sample_token(LOGITS10, 10, &o, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);
    const float bad_p[] = { 0.0f, -0.5f, 1.5f, NAN };
    for (size_t i = 0; i < sizeof bad_p / sizeof bad_p[0]; i++) {
        llm_generate_options_init(&o);
        o.top_p = bad_p[i];
        ck_assert_fails(llm_sample_token(LOGITS10, 10, &o, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);
    }
    llm_generate_options_init(&o);
    ck_assert_fails(llm_sample_token(LOGITS10, 0, &o, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_sample_token(NULL, 10, &o, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_sample_token(LOGITS10, 10, NULL, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_sample_token(LOGITS10, 10, &o, NULL, &tok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_sample_token(LOGITS10, 10, &o, &counter, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(counter, 0); /* no failed call drew */
    const float nan_logit[3] = { 0.0f, NAN, 1.0f };
    ck_assert_fails(llm_sample_token(nan_logit, 3, &o, &counter, &tok), LLM_ERR_NUMERIC);
    o.size = 3; /* not a size this library wrote */
    ck_assert_fails(llm_sample_token(LOGITS10, 10, &o, &counter, &tok), LLM_ERR_INVALID_ARGUMENT);

    /* llm_model_generate's own checks */
    llm_model *m = gen_model();
    llm_generate_options_init(&o);
    o.max_tokens = 8;
    int32_t out[8];
    int64_t n = -1;
    ck_assert_fails(llm_model_generate(NULL, PROMPT, 3, &o, out, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_generate(m, PROMPT, 0, &o, out, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_generate(m, PROMPT, 3, &o, out, 7, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_generate(m, PROMPT, 3, &o, NULL, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_generate(m, PROMPT, 3, &o, out, 8, NULL), LLM_ERR_INVALID_ARGUMENT);
    const int32_t bad_prompt[2] = { 3, 64 };
    ck_assert_fails(llm_model_generate(m, bad_prompt, 2, &o, out, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    o.temperature = -2.0f;
    ck_assert_fails(llm_model_generate(m, PROMPT, 3, &o, out, 8, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(n, 0);
    llm_model_free(m);
}
END_TEST

/* ---- saving ---- */

/* a fresh folder per test, removed by the teardown (which Check skips after a
 * failure in fork mode, as for test_model_io) */
static char tmpdir[64];
static char tmppath[128];

static void setup_dir(void) {
    setup();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/llm_tf_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(tmppath, sizeof tmppath, "%s/gpt.safetensors", tmpdir);
}

static void teardown_dir(void) {
    unlink(tmppath); /* may not exist */
    ck_assert_int_eq(rmdir(tmpdir), 0);
    teardown();
}

static long file_size(const char *path) {
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Saves, loads and compares predictions (bit for bit), parameters and a
 * seeded generation; returns the file size. */
static long round_trip(const gpt_cfg *c, const char *path, int64_t *param_count) {
    llm_model *m = gpt_build(c);
    ck_assert_ok(llm_model_save(m, path));
    llm_model *l = NULL;
    ck_assert_ok(llm_model_load(&l, be, path));
    int64_t T = c->ctx, V = c->vocab;
    int32_t ids[2 * 16];
    ck_assert_int_le(T, 16);
    random_ids(ids, 2 * T, c->mask_zero ? 1 : 0, V, 9);
    if (c->mask_zero) ids[2 * T - 1] = ids[2 * T - 2] = 0; /* padding in the second row */
    float *a = malloc((size_t)(2 * T * V) * sizeof *a), *b = malloc((size_t)(2 * T * V) * sizeof *b);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    predict_logits(m, ids, 2, T, V, a);
    predict_logits(l, ids, 2, T, V, b);
    ck_assert_msg(memcmp(a, b, (size_t)(2 * T * V) * sizeof *a) == 0, "the loaded model predicts differently");

    int nm = 0, nl = 0;
    ck_assert_ok(llm_model_num_params(m, &nm));
    ck_assert_ok(llm_model_num_params(l, &nl));
    ck_assert_int_eq(nm, nl);
    int64_t cm = 0, cl = 0;
    ck_assert_ok(llm_model_param_count(m, &cm));
    ck_assert_ok(llm_model_param_count(l, &cl));
    ck_assert_int_eq(cm, cl);
    *param_count = cm;

    if (c->causal) {
        llm_generate_options o;
        llm_generate_options_init(&o);
        o.max_tokens = 12;
        o.seed = 21;
        int32_t ga[12], gb[12];
        int64_t na = 0, nb = 0;
        ck_assert_ok(llm_model_generate(m, ids, 2, &o, ga, 12, &na));
        ck_assert_ok(llm_model_generate(l, ids, 2, &o, gb, 12, &nb));
        ck_assert_int_eq(na, nb);
        ck_assert(memcmp(ga, gb, sizeof ga) == 0);
    }
    free(a);
    free(b);
    llm_model_free(l);
    llm_model_free(m);
    long size = file_size(path);
    ck_assert_int_eq(unlink(path), 0);
    return size;
}

START_TEST(save_load_round_trip) {
    const char *path = tmppath;
    gpt_cfg c = gpt_defaults();
    int64_t tied_count = 0, untied_count = 0, n = 0;
    long tied_size = round_trip(&c, path, &tied_count);
    c.head = HEAD_UNTIED;
    long untied_size = round_trip(&c, path, &untied_count);
    /* the tied file stores the token table once */
    ck_assert_int_eq(untied_count - tied_count, c.vocab * c.dim);
    ck_assert_msg(untied_size - tied_size >= (long)(c.vocab * c.dim * 4),
                  "tied file %ld bytes, untied %ld: the table seems stored twice", tied_size, untied_size);
    /* other options survive: sinusoidal positions, padding mask, an encoder
     * stack, no final layer norm, dense head */
    c = gpt_defaults();
    c.positional = LLM_POSITIONAL_SINUSOIDAL;
    c.mask_zero = 1;
    c.causal = 0;
    c.final_ln = 0;
    c.head = HEAD_DENSE;
    c.heads = 2;
    round_trip(&c, path, &n);
    c = gpt_defaults();
    c.positional = LLM_POSITIONAL_NONE;
    c.mask_zero = 1;
    c.layers = 1;
    round_trip(&c, path, &n);
}
END_TEST

/* ---- errors ---- */

START_TEST(decoder_errors) {
    llm_decoder *d = (llm_decoder *)&d;
    gpt_cfg c = gpt_defaults();
    /* not built */
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    add_layers(m, &c);
    ck_assert_fails(llm_decoder_create(&d, m), LLM_ERR_STATE);
    ck_assert_ptr_null(d);
    llm_model_free(m);
    ck_assert_fails(llm_decoder_create(NULL, NULL), LLM_ERR_INVALID_ARGUMENT);

    /* an LSTM language model */
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(13, 8)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(8, LLM_RETURN_SEQUENCES)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(13, LLM_ACT_NONE)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){8}));
    ck_assert_fails(llm_decoder_create(&d, m), LLM_ERR_NOT_SUPPORTED);
    int32_t out[4];
    int64_t n = -1;
    llm_generate_options o;
    llm_generate_options_init(&o);
    o.max_tokens = 4;
    ck_assert_fails(llm_model_generate(m, PROMPT, 1, &o, out, 4, &n), LLM_ERR_NOT_SUPPORTED);
    llm_model_free(m);

    /* a head whose vocabulary differs from the embedding's */
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(13, 8, 8)));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 1)));
    ck_assert_ok(llm_model_add(m, llm_layer_lm_head(40, 0)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){8}));
    ck_assert_fails(llm_decoder_create(&d, m), LLM_ERR_SHAPE);
    llm_model_free(m);

    /* blocks that are not causal */
    c.causal = 0;
    m = gpt_build(&c);
    ck_assert_fails(llm_decoder_create(&d, m), LLM_ERR_NOT_SUPPORTED);
    llm_model_free(m);

    /* a classifier head (pooling, dense with an activation) */
    c = gpt_defaults();
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(13, 16, 16)));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(4, 1)));
    ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){16}));
    ck_assert_fails(llm_decoder_create(&d, m), LLM_ERR_NOT_SUPPORTED);
    llm_model_free(m);
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(13, 16, 16)));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(4, 1)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(13, LLM_ACT_SOFTMAX)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){16}));
    ck_assert_fails(llm_decoder_create(&d, m), LLM_ERR_NOT_SUPPORTED);
    llm_model_free(m);

    /* tokens outside the vocabulary, empty or NULL input */
    m = gpt_build(&c);
    ck_assert_ok(llm_decoder_create(&d, m));
    float lg[13];
    const int32_t ok2[2] = { 1, 2 };
    ck_assert_ok(llm_decoder_feed(d, ok2, 2, lg));
    const int32_t bad[3][2] = { { 1, 13 }, { -1, 2 }, { 1000000, 0 } };
    for (int i = 0; i < 3; i++) ck_assert_fails(llm_decoder_feed(d, bad[i], 2, lg), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_decoder_feed(d, ok2, 0, lg), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_decoder_feed(d, NULL, 1, lg), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_decoder_feed(NULL, ok2, 1, lg), LLM_ERR_INVALID_ARGUMENT);
    int64_t len = -1;
    ck_assert_ok(llm_decoder_length(d, &len));
    ck_assert_int_eq(len, 2); /* rejected input left the history alone */
    ck_assert_fails(llm_decoder_length(d, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_decoder_vocab_size(NULL, &len), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_decoder_reset(NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_decoder_free(d);
    llm_decoder_free(NULL);
    llm_model_free(m);
}
END_TEST

static llm_status build_status(llm_layer *first, llm_layer *second, llm_layer *third, int64_t T) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    llm_status s = llm_model_add(m, first);
    if (s == LLM_OK && second) s = llm_model_add(m, second);
    else if (second) llm_layer_free(second);
    if (s == LLM_OK && third) s = llm_model_add(m, third);
    else if (third) llm_layer_free(third);
    if (s == LLM_OK) s = llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){T});
    llm_model_free(m);
    return s;
}

START_TEST(build_errors) {
    /* heads that do not divide the width */
    ck_assert_fails(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_transformer_block(5, 1), NULL, 8),
                    LLM_ERR_SHAPE);
    ck_assert_fails(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_attention(8, 1), NULL, 8),
                    LLM_ERR_SHAPE);
    ck_assert_ok(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_transformer_block(6, 1), NULL, 8));
    ck_assert_ok(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_attention(3, 0), NULL, 8));
    /* a tied head needs a transformer_embedding with its vocabulary */
    ck_assert_fails(build_status(llm_layer_embedding(13, 12), llm_layer_lm_head(13, 1), NULL, 8), LLM_ERR_STATE);
    ck_assert_fails(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_lm_head(12, 1), NULL, 8),
                    LLM_ERR_SHAPE);
    ck_assert_ok(build_status(llm_layer_embedding(13, 12), llm_layer_lm_head(13, 0), NULL, 8));
    ck_assert_ok(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_transformer_block(3, 1),
                              llm_layer_lm_head(13, 1), 8));
    /* sequences longer than the context */
    ck_assert_fails(build_status(llm_layer_transformer_embedding(13, 16, 12), llm_layer_transformer_block(3, 1),
                                 llm_layer_lm_head(13, 1), 17),
                    LLM_ERR_SHAPE);
    ck_assert_ok(build_status(llm_layer_transformer_embedding(13, 16, 12), NULL, NULL, 16));
    /* a block on token ids, not vectors */
    ck_assert_fails(build_status(llm_layer_transformer_block(3, 1), NULL, NULL, 8), LLM_ERR_DTYPE);
}
END_TEST

static void expect_bad_layer(llm_layer *l, const char *what) {
    ck_assert_ptr_nonnull(l);
    ck_assert_msg(llm_layer_status(l) == LLM_ERR_INVALID_ARGUMENT, "%s: status %d", what, (int)llm_layer_status(l));
    ck_assert_msg(llm_layer_error(l)[0] != '\0', "%s: no message", what);
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_fails(llm_model_add(m, l), LLM_ERR_INVALID_ARGUMENT);
    llm_model_free(m);
}

START_TEST(constructor_errors) {
    llm_transformer_embedding_options eo;
#define EMB_BAD(field, value) do { \
        llm_transformer_embedding_options_init(&eo); eo.vocab = 13; eo.context = 8; eo.dim = 12; \
        eo.field = value; expect_bad_layer(llm_layer_transformer_embedding_ex(&eo), "embedding " #field " = " #value); \
    } while (0)
    EMB_BAD(vocab, 1);
    EMB_BAD(vocab, -5);
    EMB_BAD(context, 0);
    EMB_BAD(dim, 0);
    EMB_BAD(positional, (llm_positional)7);
    EMB_BAD(init_std, -1.0f);
    EMB_BAD(init_std, NAN);
    llm_transformer_embedding_options_init(&eo);
    eo.vocab = 13;
    eo.context = 8;
    eo.dim = 11;
    eo.positional = LLM_POSITIONAL_SINUSOIDAL;
    expect_bad_layer(llm_layer_transformer_embedding_ex(&eo), "sinusoidal positions, odd width");
    eo.positional = LLM_POSITIONAL_LEARNED;
    llm_layer *ok = llm_layer_transformer_embedding_ex(&eo);
    ck_assert_int_eq(llm_layer_status(ok), LLM_OK);
    ck_assert_str_eq(llm_layer_kind(ok), "transformer_embedding");
    llm_layer_free(ok);
    expect_bad_layer(llm_layer_transformer_embedding_ex(NULL), "embedding NULL options");
    expect_bad_layer(llm_layer_transformer_embedding(1, 8, 12), "embedding vocab 1");

    llm_transformer_block_options bo;
#define BLOCK_BAD(field, value) do { \
        llm_transformer_block_options_init(&bo); bo.field = value; \
        expect_bad_layer(llm_layer_transformer_block_ex(&bo), "block " #field " = " #value); \
    } while (0)
    BLOCK_BAD(heads, 0);
    BLOCK_BAD(heads, -2);
    BLOCK_BAD(mlp_hidden, -1);
    BLOCK_BAD(dropout, 1.0f);
    BLOCK_BAD(dropout, -0.1f);
    BLOCK_BAD(eps, 0.0f);
    BLOCK_BAD(eps, NAN);
    BLOCK_BAD(init_std, -1.0f);
    expect_bad_layer(llm_layer_transformer_block_ex(NULL), "block NULL options");
    expect_bad_layer(llm_layer_transformer_block(0, 1), "block 0 heads");

    llm_attention_options ao;
    llm_attention_options_init(&ao);
    ao.heads = 0;
    expect_bad_layer(llm_layer_attention_ex(&ao), "attention 0 heads");
    llm_attention_options_init(&ao);
    ao.init_std = INFINITY;
    expect_bad_layer(llm_layer_attention_ex(&ao), "attention init_std inf");
    expect_bad_layer(llm_layer_attention(-1, 1), "attention -1 heads");

    llm_lm_head_options ho;
    llm_lm_head_options_init(&ho);
    ho.vocab = 1;
    expect_bad_layer(llm_layer_lm_head_ex(&ho), "lm_head vocab 1");
    llm_lm_head_options_init(&ho);
    ho.vocab = 13;
    ho.init_std = NAN;
    expect_bad_layer(llm_layer_lm_head_ex(&ho), "lm_head init_std NaN");
    expect_bad_layer(llm_layer_lm_head_ex(NULL), "lm_head NULL options");
    expect_bad_layer(llm_layer_lm_head(0, 1), "lm_head vocab 0");
    ho.init_std = 0.02f;
    ho.size = 1; /* not a size this library wrote */
    expect_bad_layer(llm_layer_lm_head_ex(&ho), "lm_head bad options size");
#undef EMB_BAD
#undef BLOCK_BAD
}
END_TEST

/* ---- a tiny language model learns ---- */

/* One block on a repeating 1 2 3 1 2 3 ... pattern: AdamW drives the loss
 * below 10% of its start within 100 steps, and greedy generation continues
 * the pattern (past the context, through the sliding window). */
START_TEST(tiny_lm_learns_pattern) {
    enum { V = 4, CTX = 12, B = 6, STEPS = 100 };
    gpt_cfg c = gpt_defaults();
    c.vocab = V;
    c.ctx = CTX;
    c.dim = 16;
    c.heads = 2;
    c.layers = 1;
    c.scale = 0.0f; /* the library's own init */
    c.seed = 3;
    llm_model *m = gpt_build(&c);
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_adamw(&opt, 1e-2f, 0.01f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS, opt, LLM_METRIC_ACCURACY));
    llm_optimizer_free(opt);
    int32_t x[B * CTX], y[B * CTX];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < CTX; t++) {
            x[b * CTX + t] = 1 + (b + t) % 3;
            y[b * CTX + t] = 1 + (b + t + 1) % 3;
        }
    llm_tensor *tx = NULL, *ty = NULL;
    ck_assert_ok(llm_tensor_from_host(&tx, be, LLM_DTYPE_I32, 2, (int64_t[]){B, CTX}, x, sizeof x));
    ck_assert_ok(llm_tensor_from_host(&ty, be, LLM_DTYPE_I32, 2, (int64_t[]){B, CTX}, y, sizeof y));
    float first = -1.0f, loss = -1.0f, acc = -1.0f;
    for (int s = 0; s < STEPS; s++) {
        ck_assert_ok(llm_model_train_on_batch(m, tx, ty, &loss, &acc));
        if (s == 0) first = loss;
    }
    ck_assert_msg(first > 1.0f, "initial loss %g: expected about ln 4", (double)first);
    ck_assert_msg(loss < 0.1f * first, "loss went from %g to %g in %d steps", (double)first, (double)loss, STEPS);
    ck_assert_msg(acc > 0.99f, "final accuracy %g", (double)acc);

    llm_generate_options o;
    llm_generate_options_init(&o);
    o.temperature = 0.0f;
    o.max_tokens = 20;
    const int32_t prompt[4] = { 2, 3, 1, 2 };
    int32_t out[20];
    int64_t n = 0;
    ck_assert_ok(llm_model_generate(m, prompt, 4, &o, out, 20, &n));
    ck_assert_int_eq(n, 20);
    for (int i = 0; i < 20; i++)
        ck_assert_msg(out[i] == 1 + (i + 2) % 3, "generated token %d is %d, the pattern wants %d", i, out[i],
                      1 + (i + 2) % 3);
    llm_tensor_free(tx);
    llm_tensor_free(ty);
    llm_model_free(m);
}
END_TEST

/* A Transformer classifier whose text pipeline encodes with the model's BPE
 * tokenizer: predict_text equals vectorize + predict, and both survive a save
 * and load. */
START_TEST(bpe_text_pipeline) {
    static const char corpus[] =
        "the quick brown fox jumps over the lazy dog. the dog sleeps; the fox runs away. "
        "buy cheap watches now!!! click here to win money, free money, free offer. ";
    llm_bpe *bpe = NULL;
    llm_bpe_train_options to;
    llm_bpe_train_options_init(&to);
    to.vocab_size = 300;
    ck_assert_ok(llm_bpe_train(&bpe, corpus, sizeof corpus - 1, &to));
    int32_t V = 0;
    ck_assert_ok(llm_bpe_vocab_size(bpe, &V));
    ck_assert_int_gt(V, 258);

    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = 12;
    vo.padding = LLM_SEQ_POST;
    vo.truncation = LLM_SEQ_PRE;
    /* the vectorizer pads and truncates like llm_vectorize */
    int32_t row[12], all[64];
    int64_t ntok = 0;
    size_t n = 0;
    const char *msg = "free money for the lazy fox";
    ck_assert_ok(llm_bpe_encode(bpe, msg, strlen(msg), all, 64, &n));
    ck_assert_ok(llm_bpe_vectorize(bpe, msg, strlen(msg), &vo, row, 12, &ntok));
    ck_assert_int_eq(ntok, (int64_t)n);
    int64_t keep = n < 12 ? (int64_t)n : 12;
    for (int64_t i = 0; i < 12; i++)
        ck_assert_int_eq(row[i], i < keep ? all[(int64_t)n - keep + i] : LLM_BPE_PAD);
    ck_assert_fails(llm_bpe_vectorize(bpe, msg, strlen(msg), &vo, row, 11, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_vectorize_options words_only = vo; /* subwords of words are for word vocabularies */
    words_only.char_ngram_buckets = 16;
    ck_assert_fails(llm_bpe_vectorize(bpe, msg, strlen(msg), &words_only, row, 12, NULL), LLM_ERR_INVALID_ARGUMENT);

    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding(V, 12, 8)));
    ck_assert_ok(llm_model_add(m, llm_layer_transformer_block(2, 0)));
    ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){12}));
    randomize(m, 5, 0.3f);
    /* no vocabulary and no tokenizer: refused; with the tokenizer: accepted */
    ck_assert_fails(llm_model_set_text_pipeline(m, NULL, &vo, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_set_tokenizer(m, bpe));
    ck_assert_fails(llm_model_set_text_pipeline(m, NULL, &words_only, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_model_set_text_pipeline(m, NULL, &vo, NULL));
    const llm_bpe *mine = NULL;
    ck_assert_ok(llm_model_tokenizer(m, &mine));
    ck_assert_ptr_ne(mine, bpe); /* a copy */

    float p_text = -1, p_ids = -2;
    ck_assert_ok(llm_model_predict_text(m, msg, strlen(msg), &p_text, 1));
    llm_tensor *x = NULL, *y = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){1, 12}, row, sizeof row));
    ck_assert_ok(llm_model_predict(m, x, &y));
    ck_assert_ok(llm_tensor_to_host(y, &p_ids, sizeof p_ids));
    ck_assert_msg(p_text == p_ids, "predict_text %.9g vs predict %.9g", (double)p_text, (double)p_ids);

    char path[] = "/tmp/llm_tf_bpe_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_ok(llm_model_save(m, path));
    llm_model *back = NULL;
    ck_assert_ok(llm_model_load(&back, be, path));
    unlink(path);
    float p_back = -3;
    ck_assert_ok(llm_model_predict_text(back, msg, strlen(msg), &p_back, 1));
    ck_assert_msg(p_back == p_text, "after load %.9g vs %.9g", (double)p_back, (double)p_text);
    ck_assert_ok(llm_model_tokenizer(back, &mine));
    int32_t V2 = 0;
    ck_assert_ok(llm_bpe_vocab_size(mine, &V2));
    ck_assert_int_eq(V2, V);

    /* llm_model_copy_weights: a fresh model of the same layers gets them all */
    llm_model *fresh = NULL;
    ck_assert_ok(llm_model_sequential(&fresh, be));
    ck_assert_ok(llm_model_add(fresh, llm_layer_transformer_embedding(V, 12, 8)));
    ck_assert_ok(llm_model_add(fresh, llm_layer_transformer_block(2, 0)));
    ck_assert_ok(llm_model_add(fresh, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(fresh, llm_layer_dense(2, LLM_ACT_SOFTMAX)));
    ck_assert_ok(llm_model_build(fresh, LLM_DTYPE_I32, 1, (int64_t[]){12}));
    int copied = -1, np = 0;
    ck_assert_ok(llm_model_copy_weights(fresh, m, &copied));
    ck_assert_ok(llm_model_num_params(m, &np));
    ck_assert_int_eq(copied, np - 2); /* all but the dense layer, whose shape differs */
    float a[8 * 12], b[8 * 12];
    ck_assert_ok(llm_model_get_param(m, "transformer_embedding_0.position", a, sizeof a));
    ck_assert_ok(llm_model_get_param(fresh, "transformer_embedding_0.position", b, sizeof b));
    ck_assert(memcmp(a, b, sizeof a) == 0);

    llm_model_free(fresh);
    llm_tensor_free(x);
    llm_tensor_free(y);
    llm_model_free(back);
    llm_model_free(m);
    llm_bpe_free(bpe);
}
END_TEST

Suite *suite_transformer(void) {
    Suite *s = suite_create("transformer");
    TCase *kv = tcase_create("kv_cache");
    tcase_add_checked_fixture(kv, setup, teardown);
    tcase_add_test(kv, kv_cache_learned_positions);
    tcase_add_test(kv, kv_cache_mask_zero);
    tcase_add_test(kv, kv_cache_sinusoidal_positions);
    tcase_add_test(kv, kv_cache_head_variants);
    tcase_add_test(kv, kv_cache_built_short);
    tcase_add_test(kv, kv_cache_sliding_window);
    suite_add_tcase(s, kv);
    TCase *gen = tcase_create("generate");
    tcase_add_checked_fixture(gen, setup, teardown);
    tcase_add_test(gen, generate_deterministic);
    tcase_add_test(gen, generate_greedy_is_argmax);
    tcase_add_test(gen, generate_streaming);
    tcase_add_test(gen, generate_stop_token);
    tcase_add_test(gen, sample_top_k_top_p);
    tcase_add_test(gen, sample_temperature);
    tcase_add_test(gen, sample_invalid);
    suite_add_tcase(s, gen);
    TCase *io = tcase_create("save_load");
    tcase_add_checked_fixture(io, setup_dir, teardown_dir);
    tcase_add_test(io, save_load_round_trip);
    tcase_add_test(io, bpe_text_pipeline);
    suite_add_tcase(s, io);
    TCase *misc = tcase_create("model");
    tcase_add_checked_fixture(misc, setup, teardown);
    tcase_add_test(misc, decoder_errors);
    tcase_add_test(misc, build_errors);
    tcase_add_test(misc, constructor_errors);
    tcase_add_test(misc, tiny_lm_learns_pattern);
    suite_add_tcase(s, misc);
    return s;
}
