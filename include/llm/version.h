/* libllm: version of the headers and of the loaded library. */
#ifndef LLM_VERSION_H
#define LLM_VERSION_H

#include "common.h"

/* The Makefile reads these three lines to name the shared library
 * (libllm.so.MAJOR.MINOR.PATCH, SONAME libllm.so.MAJOR). */
#define LLM_VERSION_MAJOR 1
#define LLM_VERSION_MINOR 5
#define LLM_VERSION_PATCH 1

#define LLM_VERSION_NUMBER (LLM_VERSION_MAJOR * 10000 + LLM_VERSION_MINOR * 100 + LLM_VERSION_PATCH)

LLM_EXTERN_C_BEGIN

/* Version of the library actually loaded, as LLM_VERSION_NUMBER (major*10000 +
 * minor*100 + patch). Compare with the header's LLM_VERSION_NUMBER to detect a
 * mismatch between the headers a program was built with and the library it runs. */
LLM_API unsigned llm_version(void);

/* The same as a string, "MAJOR.MINOR.PATCH" (e.g. "1.4.0"). Never NULL;
 * static storage. */
LLM_API const char *llm_version_string(void);

LLM_EXTERN_C_END

#endif /* LLM_VERSION_H */
