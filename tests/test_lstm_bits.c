/* The LSTM's results do not depend on how rows are batched or on the
 * thread count: a row predicted alone gives the bits it gets inside a batch
 * of 32 (the CPU's fused layer forward sums every gate in one fixed order,
 * whatever path the batch size picks), 1 thread gives 2 threads' bits, and
 * training repeats bit for bit for a seed and thread count; for the kernels
 * of each instruction set, which agree with each other to rounding. */
#include <stdlib.h>
#include "testutil.h"
#include "cpu/cpu.h"

/* H = 24 and 48: three panels of 8 (AVX2) or 16 (AVX-512) units, the
 * one-row path's odd panel; 128 (bidirectional too): a row alone on 2
 * threads splits each step into tiles of 4 panels, 2 or 4 of them; HT = 64
 * for training: the CPU's own backward takes multiples of 32 (AVX2) or 64
 * (AVX-512) */
enum { V = 40, E = 12, H = 48, HMAX = 2 * 128, HT = 64, T = 13, B = 32 };

/* ids in [1, V), some rows ending in padding (id 0), others starting with
 * it (pre-padding: the fused forward skips what a row alone or a whole
 * group has of it), row 7 padding alone */
static void make_ids(int32_t *ids) {
    uint64_t s = 99;
    for (int i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = 1 + (int32_t)((s >> 33) % (V - 1));
    }
    for (int b = 0; b < B; b += 3)
        for (int t = T - 1 - b % 5; t < T; t++) ids[b * T + t] = 0;
    for (int b = 1; b < B; b += 3)
        for (int t = 0; t < 1 + b % 7; t++) ids[b * T + t] = 0;
    for (int t = 0; t < T; t++) ids[7 * T + t] = 0;
}

static llm_model *lstm_model_dir(llm_backend *be, int units, llm_return_mode mode, int dense, int both_ways) {
    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 21));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(V, E)));
    llm_layer *l = llm_layer_lstm(units, mode);
    ck_assert_ok(llm_model_add(m, both_ways ? llm_layer_bidirectional(l) : l));
    if (dense) ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    return m;
}

static llm_model *lstm_model(llm_backend *be, int units, llm_return_mode mode, int dense) {
    return lstm_model_dir(be, units, mode, dense, 0);
}

static llm_backend *cpu(int threads) {
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    return be;
}

/* the LSTM's hidden states [rows, T, units] of ids rows [first, first + rows) */
static void predict_rows(llm_model *m, llm_backend *be, int units, const int32_t *ids, int first, int rows,
                         float *out) {
    llm_tensor *x, *y;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){rows, T}, ids + first * T,
                                      (size_t)rows * T * sizeof *ids));
    ck_assert_ok(llm_model_predict(m, x, &y));
    ck_assert_ok(llm_tensor_to_host(y, out, (size_t)rows * T * units * sizeof *out));
    llm_tensor_free(x);
    llm_tensor_free(y);
}

/* units: the output's width (twice the LSTM's units both ways) */
static void prediction_case(int units, int both_ways) {
    int32_t ids[B * T];
    make_ids(ids);
    static float batch[2][B * T * HMAX], part[B * T * HMAX];
    for (int threads = 1; threads <= 2; threads++) {
        llm_backend *be = cpu(threads);
        llm_model *m = lstm_model_dir(be, both_ways ? units / 2 : units, LLM_RETURN_SEQUENCES, 0, both_ways);
        float *all = batch[threads - 1];
        predict_rows(m, be, units, ids, 0, B, all);
        /* alone (the one-row path; rows 4 and 13 start with padding, row 7 is
         * padding alone), and in batches of 2, 3, 5 and 17 rows (few-row
         * groups, a thread's share, a group of 16 plus one) */
        static const int parts[][2] = { { 0, 1 }, { 9, 1 }, { 31, 1 }, { 4, 1 }, { 7, 1 }, { 13, 1 }, { 4, 2 },
                                        { 20, 3 }, { 10, 5 }, { 15, 17 } };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            int first = parts[i][0], rows = parts[i][1];
            predict_rows(m, be, units, ids, first, rows, part);
            ck_assert_msg(memcmp(part, all + (size_t)first * T * units, (size_t)rows * T * units * sizeof *part) == 0,
                          "units %d, %d threads: rows %d..%d alone differ from the same rows in a batch of %d", units,
                          threads, first, first + rows - 1, B);
        }
        llm_model_free(m);
        llm_backend_free(be);
    }
    ck_assert_msg(memcmp(batch[0], batch[1], (size_t)B * T * units * sizeof *part) == 0,
                  "units %d: 1 and 2 threads predict different bits", units);
    /* and the states are not all zero (the comparison compared something) */
    double sum = 0;
    for (int i = 0; i < B * T * units; i++) sum += fabs(batch[0][i]);
    ck_assert(sum > 1.0);
}

/* Each test runs once per instruction set the CPU kernels may pick (_i 0:
 * AVX-512 where the CPU has it, 1: AVX2 with FMA, 2: the baseline), so a
 * machine that would pick one of them checks the others' kernels too */
static void limit_isa(int i) {
    llm__cpu_isa_limit = 2 - i;
}

START_TEST(lstm_prediction_independent_of_batch_and_threads) {
    limit_isa(_i);
    prediction_case(24, 0);
    prediction_case(H, 0);
    prediction_case(128, 0);
    prediction_case(256, 1);
    llm__cpu_isa_limit = 2;
}
END_TEST

/* The kernels of the three instruction sets compute the same function: the
 * narrower ones' hidden states agree with the widest's to float rounding */
START_TEST(lstm_instruction_sets_agree) {
    int32_t ids[B * T];
    make_ids(ids);
    static float widest[B * T * 128], other[B * T * 128];
    for (int limit = 2; limit >= 0; limit--) {
        llm__cpu_isa_limit = limit;
        llm_backend *be = cpu(2);
        llm_model *m = lstm_model(be, 128, LLM_RETURN_SEQUENCES, 0);
        predict_rows(m, be, 128, ids, 0, B, limit == 2 ? widest : other);
        llm_model_free(m);
        llm_backend_free(be);
        for (int i = 0; limit < 2 && i < B * T * 128; i++)
            ck_assert_msg(fabsf(other[i] - widest[i]) <= 1e-5f, "instruction-set limit %d: h[%d] %.9g, widest %.9g",
                          limit, i, other[i], widest[i]);
    }
    llm__cpu_isa_limit = 2;
}
END_TEST

/* The seed model's predictions for the batch (pred, may be NULL), then its
 * weight_hh after a few training steps; pad_front: every row starts with
 * that many padding ids (the groups then skip those steps) */
static void train_steps(int threads, int pad_front, float *pred, float *w) {
    int32_t ids[B * T];
    make_ids(ids);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < pad_front; t++) ids[b * T + t] = 0;
    float y[B];
    for (int b = 0; b < B; b++) y[b] = (float)(b % 2);
    llm_backend *be = cpu(threads);
    llm_model *m = lstm_model(be, HT, LLM_RETURN_LAST, 1);
    llm_optimizer *opt;
    ck_assert_ok(llm_optimizer_adam(&opt, 1e-2f));
    ck_assert_ok(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, opt, LLM_METRIC_NONE));
    llm_tensor *x, *t;
    ck_assert_ok(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){B, T}, ids, sizeof ids));
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){B}, y, sizeof y));
    if (pred) {
        llm_tensor *p;
        ck_assert_ok(llm_model_predict(m, x, &p));
        ck_assert_ok(llm_tensor_to_host(p, pred, B * sizeof *pred));
        llm_tensor_free(p);
    }
    for (int i = 0; i < 4; i++) ck_assert_ok(llm_model_train_on_batch(m, x, t, NULL, NULL));
    ck_assert_ok(llm_model_get_param(m, "lstm_0.weight_hh", w, (size_t)4 * HT * HT * sizeof *w));
    llm_tensor_free(x);
    llm_tensor_free(t);
    llm_optimizer_free(opt);
    llm_model_free(m);
    llm_backend_free(be);
}

/* Skipping the leading padding steps changes no bit: a batch whose rows all
 * start with 3 padding ids, predicted and trained with the skip on and off
 * (the backward reads the skipped steps' cells and entering states) */
START_TEST(lstm_skipping_leading_padding_changes_no_bit) {
    static float w_on[4 * HT * HT], w_off[4 * HT * HT];
    float p_on[B], p_off[B];
    limit_isa(_i);
    for (int threads = 1; threads <= 2; threads++) {
        train_steps(threads, 3, p_on, w_on);
        llm__cpu_lstm_skip_leading_padding = 0;
        train_steps(threads, 3, p_off, w_off);
        llm__cpu_lstm_skip_leading_padding = 1;
        ck_assert_msg(memcmp(p_on, p_off, sizeof p_on) == 0, "%d threads: predictions differ with the skip", threads);
        ck_assert_msg(memcmp(w_on, w_off, sizeof w_on) == 0, "%d threads: trained weights differ with the skip", threads);
    }
    llm__cpu_isa_limit = 2;
}
END_TEST

START_TEST(lstm_training_repeats_bit_for_bit) {
    static float a[4 * HT * HT], b[4 * HT * HT], init[4 * HT * HT];
    limit_isa(_i);
    for (int threads = 1; threads <= 2; threads++) {
        train_steps(threads, 0, NULL, a);
        train_steps(threads, 0, NULL, b);
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "%d threads: two runs trained different weights", threads);
    }
    /* the steps changed the weights (so the runs did train) */
    llm_backend *be = cpu(1);
    llm_model *m = lstm_model(be, HT, LLM_RETURN_LAST, 1);
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, (int64_t[]){T}));
    ck_assert_ok(llm_model_get_param(m, "lstm_0.weight_hh", init, sizeof init));
    ck_assert(memcmp(a, init, sizeof a) != 0);
    llm_model_free(m);
    llm_backend_free(be);
    llm__cpu_isa_limit = 2;
}
END_TEST

Suite *suite_lstm_bits(void) {
    Suite *s = suite_create("lstm_bits");
    TCase *c = tcase_create("core");
    tcase_set_timeout(c, 60);
    tcase_add_loop_test(c, lstm_prediction_independent_of_batch_and_threads, 0, 3);
    tcase_add_loop_test(c, lstm_training_repeats_bit_for_bit, 0, 3);
    tcase_add_loop_test(c, lstm_skipping_leading_padding_changes_no_bit, 0, 3);
    tcase_add_test(c, lstm_instruction_sets_agree);
    suite_add_tcase(s, c);
    return s;
}
