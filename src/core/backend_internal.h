/* libllm private: entry points of the built-in backends. */
#ifndef LLM_PRIVATE_BACKEND_INTERNAL_H
#define LLM_PRIVATE_BACKEND_INTERNAL_H

#include "../backend.h"

/* src/cpu/cpu_backend.c */
llm_status llm__cpu_backend_init(llm_backend *be, const llm_backend_options *opts);
void llm__cpu_backend_release(llm_backend *be);
void llm__cpu_backend_describe(const llm_backend *be, char *buf, size_t len);

#endif
