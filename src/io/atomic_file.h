/* libllm private: writing a file atomically, shared by the model files
 * (safetensors.c) and the ONNX exporter (src/onnx/).
 *
 * The bytes go to a new file "<path>.tmp.XXXXXX" in path's folder, which is
 * fsynced, renamed over path, and the folder fsynced, so a crash, a full disk
 * or a failing writer leaves the previous file (or none) in place and no
 * temporary file behind. */
#ifndef LLM_PRIVATE_IO_ATOMIC_FILE_H
#define LLM_PRIVATE_IO_ATOMIC_FILE_H

#include <stddef.h>
#include "llm/status.h"

/* Writes the file's bytes to fd; returns 0 or an errno value. */
typedef int (*llm__fill_fn)(int fd, void *user);

/* Writes path with what fill() writes, atomically (above). The new file gets
 * the mode of the file it replaces, else 0666 minus the umask.
 * LLM_ERR_INVALID_ARGUMENT for a NULL or empty path; LLM_ERR_IO with the path,
 * the step and the system's reason ("write failed: No space left on
 * device") when a step fails; LLM_ERR_OUT_OF_MEMORY. */
llm_status llm__write_atomic(const char *path, llm__fill_fn fill, void *user);

/* write(2) until all n bytes are written; returns 0 or an errno value. */
int llm__write_all(int fd, const void *p, size_t n);

#endif /* LLM_PRIVATE_IO_ATOMIC_FILE_H */
