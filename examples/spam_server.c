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
 * Every error is a JSON object {"error": "..."} with a 4xx status (400
 * malformed JSON or wrong fields, 404 unknown route, 405 wrong method with an
 * Allow header, 413 body over --max-body, 415 a content type other than JSON)
 * or 500 when the model fails.
 *
 * The model is loaded once and shared: --threads worker threads each serve
 * their connections and run the model for them at the same time. On startup
 * the program prints "listening on http://HOST:PORT" on stdout (--port 0
 * picks a free port); SIGINT or SIGTERM stop it cleanly with status 0, after
 * the requests in progress are answered (for at most SERVER_DRAIN_S). */
#include "common.h"

#include <microhttpd.h>
#include <cjson/cJSON.h>

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *prog = "spam_server";

#define SERVER_MAX_TEXTS 256                 /* texts in one {"texts": [...]} */
#define SERVER_DEFAULT_MAX_BODY (1u << 20)   /* bytes of one request body */
#define SERVER_CONNECTION_TIMEOUT_S 30u      /* idle connections are closed after this */
#define SERVER_DRAIN_S 5.0                   /* on SIGINT/SIGTERM, wait this long at most for
                                                the requests in progress */

typedef struct server_opts {
    const char *host;
    const char *model_path;
    long long port;
    long long threads;          /* HTTP worker threads */
    long long backend_threads;  /* the backend's own CPU threads */
    long long max_body;
    double threshold;
    int threshold_set;          /* --threshold given: it wins over the model's */
    llm_backend_kind backend;
    int verbose;
} server_opts;

typedef struct server {
    llm_model *model;
    char names[2][EX_CLASS_NAME_MAX + 1];
    size_t max_body;
    double threshold;
    int verbose;
    atomic_int inflight;  /* requests begun and not yet completed */
} server;

enum route { ROUTE_NONE = 0, ROUTE_CLASSIFY, ROUTE_HEALTH };

/* One request, from its headers to the end of its response. */
typedef struct request {
    double t0;
    enum route route;
    unsigned status;  /* the status sent, for the log */
    int ntexts;       /* texts classified, for the log */
    int too_large;    /* the body went over the limit: the rest is discarded */
    unsigned err_status;  /* an error to answer once the body is in, or 0 */
    char err_allow[16];
    char err_msg[256];
    char *body;
    size_t len, cap;
    char method[16];
    char url[128];
} request;

/* ------------------------------------------------------------ options */

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s --model M.safetensors [options]\n"
        "\n"
        "Serves the model over HTTP/1.1 with JSON bodies:\n"
        "  POST /v1/classify  {\"text\": \"...\"} or {\"texts\": [\"...\", ...]} (at most %d)\n"
        "  GET  /healthz\n"
        "Prints \"listening on http://HOST:PORT\" once it accepts connections; SIGINT or\n"
        "SIGTERM stop it once the requests in progress are answered (at most %.0f s).\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --host H             address to listen on [127.0.0.1]\n"
        "  --port P             TCP port, 0 = any free one [8080]\n"
        "  --threads N          HTTP worker threads, each running the model [all cores]\n"
        "  --backend-threads N  the backend's CPU threads per model call, 0 = all cores [1]\n"
        "  --max-body BYTES     largest request body, larger ones get 413 [%u]\n"
        "  --threshold T        probabilities >= T give the second class [the model's\n"
        "                       stored threshold (spam_train --threshold), else 0.5]\n"
        "  --backend B          cpu or cuda [cpu]\n"
        "  --verbose            log one line per request on stderr\n"
        "  --help               this text\n",
        prog, SERVER_MAX_TEXTS, SERVER_DRAIN_S, SERVER_DEFAULT_MAX_BODY);
}

static int parse_args(int argc, char **argv, server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = cores < 1 ? 1 : cores > 64 ? 64 : cores;
    o->backend_threads = 1;
    o->max_body = SERVER_DEFAULT_MAX_BODY;
    o->threshold = 0.5;
    o->backend = LLM_BACKEND_CPU;
    ex_args a = { prog, argc, argv, 1, 0 };
    while (a.i < argc && !a.bad) {
        const char *v = NULL;
        const char *arg = argv[a.i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return -1;
        if (ex_arg_match(&a, "--model", &v)) { if (!a.bad) o->model_path = v; }
        else if (ex_arg_match(&a, "--host", &v)) { if (!a.bad) o->host = v; }
        else if (ex_arg_match(&a, "--port", &v)) { if (!a.bad) ex_parse_int(&a, "--port", v, 0, 65535, &o->port); }
        else if (ex_arg_match(&a, "--threads", &v)) { if (!a.bad) ex_parse_int(&a, "--threads", v, 1, 1024, &o->threads); }
        else if (ex_arg_match(&a, "--backend-threads", &v)) {
            if (!a.bad) ex_parse_int(&a, "--backend-threads", v, 0, 1024, &o->backend_threads);
        }
        else if (ex_arg_match(&a, "--max-body", &v)) {
            if (!a.bad) ex_parse_int(&a, "--max-body", v, 1, 1ll << 30, &o->max_body);
        }
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
    return a.bad ? EX_USAGE : 0;
}

/* ------------------------------------------------------------ responses */

/* Sends `len` bytes of JSON (copied) with `status`; allow (may be NULL) goes
 * into an Allow header. MHD_NO, which makes microhttpd drop the connection,
 * only when the response cannot even be created. */
static enum MHD_Result send_json(struct MHD_Connection *c, request *r, unsigned status,
                                 const char *json, size_t len, const char *allow) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    enum MHD_Result ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (ok == MHD_YES && allow) ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (ok == MHD_YES) ok = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) r->status = status;
    return ok;
}

static const char oom_json[] = "{\"error\":\"out of memory\"}\n";

/* Prints obj (taking it) followed by a newline and sends it. */
static enum MHD_Result send_object(struct MHD_Connection *c, request *r, unsigned status, cJSON *obj,
                                   const char *allow) {
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) return send_json(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, oom_json, sizeof oom_json - 1, NULL);
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    enum MHD_Result res;
    if (!line) {
        res = send_json(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, oom_json, sizeof oom_json - 1, NULL);
    } else {
        memcpy(line, text, n);
        line[n] = '\n';
        line[n + 1] = '\0';
        res = send_json(c, r, status, line, n + 1, allow);
        free(line);
    }
    cJSON_free(text);
    return res;
}

__attribute__((format(printf, 5, 6)))
static enum MHD_Result send_error(struct MHD_Connection *c, request *r, unsigned status, const char *allow,
                                  const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *obj = cJSON_CreateObject();
    if (obj && !cJSON_AddStringToObject(obj, "error", msg)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return send_object(c, r, status, obj, allow);
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

/* The body is complete: parse it, run the model, answer. */
static enum MHD_Result answer_classify(server *sv, struct MHD_Connection *c, request *r) {
    const char *body = r->body ? r->body : "";
    if (r->len == 0) return send_error(c, r, MHD_HTTP_BAD_REQUEST, NULL, "empty body: expected a JSON object");
    /* a raw NUL is never valid JSON; cJSON would stop there and miss the rest */
    if (memchr(body, '\0', r->len))
        return send_error(c, r, MHD_HTTP_BAD_REQUEST, NULL, "malformed JSON: NUL byte in the body");
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(body, &end, 1);
    if (!doc) {
        size_t at = end && end >= body && end <= body + r->len ? (size_t)(end - body) : 0;
        return send_error(c, r, MHD_HTTP_BAD_REQUEST, NULL, "malformed JSON near byte %zu", at);
    }
    char err[512];
    unsigned status = 0;
    cJSON *out = NULL;
    if (!cJSON_IsObject(doc)) {
        status = MHD_HTTP_BAD_REQUEST;
        snprintf(err, sizeof err, "the body must be a JSON object with \"text\" or \"texts\"");
        goto reply;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(doc, "text");
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    if ((text != NULL) == (texts != NULL)) {
        status = MHD_HTTP_BAD_REQUEST;
        snprintf(err, sizeof err, text ? "give either \"text\" or \"texts\", not both"
                                       : "missing field: \"text\" (a string) or \"texts\" (an array of strings)");
        goto reply;
    }
    if (text) {
        if (!cJSON_IsString(text) || !text->valuestring) {
            status = MHD_HTTP_BAD_REQUEST;
            snprintf(err, sizeof err, "\"text\" must be a string");
            goto reply;
        }
        if (!(out = cJSON_CreateObject())) goto oom;
        r->ntexts = 1;
        status = classify_one(sv, text->valuestring, -1, out, err, sizeof err);
        goto reply;
    }
    if (!cJSON_IsArray(texts)) {
        status = MHD_HTTP_BAD_REQUEST;
        snprintf(err, sizeof err, "\"texts\" must be an array of strings");
        goto reply;
    }
    int n = cJSON_GetArraySize(texts);
    if (n > SERVER_MAX_TEXTS) {
        status = MHD_HTTP_BAD_REQUEST;
        snprintf(err, sizeof err, "\"texts\" has %d items, at most %d are allowed", n, SERVER_MAX_TEXTS);
        goto reply;
    }
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, texts) {
        if (!cJSON_IsString(t) || !t->valuestring) {
            status = MHD_HTTP_BAD_REQUEST;
            snprintf(err, sizeof err, "\"texts\"[%d] must be a string", i);
            goto reply;
        }
        i++;
    }
    cJSON *results;
    if (!(out = cJSON_CreateObject()) || !(results = cJSON_AddArrayToObject(out, "results"))) goto oom;
    r->ntexts = n;
    i = 0;
    cJSON_ArrayForEach(t, texts) {
        cJSON *item = cJSON_CreateObject();
        if (!item) goto oom;
        if (!cJSON_AddItemToArray(results, item)) { cJSON_Delete(item); goto oom; }
        if ((status = classify_one(sv, t->valuestring, i++, item, err, sizeof err)) != 0) goto reply;
    }
    goto reply;
oom:
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    snprintf(err, sizeof err, "out of memory");
reply:
    cJSON_Delete(doc);
    if (status != 0) {
        cJSON_Delete(out);
        return send_error(c, r, status, NULL, "%s", err);
    }
    return send_object(c, r, MHD_HTTP_OK, out, NULL);
}

/* ------------------------------------------------------------ requests */

/* A JSON media type (application/json or application/...+json, any
 * parameters such as charset), or none at all. */
static int json_content_type(const char *ct) {
    if (!ct) return 1;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 0) return 1;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 && strncasecmp(ct + n - 5, "+json", 5) == 0;
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

static enum MHD_Result send_deferred_error(struct MHD_Connection *c, request *r) {
    return send_error(c, r, r->err_status, r->err_allow[0] ? r->err_allow : NULL, "%s", r->err_msg);
}

/* The first call for a request (headers only): route it, check the method,
 * the content type and the announced length. Only a body announced as too
 * large is answered at once (microhttpd then closes the connection without
 * reading it); everything else is answered once the body is in. */
static enum MHD_Result start_request(server *sv, struct MHD_Connection *c, request *r, const char *url,
                                     const char *method) {
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(url, "/healthz") == 0) {
        r->route = ROUTE_HEALTH;
        if (!get) defer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD", "method %s not allowed on %s", method, url);
    } else if (strcmp(url, "/v1/classify") == 0) {
        r->route = ROUTE_CLASSIFY;
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            defer_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "POST", "method %s not allowed on %s", method, url);
        else if (!json_content_type(ct))
            defer_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, "content type must be application/json, not %.100s", ct);
    } else {
        defer_error(r, MHD_HTTP_NOT_FOUND, NULL, "no such route: %s %s (try POST /v1/classify or GET /healthz)",
                    method, url);
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long v = 0;
    if (cl) {
        char *e = NULL;
        errno = 0;
        v = strtoull(cl, &e, 10);
        if (e == cl || errno != 0) v = 0;
    }
    if (v > sv->max_body) {
        if (!r->err_status)
            defer_error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "body of %llu bytes is over the limit of %zu bytes", v,
                        sv->max_body);
        return send_deferred_error(c, r);
    }
    /* a small body in one allocation when its size is known; a large one
       grows as it arrives, so that announcing a size costs nothing */
    if (!r->err_status && r->route == ROUTE_CLASSIFY && v > 0) {
        size_t want = v < 65536 ? (size_t)v : 65536;
        r->body = malloc(want + 1);
        if (!r->body) defer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        else r->cap = want;
    }
    return MHD_YES; /* the body, or the end of the request, comes next */
}

/* Appends a piece of the body, or only counts it once over the limit.
 * 0, or -1 when out of memory. */
static int add_body(server *sv, request *r, const char *data, size_t n) {
    if (r->too_large) return 0;
    if (n > sv->max_body - r->len) {
        r->too_large = 1;
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    server *sv = cls;
    request *r = *req_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *req_cls = r;
        atomic_fetch_add(&sv->inflight, 1);
        r->t0 = ex_now();
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        for (char *q = r->url; *q; q++) /* the log stays one line per request */
            if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
        return start_request(sv, c, r, url, method);
    }
    if (*upload_data_size > 0) {
        /* a request that gets an error only has its body read and dropped */
        if (!r->err_status && r->route == ROUTE_CLASSIFY && add_body(sv, r, upload_data, *upload_data_size) != 0)
            defer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        *upload_data_size = 0;
        return MHD_YES;
    }
    enum MHD_Result res;
    if (r->err_status) {
        res = send_deferred_error(c, r);
    } else if (r->route == ROUTE_HEALTH) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        res = send_json(c, r, MHD_HTTP_OK, ok, sizeof ok - 1, NULL);
    } else if (r->too_large) {
        res = send_error(c, r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "body is over the limit of %zu bytes", sv->max_body);
    } else {
        res = answer_classify(sv, c, r);
    }
    free(r->body);
    r->body = NULL;
    return res;
}

/* The request is over (answered, failed or dropped): log it, free it. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe) {
    server *sv = cls;
    request *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    if (sv->verbose) {
        char host[NI_MAXHOST] = "-";
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            socklen_t alen = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                     : sizeof(struct sockaddr_in);
            if (getnameinfo(ci->client_addr, alen, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
                strcpy(host, "-");
        }
        char extra[64] = "";
        if (r->ntexts > 0) snprintf(extra, sizeof extra, " texts=%d", r->ntexts);
        const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
                          toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (timed out)" :
                          toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? " (shutdown)" :
                          toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? " (client gone)" : " (failed)";
        fprintf(stderr, "%s %s %s %u %.3f ms%s%s\n", host, r->method, r->url, r->status,
                (ex_now() - r->t0) * 1e3, extra, how);
    }
    free(r->body);
    free(r);
    atomic_fetch_sub(&sv->inflight, 1);
}

/* ------------------------------------------------------------ main */

static int run(const server_opts *o, const sigset_t *stop_signals) {
    int rc = EX_FAILURE;
    llm_status s;
    llm_backend *be = NULL;
    struct MHD_Daemon *d = NULL;
    struct addrinfo *ai = NULL;
    server sv;
    memset(&sv, 0, sizeof sv);
    atomic_init(&sv.inflight, 0);
    sv.max_body = (size_t)o->max_body;
    sv.threshold = o->threshold;
    sv.verbose = o->verbose;
    char what[1024];

    if (ex_backend(prog, o->backend, (int)o->backend_threads, 1, &be)) goto done;
    snprintf(what, sizeof what, "loading %s", o->model_path);
    if ((s = llm_model_load(&sv.model, be, o->model_path)) != LLM_OK) { ex_fail(prog, s, what); goto done; }
    if (ex_class_names(prog, sv.model, sv.names)) goto done;
    if (ex_threshold(prog, sv.model, o->threshold_set, &sv.threshold)) goto done;
    /* one prediction now, so that a model without a text pipeline or with
       more than one output fails here and not on every request */
    float p;
    snprintf(what, sizeof what, "checking %s on an empty text", o->model_path);
    if ((s = llm_model_predict_text(sv.model, "", 0, &p, 1)) != LLM_OK) { ex_fail(prog, s, what); goto done; }

    char port[16];
    snprintf(port, sizeof port, "%lld", o->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        fprintf(stderr, "%s: cannot resolve --host %s: %s\n", prog, o->host, gai ? gai_strerror(gai) : "no address");
        goto done;
    }
    /* ITC: needed by MHD_quiesce_daemon. poll(), not epoll: with a thread
       pool on epoll, quiescing races with a worker that has taken the listen
       socket out of its own epoll set, and libmicrohttpd 0.9.75 then aborts
       ("Failed to remove listen FD from epoll set", seen in the tests). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[3] = { { MHD_OPTION_CONNECTION_TIMEOUT, SERVER_CONNECTION_TIMEOUT_S, NULL } };
    int nopts = 1;
    if (o->threads > 1) /* a pool of worker threads, each with its own share of the connections */
        opts[nopts++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o->threads, NULL };
    opts[nopts] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, &sv, /* port: for messages */
                         MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, &sv,
                         MHD_OPTION_ARRAY, opts,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "%s: cannot listen on %s port %s\n", prog, o->host, port);
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info && info->port ? info->port : (unsigned)o->port;
    char numeric[NI_MAXHOST];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, numeric, sizeof numeric, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(numeric, sizeof numeric, "%s", o->host);
    int v6 = ai->ai_family == AF_INET6;
    printf("listening on http://%s%s%s:%u\n", v6 ? "[" : "", numeric, v6 ? "]" : "", bound);
    fflush(stdout);
    if (o->verbose)
        fprintf(stderr, "%s: model %s, classes %s/%s, %lld worker thread(s), max body %zu bytes\n", prog,
                o->model_path, sv.names[0], sv.names[1], o->threads, sv.max_body);

    int sig = 0;
    while (sigwait(stop_signals, &sig) != 0) {}
    if (o->verbose) fprintf(stderr, "%s: %s, stopping\n", prog, strsignal(sig));
    /* stop accepting, let the requests in progress finish (for a while),
       then stop; idle keep-alive connections are simply closed */
    MHD_socket listen_fd = MHD_quiesce_daemon(d);
    double t0 = ex_now();
    while (atomic_load(&sv.inflight) > 0 && ex_now() - t0 < SERVER_DRAIN_S)
        nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
    MHD_stop_daemon(d);
    d = NULL;
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    rc = 0;

done:
    if (d) MHD_stop_daemon(d); /* waits for the requests in progress */
    if (ai) freeaddrinfo(ai);
    llm_model_free(sv.model);
    llm_backend_free(be);
    return rc;
}

int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    /* SIGINT and SIGTERM are blocked in every thread (the backend's and
       microhttpd's inherit the mask) and taken by sigwait in run(). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
        fprintf(stderr, "%s: cannot block SIGINT/SIGTERM\n", prog);
        return EX_FAILURE;
    }
    signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill the server */

    server_opts o;
    int r = parse_args(argc, argv, &o);
    if (r == 0) r = run(&o, &stop);
    else if (r == -1) { usage(stdout); r = 0; }
    else { usage(stderr); r = EX_USAGE; }
    return r;
}
