/* LSTM: [T, F] -> [H] or [T, H], gates i, f, g, o (PyTorch, Keras); the
 * sequence computation is src/nn/layers/recurrent.c's. */
#include <cjson/cJSON.h>
#include "recurrent.h"

static llm_layer *lstm_from_json(const cJSON *o, int depth) {
    llm_recurrent_options r;
    if (!llm__recurrent_from_json(o, &r)) return llm__json_bad("lstm");
    return llm_layer_lstm_ex(&r);
}

const llm__layer_vt llm__lstm_kind = {
    .kind = "lstm", .state_size = sizeof(llm__recurrent_state), .build = llm__recurrent_build,
    .forward = llm__recurrent_forward, .to_json = llm__recurrent_to_json, .from_json = lstm_from_json,
};

llm_layer *llm_layer_lstm_ex(const llm_recurrent_options *o) { return llm__recurrent_new(&llm__lstm_kind, o, "llm_layer_lstm"); }

llm_layer *llm_layer_lstm(int64_t units, llm_return_mode mode) {
    llm_recurrent_options o;
    llm_recurrent_options_init(&o);
    o.units = units;
    o.return_mode = mode;
    return llm_layer_lstm_ex(&o);
}
