/* libllm private: entry points of the built-in backends. */
#ifndef LLM_PRIVATE_BACKEND_INTERNAL_H
#define LLM_PRIVATE_BACKEND_INTERNAL_H

#include "../backend.h"

/* Reference counting (src/core/backend.c): every object that keeps a
 * backend pointer (tensor, model, decoder) retains it when it takes the
 * pointer and releases it when it is freed, so llm_backend_free (which drops
 * the creator's reference) may come before or after them. Thread-safe. */
void llm__backend_retain(llm_backend *be);
void llm__backend_release(llm_backend *be);

/* src/cpu/cpu_backend.c */
llm_status llm__cpu_backend_init(llm_backend *be, const llm_backend_options *opts);
void llm__cpu_backend_release(llm_backend *be);
void llm__cpu_backend_describe(const llm_backend *be, char *buf, size_t len);

/* The CUDA backend lives in a module loaded on first use (src/core/backend.c,
 * src/gpu/cuda_module.h). llm__cuda_backend_init loads the module if needed
 * and creates the backend for opts->device; LLM_ERR_UNAVAILABLE says which of
 * module, driver or device is missing. llm__cuda_available probes the same
 * without creating anything (no CUDA context). */
llm_status llm__cuda_backend_init(llm_backend *be, const llm_backend_options *opts, const char *fn);
llm_status llm__cuda_available(int device, const char *fn);
void llm__cuda_backend_release(llm_backend *be);
void llm__cuda_backend_describe(const llm_backend *be, char *buf, size_t len);

/* Module loading helpers (src/core/backend.c), shared with the MPI module's
 * loader (src/dist/dist.c): the folder of the file holding libllm, and a
 * dlopen of path when it exists (appending it to `tried` when it does not;
 * setting *fatal with the reason in `tried` when it exists but fails). */
int llm__self_dir(char *dir, size_t len);
void *llm__module_try_open(const char *path, char *tried, size_t len, int *fatal);
/* Finds and loads a run-time module (libllm-cuda.so, libllm-mpi.so): the
 * path in $env_var if set, else `file` next to this library or in ../lib,
 * else on the library search path. NULL with a message in why when it is
 * missing or fails to load (`what` names it, `hint` says why it may be missing). */
void *llm__module_open(const char *env_var, const char *file, const char *what, const char *hint, char *why,
                       size_t why_len);

#endif
