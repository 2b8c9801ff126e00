#ifndef LLM_PRIVATE_OPTIMIZER_INTERNAL_H
#define LLM_PRIVATE_OPTIMIZER_INTERNAL_H
#include "llm/optimizer.h"
#include "../backend.h"

struct llm_optimizer {
    llm_optimizer_options o;
};

/* Learning rate of the schedule at a 0-based step. */
float llm__schedule_lr(const llm_optimizer_options *o, int64_t step);
/* The kernel arguments for update number `step` (0-based) over n scalars. */
void llm__optimizer_update_args(const llm_optimizer_options *o, int64_t step, int64_t n,
                                float grad_scale, llm__opt_update *u);
#endif
