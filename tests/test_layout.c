/* Rules of the source layout, checked on the tree itself (tests run from
 * tests/, so the sources are ../src):
 *   - training reaches other processes only through the gradient exchange:
 *     src/nn includes nothing of src/dist, and src/dist includes nothing of
 *     src/nn but src/nn/grad_exchange.h (no include cycle);
 *   - layer settings and parameters are reached by name, never by slot: no
 *     opt_i[] / opt_f[] settings or P[0]-style parameter indexing in src/nn
 *     (each kind's typed state and named view, src/nn/layers/kinds.h);
 *   - backends are not recognised by kind: only the provider table
 *     (src/core/backend.c) and the providers themselves name a kind;
 *   - examples include public headers (<llm/...>) and their own common.h,
 *     never src/ (the Makefile also builds them with -Iinclude only). */
#include <ctype.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include "testutil.h"

static char g_bad[4096];
static int g_files;

static int is_source(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot && (strcmp(dot, ".c") == 0 || strcmp(dot, ".h") == 0 || strcmp(dot, ".cu") == 0 ||
                   strcmp(dot, ".cuh") == 0);
}

static void note(const char *path, const char *what) {
    size_t used = strlen(g_bad);
    snprintf(g_bad + used, sizeof g_bad - used, "  %s: %s\n", path, what);
}

/* Every #include "..." line of text, one at a time, into inc. */
static const char *next_include(const char *p, char *inc, size_t len) {
    while ((p = strstr(p, "#include \"")) != NULL) {
        p += strlen("#include \"");
        const char *end = strchr(p, '"');
        if (!end) return NULL;
        snprintf(inc, len, "%.*s", (int)(end - p), p);
        return end;
    }
    return NULL;
}

/* "P[<digit>" with P not the end of a longer name. */
static int has_param_slot(const char *text) {
    for (const char *p = text; (p = strstr(p, "P[")) != NULL; p++)
        if ((p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) && isdigit((unsigned char)p[2])) return 1;
    return 0;
}

static int check_src(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)ftw;
    if (flag != FTW_F || !is_source(path)) return 0;
    char *text = tu_read_text(path);
    if (!text) { note(path, "unreadable"); return 0; }
    g_files++;
    int in_nn = strstr(path, "/src/nn/") != NULL, in_dist = strstr(path, "/src/dist/") != NULL;
    char inc[512];
    for (const char *p = text; (p = next_include(p, inc, sizeof inc)) != NULL;) {
        if (in_nn && strstr(inc, "dist/")) note(path, "src/nn includes from src/dist");
        if (in_dist && strstr(inc, "nn/") && !strstr(inc, "nn/grad_exchange.h"))
            note(path, "src/dist includes from src/nn other than grad_exchange.h");
    }
    if (in_nn && (strstr(text, "opt_i[") || strstr(text, "opt_f[") || has_param_slot(text)))
        note(path, "reads layer settings or parameters by slot (use the kind's typed state and named view)");
    int provider = strstr(path, "/src/core/backend.c") || strstr(path, "/src/core/backend_cuda.c") ||
                   strstr(path, "/src/cpu/cpu_backend.c");
    if (!provider && (strstr(text, "LLM_BACKEND_CPU") || strstr(text, "LLM_BACKEND_CUDA")))
        note(path, "names a backend kind (ask a capability, llm__backend_has)");
    free(text);
    return 0;
}

START_TEST(src_layers_do_not_reach_across) {
    g_bad[0] = '\0';
    g_files = 0;
    ck_assert_int_eq(nftw("../src", check_src, 16, FTW_PHYS), 0);
    ck_assert_int_gt(g_files, 50);
    ck_assert_msg(g_bad[0] == '\0', "layout rules broken:\n%s", g_bad);
}
END_TEST

/* A header of the examples' own (examples/common.h, examples/strict_json.h):
 * a plain file name that lives in examples/, not a path into src/. */
static int example_header(const char *inc) {
    if (strchr(inc, '/')) return 0;
    char path[600];
    snprintf(path, sizeof path, "../examples/%s", inc);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int check_example(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)ftw;
    if (flag != FTW_F || !is_source(path)) return 0;
    char *text = tu_read_text(path);
    if (!text) { note(path, "unreadable"); return 0; }
    g_files++;
    char inc[512];
    for (const char *p = text; (p = next_include(p, inc, sizeof inc)) != NULL;)
        if (!example_header(inc)) note(path, "includes a private header (only <llm/...> and examples/'s own headers)");
    free(text);
    return 0;
}

START_TEST(examples_use_the_public_headers) {
    g_bad[0] = '\0';
    g_files = 0;
    ck_assert_int_eq(nftw("../examples", check_example, 16, FTW_PHYS), 0);
    ck_assert_int_gt(g_files, 5);
    ck_assert_msg(g_bad[0] == '\0', "examples break the rule:\n%s", g_bad);
}
END_TEST

Suite *suite_layout(void) {
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, src_layers_do_not_reach_across);
    tcase_add_test(tc, examples_use_the_public_headers);
    suite_add_tcase(s, tc);
    return s;
}
