/* libllm private: the interface between libllm and its ONNX module.
 *
 * The exporter is a separate shared object, libllm-onnx.so (src/onnx/module/,
 * linked with protobuf-c), so that libllm.so never depends on protobuf. libllm
 * dlopen()s it on each llm_model_export_onnx (src/onnx/export.c), calls its one
 * exported function, LLM__ONNX_MODULE_ENTRY (the name carries the interface
 * version), and closes it again: the module keeps no state between calls.
 * Both sides compare the sizes of the structs below and libllm's version, so
 * a module from another build is refused with a message. Bump _vN when the
 * meaning changes but not the sizes.
 *
 * What the module sees of a model is what its model file holds (docs/FORMAT.md):
 * the __metadata__ entries (libllm.architecture, the text pipeline, user
 * metadata) and the tensors under their file names and layouts. That is the
 * stable description of a model; the module never sees libllm's layer
 * objects, so it does not change when they do (src/onnx/model_view.c is the
 * one place that gathers the view from a model).
 *
 * The module does not link against libllm (which may be linked statically
 * into the program): libllm hands it error() and its file writers. */
#ifndef LLM_PRIVATE_ONNX_MODULE_H
#define LLM_PRIVATE_ONNX_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include "llm/status.h"
#include "llm/version.h"

#if defined(__GNUC__)
#  define LLM__ONNX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LLM__ONNX_PRINTF(a, b)
#endif

#define LLM__ONNX_MODULE_ENTRY "llm_onnx_module_init_v1"
#define LLM__ONNX_MODULE_FILE "libllm-onnx.so"
#define LLM__ONNX_MAX_DIMS 8

/* One F32 tensor of the model file: little-endian floats, contiguous. */
typedef struct llm__onnx_tensor {
    const char *name;                  /* e.g. "lstm_0.weight_ih" */
    int ndim;
    int64_t shape[LLM__ONNX_MAX_DIMS];
    const float *data;
} llm__onnx_tensor;

/* One __metadata__ entry of the model file. */
typedef struct llm__onnx_entry {
    const char *key, *value;
} llm__onnx_entry;

/* A model as its file describes it; everything is borrowed for one call. */
typedef struct llm__onnx_view {
    const llm__onnx_tensor *tensors;
    int n_tensors;
    const llm__onnx_entry *meta;       /* libllm.architecture, libllm.vectorize, ... */
    int n_meta;
    const char *library_version;       /* "1.2.0": the ONNX producer_version */
} llm__onnx_view;

/* llm_onnx_options after validation, with the public function's name for
 * messages. */
typedef struct llm__onnx_settings {
    const char *fn;
    int opset;                         /* 17 .. 21 */
    int64_t batch;                     /* 0: dynamic */
    int text_pipeline;
} llm__onnx_settings;

/* Streams a file's bytes: called once by write_atomic with the open
 * temporary file; returns 0 or an errno value. */
typedef int (*llm__onnx_fill_fn)(int fd, void *user);

typedef struct llm__onnx_host {
    size_t host_size, module_size, view_size, settings_size; /* sizeof each, as libllm sees them */
    int version;                                             /* LLM_VERSION_NUMBER */
    llm_status (*error)(llm_status status, const char *fmt, ...) LLM__ONNX_PRINTF(2, 3);
    /* Writes path atomically (temporary file, fsync, rename, directory fsync)
     * with the bytes fill() writes; on failure nothing is left behind. */
    llm_status (*write_atomic)(const char *path, llm__onnx_fill_fn fill, void *user);
    /* write(2) until all n bytes are written; 0 or an errno value (for fill). */
    int (*write_all)(int fd, const void *p, size_t n);
} llm__onnx_host;

typedef struct llm__onnx_module {
    size_t host_size, module_size, view_size, settings_size;
    int version;
    /* Converts the view to an ONNX model and writes it to path. Errors go
     * through host->error with the message naming what (a layer, a tensor). */
    llm_status (*export_model)(const llm__onnx_host *host, const llm__onnx_view *view,
                               const llm__onnx_settings *settings, const char *path);
} llm__onnx_module;

typedef llm_status (*llm__onnx_module_init_fn)(const llm__onnx_host *host, llm__onnx_module *out);

#endif /* LLM_PRIVATE_ONNX_MODULE_H */
