/* spam_server, run as a process on 127.0.0.1 with a tiny model made here
 * through the public API (nothing is trained), and spoken to over plain
 * sockets: answers equal to llm_model_predict_text in this process, every
 * error with its status and a JSON {"error": ...} body, the body and list
 * limits, and a clean exit (status 0) on SIGTERM and SIGINT.
 *
 * The program is looked up as the examples suite does: $LLM_BIN_DIR, else the
 * bin/ folder of this runner's build tree, else ../build/bin. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "testutil.h"

#define SEQ 20
#define SMALL_BODY 4096 /* --max-body of the server in the limits test */

static char model_dir[64];
static char model_path[128];

/* ------------------------------------------------------------ the model */

static const char *train_texts[] = {
    "Subject: free money\n\nclick here now to win cash, free offer",
    "Subject: meeting on monday\n\nthe patch for the build is attached",
};

/* Embedding -> LSTM -> Dense(1, sigmoid) for int32 [SEQ], a vocabulary from
 * two texts, the e-mail reader, class names; saved, never trained. Runs
 * once, before Check forks the tests. */
static void make_model(void) {
    snprintf(model_dir, sizeof model_dir, "/tmp/llm_server_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(model_dir));
    snprintf(model_path, sizeof model_path, "%s/spam.safetensors", model_dir);
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    llm_vocab_builder *vb;
    ck_assert_ok(llm_vocab_builder_create(&vb, NULL));
    for (size_t i = 0; i < sizeof train_texts / sizeof train_texts[0]; i++)
        ck_assert_ok(llm_vocab_builder_add(vb, train_texts[i], strlen(train_texts[i])));
    llm_vocab *v;
    ck_assert_ok(llm_vocab_builder_build(vb, NULL, &v));
    llm_vocab_builder_free(vb);
    int32_t vsize;
    ck_assert_ok(llm_vocab_size(v, &vsize));

    llm_model *m;
    ck_assert_ok(llm_model_sequential(&m, be));
    ck_assert_ok(llm_model_set_seed(m, 7));
    ck_assert_ok(llm_model_add(m, llm_layer_embedding(vsize, 8)));
    ck_assert_ok(llm_model_add(m, llm_layer_lstm(8, LLM_RETURN_LAST)));
    ck_assert_ok(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    int64_t shape[1] = { SEQ };
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, shape));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = SEQ;
    llm_email_options eo;
    llm_email_options_init(&eo);
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, &eo));
    ck_assert_ok(llm_model_set_metadata(m, "class_names", "ham,spam"));
    ck_assert_ok(llm_model_save(m, model_path));
    llm_model_free(m);
    llm_vocab_free(v);
    llm_backend_free(be);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(path);
}

static void remove_model(void) {
    if (model_dir[0]) nftw(model_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The probability this process gets for a text with the saved model. */
static float local_predict(const char *text, size_t len) {
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    llm_model *m;
    ck_assert_ok(llm_model_load(&m, be, model_path));
    float p = -1;
    ck_assert_ok(llm_model_predict_text(m, text, len, &p, 1));
    llm_model_free(m);
    llm_backend_free(be);
    return p;
}

/* ------------------------------------------------------------ the server */

typedef struct server_proc {
    pid_t pid;
    int port;
    int err_fd;  /* its stderr: an unlinked temporary file */
} server_proc;

/* The first 64 KiB of what the server wrote to stderr. */
static char *server_stderr(const server_proc *s) {
    size_t cap = 65536;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    ssize_t n = pread(s->err_fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Starts spam_server on 127.0.0.1, port 0, with extra arguments (NULL
 * terminated, at most 8), and reads its "listening on" line. The server
 * gets SIGKILL if this test process dies first. */
static void server_start(server_proc *s, const char *const *extra) {
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/spam_server", tu_bin_dir());
    ck_assert_msg(access(prog, X_OK) == 0, "%s is missing: build the examples first (make examples)", prog);
    char err_path[] = "/tmp/llm_server_err_XXXXXX";
    int errfd = mkstemp(err_path);
    ck_assert_int_ge(errfd, 0);
    unlink(err_path);
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    const char *argv[24] = { prog, "--model", model_path, "--host", "127.0.0.1", "--port", "0", "--threads", "2",
                             "--verbose" };
    int k = 10;
    for (int i = 0; extra && extra[i] && i < 8; i++) argv[k++] = extra[i];
    argv[k] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errfd, 2) < 0) _exit(127);
        close(out[0]);
        close(out[1]);
        close(errfd);
        close(devnull);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    s->err_fd = errfd;
    s->pid = pid;
    s->port = 0;
    char line[256];
    size_t n = 0;
    double t0 = tu_now();
    while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n') && tu_now() - t0 < 20) {
        struct pollfd pfd = { out[0], POLLIN, 0 };
        int r = poll(&pfd, 1, 100);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        ssize_t got = read(out[0], line + n, sizeof line - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
    }
    line[n] = '\0';
    close(out[0]);
    int port = 0;
    if (sscanf(line, "listening on http://127.0.0.1:%d", &port) != 1 || port <= 0 || port > 65535) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char *err = server_stderr(s);
        close(s->err_fd);
        ck_abort_msg("spam_server did not start: stdout '%s'\nstderr:\n%s", line, err);
    }
    s->port = port;
}

/* Sends sig (unless 0) and waits (at most 10 s) for the exit; returns the
 * wait status. */
static int server_stop(server_proc *s, int sig) {
    if (sig) ck_assert_int_eq(kill(s->pid, sig), 0);
    int status = 0;
    double t0 = tu_now();
    for (;;) {
        pid_t w = waitpid(s->pid, &status, WNOHANG);
        if (w == s->pid) break;
        ck_assert_msg(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (tu_now() - t0 > 10) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            ck_abort_msg("spam_server did not stop within 10 s of signal %d", sig);
        }
        nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
    }
    return status;
}

/* Stops the server with sig (0: it was already sent) and asserts a clean
 * exit with status 0. */
static void server_stop_clean(server_proc *s, int sig) {
    int status = server_stop(s, sig);
    char *err = server_stderr(s);
    close(s->err_fd);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "spam_server after signal %d: exit %d, signal %d\nstderr:\n%s", sig,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0, err);
    free(err);
}

/* ------------------------------------------------------------ HTTP */

typedef struct reply {
    int status;
    char *raw;        /* the whole response */
    const char *body; /* points into raw */
    cJSON *json;      /* the body parsed, or NULL */
} reply;

static void reply_free(reply *r) {
    cJSON_Delete(r->json);
    free(r->raw);
    memset(r, 0, sizeof *r);
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return fd;
}

/* Sends what it can: a send the server cut short (it answered early) is not
 * an error. */
static void send_all(int fd, const char *data, size_t len) {
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        sent += (size_t)w;
    }
}

/* Reads until the server closes, then closes fd and parses the response. */
static void read_reply(int fd, reply *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    close(fd);
    out->raw = buf;
    ck_assert_msg(sscanf(buf, "HTTP/1.1 %d", &out->status) == 1, "not an HTTP/1.1 response: '%s'", buf);
    const char *sep = strstr(buf, "\r\n\r\n");
    ck_assert_msg(sep != NULL, "no end of headers in '%s'", buf);
    out->body = sep + 4;
    out->json = cJSON_Parse(out->body);
}

/* Sends `len` bytes as they are and reads the answer. */
static void http_raw(int port, const char *req, size_t len, reply *out) {
    int fd = connect_to(port);
    send_all(fd, req, len);
    read_reply(fd, out);
}

/* One request with Connection: close; content_type NULL: no such header. */
static void http(int port, const char *method, const char *path, const char *content_type, const char *body,
                 reply *out) {
    size_t blen = body ? strlen(body) : 0;
    size_t cap = blen + 512;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, path);
    if (content_type) n += snprintf(req + n, cap - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (body) n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) memcpy(req + n, body, blen);
    http_raw(port, req, (size_t)n + blen, out);
    free(req);
}

static void post(int port, const char *body, reply *out) {
    http(port, "POST", "/v1/classify", "application/json", body, out);
}

/* The reply is `status` with a JSON body {"error": "<non-empty>"} (and
 * application/json). */
static void assert_error(const reply *r, int status, const char *what) {
    ck_assert_msg(r->status == status, "%s: status %d, expected %d:\n%s", what, r->status, status, r->raw);
    ck_assert_msg(strstr(r->raw, "Content-Type: application/json") != NULL, "%s: not JSON:\n%s", what, r->raw);
    const cJSON *e = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "error") : NULL;
    ck_assert_msg(cJSON_IsString(e) && e->valuestring[0], "%s: no {\"error\": ...} body:\n%s", what, r->raw);
}

/* {"label": ..., "probability": p} matches this process's prediction. */
static void assert_result(const cJSON *item, const char *text, const char *what) {
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(item, "label");
    const cJSON *prob = cJSON_GetObjectItemCaseSensitive(item, "probability");
    ck_assert_msg(cJSON_IsString(label) && cJSON_IsNumber(prob), "%s: not a result", what);
    float want = local_predict(text, strlen(text));
    ck_assert_msg(fabs(prob->valuedouble - (double)want) <= 1e-6, "%s: probability %.9g, in process %.9g", what,
                  prob->valuedouble, (double)want);
    ck_assert_str_eq(label->valuestring, want >= 0.5f ? "spam" : "ham");
}

/* A JSON body {"text": text} or {"texts": [texts...]}, escaped by cJSON. */
static char *body_text(const char *text) {
    cJSON *o = cJSON_CreateObject();
    ck_assert_ptr_nonnull(cJSON_AddStringToObject(o, "text", text));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(s);
    return s;
}

static char *body_texts(const char *const *texts, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "texts");
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < n; i++) ck_assert(cJSON_AddItemToArray(a, cJSON_CreateString(texts[i])));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* ------------------------------------------------------------ tests */

static const char *mail_spam = "From: win@example.com\nSubject: free money\n\nclick here now to win cash";
static const char *mail_ham = "From: dev@example.org\r\nSubject: meeting\r\n\r\nthe patch for the build";

START_TEST(health_and_single_text) {
    server_proc s;
    server_start(&s, NULL);
    reply r;
    http(s.port, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r.json, "status");
    ck_assert(cJSON_IsString(st));
    ck_assert_str_eq(st->valuestring, "ok");
    reply_free(&r);

    const char *texts[] = { mail_spam, mail_ham, "plain text, not a message", "", "caf\xc3\xa9 cr\xc3\xa8me" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *b = body_text(texts[i]);
        post(s.port, b, &r);
        ck_assert_msg(r.status == 200, "text %zu: status %d\n%s", i, r.status, r.raw);
        ck_assert_msg(strstr(r.raw, "Content-Type: application/json") != NULL, "not JSON:\n%s", r.raw);
        ck_assert_ptr_nonnull(r.json);
        assert_result(r.json, texts[i], "single text");
        reply_free(&r);
        cJSON_free(b);
    }
    /* \u escapes are decoded before the model sees the text; a charset
       parameter is fine */
    http(s.port, "POST", "/v1/classify", "Application/JSON; charset=utf-8", "{\"text\": \"caf\\u00e9 cr\\u00e8me\"}", &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    assert_result(r.json, "caf\xc3\xa9 cr\xc3\xa8me", "escaped text");
    reply_free(&r);
    server_stop_clean(&s, SIGTERM);
}
END_TEST

START_TEST(list_of_texts) {
    server_proc s;
    server_start(&s, NULL);
    const char *texts[] = { mail_spam, mail_ham, "", "free money free money", mail_spam };
    int n = (int)(sizeof texts / sizeof texts[0]);
    char *b = body_texts(texts, n);
    reply r;
    post(s.port, b, &r);
    cJSON_free(b);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(r.json, "results");
    ck_assert(cJSON_IsArray(results));
    ck_assert_int_eq(cJSON_GetArraySize(results), n);
    for (int i = 0; i < n; i++) assert_result(cJSON_GetArrayItem(results, i), texts[i], "list item");
    /* the same message twice gives the same answer */
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "probability")->valuedouble,
                        cJSON_GetObjectItem(cJSON_GetArrayItem(results, 4), "probability")->valuedouble);
    reply_free(&r);
    /* an empty list is a valid, empty answer */
    post(s.port, "{\"texts\": []}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 0);
    reply_free(&r);
    server_stop_clean(&s, SIGTERM);
}
END_TEST

START_TEST(errors_are_json) {
    server_proc s;
    server_start(&s, NULL);
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
        post(s.port, bad[i].body, &r);
        assert_error(&r, 400, bad[i].what);
        reply_free(&r);
    }
    /* a NUL byte in the body */
    static const char nul_req[] = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"text\": \"a\"}\0 ";
    http_raw(s.port, nul_req, sizeof nul_req - 1, &r);
    assert_error(&r, 400, "NUL byte");
    reply_free(&r);
    /* deep nesting is refused by the parser, not a crash */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 1);
    ck_assert_ptr_nonnull(deep);
    for (size_t i = 0; i < depth; i++) { deep[i] = '['; deep[depth + i] = ']'; }
    deep[2 * depth] = '\0';
    post(s.port, deep, &r);
    free(deep);
    assert_error(&r, 400, "deep nesting");
    reply_free(&r);

    http(s.port, "GET", "/nope", NULL, NULL, &r);
    assert_error(&r, 404, "unknown route");
    reply_free(&r);
    http(s.port, "POST", "/v1/classify/extra", "application/json", "{\"text\": \"a\"}", &r);
    assert_error(&r, 404, "unknown route with a body");
    reply_free(&r);
    http(s.port, "GET", "/v1/classify", NULL, NULL, &r);
    assert_error(&r, 405, "GET classify");
    ck_assert_msg(strstr(r.raw, "\r\nAllow: POST\r\n") != NULL, "no Allow header:\n%s", r.raw);
    reply_free(&r);
    http(s.port, "PUT", "/v1/classify", "application/json", "{\"text\": \"a\"}", &r);
    assert_error(&r, 405, "PUT classify");
    reply_free(&r);
    http(s.port, "POST", "/healthz", "application/json", "{}", &r);
    assert_error(&r, 405, "POST healthz");
    ck_assert_msg(strstr(r.raw, "\r\nAllow: GET, HEAD\r\n") != NULL, "no Allow header:\n%s", r.raw);
    reply_free(&r);
    http(s.port, "POST", "/v1/classify", "text/plain", "{\"text\": \"a\"}", &r);
    assert_error(&r, 415, "text/plain");
    reply_free(&r);
    http(s.port, "POST", "/v1/classify", "application/x-www-form-urlencoded", "text=a", &r);
    assert_error(&r, 415, "form");
    reply_free(&r);
    /* still serving after all that */
    http(s.port, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    server_stop_clean(&s, SIGTERM);
}
END_TEST

START_TEST(limits) {
    char mb[32];
    snprintf(mb, sizeof mb, "%d", SMALL_BODY);
    const char *extra[] = { "--max-body", mb, NULL };
    server_proc s;
    server_start(&s, extra);
    reply r;
    /* announced too large: answered from the headers alone */
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", 50 * 1000 * 1000);
    http_raw(s.port, req, (size_t)n, &r);
    assert_error(&r, 413, "Content-Length over the limit");
    reply_free(&r);
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
    http_raw(s.port, chunked, k, &r);
    free(chunked);
    assert_error(&r, 413, "chunked body over the limit");
    reply_free(&r);
    /* just under the limit is fine */
    char *text = malloc(SMALL_BODY);
    ck_assert_ptr_nonnull(text);
    memset(text, 'y', SMALL_BODY - 20);
    text[SMALL_BODY - 20] = '\0';
    char *b = body_text(text);
    ck_assert_uint_le(strlen(b), SMALL_BODY);
    post(s.port, b, &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    assert_result(r.json, text, "a body at the limit");
    reply_free(&r);
    cJSON_free(b);
    free(text);
    /* too many texts */
    const char *many[257];
    for (int i = 0; i < 257; i++) many[i] = "";
    b = body_texts(many, 257);
    ck_assert_uint_le(strlen(b), SMALL_BODY);
    post(s.port, b, &r);
    cJSON_free(b);
    assert_error(&r, 400, "257 texts");
    reply_free(&r);
    b = body_texts(many, 256);
    post(s.port, b, &r);
    cJSON_free(b);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "results")), 256);
    reply_free(&r);
    server_stop_clean(&s, SIGINT);
}
END_TEST

/* Several clients at once on the worker threads get the same answers. */
START_TEST(concurrent_clients) {
    const char *extra[] = { "--threads", "4", NULL };
    server_proc s;
    server_start(&s, extra);
    float want = local_predict(mail_spam, strlen(mail_spam));
    char *b = body_text(mail_spam);
    enum { CLIENTS = 8, EACH = 10 };
    pid_t kids[CLIENTS];
    for (int c = 0; c < CLIENTS; c++) {
        kids[c] = fork();
        ck_assert_int_ge(kids[c], 0);
        if (kids[c] == 0) {
            for (int i = 0; i < EACH; i++) {
                reply r;
                post(s.port, b, &r);
                const cJSON *p = r.json ? cJSON_GetObjectItem(r.json, "probability") : NULL;
                if (r.status != 200 || !cJSON_IsNumber(p) || fabs(p->valuedouble - (double)want) > 1e-6) _exit(1);
                reply_free(&r);
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
    server_stop_clean(&s, SIGTERM);
}
END_TEST

/* A request in progress when SIGTERM comes still gets its answer. */
START_TEST(finishes_requests_on_sigterm) {
    server_proc s;
    server_start(&s, NULL);
    char *b = body_text(mail_spam);
    size_t blen = strlen(b);
    char head[256];
    int n = snprintf(head, sizeof head, "POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", blen);
    int fd = connect_to(s.port);
    send_all(fd, head, (size_t)n);
    send_all(fd, b, blen / 2);
    nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL); /* the server has the headers */
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL); /* and the signal */
    send_all(fd, b + blen / 2, blen - blen / 2);
    reply r;
    read_reply(fd, &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    assert_result(r.json, mail_spam, "request across SIGTERM");
    reply_free(&r);
    cJSON_free(b);
    server_stop_clean(&s, 0); /* already signalled */
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

Suite *suite_server(void) {
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("server");
    tcase_add_unchecked_fixture(tc, make_model, remove_model);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, health_and_single_text);
    tcase_add_test(tc, list_of_texts);
    tcase_add_test(tc, errors_are_json);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, concurrent_clients);
    tcase_add_test(tc, finishes_requests_on_sigterm);
    tcase_add_test(tc, bad_command_lines);
    suite_add_tcase(s, tc);
    return s;
}
