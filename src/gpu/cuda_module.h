/* libllm private: the interface between libllm and its CUDA module.
 *
 * The CUDA backend is built as a separate shared object (libllm-cuda.so) so
 * that libllm itself never depends on the CUDA runtime: libllm dlopen()s the
 * module the first time a CUDA backend is asked for (src/core/backend_cuda.c).
 * The module exports exactly one function, LLM__CUDA_MODULE_ENTRY; its name
 * carries the interface version, so a module built for another interface is
 * refused by name before anything is exchanged.
 *
 * The module does not link against libllm (a program may link libllm
 * statically): libllm hands it the few services it needs (error messages,
 * logging) in llm__cuda_host. Both sides also compare the sizes of the
 * private structs they share (vtable, backend object, step arguments) and
 * libllm's version, so a module from another build is refused with a message
 * instead of misreading memory. Bump the _vN suffix whenever the meaning of
 * these structs changes without changing their sizes. */
#ifndef LLM_PRIVATE_CUDA_MODULE_H
#define LLM_PRIVATE_CUDA_MODULE_H

#include "../backend.h"
#include "llm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#  define LLM__CUDA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LLM__CUDA_PRINTF(a, b)
#endif

#define LLM__CUDA_MODULE_ENTRY "llm_cuda_module_init_v1"
#define LLM__CUDA_MODULE_FILE "libllm-cuda.so"

/* Sizes both sides must agree on. */
typedef struct llm__cuda_layout {
    size_t ops, backend, options, lstm_step, lstm_grad, lstm_seq, gru_step, gru_grad, opt_update;
    int version; /* LLM_VERSION_NUMBER */
} llm__cuda_layout;

#define LLM__CUDA_LAYOUT_INIT                                                                      \
    { sizeof(llm__backend_ops), sizeof(struct llm_backend), sizeof(llm_backend_options),          \
      sizeof(llm__lstm_step), sizeof(llm__lstm_step_grad), sizeof(llm__lstm_sequence),             \
      sizeof(llm__gru_step),                                                                      \
      sizeof(llm__gru_step_grad), sizeof(llm__opt_update), LLM_VERSION_NUMBER }

/* What libllm gives the module. error() records the thread's last error
 * message (llm_last_error) and returns status, as llm__error does inside
 * libllm; log() goes to the user's log callback. */
typedef struct llm__cuda_host {
    llm__cuda_layout layout;
    llm_status (*error)(llm_status status, const char *fmt, ...) LLM__CUDA_PRINTF(2, 3);
    void (*log)(llm_log_level level, const char *fmt, ...) LLM__CUDA_PRINTF(2, 3);
} llm__cuda_host;

/* What the module gives libllm.
 * probe:    LLM_OK if `device` can be used, else LLM_ERR_UNAVAILABLE with the
 *           reason (no driver, no device, index out of range, device too old).
 *           Creates no CUDA context.
 * create:   fills be->ops, be->impl, be->threads for opts->device.
 * release:  frees everything create made (be itself belongs to libllm).
 * describe: one line for llm_backend_describe. */
typedef struct llm__cuda_module {
    llm__cuda_layout layout;
    const llm__backend_ops *ops;
    llm_status (*probe)(int device);
    llm_status (*create)(llm_backend *be, const llm_backend_options *opts);
    void (*release)(llm_backend *be);
    void (*describe)(const llm_backend *be, char *buf, size_t len);
} llm__cuda_module;

/* The entry point: checks host->layout against its own, fills *out.
 * Returns LLM_ERR_UNAVAILABLE (message through host->error) on a mismatch. */
typedef llm_status (*llm__cuda_module_init_fn)(const llm__cuda_host *host, llm__cuda_module *out);

#ifdef __cplusplus
}
#endif

#endif /* LLM_PRIVATE_CUDA_MODULE_H */
