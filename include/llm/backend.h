/* libllm: compute backends.
 *
 * A backend is where tensors live and ops run: the CPU (OpenBLAS plus a small
 * thread pool) or, where available, a CUDA device. Everything above the
 * tensor layer is backend-independent: switching to the GPU is one argument. */
#ifndef LLM_BACKEND_H
#define LLM_BACKEND_H

#include "common.h"
#include "status.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_backend llm_backend;

typedef enum llm_backend_kind {
    LLM_BACKEND_CPU = 0,
    LLM_BACKEND_CUDA = 1
} llm_backend_kind;

typedef struct llm_backend_options {
    size_t size;  /* sizeof(llm_backend_options); set by llm_backend_options_init */
    int threads;  /* CPU threads for kernels and BLAS; 0 = all online cores. Between
                     jobs the workers spin for up to 100 us before they sleep, so
                     give a backend no more threads than the cores it may use */
    int device;   /* device index for GPU backends; 0 by default */
} llm_backend_options;

/* Fills *opts with the defaults and sets opts->size. */
LLM_API void llm_backend_options_init(llm_backend_options *opts);

/* Creates a backend of the given kind. opts may be NULL for the defaults.
 * Returns LLM_ERR_UNAVAILABLE (with the reason in llm_last_error()) when the
 * kind's module is missing or it has no device, LLM_ERR_INVALID_ARGUMENT for
 * an unknown kind, threads outside [0, 1024] or a negative device.
 *
 * Lifetime: a backend is reference-counted. Creating it gives the caller one
 * reference, which llm_backend_free drops. Every tensor, model (ensembles
 * and their members included) and decoder made on it holds a reference of its
 * own until it is freed. So the order of the frees does not matter: the
 * caller may free the backend first and go on using, then freeing, the
 * objects made on it; the backend (its thread pool, its device memory pool)
 * is torn down when the last of them is freed. A backend pointer obtained
 * from an object (llm_tensor_backend) is borrowed: valid while that object
 * lives. References are counted atomically, so objects on one backend may be
 * freed from different threads. */
LLM_API llm_status llm_backend_create(llm_backend **out, llm_backend_kind kind,
                                      const llm_backend_options *opts);

/* Drops the caller's reference to a backend (see llm_backend_create): the
 * backend itself goes when the last tensor, model and decoder on it are
 * freed too. Call it once per llm_backend_create. NULL is a no-op. */
LLM_API void llm_backend_free(llm_backend *backend);

/* Sets *available to 1 if a backend of this kind can be created here, else
 * 0 (and llm_last_error() says why). LLM_ERR_INVALID_ARGUMENT for an unknown
 * kind or NULL out pointer. */
LLM_API llm_status llm_backend_is_available(llm_backend_kind kind, int *available);

/* The kind and thread count of a backend. */
LLM_API llm_status llm_backend_kind_of(const llm_backend *backend, llm_backend_kind *kind);
LLM_API llm_status llm_backend_threads(const llm_backend *backend, int *threads);

/* Writes a one-line description into buf (always NUL-terminated when len > 0),
 * e.g. "cpu threads=2 blas=OpenBLAS 0.3.21 core=Prescott (generic: set
 * OPENBLAS_CORETYPE for this CPU)". *needed, if not NULL, receives the full
 * length without the NUL, so a caller can size the buffer. Debian's OpenBLAS
 * can fall back to slow generic kernels on CPUs it does not know; the
 * description makes that visible. */
LLM_API llm_status llm_backend_describe(const llm_backend *backend, char *buf, size_t len,
                                        size_t *needed);

LLM_EXTERN_C_END

#endif /* LLM_BACKEND_H */
