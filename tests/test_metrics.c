/* Classification metrics: hand-computed confusion matrices, AUC against a
 * brute-force pair count, undefined cases and every error path. */
#include <stdio.h>
#include "testutil.h"

#define EPS 1e-12

/* AUC as the share of (positive, negative) pairs ranked right, ties 1/2. */
static double brute_auc(const float *s, const int32_t *y, int64_t n) {
    double good = 0, pairs = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (y[i] == 1 && y[j] == 0) {
                pairs += 1;
                good += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
            }
    return good / pairs;
}

START_TEST(init_sets_not_computed) {
    llm_metrics m;
    memset(&m, 0x5a, sizeof m);
    llm_metrics_init(&m);
    ck_assert_uint_eq(m.size, sizeof m);
    ck_assert_int_eq(m.count, 0);
    ck_assert(isnan(m.loss) && isnan(m.accuracy) && isnan(m.precision) && isnan(m.recall));
    ck_assert(isnan(m.f1) && isnan(m.auc) && isnan(m.threshold));
    ck_assert(m.tp == 0 && m.fp == 0 && m.tn == 0 && m.fn == 0);
    llm_metrics_init(NULL); /* no crash */
}
END_TEST

START_TEST(binary_known_confusion_matrix) {
    /* predicted (>= 0.5): 1 1 0 1 0 1 0 1; truth: 1 1 1 0 0 0 0 1
     * tp = 3 (0, 1, 7), fn = 1 (2), fp = 2 (3, 5), tn = 2 (4, 6) */
    const float s[] = {0.9f, 0.8f, 0.3f, 0.6f, 0.2f, 0.7f, 0.1f, 0.55f};
    const int32_t y[] = {1, 1, 1, 0, 0, 0, 0, 1};
    llm_metrics m;
    llm_metrics_init(&m);
    m.loss = 0.25;
    ck_assert_ok(llm_metrics_binary(s, y, 8, 0.5, &m));
    ck_assert_int_eq(m.count, 8);
    ck_assert_int_eq(m.tp, 3);
    ck_assert_int_eq(m.fn, 1);
    ck_assert_int_eq(m.fp, 2);
    ck_assert_int_eq(m.tn, 2);
    ck_assert_double_eq_tol(m.accuracy, 5.0 / 8.0, EPS);
    ck_assert_double_eq_tol(m.precision, 3.0 / 5.0, EPS);
    ck_assert_double_eq_tol(m.recall, 3.0 / 4.0, EPS);
    ck_assert_double_eq_tol(m.f1, 2.0 / 3.0, EPS);
    ck_assert_double_eq_tol(m.threshold, 0.5, EPS);
    ck_assert_double_eq_tol(m.loss, 0.25, EPS); /* left as is */
    /* pairs: positives .9 .8 .3 .55 vs negatives .6 .2 .7 .1 -> 12 of 16 */
    ck_assert_double_eq_tol(m.auc, 12.0 / 16.0, EPS);
    ck_assert_double_eq_tol(m.auc, brute_auc(s, y, 8), EPS);
}
END_TEST

START_TEST(binary_threshold_is_inclusive) {
    const float s[] = {0.5f, 0.5f, 0.49f};
    const int32_t y[] = {1, 0, 0};
    llm_metrics m;
    llm_metrics_init(&m);
    ck_assert_ok(llm_metrics_binary(s, y, 3, 0.5, &m));
    ck_assert_int_eq(m.tp, 1);
    ck_assert_int_eq(m.fp, 1);
    ck_assert_int_eq(m.tn, 1);
    ck_assert_int_eq(m.fn, 0);
    /* threshold above everything: nothing predicted positive */
    ck_assert_ok(llm_metrics_binary(s, y, 3, 2.0, &m));
    ck_assert_int_eq(m.tp, 0);
    ck_assert_int_eq(m.fn, 1);
    ck_assert(isnan(m.precision));
    ck_assert_double_eq_tol(m.recall, 0.0, EPS);
    ck_assert_double_eq_tol(m.f1, 0.0, EPS);
}
END_TEST

START_TEST(binary_undefined_gives_nan) {
    /* a single class: recall and AUC are undefined, accuracy is not */
    const float s[] = {0.1f, 0.2f, 0.3f};
    const int32_t y[] = {0, 0, 0};
    llm_metrics m;
    llm_metrics_init(&m);
    ck_assert_ok(llm_metrics_binary(s, y, 3, 0.5, &m));
    ck_assert_double_eq_tol(m.accuracy, 1.0, EPS);
    ck_assert(isnan(m.precision));
    ck_assert(isnan(m.recall));
    ck_assert(isnan(m.f1));
    ck_assert(isnan(m.auc));
    const int32_t pos[] = {1, 1, 1};
    ck_assert_ok(llm_metrics_binary(s, pos, 3, 0.25, &m));
    ck_assert_double_eq_tol(m.precision, 1.0, EPS);
    ck_assert_double_eq_tol(m.recall, 1.0 / 3.0, EPS); /* only 0.3 >= 0.25 */
    ck_assert(isnan(m.auc));
}
END_TEST

START_TEST(auc_known_values) {
    const float s[] = {0.1f, 0.2f, 0.8f, 0.9f};
    const int32_t y[] = {0, 0, 1, 1};
    const int32_t yr[] = {1, 1, 0, 0};
    double auc;
    ck_assert_ok(llm_metrics_roc_auc(s, y, 4, &auc));
    ck_assert_double_eq_tol(auc, 1.0, EPS);
    ck_assert_ok(llm_metrics_roc_auc(s, yr, 4, &auc));
    ck_assert_double_eq_tol(auc, 0.0, EPS);
    const float same[] = {0.5f, 0.5f, 0.5f, 0.5f};
    ck_assert_ok(llm_metrics_roc_auc(same, y, 4, &auc));
    ck_assert_double_eq_tol(auc, 0.5, EPS);
}
END_TEST

START_TEST(auc_with_ties_matches_brute_force) {
    uint64_t st = 42;
    for (int trial = 0; trial < 20; trial++) {
        int64_t n = 5 + (int64_t)(tu_next(&st) % 200);
        float s[256];
        int32_t y[256];
        int pos = 0;
        for (int64_t i = 0; i < n; i++) {
            s[i] = (float)(tu_next(&st) % 7) / 7.0f; /* few distinct values: many ties */
            y[i] = (int32_t)(tu_next(&st) % 2);
            pos += y[i];
        }
        if (pos == 0) y[0] = 1;
        if (pos == n) y[0] = 0;
        double auc;
        ck_assert_ok(llm_metrics_roc_auc(s, y, n, &auc));
        ck_assert_double_eq_tol(auc, brute_auc(s, y, n), 1e-9);
        llm_metrics m;
        llm_metrics_init(&m);
        ck_assert_ok(llm_metrics_binary(s, y, n, 0.5, &m));
        ck_assert_double_eq_tol(m.auc, auc, 1e-12);
    }
}
END_TEST

START_TEST(accuracy_multiclass) {
    /* rows: argmax 2, 0 (tie 0/1: first wins), 1, 0 */
    const float s[] = {0.1f, 0.2f, 0.7f, 0.5f, 0.5f, 0.0f, 0.0f, 0.9f, 0.1f, 1.0f, -1.0f, 0.0f};
    const int32_t y[] = {2, 0, 2, 0};
    double acc;
    ck_assert_ok(llm_metrics_accuracy(s, 4, 3, y, &acc));
    ck_assert_double_eq_tol(acc, 0.75, EPS);
    const int32_t y1[] = {0};
    ck_assert_ok(llm_metrics_accuracy(s, 1, 1, y1, &acc)); /* one class: always right */
    ck_assert_double_eq_tol(acc, 1.0, EPS);
}
END_TEST

START_TEST(format_report) {
    const float s[] = {0.9f, 0.8f, 0.3f, 0.6f, 0.2f, 0.7f, 0.1f, 0.55f};
    const int32_t y[] = {1, 1, 1, 0, 0, 0, 0, 1};
    llm_metrics m;
    llm_metrics_init(&m);
    ck_assert_ok(llm_metrics_binary(s, y, 8, 0.5, &m));
    size_t needed = 0;
    ck_assert_ok(llm_metrics_format(&m, "ham", "spam", NULL, 0, &needed));
    ck_assert_uint_gt(needed, 50);
    char buf[1024];
    size_t again = 0;
    ck_assert_ok(llm_metrics_format(&m, "ham", "spam", buf, sizeof buf, &again));
    ck_assert_uint_eq(again, needed);
    ck_assert_uint_eq(strlen(buf), needed);
    ck_assert_ptr_nonnull(strstr(buf, "accuracy   0.6250"));
    ck_assert_ptr_nonnull(strstr(buf, "loss       n/a"));
    ck_assert_ptr_nonnull(strstr(buf, "spam"));
    ck_assert_ptr_nonnull(strstr(buf, "ham"));
    /* confusion rows: ham: tn 2 fp 2; spam: fn 1 tp 3 */
    const char *row = strstr(buf, "\nham ");
    ck_assert_ptr_nonnull(row);
    int a = -1, b = -1;
    ck_assert_int_eq(sscanf(row, "\nham %d %d", &a, &b), 2);
    ck_assert_int_eq(a, 2);
    ck_assert_int_eq(b, 2);
    row = strstr(buf, "\nspam ");
    ck_assert_ptr_nonnull(row);
    ck_assert_int_eq(sscanf(row, "\nspam %d %d", &a, &b), 2);
    ck_assert_int_eq(a, 1);
    ck_assert_int_eq(b, 3);
    /* truncation: snprintf-style, always terminated */
    char small[10];
    ck_assert_ok(llm_metrics_format(&m, "ham", "spam", small, sizeof small, &again));
    ck_assert_uint_eq(again, needed);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(strncmp(small, buf, sizeof small - 1), 0);
    ck_assert_ok(llm_metrics_format(&m, "ham", "spam", buf, sizeof buf, NULL));
}
END_TEST

START_TEST(errors_binary) {
    const float s[] = {0.1f, 0.9f};
    const int32_t y[] = {0, 1};
    llm_metrics m;
    llm_metrics_init(&m);
    ck_assert_fails(llm_metrics_binary(NULL, y, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_binary(s, NULL, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_binary(s, y, 2, 0.5, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_binary(s, y, 0, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_binary(s, y, -3, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_binary(s, y, 2, NAN, &m), LLM_ERR_INVALID_ARGUMENT);
    const int32_t bad[] = {0, 2};
    ck_assert_fails(llm_metrics_binary(s, bad, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "labels[1]"));
    const int32_t neg[] = {-1, 1};
    ck_assert_fails(llm_metrics_binary(s, neg, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    const float nan_s[] = {0.1f, NAN};
    ck_assert_fails(llm_metrics_binary(nan_s, y, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "scores[1]"));
    const float inf_s[] = {INFINITY, 0.1f};
    ck_assert_fails(llm_metrics_binary(inf_s, y, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    m.size = 0;
    ck_assert_fails(llm_metrics_binary(s, y, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    m.size = sizeof m - 1;
    ck_assert_fails(llm_metrics_binary(s, y, 2, 0.5, &m), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "size"));
}
END_TEST

START_TEST(errors_auc_accuracy_format) {
    const float s[] = {0.1f, 0.9f};
    const int32_t y[] = {0, 1};
    const int32_t one[] = {1, 1};
    double d;
    ck_assert_fails(llm_metrics_roc_auc(s, y, 2, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_roc_auc(NULL, y, 2, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_roc_auc(s, NULL, 2, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_roc_auc(s, y, 0, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_roc_auc(s, one, 2, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert(isnan(d));
    const int32_t bad[] = {0, 5};
    ck_assert_fails(llm_metrics_roc_auc(s, bad, 2, &d), LLM_ERR_INVALID_ARGUMENT);
    const float nan_s[] = {NAN, 0.9f};
    ck_assert_fails(llm_metrics_roc_auc(nan_s, y, 2, &d), LLM_ERR_INVALID_ARGUMENT);

    ck_assert_fails(llm_metrics_accuracy(s, 1, 2, y, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(NULL, 1, 2, y, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(s, 1, 2, NULL, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(s, 0, 2, y, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(s, 1, 0, y, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(s, 1, -2, y, &d), LLM_ERR_INVALID_ARGUMENT);
    const int32_t out_of_range[] = {2};
    ck_assert_fails(llm_metrics_accuracy(s, 1, 2, out_of_range, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(nan_s, 1, 2, y, &d), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_accuracy(s, INT64_MAX / 2, 4, y, &d), LLM_ERR_OVERFLOW);

    llm_metrics m;
    llm_metrics_init(&m);
    char buf[64];
    size_t need;
    ck_assert_fails(llm_metrics_format(NULL, "a", "b", buf, sizeof buf, &need),
                    LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_format(&m, NULL, "b", buf, sizeof buf, &need),
                    LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_format(&m, "a", NULL, buf, sizeof buf, &need),
                    LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_metrics_format(&m, "a", "b", NULL, 10, &need), LLM_ERR_INVALID_ARGUMENT);
    m.size = 8;
    ck_assert_fails(llm_metrics_format(&m, "a", "b", buf, sizeof buf, &need),
                    LLM_ERR_INVALID_ARGUMENT);
}
END_TEST

Suite *suite_metrics(void) {
    Suite *s = suite_create("metrics");
    TCase *core = tcase_create("core");
    tcase_add_test(core, init_sets_not_computed);
    tcase_add_test(core, binary_known_confusion_matrix);
    tcase_add_test(core, auc_known_values);
    tcase_add_test(core, accuracy_multiclass);
    tcase_add_test(core, format_report);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, binary_threshold_is_inclusive);
    tcase_add_test(limits, binary_undefined_gives_nan);
    tcase_add_test(limits, auc_with_ties_matches_brute_force);
    suite_add_tcase(s, limits);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, errors_binary);
    tcase_add_test(errors, errors_auc_accuracy_format);
    suite_add_tcase(s, errors);
    return s;
}
