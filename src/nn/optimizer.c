/* Optimizer configurations and learning-rate schedules. The state lives in
 * the model; see include/llm/optimizer.h. */
#include <math.h>
#include "optimizer_internal.h"
#include "../core/internal.h"

void llm_optimizer_options_init(llm_optimizer_options *o, llm_optimizer_kind kind) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->kind = kind;
    o->learning_rate = kind == LLM_OPTIMIZER_SGD ? 0.01f : 1e-3f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->epsilon = 1e-7f;
    o->weight_decay = kind == LLM_OPTIMIZER_ADAMW ? 0.01f : 0.0f;
    o->schedule = LLM_SCHEDULE_CONSTANT;
    o->decay_steps = 1;
    o->decay_rate = 1.0f;
}

static llm_status validate(const llm_optimizer_options *o) {
    static const char fn[] = "llm_optimizer_create";
#define BAD(...) return llm__error(LLM_ERR_INVALID_ARGUMENT, __VA_ARGS__)
    if (o->kind != LLM_OPTIMIZER_SGD && o->kind != LLM_OPTIMIZER_ADAM && o->kind != LLM_OPTIMIZER_ADAMW)
        BAD("%s: unknown optimizer kind %d", fn, (int)o->kind);
    if (!(o->learning_rate > 0.0f && isfinite(o->learning_rate))) BAD("%s: learning_rate = %g must be > 0", fn, (double)o->learning_rate);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f)) BAD("%s: beta1 = %g must be in [0, 1)", fn, (double)o->beta1);
    if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f)) BAD("%s: beta2 = %g must be in [0, 1)", fn, (double)o->beta2);
    if (!(o->epsilon > 0.0f && isfinite(o->epsilon))) BAD("%s: epsilon = %g must be > 0", fn, (double)o->epsilon);
    if (!(o->momentum >= 0.0f && o->momentum < 1.0f)) BAD("%s: momentum = %g must be in [0, 1)", fn, (double)o->momentum);
    if (o->nesterov && o->momentum == 0.0f) BAD("%s: nesterov needs momentum > 0", fn);
    if (!(o->weight_decay >= 0.0f && isfinite(o->weight_decay))) BAD("%s: weight_decay = %g must be >= 0", fn, (double)o->weight_decay);
    if (!(o->clip_norm >= 0.0f && isfinite(o->clip_norm))) BAD("%s: clip_norm = %g must be >= 0", fn, (double)o->clip_norm);
    if (o->schedule != LLM_SCHEDULE_CONSTANT && o->schedule != LLM_SCHEDULE_STEP && o->schedule != LLM_SCHEDULE_COSINE)
        BAD("%s: unknown schedule %d", fn, (int)o->schedule);
    if (o->schedule != LLM_SCHEDULE_CONSTANT && o->decay_steps < 1) BAD("%s: decay_steps = %lld must be >= 1", fn, (long long)o->decay_steps);
    if (o->warmup_steps < 0) BAD("%s: warmup_steps = %lld must be >= 0", fn, (long long)o->warmup_steps);
    if (o->schedule == LLM_SCHEDULE_STEP && !(o->decay_rate > 0.0f && o->decay_rate <= 1.0f))
        BAD("%s: decay_rate = %g must be in (0, 1]", fn, (double)o->decay_rate);
    if (!(o->min_learning_rate >= 0.0f && o->min_learning_rate <= o->learning_rate))
        BAD("%s: min_learning_rate = %g must be in [0, learning_rate]", fn, (double)o->min_learning_rate);
#undef BAD
    return LLM_OK;
}

llm_status llm_optimizer_create(llm_optimizer **out, const llm_optimizer_options *opts) {
    static const char fn[] = "llm_optimizer_create";
    if (!out) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!opts) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (opts->size < sizeof(size_t) + sizeof(llm_optimizer_kind))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: opts->size = %zu; call llm_optimizer_options_init first", fn, opts->size);
    llm_optimizer_options o;
    llm_optimizer_options_init(&o, opts->kind);
    LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    LLM__CHECK(validate(&o));
    llm_optimizer *p = llm__calloc(1, sizeof *p);
    if (!p) return llm__oom(fn);
    p->o = o;
    *out = p;
    return LLM_OK;
}

llm_status llm_optimizer_sgd(llm_optimizer **out, float lr, float momentum, int nesterov) {
    llm_optimizer_options o;
    llm_optimizer_options_init(&o, LLM_OPTIMIZER_SGD);
    o.learning_rate = lr;
    o.momentum = momentum;
    o.nesterov = nesterov;
    return llm_optimizer_create(out, &o);
}

llm_status llm_optimizer_adam(llm_optimizer **out, float lr) {
    llm_optimizer_options o;
    llm_optimizer_options_init(&o, LLM_OPTIMIZER_ADAM);
    o.learning_rate = lr;
    return llm_optimizer_create(out, &o);
}

llm_status llm_optimizer_adamw(llm_optimizer **out, float lr, float weight_decay) {
    llm_optimizer_options o;
    llm_optimizer_options_init(&o, LLM_OPTIMIZER_ADAMW);
    o.learning_rate = lr;
    o.weight_decay = weight_decay;
    return llm_optimizer_create(out, &o);
}

float llm__schedule_lr(const llm_optimizer_options *o, int64_t step) {
    double lr = o->learning_rate;
    switch (o->schedule) {
    case LLM_SCHEDULE_CONSTANT:
        break;
    case LLM_SCHEDULE_STEP:
        lr *= pow((double)o->decay_rate, (double)(step / o->decay_steps));
        break;
    case LLM_SCHEDULE_COSINE:
        if (step < o->warmup_steps) {
            lr *= (double)(step + 1) / (double)o->warmup_steps;
        } else {
            int64_t span = o->decay_steps - o->warmup_steps;
            double progress = span > 0 ? (double)(step - o->warmup_steps) / (double)span : 1.0;
            if (progress > 1.0) progress = 1.0;
            lr = o->min_learning_rate + 0.5 * (lr - o->min_learning_rate) * (1.0 + cos(3.141592653589793 * progress));
        }
        break;
    }
    return (float)lr;
}

llm_status llm_optimizer_learning_rate(const llm_optimizer *opt, int64_t step, float *lr) {
    if (!opt || !lr) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_optimizer_learning_rate: NULL argument");
    if (step < 0) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_optimizer_learning_rate: step = %lld must be >= 0", (long long)step);
    *lr = llm__schedule_lr(&opt->o, step);
    return LLM_OK;
}

llm_status llm_optimizer_get_options(const llm_optimizer *opt, llm_optimizer_options *opts) {
    if (!opt || !opts) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_optimizer_get_options: NULL argument");
    if (opts->size < sizeof(size_t))
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm_optimizer_get_options: opts->size = %zu is too small", opts->size);
    size_t n = opts->size < sizeof *opts ? opts->size : sizeof *opts;
    size_t keep = opts->size;
    memcpy(opts, &opt->o, n);
    opts->size = keep;
    return LLM_OK;
}

void llm_optimizer_free(llm_optimizer *opt) { llm__free(opt); }

void llm__optimizer_update_args(const llm_optimizer_options *o, int64_t step, int64_t n,
                                float grad_scale, llm__opt_update *u) {
    memset(u, 0, sizeof *u);
    u->kind = o->kind == LLM_OPTIMIZER_SGD ? LLM__OPT_SGD : o->kind == LLM_OPTIMIZER_ADAM ? LLM__OPT_ADAM : LLM__OPT_ADAMW;
    u->n = n;
    u->lr = llm__schedule_lr(o, step);
    u->beta1 = o->beta1;
    u->beta2 = o->beta2;
    u->eps = o->epsilon;
    u->weight_decay = o->weight_decay;
    u->momentum = o->momentum;
    u->nesterov = o->nesterov;
    u->grad_scale = grad_scale;
    u->bc1 = (float)(1.0 - pow((double)o->beta1, (double)(step + 1)));
    u->bc2 = (float)(1.0 - pow((double)o->beta2, (double)(step + 1)));
}
