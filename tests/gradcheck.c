/* The finite-difference gradient check the suites share (tu_gradcheck in
 * testutil.h): small models get random weights (uniform +-0.5) through
 * llm_model_set_param, llm_model_compute_gradients gives the analytic
 * gradients, and each parameter element is then moved by +-eps to take the
 * central difference of the loss that compute_gradients reports. */
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

/* |analytic - numeric| <= ATOL + RTOL |numeric|. The loss is float32 and a
 * forward pass rounds at ~1e-7 relative, so with EPS = 1e-2 the central
 * difference is good to ~1e-5; kinks (ReLU, max pooling) crossed by the
 * step get one retry with a step four times smaller. */
#define GC_EPS 1e-2
#define GC_ATOL 2e-4
#define GC_RTOL 1e-2

static uint64_t hash_label(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

static void compile(llm_model *m, llm_loss loss) {
    llm_optimizer *opt = NULL;
    ck_assert_ok(llm_optimizer_sgd(&opt, 0.01f, 0.0f, 0));
    ck_assert_ok(llm_model_compile(m, loss, opt, LLM_METRIC_NONE));
    llm_optimizer_free(opt);
}

/* ---- the check ---- */

typedef struct gc_param {
    const char *name;
    int64_t n;
    float *value, *grad;
} gc_param;

static float loss_at(llm_model *m, const llm_tensor *x, const llm_tensor *y) {
    float loss = NAN;
    ck_assert_ok(llm_model_compute_gradients(m, x, y, &loss));
    return loss;
}

static double central_difference(llm_model *m, const llm_tensor *x, const llm_tensor *y,
                                 gc_param *p, int64_t j, double eps) {
    float orig = p->value[j];
    size_t bytes = (size_t)p->n * sizeof(float);
    float up = (float)(orig + eps), down = (float)(orig - eps);
    p->value[j] = up;
    ck_assert_ok(llm_model_set_param(m, p->name, p->value, bytes));
    double lp = loss_at(m, x, y);
    p->value[j] = down;
    ck_assert_ok(llm_model_set_param(m, p->name, p->value, bytes));
    double lm = loss_at(m, x, y);
    p->value[j] = orig;
    ck_assert_ok(llm_model_set_param(m, p->name, p->value, bytes));
    return (lp - lm) / ((double)up - (double)down);
}

static int grad_ok(double analytic, double numeric) {
    return fabs(analytic - numeric) <= GC_ATOL + GC_RTOL * fabs(numeric);
}

/* Compiles m (built) with `loss`, gives every parameter random values and
 * compares the analytic gradient of every `stride`-th element (all for 1)
 * with a central difference. */
void tu_gradcheck(llm_model *m, llm_loss loss, const llm_tensor *x, const llm_tensor *y, const char *label,
                  int64_t stride) {
    compile(m, loss);
    uint64_t seed = hash_label(label);
    int np = 0;
    ck_assert_ok(llm_model_num_params(m, &np));
    ck_assert_msg(np > 0, "%s: model has no parameters", label);
    gc_param *ps = calloc((size_t)np, sizeof *ps);
    ck_assert_ptr_nonnull(ps);
    for (int i = 0; i < np; i++) {
        int nd = 0;
        int64_t shape[LLM_MAX_DIMS] = {0};
        ck_assert_ok(llm_model_param_info(m, i, &ps[i].name, &nd, shape));
        ck_assert_msg(ps[i].name && ps[i].name[0], "%s: parameter %d has no name", label, i);
        ps[i].n = numel_of(nd, shape);
        ps[i].value = malloc((size_t)ps[i].n * sizeof(float));
        ps[i].grad = malloc((size_t)ps[i].n * sizeof(float));
        ck_assert(ps[i].value && ps[i].grad);
        tu_fill(ps[i].value, ps[i].n, seed + 7919u * (uint64_t)i, -0.5f, 0.5f);
        ck_assert_ok(llm_model_set_param(m, ps[i].name, ps[i].value,
                                         (size_t)ps[i].n * sizeof(float)));
    }
    float loss0 = loss_at(m, x, y);
    ck_assert_msg(isfinite(loss0), "%s: loss %g", label, (double)loss0);
    for (int i = 0; i < np; i++)
        ck_assert_ok(llm_model_get_grad(m, ps[i].name, ps[i].grad,
                                        (size_t)ps[i].n * sizeof(float)));

    double max_numeric = 0.0, worst = 0.0;
    int64_t checked = 0, retried = 0;
    for (int i = 0; i < np; i++) {
        gc_param *p = &ps[i];
        for (int64_t j = (int64_t)(seed % (uint64_t)stride) % p->n; j < p->n; j += stride) {
            double a = p->grad[j];
            double num = central_difference(m, x, y, p, j, GC_EPS);
            if (!grad_ok(a, num)) {
                num = central_difference(m, x, y, p, j, GC_EPS / 4);
                retried++;
            }
            ck_assert_msg(grad_ok(a, num),
                          "%s: d loss / d %s[%lld]: analytic %.7g, finite difference %.7g "
                          "(loss %.7g)", label, p->name, (long long)j, a, num, (double)loss0);
            double r = fabs(a - num) / (GC_ATOL + GC_RTOL * fabs(num));
            if (r > worst) worst = r;
            if (fabs(num) > max_numeric) max_numeric = fabs(num);
            checked++;
        }
    }
    /* GRADCHECK_VERBOSE=1 shows how close each model came to the tolerance */
    if (getenv("GRADCHECK_VERBOSE"))
        fprintf(stderr, "gradcheck %-90s %5lld elements, worst %.3f of tolerance, %lld retried, "
                "max |grad| %.3g\n", label, (long long)checked, worst, (long long)retried,
                max_numeric);
    ck_assert_msg(max_numeric > 1e-3, "%s: every gradient is ~0 (max %g): the check is vacuous",
                  label, max_numeric);

    /* the same weights give the same loss and gradients again */
    float loss1 = loss_at(m, x, y);
    ck_assert_msg(loss1 == loss0, "%s: loss changed between identical calls: %.9g vs %.9g", label,
                  (double)loss0, (double)loss1);
    for (int i = 0; i < np; i++) {
        float *g = malloc((size_t)ps[i].n * sizeof(float));
        ck_assert_ptr_nonnull(g);
        ck_assert_ok(llm_model_get_grad(m, ps[i].name, g, (size_t)ps[i].n * sizeof(float)));
        ck_assert_msg(memcmp(g, ps[i].grad, (size_t)ps[i].n * sizeof(float)) == 0,
                      "%s: gradient of %s not repeatable (accumulates across calls?)", label,
                      ps[i].name);
        free(g);
        free(ps[i].value);
        free(ps[i].grad);
    }
    free(ps);
}
