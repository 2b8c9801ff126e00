/* Helpers shared by the suites that run the example programs. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
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
