/* libllm private: a hardened reader and an atomic writer for the safetensors
 * file format (https://huggingface.co/docs/safetensors), used for model files.
 *
 * Layout: an 8-byte little-endian header size N, N bytes of UTF-8 JSON
 * mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the first byte after the header, end exclusive) plus
 * an optional "__metadata__" object of string -> string, then the data.
 *
 * Only the dtypes libllm has are read and written: "F32" and "I32". Files
 * this writer produces open in any safetensors reader (Python, Rust, ...);
 * files from other writers open here when they hold only F32/I32 tensors.
 * Everything read is treated as hostile: every malformed input is
 * LLM_ERR_FORMAT with a message, never a crash or an out-of-bounds read. */
#ifndef LLM_PRIVATE_IO_SAFETENSORS_H
#define LLM_PRIVATE_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "llm/status.h"
#include "llm/tensor.h"

/* The reader's limits. The header limit is the reference implementation's
 * (100 MB); the format itself needs a nesting depth of 3. The writer refuses
 * to write what the reader would refuse. */
#define LLM__ST_MAX_HEADER 100000000u
#define LLM__ST_MAX_DEPTH 8
/* JSON keys and values in one header. A valid header needs about ten per
 * tensor; the cap bounds cJSON's memory (~100 bytes a node) on hostile input. */
#define LLM__ST_MAX_TOKENS 2000000
#define LLM__ST_MAX_NAME 1024          /* tensor names are 1 .. 1023 bytes */
#define LLM__ST_MAX_INT 9007199254740991.0 /* 2^53 - 1: larger JSON integers are refused */

/* One tensor. For writing, everything is borrowed from the caller; from a
 * reader, everything is owned by the file handle. shape has ndim entries
 * (0 <= ndim <= LLM_MAX_DIMS; ndim 0 is a scalar), each >= 0; bytes is
 * product(shape) * the dtype's size (4 for F32 and I32). data is 4-byte
 * aligned (8 when read) and little-endian; it may be NULL on write only when
 * bytes is 0, and is NULL from llm__safetensors_open_lazy until the tensor
 * is loaded. */
typedef struct llm__st_tensor {
    const char *name;
    llm_dtype dtype;
    int ndim;
    int64_t shape[LLM_MAX_DIMS];
    const void *data;
    size_t bytes;
} llm__st_tensor;

/* One "__metadata__" entry: both strings are NUL-terminated UTF-8. */
typedef struct llm__st_meta {
    const char *key;
    const char *value;
} llm__st_meta;

/* Writes n tensors (in this order, contiguous, the first one 8-byte aligned
 * in the file) and n_meta metadata entries (meta may be NULL when n_meta is
 * 0; no "__metadata__" key is written then) to path, atomically: through a
 * new file "<path>.tmp.XXXXXX" in the same directory that is written, fsynced,
 * renamed over path, and the directory fsynced. The new file gets the mode of
 * the file it replaces, else 0666 minus the umask.
 * LLM_ERR_INVALID_ARGUMENT: NULL/empty path, NULL tensors with n > 0, a name
 * empty, >= LLM__ST_MAX_NAME bytes, not UTF-8, "__metadata__" or repeated; a
 * bad dtype, ndim or dimension; bytes != product(shape) * 4; a NULL, non-UTF-8
 * or repeated metadata key or value. LLM_ERR_IO (naming the path and the
 * system's reason) when anything on disk fails; the temporary file is then
 * removed and a previous file at path is left as it was. If only the final
 * directory fsync fails, LLM_ERR_IO is returned with the new file in place. */
llm_status llm__safetensors_write(const char *path, const llm__st_tensor *tensors, int n,
                                  const llm__st_meta *meta, int n_meta);

typedef struct llm__safetensors llm__safetensors;

/* Opens the file at path and reads and validates its header and tensor
 * table, but no tensor data: llm__safetensors_load reads a tensor when it
 * is wanted, so a caller can check the metadata and the tensors' names,
 * dtypes and shapes first and a file that claims gigabytes of data costs
 * nothing until then. The file stays open until close. Only a regular file
 * is opened: a FIFO, device or directory is refused without blocking.
 * max_file_bytes caps the file size (0 = no cap beyond memory); a larger
 * file is LLM_ERR_FORMAT. The tensors' byte ranges must tile the data
 * section exactly (no overlap, no gap, nothing after the last one), as the
 * format requires. LLM_ERR_INVALID_ARGUMENT for NULL arguments or an empty
 * path, LLM_ERR_IO when the file cannot be opened or read or is not a
 * regular file, LLM_ERR_FORMAT for malformed contents,
 * LLM_ERR_OUT_OF_MEMORY. *out is NULL on failure; free a result with
 * llm__safetensors_close. Messages name the path. */
llm_status llm__safetensors_open_lazy(llm__safetensors **out, const char *path, size_t max_file_bytes);

/* The data of tensor t (one of f's) in *data, read from the file on the
 * first call for t (into its own buffer, at least 8-byte aligned) and kept
 * until close; t->data is set too. The handle's data cache is filled through
 * a const pointer: a handle is not for concurrent use. LLM_ERR_IO or
 * LLM_ERR_FORMAT when the read fails or the file shrank. */
llm_status llm__safetensors_load(const llm__safetensors *f, const llm__st_tensor *t, const void **data);

/* llm__safetensors_open_lazy, then every tensor loaded and the file closed:
 * every tensor's data is set. */
llm_status llm__safetensors_open(llm__safetensors **out, const char *path, size_t max_file_bytes);

/* Importers of other libraries' files (src/nn/gpt2.c): the same, but every
 * dtype with a whole number of bytes per element is read, the others marked
 * in t->dtype with the codes below and t->bytes their true size; the caller
 * converts or skips them. The writer never writes these. */
#define LLM__ST_F16 ((llm_dtype)100)   /* IEEE half */
#define LLM__ST_BF16 ((llm_dtype)101)  /* bfloat16 */
#define LLM__ST_OTHER ((llm_dtype)102) /* any other dtype: not to be interpreted */
llm_status llm__safetensors_open_any(llm__safetensors **out, const char *path, size_t max_file_bytes);

/* The same on a memory image of a file (len bytes; data may be NULL when
 * len is 0). The tensor data is copied, so data may be freed afterwards. */
llm_status llm__safetensors_parse(llm__safetensors **out, const void *data, size_t len);

/* Tensors in header order: count, the i-th (NULL when i is out of range),
 * and lookup by exact name (NULL when absent). Pointers stay valid until
 * close. */
int llm__safetensors_count(const llm__safetensors *f);
const llm__st_tensor *llm__safetensors_tensor(const llm__safetensors *f, int i);
const llm__st_tensor *llm__safetensors_find(const llm__safetensors *f, const char *name);

/* Metadata: the value of key (NULL when absent), the number of entries and
 * the i-th one in header order (NULL when out of range). */
const char *llm__safetensors_meta(const llm__safetensors *f, const char *key);
int llm__safetensors_meta_count(const llm__safetensors *f);
const llm__st_meta *llm__safetensors_meta_at(const llm__safetensors *f, int i);

/* Frees everything; NULL is a no-op. */
void llm__safetensors_close(llm__safetensors *f);

#endif /* LLM_PRIVATE_IO_SAFETENSORS_H */
