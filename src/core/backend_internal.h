/* libllm private: the backend providers.
 *
 * A provider makes backends of one kind. src/core/backend.c keeps the table
 * of providers and answers the public calls through it, so no code outside
 * a provider asks which kind a backend is: the rest of the library uses the
 * backend's vtable (src/backend.h) and its capability flags
 * (llm__backend_has). Adding a kind is one provider plus one table line. */
#ifndef LLM_PRIVATE_BACKEND_INTERNAL_H
#define LLM_PRIVATE_BACKEND_INTERNAL_H

#include "../backend.h"

/* Reference counting (src/core/backend.c): every object that keeps a
 * backend pointer (tensor, model, decoder) retains it when it takes the
 * pointer and releases it when it is freed, so llm_backend_free (which drops
 * the creator's reference) may come before or after them. Thread-safe. */
void llm__backend_retain(llm_backend *be);
void llm__backend_release(llm_backend *be);

typedef struct llm__backend_provider {
    llm_backend_kind kind;
    /* LLM_OK when a backend for `device` can be created here, else
     * LLM_ERR_UNAVAILABLE saying which of module, driver or device is
     * missing (the message starts with fn). Creates nothing: no device
     * context. */
    llm_status (*probe)(int device, const char *fn);
    /* Fills be->ops, be->impl and be->threads for validated options; be is
     * zeroed and its kind set. Messages start with fn. */
    llm_status (*init)(llm_backend *be, const llm_backend_options *opts, const char *fn);
    /* Frees what init made (be itself belongs to the caller). */
    void (*release)(llm_backend *be);
    /* One line for llm_backend_describe, always NUL-terminated. */
    void (*describe)(const llm_backend *be, char *buf, size_t len);
} llm__backend_provider;

/* src/cpu/cpu_backend.c: always present. */
extern const llm__backend_provider llm__cpu_provider;

/* src/core/backend_cuda.c: loads libllm-cuda.so (src/gpu/) on first use. */
extern const llm__backend_provider llm__cuda_provider;

#endif /* LLM_PRIVATE_BACKEND_INTERNAL_H */
