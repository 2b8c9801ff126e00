#include "llm/version.h"

#define LLM__STR2(x) #x
#define LLM__STR(x) LLM__STR2(x)

unsigned llm_version(void) { return LLM_VERSION_NUMBER; }

const char *llm_version_string(void) {
    return LLM__STR(LLM_VERSION_MAJOR) "." LLM__STR(LLM_VERSION_MINOR) "." LLM__STR(LLM_VERSION_PATCH);
}
