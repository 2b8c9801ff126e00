/* libllm private: finding and loading run-time modules (libllm-cuda.so,
 * libllm-mpi.so), shared by the CUDA backend provider (src/core/backend_cuda.c)
 * and the MPI loader (src/dist/dist.c). */
#ifndef LLM_PRIVATE_MODULE_H
#define LLM_PRIVATE_MODULE_H

#include <stddef.h>

/* The directory of the file that holds this code (libllm.so, or the program
 * when libllm is linked statically) into dir, without a trailing '/'.
 * 0 when it cannot be found. */
int llm__self_dir(char *dir, size_t len);

/* dlopen()s path if the file exists. Returns the handle; on failure appends
 * path to `tried` when it does not exist, or sets *fatal with the reason in
 * `tried` when it exists but cannot be loaded (a missing cuBLAS, a wrong
 * architecture): searching further would only hide that. */
void *llm__module_try_open(const char *path, char *tried, size_t len, int *fatal);

/* Finds and loads a module: the path in $env_var if set (then only there),
 * else `file` next to this library, then in ../lib beside it, else on the
 * dynamic linker's search path. NULL with a message in why when it is
 * missing or fails to load (`what` names it, `hint` says why it may be
 * missing). A loaded module is never unloaded: the CUDA runtime and MPI do
 * not survive being unmapped while the process runs. */
void *llm__module_open(const char *env_var, const char *file, const char *what, const char *hint, char *why,
                       size_t why_len);

#endif /* LLM_PRIVATE_MODULE_H */
