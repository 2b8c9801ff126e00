/* Models as graphs (include/llm/graph.h): merge layers forward and backward,
 * shared layers, several inputs and outputs, the two-branch classifier's
 * gradient check, files, text pipelines, checkpoints, ensembles, and the
 * errors of graphs that do not fit together. */
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <unistd.h>
#include "testutil.h"

/* the same tolerances as test_gradcheck.c */
#define GC_EPS 1e-2
#define GC_ATOL 2e-4
#define GC_RTOL 1e-2

static llm_backend *be;
static char dir[64];

static void setup(void) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    o.threads = 1;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
    snprintf(dir, sizeof dir, "/tmp/llm_graph_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    llm_backend_free(be);
    be = NULL;
}

static llm_model *functional(void) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_functional(&m, be));
    return m;
}

static llm_node *input(llm_model *m, llm_dtype dt, int ndim, const int64_t *shape) {
    llm_node *n = NULL;
    ck_assert_ok(llm_model_input(m, dt, ndim, shape, &n));
    return n;
}

static llm_node *apply(llm_model *m, llm_layer *l, llm_node *x) {
    llm_node *n = NULL;
    ck_assert_ok(llm_model_apply(m, l, x, &n));
    return n;
}

static llm_node *merge2(llm_model *m, llm_layer *l, llm_node *a, llm_node *b) {
    llm_node *in[2] = { a, b }, *n = NULL;
    ck_assert_ok(llm_model_merge(m, l, 2, in, &n));
    return n;
}

static void outputs1(llm_model *m, llm_node *o) { ck_assert_ok(llm_model_set_outputs(m, 1, &o)); }

static llm_tensor *floats(int ndim, const int64_t *shape, uint64_t seed) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *h = malloc((size_t)n * 4);
    tu_fill(h, n, seed, -1.0f, 1.0f);
    llm_tensor *t = NULL;
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, ndim, shape, h, (size_t)n * 4));
    free(h);
    return t;
}

/* B sequences of T ids in [1, vocab), the i-th padded (id 0) after len[i] steps */
static llm_tensor *ids(int64_t B, int64_t T, int32_t vocab, const int *len, uint64_t seed) {
    int32_t *h = calloc((size_t)(B * T), 4);
    uint64_t s = seed;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < (len ? len[b] : T); t++) h[b * T + t] = 1 + (int32_t)(tu_next(&s) % (uint64_t)(vocab - 1));
    int64_t shape[2] = { B, T };
    llm_tensor *x = NULL;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, shape, h, (size_t)(B * T) * 4));
    free(h);
    return x;
}

static llm_tensor *binary_targets(int64_t B, uint64_t seed) {
    float *h = malloc((size_t)B * 4);
    uint64_t s = seed;
    for (int64_t i = 0; i < B; i++) h[i] = (float)(tu_next(&s) & 1);
    int64_t shape[2] = { B, 1 };
    llm_tensor *y = NULL;
    ck_assert_ok(llm_tensor_from_host(&y, be, LLM_DTYPE_F32, 2, shape, h, (size_t)B * 4));
    free(h);
    return y;
}

static void compile(llm_model *m, llm_loss loss) {
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_adam(&opt, 0.01f));
    ck_assert_ok(llm_model_compile(m, loss, opt, LLM_METRIC_ACCURACY));
    llm_optimizer_free(opt);
}

static float *host_of(const llm_tensor *t, int64_t *n) {
    ck_assert_ok(llm_tensor_numel(t, n));
    float *h = malloc((size_t)*n * 4);
    ck_assert_ok(llm_tensor_to_host(t, h, (size_t)*n * 4));
    return h;
}

static llm_vocab *small_vocab(void);

/* ---- finite differences over n inputs ---- */

static float loss_at(llm_model *m, int n, const llm_tensor *const *xs, const llm_tensor *y) {
    float loss = NAN;
    ck_assert_ok(llm_model_compute_gradients_inputs(m, n, xs, y, &loss));
    return loss;
}

static double central(llm_model *m, int n, const llm_tensor *const *xs, const llm_tensor *y, const char *name, float *v,
                      int64_t count, int64_t j, double eps) {
    float orig = v[j], up = (float)(orig + eps), down = (float)(orig - eps);
    v[j] = up;
    ck_assert_ok(llm_model_set_param(m, name, v, (size_t)count * 4));
    double lp = loss_at(m, n, xs, y);
    v[j] = down;
    ck_assert_ok(llm_model_set_param(m, name, v, (size_t)count * 4));
    double lm = loss_at(m, n, xs, y);
    v[j] = orig;
    ck_assert_ok(llm_model_set_param(m, name, v, (size_t)count * 4));
    return (lp - lm) / ((double)up - (double)down);
}

static int close_enough(double a, double num) { return fabs(a - num) <= GC_ATOL + GC_RTOL * fabs(num); }

/* Random weights, then every stride-th element of every parameter's
 * analytic gradient against a central difference of the loss. */
static void gradcheck(llm_model *m, llm_loss loss, int n, const llm_tensor *const *xs, const llm_tensor *y, const char *label,
                      int64_t stride) {
    compile(m, loss);
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 0, NULL)); /* the shapes come from the inputs */
    int np = 0;
    ck_assert_ok(llm_model_num_params(m, &np));
    ck_assert_int_gt(np, 0);
    const char **names = calloc((size_t)np, sizeof *names);
    int64_t *counts = calloc((size_t)np, sizeof *counts);
    float **vals = calloc((size_t)np, sizeof *vals), **grads = calloc((size_t)np, sizeof *grads);
    for (int i = 0; i < np; i++) {
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS];
        ck_assert_ok(llm_model_param_info(m, i, &names[i], &nd, shape));
        counts[i] = 1;
        for (int d = 0; d < nd; d++) counts[i] *= shape[d];
        vals[i] = malloc((size_t)counts[i] * 4);
        grads[i] = malloc((size_t)counts[i] * 4);
        tu_fill(vals[i], counts[i], 1000u + (uint64_t)i, -0.5f, 0.5f);
        ck_assert_ok(llm_model_set_param(m, names[i], vals[i], (size_t)counts[i] * 4));
    }
    float l0 = loss_at(m, n, xs, y);
    ck_assert(isfinite(l0));
    for (int i = 0; i < np; i++) ck_assert_ok(llm_model_get_grad(m, names[i], grads[i], (size_t)counts[i] * 4));
    double max_num = 0;
    for (int i = 0; i < np; i++)
        for (int64_t j = i % stride; j < counts[i]; j += stride) {
            double num = central(m, n, xs, y, names[i], vals[i], counts[i], j, GC_EPS);
            if (!close_enough(grads[i][j], num)) num = central(m, n, xs, y, names[i], vals[i], counts[i], j, GC_EPS / 4);
            ck_assert_msg(close_enough(grads[i][j], num), "%s: d loss / d %s[%lld]: analytic %.7g, finite difference %.7g", label,
                          names[i], (long long)j, (double)grads[i][j], num);
            if (fabs(num) > max_num) max_num = fabs(num);
        }
    ck_assert_msg(max_num > 1e-3, "%s: every gradient is ~0: the check is vacuous", label);
    for (int i = 0; i < np; i++) { free(vals[i]); free(grads[i]); }
    free(vals); free(grads); free(names); free(counts);
}

/* ---- merge layers ---- */

/* x -> dense_a, x -> dense_b, merged, -> dense(1): the merge's backward is
 * checked through the weights of both branches. */
static llm_model *merge_model(llm_layer *merge, int sequences) {
    llm_model *m = functional();
    int64_t shape[2] = { 3, 4 };
    llm_node *x = input(m, LLM_DTYPE_F32, sequences ? 2 : 1, sequences ? shape : shape + 1);
    llm_node *a = apply(m, llm_layer_dense(3, LLM_ACT_TANH), x);
    llm_node *b = apply(m, llm_layer_dense(3, LLM_ACT_NONE), x);
    llm_node *c = merge2(m, merge, a, b);
    if (sequences) c = apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), c);
    outputs1(m, apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), c));
    return m;
}

START_TEST(merge_gradients) {
    const char *names[3] = { "concatenate", "add", "multiply" };
    for (int seq = 0; seq < 2; seq++)
        for (int k = 0; k < 3; k++) {
            llm_layer *l = k == 0 ? llm_layer_concatenate() : k == 1 ? llm_layer_add() : llm_layer_multiply();
            ck_assert_str_eq(llm_layer_kind(l), names[k]);
            llm_model *m = merge_model(l, seq);
            int64_t xs_shape[3] = { 5, 3, 4 };
            llm_tensor *x = seq ? floats(3, xs_shape, 7) : floats(2, (int64_t[]){ 5, 4 }, 7);
            llm_tensor *y = binary_targets(5, 3);
            char label[64];
            snprintf(label, sizeof label, "%s%s", names[k], seq ? " on sequences" : "");
            const llm_tensor *xs[1] = { x };
            gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY, 1, xs, y, label, 1);
            llm_model_free(m);
            llm_tensor_free(x);
            llm_tensor_free(y);
        }
}
END_TEST

/* Forward values against the definition: x and 2x (through a fixed dense)
 * concatenated, added and multiplied. */
START_TEST(merge_forward_values) {
    for (int k = 0; k < 3; k++) {
        llm_model *m = functional();
        int64_t F = 3;
        llm_node *x = input(m, LLM_DTYPE_F32, 1, &F);
        llm_dense_options o;
        llm_dense_options_init(&o);
        o.units = 3;
        o.use_bias = 0;
        llm_node *a = apply(m, llm_layer_activation(LLM_ACT_NONE), x);
        llm_node *b = apply(m, llm_layer_dense_ex(&o), x);
        llm_layer *l = k == 0 ? llm_layer_concatenate() : k == 1 ? llm_layer_add() : llm_layer_multiply();
        outputs1(m, merge2(m, l, a, b));
        ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 0, NULL));
        float W[9] = { 2, 0, 0, 0, 2, 0, 0, 0, 2 };
        ck_assert_ok(llm_model_set_param(m, "dense_0.weight", W, sizeof W));
        llm_tensor *xt = floats(2, (int64_t[]){ 2, 3 }, 11), *yt = NULL;
        ck_assert_ok(llm_model_predict(m, xt, &yt));
        int64_t nx, ny;
        float *hx = host_of(xt, &nx), *hy = host_of(yt, &ny);
        ck_assert_int_eq(ny, k == 0 ? 12 : 6);
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < 3; i++) {
                float v = hx[r * 3 + i];
                if (k == 0) {
                    ck_assert_float_eq(hy[r * 6 + i], v);
                    ck_assert_float_eq(hy[r * 6 + 3 + i], 2 * v);
                } else {
                    ck_assert_float_eq(hy[r * 3 + i], k == 1 ? v + 2 * v : v * (2 * v));
                }
            }
        free(hx); free(hy);
        llm_tensor_free(xt); llm_tensor_free(yt);
        llm_model_free(m);
    }
}
END_TEST

/* ---- the two-branch classifier ---- */

enum { T = 6, V = 12, NB = 4 };
static const int LEN[NB] = { 6, 4, 2, 5 };

/* ids -> embedding -> lstm, the same embedding layer applied again -> pool;
 * concatenated -> dense(1, sigmoid). The embedding's gradient is the sum of
 * its two uses. */
static llm_model *two_branch(int apply_twice) {
    llm_model *m = functional();
    int64_t t = T;
    llm_node *x = input(m, LLM_DTYPE_I32, 1, &t);
    llm_layer *emb = llm_layer_embedding(V, 4);
    llm_node *e1 = apply(m, emb, x);
    llm_node *e2 = apply_twice ? apply(m, emb, x) : e1;
    llm_node *seq = apply(m, llm_layer_lstm(3, LLM_RETURN_LAST), e1);
    llm_node *avg = apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), e2);
    outputs1(m, apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), merge2(m, llm_layer_concatenate(), seq, avg)));
    return m;
}

START_TEST(two_branch_gradcheck) {
    for (int twice = 0; twice < 2; twice++) {
        llm_model *m = two_branch(twice);
        llm_tensor *x = ids(NB, T, V, LEN, 5), *y = binary_targets(NB, 9);
        const llm_tensor *xs[1] = { x };
        gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY, 1, xs, y, twice ? "two-branch, embedding applied twice" : "two-branch", 1);
        int np = 0;
        ck_assert_ok(llm_model_num_params(m, &np));
        ck_assert_int_eq(np, 6); /* embedding 1, lstm 3, dense 2: a shared layer's parameters once */
        llm_model_free(m);
        llm_tensor_free(x);
        llm_tensor_free(y);
    }
}
END_TEST

/* Sharing means one set of weights: the shared embedding's gradient is the
 * sum of the gradients of two copies of it. */
START_TEST(shared_layer_gradient_is_sum) {
    llm_model *shared = two_branch(1);
    /* the same graph with two separate embeddings */
    llm_model *split = functional();
    int64_t t = T;
    llm_node *x = input(split, LLM_DTYPE_I32, 1, &t);
    llm_node *e1 = apply(split, llm_layer_embedding(V, 4), x);
    llm_node *e2 = apply(split, llm_layer_embedding(V, 4), x);
    llm_node *seq = apply(split, llm_layer_lstm(3, LLM_RETURN_LAST), e1);
    llm_node *avg = apply(split, llm_layer_global_pool(LLM_POOL_AVERAGE), e2);
    outputs1(split, apply(split, llm_layer_dense(1, LLM_ACT_SIGMOID), merge2(split, llm_layer_concatenate(), seq, avg)));
    compile(shared, LLM_LOSS_BINARY_CROSSENTROPY);
    compile(split, LLM_LOSS_BINARY_CROSSENTROPY);
    llm_tensor *xt = ids(NB, T, V, LEN, 5), *yt = binary_targets(NB, 9);
    const llm_tensor *xs[1] = { xt };
    float l1, l2;
    ck_assert_ok(llm_model_compute_gradients_inputs(shared, 1, xs, yt, &l1)); /* builds */
    ck_assert_ok(llm_model_compute_gradients(split, xt, yt, &l2));
    int copied = 0;
    ck_assert_ok(llm_model_copy_weights(split, shared, &copied)); 
    ck_assert_int_eq(copied, 6); /* all of shared's parameters */
    float w[V * 4];
    ck_assert_ok(llm_model_get_param(shared, "embedding_0.weight", w, sizeof w));
    ck_assert_ok(llm_model_set_param(split, "embedding_1.weight", w, sizeof w));
    ck_assert_ok(llm_model_compute_gradients(shared, xt, yt, &l1));
    ck_assert_ok(llm_model_compute_gradients(split, xt, yt, &l2));
    ck_assert_float_eq_tol(l1, l2, 1e-6f);
    float gs[V * 4], g0[V * 4], g1[V * 4];
    ck_assert_ok(llm_model_get_grad(shared, "embedding_0.weight", gs, sizeof gs));
    ck_assert_ok(llm_model_get_grad(split, "embedding_0.weight", g0, sizeof g0));
    ck_assert_ok(llm_model_get_grad(split, "embedding_1.weight", g1, sizeof g1));
    double nz = 0;
    for (int i = 0; i < V * 4; i++) {
        ck_assert_float_eq_tol(gs[i], g0[i] + g1[i], 1e-6f);
        nz += fabs(g0[i]) * fabs(g1[i]);
    }
    ck_assert_msg(nz > 0, "both uses should reach some of the same rows");
    llm_model_free(shared);
    llm_model_free(split);
    llm_tensor_free(xt);
    llm_tensor_free(yt);
}
END_TEST

/* A functional chain is the Sequential model: same names, same weights for
 * a seed, same predictions bit for bit. */
START_TEST(chain_equals_sequential) {
    llm_model *seq = NULL;
    ck_assert_ok(llm_model_sequential(&seq, be));
    ck_assert_ok(llm_model_add(seq, llm_layer_embedding(V, 4)));
    ck_assert_ok(llm_model_add(seq, llm_layer_lstm(3, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(seq, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_model *fun = functional();
    int64_t t = T;
    llm_node *x = input(fun, LLM_DTYPE_I32, 1, &t);
    outputs1(fun, apply(fun, llm_layer_dense(1, LLM_ACT_SIGMOID),
                        apply(fun, llm_layer_lstm(3, LLM_RETURN_LAST), apply(fun, llm_layer_embedding(V, 4), x))));
    llm_tensor *xt = ids(NB, T, V, LEN, 5), *p1 = NULL, *p2 = NULL;
    ck_assert_ok(llm_model_predict(seq, xt, &p1));
    ck_assert_ok(llm_model_predict(fun, xt, &p2));
    int64_t n1, n2;
    float *h1 = host_of(p1, &n1), *h2 = host_of(p2, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert(memcmp(h1, h2, (size_t)n1 * 4) == 0);
    int a = 0, b = 0;
    ck_assert_ok(llm_model_num_params(seq, &a));
    ck_assert_ok(llm_model_num_params(fun, &b));
    ck_assert_int_eq(a, b);
    for (int i = 0; i < a; i++) {
        const char *na, *nb;
        ck_assert_ok(llm_model_param_info(seq, i, &na, NULL, NULL));
        ck_assert_ok(llm_model_param_info(fun, i, &nb, NULL, NULL));
        ck_assert_str_eq(na, nb);
    }
    int ni = 0, no = 0;
    ck_assert_ok(llm_model_num_inputs(seq, &ni));
    ck_assert_ok(llm_model_num_outputs(seq, &no));
    ck_assert_int_eq(ni, 1);
    ck_assert_int_eq(no, 1);
    free(h1); free(h2);
    llm_tensor_free(xt); llm_tensor_free(p1); llm_tensor_free(p2);
    llm_model_free(seq);
    llm_model_free(fun);
}
END_TEST

/* ---- several inputs and outputs ---- */

/* token ids [T] and numeric features [3]: embedding -> pool, features ->
 * dense, concatenated -> dense(1, sigmoid) */
static llm_model *ids_and_features(void) {
    llm_model *m = functional();
    int64_t t = T, f = 3;
    llm_node *x = input(m, LLM_DTYPE_I32, 1, &t);
    llm_node *feat = input(m, LLM_DTYPE_F32, 1, &f);
    llm_node *a = apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), apply(m, llm_layer_embedding(V, 4), x));
    llm_node *b = apply(m, llm_layer_dense(2, LLM_ACT_TANH), feat);
    outputs1(m, apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), merge2(m, llm_layer_concatenate(), a, b)));
    return m;
}

START_TEST(multi_input_gradcheck_and_fit) {
    llm_model *m = ids_and_features();
    llm_tensor *xi = ids(NB, T, V, LEN, 5), *xf = floats(2, (int64_t[]){ NB, 3 }, 8), *y = binary_targets(NB, 9);
    const llm_tensor *xs[2] = { xi, xf };
    gradcheck(m, LLM_LOSS_BINARY_CROSSENTROPY, 2, xs, y, "ids and features", 1);
    int n = 0;
    ck_assert_ok(llm_model_num_inputs(m, &n));
    ck_assert_int_eq(n, 2);
    llm_dtype dt;
    int nd;
    int64_t shape[LLM_MAX_DIMS];
    ck_assert_ok(llm_model_input_info(m, 1, &dt, &nd, shape));
    ck_assert_int_eq(dt, LLM_DTYPE_F32);
    ck_assert_int_eq(nd, 1);
    ck_assert_int_eq(shape[0], 3);

    /* fit and evaluate on a dataset of both inputs; the loss goes down */
    llm_tensor *bi = ids(64, T, V, NULL, 21), *bf = floats(2, (int64_t[]){ 64, 3 }, 22);
    int64_t nb;
    float *hf = host_of(bf, &nb);
    float *ty = malloc(64 * 4);
    for (int i = 0; i < 64; i++) ty[i] = hf[i * 3] > 0.0f; /* learnable from the features */
    llm_tensor *by = NULL;
    ck_assert_ok(llm_tensor_from_host(&by, be, LLM_DTYPE_F32, 2, (int64_t[]){ 64, 1 }, ty, 64 * 4));
    const llm_tensor *bxs[2] = { bi, bf };
    llm_dataset *ds = NULL, *a = NULL, *b = NULL;
    ck_assert_ok(llm_dataset_from_inputs(&ds, 2, bxs, by));
    llm_metrics before, after;
    llm_metrics_init(&before);
    llm_metrics_init(&after);
    compile(m, LLM_LOSS_BINARY_CROSSENTROPY);
    ck_assert_ok(llm_model_evaluate(m, ds, 16, &before));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 15;
    fo.batch_size = 16;
    ck_assert_ok(llm_dataset_split(ds, 0.25f, 3, &a, &b));
    fo.validation = b;
    ck_assert_ok(llm_model_fit(m, a, &fo, NULL));
    ck_assert_ok(llm_model_evaluate(m, ds, 16, &after));
    ck_assert_msg(after.loss < before.loss, "loss %g -> %g", before.loss, after.loss);
    /* predict_inputs agrees with evaluate's view of the same rows */
    llm_tensor *p = NULL;
    ck_assert_ok(llm_model_predict_inputs(m, 2, bxs, &p));
    int64_t np;
    float *hp = host_of(p, &np);
    ck_assert_int_eq(np, 64);
    for (int i = 0; i < 64; i++) ck_assert(hp[i] > 0.0f && hp[i] < 1.0f);
    /* and it trains one batch at a time too */
    float loss = 0, acc = 0;
    ck_assert_ok(llm_model_train_on_batch_inputs(m, 2, bxs, by, &loss, &acc));
    ck_assert(isfinite(loss) && acc >= 0 && acc <= 1);
    llm_tensor_free(p);
    free(hp);
    ck_assert_ok(llm_model_predict_inputs(m, 2, bxs, &p));
    hp = host_of(p, &np);

    /* save and load: the same predictions */
    char path[128];
    snprintf(path, sizeof path, "%s/multi.safetensors", dir);
    ck_assert_ok(llm_model_save(m, path));
    llm_model *back = NULL;
    ck_assert_ok(llm_model_load(&back, be, path));
    llm_tensor *p2 = NULL;
    ck_assert_ok(llm_model_predict_inputs(back, 2, bxs, &p2));
    float *hp2 = host_of(p2, &np);
    ck_assert(memcmp(hp, hp2, 64 * 4) == 0);

    /* the one-tensor calls say what is wrong */
    llm_tensor *none = NULL;
    ck_assert_fails(llm_model_predict(m, bi, &none), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(none);
    const llm_tensor *swapped[2] = { bf, bi };
    ck_assert_fails(llm_model_predict_inputs(m, 2, swapped, &none), LLM_ERR_DTYPE);
    ck_assert_fails(llm_model_predict_inputs(m, 1, bxs, &none), LLM_ERR_INVALID_ARGUMENT);
    /* a text pipeline cannot feed the numeric input */
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = T;
    llm_vocab *v = small_vocab();
    ck_assert_fails(llm_model_set_text_pipeline(m, v, &vo, NULL), LLM_ERR_SHAPE);
    llm_vocab_free(v);
    free(hp); free(hp2); free(hf); free(ty);
    llm_tensor_free(p); llm_tensor_free(p2);
    llm_dataset_free(ds); llm_dataset_free(a); llm_dataset_free(b);
    llm_tensor_free(bi); llm_tensor_free(bf); llm_tensor_free(by);
    llm_tensor_free(xi); llm_tensor_free(xf); llm_tensor_free(y);
    llm_model_free(back);
    llm_model_free(m);
}
END_TEST

/* Several threads predicting at once on a model not built yet (the first
 * builds it under the lock) get what one thread gets. */
typedef struct predict_job {
    llm_model *m;
    const llm_tensor *const *xs;
    float out[NB];
    llm_status st;
} predict_job;

static void *predict_thread(void *arg) {
    predict_job *j = arg;
    llm_tensor *p = NULL;
    j->st = llm_model_predict_inputs(j->m, 2, j->xs, &p);
    if (j->st == LLM_OK) j->st = llm_tensor_to_host(p, j->out, sizeof j->out);
    llm_tensor_free(p);
    return NULL;
}

START_TEST(concurrent_predict_inputs) {
    llm_model *m = ids_and_features();
    llm_tensor *xi = ids(NB, T, V, LEN, 5), *xf = floats(2, (int64_t[]){ NB, 3 }, 8);
    const llm_tensor *xs[2] = { xi, xf };
    enum { THREADS = 4 };
    predict_job jobs[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (predict_job){ .m = m, .xs = xs };
        ck_assert_int_eq(pthread_create(&th[i], NULL, predict_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    predict_job alone = { .m = m, .xs = xs };
    predict_thread(&alone);
    ck_assert_ok(alone.st);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_ok(jobs[i].st);
        ck_assert(memcmp(jobs[i].out, alone.out, sizeof alone.out) == 0);
    }
    llm_tensor_free(xi);
    llm_tensor_free(xf);
    llm_model_free(m);
}
END_TEST

START_TEST(several_outputs) {
    llm_model *m = functional();
    int64_t f = 3;
    llm_node *x = input(m, LLM_DTYPE_F32, 1, &f);
    llm_node *h = apply(m, llm_layer_dense(4, LLM_ACT_RELU), x);
    llm_node *o[2] = { apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), h), apply(m, llm_layer_dense(2, LLM_ACT_SOFTMAX), h) };
    ck_assert_fails(llm_model_set_outputs(m, 2, (llm_node *[]){ o[0], o[0] }), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_set_outputs(m, 1, &x), LLM_ERR_INVALID_ARGUMENT);
    /* more outputs than a model file's graph record reads back are refused here */
    llm_node *many[65];
    for (int i = 0; i < 65; i++) many[i] = o[0];
    ck_assert_fails(llm_model_set_outputs(m, 65, many), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(llm_last_error(), "1 to 64 output nodes"), "%s", llm_last_error());
    ck_assert_ok(llm_model_set_outputs(m, 2, o));
    llm_tensor *xt = floats(2, (int64_t[]){ 5, 3 }, 4), *p = NULL;
    ck_assert_ok(llm_model_predict(m, xt, &p));
    int64_t shape[LLM_MAX_DIMS], n;
    int nd;
    ck_assert_ok(llm_tensor_ndim(p, &nd));
    ck_assert_ok(llm_tensor_shape(p, shape));
    ck_assert_int_eq(nd, 2);
    ck_assert_int_eq(shape[1], 3);
    float *hp = host_of(p, &n);
    for (int b = 0; b < 5; b++) {
        ck_assert(hp[b * 3] > 0 && hp[b * 3] < 1);
        ck_assert_float_eq_tol(hp[b * 3 + 1] + hp[b * 3 + 2], 1.0f, 1e-5f);
    }
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_sgd(&opt, 0.1f, 0, 0));
    ck_assert_fails(llm_model_compile(m, LLM_LOSS_MSE, opt, 0), LLM_ERR_STATE);
    llm_optimizer_free(opt);
    char path[128];
    snprintf(path, sizeof path, "%s/two_out.safetensors", dir);
    ck_assert_ok(llm_model_save(m, path));
    llm_model *back = NULL;
    ck_assert_ok(llm_model_load(&back, be, path));
    llm_tensor *p2 = NULL;
    ck_assert_ok(llm_model_predict(back, xt, &p2));
    float *hp2 = host_of(p2, &n);
    ck_assert(memcmp(hp, hp2, 15 * 4) == 0);
    free(hp); free(hp2);
    llm_tensor_free(xt); llm_tensor_free(p); llm_tensor_free(p2);
    llm_model_free(m);
    llm_model_free(back);
}
END_TEST

/* ---- files, text, checkpoints, ensembles ---- */

/* The file's header (JSON after the 8-byte length) as a string. */
static char *file_header(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint64_t n = 0;
    ck_assert_int_eq(fread(&n, 8, 1, f), 1);
    char *h = calloc(n + 1, 1);
    ck_assert_int_eq(fread(h, 1, n, f), n);
    fclose(f);
    return h;
}

static void write_header(const char *path, const char *h) {
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 8, SEEK_SET), 0);
    ck_assert_int_eq(fwrite(h, 1, strlen(h), f), strlen(h));
    fclose(f);
}

static llm_vocab *small_vocab(void) {
    const char *texts[4] = { "free money now", "meeting at noon", "win free prizes", "lunch at noon today" };
    llm_vocab_options vo;
    llm_vocab_options_init(&vo);
    vo.max_tokens = V;
    llm_vocab_builder *b = NULL;
    ck_assert_ok(llm_vocab_builder_create(&b, NULL));
    for (int i = 0; i < 4; i++) ck_assert_ok(llm_vocab_builder_add(b, texts[i], strlen(texts[i])));
    llm_vocab *v = NULL;
    ck_assert_ok(llm_vocab_builder_build(b, &vo, &v));
    llm_vocab_builder_free(b);
    return v;
}

START_TEST(files_text_checkpoints_ensembles) {
    llm_model *m = two_branch(1);
    llm_vocab *v = small_vocab();
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = T;
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, NULL));
    compile(m, LLM_LOSS_BINARY_CROSSENTROPY);
    llm_tensor *x = ids(NB, T, V, LEN, 5), *y = binary_targets(NB, 9);
    float loss;
    ck_assert_ok(llm_model_train_on_batch(m, x, y, &loss, NULL));
    char summary[4096];
    size_t need = 0;
    ck_assert_ok(llm_model_summary(m, summary, sizeof summary, &need));
    ck_assert_ptr_nonnull(strstr(summary, "functional"));
    ck_assert_ptr_nonnull(strstr(summary, "concatenate_0"));

    char path[128], ck[128], ens[128];
    snprintf(path, sizeof path, "%s/two.safetensors", dir);
    snprintf(ck, sizeof ck, "%s/two.ckpt", dir);
    snprintf(ens, sizeof ens, "%s/ens.safetensors", dir);
    ck_assert_ok(llm_model_save(m, path));
    ck_assert_ok(llm_model_save_checkpoint(m, ck));
    char *h = file_header(path);
    ck_assert_ptr_nonnull(strstr(h, "\"libllm.format_version\":\"2\""));
    ck_assert_ptr_nonnull(strstr(h, "libllm.graph"));
    free(h);

    float p0, p1, p2;
    const char *text = "win free money at noon";
    ck_assert_ok(llm_model_predict_text(m, text, strlen(text), &p0, 1));
    llm_model *back = NULL, *resumed = NULL;
    ck_assert_ok(llm_model_load(&back, be, path));
    ck_assert_ok(llm_model_predict_text(back, text, strlen(text), &p1, 1));
    ck_assert(p0 == p1);
    /* a checkpoint goes on training exactly like the original */
    ck_assert_ok(llm_model_load_checkpoint(&resumed, be, ck));
    float la, lb;
    ck_assert_ok(llm_model_train_on_batch(m, x, y, &la, NULL));
    ck_assert_ok(llm_model_train_on_batch(resumed, x, y, &lb, NULL));
    ck_assert(la == lb);
    ck_assert_ok(llm_model_predict_text(m, text, strlen(text), &p1, 1));
    ck_assert_ok(llm_model_predict_text(resumed, text, strlen(text), &p2, 1));
    ck_assert(p1 == p2);

    /* an ensemble of a functional and a Sequential member, saved and loaded */
    llm_model *e = NULL, *seq = NULL;
    ck_assert_ok(llm_model_sequential(&seq, be));
    ck_assert_ok(llm_model_add(seq, llm_layer_embedding(V, 4)));
    ck_assert_ok(llm_model_add(seq, llm_layer_global_pool(LLM_POOL_AVERAGE)));
    ck_assert_ok(llm_model_add(seq, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_set_text_pipeline(seq, v, &vo, NULL));
    ck_assert_ok(llm_model_build(seq, LLM_DTYPE_I32, 1, (int64_t[]){ T }));
    ck_assert_ok(llm_model_ensemble(&e, be));
    ck_assert_ok(llm_model_ensemble_add(e, back));
    ck_assert_ok(llm_model_ensemble_add(e, seq));
    float pe, pe2, ps;
    ck_assert_ok(llm_model_predict_text(e, text, strlen(text), &pe, 1));
    ck_assert_ok(llm_model_predict_text(seq, text, strlen(text), &ps, 1));
    ck_assert_float_eq_tol(pe, (p0 + ps) / 2, 1e-6f);
    ck_assert_ok(llm_model_save(e, ens));
    llm_model *e2 = NULL;
    ck_assert_ok(llm_model_load(&e2, be, ens));
    ck_assert_ok(llm_model_predict_text(e2, text, strlen(text), &pe2, 1));
    ck_assert(pe == pe2);

    /* a damaged record is refused with LLM_ERR_FORMAT, never built wrong:
     * each case edits the saved header in place (same length) */
    static const struct { const char *from, *to, *why; } damage[] = {
        { "\\\"from\\\":[1]", "\\\"from\\\":[9]", "a later node: cycles are impossible" },
        { "\\\"layer\\\":4", "\\\"layer\\\":7", "a layer beyond the architecture" },
        { "\\\"layer\\\":2,", "\\\"layer\\\":3,", "layers applied out of order" },
        { "\\\"outputs\\\":[6]", "\\\"outputs\\\":[0]", "an input as the output" },
        { "\\\"from\\\":[3,4]", "\\\"from\\\":[3,3]", "a merge whose width no longer fits the weights" },
        { "\\\"int32\\\"", "\\\"int64\\\"", "an unknown input dtype" },
        { "\\\"from\\\":[5]", "\\\"from\\\":[0]", "a dense layer reading token ids" },
    };
    char *orig = file_header(path);
    for (size_t k = 0; k < sizeof damage / sizeof damage[0]; k++) {
        h = strdup(orig);
        char *at = strstr(h, damage[k].from);
        ck_assert_msg(at != NULL, "case %zu: no %s in %s", k, damage[k].from, h);
        ck_assert_int_eq(strlen(damage[k].from), strlen(damage[k].to));
        memcpy(at, damage[k].to, strlen(damage[k].to));
        write_header(path, h);
        free(h);
        llm_model *bad = NULL;
        llm_clear_error();
        llm_status st = llm_model_load(&bad, be, path);
        ck_assert_msg(st == LLM_ERR_FORMAT, "case %zu (%s): status %d: %s", k, damage[k].why, (int)st, llm_last_error());
        ck_assert_ptr_null(bad);
        if (getenv("GRAPH_VERBOSE")) fprintf(stderr, "damaged record, %s: %s\n", damage[k].why, llm_last_error());
    }
    write_header(path, orig);
    llm_model *good = NULL;
    ck_assert_ok(llm_model_load(&good, be, path));
    llm_model_free(good);
    free(orig);

    llm_model_free(e);
    llm_model_free(e2);
    llm_model_free(resumed);
    llm_model_free(m);
    llm_vocab_free(v);
    llm_tensor_free(x);
    llm_tensor_free(y);
}
END_TEST

/* Sequential models keep writing format 1, which libllm 1.2 reads. */
START_TEST(sequential_stays_version_1) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 1, (int64_t[]){ 3 }));
    char path[128];
    snprintf(path, sizeof path, "%s/seq.safetensors", dir);
    ck_assert_ok(llm_model_save(m, path));
    char *h = file_header(path);
    ck_assert_ptr_nonnull(strstr(h, "\"libllm.format_version\":\"1\""));
    ck_assert_ptr_null(strstr(h, "libllm.graph"));
    free(h);
    llm_model_free(m);
}
END_TEST

/* ---- graphs that do not fit together ---- */

START_TEST(bad_graphs) {
    llm_model *m = functional(), *other = functional(), *seq = NULL;
    int64_t f = 3, f4 = 4, t = T;
    llm_node *x = input(m, LLM_DTYPE_F32, 1, &f), *y4 = input(m, LLM_DTYPE_F32, 1, &f4), *n = NULL;
    llm_node *ox = input(other, LLM_DTYPE_F32, 1, &f);
    llm_node *ids_in = input(m, LLM_DTYPE_I32, 1, &t);
    /* nodes: NULL, from another model */
    ck_assert_fails(llm_model_apply(m, llm_layer_dense(2, LLM_ACT_NONE), NULL, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_apply(m, llm_layer_dense(2, LLM_ACT_NONE), ox, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(n);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "another model"));
    ck_assert_fails(llm_model_set_outputs(m, 1, &ox), LLM_ERR_INVALID_ARGUMENT);
    /* layers: carrying an error, another model's, a merge through apply and back */
    ck_assert_fails(llm_model_apply(m, llm_layer_dense(0, LLM_ACT_NONE), x, &n), LLM_ERR_INVALID_ARGUMENT);
    llm_layer *theirs = llm_layer_dense(2, LLM_ACT_NONE);
    ck_assert_ok(llm_model_apply(other, theirs, ox, &n));
    ck_assert_fails(llm_model_apply(m, theirs, x, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_apply(m, llm_layer_add(), x, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_merge(m, llm_layer_dense(2, LLM_ACT_NONE), 2, (llm_node *[]){ x, x }, &n),
                    LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_merge(m, llm_layer_add(), 1, (llm_node *[]){ x }, &n), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_merge(m, llm_layer_add(), 9, (llm_node *[]){ x, x, x, x, x, x, x, x, x }, &n),
                    LLM_ERR_INVALID_ARGUMENT);
    /* a Sequential model takes no nodes; a functional one no llm_model_add */
    ck_assert_ok(llm_model_sequential(&seq, be));
    ck_assert_fails(llm_model_input(seq, LLM_DTYPE_F32, 1, &f, &n), LLM_ERR_STATE);
    ck_assert_fails(llm_model_add(m, llm_layer_dense(2, LLM_ACT_NONE)), LLM_ERR_STATE);
    ck_assert_fails(llm_model_add(seq, llm_layer_concatenate()), LLM_ERR_INVALID_ARGUMENT);
    /* no outputs yet */
    ck_assert_fails(llm_model_build(m, LLM_DTYPE_F32, 0, NULL), LLM_ERR_STATE);
    llm_model_free(m);

    /* shapes that do not merge, found at build with both shapes named */
    for (int k = 0; k < 4; k++) {
        m = functional();
        x = input(m, LLM_DTYPE_F32, 1, &f);
        y4 = input(m, LLM_DTYPE_F32, 1, &f4);
        ids_in = input(m, LLM_DTYPE_I32, 1, &t);
        llm_node *out = NULL;
        llm_status want = LLM_ERR_SHAPE;
        if (k == 0) out = merge2(m, llm_layer_add(), x, y4);
        if (k == 1) out = merge2(m, llm_layer_concatenate(), x, apply(m, llm_layer_embedding(V, 3), ids_in));
        if (k == 2) { out = merge2(m, llm_layer_multiply(), x, ids_in); want = LLM_ERR_DTYPE; }
        if (k == 3) { /* a shared layer given two shapes */
            llm_layer *d = llm_layer_dense(2, LLM_ACT_NONE);
            out = merge2(m, llm_layer_add(), apply(m, d, x), apply(m, d, y4));
        }
        outputs1(m, out);
        ck_assert_fails(llm_model_build(m, LLM_DTYPE_F32, 0, NULL), want);
        ck_assert_ptr_nonnull(strstr(llm_last_error(), k == 3 ? "shared" : "input 1"));
        llm_model_free(m);
    }
    /* adding after build */
    m = functional();
    x = input(m, LLM_DTYPE_F32, 1, &f);
    outputs1(m, apply(m, llm_layer_dense(1, LLM_ACT_NONE), x));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 1, &f));
    ck_assert_fails(llm_model_apply(m, llm_layer_dense(1, LLM_ACT_NONE), x, &n), LLM_ERR_STATE);
    ck_assert_fails(llm_model_input(m, LLM_DTYPE_F32, 1, &f, &n), LLM_ERR_STATE);
    llm_model_free(m);
    llm_model_free(other);
    llm_model_free(seq);
}
END_TEST

Suite *suite_graph(void) {
    Suite *s = suite_create("graph");
    TCase *c = tcase_create("functional");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 120);
    tcase_add_test(c, merge_gradients);
    tcase_add_test(c, merge_forward_values);
    tcase_add_test(c, two_branch_gradcheck);
    tcase_add_test(c, shared_layer_gradient_is_sum);
    tcase_add_test(c, chain_equals_sequential);
    tcase_add_test(c, multi_input_gradcheck_and_fit);
    tcase_add_test(c, concurrent_predict_inputs);
    tcase_add_test(c, several_outputs);
    tcase_add_test(c, files_text_checkpoints_ensembles);
    tcase_add_test(c, sequential_stays_version_1);
    tcase_add_test(c, bad_graphs);
    suite_add_tcase(s, c);
    return s;
}
