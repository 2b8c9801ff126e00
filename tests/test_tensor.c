/* Tensor lifecycle, data movement, shapes, and every error path. */
#include <stdlib.h>
#include "testutil.h"

static llm_backend *be;
static void setup(void) { ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL)); }
static void teardown(void) { llm_backend_free(be); be = NULL; }

START_TEST(create_is_zeroed_and_shaped) {
    int64_t shape[3] = {2, 3, 5};
    llm_tensor *t = NULL;
    ck_assert_ok(llm_tensor_create(&t, be, LLM_DTYPE_F32, 3, shape));
    int nd = 0;
    int64_t got[LLM_MAX_DIMS] = {0}, numel = 0, d = 0;
    llm_dtype dt = LLM_DTYPE_I32;
    ck_assert_ok(llm_tensor_ndim(t, &nd));
    ck_assert_int_eq(nd, 3);
    ck_assert_ok(llm_tensor_shape(t, got));
    ck_assert(got[0] == 2 && got[1] == 3 && got[2] == 5);
    ck_assert_ok(llm_tensor_numel(t, &numel));
    ck_assert_int_eq(numel, 30);
    ck_assert_ok(llm_tensor_dim(t, -1, &d));
    ck_assert_int_eq(d, 5);
    ck_assert_ok(llm_tensor_dtype(t, &dt));
    ck_assert_int_eq(dt, LLM_DTYPE_F32);
    llm_backend *owner = NULL;
    ck_assert_ok(llm_tensor_backend(t, &owner));
    ck_assert_ptr_eq(owner, be);
    float host[30];
    for (int i = 0; i < 30; i++) host[i] = 1.0f;
    ck_assert_ok(llm_tensor_to_host(t, host, sizeof host));
    for (int i = 0; i < 30; i++) ck_assert_float_eq(host[i], 0.0f);
    llm_tensor_free(t);
    llm_tensor_free(NULL);
}
END_TEST

START_TEST(round_trip_fill_reshape) {
    float in[12], out[12];
    for (int i = 0; i < 12; i++) in[i] = (float)i * 0.5f - 3.0f;
    llm_tensor *t = NULL;
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){3, 4}, in, sizeof in));
    ck_assert_ok(llm_tensor_to_host(t, out, sizeof out));
    ck_assert_mem_eq(in, out, sizeof in);
    ck_assert_ok(llm_tensor_reshape(t, 4, (int64_t[]){2, 1, 3, 2}));
    int64_t s[4];
    ck_assert_ok(llm_tensor_shape(t, s));
    ck_assert(s[0] == 2 && s[1] == 1 && s[2] == 3 && s[3] == 2);
    ck_assert_ok(llm_tensor_to_host(t, out, sizeof out)); /* data unchanged by reshape */
    ck_assert_mem_eq(in, out, sizeof in);
    ck_assert_ok(llm_tensor_fill(t, 2.25));
    ck_assert_ok(llm_tensor_to_host(t, out, sizeof out));
    for (int i = 0; i < 12; i++) ck_assert_float_eq(out[i], 2.25f);
    ck_assert_ok(llm_tensor_copy_from_host(t, in, sizeof in));
    ck_assert_ok(llm_tensor_to_host(t, out, sizeof out));
    ck_assert_mem_eq(in, out, sizeof in);
    llm_tensor_free(t);

    int32_t ids[5] = {0, 1, -7, 2147483647, 42}, back[5];
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_I32, 1, (int64_t[]){5}, ids, sizeof ids));
    ck_assert_ok(llm_tensor_to_host(t, back, sizeof back));
    ck_assert_mem_eq(ids, back, sizeof ids);
    ck_assert_ok(llm_tensor_fill(t, -3));
    ck_assert_ok(llm_tensor_to_host(t, back, sizeof back));
    for (int i = 0; i < 5; i++) ck_assert_int_eq(back[i], -3);
    llm_tensor_free(t);
}
END_TEST

START_TEST(large_tensor) {
    int64_t n = 1 << 22;
    float *buf = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) buf[i] = (float)(i % 977);
    llm_tensor *t;
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, &n, buf, (size_t)n * 4));
    memset(buf, 0, (size_t)n * 4);
    ck_assert_ok(llm_tensor_to_host(t, buf, (size_t)n * 4));
    ck_assert_float_eq(buf[n - 1], (float)((n - 1) % 977));
    llm_tensor_free(t);
    free(buf);
}
END_TEST

START_TEST(create_errors) {
    llm_tensor *t = (llm_tensor *)0x1;
    int64_t ok[2] = {2, 2};
    ck_assert_fails(llm_tensor_create(NULL, be, LLM_DTYPE_F32, 2, ok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_create(&t, NULL, LLM_DTYPE_F32, 2, ok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(t);
    ck_assert_fails(llm_tensor_create(&t, be, (llm_dtype)9, 2, ok), LLM_ERR_DTYPE);
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 0, ok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 5, ok), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){2, 0}), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){-1, 3}), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "shape[0]"));
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 3, (int64_t[]){INT64_MAX / 2, 4, 4}),
                    LLM_ERR_OVERFLOW);
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){(int64_t)1 << 62, 1}),
                    LLM_ERR_OVERFLOW); /* bytes overflow */
    ck_assert_fails(llm_tensor_zeros(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){0}), LLM_ERR_INVALID_ARGUMENT);
    /* an absurd but representable size fails cleanly as out of memory */
    ck_assert_fails(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){(int64_t)1 << 40, 1 << 20}),
                    LLM_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(host_copy_errors) {
    float buf[4] = {0};
    llm_tensor *t = NULL;
    ck_assert_fails(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){4}, NULL, 16), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){4}, buf, 12), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(t);
    ck_assert_fails(llm_tensor_from_host(NULL, be, LLM_DTYPE_F32, 1, (int64_t[]){4}, buf, 16), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){4}, buf, 16));
    ck_assert_fails(llm_tensor_to_host(NULL, buf, 16), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_to_host(t, NULL, 16), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_to_host(t, buf, 20), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_copy_from_host(NULL, buf, 16), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_copy_from_host(t, NULL, 16), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_copy_from_host(t, buf, 8), LLM_ERR_INVALID_ARGUMENT);
    llm_tensor_free(t);
}
END_TEST

START_TEST(fill_reshape_query_errors) {
    llm_tensor *t = NULL, *ti = NULL;
    ck_assert_ok(llm_tensor_create(&t, be, LLM_DTYPE_F32, 2, (int64_t[]){2, 3}));
    ck_assert_ok(llm_tensor_create(&ti, be, LLM_DTYPE_I32, 1, (int64_t[]){3}));
    ck_assert_fails(llm_tensor_fill(NULL, 1.0), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_fill(ti, 1.5), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_fill(ti, 1e12), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_fill(t, 1e300), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_reshape(NULL, 1, (int64_t[]){6}), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_reshape(t, 1, (int64_t[]){7}), LLM_ERR_SHAPE);
    ck_assert_fails(llm_tensor_reshape(t, 0, (int64_t[]){6}), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_reshape(t, 2, NULL), LLM_ERR_INVALID_ARGUMENT);
    int64_t s[4], v;
    int nd;
    llm_dtype dt;
    llm_backend *b;
    ck_assert_fails(llm_tensor_ndim(NULL, &nd), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_ndim(t, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_shape(NULL, s), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_shape(t, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_dim(t, 2, &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_dim(t, -3, &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_dim(NULL, 0, &v), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_numel(t, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_dtype(NULL, &dt), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_tensor_backend(t, NULL), LLM_ERR_INVALID_ARGUMENT);
    (void)b;
    ck_assert_uint_eq(llm_dtype_size(LLM_DTYPE_F32), 4);
    ck_assert_uint_eq(llm_dtype_size((llm_dtype)99), 0);
    llm_tensor_free(t);
    llm_tensor_free(ti);
}
END_TEST

Suite *suite_tensor(void) {
    Suite *s = suite_create("tensor");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, create_is_zeroed_and_shaped);
    tcase_add_test(c, round_trip_fill_reshape);
    tcase_add_test(c, large_tensor);
    suite_add_tcase(s, c);
    TCase *e = tcase_create("errors");
    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, create_errors);
    tcase_add_test(e, host_copy_errors);
    tcase_add_test(e, fill_reshape_query_errors);
    suite_add_tcase(s, e);
    return s;
}
