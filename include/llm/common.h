/* libllm: common definitions shared by every public header.
 *
 * LLM_API marks the functions that form the library's ABI. The library is
 * built with -fvisibility=hidden, so anything without LLM_API stays private. */
#ifndef LLM_COMMON_H
#define LLM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(LLM_BUILDING)
#    define LLM_API __declspec(dllexport)
#  else
#    define LLM_API
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define LLM_API __attribute__((visibility("default")))
#else
#  define LLM_API
#endif

#ifdef __cplusplus
#  define LLM_EXTERN_C_BEGIN extern "C" {
#  define LLM_EXTERN_C_END }
#else
#  define LLM_EXTERN_C_BEGIN
#  define LLM_EXTERN_C_END
#endif

#endif /* LLM_COMMON_H */
