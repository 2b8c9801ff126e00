/* Atomic file writes (atomic_file.h): temporary file, fsync, rename, folder
 * fsync. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "core/internal.h"
#include "io/atomic_file.h"

static llm_status io_error(const char *path, const char *what, int err) {
    char eb[128];
    /* GNU strerror_r (we build with _GNU_SOURCE): thread-safe, returns the text. */
    return llm__error(LLM_ERR_IO, "%.200s: %s: %s", path, what, strerror_r(err, eb, sizeof eb));
}

int llm__write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, c, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates "<path>.tmp.XXXXXX" exclusively, like mkstemp, but with a mode
 * the umask applies to (mkstemp's is always 0600). Returns the fd or -1
 * with errno set. */
static int create_temp(const char *path, char *tmp, mode_t mode) {
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static atomic_uint counter;
    size_t base = strlen(path);
    memcpy(tmp, path, base);
    memcpy(tmp + base, ".tmp.", 5);
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     ((uint64_t)getpid() << 40) ^ ((uint64_t)atomic_fetch_add(&counter, 1) << 20) ^
                     (uint64_t)(uintptr_t)tmp;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        for (int k = 0; k < 6; k++) {
            tmp[base + 5 + k] = abc[z % (sizeof abc - 1)];
            z /= (sizeof abc - 1);
        }
        tmp[base + 11] = '\0';
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

/* The folder of path as a new string ("." or "/" when it has no other),
 * NULL when out of memory. Made before the file is written, so that nothing
 * can fail for want of memory once it is in place. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return llm__strdup(".");
    if (slash == path) return llm__strdup("/");
    char *dir = llm__malloc((size_t)(slash - path) + 1);
    if (dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    return dir;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = 0;
    /* Some file systems cannot sync a directory; that loses nothing. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) err = errno;
    close(fd);
    return err;
}

llm_status llm__write_atomic(const char *path, llm__fill_fn fill, void *user) {
    if (!path || !path[0]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "llm__write_atomic: empty path");
    /* Replacing a file keeps its permissions; a new one gets 0666 & ~umask. */
    struct stat old;
    int replacing = stat(path, &old) == 0 && S_ISREG(old.st_mode);
    mode_t mode = replacing ? (old.st_mode & 0777) : 0666;

    size_t plen = strlen(path);
    char *tmp = plen < SIZE_MAX - 16 ? llm__malloc(plen + 16) : NULL;
    char *dir = dir_of(path);
    if (!tmp || !dir) {
        llm__free(dir);
        llm__free(tmp);
        return llm__oom("llm__write_atomic");
    }
    int fd = create_temp(path, tmp, mode);
    if (fd < 0) {
        llm_status s = io_error(path, "cannot create a temporary file in its directory", errno);
        llm__free(dir);
        llm__free(tmp);
        return s;
    }
    int err = 0;
    const char *what = NULL;
    if (replacing && fchmod(fd, mode) != 0) { err = errno; what = "cannot set the mode"; }
    if (!err && (err = fill(fd, user)) != 0) what = "write failed";
    if (!err && fsync(fd) != 0) { err = errno; what = "fsync failed"; }
    if (close(fd) != 0 && !err) { err = errno; what = "close failed"; }
    if (!err && rename(tmp, path) != 0) { err = errno; what = "cannot replace it"; }
    if (err) {
        unlink(tmp);
        llm__free(dir);
        llm__free(tmp);
        return io_error(path, what, err);
    }
    llm__free(tmp);
    err = fsync_dir(dir);
    llm__free(dir);
    if (err) return io_error(path, "written, but syncing its directory failed", err);
    return LLM_OK;
}
