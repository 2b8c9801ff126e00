/* The spam_server tests' shared parts: see server_client.h.
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
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "server_client.h"

char sc_model_dir[64];
char sc_model_path[128];

/* ------------------------------------------------------------ the model */

static const char *train_texts[] = {
    "Subject: free money\n\nclick here now to win cash, free offer",
    "Subject: meeting on monday\n\nthe patch for the build is attached",
};

/* Embedding -> LSTM -> Dense(1, sigmoid) for int32 [SC_SEQ], a vocabulary
 * from two texts, the e-mail reader, class names; saved, never trained. */
void sc_make_model(void) {
    snprintf(sc_model_dir, sizeof sc_model_dir, "/tmp/llm_server_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sc_model_dir));
    snprintf(sc_model_path, sizeof sc_model_path, "%s/spam.safetensors", sc_model_dir);
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
    int64_t shape[1] = { SC_SEQ };
    ck_assert_ok(llm_model_build(m, LLM_DTYPE_I32, 1, shape));
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = SC_SEQ;
    llm_email_options eo;
    llm_email_options_init(&eo);
    ck_assert_ok(llm_model_set_text_pipeline(m, v, &vo, &eo));
    ck_assert_ok(llm_model_set_metadata(m, "class_names", "ham,spam"));
    ck_assert_ok(llm_model_save(m, sc_model_path));
    llm_model_free(m);
    llm_vocab_free(v);
    llm_backend_free(be);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(path);
}

void sc_remove_model(void) {
    if (sc_model_dir[0]) nftw(sc_model_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

float sc_local_predict(const char *text, size_t len) {
    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = 1;
    llm_backend *be;
    ck_assert_ok(llm_backend_create(&be, LLM_BACKEND_CPU, &bo));
    llm_model *m;
    ck_assert_ok(llm_model_load(&m, be, sc_model_path));
    float p = -1;
    ck_assert_ok(llm_model_predict_text(m, text, len, &p, 1));
    llm_model_free(m);
    llm_backend_free(be);
    return p;
}

void sc_sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ------------------------------------------------------------ the server */

char *sc_stderr(const server_proc *s) {
    size_t cap = 65536;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    ssize_t n = pread(s->err_fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Reads the "listening on" line from fd (at most 20 s). */
static int read_port(int fd, char *line, size_t cap) {
    size_t n = 0;
    double t0 = tu_now();
    while (n < cap - 1 && (n == 0 || line[n - 1] != '\n') && tu_now() - t0 < 20) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        int r = poll(&pfd, 1, 100);
        if (r <= 0) continue;
        ssize_t got = read(fd, line + n, cap - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
    }
    line[n] = '\0';
    int port = 0;
    if (sscanf(line, "listening on http://127.0.0.1:%d", &port) != 1 || port <= 0 || port > 65535) return 0;
    return port;
}

static void start(server_proc *s, const char *const *extra, int verbose) {
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/spam_server", tu_bin_dir());
    ck_assert_msg(access(prog, X_OK) == 0, "%s is missing: build the examples first (make examples)", prog);
    char err_path[] = "/tmp/llm_server_err_XXXXXX";
    int errfd = mkstemp(err_path);
    ck_assert_int_ge(errfd, 0);
    unlink(err_path);
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    const char *argv[32] = { prog, "--model", sc_model_path, "--host", "127.0.0.1", "--port", "0", "--threads", "2" };
    int k = 9;
    if (verbose) argv[k++] = "--verbose";
    for (int i = 0; extra && extra[i] && i < 14; i++) argv[k++] = extra[i];
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
    char line[256];
    s->port = read_port(out[0], line, sizeof line);
    close(out[0]);
    if (!s->port) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char *err = sc_stderr(s);
        close(s->err_fd);
        ck_abort_msg("spam_server did not start: stdout '%s'\nstderr:\n%s", line, err);
    }
}

void sc_start(server_proc *s, const char *const *extra) { start(s, extra, 1); }
void sc_start_quiet(server_proc *s, const char *const *extra) { start(s, extra, 0); }

int sc_stop(server_proc *s, int sig) {
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
        sc_sleep_ms(5);
    }
    return status;
}

void sc_stop_clean(server_proc *s, int sig) {
    int status = sc_stop(s, sig);
    char *err = sc_stderr(s);
    close(s->err_fd);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "spam_server after signal %d: exit %d, signal %d\nstderr:\n%s", sig,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0, err);
    free(err);
}

long sc_rss_kib(pid_t pid) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
    fclose(f);
    return v;
}

void sc_need_fds(long n) {
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if ((long)rl.rlim_cur >= n) return;
    ck_assert_msg(rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= n,
                  "this test needs %ld open files; the hard limit is %ld (ulimit -Hn)", n, (long)rl.rlim_max);
    rl.rlim_cur = (rlim_t)n;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* ------------------------------------------------------------ HTTP */

void sc_reply_free(reply *r) {
    cJSON_Delete(r->json);
    free(r->raw);
    memset(r, 0, sizeof *r);
}

int sc_dial(int port, const char *src) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    if (src) {
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, src, &a.sin_addr), 1);
        ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind %s: %s", src, strerror(errno));
    }
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int sc_connect_from(int port, const char *src) {
    int fd = sc_dial(port, src);
    ck_assert_msg(fd >= 0, "connect from %s: %s", src ? src : "any", strerror(errno));
    return fd;
}

int sc_connect(int port) { return sc_connect_from(port, NULL); }

void sc_send(int fd, const void *data, size_t len) {
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(fd, (const char *)data + sent, len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        sent += (size_t)w;
    }
}

/* Fills out from raw[0..n): status, body, JSON. */
static void parse_reply(char *raw, size_t n, reply *out) {
    out->raw = raw;
    out->status = 0;
    sscanf(raw, "HTTP/1.1 %d", &out->status);
    const char *sep = strstr(raw, "\r\n\r\n");
    out->body = sep ? sep + 4 : raw + n;
    out->body_len = (size_t)(raw + n - out->body);
    out->json = sep ? cJSON_Parse(out->body) : NULL;
}

void sc_read_until_close(int fd, reply *out) {
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
    parse_reply(buf, n, out);
    ck_assert_msg(out->status != 0, "not an HTTP/1.1 response: '%s'", buf);
    ck_assert_msg(strstr(buf, "\r\n\r\n") != NULL, "no end of headers in '%s'", buf);
}

/* The Content-Length of a header block, or -1. */
static long header_length(const char *raw, const char *end) {
    const char *p = raw;
    while ((p = strstr(p, "\r\n")) != NULL && p < end) {
        p += 2;
        if (strncasecmp(p, "Content-Length:", 15) == 0) return atol(p + 15);
    }
    return -1;
}

int sc_read_one(int fd, reply *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    long want = -2; /* bytes in all, once the headers are in */
    while (want < 0 || (long)n < want) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
        buf[n] = '\0';
        const char *sep = strstr(buf, "\r\n\r\n");
        if (sep && want < 0) {
            long len = header_length(buf, sep);
            want = (long)(sep + 4 - buf) + (len < 0 ? 0 : len);
        }
    }
    buf[n] = '\0';
    parse_reply(buf, n, out);
    return want >= 0 && (long)n >= want && out->status ? 0 : -1;
}

void sc_raw(int port, const char *req, size_t len, reply *out) {
    int fd = sc_connect(port);
    sc_send(fd, req, len);
    sc_read_until_close(fd, out);
}

void sc_http(int port, const char *method, const char *path, const char *content_type, const char *body,
             reply *out) {
    size_t blen = body ? strlen(body) : 0;
    size_t cap = blen + strlen(path) + 512;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, path);
    if (content_type) n += snprintf(req + n, cap - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (body) n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) memcpy(req + n, body, blen);
    sc_raw(port, req, (size_t)n + blen, out);
    free(req);
}

void sc_post(int port, const char *body, reply *out) {
    sc_http(port, "POST", "/v1/classify", "application/json", body, out);
}

int sc_post_head(char *buf, size_t cap, size_t len, int close) {
    return snprintf(buf, cap, "POST /v1/classify HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n", close ? "Connection: close\r\n" : "", len);
}

int sc_has_header(const reply *r, const char *line) {
    const char *end = strstr(r->raw, "\r\n\r\n");
    size_t n = strlen(line);
    for (const char *p = strstr(r->raw, "\r\n"); p && (!end || p < end); p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, line, n) == 0 && p[2 + n] == '\r') return 1;
    return 0;
}

int sc_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 :
                     (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        if (!len || n - i < len) return 0;
        unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        if (len > 1 && (u[i + 1] < lo || u[i + 1] > hi)) return 0;
        for (size_t k = 2; k < len; k++)
            if (u[i + k] < 0x80 || u[i + k] > 0xbf) return 0;
        i += len;
    }
    return 1;
}

void sc_assert_error(const reply *r, int status, const char *what) {
    ck_assert_msg(r->status == status, "%s: status %d, expected %d:\n%s", what, r->status, status, r->raw);
    ck_assert_msg(sc_has_header(r, "Content-Type: application/json"), "%s: not JSON:\n%s", what, r->raw);
    ck_assert_msg(sc_utf8_valid(r->body, r->body_len), "%s: the body is not UTF-8:\n%s", what, r->raw);
    const cJSON *e = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "error") : NULL;
    ck_assert_msg(cJSON_IsString(e) && e->valuestring[0], "%s: no {\"error\": ...} body:\n%s", what, r->raw);
}

void sc_assert_result(const cJSON *item, const char *text, const char *what) {
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(item, "label");
    const cJSON *prob = cJSON_GetObjectItemCaseSensitive(item, "probability");
    ck_assert_msg(cJSON_IsString(label) && cJSON_IsNumber(prob), "%s: not a result", what);
    float want = sc_local_predict(text, strlen(text));
    ck_assert_msg(fabs(prob->valuedouble - (double)want) <= 1e-6, "%s: probability %.9g, in process %.9g", what,
                  prob->valuedouble, (double)want);
    ck_assert_str_eq(label->valuestring, want >= 0.5f ? "spam" : "ham");
}

char *sc_body_text(const char *text) {
    cJSON *o = cJSON_CreateObject();
    ck_assert_ptr_nonnull(cJSON_AddStringToObject(o, "text", text));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(s);
    return s;
}

char *sc_body_texts(const char *const *texts, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "texts");
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < n; i++) ck_assert(cJSON_AddItemToArray(a, cJSON_CreateString(texts[i])));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(s);
    return s;
}
