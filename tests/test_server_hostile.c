/* spam_server against hostile and careless clients (issue 24), over
 * plain sockets on loopback. "127.0.0.2" and the like are other client
 * addresses on the same loopback interface, so that one attacking address
 * can be told from the client that checks the server still serves.
 *
 *   1 signals: a second SIGTERM/SIGINT during the drain is ignored
 *   2 one client cannot take the server down: connection limits in all and
 *     per address (503), a request deadline that trickling cannot extend
 *   3 the memory for request bodies is bounded (503 with Retry-After)
 *   4 the drain answers what is in progress with Connection: close,
 *     refuses new requests with 503, then new connections
 *   5 framing errors are the documented JSON; the ones libmicrohttpd
 *     answers itself are as docs/SERVER.md says
 *   6 strict JSON and UTF-8; error messages are valid UTF-8; routes match
 *     the raw path
 *   7 nothing on stderr without --verbose
 *   8 a FIFO or a file that claims 2 GiB is refused at once
 *
 * Latency and memory under the large attacks are measured by
 * bench/server_attack (make server-check), not here. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "server_client.h"

static const char *spam_text = "From: win@example.com\nSubject: free money\n\nclick here now to win cash";

/* A POST whose headers and first half of the body are sent: in progress. */
static int start_slow_post(int port, const char *body, int close) {
    char head[256];
    int n = sc_post_head(head, sizeof head, strlen(body), close);
    int fd = sc_connect(port);
    sc_send(fd, head, (size_t)n);
    sc_send(fd, body, strlen(body) / 2);
    return fd;
}

static void finish_slow_post(int fd, const char *body) {
    size_t half = strlen(body) / 2;
    sc_send(fd, body + half, strlen(body) - half);
}

/* 1 when the server has closed fd: within ms, whatever it sent is read
 * and the end of the stream follows. */
static int closed_by_server(int fd, int ms) {
    double t0 = tu_now();
    for (;;) {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return 1;
        if (n > 0) continue;
        int left = ms - (int)((tu_now() - t0) * 1000);
        if (left <= 0) return 0;
        struct pollfd p = { fd, POLLIN, 0 };
        poll(&p, 1, left);
    }
}

static void assert_503(const reply *r, const char *what) {
    sc_assert_error(r, 503, what);
    ck_assert_msg(sc_has_header(r, "Retry-After: 1"), "%s: no Retry-After:\n%s", what, r->raw);
    ck_assert_msg(sc_has_header(r, "Connection: close"), "%s: no Connection: close:\n%s", what, r->raw);
}

static void assert_health(int port, const char *what) {
    reply r;
    sc_http(port, "GET", "/healthz", NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "%s: /healthz answered %d:\n%s", what, r.status, r.raw);
    sc_reply_free(&r);
}

/* ------------------------------------------------------------ 1, 4: stopping */

/* What one keep-alive client saw while the server was stopped under it. */
typedef struct hammer_counts {
    int ok, unavailable, refused;
    int fresh_lost;      /* a new connection ended before any answer (its listener closed) */
    int keepalive_lost;  /* a kept-alive connection ended before answering: must not happen */
    int bad;             /* anything but a whole 200 or 503 JSON answer */
    char why[240];
} hammer_counts;

/* POSTs body on keep-alive connections until refused (or until): the
 * load a drain runs under. In a child process: no Check assertions. */
static void hammer(int port, const char *body, double until, hammer_counts *h) {
    char head[256];
    int hn = sc_post_head(head, sizeof head, strlen(body), 0);
    int fd = -1, reused = 0;
    while (tu_now() < until) {
        if (fd < 0) {
            fd = sc_dial(port, NULL);
            if (fd < 0) {
                if (errno == ECONNREFUSED || errno == ECONNRESET) h->refused++; /* RST to the SYN */
                else if (!h->bad++) snprintf(h->why, sizeof h->why, "connect: %s", strerror(errno));
                return;
            }
            reused = 0;
        }
        sc_send(fd, head, (size_t)hn);
        sc_send(fd, body, strlen(body));
        reply r;
        int whole = sc_read_one(fd, &r) == 0;
        int closes = whole && sc_has_header(&r, "Connection: close");
        if (!whole && r.status == 0) {
            if (reused) h->keepalive_lost++;
            else h->fresh_lost++;
        } else if (whole && r.status == 200 && cJSON_GetObjectItem(r.json, "probability")) {
            h->ok++;
        } else if (whole && r.status == 503 && cJSON_GetObjectItem(r.json, "error") && closes) {
            h->unavailable++;
        } else if (!h->bad++) {
            snprintf(h->why, sizeof h->why, "answer: %.200s", r.raw);
        }
        sc_reply_free(&r);
        if (!whole || closes) {
            close(fd);
            fd = -1;
        } else {
            reused = 1;
        }
    }
    if (fd >= 0) close(fd);
}

/* A second SIGTERM and a SIGINT during the drain, under load: the process
 * still exits 0, the requests in progress are answered, new ones get 503,
 * and no client on a kept-alive connection loses a request. */
START_TEST(second_signal_during_drain_is_ignored) {
    server_proc s;
    sc_start(&s, NULL);
    char *body = sc_body_text(spam_text);
    enum { KIDS = 4, SLOW = 3 };
    int pipes[KIDS][2];
    pid_t kids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        ck_assert_int_eq(pipe(pipes[k]), 0);
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            close(pipes[k][0]);
            hammer_counts h;
            memset(&h, 0, sizeof h);
            hammer(s.port, body, tu_now() + 30, &h);
            _exit(write(pipes[k][1], &h, sizeof h) == (ssize_t)sizeof h ? 0 : 1);
        }
        close(pipes[k][1]);
    }
    sc_sleep_ms(300);
    int slow[SLOW];
    for (int i = 0; i < SLOW; i++) slow[i] = start_slow_post(s.port, body, 0);
    sc_sleep_ms(200);
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    sc_sleep_ms(30);
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    sc_sleep_ms(30);
    ck_assert_int_eq(kill(s.pid, SIGINT), 0);
    sc_sleep_ms(200);
    reply r;
    sc_post(s.port, body, &r); /* the slow requests keep the drain open */
    assert_503(&r, "a new request during the drain");
    sc_reply_free(&r);
    for (int i = 0; i < SLOW; i++) {
        finish_slow_post(slow[i], body);
        ck_assert_int_eq(sc_read_one(slow[i], &r), 0);
        ck_assert_msg(r.status == 200 && sc_has_header(&r, "Connection: close"), "request in progress %d:\n%s", i,
                      r.raw);
        sc_assert_result(r.json, spam_text, "a request in progress during the drain");
        sc_reply_free(&r);
        close(slow[i]);
    }
    sc_stop_clean(&s, 0);
    hammer_counts all;
    memset(&all, 0, sizeof all);
    for (int k = 0; k < KIDS; k++) {
        hammer_counts h;
        ck_assert_int_eq(read(pipes[k][0], &h, sizeof h), (ssize_t)sizeof h);
        close(pipes[k][0]);
        int st;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
        ck_assert_msg(h.bad == 0, "client %d: %d bad answers, first: %s", k, h.bad, h.why);
        ck_assert_msg(h.keepalive_lost == 0, "client %d: %d requests on kept-alive connections got no answer", k,
                      h.keepalive_lost);
        all.ok += h.ok;
        all.unavailable += h.unavailable;
        all.refused += h.refused;
    }
    ck_assert_msg(all.ok > 0 && all.unavailable + all.refused > 0, "ok %d, 503 %d, refused %d", all.ok,
                  all.unavailable, all.refused);
    cJSON_free(body);
}
END_TEST

/* The drain step by step: in progress -> 200 with Connection: close; a new
 * request on an idle kept-alive connection and on a new connection -> 503;
 * after the exit, new connections are refused. */
START_TEST(drain_answers_closes_and_refuses) {
    server_proc s;
    sc_start(&s, NULL);
    char *body = sc_body_text(spam_text);
    static const char health[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int idle = sc_connect(s.port);
    sc_send(idle, health, sizeof health - 1);
    reply r;
    ck_assert_int_eq(sc_read_one(idle, &r), 0);
    ck_assert_msg(r.status == 200 && !sc_has_header(&r, "Connection: close"), "%s", r.raw);
    sc_reply_free(&r);
    int slow = start_slow_post(s.port, body, 0);
    sc_sleep_ms(200);
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    sc_sleep_ms(200);

    sc_post(s.port, body, &r);
    assert_503(&r, "a new connection during the drain");
    sc_reply_free(&r);
    char head[256];
    int hn = sc_post_head(head, sizeof head, strlen(body), 0);
    sc_send(idle, head, (size_t)hn);
    sc_send(idle, body, strlen(body));
    ck_assert_int_eq(sc_read_one(idle, &r), 0);
    assert_503(&r, "a kept-alive connection during the drain");
    sc_reply_free(&r);
    ck_assert_msg(closed_by_server(idle, 2000), "the kept-alive connection stayed open after its 503");
    close(idle);

    finish_slow_post(slow, body);
    ck_assert_int_eq(sc_read_one(slow, &r), 0);
    ck_assert_msg(r.status == 200 && sc_has_header(&r, "Connection: close"), "%s", r.raw);
    sc_assert_result(r.json, spam_text, "the request in progress");
    sc_reply_free(&r);
    close(slow);
    sc_stop_clean(&s, 0);
    ck_assert_int_eq(sc_dial(s.port, NULL), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    cJSON_free(body);
}
END_TEST

/* ------------------------------------------------------------ 2: limits */

/* 1020 idle connections from one address (enough to exhaust libmicrohttpd's
 * default limit) leave the server to everyone else: the per-address limit
 * turns the rest away. */
START_TEST(idle_connections_do_not_starve_others) {
    enum { IDLE = 1020 };
    sc_need_fds(IDLE + 64);
    server_proc s;
    sc_start_quiet(&s, NULL);
    static int fds[IDLE];
    int opened = 0;
    for (int i = 0; i < IDLE; i++) {
        fds[i] = sc_dial(s.port, "127.0.0.2");
        opened += fds[i] >= 0;
    }
    ck_assert_int_gt(opened, 64);
    assert_health(s.port, "with 1020 idle connections from 127.0.0.2");
    /* past the grace time, only the served ones (64 by default) are open */
    sc_sleep_ms(1500);
    int open_now = 0;
    for (int i = 0; i < IDLE; i++)
        if (fds[i] >= 0 && !closed_by_server(fds[i], 0)) open_now++;
    ck_assert_msg(open_now <= 64, "%d of the idle connections are still open", open_now);
    assert_health(s.port, "after that");
    for (int i = 0; i < IDLE; i++)
        if (fds[i] >= 0) close(fds[i]);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* Reads what the server sends on fd while trickle (if not NULL) is sent one
 * byte every 100 ms, for at most 6 s: the server must answer and close
 * first. Returns the reply (status 0 if none came). */
static void trickle_until_answer(int fd, const char *trickle, reply *out) {
    double t0 = tu_now();
    size_t k = 0;
    while (tu_now() - t0 < 6) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) > 0) break;
        if (trickle && trickle[k]) sc_send(fd, trickle + k++, 1);
        else if (trickle) k = 0; /* round again: the bytes never end */
    }
    sc_read_until_close(fd, out);
}

/* --request-timeout 1: a request trickled one byte at a time, a body
 * shorter than its Content-Length, a TLS ClientHello and an idle kept-alive
 * connection are all answered 408 (JSON) and closed, whatever keeps
 * arriving. */
START_TEST(trickling_clients_are_cut_at_the_deadline) {
    const char *extra[] = { "--request-timeout", "1", NULL };
    server_proc s;
    sc_start(&s, extra);
    reply r;
    int fd = sc_connect(s.port);
    sc_send(fd, "GET /healthz HTTP/1.1\r\n", 23);
    trickle_until_answer(fd, "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &r);
    sc_assert_error(&r, 408, "trickled headers");
    ck_assert_msg(sc_has_header(&r, "Connection: close"), "%s", r.raw);
    sc_reply_free(&r);

    fd = sc_connect(s.port);
    char head[256];
    int hn = sc_post_head(head, sizeof head, 100, 0);
    sc_send(fd, head, (size_t)hn);
    sc_send(fd, "{\"text\": \"", 10);
    trickle_until_answer(fd, "a", &r);
    sc_assert_error(&r, 408, "a body trickled and shorter than its Content-Length");
    sc_reply_free(&r);

    fd = sc_connect(s.port);
    sc_send(fd, head, (size_t)hn);
    sc_send(fd, "{\"text\": \"", 10);
    trickle_until_answer(fd, NULL, &r);
    sc_assert_error(&r, 408, "a body shorter than its Content-Length");
    sc_reply_free(&r);

    static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
                                           0x5a, 0x17, 0x00, 0x00, 0x9c, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0xff };
    fd = sc_connect(s.port);
    sc_send(fd, hello, sizeof hello);
    trickle_until_answer(fd, NULL, &r);
    sc_assert_error(&r, 408, "a TLS ClientHello");
    sc_reply_free(&r);

    fd = sc_connect(s.port);
    static const char health[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    sc_send(fd, health, sizeof health - 1);
    ck_assert_int_eq(sc_read_one(fd, &r), 0);
    ck_assert_int_eq(r.status, 200);
    sc_reply_free(&r);
    trickle_until_answer(fd, NULL, &r);
    sc_assert_error(&r, 408, "an idle kept-alive connection");
    sc_reply_free(&r);
    assert_health(s.port, "after the slow clients");
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* --max-connections 4 --max-connections-per-ip 2: past either limit a
 * request gets 503 JSON with Retry-After, and a connection that sends
 * nothing gets it after a second; a freed slot serves again. */
START_TEST(connection_limits_answer_503) {
    const char *extra[] = { "--max-connections", "4", "--max-connections-per-ip", "2", NULL };
    server_proc s;
    sc_start(&s, extra);
    char *body = sc_body_text(spam_text);
    char req[1024];
    int n = sc_post_head(req, sizeof req, strlen(body), 1);
    memcpy(req + n, body, strlen(body));
    n += (int)strlen(body);
    int a1 = sc_connect_from(s.port, "127.0.0.1"), a2 = sc_connect_from(s.port, "127.0.0.1");
    sc_sleep_ms(100);
    reply r;
    int fd = sc_connect_from(s.port, "127.0.0.1");
    sc_send(fd, req, (size_t)n);
    sc_read_until_close(fd, &r);
    assert_503(&r, "a third connection from one address");
    sc_reply_free(&r);

    int b1 = sc_connect_from(s.port, "127.0.0.3"), b2 = sc_connect_from(s.port, "127.0.0.4");
    sc_sleep_ms(100);
    fd = sc_connect_from(s.port, "127.0.0.5");
    sc_send(fd, req, (size_t)n);
    sc_read_until_close(fd, &r);
    assert_503(&r, "a fifth connection");
    sc_reply_free(&r);

    fd = sc_connect_from(s.port, "127.0.0.6"); /* sends nothing */
    sc_read_until_close(fd, &r);
    assert_503(&r, "a fifth connection that sends nothing");
    sc_reply_free(&r);

    close(a1);
    sc_sleep_ms(200);
    fd = sc_connect_from(s.port, "127.0.0.7");
    sc_send(fd, req, (size_t)n);
    sc_read_until_close(fd, &r);
    ck_assert_msg(r.status == 200, "a freed slot: %s", r.raw);
    sc_reply_free(&r);
    close(a2);
    close(b1);
    close(b2);
    cJSON_free(body);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* ------------------------------------------------------------ 3: memory */

/* A body of exactly len bytes: {"text":"xxx..."}. */
static char *body_of(size_t len) {
    char *b = malloc(len + 1);
    ck_assert_ptr_nonnull(b);
    memset(b, 'x', len);
    memcpy(b, "{\"text\":\"", 9);
    memcpy(b + len - 2, "\"}", 2);
    b[len] = '\0';
    return b;
}

/* --max-body-memory 3 x --max-body: three bodies in progress hold it all;
 * a fourth (announced) gets 503 at once, a chunked one once it is over;
 * when one finishes there is room again. */
START_TEST(body_memory_budget_answers_503) {
    enum { MAX = 65536 };
    const char *extra[] = { "--max-body", "65536", "--max-body-memory", "196608", NULL };
    server_proc s;
    sc_start(&s, extra);
    char *body = body_of(MAX);
    char head[256];
    int hn = sc_post_head(head, sizeof head, MAX, 0);
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = sc_connect(s.port);
        sc_send(held[i], head, (size_t)hn);
        sc_send(held[i], body, MAX - 100);
    }
    sc_sleep_ms(300);
    reply r;
    int fd = sc_connect(s.port);
    sc_send(fd, head, (size_t)hn);
    ck_assert_int_eq(sc_read_one(fd, &r), 0);
    assert_503(&r, "a body over the memory budget");
    sc_reply_free(&r);
    close(fd);

    static const char chunked[] = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "e\r\n{\"text\": \"ab\"}\r\n0\r\n\r\n";
    sc_raw(s.port, chunked, sizeof chunked - 1, &r);
    sc_assert_error(&r, 503, "a chunked body over the memory budget");
    sc_reply_free(&r);
    assert_health(s.port, "with the budget taken");

    sc_send(held[0], body + MAX - 100, 100);
    ck_assert_int_eq(sc_read_one(held[0], &r), 0);
    ck_assert_msg(r.status == 200, "a held body, completed: %s", r.raw);
    sc_reply_free(&r);
    fd = sc_connect(s.port);
    sc_send(fd, head, (size_t)hn);
    sc_send(fd, body, MAX);
    ck_assert_int_eq(sc_read_one(fd, &r), 0);
    ck_assert_msg(r.status == 200, "room again: %s", r.raw);
    sc_reply_free(&r);
    close(fd);
    for (int i = 0; i < 3; i++) close(held[i]);
    free(body);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* ------------------------------------------------------------ 5: framing */

START_TEST(framing_errors_are_json) {
    server_proc s;
    sc_start(&s, NULL);
    static const struct { const char *req; int status; const char *what; } cases[] = {
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "Transfer-Encoding: gzip, chunked" },
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: identity\r\n\r\n{}", 501, "Transfer-Encoding: identity" },
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400, "Content-Length and chunked" },
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          "Content-Length: 2\r\n\r\n{}", 400, "two Content-Length headers" },
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", 400, "two Content-Type headers" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r;
        sc_raw(s.port, cases[i].req, strlen(cases[i].req), &r);
        sc_assert_error(&r, cases[i].status, cases[i].what);
        ck_assert_msg(sc_has_header(&r, "Connection: close"), "%s: %s", cases[i].what, r.raw);
        sc_reply_free(&r);
    }
    assert_health(s.port, "after the framing errors");
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* What libmicrohttpd 0.9.75 answers itself, before the server sees the
 * request (docs/SERVER.md lists these): the status is right and the
 * connection is closed, but the body is its own HTML. */
START_TEST(libmicrohttpd_errors_as_documented) {
    server_proc s;
    sc_start_quiet(&s, NULL);
    static char big_url[50000], big_header[50000];
    memcpy(big_url, "GET /", 5);
    memset(big_url + 5, 'a', 41000);
    strcpy(big_url + 41005, " HTTP/1.1\r\nHost: x\r\n\r\n");
    strcpy(big_header, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    size_t k = strlen(big_header);
    memset(big_header + k, 'b', 41000);
    strcpy(big_header + k + 41000, "\r\n\r\n");
    const struct { const char *req; int status; const char *what; } cases[] = {
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n",
          400, "Content-Length: abc" },
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400, "a bad chunk size" },
        { "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413,
          "a Content-Length past 2^64" },
        { "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0" },
        { big_url, 414, "a 41 kB URL" },
        { big_header, 431, "a 41 kB header" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r;
        sc_raw(s.port, cases[i].req, strlen(cases[i].req), &r);
        ck_assert_msg(r.status == cases[i].status, "%s: status %d, expected %d:\n%.300s", cases[i].what, r.status,
                      cases[i].status, r.raw);
        ck_assert_msg(sc_has_header(&r, "Connection: close"), "%s: %.300s", cases[i].what, r.raw);
        sc_reply_free(&r);
    }
    assert_health(s.port, "after libmicrohttpd's errors");
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* ------------------------------------------------------------ 6: strict input */

START_TEST(json_is_strict) {
    server_proc s;
    sc_start(&s, NULL);
    static const struct { const char *body; const char *what; } bad[] = {
        { "{\"text\": \"a\xff" "b\"}", "a byte that is not UTF-8" },
        { "{\"text\": \"caf\xc3\"}", "a cut UTF-8 character" },
        { "{\"text\": \"\xc0\xaf\"}", "an overlong UTF-8 form" },
        { "{\"text\": \"\xed\xa0\x80\"}", "a UTF-8 surrogate" },
        { "{\"text\": \"a\x01" "b\"}", "a raw control character" },
        { "{\"text\": \"line\nbreak\"}", "a raw newline in a string" },
        { "{\"text\": \"a\", \"x\": 1e99999}", "a number past a double" },
        { "{\"text\": \"a\", \"x\": -1e400}", "a negative number past a double" },
        { "{\"text\": \"a\", \"text\": \"b\"}", "a repeated \"text\"" },
        { "{\"texts\": [\"a\"], \"o\": {\"k\": 1, \"k\": 2}}", "a repeated key inside" },
        { "{\"text\": \"\\u12G4\"}", "a \\u escape with a bad digit" },
        { "{\"text\": \"\\x41\"}", "an unknown escape" },
        { "{\"text\": \"\\udc00\"}", "a lone low surrogate escape" },
        { "{\"text\": \"\\ud800x\"}", "a high surrogate escape alone" },
        { "{\"text\": \"a\",}", "a trailing comma" },
        { "{\"text\": \"a\", \"x\": 01}", "a leading zero" },
        { "{\"text\": \"a\", \"x\": .5}", "a number without its integer part" },
        { "{\"text\": \"a\", \"x\": tru}", "a cut literal" },
        { "{'text': 'a'}", "single quotes" },
    };
    reply r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc_post(s.port, bad[i].body, &r);
        sc_assert_error(&r, 400, bad[i].what);
        sc_reply_free(&r);
    }
    /* and what is valid stays valid */
    sc_post(s.port, "{\"text\": \"caf\\u00e9 \\ud83c\\udf89 \xe2\x82\xac\", \"x\": 1e308, "
            "\"y\": [true, false, null, -0.5e-3, 0, {}], \"z\": {\"text\": 1}}", &r);
    ck_assert_msg(r.status == 200, "%s", r.raw);
    sc_assert_result(r.json, "caf\xc3\xa9 \xf0\x9f\x8e\x89 \xe2\x82\xac", "valid JSON");
    sc_reply_free(&r);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* Routes match the raw path; every message, whatever bytes the client
 * sent, is valid UTF-8 JSON; the content type must really be JSON. */
START_TEST(routes_raw_messages_utf8_content_type_strict) {
    server_proc s;
    sc_start(&s, NULL);
    reply r;
    static const char *const not_found[] = { "/%68ealthz", "/healthz%00junk", "/healthz/", "//healthz",
                                             "/v1/classify%2F", "/V1/classify" };
    for (size_t i = 0; i < sizeof not_found / sizeof not_found[0]; i++) {
        sc_http(s.port, "GET", not_found[i], NULL, NULL, &r);
        sc_assert_error(&r, 404, not_found[i]);
        sc_reply_free(&r);
    }
    sc_http(s.port, "GET", "/healthz?probe=1", NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "a query string: %s", r.raw);
    sc_reply_free(&r);

    /* raw bytes in the path and the method, and a path of 150 two-byte
       characters (cut in the message) */
    static char path[400];
    strcpy(path, "/caf\xc3");
    for (int i = 0; i < 150; i++) strcat(path, "\xc3\xa9");
    sc_http(s.port, "GET", path, NULL, NULL, &r);
    sc_assert_error(&r, 404, "raw bytes in the path");
    sc_reply_free(&r);
    static const char odd_method[] = "G\xff\x01T /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    sc_raw(s.port, odd_method, sizeof odd_method - 1, &r);
    sc_assert_error(&r, 404, "raw bytes in the method");
    sc_reply_free(&r);

    static const struct { const char *ct; int status; } types[] = {
        { "application/\xff\xfe", 415 },
        { "application/json garbage", 415 },
        { NULL, 415 },
        { "application/json; charset=latin1", 415 },
        { "application/json;", 415 },
        { "application/jsonx", 415 },
        { "text/json", 415 },
        { "application/json; charset=\"UTF-8\"", 200 },
        { "application/json ; charset=utf-8", 200 },
        { "application/vnd.example+json", 200 },
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        sc_http(s.port, "POST", "/v1/classify", types[i].ct, "{\"text\": \"a\"}", &r);
        if (types[i].status == 200) ck_assert_msg(r.status == 200, "'%s': %s", types[i].ct, r.raw);
        else sc_assert_error(&r, types[i].status, types[i].ct ? types[i].ct : "no Content-Type");
        sc_reply_free(&r);
    }
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* ------------------------------------------------------------ 7: stderr */

START_TEST(no_stderr_noise_without_verbose) {
    server_proc s;
    sc_start_quiet(&s, NULL);
    for (int i = 0; i < 20; i++) {
        int fd = sc_connect(s.port);
        static const char part[] = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"te";
        sc_send(fd, part, sizeof part - 1);
        sc_sleep_ms(5);
        close(fd);
        fd = sc_connect(s.port);
        sc_send(fd, "GET /heal", 9);
        close(fd);
    }
    reply r;
    static const char bad_cl[] = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n";
    sc_raw(s.port, bad_cl, sizeof bad_cl - 1, &r);
    sc_reply_free(&r);
    assert_health(s.port, "after the aborted clients");
    sc_sleep_ms(100);
    char *err = sc_stderr(&s);
    ck_assert_msg(err[0] == '\0', "stderr without --verbose:\n%s", err);
    free(err);
    sc_stop_clean(&s, SIGTERM);
}
END_TEST

/* ------------------------------------------------------------ 8: model files */

/* Runs prog with args (NULL terminated), stdin /dev/null, stderr captured;
 * kills it after 10 s. Returns the wait status; *maxrss_kib is how far its
 * peak resident memory went past this process's (a forked child's peak
 * counts the pages it shared with its parent before the exec). */
static int run_with_limit(const char *const *args, char *err, size_t errlen, long *maxrss_kib) {
    char errp[] = "/tmp/llm_server_run_XXXXXX";
    int efd = mkstemp(errp);
    ck_assert_int_ge(efd, 0);
    unlink(errp);
    long parent_kib = sc_rss_kib(getpid());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        if (dn < 0 || dup2(dn, 0) < 0 || dup2(dn, 1) < 0 || dup2(efd, 2) < 0) _exit(127);
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    double t0 = tu_now();
    for (;;) {
        pid_t w = wait4(pid, &st, WNOHANG, &ru);
        if (w == pid) break;
        if (tu_now() - t0 > 10) {
            kill(pid, SIGKILL);
            wait4(pid, &st, 0, &ru);
            break;
        }
        sc_sleep_ms(5);
    }
    ssize_t n = pread(efd, err, errlen - 1, 0);
    err[n > 0 ? n : 0] = '\0';
    close(efd);
    *maxrss_kib = ru.ru_maxrss - parent_kib;
    return st;
}

/* A FIFO as the model makes spam_server and spam_predict fail at once
 * (open() would wait for a writer forever); a file whose header claims a
 * 2 GiB tensor (a hole on disk) is refused without reading it. */
START_TEST(unusable_model_files_are_refused_at_once) {
    char fifo[200], sparse[200], server[4200], predict[4200], err[4096];
    snprintf(fifo, sizeof fifo, "%s/fifo.safetensors", sc_model_dir);
    snprintf(sparse, sizeof sparse, "%s/sparse.safetensors", sc_model_dir);
    snprintf(server, sizeof server, "%s/spam_server", tu_bin_dir());
    snprintf(predict, sizeof predict, "%s/spam_predict", tu_bin_dir());
    unlink(fifo);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    long rss;
    const char *serve_fifo[] = { server, "--model", fifo, "--port", "0", NULL };
    int st = run_with_limit(serve_fifo, err, sizeof err, &rss);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(err, "not a regular file"),
                  "spam_server --model FIFO: status %d\n%s", st, err);
    const char *predict_fifo[] = { predict, "--model", fifo, "/dev/null", NULL };
    st = run_with_limit(predict_fifo, err, sizeof err, &rss);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(err, "not a regular file"),
                  "spam_predict --model FIFO: status %d\n%s", st, err);
    unlink(fifo);

    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[536870912],\"data_offsets\":[0,2147483648]}}";
    size_t hn = (sizeof hdr - 1 + 7) / 8 * 8;
    unsigned char size8[8];
    for (int i = 0; i < 8; i++) size8[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    int fd = open(sparse, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, size8, 8), 8);
    ck_assert_int_eq(write(fd, hdr, sizeof hdr - 1), (ssize_t)(sizeof hdr - 1));
    ck_assert_int_eq(write(fd, "        ", hn - (sizeof hdr - 1)), (ssize_t)(hn - (sizeof hdr - 1)));
    ck_assert_int_eq(ftruncate(fd, (off_t)(8 + hn + (UINT64_C(1) << 31))), 0);
    close(fd);
    const char *serve_sparse[] = { server, "--model", sparse, "--port", "0", NULL };
    st = run_with_limit(serve_sparse, err, sizeof err, &rss);
    unlink(sparse);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(err, "not a libllm model"),
                  "spam_server --model 2 GiB: status %d\n%s", st, err);
    ck_assert_msg(rss < 50 * 1024, "spam_server --model 2 GiB: peak RSS %ld KiB past the test's", rss);
}
END_TEST

void sc_add_hostile_cases(Suite *s) {
    TCase *tc = tcase_create("hostile");
    tcase_add_unchecked_fixture(tc, sc_make_model, sc_remove_model);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, second_signal_during_drain_is_ignored);
    tcase_add_test(tc, drain_answers_closes_and_refuses);
    tcase_add_test(tc, idle_connections_do_not_starve_others);
    tcase_add_test(tc, trickling_clients_are_cut_at_the_deadline);
    tcase_add_test(tc, connection_limits_answer_503);
    tcase_add_test(tc, body_memory_budget_answers_503);
    tcase_add_test(tc, framing_errors_are_json);
    tcase_add_test(tc, libmicrohttpd_errors_as_documented);
    tcase_add_test(tc, json_is_strict);
    tcase_add_test(tc, routes_raw_messages_utf8_content_type_strict);
    tcase_add_test(tc, no_stderr_noise_without_verbose);
    tcase_add_test(tc, unusable_model_files_are_refused_at_once);
    suite_add_tcase(s, tc);
}
