/* GRU: [T, F] -> [H] or [T, H], gates r, z, n with the reset gate applied
 * after the recurrent product (PyTorch, Keras reset_after); the sequence
 * computation is src/nn/layers/recurrent.c's. */
#include <cjson/cJSON.h>
#include "recurrent.h"

static llm_layer *gru_from_json(const cJSON *o, int depth) {
    llm_recurrent_options r;
    if (!llm__recurrent_from_json(o, &r)) return llm__json_bad("gru");
    return llm_layer_gru_ex(&r);
}

const llm__layer_vt llm__gru_kind = {
    .kind = "gru", .state_size = sizeof(llm__recurrent_state), .build = llm__recurrent_build,
    .forward = llm__recurrent_forward, .to_json = llm__recurrent_to_json, .from_json = gru_from_json,
};

llm_layer *llm_layer_gru_ex(const llm_recurrent_options *o) { return llm__recurrent_new(&llm__gru_kind, o, "llm_layer_gru"); }

llm_layer *llm_layer_gru(int64_t units, llm_return_mode mode) {
    llm_recurrent_options o;
    llm_recurrent_options_init(&o);
    o.units = units;
    o.return_mode = mode;
    return llm_layer_gru_ex(&o);
}
