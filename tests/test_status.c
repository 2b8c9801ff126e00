/* Version, status strings, last error, logging, backends. */
#include <stdio.h>
#include <pthread.h>
#include "testutil.h"

START_TEST(version_matches_header) {
    ck_assert_uint_eq(llm_version(), LLM_VERSION_NUMBER);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", LLM_VERSION_MAJOR, LLM_VERSION_MINOR, LLM_VERSION_PATCH);
    ck_assert_str_eq(llm_version_string(), expect);
}
END_TEST

START_TEST(status_strings_never_null) {
    for (int s = -20; s <= 5; s++) {
        const char *t = llm_status_string((llm_status)s);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_gt((int)strlen(t), 0);
    }
    ck_assert_str_eq(llm_status_string(LLM_OK), "ok");
    ck_assert_str_eq(llm_status_string((llm_status)-999), "unknown status");
    ck_assert_str_ne(llm_status_string(LLM_ERR_SHAPE), llm_status_string(LLM_ERR_DTYPE));
}
END_TEST

START_TEST(last_error_set_and_cleared) {
    llm_clear_error();
    ck_assert_str_eq(llm_last_error(), "");
    llm_backend *be = NULL;
    ck_assert_fails(llm_backend_create(&be, (llm_backend_kind)42, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(be);
    ck_assert_ptr_nonnull(strstr(llm_last_error(), "llm_backend_create"));
    llm_clear_error();
    ck_assert_str_eq(llm_last_error(), "");
}
END_TEST

static void *other_thread(void *arg) {
    (void)arg;
    llm_tensor *t;
    llm_tensor_create(&t, NULL, LLM_DTYPE_F32, 1, (int64_t[]){1});
    return NULL;
}

START_TEST(last_error_is_per_thread) {
    llm_clear_error();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    pthread_join(th, NULL);
    ck_assert_str_eq(llm_last_error(), ""); /* the other thread's failure is not ours */
}
END_TEST

START_TEST(backend_cpu_lifecycle) {
    llm_backend_options o;
    llm_backend_options_init(&o);
    ck_assert_uint_eq(o.size, sizeof o);
    o.threads = 2;
    llm_backend *be = NULL;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &o));
    int threads = 0;
    ck_assert_ok(llm_backend_threads(be, &threads));
    ck_assert_int_eq(threads, 2);
    llm_backend_kind kind = LLM_BACKEND_CUDA;
    ck_assert_ok(llm_backend_kind_of(be, &kind));
    ck_assert_int_eq(kind, LLM_BACKEND_CPU);
    char buf[256];
    size_t needed = 0;
    ck_assert_ok(llm_backend_describe(be, buf, sizeof buf, &needed));
    ck_assert_ptr_nonnull(strstr(buf, "cpu threads=2"));
    ck_assert_ptr_nonnull(strstr(buf, "core="));
    ck_assert_uint_eq(needed, strlen(buf));
    char tiny[4];
    ck_assert_ok(llm_backend_describe(be, tiny, sizeof tiny, &needed));
    ck_assert_uint_eq(strlen(tiny), 3);
    ck_assert_uint_gt(needed, 3);
    llm_backend_free(be);
    llm_backend_free(NULL);

    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL)); /* defaults: all cores */
    ck_assert_ok(llm_backend_threads(be, &threads));
    ck_assert_int_ge(threads, 1);
    llm_backend_free(be);
}
END_TEST

START_TEST(backend_errors) {
    llm_backend *be = NULL;
    llm_backend_options o;
    llm_backend_options_init(&o);
    ck_assert_fails(llm_backend_create(NULL, LLM_BACKEND_CPU, NULL), LLM_ERR_INVALID_ARGUMENT);
    o.threads = -1;
    ck_assert_fails(llm_backend_create(&be, LLM_BACKEND_CPU, &o), LLM_ERR_INVALID_ARGUMENT);
    o.threads = 1; o.device = -1;
    ck_assert_fails(llm_backend_create(&be, LLM_BACKEND_CPU, &o), LLM_ERR_INVALID_ARGUMENT);
    o.device = 0; o.size = 0;
    ck_assert_fails(llm_backend_create(&be, LLM_BACKEND_CPU, &o), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(be);
    int avail = -1;
    ck_assert_fails(llm_backend_is_available(LLM_BACKEND_CPU, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_backend_is_available((llm_backend_kind)7, &avail), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(avail, 0);
    ck_assert_ok(llm_backend_is_available(LLM_BACKEND_CPU, &avail));
    ck_assert_int_eq(avail, 1);
    ck_assert_ok(llm_backend_is_available(LLM_BACKEND_CUDA, &avail));
    if (!avail) {
        ck_assert_int_gt((int)strlen(llm_last_error()), 0); /* says why */
        ck_assert_fails(llm_backend_create(&be, LLM_BACKEND_CUDA, NULL), LLM_ERR_UNAVAILABLE);
    }
    int threads;
    llm_backend_kind kind;
    ck_assert_fails(llm_backend_threads(NULL, &threads), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_backend_kind_of(NULL, &kind), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_backend_describe(NULL, NULL, 0, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, NULL));
    ck_assert_fails(llm_backend_threads(be, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_backend_kind_of(be, NULL), LLM_ERR_INVALID_ARGUMENT);
    ck_assert_fails(llm_backend_describe(be, NULL, 10, NULL), LLM_ERR_INVALID_ARGUMENT);
    llm_backend_free(be);
}
END_TEST

/* An options struct from an "older caller" (smaller size) is accepted and
 * the missing fields take defaults. */
START_TEST(options_size_prefix_grows) {
    /* Its struct ends after threads: sizeof such a struct would include the
     * padding where device now lives, so the size names the end of threads
     * and the rest is junk the library must not read. */
    struct { size_t size; int threads; int junk; } old;
    memset(&old, 0xa5, sizeof old);
    old.size = offsetof(llm_backend_options, threads) + sizeof old.threads;
    old.threads = 1;
    llm_backend *be = NULL;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, (const llm_backend_options *)&old));
    int threads = 0;
    ck_assert_ok(llm_backend_threads(be, &threads));
    ck_assert_int_eq(threads, 1);
    llm_backend_free(be);
}
END_TEST

Suite *suite_status(void) {
    Suite *s = suite_create("status");
    TCase *c = tcase_create("core");
    tcase_add_test(c, version_matches_header);
    tcase_add_test(c, status_strings_never_null);
    tcase_add_test(c, last_error_set_and_cleared);
    tcase_add_test(c, last_error_is_per_thread);
    tcase_add_test(c, backend_cpu_lifecycle);
    tcase_add_test(c, options_size_prefix_grows);
    suite_add_tcase(s, c);
    TCase *e = tcase_create("errors");
    tcase_add_test(e, backend_errors);
    suite_add_tcase(s, e);
    return s;
}
