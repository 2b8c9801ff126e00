/* libllm-onnx.so: the ONNX exporter module (../onnx_module.h).
 *
 * Reads the model's architecture from its view (the libllm.architecture
 * entry of docs/FORMAT.md), refuses it when a layer kind has no exporter,
 * runs each layer's exporter (export_*.c) in model order (a functional
 * model's: node by node of its libllm.graph entry), names the input
 * and output, adds the metadata and streams the serialised model through
 * libllm's atomic writer. Serialisation is protobuf-c's, over the structs it
 * generates from ONNX's own onnx.proto. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exporter.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#  error "the ONNX module writes raw_data as the host's bytes; ONNX wants little-endian"
#endif

/* One exporter per layer kind of the file format; a kind not here makes the
 * model unexportable (the message names the layer). */
static const struct {
    const char *kind;
    ex_export_fn run;
} exporters[] = {
    { "embedding", ex_embedding },
    { "transformer_embedding", ex_transformer_embedding },
    { "lstm", ex_lstm },
    { "gru", ex_gru },
    { "bidirectional", ex_bidirectional },
    { "dense", ex_dense },
    { "activation", ex_activation_layer },
    { "dropout", ex_dropout },
    { "layernorm", ex_layernorm },
    { "global_pool", ex_global_pool },
    { "attention", ex_attention },
    { "transformer_block", ex_transformer_block },
    { "lm_head", ex_lm_head },
};
#define N_EXPORTERS ((int)(sizeof exporters / sizeof exporters[0]))

static ex_export_fn exporter_of(const char *kind) {
    for (int i = 0; i < N_EXPORTERS; i++)
        if (strcmp(exporters[i].kind, kind) == 0) return exporters[i].run;
    return NULL;
}

static const char *meta_of(const llm__onnx_view *view, const char *key) {
    for (int i = 0; i < view->n_meta; i++)
        if (strcmp(view->meta[i].key, key) == 0) return view->meta[i].value;
    return NULL;
}

/* ---- the architecture ---- */

/* A functional model's node (libllm.graph, docs/FORMAT.md). */
#define EX_MAX_FROM 8
typedef struct ex_node {
    int layer;                         /* index into layers; -1: an input */
    int n_from, from[EX_MAX_FROM];
    int ids, rank;                     /* inputs */
    int64_t dim[EX_MAX_RANK];
    char name[24];                     /* inputs: the graph input's name */
} ex_node;

typedef struct model_spec {
    cJSON *root;
    ex_layer *layers;
    int n_layers;
    int ids;                           /* the input is token ids */
    int rank;
    int64_t dim[EX_MAX_RANK];          /* per-sample input shape */
    ex_node *nodes;                    /* functional models: the graph, else NULL */
    int n_nodes, output;
} model_spec;

static void spec_free(model_spec *m) {
    cJSON_Delete(m->root);
    free(m->layers);
    free(m->nodes);
}

static int is_merge(const char *kind) {
    return strcmp(kind, "concatenate") == 0 || strcmp(kind, "add") == 0 || strcmp(kind, "multiply") == 0;
}

/* A whole number in [lo, hi], or -1. */
static int index_in(const cJSON *v, int lo, int hi) {
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valuedouble < lo || v->valuedouble > hi)
        return -1;
    return (int)v->valuedouble;
}

/* libllm.graph: the nodes in creation order (each reads earlier ones only). */
static llm_status read_graph(ex_ctx *x, model_spec *m, const char *text) {
    cJSON *root = cJSON_Parse(text);
    if (!root) return ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph is not JSON (or out of memory)");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    llm_status s = LLM_OK;
    m->n_nodes = cJSON_GetArraySize(nodes);
    if (!cJSON_IsArray(nodes) || m->n_nodes < 2 || m->n_nodes > 4096 || !cJSON_IsArray(outs))
        s = ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph lacks nodes or outputs");
    else if (cJSON_GetArraySize(outs) != 1)
        s = ex_fail(x, NULL, LLM_ERR_NOT_SUPPORTED, "the model has %d outputs; the exporter writes models with one",
                    cJSON_GetArraySize(outs));
    if (s == LLM_OK && !(m->nodes = calloc((size_t)m->n_nodes, sizeof *m->nodes)))
        s = ex_fail(x, NULL, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    int n_inputs = 0;
    for (int i = 0; s == LLM_OK && i < m->n_nodes; i++) {
        const cJSON *o = cJSON_GetArrayItem(nodes, i), *in = cJSON_GetObjectItemCaseSensitive(o, "input");
        ex_node *nd = &m->nodes[i];
        if (in) {
            const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "dtype"));
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
            nd->layer = -1;
            nd->ids = dtype && strcmp(dtype, "int32") == 0;
            nd->rank = cJSON_GetArraySize(shape);
            if (!dtype || (!nd->ids && strcmp(dtype, "float32") != 0) || nd->rank < 1 || nd->rank > EX_MAX_RANK - 1 ||
                (nd->ids && nd->rank != 1)) {
                s = ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph: node %d is not a valid input", i);
                break;
            }
            for (int d = 0; d < nd->rank && s == LLM_OK; d++) {
                int v = index_in(cJSON_GetArrayItem(shape, d), 1, INT32_MAX);
                if (v < 0) s = ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph: node %d has an invalid shape", i);
                nd->dim[d] = v;
            }
            snprintf(nd->name, sizeof nd->name, "input_%d", n_inputs++);
            continue;
        }
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(o, "from");
        nd->layer = index_in(cJSON_GetObjectItemCaseSensitive(o, "layer"), 0, m->n_layers - 1);
        nd->n_from = cJSON_GetArraySize(from);
        if (nd->layer < 0 || !cJSON_IsArray(from) || nd->n_from < 1 || nd->n_from > EX_MAX_FROM) {
            s = ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph: node %d is not a valid application", i);
            break;
        }
        for (int k = 0; k < nd->n_from && s == LLM_OK; k++)
            if ((nd->from[k] = index_in(cJSON_GetArrayItem(from, k), 0, i - 1)) < 0)
                s = ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph: node %d reads a node that is not before it", i);
    }
    if (s == LLM_OK && (m->output = index_in(cJSON_GetArrayItem(outs, 0), 0, m->n_nodes - 1)) < 0)
        s = ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.graph: invalid output");
    /* one input keeps the names of a Sequential model's */
    for (int i = 0; s == LLM_OK && n_inputs == 1 && i < m->n_nodes; i++)
        if (m->nodes[i].layer < 0) snprintf(m->nodes[i].name, sizeof m->nodes[i].name, "%s", m->nodes[i].ids ? "ids" : "input");
    cJSON_Delete(root);
    return s;
}

static llm_status read_spec(ex_ctx *x, model_spec *m) {
    const char *text = meta_of(x->view, "libllm.architecture");
    if (!text) return ex_fail(x, NULL, LLM_ERR_FORMAT, "the model has no libllm.architecture entry");
    m->root = cJSON_Parse(text);
    if (!m->root) return ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.architecture is not JSON (or out of memory)");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(m->root, "input");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(m->root, "layers");
    const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(input, "dtype"));
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(input, "shape");
    int rank = cJSON_GetArraySize(shape);
    if (!dtype || !cJSON_IsArray(shape) || rank < 1 || rank > EX_MAX_RANK - 1 || !cJSON_IsArray(layers) ||
        cJSON_GetArraySize(layers) < 1)
        return ex_fail(x, NULL, LLM_ERR_FORMAT, "libllm.architecture lacks the input's dtype and shape or the layers");
    m->ids = strcmp(dtype, "int32") == 0;
    if (!m->ids && strcmp(dtype, "float32") != 0)
        return ex_fail(x, NULL, LLM_ERR_FORMAT, "the input dtype '%s' is not int32 or float32", dtype);
    m->rank = rank;
    for (int i = 0; i < rank; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || !(d->valuedouble >= 1 && d->valuedouble <= INT32_MAX))
            return ex_fail(x, NULL, LLM_ERR_FORMAT, "the input shape must hold sizes in [1, 2^31)");
        m->dim[i] = (int64_t)d->valuedouble;
    }
    if (m->ids && rank != 1) return ex_fail(x, NULL, LLM_ERR_FORMAT, "token ids must be rows [T]");

    m->n_layers = cJSON_GetArraySize(layers);
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    if (!m->layers) return ex_fail(x, NULL, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    /* layer names as in the file: <kind>_<k>, k counting that kind from 0 */
    for (int i = 0; i < m->n_layers; i++) {
        ex_layer *l = &m->layers[i];
        l->spec = cJSON_GetArrayItem(layers, i);
        l->kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l->spec, "kind"));
        if (!l->kind || !l->kind[0] || strlen(l->kind) > 40)
            return ex_fail(x, NULL, LLM_ERR_FORMAT, "layer %d of libllm.architecture has no kind", i);
        int k = 0;
        for (int j = 0; j < i; j++) k += strcmp(m->layers[j].kind, l->kind) == 0;
        snprintf(l->name, sizeof l->name, "%s_%d", l->kind, k);
    }
    const char *graph = meta_of(x->view, "libllm.graph");
    if (graph) EX_CHECK(read_graph(x, m, graph));
    for (int i = 0; i < m->n_layers; i++)
        if (!exporter_of(m->layers[i].kind) && !(graph && is_merge(m->layers[i].kind)))
            return ex_fail(x, &m->layers[i], LLM_ERR_NOT_SUPPORTED,
                           "kind '%s' has no ONNX mapping, so the model cannot be exported (docs/ONNX.md lists "
                           "the kinds that have one)", m->layers[i].kind);
    return LLM_OK;
}

/* ---- metadata ---- */

/* metadata_props: the model's own metadata (class_names, threshold, ...),
 * what a consumer needs to feed it (vocab_size, seq_len, padding,
 * truncation), the architecture, and with text_pipeline the entries that
 * let it tokenise as libllm does. */
static void add_metadata(ex_ctx *x, const model_spec *m) {
    ox *g = x->g;
    const llm__onnx_view *view = x->view;
    for (int i = 0; i < view->n_meta; i++) {
        const char *k = view->meta[i].key;
        if (strcmp(k, "format") != 0 && strncmp(k, "libllm.", 7) != 0) ox_meta(g, k, view->meta[i].value);
    }
    char num[32];
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m->layers[0].spec, "vocab");
    if (m->ids && cJSON_IsNumber(vocab)) {
        snprintf(num, sizeof num, "%.0f", vocab->valuedouble);
        ox_meta(g, "vocab_size", num);
    }
    if (m->ids) {
        snprintf(num, sizeof num, "%lld", (long long)m->dim[0]);
        ox_meta(g, "seq_len", num);
    }
    const char *vec = meta_of(view, "libllm.vectorize");
    cJSON *v = vec ? cJSON_Parse(vec) : NULL;
    const char *padding = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "padding"));
    const char *truncation = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "truncation"));
    if (padding) ox_meta(g, "padding", padding);
    if (truncation) ox_meta(g, "truncation", truncation);
    cJSON_Delete(v);
    static const char *const arch[] = { "libllm.architecture" };
    static const char *const pipeline[] = { "libllm.vocab", "libllm.bpe", "libllm.vectorize", "libllm.email" };
    ox_meta(g, arch[0], meta_of(view, arch[0]));
    for (size_t i = 0; x->set->text_pipeline && i < sizeof pipeline / sizeof pipeline[0]; i++) {
        const char *value = meta_of(view, pipeline[i]);
        if (value) ox_meta(g, pipeline[i], value);
    }
}

/* ---- writing ---- */

/* protobuf-c's output, streamed to the file through a buffer. */
typedef struct sink {
    ProtobufCBuffer base;
    const Onnx__ModelProto *model;
    int (*write_all)(int fd, const void *p, size_t n);
    int fd, err;
    size_t used;
    uint8_t buf[1 << 16];
} sink;

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    sink *s = (sink *)b;
    if (s->err) return;
    if (s->used + len > sizeof s->buf) {
        s->err = s->write_all(s->fd, s->buf, s->used);
        s->used = 0;
        if (!s->err && len >= sizeof s->buf) { /* a weight tensor: straight through */
            s->err = s->write_all(s->fd, data, len);
            return;
        }
    }
    if (s->err) return;
    memcpy(s->buf + s->used, data, len);
    s->used += len;
}

static int fill(int fd, void *user) {
    sink *s = user;
    s->fd = fd;
    onnx__model_proto__pack_to_buffer(s->model, &s->base);
    if (!s->err && s->used) s->err = s->write_all(fd, s->buf, s->used);
    return s->err;
}

/* A protobuf message is limited to 2 GiB (larger models need ONNX's
 * external data, which this exporter does not write). */
static llm_status write_model(ex_ctx *x, const Onnx__ModelProto *model, const char *path) {
    size_t bytes = onnx__model_proto__get_packed_size(model);
    if (bytes > (size_t)INT32_MAX)
        return ex_fail(x, NULL, LLM_ERR_NOT_SUPPORTED, "the model needs %zu bytes, more than the 2 GiB a protobuf "
                       "holds (ONNX external data is not supported)", bytes);
    sink *s = calloc(1, sizeof *s);
    if (!s) return ex_fail(x, NULL, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    s->base.append = sink_append;
    s->model = model;
    s->write_all = x->host->write_all;
    llm_status st = x->host->write_atomic(path, fill, s);
    free(s);
    return st;
}

/* ---- the export ---- */

static const char *output_name(int kind) {
    return kind == EX_OUT_PROBABILITIES ? "probabilities" : kind == EX_OUT_LOGITS ? "logits" : "outputs";
}

/* A merge layer of a functional model: Concat over the last axis, or a
 * chain of Add / Mul; the padding mask of the first input that has one
 * goes on while a time axis is left (as libllm's merge does). */
static llm_status merge(ex_ctx *x, const ex_layer *l, int n, const ex_val *in, ex_val *out) {
    ox *g = x->g;
    const char *names[EX_MAX_FROM];
    *out = in[0];
    out->mask = NULL;
    for (int k = 0; k < n; k++) {
        if (in[k].ids) return ex_fail(x, l, LLM_ERR_FORMAT, "input %d is token ids", k);
        names[k] = in[k].name;
        if (!out->mask) out->mask = in[k].mask;
    }
    if (out->rank < 2) out->mask = NULL;
    if (strcmp(l->kind, "concatenate") == 0) {
        Onnx__NodeProto *nd = ox_node(g, "Concat", n, names, 1);
        if (nd) ox_attr_int(g, nd, "axis", -1);
        out->name = nd ? ox_out(nd, 0) : "";
        out->dim[out->rank - 1] = 0;
        for (int k = 0; k < n; k++) out->dim[out->rank - 1] += in[k].dim[in[k].rank - 1];
    } else {
        const char *op = strcmp(l->kind, "add") == 0 ? "Add" : "Mul";
        out->name = names[0];
        for (int k = 1; k < n; k++) out->name = OX2(g, op, out->name, names[k]);
    }
    return ex_built(x, l);
}

/* A functional model: every node in order, each layer's exporter on the
 * value of the node it reads (a shared layer's weights are one initializer). */
static llm_status run_graph(ex_ctx *x, const model_spec *m, ex_val *result) {
    ox *g = x->g;
    ex_val *vals = calloc((size_t)m->n_nodes, sizeof *vals);
    if (!vals) return ex_fail(x, NULL, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    llm_status s = LLM_OK;
    int out_kind = EX_OUT_VALUES;
    for (int i = 0; s == LLM_OK && i < m->n_nodes; i++) {
        const ex_node *nd = &m->nodes[i];
        ex_val *v = &vals[i];
        if (nd->layer < 0) {
            v->ids = nd->ids;
            v->rank = nd->rank;
            memcpy(v->dim, nd->dim, sizeof v->dim);
            v->name = nd->name;
            int64_t dims[EX_MAX_RANK + 1] = { OX_BATCH };
            memcpy(dims + 1, nd->dim, (size_t)nd->rank * sizeof *dims);
            ox_input(g, nd->name, nd->ids ? OX_INT64 : OX_FLOAT, nd->rank + 1, dims);
            continue;
        }
        const ex_layer *l = &m->layers[nd->layer];
        x->at = nd->layer;
        ox_scope(g, l->name);
        if (is_merge(l->kind)) {
            ex_val in[EX_MAX_FROM];
            for (int k = 0; k < nd->n_from; k++) in[k] = vals[nd->from[k]];
            s = nd->n_from < 2 ? ex_fail(x, l, LLM_ERR_FORMAT, "a merge of %d node", nd->n_from) : merge(x, l, nd->n_from, in, v);
        } else if (nd->n_from != 1) {
            s = ex_fail(x, l, LLM_ERR_FORMAT, "it reads %d nodes", nd->n_from);
        } else {
            *v = vals[nd->from[0]];
            s = exporter_of(l->kind)(x, l, v);
        }
        if (s == LLM_OK && (v->rank < 1 || v->rank > EX_MAX_RANK - 1))
            s = ex_fail(x, l, LLM_ERR_INTERNAL, "its output has %d dimensions per row", v->rank);
        if (i == m->output) out_kind = x->out_kind; /* what the output is, whatever runs after it */
    }
    if (s == LLM_OK) *result = vals[m->output];
    x->out_kind = out_kind;
    free(vals);
    return s;
}

static llm_status build(ex_ctx *x, const model_spec *m) {
    ox *g = x->g;
    ex_val v;
    memset(&v, 0, sizeof v);
    v.ids = m->ids;
    v.rank = m->rank;
    memcpy(v.dim, m->dim, sizeof v.dim);
    v.name = m->ids ? "ids" : "input";
    int64_t dims[EX_MAX_RANK + 1] = { OX_BATCH };
    if (m->nodes) {
        EX_CHECK(run_graph(x, m, &v));
    } else {
        memcpy(dims + 1, m->dim, (size_t)m->rank * sizeof *dims);
        ox_input(g, v.name, m->ids ? OX_INT64 : OX_FLOAT, m->rank + 1, dims);
        for (x->at = 0; x->at < m->n_layers; x->at++) {
            const ex_layer *l = &m->layers[x->at];
            ox_scope(g, l->name);
            EX_CHECK(exporter_of(l->kind)(x, l, &v));
            if (v.rank < 1 || v.rank > EX_MAX_RANK - 1)
                return ex_fail(x, l, LLM_ERR_INTERNAL, "its output has %d dimensions per row", v.rank);
        }
    }
    if (v.ids) return ex_fail(x, NULL, LLM_ERR_FORMAT, "no layer turns the token ids into values");
    ox_scope(g, "");
    const char *out = output_name(x->out_kind);
    Onnx__NodeProto *n = ox_node(g, "Identity", 1, &v.name, 1);
    ox_name_out(g, n, 0, out);
    memcpy(dims + 1, v.dim, (size_t)v.rank * sizeof *dims);
    ox_output(g, out, OX_FLOAT, v.rank + 1, dims);

    char doc[512];
    snprintf(doc, sizeof doc,
             "Exported by libllm %s. Input '%s': %s. Output '%s': what llm_model_predict gives for the same rows. "
             "docs/ONNX.md in libllm describes the mapping.",
             x->view->library_version, m->ids ? "ids" : "input",
             m->ids ? "int64 token ids [batch, seq_len]; id 0 is padding wherever it stands when the model's "
                      "embedding masks it (metadata: vocab_size, seq_len, padding)"
                    : "float [batch, ...]",
             out);
    ox_describe(g, "libllm", doc, x->view->library_version);
    add_metadata(x, m);
    return ex_built(x, NULL);
}

static llm_status export_model(const llm__onnx_host *host, const llm__onnx_view *view,
                               const llm__onnx_settings *settings, const char *path) {
    ex_ctx x;
    memset(&x, 0, sizeof x);
    x.host = host;
    x.view = view;
    x.set = settings;
    model_spec m;
    memset(&m, 0, sizeof m);
    llm_status s = read_spec(&x, &m);
    if (s == LLM_OK) {
        x.layers = m.layers;
        x.n_layers = m.n_layers;
        x.g = ox_create(settings->opset);
        x.param_names = calloc((size_t)view->n_tensors + 1, sizeof *x.param_names);
        if (!x.g || !x.param_names) s = ex_fail(&x, NULL, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (s == LLM_OK) {
        ox_set_batch(x.g, settings->batch);
        s = build(&x, &m);
    }
    if (s == LLM_OK) {
        const Onnx__ModelProto *model = ox_model(x.g);
        s = model ? write_model(&x, model, path) : ex_built(&x, NULL);
    }
    free(x.param_names);
    ox_free(x.g);
    spec_free(&m);
    return s;
}

__attribute__((visibility("default"))) llm_status llm_onnx_module_init_v1(const llm__onnx_host *host,
                                                                          llm__onnx_module *out);
__attribute__((visibility("default"))) llm_status llm_onnx_module_init_v1(const llm__onnx_host *host,
                                                                          llm__onnx_module *out) {
    /* libllm compares the sizes and the version it gets back and refuses a
     * module from another build with its own message */
    if (!host || !out) return LLM_ERR_INVALID_ARGUMENT;
    out->host_size = sizeof(llm__onnx_host);
    out->module_size = sizeof(llm__onnx_module);
    out->view_size = sizeof(llm__onnx_view);
    out->settings_size = sizeof(llm__onnx_settings);
    out->version = LLM_VERSION_NUMBER;
    out->export_model = export_model;
    return LLM_OK;
}
