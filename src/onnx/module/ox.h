/* ox: a small builder of ONNX models over the structs protobuf-c generates
 * from onnx.proto (onnx.pb-c.h), for the exporters in this folder.
 *
 * Every string and struct lives in the builder's arena and goes with
 * ox_free. Names of new values are "<scope>/<Op>_<k>" (the scope is the layer
 * being exported, "lstm_0"), unique in the graph, so the ONNX graph reads as
 * the libllm model does.
 *
 * A failed allocation is sticky: the builder remembers it (ox_failed) and
 * every later call is a harmless no-op that returns "" or NULL, so an
 * exporter builds its whole piece of graph and checks once at the end. */
#ifndef LLM_ONNX_OX_H
#define LLM_ONNX_OX_H

#include <stddef.h>
#include <stdint.h>
#include "onnx.pb-c.h"

enum {
    OX_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    OX_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
    OX_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    OX_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
};

/* A dimension of a graph input or output given as OX_BATCH is the batch:
 * the symbolic "batch", or the fixed size set by ox_set_batch. */
#define OX_BATCH (-1)

typedef struct ox ox;

ox *ox_create(int opset);            /* NULL when out of memory */
void ox_free(ox *g);
int ox_failed(const ox *g);
int ox_opset(const ox *g);
void ox_set_batch(ox *g, int64_t batch); /* 0: dynamic (the default) */
void ox_scope(ox *g, const char *scope);

/* Adds a node running op (default domain) on n_in inputs ("" leaves an
 * optional input out) with n_out new outputs, named from the scope. */
Onnx__NodeProto *ox_node(ox *g, const char *op, int n_in, const char *const *in, int n_out);
/* Gives output k of a node a name of its own ("" leaves the output out). */
void ox_name_out(ox *g, Onnx__NodeProto *n, int k, const char *name);
/* Output k of a node ("" for NULL). */
const char *ox_out(const Onnx__NodeProto *n, int k);
void ox_attr_int(ox *g, Onnx__NodeProto *n, const char *name, int64_t v);
void ox_attr_float(ox *g, Onnx__NodeProto *n, const char *name, float v);
void ox_attr_str(ox *g, Onnx__NodeProto *n, const char *name, const char *v);
void ox_attr_ints(ox *g, Onnx__NodeProto *n, const char *name, int count, const int64_t *v);

/* A one-output node; returns the output's name. */
const char *ox_op(ox *g, const char *op, int n_in, const char *const *in);
#define OX1(g, op, a) ox_op((g), (op), 1, (const char *const[]){ (a) })
#define OX2(g, op, a, b) ox_op((g), (op), 2, (const char *const[]){ (a), (b) })
#define OX3(g, op, a, b, c) ox_op((g), (op), 3, (const char *const[]){ (a), (b), (c) })

/* Constants, as initializers: int64 [count] (shapes, axes, indices; the same
 * values give the same initializer), an int64 or float scalar. */
const char *ox_i64s(ox *g, int count, const int64_t *v);
const char *ox_i64(ox *g, int64_t v);
const char *ox_f32(ox *g, float v);
#define OX_I64S(g, ...) ox_i64s((g), (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), \
                                (const int64_t[]){ __VA_ARGS__ })

/* A named initializer of elem_type (4-byte OX_FLOAT or 8-byte OX_INT64
 * elements, little-endian) with ndim dims. The data is borrowed: it must
 * live until the model is written (the model's own weights, or memory from
 * ox_floats). Returns name. */
const char *ox_tensor(ox *g, const char *name, int elem_type, int ndim, const int64_t *dims, const void *data);
/* Zeroed arena memory (bytes, or n floats), for initializers computed by
 * an exporter; NULL after a failure. */
void *ox_alloc(ox *g, size_t bytes);
float *ox_floats(ox *g, size_t n);

/* The graph's inputs and outputs; dims may hold OX_BATCH. */
void ox_input(ox *g, const char *name, int elem_type, int rank, const int64_t *dims);
void ox_output(ox *g, const char *name, int elem_type, int rank, const int64_t *dims);
/* A metadata_props entry (key and value copied); a key given twice keeps the first. */
void ox_meta(ox *g, const char *key, const char *value);
/* The graph's name and doc_string, the model's producer (copied). */
void ox_describe(ox *g, const char *graph_name, const char *doc, const char *producer_version);

/* The assembled model, valid until ox_free; NULL after a failure. */
const Onnx__ModelProto *ox_model(ox *g);

#endif /* LLM_ONNX_OX_H */
