/* The ONNX model builder (ox.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ox.h"

/* Arena chunks: most are CHUNK bytes; a larger request gets one of its own. */
#define CHUNK ((size_t)64 << 10)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

/* A grown array of pointers (nodes, initializers, ...), kept outside the
 * arena since it is reallocated. */
typedef struct ptrs {
    void **p;
    size_t n, cap;
} ptrs;

typedef struct const_i64_entry {
    struct const_i64_entry *next;
    const char *name;
    int count;
    const int64_t *v;
} const_i64_entry;

struct ox {
    chunk *arena;
    int failed;
    int opset;
    int64_t batch;
    char scope[96];
    unsigned long counter;
    ptrs nodes, inits, inputs, outputs, meta;
    const_i64_entry *consts;
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset_id;
    Onnx__OperatorSetIdProto *opset_ids[1];
};

static void *arena_alloc(ox *g, size_t n) {
    if (g->failed) return NULL;
    if (n > SIZE_MAX / 2) { g->failed = 1; return NULL; }
    n = (n + 15) & ~(size_t)15;
    chunk *c = g->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK ? n : CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) { g->failed = 1; return NULL; }
        c->used = 0;
        c->cap = cap;
        if (cap > CHUNK && g->arena) { /* a big one goes second, keeping the current chunk's room */
            c->next = g->arena->next;
            g->arena->next = c;
        } else {
            c->next = g->arena;
            g->arena = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_str(ox *g, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = arena_alloc(g, n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *arena_printf(ox *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *arena_printf(ox *g, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return arena_str(g, buf);
}

static int push(ox *g, ptrs *a, void *p) {
    if (g->failed || !p) { g->failed = 1; return 0; }
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **q = realloc(a->p, cap * sizeof *q);
        if (!q) { g->failed = 1; return 0; }
        a->p = q;
        a->cap = cap;
    }
    a->p[a->n++] = p;
    return 1;
}

ox *ox_create(int opset) {
    ox *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->opset = opset;
    return g;
}

void ox_free(ox *g) {
    if (!g) return;
    for (chunk *c = g->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    ptrs *all[] = { &g->nodes, &g->inits, &g->inputs, &g->outputs, &g->meta };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->p);
    free(g);
}

int ox_failed(const ox *g) { return g->failed; }
int ox_opset(const ox *g) { return g->opset; }
void ox_set_batch(ox *g, int64_t batch) { g->batch = batch; }

void ox_scope(ox *g, const char *scope) { snprintf(g->scope, sizeof g->scope, "%s", scope); }

static char *fresh_name(ox *g, const char *what) {
    return arena_printf(g, "%s%s%s_%lu", g->scope, g->scope[0] ? "/" : "", what, ++g->counter);
}

Onnx__NodeProto *ox_node(ox *g, const char *op, int n_in, const char *const *in, int n_out) {
    Onnx__NodeProto *n = arena_alloc(g, sizeof *n);
    char **ins = arena_alloc(g, (size_t)(n_in ? n_in : 1) * sizeof *ins);
    char **outs = arena_alloc(g, (size_t)(n_out ? n_out : 1) * sizeof *outs);
    if (!n || !ins || !outs) return NULL;
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    for (int i = 0; i < n_in; i++) {
        /* an input that a failed call left empty makes the node fail too */
        if (!in[i]) { g->failed = 1; return NULL; }
        ins[i] = arena_str(g, in[i]);
    }
    char *name = fresh_name(g, op);
    for (int k = 0; k < n_out; k++) outs[k] = k == 0 ? name : arena_printf(g, "%s:%d", name ? name : "", k);
    n->op_type = arena_str(g, op);
    n->name = name;
    n->n_input = (size_t)n_in;
    n->input = ins;
    n->n_output = (size_t)n_out;
    n->output = outs;
    if (!push(g, &g->nodes, n)) return NULL;
    return g->failed ? NULL : n;
}

void ox_name_out(ox *g, Onnx__NodeProto *n, int k, const char *name) {
    char *copy = n && (size_t)k < n->n_output ? arena_str(g, name) : NULL;
    if (copy) n->output[k] = copy;
}

const char *ox_out(const Onnx__NodeProto *n, int k) {
    return n && (size_t)k < n->n_output ? n->output[k] : "";
}

const char *ox_op(ox *g, const char *op, int n_in, const char *const *in) {
    return ox_out(ox_node(g, op, n_in, in, 1), 0);
}

static Onnx__AttributeProto *add_attr(ox *g, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    if (!n || g->failed) return NULL;
    Onnx__AttributeProto *a = arena_alloc(g, sizeof *a);
    Onnx__AttributeProto **list = arena_alloc(g, (n->n_attribute + 1) * sizeof *list);
    if (!a || !list) return NULL;
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = arena_str(g, name);
    a->has_type = 1;
    a->type = type;
    if (n->n_attribute) memcpy(list, n->attribute, n->n_attribute * sizeof *list);
    list[n->n_attribute++] = a;
    n->attribute = list;
    return a->name ? a : NULL;
}

void ox_attr_int(ox *g, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = add_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) { a->has_i = 1; a->i = v; }
}

void ox_attr_float(ox *g, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = add_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) { a->has_f = 1; a->f = v; }
}

void ox_attr_str(ox *g, Onnx__NodeProto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = add_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *s = a ? arena_str(g, v) : NULL;
    if (s) { a->has_s = 1; a->s.data = (uint8_t *)s; a->s.len = strlen(s); }
}

void ox_attr_ints(ox *g, Onnx__NodeProto *n, const char *name, int count, const int64_t *v) {
    Onnx__AttributeProto *a = add_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = a ? arena_alloc(g, (size_t)count * sizeof *d) : NULL;
    if (d) {
        memcpy(d, v, (size_t)count * sizeof *d);
        a->n_ints = (size_t)count;
        a->ints = d;
    }
}

/* ---- initializers ---- */

static const char *add_tensor(ox *g, char *name, int elem_type, int ndim, const int64_t *dims, const void *data) {
    Onnx__TensorProto *t = arena_alloc(g, sizeof *t);
    int64_t *d = arena_alloc(g, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d || !name) return "";
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        d[i] = dims[i];
        count *= (size_t)dims[i];
    }
    t->name = name;
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = elem_type;
    t->has_raw_data = 1;
    t->raw_data.len = count * (elem_type == OX_INT64 ? 8 : 4);
    t->raw_data.data = (uint8_t *)data; /* only read: protobuf-c packs it */
    return push(g, &g->inits, t) ? name : "";
}

const char *ox_tensor(ox *g, const char *name, int elem_type, int ndim, const int64_t *dims, const void *data) {
    if (g->failed) return "";
    return add_tensor(g, arena_str(g, name), elem_type, ndim, dims, data);
}

void *ox_alloc(ox *g, size_t bytes) { return arena_alloc(g, bytes); }

float *ox_floats(ox *g, size_t n) {
    if (n > SIZE_MAX / sizeof(float)) { g->failed = 1; return NULL; }
    return arena_alloc(g, n * sizeof(float));
}

/* count < 0: a scalar holding v[0] */
static const char *make_i64(ox *g, int count, const int64_t *v) {
    if (g->failed) return "";
    int n = count < 0 ? 1 : count;
    for (const_i64_entry *c = g->consts; c; c = c->next)
        if (c->count == count && memcmp(c->v, v, (size_t)n * sizeof *v) == 0) return c->name;
    const_i64_entry *c = arena_alloc(g, sizeof *c);
    int64_t *copy = arena_alloc(g, (size_t)n * sizeof *copy);
    char *name = arena_printf(g, "const_i64_%lu", ++g->counter);
    if (!c || !copy || !name) return "";
    memcpy(copy, v, (size_t)n * sizeof *v);
    *c = (const_i64_entry){ g->consts, name, count, copy };
    g->consts = c;
    int64_t dim = n;
    return add_tensor(g, name, OX_INT64, count < 0 ? 0 : 1, &dim, copy);
}

const char *ox_i64s(ox *g, int count, const int64_t *v) { return make_i64(g, count, v); }
const char *ox_i64(ox *g, int64_t v) { return make_i64(g, -1, &v); }

const char *ox_f32(ox *g, float v) {
    float *p = ox_floats(g, 1);
    if (!p) return "";
    *p = v;
    return add_tensor(g, arena_printf(g, "const_f32_%lu", ++g->counter), OX_FLOAT, 0, NULL, p);
}

/* ---- inputs, outputs, metadata ---- */

static Onnx__ValueInfoProto *value_info(ox *g, const char *name, int elem_type, int rank, const int64_t *dims) {
    Onnx__ValueInfoProto *v = arena_alloc(g, sizeof *v);
    Onnx__TypeProto *t = arena_alloc(g, sizeof *t);
    Onnx__TypeProto__Tensor *tt = arena_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = arena_alloc(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dl = arena_alloc(g, (size_t)(rank ? rank : 1) * sizeof *dl);
    if (!v || !t || !tt || !sh || !dl) return NULL;
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    *t = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    *sh = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = arena_alloc(g, sizeof *d);
        if (!d) return NULL;
        *d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (dims[i] == OX_BATCH && g->batch == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = arena_str(g, "batch");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i] == OX_BATCH ? g->batch : dims[i];
        }
        dl[i] = d;
    }
    sh->n_dim = (size_t)rank;
    sh->dim = dl;
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = sh;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = arena_str(g, name);
    v->type = t;
    return g->failed ? NULL : v;
}

void ox_input(ox *g, const char *name, int elem_type, int rank, const int64_t *dims) {
    push(g, &g->inputs, value_info(g, name, elem_type, rank, dims));
}

void ox_output(ox *g, const char *name, int elem_type, int rank, const int64_t *dims) {
    push(g, &g->outputs, value_info(g, name, elem_type, rank, dims));
}

void ox_meta(ox *g, const char *key, const char *value) {
    if (g->failed) return;
    for (size_t i = 0; i < g->meta.n; i++)
        if (strcmp(((Onnx__StringStringEntryProto *)g->meta.p[i])->key, key) == 0) return;
    Onnx__StringStringEntryProto *e = arena_alloc(g, sizeof *e);
    if (!e) return;
    *e = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    e->key = arena_str(g, key);
    e->value = arena_str(g, value);
    push(g, &g->meta, e);
}

void ox_describe(ox *g, const char *graph_name, const char *doc, const char *producer_version) {
    g->graph.name = arena_str(g, graph_name);
    g->graph.doc_string = arena_str(g, doc);
    g->model.producer_version = arena_str(g, producer_version);
}

/* The IR version that goes with an operator set (onnx/helper.py's table). */
static int64_t ir_version(int opset) {
    return opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

const Onnx__ModelProto *ox_model(ox *g) {
    if (g->failed) return NULL;
    Onnx__GraphProto *gr = &g->graph;
    char *name = gr->name, *doc = gr->doc_string, *producer = g->model.producer_version;
    *gr = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    gr->name = name;
    gr->doc_string = doc;
    gr->n_node = g->nodes.n;
    gr->node = (Onnx__NodeProto **)g->nodes.p;
    gr->n_initializer = g->inits.n;
    gr->initializer = (Onnx__TensorProto **)g->inits.p;
    gr->n_input = g->inputs.n;
    gr->input = (Onnx__ValueInfoProto **)g->inputs.p;
    gr->n_output = g->outputs.n;
    gr->output = (Onnx__ValueInfoProto **)g->outputs.p;

    g->opset_id = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    g->opset_id.domain = arena_str(g, "");
    g->opset_id.has_version = 1;
    g->opset_id.version = g->opset;
    g->opset_ids[0] = &g->opset_id;

    Onnx__ModelProto *m = &g->model;
    *m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    m->has_ir_version = 1;
    m->ir_version = ir_version(g->opset);
    m->n_opset_import = 1;
    m->opset_import = g->opset_ids;
    m->producer_name = arena_str(g, "libllm");
    m->producer_version = producer;
    m->graph = gr;
    m->n_metadata_props = g->meta.n;
    m->metadata_props = (Onnx__StringStringEntryProto **)g->meta.p;
    return g->failed ? NULL : m;
}
