/* Linear layers: Dense (y = x W^T + b, then its activation) and the
 * language-model head (logits = x W^T, W its own or the token table of the
 * transformer_embedding before it), as ONNX Gemm. */
#include <string.h>
#include "exporter.h"

/* A sigmoid or softmax at the end makes the output probabilities. */
static void note_activation(ex_ctx *x, int act) {
    x->out_kind = act == EX_ACT_SIGMOID || act == EX_ACT_SOFTMAX ? EX_OUT_PROBABILITIES : EX_OUT_VALUES;
}

llm_status ex_dense(ex_ctx *x, const ex_layer *l, ex_val *v) {
    int64_t U;
    int act, use_bias;
    const char *W, *b = NULL;
    EX_CHECK(ex_expect(x, l, v, 0, -1, "float"));
    EX_CHECK(ex_int(x, l, "units", 1, INT32_MAX, &U));
    EX_CHECK(ex_choice(x, l, "activation", ex_act_names, 6, &act));
    EX_CHECK(ex_bool(x, l, "use_bias", &use_bias));
    int64_t in = v->dim[v->rank - 1];
    EX_CHECK(ex_param(x, l, l->name, "weight", 2, U, in, &W));
    if (use_bias) EX_CHECK(ex_param(x, l, l->name, "bias", 1, U, 0, &b));
    v->name = ex_activation(x, ex_linear(x, v, W, b, U), act);
    v->dim[v->rank - 1] = U;
    if (v->rank == 1) v->mask = NULL;
    note_activation(x, act);
    return ex_built(x, l);
}

llm_status ex_activation_layer(ex_ctx *x, const ex_layer *l, ex_val *v) {
    int act;
    EX_CHECK(ex_expect(x, l, v, 0, -1, "float"));
    EX_CHECK(ex_choice(x, l, "activation", ex_act_names, 6, &act));
    v->name = ex_activation(x, v->name, act);
    note_activation(x, act);
    return ex_built(x, l);
}

/* Inference: dropout passes its input through. */
llm_status ex_dropout(ex_ctx *x, const ex_layer *l, ex_val *v) {
    EX_CHECK(ex_expect(x, l, v, 0, -1, "float"));
    v->name = OX1(x->g, "Identity", v->name);
    return ex_built(x, l);
}

llm_status ex_lm_head(ex_ctx *x, const ex_layer *l, ex_val *v) {
    int64_t V;
    int tie;
    const char *W;
    EX_CHECK(ex_expect(x, l, v, 0, -1, "float"));
    EX_CHECK(ex_int(x, l, "vocab", 2, INT32_MAX, &V));
    EX_CHECK(ex_bool(x, l, "tie", &tie));
    int64_t D = v->dim[v->rank - 1];
    if (tie) { /* libllm ties it to the nearest transformer_embedding before it */
        const ex_layer *e = NULL;
        for (int i = x->at - 1; i >= 0 && !e; i--)
            if (strcmp(x->layers[i].kind, "transformer_embedding") == 0) e = &x->layers[i];
        if (!e) return ex_fail(x, l, LLM_ERR_FORMAT, "it is tied, but no transformer_embedding comes before it");
        EX_CHECK(ex_param(x, l, e->name, "token", 2, V, D, &W));
    } else {
        EX_CHECK(ex_param(x, l, l->name, "weight", 2, V, D, &W));
    }
    v->name = ex_linear(x, v, W, NULL, V);
    v->dim[v->rank - 1] = V;
    x->out_kind = EX_OUT_LOGITS;
    return ex_built(x, l);
}
