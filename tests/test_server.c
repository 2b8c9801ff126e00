/* spam_server, run as a process on 127.0.0.1 with a tiny model made here
 * through the public API (nothing is trained), and spoken to over plain
 * sockets: answers equal to llm_model_predict_text in this process, every
 * error with its status and a JSON {"error": ...} body, the body and list
 * limits, and a clean exit (status 0) on SIGTERM and SIGINT. The cases with
 * hostile clients are in test_server_hostile.c; the helpers in
 * server_client.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "server_client.h"

#define SMALL_BODY 4096 /* --max-body of the server in the limits test */

/* ------------------------------------------------------------ tests */

static const char *mail_spam = "From: win@example.com\nSubject: free money\n\nclick here now to win cash";
static const char *mail_ham = "From: dev@example.org\r\nSubject: meeting\r\n\r\nthe patch for the build";

START_TEST(health_and_single_text) {
    server_proc s;
    sc_start(&s, NULL);
    reply r;
    sc_http(s.port, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r.json, "status");
    ck_assert(cJSON_IsString(st));
    ck_assert_str_eq(st->valuestring, "ok");
    sc_reply_free(&r);

    const char *texts[] = { mail_spam, mail_ham, "plain text, not a message", "", "caf\xc3\xa9 cr\xc3\xa8me" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *b = sc_body_text(texts[i]);
        sc_post(s.port, b, &r);
        ck_assert_msg(r.status == 200, "text %zu: status %d\n%s", i, r.status, r.raw);
        ck_assert_msg(strstr(r.raw, "Content-Type: application/json") != NULL, "not JSON:\n%s", r.raw);
        ck_assert_ptr_nonnull(r.json);
        sc_assert_result(r.json, texts[i], "single text");
        sc_reply_free(&r);
        cJSON_free(b);
    }
    /* \u escapes are decoded before the model sees the text; a charset
       parameter is fine */
    sc_http(s.port, "POST", "/v1/classify", "Application/JSON; charset=utf-8", "{\"text\": \"caf\\u00e9 cr\\u00e8me\"}", &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    sc_assert_result(r.json, "caf\xc3\xa9 cr\xc3\xa8me", "escaped text");
    sc_reply_free(&r);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

START_TEST(list_of_texts) {
    server_proc s;
    sc_start(&s, NULL);
    const char *texts[] = { mail_spam, mail_ham, "", "free money free money", mail_spam };
    int n = (int)(sizeof texts / sizeof texts[0]);
    char *b = sc_body_texts(texts, n);
    reply r;
    sc_post(s.port, b, &r);
    cJSON_free(b);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(r.json, "results");
    ck_assert(cJSON_IsArray(results));
    ck_assert_int_eq(cJSON_GetArraySize(results), n);
    for (int i = 0; i < n; i++) sc_assert_result(cJSON_GetArrayItem(results, i), texts[i], "list item");
    /* the same message twice gives the same answer */
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "probability")->valuedouble,
                        cJSON_GetObjectItem(cJSON_GetArrayItem(results, 4), "probability")->valuedouble);
    sc_reply_free(&r);
    /* an empty list is a valid, empty answer */
    sc_post(s.port, "{\"texts\": []}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 0);
    sc_reply_free(&r);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

START_TEST(errors_are_json) {
    server_proc s;
    sc_start(&s, NULL);
    static const struct { const char *body; const char *what; } bad[] = {
        { "{\"text\": ", "truncated JSON" },
        { "{\"text\": \"a\"} trailing", "trailing garbage" },
        { "not json", "not JSON" },
        { "{\"text\": \"\\ud800\"}", "lone surrogate" },
        { "[\"a\"]", "array at the top" },
        { "\"a\"", "string at the top" },
        { "{}", "no field" },
        { "{\"txt\": \"a\"}", "misspelt field" },
        { "{\"text\": 1}", "number text" },
        { "{\"text\": null}", "null text" },
        { "{\"text\": [\"a\"]}", "array text" },
        { "{\"texts\": \"a\"}", "string texts" },
        { "{\"texts\": [\"a\", 2]}", "number in texts" },
        { "{\"texts\": [\"a\", {}]}", "object in texts" },
        { "{\"text\": \"a\", \"texts\": [\"b\"]}", "both fields" },
        { "", "empty body" },
    };
    reply r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc_post(s.port, bad[i].body, &r);
        sc_assert_error(&r, 400, bad[i].what);
        sc_reply_free(&r);
    }
    /* a NUL byte in the body */
    static const char nul_req[] = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"text\": \"a\"}\0 ";
    sc_raw(s.port, nul_req, sizeof nul_req - 1, &r);
    sc_assert_error(&r, 400, "NUL byte");
    sc_reply_free(&r);
    /* deep nesting is refused by the parser, not a crash */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 1);
    ck_assert_ptr_nonnull(deep);
    for (size_t i = 0; i < depth; i++) { deep[i] = '['; deep[depth + i] = ']'; }
    deep[2 * depth] = '\0';
    sc_post(s.port, deep, &r);
    free(deep);
    sc_assert_error(&r, 400, "deep nesting");
    sc_reply_free(&r);

    sc_http(s.port, "GET", "/nope", NULL, NULL, &r);
    sc_assert_error(&r, 404, "unknown route");
    sc_reply_free(&r);
    sc_http(s.port, "POST", "/v1/classify/extra", "application/json", "{\"text\": \"a\"}", &r);
    sc_assert_error(&r, 404, "unknown route with a body");
    sc_reply_free(&r);
    sc_http(s.port, "GET", "/v1/classify", NULL, NULL, &r);
    sc_assert_error(&r, 405, "GET classify");
    ck_assert_msg(strstr(r.raw, "\r\nAllow: POST\r\n") != NULL, "no Allow header:\n%s", r.raw);
    sc_reply_free(&r);
    sc_http(s.port, "PUT", "/v1/classify", "application/json", "{\"text\": \"a\"}", &r);
    sc_assert_error(&r, 405, "PUT classify");
    sc_reply_free(&r);
    sc_http(s.port, "POST", "/healthz", "application/json", "{}", &r);
    sc_assert_error(&r, 405, "POST healthz");
    ck_assert_msg(strstr(r.raw, "\r\nAllow: GET, HEAD\r\n") != NULL, "no Allow header:\n%s", r.raw);
    sc_reply_free(&r);
    sc_http(s.port, "POST", "/v1/classify", "text/plain", "{\"text\": \"a\"}", &r);
    sc_assert_error(&r, 415, "text/plain");
    sc_reply_free(&r);
    sc_http(s.port, "POST", "/v1/classify", "application/x-www-form-urlencoded", "text=a", &r);
    sc_assert_error(&r, 415, "form");
    sc_reply_free(&r);
    /* still serving after all that */
    sc_http(s.port, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    sc_reply_free(&r);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

START_TEST(limits) {
    char mb[32];
    snprintf(mb, sizeof mb, "%d", SMALL_BODY);
    const char *extra[] = { "--max-body", mb, NULL };
    server_proc s;
    sc_start(&s, extra);
    reply r;
    /* announced too large: answered from the headers alone */
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", 50 * 1000 * 1000);
    sc_raw(s.port, req, (size_t)n, &r);
    sc_assert_error(&r, 413, "Content-Length over the limit");
    sc_reply_free(&r);
    /* chunked, so only counting shows it is too large */
    size_t cap = 3 * SMALL_BODY;
    char *chunked = malloc(cap);
    ck_assert_ptr_nonnull(chunked);
    size_t k = (size_t)snprintf(chunked, cap, "POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    k += (size_t)snprintf(chunked + k, cap - k, "b\r\n{\"text\": \"a\r\n");
    for (int i = 0; i < 20; i++) { /* 8000 bytes in all */
        k += (size_t)snprintf(chunked + k, cap - k, "190\r\n");
        memset(chunked + k, 'x', 400);
        k += 400;
        k += (size_t)snprintf(chunked + k, cap - k, "\r\n");
    }
    k += (size_t)snprintf(chunked + k, cap - k, "2\r\n\"}\r\n0\r\n\r\n");
    sc_raw(s.port, chunked, k, &r);
    free(chunked);
    sc_assert_error(&r, 413, "chunked body over the limit");
    sc_reply_free(&r);
    /* just under the limit is fine */
    char *text = malloc(SMALL_BODY);
    ck_assert_ptr_nonnull(text);
    memset(text, 'y', SMALL_BODY - 20);
    text[SMALL_BODY - 20] = '\0';
    char *b = sc_body_text(text);
    ck_assert_uint_le(strlen(b), SMALL_BODY);
    sc_post(s.port, b, &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    sc_assert_result(r.json, text, "a body at the limit");
    sc_reply_free(&r);
    cJSON_free(b);
    free(text);
    /* too many texts */
    const char *many[257];
    for (int i = 0; i < 257; i++) many[i] = "";
    b = sc_body_texts(many, 257);
    ck_assert_uint_le(strlen(b), SMALL_BODY);
    sc_post(s.port, b, &r);
    cJSON_free(b);
    sc_assert_error(&r, 400, "257 texts");
    sc_reply_free(&r);
    b = sc_body_texts(many, 256);
    sc_post(s.port, b, &r);
    cJSON_free(b);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 256);
    sc_reply_free(&r);
    sc_stop_clean(&s, SIGINT);
}
END_TEST

/* Several clients at once on the worker threads get the same answers. */
START_TEST(concurrent_clients) {
    const char *extra[] = { "--threads", "4", NULL };
    server_proc s;
    sc_start(&s, extra);
    float want = sc_local_predict(mail_spam, strlen(mail_spam));
    char *b = sc_body_text(mail_spam);
    enum { CLIENTS = 8, EACH = 10 };
    pid_t kids[CLIENTS];
    for (int c = 0; c < CLIENTS; c++) {
        kids[c] = fork();
        ck_assert_int_ge(kids[c], 0);
        if (kids[c] == 0) {
            for (int i = 0; i < EACH; i++) {
                reply r;
                sc_post(s.port, b, &r);
                const cJSON *p = r.json ? cJSON_GetObjectItem(r.json, "probability") : NULL;
                if (r.status != 200 || !cJSON_IsNumber(p) || fabs(p->valuedouble - (double)want) > 1e-6) _exit(1);
                sc_reply_free(&r);
            }
            _exit(0);
        }
    }
    cJSON_free(b);
    for (int c = 0; c < CLIENTS; c++) {
        int st = 0;
        ck_assert_int_eq(waitpid(kids[c], &st, 0), kids[c]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d got a wrong answer", c);
    }
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* A request in progress when SIGTERM comes still gets its answer. */
START_TEST(finishes_requests_on_sigterm) {
    server_proc s;
    sc_start(&s, NULL);
    char *b = sc_body_text(mail_spam);
    size_t blen = strlen(b);
    char head[256];
    int n = snprintf(head, sizeof head, "POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", blen);
    int fd = sc_connect(s.port);
    sc_send(fd, head, (size_t)n);
    sc_send(fd, b, blen / 2);
    sc_sleep_ms(200); /* the server has the headers */
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    sc_sleep_ms(200); /* and the signal */
    sc_send(fd, b + blen / 2, blen - blen / 2);
    reply r;
    sc_read_until_close(fd, &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    ck_assert_msg(sc_has_header(&r, "Connection: close"), "no Connection: close while stopping:\n%s", r.raw);
    sc_assert_result(r.json, mail_spam, "request across SIGTERM");
    sc_reply_free(&r);
    cJSON_free(b);
    sc_stop_clean(&s, 0); /* already signalled */
}
END_TEST

/* Bad command lines: status 2 with a usage text; an unreadable model: 1. */
START_TEST(bad_command_lines) {
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/spam_server", tu_bin_dir());
    ck_assert_msg(access(prog, X_OK) == 0, "%s is missing", prog);
    static const struct { const char *args; int code; } cases[] = {
        { "", 2 },
        { "--model m --port 70000", 2 },
        { "--model m --threads 0", 2 },
        { "--model m --max-body 0", 2 },
        { "--model m --bogus", 2 },
        { "--model m stray", 2 },
        { "--model m --max-connections 0", 2 },
        { "--model m --max-connections-per-ip -1", 2 },
        { "--model m --request-timeout 0", 2 },
        { "--model m --drain-timeout -1", 2 },
        { "--model m --max-body-memory 0", 2 },
        { "--model m --max-body 2048 --max-body-memory 1024", 2 },
        { "--model /nonexistent/m.safetensors --port 0", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' %s </dev/null >/dev/null 2>&1", prog, cases[i].args);
        int st = system(cmd);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == cases[i].code, "'%s': exit %d, expected %d",
                      cases[i].args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, cases[i].code);
    }
}
END_TEST

/* --help names every limit with its default. */
START_TEST(help_lists_the_limits) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s/spam_server' --help", tu_bin_dir());
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, p);
    text[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    static const char *const want[] = {
        "--max-body BYTES", "[1048576]", "--max-body-memory BYTES", "[67108864]", "--max-connections N", "[512]",
        "--max-connections-per-ip N", "[64]", "--request-timeout S", "[10]", "--drain-timeout S", "[5]",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]), "--help lacks '%s':\n%s", want[i], text);
}
END_TEST

Suite *suite_server(void) {
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("server");
    tcase_add_unchecked_fixture(tc, sc_make_model, sc_remove_model);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, health_and_single_text);
    tcase_add_test(tc, list_of_texts);
    tcase_add_test(tc, errors_are_json);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, concurrent_clients);
    tcase_add_test(tc, finishes_requests_on_sigterm);
    tcase_add_test(tc, bad_command_lines);
    tcase_add_test(tc, help_lists_the_limits);
    suite_add_tcase(s, tc);
    sc_add_hostile_cases(s);
    return s;
}
