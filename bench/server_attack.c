/* spam_server under the attacks of issue 24, measured: /healthz latency
 * and the server's resident memory while one address holds 1020 idle
 * connections and while 500 connections each send a 1 MiB body 200 bytes
 * short; a double SIGTERM (and a SIGINT) under keep-alive load; and how long
 * and how much memory a FIFO or a 2 GiB sparse file as --model costs. The
 * server runs with its defaults, so the same run works on older builds
 * (--bin) for a side-by-side comparison. Prints one line per measurement
 * with its limit and exits 1 if any is missed.
 *
 *   server_attack --model M.safetensors [--bin build/bin] [--threads 2]
 *
 * The limits (docs/SERVER.md): /healthz under 50 ms; peak RSS under the RSS
 * at start + --max-body-memory (64 MiB) + 64 KiB per connection + 16 MiB;
 * exit status 0 with no kept-alive request lost; a bad model file refused in
 * under 0.1 s and 50 MB. "127.0.0.2" and so on are other client addresses on
 * loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

#define HEALTH_LIMIT_MS 50.0
#define PROBES 20
#define IDLE_CONNECTIONS 1020
#define BODY_CONNECTIONS 500
#define BODY_BYTES (1 << 20)
#define BODY_MEMORY_DEFAULT (64.0 * 1024 * 1024)  /* spam_server's --max-body-memory */
#define PER_CONNECTION_BYTES (64.0 * 1024)
#define SLACK_BYTES (16.0 * 1024 * 1024)

static int failures;

static void verdict(const char *what, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void verdict(const char *what, int ok, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%-44s %-4s %s\n", what, ok ? "ok" : "FAIL", msg);
    fflush(stdout);
    failures += !ok;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ------------------------------------------------------------ the server */

typedef struct proc {
    pid_t pid;
    int port;
} proc;

static int start_server(const char *bin, const char *model, const char *threads, proc *p) {
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/spam_server", bin);
    int out[2];
    if (pipe(out) != 0) return -1;
    p->pid = fork();
    if (p->pid < 0) return -1;
    if (p->pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        if (dn < 0 || dup2(dn, 0) < 0 || dup2(out[1], 1) < 0 || dup2(dn, 2) < 0) _exit(127);
        close(out[0]);
        execl(prog, prog, "--model", model, "--host", "127.0.0.1", "--port", "0", "--threads", threads, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[256];
    size_t n = 0;
    double t0 = ex_now();
    while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n') && ex_now() - t0 < 30) {
        struct pollfd pf = { out[0], POLLIN, 0 };
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t got = read(out[0], line + n, sizeof line - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
    }
    line[n] = '\0';
    close(out[0]);
    if (sscanf(line, "listening on http://127.0.0.1:%d", &p->port) != 1) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        fprintf(stderr, "server_attack: %s did not start (stdout: '%s')\n", prog, line);
        return -1;
    }
    return 0;
}

/* VmRSS or VmHWM of pid, in bytes. */
static double proc_bytes(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    double v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') v = atof(line + n + 1) * 1024;
    fclose(f);
    return v;
}

/* ------------------------------------------------------------ clients */

static int dial(int port, const char *src, double timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = { (time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6) };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    if (src) {
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    }
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

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

/* One response's status and whether it closes; -1 when none came whole. */
static int read_response(int fd, int *closes) {
    char buf[8192];
    size_t n = 0;
    long want = -1;
    while (want < 0 || (long)n < want) {
        if (n >= sizeof buf - 1) return -1;
        ssize_t got = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        n += (size_t)got;
        buf[n] = '\0';
        char *sep = strstr(buf, "\r\n\r\n");
        if (sep && want < 0) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            want = (long)(sep + 4 - buf) + (cl && cl < sep ? atol(cl + 17) : 0);
        }
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) return -1;
    if (closes) *closes = strcasestr(buf, "\r\nConnection: close\r\n") != NULL;
    return status;
}

/* PROBES GET /healthz from 127.0.0.1 on new connections; the slowest and
 * the median in ms (a probe without a 200 within 2 s counts 2000 ms). */
static void probe_health(int port, double *median, double *worst) {
    double t[PROBES];
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < PROBES; i++) {
        double t0 = ex_now();
        int fd = dial(port, "127.0.0.1", 2.0);
        int status = -1;
        if (fd >= 0) {
            send_all(fd, req, sizeof req - 1);
            status = read_response(fd, NULL);
            close(fd);
        }
        t[i] = status == 200 ? (ex_now() - t0) * 1e3 : 2000.0;
        sleep_ms(10);
    }
    for (int i = 1; i < PROBES; i++) /* insertion sort: 20 values */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double x = t[j]; t[j] = t[j - 1]; t[j - 1] = x; }
    *median = t[PROBES / 2];
    *worst = t[PROBES - 1];
}

static int raise_fd_limit(long n) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if ((long)rl.rlim_cur >= n) return 0;
    if (rl.rlim_max != RLIM_INFINITY && (long)rl.rlim_max < n) return -1;
    rl.rlim_cur = (rlim_t)n;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

/* ------------------------------------------------------------ attacks */

static void attack_idle(const proc *p, double budget_base) {
    static int fds[IDLE_CONNECTIONS];
    int opened = 0;
    for (int i = 0; i < IDLE_CONNECTIONS; i++) opened += (fds[i] = dial(p->port, "127.0.0.2", 2.0)) >= 0;
    sleep_ms(300);
    double med, worst;
    probe_health(p->port, &med, &worst);
    double rss = proc_bytes(p->pid, "VmRSS");
    verdict("1020 idle connections: /healthz", worst < HEALTH_LIMIT_MS, "median %.2f ms, slowest %.2f ms (%d opened)",
            med, worst, opened);
    double limit = budget_base + IDLE_CONNECTIONS * PER_CONNECTION_BYTES + SLACK_BYTES;
    verdict("1020 idle connections: RSS", rss < limit, "%.1f MiB (limit %.1f MiB)", rss / 1048576, limit / 1048576);
    for (int i = 0; i < IDLE_CONNECTIONS; i++)
        if (fds[i] >= 0) close(fds[i]);
}

static void attack_bodies(const proc *p, double rss0) {
    static int fds[BODY_CONNECTIONS];
    char *body = malloc(BODY_BYTES);
    if (!body) return;
    memset(body, 'x', BODY_BYTES);
    memcpy(body, "{\"text\":\"", 9);
    char head[256];
    int hn = snprintf(head, sizeof head, "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n", BODY_BYTES);
    double t0 = ex_now();
    int refused = 0;
    for (int i = 0; i < BODY_CONNECTIONS; i++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.0.%d", 2 + i / 32); /* 32 per address: under the per-address limit */
        fds[i] = dial(p->port, src, 0.5);
        if (fds[i] < 0) continue;
        send_all(fds[i], head, (size_t)hn);
        send_all(fds[i], body, BODY_BYTES - 200);
    }
    double sent_s = ex_now() - t0;
    double med, worst;
    probe_health(p->port, &med, &worst);
    for (int i = 0; i < BODY_CONNECTIONS; i++) {
        if (fds[i] < 0) continue;
        struct pollfd pf = { fds[i], POLLIN, 0 };
        if (poll(&pf, 1, 0) > 0 && read_response(fds[i], NULL) == 503) refused++;
    }
    double peak = proc_bytes(p->pid, "VmHWM");
    verdict("500 x 1 MiB bodies held: /healthz", worst < HEALTH_LIMIT_MS, "median %.2f ms, slowest %.2f ms", med,
            worst);
    double limit = rss0 + BODY_MEMORY_DEFAULT + BODY_CONNECTIONS * PER_CONNECTION_BYTES + SLACK_BYTES;
    verdict("500 x 1 MiB bodies held: peak RSS", peak < limit, "%.1f MiB (limit %.1f MiB; %d answered 503 at once; "
            "sent in %.1f s)", peak / 1048576, limit / 1048576, refused, sent_s);
    for (int i = 0; i < BODY_CONNECTIONS; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(body);
}

/* ------------------------------------------------------------ stopping */

typedef struct hammer {
    int port;
    volatile int *stop;
    int ok, unavailable, refused, fresh_lost, keepalive_lost, bad;
    char why[96];   /* the first "other" */
} hammer;

static void *hammer_main(void *arg) {
    hammer *h = arg;
    static const char body[] = "{\"text\":\"Subject: free money\\n\\nclick here now to win cash\"}";
    char req[512];
    int n = snprintf(req, sizeof req, "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s", sizeof body - 1, body);
    int fd = -1, reused = 0;
    while (!*h->stop) {
        if (fd < 0) {
            fd = dial(h->port, NULL, 5.0);
            if (fd < 0) {
                if (errno == ECONNREFUSED || errno == ECONNRESET) h->refused++; /* RST to the SYN: refused too */
                else if (!h->bad++) snprintf(h->why, sizeof h->why, "connect: %s", strerror(errno));
                return NULL;
            }
            reused = 0;
        }
        send_all(fd, req, (size_t)n);
        int closes = 0, status = read_response(fd, &closes);
        if (status < 0) {
            if (reused) h->keepalive_lost++;
            else h->fresh_lost++;
        } else if (status == 200) {
            h->ok++;
        } else if (status == 503) {
            h->unavailable++;
        } else if (!h->bad++) {
            snprintf(h->why, sizeof h->why, "status %d", status);
        }
        if (status < 0 || closes) {
            close(fd);
            fd = -1;
        } else {
            reused = 1;
        }
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static void double_signal(proc *p) {
    enum { CLIENTS = 8 };
    volatile int stop = 0;
    hammer h[CLIENTS];
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i].port = p->port;
        h[i].stop = &stop;
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    sleep_ms(1000);
    double t0 = ex_now();
    kill(p->pid, SIGTERM);
    sleep_ms(30);
    kill(p->pid, SIGTERM);
    sleep_ms(30);
    kill(p->pid, SIGINT);
    int st = 0;
    while (waitpid(p->pid, &st, WNOHANG) == 0 && ex_now() - t0 < 15) sleep_ms(5);
    if (ex_now() - t0 >= 15) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
    }
    double took = ex_now() - t0;
    stop = 1;
    hammer all;
    memset(&all, 0, sizeof all);
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        if (h[i].bad && !all.why[0]) memcpy(all.why, h[i].why, sizeof all.why);
        all.ok += h[i].ok;
        all.unavailable += h[i].unavailable;
        all.refused += h[i].refused;
        all.fresh_lost += h[i].fresh_lost;
        all.keepalive_lost += h[i].keepalive_lost;
        all.bad += h[i].bad;
    }
    int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    verdict("SIGTERM, SIGTERM, SIGINT under load: exit", clean, "%s %d after %.2f s",
            WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), took);
    verdict("SIGTERM, SIGTERM, SIGINT under load: answers", all.keepalive_lost == 0 && all.bad == 0,
            "200: %d, 503: %d, refused: %d, kept-alive lost: %d, new connection reset: %d, other: %d%s%s", all.ok,
            all.unavailable, all.refused, all.keepalive_lost, all.fresh_lost, all.bad, all.bad ? ": " : "", all.why);
}

/* ------------------------------------------------------------ model files */

static void bad_model(const char *bin, const char *what, const char *path) {
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/spam_server", bin);
    double t0 = ex_now();
    pid_t pid = fork();
    if (pid < 0) return;
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        if (dn < 0 || dup2(dn, 0) < 0 || dup2(dn, 1) < 0 || dup2(dn, 2) < 0) _exit(127);
        execl(prog, prog, "--model", path, "--port", "0", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &st, WNOHANG, &ru) == 0) {
        if (ex_now() - t0 > 30) {
            kill(pid, SIGKILL);
            wait4(pid, &st, 0, &ru);
            break;
        }
        sleep_ms(1);
    }
    double took = ex_now() - t0;
    double mb = (double)ru.ru_maxrss / 1024;
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 1 && took < 0.1 && mb < 50;
    verdict(what, ok, "%s %d in %.3f s, peak RSS %.1f MB", WIFEXITED(st) ? "exit" : "killed by signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), took, mb);
}

static void model_files(const char *bin) {
    char dir[] = "/tmp/llm_attack_XXXXXX";
    if (!mkdtemp(dir)) return;
    char fifo[64], sparse[64];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(sparse, sizeof sparse, "%s/sparse", dir);
    if (mkfifo(fifo, 0600) == 0) bad_model(bin, "--model FIFO", fifo);
    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[536870912],\"data_offsets\":[0,2147483648]}}";
    unsigned char size8[8];
    uint64_t hn = sizeof hdr - 1;
    for (int i = 0; i < 8; i++) size8[i] = (unsigned char)(hn >> (8 * i));
    int fd = open(sparse, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0 && write(fd, size8, 8) == 8 && write(fd, hdr, hn) == (ssize_t)hn &&
        ftruncate(fd, (off_t)(8 + hn + (UINT64_C(1) << 31))) == 0) {
        close(fd);
        bad_model(bin, "--model 2 GiB sparse, no libllm metadata", sparse);
    } else if (fd >= 0) {
        close(fd);
    }
    unlink(fifo);
    unlink(sparse);
    rmdir(dir);
}

int main(int argc, char **argv) {
    const char *bin = arg_str(argc, argv, "--bin", "build/bin");
    const char *model = arg_str(argc, argv, "--model", NULL);
    const char *threads = arg_str(argc, argv, "--threads", "2");
    if (!model) {
        fprintf(stderr, "usage: server_attack --model M.safetensors [--bin build/bin] [--threads 2]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (raise_fd_limit(IDLE_CONNECTIONS + BODY_CONNECTIONS + 256) != 0) {
        fprintf(stderr, "server_attack: needs %d open files (ulimit -n)\n", IDLE_CONNECTIONS + BODY_CONNECTIONS + 256);
        return 1;
    }
    proc p;
    if (start_server(bin, model, threads, &p) != 0) return 1;
    sleep_ms(200);
    double rss0 = proc_bytes(p.pid, "VmRSS"), med, worst;
    probe_health(p.port, &med, &worst);
    printf("spam_server %s/spam_server, --threads %s, RSS at start %.1f MiB, /healthz median %.2f ms, slowest %.2f ms\n",
           bin, threads, rss0 / 1048576, med, worst);
    attack_idle(&p, rss0);
    sleep_ms(500);
    attack_bodies(&p, rss0);
    sleep_ms(500);
    double_signal(&p);
    model_files(bin);
    printf("%s\n", failures ? "server_attack: FAILED" : "server_attack: all within limits");
    return failures ? 1 : 0;
}
