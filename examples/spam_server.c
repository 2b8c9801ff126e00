/* spam_server: an HTTP/1.1 JSON service that classifies messages with a model
 * saved by spam_train (libmicrohttpd for HTTP, cJSON for JSON):
 *
 *   spam_server --model spam.safetensors [--host 127.0.0.1] [--port 8080] [--threads N]
 *
 *   POST /v1/classify  {"text": "..."}          -> {"label": "spam", "probability": 0.97}
 *   POST /v1/classify  {"texts": ["...", ...]}  -> {"results": [{"label": ..., "probability": ...}, ...]}
 *   GET  /healthz                               -> {"status": "ok"}
 *
 * A text is raw message bytes (RFC 822, run through the model's e-mail
 * reader when it was trained on mail) or plain text; "probability" is the
 * model's probability of its second class (spam), "label" the class it gives
 * at the threshold (a "\u0000" escape ends a text: it is a C string).
 * Every error the server writes is a JSON object {"error": "..."} (400
 * malformed JSON, invalid UTF-8 or wrong fields, 404 unknown route, 405 wrong
 * method with an Allow header, 408 a request not received in time, 413 body
 * over --max-body, 415 a content type other than JSON, 501 a transfer
 * coding other than chunked, 503 with Retry-After at a connection limit, over
 * the request-body memory budget or while stopping, 500 when the model
 * fails); the few libmicrohttpd answers itself are listed in docs/SERVER.md.
 *
 * The model is loaded once and shared: --threads worker threads each serve
 * their connections and run the model for them at the same time. Hostile
 * clients are bounded (docs/SERVER.md): connections in all and per client
 * address, a deadline for each request that trickled bytes do not extend,
 * and a budget for the request bodies held in memory at once. On startup
 * the program prints "listening on http://HOST:PORT" on stdout (--port 0
 * picks a free port); SIGINT or SIGTERM drain it: requests in progress are
 * answered (with Connection: close), new ones get 503, and it exits with
 * status 0 once they are done or --drain-timeout has passed; further
 * signals during the drain are ignored. */
#include "common.h"
#include "strict_json.h"

#include <microhttpd.h>
#include <cjson/cJSON.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *prog = "spam_server";

#define SERVER_MAX_TEXTS 256                   /* texts in one {"texts": [...]} */
#define SERVER_DEFAULT_MAX_BODY (1u << 20)     /* bytes of one request body */
#define SERVER_DEFAULT_BODY_MEMORY (64u << 20) /* bytes of request bodies held at once */
#define SERVER_DEFAULT_CONNECTIONS 512         /* connections served at once */
#define SERVER_DEFAULT_PER_IP 64               /* of them from one client address */
#define SERVER_DEFAULT_REQUEST_TIMEOUT_S 10    /* to receive one request (or idle) */
#define SERVER_DEFAULT_DRAIN_S 5               /* on SIGINT/SIGTERM, at most */
#define SERVER_REFUSE_GRACE_S 1.0   /* a connection over a limit waits this long for its 503 */
#define SERVER_LINGER_S 0.25        /* on stopping, idle time that lets a keep-alive client's next request in */
#define SERVER_TICK_MS 50           /* how often deadlines are checked */

typedef struct server_opts {
    const char *host;
    const char *model_path;
    long long port;
    long long threads;          /* HTTP worker threads */
    long long backend_threads;  /* the backend's own CPU threads */
    long long max_body;
    long long body_memory;      /* the request-body budget */
    long long max_connections;
    long long max_per_ip;       /* 0: no per-address limit */
    long long request_timeout;  /* seconds */
    long long drain_timeout;    /* seconds */
    double threshold;
    int threshold_set;          /* --threshold given: it wins over the model's */
    llm_backend_kind backend;
    int verbose;
} server_opts;

/* ------------------------------------------------------------ options */

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors [options]\n"
        "\n"
        "Serves the model over HTTP/1.1 with JSON bodies:\n"
        "  POST /v1/classify  {\"text\": \"...\"} or {\"texts\": [\"...\", ...]} (at most %d)\n"
        "  GET  /healthz\n"
        "Prints \"listening on http://HOST:PORT\" once it accepts connections. SIGINT or\n"
        "SIGTERM drain it: requests in progress are answered, new ones get 503, and it\n"
        "exits with status 0 (at most --drain-timeout later; more signals are ignored).\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --host H             address to listen on [127.0.0.1]\n"
        "  --port P             TCP port, 0 = any free one [8080]\n"
        "  --threads N          HTTP worker threads, each running the model [all cores]\n"
        "  --backend-threads N  the backend's CPU threads per model call, 0 = all cores [1]\n"
        "  --threshold T        probabilities >= T give the second class [the model's\n"
        "                       stored threshold (spam_train --threshold), else 0.5]\n"
        "  --backend B          cpu or cuda [cpu]\n"
        "limits (docs/SERVER.md; over a limit the answer is JSON with a 4xx/503 status):\n"
        "  --max-body BYTES     largest request body, larger ones get 413 [%u]\n"
        "  --max-body-memory BYTES\n"
        "                       request bodies held in memory at once, all connections\n"
        "                       together; past it 503 with Retry-After [%u]\n"
        "  --max-connections N  connections served at once; more get 503 [%d]\n"
        "  --max-connections-per-ip N\n"
        "                       of them from one client address, 0 = no limit [%d]\n"
        "  --request-timeout S  seconds to receive a whole request (headers and body),\n"
        "                       counted from the connection's start or its previous\n"
        "                       response, whatever trickles in; also the keep-alive\n"
        "                       idle time; late requests get 408 [%d]\n"
        "  --drain-timeout S    on SIGINT/SIGTERM, seconds to finish the requests in\n"
        "                       progress before the rest get 503 [%d]\n"
        "  --verbose            log one line per request, and libmicrohttpd's messages,\n"
        "                       on stderr\n"
        "  --help               this text\n",
        prog, SERVER_MAX_TEXTS, SERVER_DEFAULT_MAX_BODY, SERVER_DEFAULT_BODY_MEMORY, SERVER_DEFAULT_CONNECTIONS,
        SERVER_DEFAULT_PER_IP, SERVER_DEFAULT_REQUEST_TIMEOUT_S, SERVER_DEFAULT_DRAIN_S);
}

static void default_opts(server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = cores < 1 ? 1 : cores > 64 ? 64 : cores;
    o->backend_threads = 1;
    o->max_body = SERVER_DEFAULT_MAX_BODY;
    o->body_memory = SERVER_DEFAULT_BODY_MEMORY;
    o->max_connections = SERVER_DEFAULT_CONNECTIONS;
    o->max_per_ip = SERVER_DEFAULT_PER_IP;
    o->request_timeout = SERVER_DEFAULT_REQUEST_TIMEOUT_S;
    o->drain_timeout = SERVER_DEFAULT_DRAIN_S;
    o->threshold = 0.5;
    o->backend = LLM_BACKEND_CPU;
}

/* One "--name VALUE" integer option in [lo, hi]: 1 when argv[i] was it. */
static int int_option(ex_args *a, const char *name, long long lo, long long hi, long long *out) {
    const char *v = NULL;
    if (!ex_arg_match(a, name, &v)) return 0;
    if (!a->bad) ex_parse_int(a, name, v, lo, hi, out);
    return 1;
}

static int parse_args(int argc, char **argv, server_opts *o) {
    default_opts(o);
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        const char *arg = argv[a.i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--host", &v)) { if (!a.bad) o->host = v; }
        else if (int_option(&a, "--port", 0, 65535, &o->port)) {}
        else if (int_option(&a, "--threads", 1, 1024, &o->threads)) {}
        else if (int_option(&a, "--backend-threads", 0, 1024, &o->backend_threads)) {}
        else if (int_option(&a, "--max-body", 1, 1ll << 30, &o->max_body)) {}
        else if (int_option(&a, "--max-body-memory", 1, 1ll << 40, &o->body_memory)) {}
        else if (int_option(&a, "--max-connections", 1, 1000000, &o->max_connections)) {}
        else if (int_option(&a, "--max-connections-per-ip", 0, 1000000, &o->max_per_ip)) {}
        else if (int_option(&a, "--request-timeout", 1, 86400, &o->request_timeout)) {}
        else if (int_option(&a, "--drain-timeout", 0, 86400, &o->drain_timeout)) {}
        else if (ex_arg_match(&a, "--threshold", &v)) { if (!a.bad) ex_parse_real(&a, "--threshold", v, 0, 0, 1, 0, &o->threshold); o->threshold_set = 1; }
        else if (ex_arg_match(&a, "--backend", &v)) { if (!a.bad) ex_parse_backend(&a, v, &o->backend); }
        else if (ex_arg_match(&a, "--verbose", NULL)) { o->verbose = 1; }
        else if (arg[0] == '-') {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
            a.bad = 1;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, arg);
            a.bad = 1;
        }
    }
    if (!a.bad && !o->model_path) { fprintf(stderr, "%s: --model M.safetensors is required\n", prog); a.bad = 1; }
    if (!a.bad && !o->host[0]) { fprintf(stderr, "%s: --host is empty\n", prog); a.bad = 1; }
    if (!a.bad && o->body_memory < o->max_body) {
        fprintf(stderr, "%s: --max-body-memory %lld is smaller than --max-body %lld: no body would fit\n", prog,
                o->body_memory, o->max_body);
        a.bad = 1;
    }
    return a.bad ? EX_USAGE : 0;
}

/* ------------------------------------------------------------ signals */

/* SIGINT and SIGTERM only write their number to a pipe that the main
 * thread polls. A handler, not a blocked mask and sigwait: OpenBLAS starts
 * its threads when the library loads, before main runs, with every signal
 * unblocked, so the kernel may deliver the signal to one of them; with a
 * handler installed that is harmless wherever it runs. */
static int signal_pipe[2] = { -1, -1 };

static void on_stop_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(signal_pipe[1], &b, 1); /* a full pipe already holds a signal */
    (void)w;
    errno = saved;
}

static int install_signal_handlers(void) {
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill the server */
    return 0;
}

/* Waits up to ms for a stop signal; returns its number, or 0. */
static int next_signal(int ms) {
    struct pollfd p = { signal_pipe[0], POLLIN, 0 };
    if (poll(&p, 1, ms) <= 0) return 0;
    unsigned char b = 0;
    return read(signal_pipe[0], &b, 1) == 1 ? b : 0;
}

/* ------------------------------------------------------------ connections */

/* Where a connection is in its current request. The request deadline
 * applies while it is IDLE or RECEIVING; a request being computed (BUSY) or
 * answered is left alone until the drain's deadline. */
typedef enum conn_phase { PHASE_IDLE, PHASE_RECEIVING, PHASE_BUSY, PHASE_ANSWERED } conn_phase;

/* The guard's record of one TCP connection, from libmicrohttpd's STARTED
 * notification to CLOSED. Its fields are read and written under the
 * guard's lock; the socket stays open while the record is listed (CLOSED
 * comes before libmicrohttpd closes it), so the guard may write to it. */
typedef struct conn {
    struct conn *prev, *next;
    MHD_socket fd;
    int family;               /* AF_INET, AF_INET6 or 0 (unknown) */
    unsigned char addr[16];   /* the client address, for the per-address limit */
    double since;             /* the connection opened or its last response went out */
    double request_t0;        /* its current request began (RECEIVING, BUSY) */
    conn_phase phase;
    int refused;              /* over a connection limit: it gets 503 */
    unsigned cut;             /* the status the guard wrote before cutting it, or 0 */
} conn;

typedef struct guard {
    pthread_mutex_t lock;
    conn *head;
    int served;               /* listed connections that are not refused */
    int max_connections, max_per_ip;
    double timeout;           /* --request-timeout */
} guard;

static double conn_limit_for(const conn *c, const guard *g) {
    return c->refused ? (g->timeout < SERVER_REFUSE_GRACE_S ? g->timeout : SERVER_REFUSE_GRACE_S) : g->timeout;
}

/* The served connections from c's address, c excepted. */
static int same_address(const guard *g, const conn *c) {
    int n = 0;
    size_t len = c->family == AF_INET6 ? 16 : 4;
    for (const conn *o = g->head; o; o = o->next)
        if (o != c && !o->refused && o->family == c->family && memcmp(o->addr, c->addr, len) == 0) n++;
    return n;
}

static void conn_address(conn *c, struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        c->family = AF_INET;
        memcpy(c->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        c->family = AF_INET6;
        memcpy(c->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

/* Lists a new connection and decides whether it is over a limit. */
static void guard_add(guard *g, struct MHD_Connection *mc, void **socket_context) {
    conn *c = calloc(1, sizeof *c);
    if (!c) return; /* unguarded: its requests get 500 (see start_request) */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
    conn_address(c, mc);
    c->since = ex_now();
    pthread_mutex_lock(&g->lock);
    c->refused = g->served >= g->max_connections ||
                 (g->max_per_ip > 0 && c->family && same_address(g, c) >= g->max_per_ip);
    if (!c->refused) g->served++;
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->lock);
    *socket_context = c;
}

static void guard_remove(guard *g, void **socket_context) {
    conn *c = *socket_context;
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    if (c->prev) c->prev->next = c->next;
    else g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    if (!c->refused) g->served--;
    pthread_mutex_unlock(&g->lock);
    *socket_context = NULL;
    free(c);
}

/* Moves c to phase; 0 when the guard has cut the connection already (the
 * caller then drops the request). */
static int claim_phase(guard *g, conn *c, conn_phase phase) {
    if (!c) return 1; /* unguarded (out of memory): start_request answers 500 */
    pthread_mutex_lock(&g->lock);
    int ok = !c->cut;
    if (ok) {
        if (phase == PHASE_IDLE) c->since = ex_now();
        if (phase == PHASE_RECEIVING) c->request_t0 = ex_now();
        c->phase = phase;
    }
    pthread_mutex_unlock(&g->lock);
    return ok;
}

/* Writes a complete JSON error response straight to the socket and shuts
 * it down; libmicrohttpd then sees the end of the connection and closes
 * it. Called with the lock held, only when libmicrohttpd is not writing
 * to the socket (no response queued). */
static void cut_connection(conn *c, unsigned status, const char *reason, const char *msg) {
    char resp[512];
    char body[256];
    int bn = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", msg);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
                     "Connection: close\r\n\r\n%s", status, reason, bn,
                     status == MHD_HTTP_SERVICE_UNAVAILABLE ? "Retry-After: 1\r\n" : "", body);
    if (c->fd != MHD_INVALID_SOCKET) {
        ssize_t w = send(c->fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* a client that does not read gets only the shutdown */
        shutdown(c->fd, SHUT_RDWR);
    }
    c->cut = status;
}

/* Cuts the connections whose request is late: 408, or 503 for one over a
 * limit that sent nothing in its grace time. final (the drain's deadline):
 * every request still in progress gets 503 instead. */
static void guard_sweep(guard *g, int final) {
    double now = ex_now();
    pthread_mutex_lock(&g->lock);
    for (conn *c = g->head; c; c = c->next) {
        if (c->cut || c->phase == PHASE_ANSWERED) continue;
        if (final) {
            if (c->phase != PHASE_IDLE)
                cut_connection(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable", "the server is shutting down");
        } else if (c->phase != PHASE_BUSY && now - c->since >= conn_limit_for(c, g)) {
            if (c->refused)
                cut_connection(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable",
                               "the server is at its connection limit; retry later");
            else
                cut_connection(c, MHD_HTTP_REQUEST_TIMEOUT, "Request Timeout",
                               "the request was not received in time (--request-timeout)");
        }
    }
    pthread_mutex_unlock(&g->lock);
}

/* ------------------------------------------------------------ the server */

typedef struct server {
    llm_model *model;
    char names[2][EX_CLASS_NAME_MAX + 1];
    size_t max_body;
    size_t body_memory;
    double threshold;
    int verbose;
    guard guard;
    atomic_size_t body_bytes;  /* of the budget, held by requests */
    atomic_int inflight;       /* requests begun and not yet completed */
    atomic_int draining;       /* a stop signal came: new requests get 503 */
    atomic_int started;        /* the daemon is up (libmicrohttpd's messages go quiet) */
    char startup_msg[256];     /* libmicrohttpd's last message before that */
} server;

/* Takes n bytes of the body budget; 0 when they do not fit. */
static int budget_take(server *sv, size_t n) {
    size_t cur = atomic_load(&sv->body_bytes);
    do {
        if (n > sv->body_memory - cur) return 0;
    } while (!atomic_compare_exchange_weak(&sv->body_bytes, &cur, cur + n));
    return 1;
}

static void budget_give(server *sv, size_t n) {
    if (n) atomic_fetch_sub(&sv->body_bytes, n);
}

enum route { ROUTE_NONE = 0, ROUTE_CLASSIFY, ROUTE_HEALTH };

/* One request, from its request line to the end of its response. */
typedef struct request {
    conn *conn;       /* the connection's guard record (NULL: out of memory) */
    double t0;
    enum route route;
    int headers_seen; /* the first call with the headers is done */
    unsigned status;  /* the status sent, for the log */
    int ntexts;       /* texts classified, for the log */
    int too_large;    /* the body went over --max-body: the rest is discarded */
    int over_budget;  /* a chunked body went over the budget: likewise */
    size_t reserved;  /* bytes of the body budget this request holds */
    unsigned err_status;  /* an error to answer once the body is in, or 0 */
    char err_allow[16];
    char err_msg[320];
    char *body;
    size_t len, cap;
    char method[40];  /* printable copies for messages and the log */
    char path[140];
} request;

/* ------------------------------------------------------------ responses */

static const char oom_json[] = "{\"error\":\"out of memory\"}\n";

/* Sends `len` bytes of JSON (copied) with `status`. allow (may be NULL)
 * goes into an Allow header; a 503 gets Retry-After; while draining, or
 * with close, the connection is closed after it. MHD_NO, which makes
 * libmicrohttpd drop the connection, when the guard has cut it already or
 * the response cannot even be created. */
static enum MHD_Result send_json(server *sv, struct MHD_Connection *c, request *r, unsigned status,
                                 const char *json, size_t len, const char *allow, int close) {
    if (!claim_phase(&sv->guard, r->conn, PHASE_ANSWERED)) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    enum MHD_Result ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (ok == MHD_YES && allow) ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (ok == MHD_YES && status == MHD_HTTP_SERVICE_UNAVAILABLE)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (ok == MHD_YES && (close || atomic_load(&sv->draining)))
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ok == MHD_YES) ok = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) r->status = status;
    return ok;
}

/* Prints obj (taking it) followed by a newline and sends it. */
static enum MHD_Result send_object(server *sv, struct MHD_Connection *c, request *r, unsigned status, cJSON *obj,
                                   const char *allow, int close) {
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) return send_json(sv, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, oom_json, sizeof oom_json - 1, NULL, close);
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    enum MHD_Result res;
    if (!line) {
        res = send_json(sv, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, oom_json, sizeof oom_json - 1, NULL, close);
    } else {
        memcpy(line, text, n);
        line[n] = '\n';
        line[n + 1] = '\0';
        res = send_json(sv, c, r, status, line, n + 1, allow, close);
        free(line);
    }
    cJSON_free(text);
    return res;
}

/* {"error": msg}. Any client bytes in msg were made printable UTF-8 by
 * sj_safe_text; a cut by the buffer is moved back to a whole character. */
static enum MHD_Result send_error_text(server *sv, struct MHD_Connection *c, request *r, unsigned status,
                                       const char *allow, int close, char *msg) {
    sj_trim_utf8(msg);
    cJSON *obj = cJSON_CreateObject();
    if (obj && !cJSON_AddStringToObject(obj, "error", msg)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return send_object(sv, c, r, status, obj, allow, close);
}

__attribute__((format(printf, 7, 8)))
static enum MHD_Result send_error(server *sv, struct MHD_Connection *c, request *r, unsigned status,
                                  const char *allow, int close, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_error_text(sv, c, r, status, allow, close, msg);
}

/* Notes the error a request gets once its body (if any) has been read and
 * thrown away, so that the connection can be kept alive. */
__attribute__((format(printf, 4, 5)))
static void defer_error(request *r, unsigned status, const char *allow, const char *fmt, ...) {
    r->err_status = status;
    snprintf(r->err_allow, sizeof r->err_allow, "%s", allow ? allow : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

static enum MHD_Result send_deferred_error(server *sv, struct MHD_Connection *c, request *r, int close) {
    return send_error_text(sv, c, r, r->err_status, r->err_allow[0] ? r->err_allow : NULL, close, r->err_msg);
}

/* ------------------------------------------------------------ classifying */

/* Adds {"label": ..., "probability": ...} for one text to `into`; 0, or an
 * HTTP status with the message in err. index >= 0: the text is "texts"[index]. */
static unsigned classify_one(server *sv, const char *text, int index, cJSON *into, char *err, size_t errlen) {
    float p = 0;
    char where[32] = "";
    if (index >= 0) snprintf(where, sizeof where, "\"texts\"[%d]: ", index);
    llm_status s = llm_model_predict_text(sv->model, text, strlen(text), &p, 1);
    if (s != LLM_OK) {
        snprintf(err, errlen, "%sthe model failed: %s: %s", where, llm_status_string(s), llm_last_error());
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!isfinite(p)) {
        snprintf(err, errlen, "%sthe model gave a non-finite probability", where);
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    /* %.9g writes a float exactly enough to read the same float back */
    char num[32];
    snprintf(num, sizeof num, "%.9g", (double)p);
    if (!cJSON_AddStringToObject(into, "label", (double)p >= sv->threshold ? sv->names[1] : sv->names[0]) ||
        !cJSON_AddRawToObject(into, "probability", num)) {
        snprintf(err, errlen, "out of memory");
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    return 0;
}

/* The body as a JSON tree under the strict rules (strict_json.h); 0, or
 * 400 with the reason in err. */
static unsigned parse_body(const request *r, cJSON **doc, char *err, size_t errlen) {
    *doc = NULL;
    const char *body = r->body ? r->body : "";
    if (r->len == 0) { snprintf(err, errlen, "empty body: expected a JSON object"); return MHD_HTTP_BAD_REQUEST; }
    /* a raw NUL is never valid JSON; cJSON would stop there and miss the rest */
    if (memchr(body, '\0', r->len)) { snprintf(err, errlen, "malformed JSON: NUL byte in the body"); return MHD_HTTP_BAD_REQUEST; }
    size_t at;
    const char *why;
    if (!sj_check(body, r->len, &at, &why)) {
        snprintf(err, errlen, "malformed JSON near byte %zu: %s", at, why);
        return MHD_HTTP_BAD_REQUEST;
    }
    const char *end = NULL;
    *doc = cJSON_ParseWithOpts(body, &end, 1);
    if (!*doc) { snprintf(err, errlen, "malformed JSON (or out of memory)"); return MHD_HTTP_BAD_REQUEST; }
    const char *dup = sj_duplicate_key(*doc);
    if (dup) {
        char shown[80];
        sj_safe_text(shown, sizeof shown, dup, strlen(dup), 64);
        snprintf(err, errlen, "malformed JSON: the key \"%s\" appears twice in one object", shown);
        return MHD_HTTP_BAD_REQUEST;
    }
    return 0;
}

/* Finds "text" (a string) or "texts" (an array of at most SERVER_MAX_TEXTS
 * strings) in doc; 0, or 400 with the reason in err. */
static unsigned find_texts(const cJSON *doc, const cJSON **text, const cJSON **texts, char *err, size_t errlen) {
    if (!cJSON_IsObject(doc)) {
        snprintf(err, errlen, "the body must be a JSON object with \"text\" or \"texts\"");
        return MHD_HTTP_BAD_REQUEST;
    }
    *text = cJSON_GetObjectItemCaseSensitive(doc, "text");
    *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    if ((*text != NULL) == (*texts != NULL)) {
        snprintf(err, errlen, *text ? "give either \"text\" or \"texts\", not both"
                                    : "missing field: \"text\" (a string) or \"texts\" (an array of strings)");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (*text) {
        if (cJSON_IsString(*text) && (*text)->valuestring) return 0;
        snprintf(err, errlen, "\"text\" must be a string");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (!cJSON_IsArray(*texts)) {
        snprintf(err, errlen, "\"texts\" must be an array of strings");
        return MHD_HTTP_BAD_REQUEST;
    }
    int n = cJSON_GetArraySize(*texts);
    if (n > SERVER_MAX_TEXTS) {
        snprintf(err, errlen, "\"texts\" has %d items, at most %d are allowed", n, SERVER_MAX_TEXTS);
        return MHD_HTTP_BAD_REQUEST;
    }
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, *texts) {
        if (!cJSON_IsString(t) || !t->valuestring) {
            snprintf(err, errlen, "\"texts\"[%d] must be a string", i);
            return MHD_HTTP_BAD_REQUEST;
        }
        i++;
    }
    return 0;
}

/* {"results": [...]} for the strings in texts into *out; 0 or a status. */
static unsigned classify_list(server *sv, request *r, const cJSON *texts, cJSON **out, char *err, size_t errlen) {
    cJSON *results;
    if (!(*out = cJSON_CreateObject()) || !(results = cJSON_AddArrayToObject(*out, "results"))) {
        snprintf(err, errlen, "out of memory");
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    r->ntexts = cJSON_GetArraySize(texts);
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, texts) {
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(results, item)) {
            cJSON_Delete(item);
            snprintf(err, errlen, "out of memory");
            return MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
        unsigned status = classify_one(sv, t->valuestring, i++, item, err, errlen);
        if (status) return status;
    }
    return 0;
}

/* The body is complete: parse it, run the model, answer. */
static enum MHD_Result answer_classify(server *sv, struct MHD_Connection *c, request *r) {
    char err[512];
    cJSON *doc = NULL, *out = NULL;
    const cJSON *text = NULL, *texts = NULL;
    unsigned status = parse_body(r, &doc, err, sizeof err);
    if (!status) status = find_texts(doc, &text, &texts, err, sizeof err);
    if (!status && text) {
        if (!(out = cJSON_CreateObject())) {
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            snprintf(err, sizeof err, "out of memory");
        } else {
            r->ntexts = 1;
            status = classify_one(sv, text->valuestring, -1, out, err, sizeof err);
        }
    } else if (!status) {
        status = classify_list(sv, r, texts, &out, err, sizeof err);
    }
    cJSON_Delete(doc);
    if (status) {
        cJSON_Delete(out);
        return send_error_text(sv, c, r, status, NULL, 0, err);
    }
    return send_object(sv, c, r, MHD_HTTP_OK, out, NULL, 0);
}

/* ------------------------------------------------------------ requests */

/* 1 when the header value v is `want` (any case) with optional white
 * space around it. */
static int header_is(const char *v, const char *want) {
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strlen(want);
    if (strncasecmp(v, want, n) != 0) return 0;
    v += n;
    while (*v == ' ' || *v == '\t') v++;
    return *v == '\0';
}

/* A JSON media type: application/json or application/...+json, with
 * optional parameters (name=value, a quoted value allowed); a charset must
 * be UTF-8. A missing content type is not JSON. */
static int json_content_type(const char *ct) {
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, "; \t");
    int json = (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
               (n > 17 && strncasecmp(ct, "application/", 12) == 0 && strncasecmp(ct + n - 5, "+json", 5) == 0 &&
                !memchr(ct + 12, '/', n - 12));
    if (!json) return 0;
    const char *p = ct + n;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') return 1;
        if (*p++ != ';') return 0; /* "application/json garbage" */
        while (*p == ' ' || *p == '\t') p++;
        size_t k = strcspn(p, "=; \t\"");
        if (k == 0 || p[k] != '=') return 0;
        int charset = k == 7 && strncasecmp(p, "charset", 7) == 0;
        p += k + 1;
        const char *val = p;
        size_t vlen;
        if (*p == '"') {
            const char *q = strchr(p + 1, '"');
            if (!q) return 0;
            val = p + 1;
            vlen = (size_t)(q - val);
            p = q + 1;
        } else {
            vlen = strcspn(p, "; \t\"");
            if (vlen == 0) return 0;
            p += vlen;
        }
        if (charset && !((vlen == 5 && strncasecmp(val, "utf-8", 5) == 0) ||
                         (vlen == 4 && strncasecmp(val, "utf8", 4) == 0)))
            return 0;
    }
}

/* How often each framing header appears. */
typedef struct header_counts {
    int content_length, transfer_encoding, content_type;
} header_counts;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    header_counts *h = cls;
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) h->content_length++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) h->transfer_encoding++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0) h->content_type++;
    return MHD_YES;
}

/* Framing that libmicrohttpd would read in a way the client may not have
 * meant: answered at once and the connection closed (its body, if any,
 * cannot be told from the next request). 0 when the framing is fine. */
static unsigned check_framing(struct MHD_Connection *c, char *err, size_t errlen) {
    header_counts h = { 0, 0, 0 };
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &h);
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (h.content_length > 1 || h.transfer_encoding > 1 || h.content_type > 1) {
        snprintf(err, errlen, "more than one %s header",
                 h.content_length > 1 ? "Content-Length" : h.transfer_encoding > 1 ? "Transfer-Encoding" : "Content-Type");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (h.content_length && h.transfer_encoding) {
        snprintf(err, errlen, "both Content-Length and Transfer-Encoding: send one");
        return MHD_HTTP_BAD_REQUEST;
    }
    if (te && !header_is(te, "chunked")) {
        char shown[80];
        sj_safe_text(shown, sizeof shown, te, strlen(te), 64);
        snprintf(err, errlen, "Transfer-Encoding \"%s\" is not supported: send Content-Length or \"chunked\"", shown);
        return MHD_HTTP_NOT_IMPLEMENTED;
    }
    return 0;
}

/* The route's checks on method and content type; the error, if any, is
 * deferred until the body has been read. */
static void check_route(struct MHD_Connection *c, request *r) {
    int get = strcmp(r->method, MHD_HTTP_METHOD_GET) == 0 || strcmp(r->method, MHD_HTTP_METHOD_HEAD) == 0;
    if (r->route == ROUTE_HEALTH) {
        if (!get) defer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD", "method %s not allowed on %s", r->method, r->path);
    } else if (r->route == ROUTE_CLASSIFY) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (strcmp(r->method, MHD_HTTP_METHOD_POST) != 0) {
            defer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "POST", "method %s not allowed on %s", r->method, r->path);
        } else if (!json_content_type(ct)) {
            char shown[120];
            if (!ct) {
                defer_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, "a Content-Type: application/json header is required");
            } else {
                sj_safe_text(shown, sizeof shown, ct, strlen(ct), 100);
                defer_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
                            "content type must be application/json (charset utf-8), not \"%s\"", shown);
            }
        }
    } else {
        defer_error(r, MHD_HTTP_NOT_FOUND, NULL, "no such route: %s %s (try POST /v1/classify or GET /healthz)",
                    r->method, r->path);
    }
}

/* The announced Content-Length (0 when there is none; libmicrohttpd has
 * refused one that is not a number). */
static unsigned long long content_length(struct MHD_Connection *c) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return 0;
    char *e = NULL;
    errno = 0;
    unsigned long long v = strtoull(cl, &e, 10);
    return e == cl || errno != 0 ? ULLONG_MAX : v;
}

/* The first call for a request (headers only). Refusals (a connection over
 * a limit, the drain, bad framing, a body announced too large or over the
 * budget) are answered at once and close the connection (libmicrohttpd
 * then never reads the body); the route's own errors are answered once the
 * body has been read and dropped. */
static enum MHD_Result start_request(server *sv, struct MHD_Connection *c, request *r, const char *method) {
    r->headers_seen = 1;
    sj_safe_text(r->method, sizeof r->method, method, strlen(method), 32);
    char err[256];
    if (!r->conn) return send_error(sv, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, 1, "out of memory");
    if (r->conn->refused)
        return send_error(sv, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, 1,
                          "the server is at its connection limit; retry later");
    if (atomic_load(&sv->draining))
        return send_error(sv, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, 1, "the server is shutting down");
    unsigned bad = check_framing(c, err, sizeof err);
    if (bad) return send_error(sv, c, r, bad, NULL, 1, "%s", err);
    check_route(c, r);
    unsigned long long v = content_length(c);
    if (v > sv->max_body) {
        if (!r->err_status)
            defer_error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "body of %llu bytes is over the limit of %zu bytes", v,
                        sv->max_body);
        return send_deferred_error(sv, c, r, 1);
    }
    if (r->err_status || r->route != ROUTE_CLASSIFY || v == 0) return MHD_YES;
    /* the whole announced body is reserved now, so that a request that
       would not fit is told before it sends anything */
    if (!budget_take(sv, (size_t)v))
        return send_error(sv, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, 1,
                          "the server holds its limit of %zu bytes of request bodies; retry later", sv->body_memory);
    r->reserved = (size_t)v;
    /* one allocation, never copied: its pages cost memory only as the body
       arrives (past 64 KiB it is an mmap, see main) */
    r->body = malloc((size_t)v + 1);
    if (!r->body) defer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
    else r->cap = (size_t)v;
    return MHD_YES; /* the body, or the end of the request, comes next */
}

/* Appends a piece of the body, or only counts it once over a limit. A
 * chunked body (no Content-Length) takes its budget as it arrives.
 * 0, or -1 when out of memory. */
static int add_body(server *sv, request *r, const char *data, size_t n) {
    if (r->too_large || r->over_budget) return 0;
    if (n > sv->max_body - r->len) {
        r->too_large = 1;
    } else if (r->len + n > r->reserved) {
        size_t more = r->len + n - r->reserved;
        if (budget_take(sv, more)) r->reserved += more;
        else r->over_budget = 1;
    }
    if (r->too_large || r->over_budget) {
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return 0;
    }
    if (r->len + n > r->cap) {
        size_t ncap = r->cap ? r->cap : 4096;
        while (ncap < r->len + n) ncap = ncap > sv->max_body / 2 ? sv->max_body : ncap * 2;
        char *nb = realloc(r->body, ncap + 1);
        if (!nb) return -1;
        r->body = nb;
        r->cap = ncap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

/* The body is in (or there is none): the answer. */
static enum MHD_Result finish_request(server *sv, struct MHD_Connection *c, request *r) {
    if (!claim_phase(&sv->guard, r->conn, PHASE_BUSY)) return MHD_NO;
    if (r->err_status) return send_deferred_error(sv, c, r, 0);
    if (r->route == ROUTE_HEALTH) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        return send_json(sv, c, r, MHD_HTTP_OK, ok, sizeof ok - 1, NULL, 0);
    }
    if (r->too_large)
        return send_error(sv, c, r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, 0, "body is over the limit of %zu bytes",
                          sv->max_body);
    if (r->over_budget)
        return send_error(sv, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, 0,
                          "the server holds its limit of %zu bytes of request bodies; retry later", sv->body_memory);
    return answer_classify(sv, c, r);
}

/* libmicrohttpd has the request line: the request begins here, with the
 * raw target (before any %-decoding), so that routes match exactly the
 * bytes sent ("/%68ealthz" and "/healthz%00x" are not "/healthz"). */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c) {
    server *sv = cls;
    request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    atomic_fetch_add(&sv->inflight, 1);
    r->t0 = ex_now();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->conn = ci ? ci->socket_context : NULL;
    size_t n = strcspn(uri, "?");
    if (n == 8 && memcmp(uri, "/healthz", 8) == 0) r->route = ROUTE_HEALTH;
    else if (n == 12 && memcmp(uri, "/v1/classify", 12) == 0) r->route = ROUTE_CLASSIFY;
    sj_safe_text(r->path, sizeof r->path, uri, n, 120);
    claim_phase(&sv->guard, r->conn, PHASE_RECEIVING);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    server *sv = cls;
    request *r = *req_cls;
    (void)url; /* decoded by libmicrohttpd: the raw one was routed in on_request_line */
    if (!r) return MHD_NO; /* out of memory in on_request_line */
    if (!r->headers_seen) return start_request(sv, c, r, method);
    if (*upload_data_size > 0) {
        /* a request that gets an error only has its body read and dropped */
        if (!r->err_status && r->route == ROUTE_CLASSIFY && add_body(sv, r, upload_data, *upload_data_size) != 0)
            defer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        *upload_data_size = 0;
        return MHD_YES;
    }
    enum MHD_Result res = finish_request(sv, c, r);
    /* the body's memory and budget go back before the answer can reach the
       client, so that its next request finds them free */
    free(r->body);
    r->body = NULL;
    budget_give(sv, r->reserved);
    r->reserved = 0;
    return res;
}

/* One access-log line: client, method, path, status, time, how it ended. */
static void log_request(server *sv, struct MHD_Connection *c, const request *r, enum MHD_RequestTerminationCode toe) {
    char host[NI_MAXHOST] = "-";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        socklen_t alen = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                 : sizeof(struct sockaddr_in);
        if (getnameinfo(ci->client_addr, alen, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0) strcpy(host, "-");
    }
    unsigned status = r->status;
    if (!status && r->conn) {
        pthread_mutex_lock(&sv->guard.lock);
        status = r->conn->cut;
        pthread_mutex_unlock(&sv->guard.lock);
    }
    char extra[64] = "";
    if (r->ntexts > 0) snprintf(extra, sizeof extra, " texts=%d", r->ntexts);
    const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
                      status && !r->status ? " (cut by the server)" :
                      toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (timed out)" :
                      toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? " (shutdown)" :
                      toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? " (client gone)" : " (failed)";
    fprintf(stderr, "%s %s %s %u %.3f ms%s%s\n", host, r->method[0] ? r->method : "-", r->path, status,
            (ex_now() - r->t0) * 1e3, extra, how);
}

/* The request is over (answered, failed or dropped): log it, free it. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe) {
    server *sv = cls;
    request *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    if (sv->verbose) log_request(sv, c, r, toe);
    budget_give(sv, r->reserved);
    claim_phase(&sv->guard, r->conn, PHASE_IDLE);
    free(r->body);
    free(r);
    atomic_fetch_sub(&sv->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    server *sv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) guard_add(&sv->guard, c, socket_context);
    else guard_remove(&sv->guard, socket_context);
}

/* libmicrohttpd's own messages ("Connection was closed by remote side",
 * ...): on stderr with --verbose only; before the daemon is up the last
 * one is kept to explain a failed start. */
static void on_mhd_message(void *cls, const char *fmt, va_list ap) {
    server *sv = cls;
    if (sv->verbose) {
        flockfile(stderr);
        fprintf(stderr, "%s: libmicrohttpd: ", prog);
        vfprintf(stderr, fmt, ap);
        funlockfile(stderr);
    } else if (!atomic_load(&sv->started)) {
        vsnprintf(sv->startup_msg, sizeof sv->startup_msg, fmt, ap);
        sv->startup_msg[strcspn(sv->startup_msg, "\n")] = '\0';
    }
}

/* ------------------------------------------------------------ starting */

/* Loads the model, its class names and threshold, and runs it once, so
 * that a model without a text pipeline or with more than one output fails
 * here and not on every request. */
static int load_model(const server_opts *o, llm_backend *be, server *sv) {
    char what[1024];
    llm_status s;
    snprintf(what, sizeof what, "loading %s", o->model_path);
    if ((s = llm_model_load(&sv->model, be, o->model_path)) != LLM_OK) return ex_fail(prog, s, what);
    if (ex_class_names(prog, sv->model, sv->names)) return EX_FAILURE;
    if (ex_threshold(prog, sv->model, o->threshold_set, &sv->threshold)) return EX_FAILURE;
    float p;
    snprintf(what, sizeof what, "checking %s on an empty text", o->model_path);
    if ((s = llm_model_predict_text(sv->model, "", 0, &p, 1)) != LLM_OK) return ex_fail(prog, s, what);
    return 0;
}

static int resolve_host(const server_opts *o, struct addrinfo **ai) {
    char port[16];
    snprintf(port, sizeof port, "%lld", o->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(o->host, port, &hints, ai);
    if (gai != 0 || !*ai) {
        fprintf(stderr, "%s: cannot resolve --host %s: %s\n", prog, o->host, gai ? gai_strerror(gai) : "no address");
        return EX_FAILURE;
    }
    return 0;
}

/* Connections over --max-connections (or per address) are still accepted
 * for a moment, to be told 503: a few spare slots for them. libmicrohttpd
 * itself closes connections past these, without an answer. */
static unsigned spare_slots(long long limit) {
    long long s = limit / 8;
    return (unsigned)(s < 4 ? 4 : s > 4096 ? 4096 : s);
}

/* Raises the open-file limit to what the connection limits need, and lowers
 * --max-connections (with a note) if the hard limit is too low for it. */
static void fit_fd_limit(server_opts *o) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t reserve = 64 + (rlim_t)o->threads * 4; /* model file, pipes, eventfds, stdio */
    rlim_t want = (rlim_t)(o->max_connections + spare_slots(o->max_connections)) + reserve;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur >= want) return;
    long long fit = (long long)((rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 0) * 8 / 9);
    if (fit < 1) fit = 1;
    fprintf(stderr, "%s: the open-file limit (%llu) allows only %lld connections: --max-connections lowered from %lld\n",
            prog, (unsigned long long)rl.rlim_cur, fit, o->max_connections);
    o->max_connections = fit;
}

static struct MHD_Daemon *start_daemon(const server_opts *o, server *sv, const struct addrinfo *ai) {
    /* ITC: needed by MHD_quiesce_daemon. poll(), not epoll: with a thread
       pool on epoll, quiescing races with a worker that has taken the listen
       socket out of its own epoll set, and libmicrohttpd 0.9.75 then aborts
       ("Failed to remove listen FD from epoll set", seen in the tests). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    unsigned per_ip = o->max_per_ip > 0 ? (unsigned)o->max_per_ip + spare_slots(o->max_per_ip) : 0;
    struct MHD_OptionItem opts[4];
    int n = 0;
    if (per_ip) opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)per_ip, NULL };
    if (o->threads > 1) /* a pool of worker threads, each with its own share of the connections */
        opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o->threads, NULL };
    opts[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    return MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, sv, /* port: for messages */
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_message, sv, /* first: it says so otherwise */
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_URI_LOG_CALLBACK, on_request_line, sv,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, sv,
                            MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)(o->max_connections + spare_slots(o->max_connections)),
                            /* the guard answers late requests with 408 at --request-timeout;
                               this only closes connections that stop reading a response */
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->request_timeout + 1,
                            MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
}

static void print_listening(const server_opts *o, const server *sv, struct MHD_Daemon *d, const struct addrinfo *ai) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info && info->port ? info->port : (unsigned)o->port;
    char numeric[NI_MAXHOST];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, numeric, sizeof numeric, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(numeric, sizeof numeric, "%s", o->host);
    int v6 = ai->ai_family == AF_INET6;
    printf("listening on http://%s%s%s:%u\n", v6 ? "[" : "", numeric, v6 ? "]" : "", bound);
    fflush(stdout);
    if (o->verbose)
        fprintf(stderr, "%s: model %s, classes %s/%s, %lld worker thread(s), max body %zu bytes, body memory %zu "
                "bytes, %lld connections (%lld per address), request timeout %lld s\n", prog, o->model_path,
                sv->names[0], sv->names[1], o->threads, sv->max_body, sv->body_memory, o->max_connections,
                o->max_per_ip, o->request_timeout);
}

/* ------------------------------------------------------------ serving */

/* Checks deadlines until a stop signal comes; returns it. */
static int serve_until_signal(server *sv) {
    int sig;
    while ((sig = next_signal(SERVER_TICK_MS)) == 0) guard_sweep(&sv->guard, 0);
    return sig;
}

/* 1 when no request that began before t is still in progress. */
static int guard_done_before(guard *g, double t) {
    int done = 1;
    pthread_mutex_lock(&g->lock);
    for (const conn *c = g->head; c && done; c = c->next)
        if (!c->cut && (c->phase == PHASE_RECEIVING || c->phase == PHASE_BUSY) && c->request_t0 < t) done = 0;
    pthread_mutex_unlock(&g->lock);
    return done;
}

/* 1 when no connection is in a request and the idle ones have been idle
 * for at least quiet seconds: a keep-alive client that just had a response
 * has had time to send its next request (which then gets 503). */
static int guard_settled(guard *g, double quiet) {
    double now = ex_now();
    int settled = 1;
    pthread_mutex_lock(&g->lock);
    for (const conn *c = g->head; c && settled; c = c->next)
        if (!c->cut && (c->phase != PHASE_IDLE || now - c->since < quiet)) settled = 0;
    pthread_mutex_unlock(&g->lock);
    return settled;
}

/* Waits, checking deadlines, until done(sv) and not before not_before, or
 * until deadline; further signals are noted and ignored. */
static void drain_wait(server *sv, double not_before, double deadline, int (*done)(server *, double),
                       double arg) {
    for (;;) {
        double now = ex_now();
        if (now >= deadline || (now >= not_before && done(sv, arg))) return;
        int sig = next_signal(5);
        if (sig && sv->verbose) fprintf(stderr, "%s: %s again: already stopping, ignored\n", prog, strsignal(sig));
        guard_sweep(&sv->guard, 0);
    }
}

static int old_requests_done(server *sv, double t) { return guard_done_before(&sv->guard, t); }
static int all_settled(server *sv, double quiet) {
    return atomic_load(&sv->inflight) == 0 && guard_settled(&sv->guard, quiet);
}

/* Stops listening. The connections the kernel has completed but
 * libmicrohttpd not yet accepted would be reset by the close: they are
 * accepted here and handed to libmicrohttpd, to be answered 503 like the
 * others. Only a connection completed in the moment between the last
 * accept and the close is reset. Returns how many were handed over. */
static int stop_listening(struct MHD_Daemon *d) {
    MHD_socket listen_fd = MHD_quiesce_daemon(d);
    if (listen_fd == MHD_INVALID_SOCKET) return 0;
    int handed = 0;
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl >= 0 && fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) == 0) {
        for (;;) {
            struct sockaddr_storage a;
            socklen_t alen = sizeof a;
            int fd = accept4(listen_fd, (struct sockaddr *)&a, &alen, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0 && errno == EINTR) continue;
            if (fd < 0) break;
            /* it closes fd when it cannot take it */
            handed += MHD_add_connection(d, fd, (struct sockaddr *)&a, alen) == MHD_YES;
        }
    }
    /* the workers no longer use it once quiesced (poll mode: they check
       before accepting), so it can be closed before MHD_stop_daemon */
    close(listen_fd);
    return handed;
}

/* The drain: new requests get 503 and every response closes its
 * connection while the requests in progress finish. Then the listening
 * socket closes (new connections are refused), requests already on their
 * way get a moment, and at the deadline whatever is left gets 503. */
static void drain(const server_opts *o, server *sv, struct MHD_Daemon *d, int sig) {
    if (sv->verbose) fprintf(stderr, "%s: %s, stopping\n", prog, strsignal(sig));
    atomic_store(&sv->draining, 1);
    double t0 = ex_now(), deadline = t0 + (double)o->drain_timeout;
    /* the requests that began before the signal; later ones get 503 at once */
    drain_wait(sv, t0, deadline, old_requests_done, t0);
    int handed = stop_listening(d);
    /* connections handed over reach the guard only once a worker takes
       them: give them the settling time before looking */
    drain_wait(sv, handed ? ex_now() + SERVER_LINGER_S : 0, deadline, all_settled, SERVER_LINGER_S);
    if (atomic_load(&sv->inflight) > 0) guard_sweep(&sv->guard, 1);
}

static void init_server(server *sv, const server_opts *o) {
    memset(sv, 0, sizeof *sv);
    atomic_init(&sv->inflight, 0);
    atomic_init(&sv->draining, 0);
    atomic_init(&sv->started, 0);
    atomic_init(&sv->body_bytes, 0);
    sv->max_body = (size_t)o->max_body;
    sv->body_memory = (size_t)o->body_memory;
    sv->threshold = o->threshold;
    sv->verbose = o->verbose;
    sv->guard.max_connections = (int)o->max_connections;
    sv->guard.max_per_ip = (int)o->max_per_ip;
    sv->guard.timeout = (double)o->request_timeout;
    pthread_mutex_init(&sv->guard.lock, NULL);
}

static int run(server_opts *o) {
    int rc = EX_FAILURE;
    llm_backend *be = NULL;
    struct MHD_Daemon *d = NULL;
    struct addrinfo *ai = NULL;
    fit_fd_limit(o);
    server sv;
    init_server(&sv, o);
    /* the threads started from here (the backend's, libmicrohttpd's) keep
       SIGINT/SIGTERM blocked, so the main thread or OpenBLAS's take them */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, &old);

    if (ex_backend(prog, o->backend, (int)o->backend_threads, 1, &be)) goto done;
    if (load_model(o, be, &sv)) goto done;
    if (resolve_host(o, &ai)) goto done;
    d = start_daemon(o, &sv, ai);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!d) {
        fprintf(stderr, "%s: cannot listen on %s port %lld%s%s\n", prog, o->host, o->port,
                sv.startup_msg[0] ? ": " : "", sv.startup_msg);
        goto done;
    }
    atomic_store(&sv.started, 1);
    print_listening(o, &sv, d, ai);
    drain(o, &sv, d, serve_until_signal(&sv));
    rc = 0;

done:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (d) MHD_stop_daemon(d);
    if (ai) freeaddrinfo(ai);
    llm_model_free(sv.model);
    llm_backend_free(be);
    pthread_mutex_destroy(&sv.guard.lock);
    return rc;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    if (install_signal_handlers() != 0) {
        fprintf(stderr, "%s: cannot install the SIGINT/SIGTERM handlers: %s\n", prog, strerror(errno));
        return EX_FAILURE;
    }
    /* request bodies past 64 KiB come from mmap and go back to the system
       when freed (glibc would otherwise raise this threshold as they are
       freed and keep them in its heaps): the body budget bounds the RSS */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    server_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == 0) r = run(&o);
    else if (r == -1) { usage(stdout); r = 0; }
    else { usage(stderr); r = EX_USAGE; }
    return r;
}
