/* Helpers shared by the suites that run the example programs. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include "testutil.h"

double tu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* $LLM_BIN_DIR, else the bin/ folder next to this runner's tests/ folder
 * (so BUILD=other trees find their own programs), else ../build/bin. */
const char *tu_bin_dir(void) {
    const char *d = getenv("LLM_BIN_DIR");
    if (d && *d) return d;
    static char guess[4096];
    ssize_t n = readlink("/proc/self/exe", guess, sizeof guess - 16);
    if (n > 0) {
        guess[n] = '\0';
        char *slash = strrchr(guess, '/');
        if (slash) {
            strcpy(slash, "/../bin");
            if (access(guess, X_OK) == 0) return guess;
        }
    }
    return "../build/bin";
}

char *tu_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) buf[n] = '\0';
        else { free(buf); buf = NULL; }
    }
    fclose(f);
    return buf;
}

/* Runs in a child process (a GPU driver initialised in Check's parent would
 * be unusable in the forked tests): optionally sets an environment variable, then asks
 * llm_backend_is_available (mode 0) or llm_backend_create (mode 1, for
 * device `device`). Returns the status the child saw; msg gets its
 * llm_last_error(). */
int tu_probe_backend(llm_backend_kind kind, int mode, int device, const char *env, const char *value, char *msg,
                     size_t len, int *available) {
    int fds[2];
    msg[0] = '\0';
    *available = 0;
    if (pipe(fds) != 0) { snprintf(msg, len, "pipe() failed"); return LLM_ERR_INTERNAL; }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(msg, len, "fork() failed");
        return LLM_ERR_INTERNAL;
    }
    if (pid == 0) {
        close(fds[0]);
        if (env) setenv(env, value, 1);
        int avail = 0;
        llm_status st;
        if (mode == 0) {
            st = llm_backend_is_available(kind, &avail);
        } else {
            llm_backend_options o;
            llm_backend_options_init(&o);
            o.device = device;
            llm_backend *be = NULL;
            st = llm_backend_create(&be, kind, &o);
            avail = st == LLM_OK;
            llm_backend_free(be);
        }
        char buf[700];
        int n = snprintf(buf, sizeof buf, "%c%+04d%s", avail ? '1' : '0', (int)st, llm_last_error());
        if (n > 0) {
            ssize_t w = write(fds[1], buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
            (void)w;
        }
        _exit(0);
    }
    close(fds[1]);
    char buf[700];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (got >= sizeof buf - 1) break;
    }
    buf[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got < 5) { snprintf(msg, len, "the probe process crashed (wait status %d)", status); return LLM_ERR_INTERNAL; }
    *available = buf[0] == '1';
    snprintf(msg, len, "%s", buf + 5);
    buf[5] = '\0';
    return atoi(buf + 1);
}

