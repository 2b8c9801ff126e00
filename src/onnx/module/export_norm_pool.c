/* Layer normalisation (ONNX LayerNormalization, opset 17) and pooling over
 * time, which leaves padding steps out as libllm does: the mean of the real
 * steps, the maximum over them, 0 for a row of padding alone. */
#include <float.h>
#include "exporter.h"

llm_status ex_layernorm(ex_ctx *x, const ex_layer *l, ex_val *v) {
    float eps;
    const char *gamma, *beta;
    EX_CHECK(ex_expect(x, l, v, 0, -1, "float"));
    EX_CHECK(ex_float(x, l, "eps", 0.0f, 1.0f, &eps));
    int64_t F = v->dim[v->rank - 1];
    EX_CHECK(ex_param(x, l, l->name, "gamma", 1, F, 0, &gamma));
    EX_CHECK(ex_param(x, l, l->name, "beta", 1, F, 0, &beta));
    v->name = ex_layer_norm(x, v->name, gamma, beta, eps);
    return ex_built(x, l);
}

llm_status ex_global_pool(ex_ctx *x, const ex_layer *l, ex_val *v) {
    static const char *const modes[] = { "average", "max" };
    ox *g = x->g;
    int mode;
    EX_CHECK(ex_expect(x, l, v, 0, 2, "a sequence [T, features]"));
    EX_CHECK(ex_choice(x, l, "mode", modes, 2, &mode));
    const char *in = v->name, *out;
    if (!v->mask) {
        out = ex_reduce(x, mode ? "ReduceMax" : "ReduceMean", in, 1, 0);
    } else if (mode == 0) {
        const char *mf = ex_steps_mf(x, v->mask);
        const char *sum = ex_reduce(x, "ReduceSum", OX2(g, "Mul", in, OX2(g, "Unsqueeze", mf, OX_I64S(g, 2))), 1, 0);
        const char *n = OX2(g, "Max", ex_reduce(x, "ReduceSum", mf, 1, 1), ox_f32(g, 1.0f));
        out = OX2(g, "Div", sum, n); /* an empty row: 0 / 1 */
    } else {
        const char *real = OX2(g, "Unsqueeze", v->mask, OX_I64S(g, 2));
        const char *masked = OX3(g, "Where", real, in, ox_f32(g, -FLT_MAX));
        /* an empty row's -FLT_MAX times 0 */
        out = OX2(g, "Mul", ex_reduce(x, "ReduceMax", masked, 1, 0), ex_steps_nonempty(x, v->mask));
    }
    v->name = out;
    v->rank = 1;
    v->dim[0] = v->dim[1];
    v->mask = NULL;
    return ex_built(x, l);
}
