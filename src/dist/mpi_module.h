/* libllm private: the interface between libllm and its MPI module.
 *
 * MPI support is a separate shared object, libllm-mpi.so (src/dist/mpi/,
 * built with mpicc), so that libllm never depends on an MPI library and its
 * ABI is the same whether or not MPI was built. libllm dlopen()s the module
 * on the first llm_dist_init / llm_dist_from_comm (src/dist/dist.c). The
 * module exports exactly one function, LLM__MPI_MODULE_ENTRY; its name
 * carries the interface version, and both sides compare the sizes of the
 * structs below and libllm's version, so a module from another build is
 * refused with a message. Bump _vN when the meaning changes but not the
 * sizes.
 *
 * The module does not link against libllm (which may be linked statically
 * into the program): libllm hands it error() and log(). Every collective
 * takes a timeout in seconds (0: wait forever with the blocking call) and
 * the name of the operation for its error message; a collective that fails
 * or times out returns LLM_ERR_DISTRIBUTED, and the communicator must not be
 * used for collectives again. */
#ifndef LLM_PRIVATE_MPI_MODULE_H
#define LLM_PRIVATE_MPI_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include "llm/status.h"
#include "llm/version.h"

#if defined(__GNUC__)
#  define LLM__MPI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LLM__MPI_PRINTF(a, b)
#endif

#define LLM__MPI_MODULE_ENTRY "llm_mpi_module_init_v1"
#define LLM__MPI_MODULE_FILE "libllm-mpi.so"

enum { LLM__MPI_F32 = 0, LLM__MPI_F64 = 1 };     /* element types of allreduce */
enum { LLM__MPI_SUM = 0, LLM__MPI_MAX = 1 };     /* reductions */

typedef struct llm__mpi_host {
    size_t host_size, module_size; /* sizeof both structs as libllm sees them */
    int version;                   /* LLM_VERSION_NUMBER */
    llm_status (*error)(llm_status status, const char *fmt, ...) LLM__MPI_PRINTF(2, 3);
    void (*log)(llm_log_level level, const char *fmt, ...) LLM__MPI_PRINTF(2, 3);
} llm__mpi_host;

/* A communicator handle is the module's own allocation (it holds an
 * MPI_Comm duplicated from MPI_COMM_WORLD or the user's communicator).
 * init:      MPI_Init_thread unless MPI is initialised (*initialised_here
 *            says which), then duplicates MPI_COMM_WORLD.
 * from_comm: duplicates *(const MPI_Comm *)user_comm; MPI must be initialised.
 * rank_size: this process's rank and the communicator's size.
 * allreduce: in place over n elements of buf (host memory).
 * bcast:     bytes from root's buf into everyone's.
 * barrier:   all ranks reached it.
 * release:   frees the communicator (only when healthy, i.e. no collective
 *            failed), then MPI_Finalize when finalize is set.
 * describe:  the MPI library's version line. */
typedef struct llm__mpi_module {
    size_t host_size, module_size;
    int version;
    llm_status (*init)(int *argc, char ***argv, void **comm, int *initialised_here);
    llm_status (*from_comm)(const void *user_comm, void **comm);
    llm_status (*rank_size)(void *comm, int *rank, int *size);
    llm_status (*allreduce)(void *comm, void *buf, int64_t n, int type, int op, double timeout_s,
                            const char *what);
    llm_status (*bcast)(void *comm, void *buf, size_t bytes, int root, double timeout_s, const char *what);
    llm_status (*barrier)(void *comm, double timeout_s, const char *what);
    void (*release)(void *comm, int healthy, int finalize);
    void (*describe)(char *buf, size_t len);
} llm__mpi_module;

typedef llm_status (*llm__mpi_module_init_fn)(const llm__mpi_host *host, llm__mpi_module *out);

#endif /* LLM_PRIVATE_MPI_MODULE_H */
