/* libllm: status codes, the per-thread last error message and logging.
 *
 * Every fallible function returns an llm_status. LLM_OK is 0 and errors are
 * negative; values are written out and only ever appended, so they are part
 * of the ABI. After a failing call, llm_last_error() says what went wrong. */
#ifndef LLM_STATUS_H
#define LLM_STATUS_H

#include "common.h"

LLM_EXTERN_C_BEGIN

typedef enum llm_status {
    LLM_OK = 0,
    LLM_ERR_INVALID_ARGUMENT = -1, /* NULL pointer, out-of-range value, bad option */
    LLM_ERR_OUT_OF_MEMORY = -2,    /* host or device allocation failed */
    LLM_ERR_SHAPE = -3,            /* shapes do not fit together */
    LLM_ERR_DTYPE = -4,            /* wrong element type */
    LLM_ERR_UNAVAILABLE = -5,      /* backend, module, driver or device missing */
    LLM_ERR_IO = -6,               /* file could not be read or written */
    LLM_ERR_FORMAT = -7,           /* malformed or unsupported file contents */
    LLM_ERR_STATE = -8,            /* call not valid now (e.g. fit before compile) */
    LLM_ERR_NUMERIC = -9,          /* NaN or infinity in inputs, loss or gradients */
    LLM_ERR_BACKEND = -10,         /* the backend failed (driver error, BLAS error) */
    LLM_ERR_OVERFLOW = -11,        /* a size computation overflowed */
    LLM_ERR_NOT_SUPPORTED = -12,   /* valid request this build or backend cannot do */
    LLM_ERR_INTERNAL = -13,        /* a bug in libllm; please report it */
    LLM_ERR_CANCELLED = -14,       /* stopped by a user callback */
    LLM_ERR_DISTRIBUTED = -15      /* another rank failed, or a collective operation timed out */
} llm_status;

/* A short, static description of a status ("invalid argument"). Never NULL;
 * unknown values give "unknown status". */
LLM_API const char *llm_status_string(llm_status status);

/* The message of the last failure in the calling thread, e.g.
 * "llm_tensor_create: shape[1] = -3 must be positive". Never NULL: "" when no
 * error has happened in this thread. Successful calls do not clear it, so read
 * it right after the failing call. The string stays valid until the next
 * libllm call in this thread. */
LLM_API const char *llm_last_error(void);

/* Clears the calling thread's last error message. */
LLM_API void llm_clear_error(void);

typedef enum llm_log_level {
    LLM_LOG_DEBUG = 0,
    LLM_LOG_INFO = 1,
    LLM_LOG_WARN = 2,
    LLM_LOG_ERROR = 3
} llm_log_level;

typedef void (*llm_log_fn)(llm_log_level level, const char *message, void *user);

/* libllm never prints. Diagnostics that are not errors (e.g. "OpenBLAS uses
 * its generic kernels on this CPU") go to this callback when one is set.
 * fn NULL turns logging off (the default). Process-wide; thread-safe. */
LLM_API void llm_set_log_callback(llm_log_fn fn, void *user);

LLM_EXTERN_C_END

#endif /* LLM_STATUS_H */
