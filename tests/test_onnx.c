/* The ONNX exporter (llm_model_export_onnx, src/onnx/): files read back with
 * protobuf-c, checked for structure (inputs, outputs, operators, attributes,
 * initializers, metadata, a graph whose every input is defined before use),
 * and the recurrent weights checked numerically: a reference of the ONNX
 * LSTM and GRU operators' equations (onnx/docs/Operators.md), fed with the
 * W, R and B read back from the file, must give llm_model_predict's states
 * over a row's real steps (so a gate block in the wrong place fails). Also
 * the refusals (a kind without a mapping, ensembles, bad options, a missing
 * module) and the atomic write. ONNX Runtime runs every architecture in
 * `make onnx-check` (tools/onnx_check.sh); this suite needs no network. */
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"

#ifdef LLM_TEST_ONNX
#include "onnx.pb-c.h"
#include "core/internal.h"
#include "core/module.h"
#include "io/atomic_file.h"
#include "onnx/onnx_module.h"

static llm_backend *be;
static char dir[64];
static char path[128];

static void setup(void) {
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    snprintf(dir, sizeof dir, "/tmp/llm_onnx_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.onnx", dir);
}

static void teardown(void) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    llm_backend_free(be);
}

/* ---- reading an exported file ---- */

static Onnx__ModelProto *read_model(const char *file) {
    FILE *f = fopen(file, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", file);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, (size_t)n, b);
    free(b);
    ck_assert_msg(m != NULL, "%s does not parse as an ONNX ModelProto", file);
    return m;
}

static Onnx__ModelProto *export_read(llm_model *m, const llm_onnx_options *o) {
    ck_assert_ok(llm_model_export_onnx(m, path, o));
    return read_model(path);
}

static const Onnx__TensorProto *initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return g->initializer[i];
    return NULL;
}

/* An initializer's floats (raw_data, little-endian), checked against dims. */
static const float *floats_of(const Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims) {
    const Onnx__TensorProto *t = initializer(g, name);
    ck_assert_msg(t != NULL, "no initializer %s", name);
    ck_assert_int_eq(t->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    ck_assert_int_eq((int)t->n_dims, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        ck_assert_int_eq(t->dims[i], dims[i]);
        count *= (size_t)dims[i];
    }
    ck_assert(t->has_raw_data);
    ck_assert_uint_eq(t->raw_data.len, count * 4);
    return (const float *)t->raw_data.data;
}

static int count_op(const Onnx__GraphProto *g, const char *op) {
    int n = 0;
    for (size_t i = 0; i < g->n_node; i++) n += strcmp(g->node[i]->op_type, op) == 0;
    return n;
}

static const Onnx__NodeProto *first_op(const Onnx__GraphProto *g, const char *op) {
    for (size_t i = 0; i < g->n_node; i++)
        if (strcmp(g->node[i]->op_type, op) == 0) return g->node[i];
    ck_abort_msg("no %s node", op);
    return NULL;
}

static const Onnx__AttributeProto *attribute(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name) {
    const Onnx__AttributeProto *a = attribute(n, name);
    ck_assert_msg(a && a->has_i, "%s has no int attribute %s", n->name, name);
    return a->i;
}

static int attr_str_is(const Onnx__NodeProto *n, const char *name, const char *value) {
    const Onnx__AttributeProto *a = attribute(n, name);
    return a && a->has_s && a->s.len == strlen(value) && memcmp(a->s.data, value, a->s.len) == 0;
}

static const char *meta(const Onnx__ModelProto *m, const char *key) {
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (strcmp(m->metadata_props[i]->key, key) == 0) return m->metadata_props[i]->value;
    return NULL;
}

static int is_defined(const char *name, const Onnx__GraphProto *g, size_t before) {
    for (size_t i = 0; i < g->n_input; i++)
        if (strcmp(g->input[i]->name, name) == 0) return 1;
    if (initializer(g, name)) return 1;
    for (size_t i = 0; i < before; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (strcmp(g->node[i]->output[k], name) == 0) return 1;
    return 0;
}

/* What the ONNX checker's graph check asks: every node's inputs defined
 * before it (topological order), no value produced twice, the outputs
 * produced; one opset of the default domain, its IR version. */
static void check_well_formed(const Onnx__ModelProto *m, int opset) {
    const Onnx__GraphProto *g = m->graph;
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(m->n_opset_import, 1);
    ck_assert_str_eq(m->opset_import[0]->domain, "");
    ck_assert_int_eq(m->opset_import[0]->version, opset);
    ck_assert(m->has_ir_version);
    ck_assert_int_eq(m->ir_version, opset <= 18 ? 8 : opset <= 20 ? 9 : 10);
    ck_assert_str_eq(m->producer_name, "libllm");
    ck_assert_str_eq(m->producer_version, llm_version_string());
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_input; k++)
            ck_assert_msg(!n->input[k][0] || is_defined(n->input[k], g, i), "node %s (%s): input %s is not defined "
                          "before it", n->name, n->op_type, n->input[k]);
        for (size_t k = 0; k < n->n_output; k++)
            ck_assert_msg(!n->output[k][0] || !is_defined(n->output[k], g, i), "%s is produced twice", n->output[k]);
    }
    for (size_t i = 0; i < g->n_output; i++)
        ck_assert_msg(is_defined(g->output[i]->name, g, g->n_node), "output %s is not produced", g->output[i]->name);
}

/* The dims of a graph input or output: >= 0 a size, -1 the symbolic "batch". */
static void check_io(const Onnx__ValueInfoProto *v, const char *name, int elem, int rank, const int64_t *dims) {
    ck_assert_str_eq(v->name, name);
    ck_assert_int_eq(v->type->value_case, ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE);
    const Onnx__TypeProto__Tensor *t = v->type->tensor_type;
    ck_assert_int_eq(t->elem_type, elem);
    ck_assert_int_eq((int)t->shape->n_dim, rank);
    for (int i = 0; i < rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = t->shape->dim[i];
        if (dims[i] < 0) {
            ck_assert_int_eq(d->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
            ck_assert_str_eq(d->dim_param, "batch");
        } else {
            ck_assert_int_eq(d->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);
            ck_assert_int_eq(d->dim_value, dims[i]);
        }
    }
}

/* ---- models ---- */

/* Every parameter drawn from U(-0.5, 0.5), biases included, so that each
 * gate block differs from the others. */
static void randomise(llm_model *m, uint64_t seed) {
    int n;
    ck_assert_ok(llm_model_num_params(m, &n));
    for (int i = 0; i < n; i++) {
        const char *name;
        int ndim;
        int64_t shape[LLM_MAX_DIMS], count = 1;
        ck_assert_ok(llm_model_param_info(m, i, &name, &ndim, shape));
        for (int d = 0; d < ndim; d++) count *= shape[d];
        float *v = malloc((size_t)count * sizeof *v);
        tu_fill(v, count, seed + (uint64_t)i, -0.5f, 0.5f);
        ck_assert_ok(llm_model_set_param(m, name, v, (size_t)count * sizeof *v));
        free(v);
    }
}

enum { V = 23, E = 5, H = 4, T = 7 };

/* Embedding(V, E) -> [bidirectional] LSTM or GRU(H, last) */
static llm_model *recurrent_model(int gru, int bidir, int go_backwards, int mask_zero) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    llm_embedding_options eo;
    llm_embedding_options_init(&eo);
    eo.vocab = V;
    eo.dim = E;
    eo.mask_zero = mask_zero;
    ck_assert_ok(llm_model_add(m, llm_layer_embedding_ex(&eo)));
    llm_recurrent_options ro;
    llm_recurrent_options_init(&ro);
    ro.units = H;
    ro.go_backwards = go_backwards;
    llm_layer *r = gru ? llm_layer_gru_ex(&ro) : llm_layer_lstm_ex(&ro);
    ck_assert_ok(llm_model_add(m, bidir ? llm_layer_bidirectional(r) : r));
    int64_t t = T;
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, &t));
    randomise(m, 7 + (uint64_t)(gru * 4 + bidir * 2 + go_backwards));
    return m;
}

static float *predict(llm_model *m, const int32_t *ids, int64_t rows, int64_t cols, int64_t per) {
    llm_tensor *x, *y;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){ rows, cols }, ids,
                                      (size_t)(rows * cols) * sizeof *ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    float *out = malloc((size_t)(rows * per) * sizeof *out);
    ck_assert_ok(llm_tensor_to_host(y, out, (size_t)(rows * per) * sizeof *out));
    llm_tensor_free(x);
    llm_tensor_free(y);
    return out;
}

/* ---- the ONNX operators' equations ---- */

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* One direction of ONNX LSTM (gates i, o, f, c) or GRU (z, r, h,
 * linear_before_reset = 1) over n steps of x [n, E], read in order or
 * reversed; W [G H, E], R [G H, H], B [2 G H] = [Wb, Rb]; h gets H_n. */
static void onnx_rnn(int gru, const float *W, const float *R, const float *B, const float *x, int n, int reverse,
                     double *h) {
    const int G = gru ? 3 : 4;
    double c[H] = { 0 }, a[4 * H], r[4 * H];
    for (int j = 0; j < H; j++) h[j] = 0;
    for (int s = 0; s < n; s++) {
        const float *xt = x + (reverse ? n - 1 - s : s) * E;
        for (int k = 0; k < G * H; k++) { /* a = x W^T + Wb, r = h R^T + Rb */
            a[k] = B[k];
            r[k] = B[G * H + k];
            for (int e = 0; e < E; e++) a[k] += (double)xt[e] * W[k * E + e];
            for (int j = 0; j < H; j++) r[k] += h[j] * R[k * H + j];
        }
        for (int j = 0; j < H; j++) {
            if (gru) {
                double z = sigmoid(a[j] + r[j]), rt = sigmoid(a[H + j] + r[H + j]);
                double ht = tanh(a[2 * H + j] + rt * r[2 * H + j]);
                h[j] = (1 - z) * ht + z * h[j];
            } else {
                double i = sigmoid(a[j] + r[j]), o = sigmoid(a[H + j] + r[H + j]);
                double f = sigmoid(a[2 * H + j] + r[2 * H + j]), cc = tanh(a[3 * H + j] + r[3 * H + j]);
                c[j] = f * c[j] + i * cc;
                h[j] = o * tanh(c[j]);
            }
        }
    }
}

/* Rows with padding before, after and among the tokens, one token alone and
 * padding alone. */
static const int32_t rows_ids[][T] = {
    { 0, 0, 0, 5, 9, 13, 2 }, { 5, 9, 13, 2, 0, 0, 0 }, { 7, 0, 11, 0, 0, 22, 3 }, { 1, 2, 3, 4, 5, 6, 7 },
    { 0, 0, 0, 0, 0, 0, 17 }, { 17, 0, 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0, 0, 0 }, { 22, 21, 20, 19, 18, 17, 16 },
};
#define N_ROWS ((int)(sizeof rows_ids / sizeof rows_ids[0]))

/* Exports the model, reads its recurrent node and weights back, and checks
 * that the reference over each row's real steps gives libllm's output. */
static void check_recurrent(int gru, int bidir, int go_backwards, int mask_zero) {
    llm_model *m = recurrent_model(gru, bidir, go_backwards, mask_zero);
    Onnx__ModelProto *mp = export_read(m, NULL);
    const Onnx__GraphProto *g = mp->graph;
    check_well_formed(mp, 17);
    const int G = gru ? 3 : 4, dirs = bidir ? 2 : 1;
    const char *op = gru ? "GRU" : "LSTM", *lname = bidir ? "bidirectional_0" : gru ? "gru_0" : "lstm_0";
    ck_assert_int_eq(count_op(g, op), 1);
    const Onnx__NodeProto *n = first_op(g, op);
    ck_assert_int_eq(attr_int(n, "hidden_size"), H);
    ck_assert(attr_str_is(n, "direction", bidir ? "bidirectional" : go_backwards ? "reverse" : "forward"));
    if (gru) ck_assert_int_eq(attr_int(n, "linear_before_reset"), 1);
    /* sequence_lens from the mask, none without one */
    ck_assert_uint_eq(n->n_input, 5);
    ck_assert_int_eq(n->input[4][0] != '\0', mask_zero);
    ck_assert_int_eq(count_op(g, "TopK"), mask_zero);
    char name[64];
    snprintf(name, sizeof name, "%s.W", lname);
    ck_assert_str_eq(n->input[1], name);
    const float *W = floats_of(g, name, 3, (const int64_t[]){ dirs, G * H, E });
    snprintf(name, sizeof name, "%s.R", lname);
    const float *R = floats_of(g, name, 3, (const int64_t[]){ dirs, G * H, H });
    snprintf(name, sizeof name, "%s.B", lname);
    const float *B = floats_of(g, name, 2, (const int64_t[]){ dirs, 2 * G * H });
    const float *table = floats_of(g, "embedding_0.weight", 2, (const int64_t[]){ V, E });

    float *got = predict(m, &rows_ids[0][0], N_ROWS, T, dirs * H);
    for (int r = 0; r < N_ROWS; r++) {
        float x[T * E];
        int steps = 0;
        for (int t = 0; t < T; t++)
            if (!mask_zero || rows_ids[r][t] != 0) memcpy(x + E * steps++, table + rows_ids[r][t] * E, sizeof(float) * E);
        for (int part = 0; part < dirs; part++) {
            /* libllm's output parts: the layer's own direction first; ONNX's
             * direction 0 reads forwards, 1 backwards */
            int reverse = part == 0 ? go_backwards : !go_backwards, d = bidir ? reverse : 0;
            double h[H];
            onnx_rnn(gru, W + d * G * H * E, R + d * G * H * H, B + d * 2 * G * H, x, steps, reverse, h);
            for (int j = 0; j < H; j++)
                ck_assert_msg(fabs(h[j] - got[r * dirs * H + part * H + j]) < 1e-5,
                              "%s%s row %d part %d unit %d: ONNX reference %.7f, libllm %.7f", bidir ? "bidirectional " : "",
                              op, r, part, j, h[j], (double)got[r * dirs * H + part * H + j]);
        }
    }
    free(got);
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_model_free(m);
}

START_TEST(lstm_gates_in_onnx_order) {
    check_recurrent(0, 0, 0, 1);
    check_recurrent(0, 0, 1, 1);
    check_recurrent(0, 0, 0, 0);
}
END_TEST

START_TEST(gru_gates_in_onnx_order) {
    check_recurrent(1, 0, 0, 1);
    check_recurrent(1, 0, 1, 1);
    check_recurrent(1, 0, 0, 0);
}
END_TEST

START_TEST(bidirectional_directions) {
    for (int gru = 0; gru < 2; gru++)
        for (int back = 0; back < 2; back++) check_recurrent(gru, 1, back, 1);
}
END_TEST

/* ---- structure ---- */

static llm_model *classifier(void) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(40, 6)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(5, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_dropout(0.25f)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    const char *texts[] = { "cheap pills buy now", "meeting notes for monday", "buy cheap watches", "lunch on monday" };
    const char *classes[] = { "ham", "spam" };
    llm_text_corpus *c;
    ck_assert_ok(llm_text_corpus_create(&c, classes, 2));
    for (int i = 0; i < 4; i++) ck_assert_ok(llm_text_corpus_add(c, texts[i], strlen(texts[i]), (i + 1) % 2));
    llm_vocab *v;
    ck_assert_ok(llm_vocab_build_from_corpus(&v, c, NULL, NULL));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = 9;
    vo.padding = LLM_SEQ_POST;
    int64_t t = 9;
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, &t));
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, NULL));
    ck_assert_ok(llm_model_set_metadata(m, "class_names", "ham,spam"));
    ck_assert_ok(llm_model_set_metadata(m, "threshold", "0.42"));
    llm_vocab_free(v);
    llm_text_corpus_free(c);
    return m;
}

START_TEST(classifier_inputs_outputs_metadata) {
    llm_model *m = classifier();
    Onnx__ModelProto *mp = export_read(m, NULL);
    check_well_formed(mp, 17);
    const Onnx__GraphProto *g = mp->graph;
    ck_assert_uint_eq(g->n_input, 1);
    ck_assert_uint_eq(g->n_output, 1);
    check_io(g->input[0], "ids", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, (const int64_t[]){ -1, 9 });
    check_io(g->output[0], "probabilities", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (const int64_t[]){ -1, 1 });
    /* the Dense layer: Gemm with the file's weight as it is, transB */
    const Onnx__NodeProto *gemm = first_op(g, "Gemm");
    ck_assert_str_eq(gemm->input[1], "dense_0.weight");
    ck_assert_str_eq(gemm->input[2], "dense_0.bias");
    ck_assert_int_eq(attr_int(gemm, "transB"), 1);
    floats_of(g, "dense_0.weight", 2, (const int64_t[]){ 1, 5 });
    ck_assert_int_eq(count_op(g, "Sigmoid"), 1);
    ck_assert_int_eq(count_op(g, "Identity"), 2); /* dropout, and the named output */
    ck_assert_str_eq(meta(mp, "class_names"), "ham,spam");
    ck_assert_str_eq(meta(mp, "threshold"), "0.42");
    ck_assert_str_eq(meta(mp, "vocab_size"), "40");
    ck_assert_str_eq(meta(mp, "seq_len"), "9");
    ck_assert_str_eq(meta(mp, "padding"), "post");
    ck_assert_str_eq(meta(mp, "truncation"), "post");
    ck_assert_ptr_nonnull(strstr(meta(mp, "libllm.architecture"), "\"kind\":\"lstm\""));
    ck_assert_ptr_nonnull(strstr(meta(mp, "libllm.vocab"), "cheap"));
    ck_assert_ptr_nonnull(meta(mp, "libllm.vectorize"));
    ck_assert_ptr_null(meta(mp, "format"));
    ck_assert_ptr_null(meta(mp, "libllm.email"));
    onnx__model_proto__free_unpacked(mp, NULL);

    /* options: a fixed batch, no text pipeline */
    llm_onnx_options o;
    llm_onnx_options_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_int_eq(o.opset, 17);
    ck_assert_int_eq(o.batch, 0);
    ck_assert_int_eq(o.text_pipeline, 1);
    o.batch = 4;
    o.text_pipeline = 0;
    mp = export_read(m, &o);
    check_io(mp->graph->input[0], "ids", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, (const int64_t[]){ 4, 9 });
    check_io(mp->graph->output[0], "probabilities", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (const int64_t[]){ 4, 1 });
    ck_assert_ptr_null(meta(mp, "libllm.vocab"));
    ck_assert_ptr_null(meta(mp, "libllm.vectorize"));
    ck_assert_str_eq(meta(mp, "padding"), "post");
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_onnx_options_init(NULL); /* no crash */
    llm_model_free(m);
}
END_TEST

/* One model per kind of layer and combination spam_train and lm_train make
 * (and a few more): each exports to a well-formed graph with the operators
 * of its mapping and every libllm tensor as an initializer of its name. */
typedef struct arch {
    const char *name;
    const char *ops;          /* operators the graph must hold, space-separated */
    const char *absent;       /* and must not */
    const char *output;
    int out_rank;
} arch;

static llm_model *arch_model(int k, int64_t *seq) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    llm_transformer_embedding_options te;
    llm_transformer_embedding_options_init(&te);
    te.vocab = 31;
    te.context = 12;
    te.dim = 8;
    llm_transformer_block_options tb;
    llm_transformer_block_options_init(&tb);
    tb.heads = 2;
    tb.causal = 0;
    *seq = 10;
    switch (k) {
    case 0: /* bag of embeddings, max */
        ck_assert_ok(llm_model_add(m, llm_layer_embedding(31, 6)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(4, LLM_ACT_RELU)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
        break;
    case 1: /* GRU sequences, average pool, softmax over 3 classes */
        ck_assert_ok(llm_model_add(m, llm_layer_embedding(31, 6)));
        ck_assert_ok(llm_model_add(m, llm_layer_gru(5, LLM_RETURN_SEQUENCES)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(3, LLM_ACT_SOFTMAX)));
        break;
    case 2: /* bidirectional LSTM sequences, layer norm, dense per step, max pool */
        ck_assert_ok(llm_model_add(m, llm_layer_embedding(31, 6)));
        ck_assert_ok(llm_model_add(m, llm_layer_bidirectional(llm_layer_lstm(3, LLM_RETURN_SEQUENCES))));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(4, LLM_ACT_TANH)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_MAX)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_NONE)));
        ck_assert_ok(llm_model_add(m, llm_layer_activation(LLM_ACT_SIGMOID)));
        break;
    case 3: /* Transformer encoder classifier */
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&te)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block_ex(&tb)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_global_pool(LLM_POOL_AVERAGE)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
        break;
    case 4: /* GPT: causal blocks, tied head, no padding mask, sinusoidal positions */
        te.mask_zero = 0;
        te.positional = LLM_POSITIONAL_SINUSOIDAL;
        tb.causal = 1;
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&te)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block_ex(&tb)));
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_block_ex(&tb)));
        ck_assert_ok(llm_model_add(m, llm_layer_layernorm(1e-5f)));
        ck_assert_ok(llm_model_add(m, llm_layer_lm_head(31, 1)));
        break;
    case 5: /* plain attention, untied head, no positions */
        te.positional = LLM_POSITIONAL_NONE;
        ck_assert_ok(llm_model_add(m, llm_layer_transformer_embedding_ex(&te)));
        ck_assert_ok(llm_model_add(m, llm_layer_attention(2, 1)));
        ck_assert_ok(llm_model_add(m, llm_layer_activation(LLM_ACT_GELU)));
        ck_assert_ok(llm_model_add(m, llm_layer_lm_head(31, 0)));
        break;
    default: /* float features, no embedding */
        ck_assert_ok(llm_model_add(m, llm_layer_dense(3, LLM_ACT_GELU)));
        ck_assert_ok(llm_model_add(m, llm_layer_dense(2, LLM_ACT_NONE)));
        *seq = 4;
        ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 1, seq));
        return m;
    }
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, seq));
    return m;
}

static const arch archs[] = {
    { "bag", "Gather ReduceMax Where Gemm Relu Sigmoid", "LSTM GRU TopK", "probabilities", 2 },
    { "gru_pool_average", "GRU TopK GatherElements CumSum ReduceSum Div Softmax", "LSTM", "probabilities", 2 },
    { "bilstm_layernorm", "LSTM LayerNormalization Tanh Reshape ReduceMax Concat", "GRU", "probabilities", 2 },
    { "transformer", "LayerNormalization MatMul Softmax ReduceSum Div Slice Sigmoid", "LSTM Gelu", "probabilities", 2 },
    { "gpt", "LayerNormalization MatMul Softmax Add", "TopK Slice Gelu Where", "logits", 3 },
    { "attention", "MatMul Softmax Gemm", "LayerNormalization Slice", "logits", 3 },
    { "float_input", "Gemm Sigmoid", "Gather", "outputs", 2 },
};

static int has_op(const Onnx__GraphProto *g, const char *ops, const char **missing) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s", ops);
    for (char *save, *op = strtok_r(buf, " ", &save); op; op = strtok_r(NULL, " ", &save))
        if (!count_op(g, op)) { *missing = strstr(ops, op); return 0; }
    return 1;
}

START_TEST(every_architecture_exports) {
    for (int k = 0; k < (int)(sizeof archs / sizeof archs[0]); k++) {
        int64_t seq;
        llm_model *m = arch_model(k, &seq);
        Onnx__ModelProto *mp = export_read(m, NULL);
        const Onnx__GraphProto *g = mp->graph;
        check_well_formed(mp, 17);
        const char *missing = NULL;
        ck_assert_msg(has_op(g, archs[k].ops, &missing), "%s: no %s node", archs[k].name, missing);
        char buf[160];
        snprintf(buf, sizeof buf, "%s", archs[k].absent);
        for (char *save, *op = strtok_r(buf, " ", &save); op; op = strtok_r(NULL, " ", &save))
            ck_assert_msg(count_op(g, op) == 0, "%s: a %s node", archs[k].name, op);
        ck_assert_str_eq(g->output[0]->name, archs[k].output);
        ck_assert_int_eq((int)g->output[0]->type->tensor_type->shape->n_dim, archs[k].out_rank);
        /* every tensor of the model file is an initializer under its name,
         * but the recurrent ones, which are reordered into W, R, B */
        int n;
        ck_assert_ok(llm_model_num_params(m, &n));
        for (int i = 0; i < n; i++) {
            const char *name;
            int ndim;
            int64_t shape[LLM_MAX_DIMS];
            ck_assert_ok(llm_model_param_info(m, i, &name, &ndim, shape));
            if (strstr(name, "lstm") || strstr(name, "gru") || strstr(name, "bidirectional")) continue;
            floats_of(g, name, ndim, shape);
        }
        onnx__model_proto__free_unpacked(mp, NULL);
        llm_model_free(m);
    }
}
END_TEST

/* Functional models (graph.h): one embedding applied twice, an LSTM and a
 * pooled branch concatenated; two inputs merged by Add; refused with two
 * outputs. (make onnx-check runs spam_train --arch two-branch in ONNX
 * Runtime against llm_model_predict.) */
START_TEST(functional_models_export) {
    llm_model *m = NULL;
    ck_assert_ok(llm_model_functional(&m, be));
    int64_t seq = 6, F = 3;
    llm_node *ids, *e1, *e2, *a, *b, *both, *out, *feat, *sum;
    llm_layer *emb = llm_layer_embedding(20, 4);
    ck_assert_ok(llm_model_input(m, LLM_DTYPE_I32, 1, &seq, &ids));
    ck_assert_ok(llm_model_apply(m, emb, ids, &e1));
    ck_assert_ok(llm_model_apply(m, emb, ids, &e2));
    ck_assert_ok(llm_model_apply(m, llm_layer_lstm(3, LLM_RETURN_LAST), e1, &a));
    ck_assert_ok(llm_model_apply(m, llm_layer_global_pool(LLM_POOL_MAX), e2, &b));
    ck_assert_ok(llm_model_merge(m, llm_layer_concatenate(), 2, (llm_node *[]){ a, b }, &both));
    ck_assert_ok(llm_model_apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), both, &out));
    ck_assert_ok(llm_model_set_outputs(m, 1, &out));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 0, NULL));
    Onnx__ModelProto *mp = export_read(m, NULL);
    const Onnx__GraphProto *g = mp->graph;
    check_well_formed(mp, 17);
    ck_assert_uint_eq(g->n_input, 1);
    check_io(g->input[0], "ids", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, (int64_t[]){ -1, seq });
    check_io(g->output[0], "probabilities", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (int64_t[]){ -1, 1 });
    ck_assert_int_eq(count_op(g, "Concat") >= 1, 1);
    ck_assert_int_eq(count_op(g, "LSTM"), 1);
    int tables = 0; /* the shared embedding's table: one initializer */
    for (size_t i = 0; i < g->n_initializer; i++) tables += strcmp(g->initializer[i]->name, "embedding_0.weight") == 0;
    ck_assert_int_eq(tables, 1);
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_model_free(m);

    /* two inputs, merged by Add */
    ck_assert_ok(llm_model_functional(&m, be));
    ck_assert_ok(llm_model_input(m, LLM_DTYPE_I32, 1, &seq, &ids));
    ck_assert_ok(llm_model_input(m, LLM_DTYPE_F32, 1, &F, &feat));
    ck_assert_ok(llm_model_apply(m, llm_layer_embedding(20, 4), ids, &e1));
    ck_assert_ok(llm_model_apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), e1, &a));
    ck_assert_ok(llm_model_apply(m, llm_layer_dense(4, LLM_ACT_TANH), feat, &b));
    ck_assert_ok(llm_model_merge(m, llm_layer_add(), 2, (llm_node *[]){ a, b }, &sum));
    ck_assert_ok(llm_model_apply(m, llm_layer_dense(1, LLM_ACT_NONE), sum, &out));
    ck_assert_ok(llm_model_set_outputs(m, 1, &out));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 0, NULL));
    mp = export_read(m, NULL);
    g = mp->graph;
    check_well_formed(mp, 17);
    ck_assert_uint_eq(g->n_input, 2);
    check_io(g->input[0], "input_0", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, (int64_t[]){ -1, seq });
    check_io(g->input[1], "input_1", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (int64_t[]){ -1, F });
    ck_assert_int_ge(count_op(g, "Add"), 1);
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_model_free(m);

    /* two outputs: refused, saying why */
    ck_assert_ok(llm_model_functional(&m, be));
    ck_assert_ok(llm_model_input(m, LLM_DTYPE_F32, 1, &F, &feat));
    ck_assert_ok(llm_model_apply(m, llm_layer_dense(1, LLM_ACT_NONE), feat, &a));
    ck_assert_ok(llm_model_apply(m, llm_layer_dense(2, LLM_ACT_NONE), feat, &b));
    ck_assert_ok(llm_model_set_outputs(m, 2, (llm_node *[]){ a, b }));
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 0, NULL));
    ck_assert_fails(llm_model_export_onnx(m, path, NULL), LLM_ERR_NOT_SUPPORTED);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "outputs"));
    llm_model_free(m);
}
END_TEST

START_TEST(gelu_follows_the_opset) {
    int64_t seq;
    llm_model *m = arch_model(4, &seq);
    Onnx__ModelProto *mp = export_read(m, NULL);
    /* opset 17: v sigmoid(2 k (v + a v^3)), libllm's tanh form */
    ck_assert_int_eq(count_op(mp->graph, "Gelu"), 0);
    ck_assert_int_eq(count_op(mp->graph, "Sigmoid"), 2);
    /* the tied head reads the token table: one initializer, two users */
    ck_assert_ptr_nonnull(initializer(mp->graph, "transformer_embedding_0.token"));
    ck_assert_ptr_null(initializer(mp->graph, "lm_head_0.weight"));
    int users = 0;
    for (size_t i = 0; i < mp->graph->n_node; i++)
        for (size_t k = 0; k < mp->graph->node[i]->n_input; k++)
            users += strcmp(mp->graph->node[i]->input[k], "transformer_embedding_0.token") == 0;
    ck_assert_int_eq(users, 2);
    onnx__model_proto__free_unpacked(mp, NULL);

    llm_onnx_options o;
    llm_onnx_options_init(&o);
    o.opset = 21;
    mp = export_read(m, &o);
    check_well_formed(mp, 21);
    ck_assert_int_eq(count_op(mp->graph, "Gelu"), 2);
    ck_assert(attr_str_is(first_op(mp->graph, "Gelu"), "approximate", "tanh"));
    /* opset 18 on: the reductions take their axes as an input */
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_model_free(m);

    m = arch_model(0, &seq);
    o.opset = 18;
    mp = export_read(m, &o);
    check_well_formed(mp, 18);
    const Onnx__NodeProto *max = first_op(mp->graph, "ReduceMax");
    ck_assert_uint_eq(max->n_input, 2);
    ck_assert_ptr_null(attribute(max, "axes"));
    onnx__model_proto__free_unpacked(mp, NULL);
    mp = export_read(m, NULL);
    max = first_op(mp->graph, "ReduceMax");
    ck_assert_uint_eq(max->n_input, 1);
    ck_assert_ptr_nonnull(attribute(max, "axes"));
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_model_free(m);
}
END_TEST

/* ---- refusals and failures ---- */

/* Entries of dir other than . and ..; *temps of them are temporary files. */
static int entries(int *temps) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    *temps = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        n++;
        *temps += strstr(e->d_name, ".tmp.") != NULL;
    }
    closedir(d);
    return n;
}

static llm_status host_write(const char *p, llm__onnx_fill_fn fill, void *user) {
    return llm__write_atomic(p, fill, user);
}

/* The module refuses a model with a kind it has no mapping for, naming the
 * layer, before writing anything. libllm's own kinds all have one, so the
 * model is a file's contents made up here and handed to the module directly. */
START_TEST(unknown_kind_is_refused) {
    char why[1024];
    void *h = llm__module_open("LLM_ONNX_MODULE", LLM__ONNX_MODULE_FILE, "ONNX", "", why, sizeof why);
    ck_assert_msg(h != NULL, "%s", why);
    llm__onnx_module_init_fn init;
    *(void **)&init = dlsym(h, LLM__ONNX_MODULE_ENTRY);
    ck_assert_ptr_nonnull(init);
    const llm__onnx_host host = { sizeof(llm__onnx_host), sizeof(llm__onnx_module), sizeof(llm__onnx_view),
                                  sizeof(llm__onnx_settings), LLM_VERSION_NUMBER, llm__error, host_write,
                                  llm__write_all };
    llm__onnx_module mod;
    ck_assert_ok(init(&host, &mod));
    ck_assert_int_eq(mod.version, LLM_VERSION_NUMBER);
    float table[6 * 2] = { 0 };
    const llm__onnx_tensor tensors[] = { { "embedding_0.weight", 2, { 6, 2 }, table } };
    const char *arch_json = "{\"input\":{\"dtype\":\"int32\",\"shape\":[4]},\"layers\":["
                            "{\"kind\":\"embedding\",\"vocab\":6,\"dim\":2,\"mask_zero\":true},"
                            "{\"kind\":\"conv1d\",\"filters\":3},{\"kind\":\"conv1d\",\"filters\":3}]}";
    const llm__onnx_entry entries_in[] = { { "libllm.architecture", arch_json } };
    const llm__onnx_view view = { tensors, 1, entries_in, 1, "test" };
    const llm__onnx_settings set = { "llm_model_export_onnx", 17, 0, 1 };
    ck_assert_fails(mod.export_model(&host, &view, &set, path), LLM_ERR_NOT_SUPPORTED);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "layer conv1d_0"));
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "no ONNX mapping"));
    int temps, n = entries(&temps);
    ck_assert_int_eq(n, 0);

    /* a tensor of the wrong shape, and one missing, are named too */
    const char *ok_json = "{\"input\":{\"dtype\":\"int32\",\"shape\":[4]},\"layers\":["
                          "{\"kind\":\"embedding\",\"vocab\":6,\"dim\":3,\"mask_zero\":true}]}";
    const llm__onnx_entry ok_entries[] = { { "libllm.architecture", ok_json } };
    const llm__onnx_view bad_shape = { tensors, 1, ok_entries, 1, "test" };
    ck_assert_fails(mod.export_model(&host, &bad_shape, &set, path), LLM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "embedding_0.weight is [6, 2], not [6, 3]"));
    const llm__onnx_view no_tensor = { tensors, 0, ok_entries, 1, "test" };
    ck_assert_fails(mod.export_model(&host, &no_tensor, &set, path), LLM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "no tensor embedding_0.weight"));
    const llm__onnx_view no_arch = { tensors, 1, entries_in, 0, "test" };
    ck_assert_fails(mod.export_model(&host, &no_arch, &set, path), LLM_ERR_FORMAT);
    ck_assert_int_eq(entries(&temps), 0);
    dlclose(h);
}
END_TEST

START_TEST(bad_calls_are_refused) {
    llm_model *m = classifier();
    llm_onnx_options o;
    ck_assert_fails(llm_model_export_onnx(NULL, path, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_export_onnx(m, NULL, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_model_export_onnx(m, "", NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_onnx_options_init(&o);
    o.size = 0;
    ck_assert_fails(llm_model_export_onnx(m, path, &o), LLM_ERR_INVALID_ARGUMENT);
    llm_onnx_options_init(&o);
    o.opset = 16;
    ck_assert_fails(llm_model_export_onnx(m, path, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "opset"));
    o.opset = 22;
    ck_assert_fails(llm_model_export_onnx(m, path, &o), LLM_ERR_INVALID_ARGUMENT);
    llm_onnx_options_init(&o);
    o.batch = -1;
    ck_assert_fails(llm_model_export_onnx(m, path, &o), LLM_ERR_INVALID_ARGUMENT);
    /* an old caller's smaller struct: the fields it lacks keep their defaults */
    llm_onnx_options_init(&o);
    o.size = offsetof(llm_onnx_options, batch);
    o.batch = 99;
    ck_assert_ok(llm_model_export_onnx(m, path, &o));
    Onnx__ModelProto *mp = read_model(path);
    check_io(mp->graph->input[0], "ids", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, (const int64_t[]){ -1, 9 });
    onnx__model_proto__free_unpacked(mp, NULL);
    ck_assert_int_eq(unlink(path), 0);

    /* an unbuilt model, an ensemble */
    llm_model *unbuilt, *ens;
    ck_assert_ok(llm_model_sequential(&unbuilt, be));
    ck_assert_ok(llm_model_add(unbuilt, llm_layer_dense(1, LLM_ACT_NONE)));
    ck_assert_fails(llm_model_export_onnx(unbuilt, path, NULL), LLM_ERR_STATE);
    ck_assert_ok(llm_model_ensemble(&ens, be));
    ck_assert_ok(llm_model_ensemble_add(ens, m));
    ck_assert_fails(llm_model_export_onnx(ens, path, NULL), LLM_ERR_NOT_SUPPORTED);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "ensemble"));
    llm_model *member;
    ck_assert_ok(llm_model_ensemble_member(ens, 0, &member));
    ck_assert_ok(llm_model_export_onnx(member, path, NULL)); /* a member alone is a model */
    ck_assert_int_eq(unlink(path), 0);

    /* no module: LLM_ONNX_MODULE names a file that is not there */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nowhere/libllm-onnx.so", dir);
    ck_assert_int_eq(setenv("LLM_ONNX_MODULE", missing, 1), 0);
    llm_clear_error();
    llm_status s = llm_model_export_onnx(member, path, NULL);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", llm_last_error());
    ck_assert_int_eq(unsetenv("LLM_ONNX_MODULE"), 0);
    ck_assert_int_eq(s, LLM_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(msg, "LLM_ONNX_MODULE") && strstr(msg, "does not exist"), "%s", msg);
    /* a file that is not a module */
    ck_assert_int_eq(setenv("LLM_ONNX_MODULE", "/etc/hostname", 1), 0);
    s = llm_model_export_onnx(member, path, NULL);
    ck_assert_int_eq(unsetenv("LLM_ONNX_MODULE"), 0);
    ck_assert_int_eq(s, LLM_ERR_UNAVAILABLE);
    int temps;
    ck_assert_int_eq(entries(&temps), 0);
    /* a folder that is not there */
    char nodir[160];
    snprintf(nodir, sizeof nodir, "%s/nowhere/model.onnx", dir);
    ck_assert_fails(llm_model_export_onnx(member, nodir, NULL), LLM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), nodir));
    llm_model_free(unbuilt);
    llm_model_free(ens);
}
END_TEST

/* A write that fails half-way (the file size limit: EFBIG) leaves the old
 * file as it was and no temporary file; a good one replaces it. */
START_TEST(write_is_atomic) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(20000, 16)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(8, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    int64_t t = 12;
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, &t));
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("an older file", f);
    fclose(f);

    struct rlimit saved, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = saved;
    lim.rlim_cur = 256 * 1024; /* the table alone is 1.25 MB */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    llm_clear_error();
    llm_status s = llm_model_export_onnx(m, path, NULL);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    ck_assert_int_eq(s, LLM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "write failed"));
    int temps;
    ck_assert_int_eq(entries(&temps), 1);
    ck_assert_int_eq(temps, 0);
    char buf[64] = "";
    f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    fclose(f);
    ck_assert_str_eq(buf, "an older file");

    ck_assert_ok(llm_model_export_onnx(m, path, NULL));
    Onnx__ModelProto *mp = read_model(path);
    floats_of(mp->graph, "embedding_0.weight", 2, (const int64_t[]){ 20000, 16 });
    onnx__model_proto__free_unpacked(mp, NULL);
    ck_assert_int_eq(entries(&temps), 1);
    llm_model_free(m);
}
END_TEST

/* Every allocation of libllm's side failing in turn (the view, the writer):
 * out of memory, cleanly, and nothing on disk, until the export goes through. */
START_TEST(out_of_memory_is_clean) {
    llm_model *m = classifier();
    int64_t n, failures = 0;
    for (n = 0; n < 100000; n++) {
        llm__alloc_fail_after(n);
        llm_status s = llm_model_export_onnx(m, path, NULL);
        int fired = llm__alloc_fired();
        llm__alloc_fail_after(-1);
        if (!fired) {
            ck_assert_int_eq(s, LLM_OK);
            break;
        }
        ck_assert_msg(s == LLM_ERR_OUT_OF_MEMORY, "allocation %lld failing gave %s: %s", (long long)n,
                      llm_status_string(s), llm_last_error());
        int temps;
        ck_assert_int_eq(entries(&temps), 0);
        failures++;
    }
    ck_assert_int_gt(failures, 3);
    Onnx__ModelProto *mp = read_model(path);
    check_well_formed(mp, 17);
    onnx__model_proto__free_unpacked(mp, NULL);
    llm_model_free(m);
}
END_TEST

Suite *suite_onnx(void) {
    Suite *s = suite_create("onnx");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, lstm_gates_in_onnx_order);
    tcase_add_test(c, gru_gates_in_onnx_order);
    tcase_add_test(c, bidirectional_directions);
    tcase_add_test(c, classifier_inputs_outputs_metadata);
    tcase_add_test(c, every_architecture_exports);
    tcase_add_test(c, functional_models_export);
    tcase_add_test(c, gelu_follows_the_opset);
    suite_add_tcase(s, c);
    TCase *e = tcase_create("errors");
    tcase_add_checked_fixture(e, setup, teardown);
    tcase_set_timeout(e, 60);
    tcase_add_test(e, unknown_kind_is_refused);
    tcase_add_test(e, bad_calls_are_refused);
    tcase_add_test(e, write_is_atomic);
    tcase_add_test(e, out_of_memory_is_clean);
    suite_add_tcase(s, e);
    return s;
}

#else /* built without the ONNX module (no protobuf-c, or LLM_ONNX=0) */

START_TEST(module_not_built) {
    /* the call itself still answers, with why */
    llm_backend *b;
    ck_assert_ok(llm_backend_create(&b, LLM_BACKEND_CPU, NULL));
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, b));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_NONE)));
    int64_t n = 2;
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_F32, 1, &n));
    fprintf(stderr, "onnx: libllm-onnx.so was not built (protobuf-c missing or LLM_ONNX=0): only its absence "
            "is checked\n");
    ck_assert_fails(llm_model_export_onnx(m, "/tmp/llm_onnx_never.onnx", NULL), LLM_ERR_UNAVAILABLE);
    llm_model_free(m);
    llm_backend_free(b);
}
END_TEST

Suite *suite_onnx(void) {
    Suite *s = suite_create("onnx");
    TCase *c = tcase_create("absent");
    tcase_add_test(c, module_not_built);
    suite_add_tcase(s, c);
    return s;
}

#endif
