/* LSTM and GRU over whole sequences, one node each.
 *
 * Forward: the input projection for all steps in one GEMM, then per step one
 * recurrent GEMM and one fused gate kernel. Backward runs the steps in
 * reverse with the same pattern and accumulates the weight gradients in one
 * GEMM each at the end. A backend may instead run an LSTM's whole recurrence
 * in one call (the optional sequence slots: the CUDA backend's persistent
 * kernel, where per-step launches would cost more than the work), or its
 * whole forward, projection included (lstm_layer_forward: the CPU's fused
 * kernels, which in inference keep only the outputs). Layout is batch-major [B, T, X]; step t of X is the
 * strided matrix X + t*width with row stride T*width. */
#include <cjson/cJSON.h>
#include "recurrent.h"

#define ST(l) LLM__STATE(llm__recurrent_state, l)

void llm_recurrent_options_init(llm_recurrent_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->units = 1;
    o->return_mode = LLM_RETURN_LAST;
    o->unit_forget_bias = 1;
}

static int is_lstm(const llm_layer *l) { return l->vt == &llm__lstm_kind; }

llm_status llm__recurrent_build(llm_layer *l, const llm__shape *in, llm__shape *out) {
    if (in->dtype != LLM_DTYPE_F32)
        return llm__error(LLM_ERR_DTYPE, "%s: input must be float [T, features]; token ids need an embedding first", l->name);
    if (in->ndim != 2)
        return llm__error(LLM_ERR_SHAPE, "%s: input must be a sequence [T, features], got %d dimensions per sample",
                          l->name, in->ndim);
    llm__recurrent_state *st = ST(l);
    int64_t H = st->opt.units, E = in->d[1], G = is_lstm(l) ? 4 : 3;
    st->p.bias_hh = NULL;
    LLM__CHECK(llm__layer_param(l, "weight_ih", 2, G * H, E, LLM__INIT_GLOROT, 0, &st->p.weight_ih));
    LLM__CHECK(llm__layer_param(l, "weight_hh", 2, G * H, H, LLM__INIT_ORTHOGONAL, 0, &st->p.weight_hh));
    if (is_lstm(l)) {
        LLM__CHECK(llm__layer_param(l, "bias", 1, G * H, 1, st->opt.unit_forget_bias ? LLM__INIT_LSTM_BIAS : LLM__INIT_ZEROS,
                                    0, &st->p.bias_ih));
        st->p.bias_ih->torch_bias_pair = 1;
    } else {
        LLM__CHECK(llm__layer_param(l, "bias_ih", 1, G * H, 1, LLM__INIT_ZEROS, 0, &st->p.bias_ih));
        LLM__CHECK(llm__layer_param(l, "bias_hh", 1, G * H, 1, LLM__INIT_ZEROS, 0, &st->p.bias_hh));
    }
    out->dtype = LLM_DTYPE_F32;
    if (st->opt.return_mode == LLM_RETURN_SEQUENCES) {
        out->ndim = 2;
        out->d[0] = in->d[0];
        out->d[1] = H;
    } else {
        out->ndim = 1;
        out->d[0] = H;
    }
    return LLM_OK;
}

/* Saved workspace, by index into node->saved. */
enum { S_GATES = 0, S_CS, S_HS, S_HPREV };

static llm_status recurrent_backward(llm__graph *g, llm__node *n) {
    const llm_layer *l = n->layer;
    llm_backend *be = g->be;
    const llm__backend_ops *op = be->ops;
    llm__val *x = n->in[0], *y = n->out[0];
    const llm__recurrent_state *st = ST(l);
    const int lstm = is_lstm(l), back = st->opt.go_backwards != 0;
    const int seq = st->opt.return_mode == LLM_RETURN_SEQUENCES;
    const int64_t B = x->shape[0], T = x->shape[1], E = x->shape[2], H = st->opt.units;
    const int64_t G = lstm ? 4 : 3, GW = 4 * H; /* saved gates: i,f,g,o or r,z,n,W_hn h */
    const float *gates = n->saved[S_GATES], *cs = n->saved[S_CS], *hs = n->saved[S_HS],
                *hprev = n->saved[S_HPREV];
    const float *mask = x->mask;
    const llm__param *Wih = st->p.weight_ih, *Whh = st->p.weight_hh;
    size_t bh = (size_t)(B * H) * 4;

    float *dh_next, *dc = NULL, *dx1, *dx2 = NULL;
    LLM__CHECK(llm__graph_alloc(g, bh, (void **)&dh_next));
    if (seq) LLM__CHECK(op->memset_zero(be, dh_next, bh));
    else LLM__CHECK(op->copy_d2d(be, dh_next, y->grad, bh));
    /* dx1: gradient w.r.t. the gate pre-activations (LSTM) or xw (GRU); dx2: gh (GRU) */
    LLM__CHECK(llm__graph_alloc(g, (size_t)(B * T * G * H) * 4, (void **)&dx1));
    if (lstm) LLM__CHECK(llm__graph_alloc_zero(g, bh, (void **)&dc));
    else LLM__CHECK(llm__graph_alloc(g, (size_t)(B * T * G * H) * 4, (void **)&dx2));

    int done = 0, dbias_added = 0;
    if (lstm && op->lstm_sequence_backward) {
        float *dbias_rows;
        LLM__CHECK(llm__graph_alloc(g, (size_t)(B * GW) * 4, (void **)&dbias_rows));
        llm__lstm_sequence q = {
            .B = (int)B, .T = (int)T, .H = (int)H, .reverse = back, .W_hh = Whh->data, .mask = mask,
            .gates = (float *)gates, .c = (float *)cs, /* read only, backward */
            .dy = seq ? y->grad : NULL, .dh = dh_next, .dc = dc, .dgates = dx1,
            .dbias = st->p.bias_ih->grad, .dbias_rows = dbias_rows, .dbias_added = &dbias_added,
        };
        LLM__CHECK(op->lstm_sequence_backward(be, &q, &done));
    }
    for (int64_t s = T - 1; !done && s >= 0; s--) {
        int64_t t = back ? T - 1 - s : s, tp = back ? t + 1 : t - 1;
        const float *dy = seq ? y->grad + t * H : NULL;
        if (lstm) {
            llm__lstm_step_grad a = {
                .B = (int)B, .H = (int)H,
                .gates = gates + t * GW, .ld_gates = T * GW,
                .c = cs + t * H, .ld_c = T * H,
                .c_prev = s ? cs + tp * H : NULL, .ld_cprev = T * H,
                .mask = mask ? mask + t : NULL, .ld_mask = T,
                .dy = dy, .ld_dy = T * H,
                .dh_next = dh_next, .dc = dc,
                .dgates = dx1 + t * G * H, .ld_dgates = T * G * H,
            };
            LLM__CHECK(op->lstm_step_backward(be, &a));
            if (s) LLM__CHECK(op->sgemm(be, 0, 0, (int)B, (int)H, (int)(G * H), 1.0f, dx1 + t * G * H,
                                        (int)(T * G * H), Whh->data, (int)H, 1.0f, dh_next, (int)H));
        } else {
            llm__gru_step_grad a = {
                .B = (int)B, .H = (int)H,
                .gates = gates + t * GW, .ld_gates = T * GW,
                .h_prev = s ? hs + tp * H : NULL, .ld_hprev = T * H,
                .mask = mask ? mask + t : NULL, .ld_mask = T,
                .dy = dy, .ld_dy = T * H,
                .dh_next = dh_next,
                .dxw = dx1 + t * G * H, .ld_dxw = T * G * H,
                .dgh = dx2 + t * G * H, .ld_dgh = T * G * H,
            };
            LLM__CHECK(op->gru_step_backward(be, &a));
            if (s) LLM__CHECK(op->sgemm(be, 0, 0, (int)B, (int)H, (int)(G * H), 1.0f, dx2 + t * G * H,
                                        (int)(T * G * H), Whh->data, (int)H, 1.0f, dh_next, (int)H));
        }
    }
    int BT = (int)(B * T), GH = (int)(G * H);
    const float *dgh = lstm ? dx1 : dx2;
    LLM__CHECK(op->sgemm(be, 1, 0, GH, (int)H, BT, 1.0f, dgh, GH, hprev, (int)H, 1.0f, Whh->grad, (int)H));
    LLM__CHECK(op->sgemm(be, 1, 0, GH, (int)E, BT, 1.0f, dx1, GH, x->data, (int)E, 1.0f, Wih->grad, (int)E));
    if (!dbias_added) LLM__CHECK(op->bias_backward(be, BT, GH, dx1, st->p.bias_ih->grad));
    if (!lstm) LLM__CHECK(op->bias_backward(be, BT, GH, dx2, st->p.bias_hh->grad));
    if (x->requires_grad) {
        float *dx;
        LLM__CHECK(llm__graph_grad(g, x, &dx));
        LLM__CHECK(op->sgemm(be, 0, 0, BT, (int)E, GH, 1.0f, dx1, GH, Wih->data, (int)E, 1.0f, dx, (int)E));
    }
    return LLM_OK;
}

/* An LSTM forward through the backend's whole-layer slot (*done = 0 when it
 * declines): q comes with its sizes and inputs; in inference only the
 * outputs are kept, in training also what recurrent_backward reads. */
static llm_status lstm_layer_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__lstm_layer *q, int seq,
                                     llm__val **out, int *done) {
    const int64_t B = q->B, T = q->T, E = q->E, H = q->H;
    const size_t bth = (size_t)(B * T * H) * 4;
    if (g->training) {
        LLM__CHECK(llm__graph_alloc(g, 4 * bth, (void **)&q->gates));
        LLM__CHECK(llm__graph_alloc(g, bth, (void **)&q->c));
        LLM__CHECK(llm__graph_alloc(g, bth, (void **)&q->hprev));
    }
    /* every state only when it is the output: the LSTM's backward reads
     * hprev, not h (3.3 MB a batch of the spam model not written) */
    if (seq) LLM__CHECK(llm__graph_alloc(g, bth, (void **)&q->h));
    LLM__CHECK(llm__graph_alloc(g, LLM__LSTM_LAYER_WORK(B, T, E, H) * 4, (void **)&q->work));
    llm__val *y;
    if (seq) {
        LLM__CHECK(llm__graph_val_view(g, q->h, NULL, LLM_DTYPE_F32, 3, (int64_t[]){B, T, H}, &y));
        y->mask = x->mask;
    } else {
        LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 2, (int64_t[]){B, H}, &y));
        q->h_last = y->data;
    }
    LLM__CHECK(g->be->ops->lstm_layer_forward(g->be, q, done));
    if (!*done) return LLM_OK;
    y->requires_grad = 1;
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, recurrent_backward, &n));
    if (n) {
        n->layer = l;
        n->in[0] = x;
        n->out[0] = y;
        n->saved[S_GATES] = q->gates;
        n->saved[S_CS] = q->c;
        n->saved[S_HS] = q->h;
        n->saved[S_HPREV] = q->hprev;
    }
    *out = y;
    return LLM_OK;
}

llm_status llm__recurrent_forward(llm_layer *l, llm__graph *g, llm__val *x, llm__val **out) {
    llm_backend *be = g->be;
    const llm__backend_ops *op = be->ops;
    const llm__recurrent_state *st = ST(l);
    const int lstm = is_lstm(l), back = st->opt.go_backwards != 0;
    const int seq = st->opt.return_mode == LLM_RETURN_SEQUENCES;
    const int64_t B = x->shape[0], T = x->shape[1], E = x->shape[2], H = st->opt.units;
    const int64_t G = lstm ? 4 : 3, GW = 4 * H;
    const llm__param *Wih = st->p.weight_ih, *Whh = st->p.weight_hh;
    const float *bias_ih = st->p.bias_ih->data; /* LSTM: the one bias; GRU: b_ih */
    if (lstm && op->lstm_layer_forward) {
        llm__lstm_layer q = {
            .B = (int)B, .T = (int)T, .E = (int)E, .H = (int)H, .reverse = back, .x = x->data,
            .W_ih = Wih->data, .bias = bias_ih, .W_hh = Whh->data, .mask = x->mask,
        };
        int done = 0;
        LLM__CHECK(lstm_layer_forward(l, g, x, &q, seq, out, &done));
        if (done) return LLM_OK;
    }
    const float *mask = x->mask;
    int BT = (int)(B * T), GH = (int)(G * H);

    float *xw, *gh = NULL, *gates, *cs = NULL, *hs, *hprev;
    LLM__CHECK(llm__graph_alloc(g, (size_t)BT * GH * 4, (void **)&xw));
    if (!lstm) LLM__CHECK(llm__graph_alloc(g, (size_t)(B * G * H) * 4, (void **)&gh));
    LLM__CHECK(llm__graph_alloc(g, (size_t)BT * GW * 4, (void **)&gates));
    if (lstm) LLM__CHECK(llm__graph_alloc(g, (size_t)BT * H * 4, (void **)&cs));
    LLM__CHECK(llm__graph_alloc(g, (size_t)BT * H * 4, (void **)&hs));
    /* hprev[b, t] = the state entering step t (zero for the first step), so
     * the recurrent weight gradient is one GEMM over all steps. */
    LLM__CHECK(llm__graph_alloc_zero(g, (size_t)BT * H * 4, (void **)&hprev));

    /* xw = bias + x W_ih^T: the bias rows first and the GEMM adding into them
     * (beta 1), in place of OpenBLAS zeroing xw (beta 0) and a bias pass */
    LLM__CHECK(op->copy_rows(be, BT, GH, bias_ih, 0, xw, GH, 0));
    LLM__CHECK(op->sgemm(be, 0, 1, BT, GH, (int)E, 1.0f, x->data, (int)E, Wih->data, (int)E, 1.0f, xw, GH));

    int done = 0;
    if (lstm && op->lstm_sequence_forward) {
        float *scratch;
        LLM__CHECK(llm__graph_alloc(g, (size_t)(GW * H) * 4, (void **)&scratch));
        llm__lstm_sequence q = {
            .B = (int)B, .T = (int)T, .H = (int)H, .reverse = back, .W_hh = Whh->data, .mask = mask,
            .xw = xw, .gates = gates, .c = cs, .h = hs, .hprev = hprev, .scratch = scratch,
        };
        LLM__CHECK(op->lstm_sequence_forward(be, &q, &done));
    }
    for (int64_t s = 0; !done && s < T; s++) {
        int64_t t = back ? T - 1 - s : s, tp = back ? t + 1 : t - 1, tn = back ? t - 1 : t + 1;
        if (lstm) {
            /* the recurrent product added into this step's xw (used by no
             * other step): no separate gh to zero, write and read back */
            LLM__CHECK(op->sgemm(be, 0, 1, (int)B, GH, (int)H, 1.0f, hprev + t * H, (int)(T * H),
                                 Whh->data, (int)H, 1.0f, xw + t * GH, (int)(T * GH)));
            llm__lstm_step a = {
                .B = (int)B, .H = (int)H,
                .xw = xw + t * GH, .ld_xw = T * GH, .gh = NULL,
                .h_prev = s ? hs + tp * H : NULL, .ld_hprev = T * H,
                .c_prev = s ? cs + tp * H : NULL, .ld_cprev = T * H,
                .mask = mask ? mask + t : NULL, .ld_mask = T,
                .gates = gates + t * GW, .ld_gates = T * GW,
                .c = cs + t * H, .ld_c = T * H,
                .h = hs + t * H, .ld_h = T * H,
                .h2 = s < T - 1 ? hprev + tn * H : NULL, .ld_h2 = T * H,
            };
            LLM__CHECK(op->lstm_step_forward(be, &a));
        } else {
            LLM__CHECK(op->sgemm(be, 0, 1, (int)B, GH, (int)H, 1.0f, hprev + t * H, (int)(T * H),
                                 Whh->data, (int)H, 0.0f, gh, GH));
            LLM__CHECK(op->bias_act_forward(be, LLM_ACT_NONE, B, GH, gh, st->p.bias_hh->data, gh));
            llm__gru_step a = {
                .B = (int)B, .H = (int)H,
                .xw = xw + t * GH, .ld_xw = T * GH, .gh = gh,
                .h_prev = s ? hs + tp * H : NULL, .ld_hprev = T * H,
                .mask = mask ? mask + t : NULL, .ld_mask = T,
                .gates = gates + t * GW, .ld_gates = T * GW,
                .h = hs + t * H, .ld_h = T * H,
                .h2 = s < T - 1 ? hprev + tn * H : NULL, .ld_h2 = T * H,
            };
            LLM__CHECK(op->gru_step_forward(be, &a));
        }
    }

    llm__val *y;
    if (seq) {
        LLM__CHECK(llm__graph_val_view(g, hs, NULL, LLM_DTYPE_F32, 3, (int64_t[]){B, T, H}, &y));
        y->mask = mask;
    } else {
        LLM__CHECK(llm__graph_val(g, LLM_DTYPE_F32, 2, (int64_t[]){B, H}, &y));
        int64_t t_last = back ? 0 : T - 1;
        LLM__CHECK(op->copy_rows(be, B, H, hs + t_last * H, T * H, y->data, H, 0));
    }
    y->requires_grad = 1;
    llm__node *n;
    LLM__CHECK(llm__graph_node(g, recurrent_backward, &n));
    if (n) {
        n->layer = l;
        n->in[0] = x;
        n->out[0] = y;
        n->saved[S_GATES] = gates;
        n->saved[S_CS] = cs;
        n->saved[S_HS] = hs;
        n->saved[S_HPREV] = hprev;
    }
    *out = y;
    return LLM_OK;
}

llm_status llm__recurrent_to_json(const llm_layer *l, cJSON *o) {
    const llm_recurrent_options *opt = &ST(l)->opt;
    LLM__CHECK(llm__json_add_int(o, "units", opt->units));
    LLM__CHECK(llm__json_add_bool(o, "return_sequences", opt->return_mode == LLM_RETURN_SEQUENCES));
    LLM__CHECK(llm__json_add_bool(o, "unit_forget_bias", opt->unit_forget_bias));
    return llm__json_add_bool(o, "go_backwards", opt->go_backwards);
}

int llm__recurrent_from_json(const cJSON *o, llm_recurrent_options *r) {
    int seq;
    llm_recurrent_options_init(r);
    if (!llm__json_int(o, "units", LLM__JSON_I64, &r->units) || !llm__json_bool(o, "return_sequences", &seq) ||
        !llm__json_bool(o, "unit_forget_bias", &r->unit_forget_bias) || !llm__json_bool(o, "go_backwards", &r->go_backwards))
        return 0;
    r->return_mode = seq ? LLM_RETURN_SEQUENCES : LLM_RETURN_LAST;
    return 1;
}

llm_layer *llm__recurrent_new(const llm__layer_vt *vt, const llm_recurrent_options *opts, const char *fn) {
    llm_recurrent_options o;
    llm_recurrent_options_init(&o);
    if (!opts) return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: opts is NULL", fn);
    if (LLM__OPTIONS_MERGE(&o, opts, fn) != LLM_OK)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s", llm_last_error());
    if (o.units < 1 || o.units > (1 << 20))
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: units = %lld must be in [1, 2^20]", fn, (long long)o.units);
    if (o.return_mode != LLM_RETURN_LAST && o.return_mode != LLM_RETURN_SEQUENCES)
        return llm__layer_error(LLM_ERR_INVALID_ARGUMENT, "%s: unknown return mode %d", fn, (int)o.return_mode);
    llm_layer *l = llm__layer_new(vt);
    if (l->status != LLM_OK) return l;
    o.unit_forget_bias = o.unit_forget_bias != 0;
    o.go_backwards = o.go_backwards != 0;
    ST(l)->opt = o;
    return l;
}
