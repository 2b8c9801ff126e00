#ifndef LLM_PRIVATE_INIT_H
#define LLM_PRIVATE_INIT_H
#include "layer_internal.h"
/* Fills the host buffer w (p->numel floats) with p's initial values. */
llm_status llm__init_param(const llm__param *p, float *w, uint64_t key);
#endif
