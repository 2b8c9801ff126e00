/* libllm private: what the LSTM, GRU and bidirectional kinds share
 * (src/nn/layers/recurrent.c holds the sequence computation). */
#ifndef LLM_PRIVATE_LAYERS_RECURRENT_H
#define LLM_PRIVATE_LAYERS_RECURRENT_H

#include "kinds.h"

typedef struct llm__recurrent_state {
    llm_recurrent_options opt;
    /* LSTM: one bias (bias_ih, the sum of PyTorch's two, saved as a pair);
     * GRU: bias_ih and bias_hh (the reset gate applies to the latter) */
    struct { llm__param *weight_ih, *weight_hh, *bias_ih, *bias_hh; } p;
} llm__recurrent_state;

llm_status llm__recurrent_build(llm_layer *l, const llm__shape *in, llm__shape *out);
llm_status llm__recurrent_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **y);
llm_status llm__recurrent_to_json(const llm_layer *l, cJSON *o);
/* The settings of an "lstm" or "gru" entry; 0 when one is missing or mistyped. */
int llm__recurrent_from_json(const cJSON *o, llm_recurrent_options *r);
/* A validated layer of kind vt (llm__lstm_kind or llm__gru_kind). */
llm_layer *llm__recurrent_new(const llm__layer_vt *vt, const llm_recurrent_options *opts, const char *fn);

#endif
