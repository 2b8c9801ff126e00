/* What the spam_server tests share: a tiny model saved through the public
 * API, the server run as a process on 127.0.0.1, and a plain-socket HTTP
 * client that can come from other loopback addresses (127.0.0.2, ...) and
 * send exactly the bytes it is given. */
#ifndef LLM_TESTS_SERVER_CLIENT_H
#define LLM_TESTS_SERVER_CLIENT_H

#include <sys/types.h>
#include <cjson/cJSON.h>
#include "testutil.h"

/* The model's sequence length and its path (made by sc_make_model). */
#define SC_SEQ 20
extern char sc_model_path[128];
extern char sc_model_dir[64];

/* Checked fixture helpers: make the model once, remove its folder. */
void sc_make_model(void);
void sc_remove_model(void);

/* The probability this process gets for a text with the saved model. */
float sc_local_predict(const char *text, size_t len);

typedef struct server_proc {
    pid_t pid;
    int port;
    int err_fd;  /* its stderr: an unlinked temporary file */
} server_proc;

/* Starts spam_server on 127.0.0.1, port 0, --threads 2, with extra
 * arguments (NULL terminated, at most 14; --verbose unless quiet), and
 * reads its "listening on" line. The server gets SIGKILL if this test
 * process dies first. */
void sc_start(server_proc *s, const char *const *extra);
void sc_start_quiet(server_proc *s, const char *const *extra);

/* The first 64 KiB of what the server wrote to stderr (free it). */
char *sc_stderr(const server_proc *s);

/* Sends sig (unless 0) and waits (at most 10 s) for the exit; returns the
 * wait status. */
int sc_stop(server_proc *s, int sig);

/* Stops the server with sig (0: it was already sent) and asserts a clean
 * exit with status 0. */
void sc_stop_clean(server_proc *s, int sig);

/* The server's resident memory in KiB (VmRSS). */
long sc_rss_kib(pid_t pid);

/* Raises this process's open-file limit to at least n, or fails the test. */
void sc_need_fds(long n);

typedef struct reply {
    int status;
    char *raw;        /* the whole response */
    const char *body; /* points into raw */
    size_t body_len;
    cJSON *json;      /* the body parsed, or NULL */
} reply;

void sc_reply_free(reply *r);

/* A TCP connection to the server from source address src (NULL: any);
 * -1 with errno when connect fails. Receives and sends time out after 10 s. */
int sc_dial(int port, const char *src);
int sc_connect(int port);            /* sc_dial, asserting success */
int sc_connect_from(int port, const char *src);

/* Sends what it can: a send the server cut short is not an error. */
void sc_send(int fd, const void *data, size_t len);

/* Reads until the server closes (or 10 s pass), then closes fd and parses
 * the response. */
void sc_read_until_close(int fd, reply *out);

/* Reads one response (its headers and its Content-Length body) and leaves
 * fd open; 0, or -1 when the connection ended or timed out before a whole
 * response (out then holds what came, status 0 if nothing). */
int sc_read_one(int fd, reply *out);

/* Sends `len` bytes as they are and reads the answer until the close. */
void sc_raw(int port, const char *req, size_t len, reply *out);

/* One request with Connection: close; content_type NULL: no such header. */
void sc_http(int port, const char *method, const char *path, const char *content_type, const char *body,
             reply *out);
void sc_post(int port, const char *body, reply *out);

/* 1 when the response has this header line ("Connection: close"). */
int sc_has_header(const reply *r, const char *line);

/* 1 when s[0..n) is valid UTF-8. */
int sc_utf8_valid(const char *s, size_t n);

/* The reply is `status` with a JSON body {"error": "<non-empty>"} that is
 * valid UTF-8, and application/json. */
void sc_assert_error(const reply *r, int status, const char *what);

/* {"label": ..., "probability": p} matches this process's prediction. */
void sc_assert_result(const cJSON *item, const char *text, const char *what);

/* {"text": text} or {"texts": [...]}, escaped by cJSON (cJSON_free it). */
char *sc_body_text(const char *text);
char *sc_body_texts(const char *const *texts, int n);

/* "POST /v1/classify" headers for a JSON body of len bytes (keep-alive
 * unless close), into buf; returns their length. */
int sc_post_head(char *buf, size_t cap, size_t len, int close);

void sc_sleep_ms(int ms);

/* The hostile-client cases, in test_server_hostile.c. */
void sc_add_hostile_cases(Suite *s);

#endif /* LLM_TESTS_SERVER_CLIENT_H */
