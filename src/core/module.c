/* Finding and loading run-time modules (see module.h). The search order
 * lets every layout work without configuration: build/bin/x and
 * build/tests/x find build/lib/; /usr/bin/x finds /usr/lib/; an installed
 * libllm.so finds the modules beside it. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "module.h"

int llm__self_dir(char *dir, size_t len) {
    Dl_info info;
    char path[PATH_MAX];
    path[0] = '\0';
    if (dladdr((void *)&llm__self_dir, &info) && info.dli_fname && strchr(info.dli_fname, '/'))
        snprintf(path, sizeof path, "%s", info.dli_fname);
    if (!strchr(path, '/')) { /* a program's own name may come without a path */
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) return 0;
        path[n] = '\0';
    }
    char *slash = strrchr(path, '/');
    if (!slash) return 0;
    *slash = '\0';
    snprintf(dir, len, "%s", path[0] ? path : "/");
    return 1;
}

void *llm__module_try_open(const char *path, char *tried, size_t len, int *fatal) {
    if (access(path, F_OK) != 0) {
        size_t used = strlen(tried);
        snprintf(tried + used, len - used, "%s%s", used ? ", " : "", path);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(tried, len, "%s exists but cannot be loaded: %s", path, e ? e : "unknown dlopen error");
        *fatal = 1;
    }
    return h;
}

void *llm__module_open(const char *env_var, const char *file, const char *what, const char *hint, char *why,
                       size_t why_len) {
    char tried[300] = "";
    int fatal = 0;
    void *h = NULL;
    const char *env = getenv(env_var);
    if (env && env[0]) {
        h = llm__module_try_open(env, tried, sizeof tried, &fatal);
        if (!h)
            snprintf(why, why_len, "%s module not loaded: %s%s%s%s", what, fatal ? "" : env_var, fatal ? "" : "=",
                     tried, fatal ? "" : " does not exist");
        return h;
    }
    char dir[PATH_MAX], path[PATH_MAX + 64];
    if (llm__self_dir(dir, sizeof dir)) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        h = llm__module_try_open(path, tried, sizeof tried, &fatal);
        if (!h && !fatal) {
            snprintf(path, sizeof path, "%s/../lib/%s", dir, file);
            h = llm__module_try_open(path, tried, sizeof tried, &fatal);
        }
    }
    if (!h && !fatal) {
        h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            /* "not found" on the search path is the common case; any other
             * error means a module was found and failed */
            if (e && !strstr(e, "cannot open shared object file")) {
                snprintf(tried, sizeof tried, "%s", e);
                fatal = 1;
            }
        }
    }
    if (!h) {
        if (fatal)
            snprintf(why, why_len, "%s module not loaded: %s", what, tried);
        else
            snprintf(why, why_len, "%s module %s not found (looked in %s and the library search path; %s; %s can name it)",
                     what, file, tried[0] ? tried : "no directory", hint, env_var);
    }
    return h;
}
