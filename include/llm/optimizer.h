/* libllm: optimizers and learning-rate schedules.
 *
 * An llm_optimizer is a configuration: llm_model_compile copies it, and the
 * model keeps the optimizer's state (moments, step count) itself. So one
 * optimizer may configure several models and may be freed right after compile. */
#ifndef LLM_OPTIMIZER_H
#define LLM_OPTIMIZER_H

#include "common.h"
#include "status.h"

LLM_EXTERN_C_BEGIN

typedef struct llm_optimizer llm_optimizer;

typedef enum llm_optimizer_kind {
    LLM_OPTIMIZER_SGD = 0,   /* with optional (Nesterov) momentum */
    LLM_OPTIMIZER_ADAM = 1,  /* weight_decay is L2 added to the gradient */
    LLM_OPTIMIZER_ADAMW = 2  /* weight_decay is decoupled (Loshchilov & Hutter) */
} llm_optimizer_kind;

typedef enum llm_schedule_kind {
    LLM_SCHEDULE_CONSTANT = 0,
    LLM_SCHEDULE_STEP = 1,   /* lr * decay_rate ^ floor(step / decay_steps) */
    LLM_SCHEDULE_COSINE = 2  /* linear warmup over warmup_steps, then cosine from lr
                                to min_learning_rate at decay_steps (held after) */
} llm_schedule_kind;

typedef struct llm_optimizer_options {
    size_t size;             /* sizeof(llm_optimizer_options), set by _init */
    llm_optimizer_kind kind;
    float learning_rate;     /* > 0 */
    float beta1, beta2;      /* Adam(W); in [0, 1) */
    float epsilon;           /* Adam(W); > 0 */
    float momentum;          /* SGD; in [0, 1) */
    int nesterov;            /* SGD; needs momentum > 0 */
    float weight_decay;      /* >= 0 */
    float clip_norm;         /* clip gradients to this global L2 norm; 0 = off */
    llm_schedule_kind schedule;
    int64_t warmup_steps;    /* cosine; >= 0 */
    int64_t decay_steps;     /* step: steps per decay; cosine: total steps; >= 1 when used */
    float decay_rate;        /* step schedule factor, in (0, 1] */
    float min_learning_rate; /* cosine floor, >= 0 */
} llm_optimizer_options;

/* Defaults for a kind: SGD lr 0.01; Adam lr 1e-3, betas 0.9/0.999, epsilon 1e-7
 * (Keras); AdamW the same with weight_decay 0.01; constant schedule, no clipping. */
LLM_API void llm_optimizer_options_init(llm_optimizer_options *opts, llm_optimizer_kind kind);

/* Creates an optimizer from options (validated; LLM_ERR_INVALID_ARGUMENT
 * names the bad field). Free with llm_optimizer_free. */
LLM_API llm_status llm_optimizer_create(llm_optimizer **out, const llm_optimizer_options *opts);

/* Shorthands with the defaults above. */
LLM_API llm_status llm_optimizer_sgd(llm_optimizer **out, float learning_rate, float momentum,
                                     int nesterov);
LLM_API llm_status llm_optimizer_adam(llm_optimizer **out, float learning_rate);
LLM_API llm_status llm_optimizer_adamw(llm_optimizer **out, float learning_rate,
                                       float weight_decay);

/* The learning rate the schedule gives at a (0-based) step. */
LLM_API llm_status llm_optimizer_learning_rate(const llm_optimizer *opt, int64_t step, float *lr);

/* Copies the optimizer's options out (opts->size must be set). */
LLM_API llm_status llm_optimizer_get_options(const llm_optimizer *opt, llm_optimizer_options *opts);

/* Frees an optimizer (a model compiled with it keeps its own copy). NULL is
 * a no-op. */
LLM_API void llm_optimizer_free(llm_optimizer *opt);

LLM_EXTERN_C_END

#endif /* LLM_OPTIMIZER_H */
