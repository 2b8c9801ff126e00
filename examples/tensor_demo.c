/* A first look at libllm: a backend, a tensor, and an error. Built by
 * `make`; seed_lstm.c trains the seed model, spam_train is the full tool. */
#include <stdio.h>
#include <llm/llm.h>

#define CHECK(call) do { llm_status s_ = (call); if (s_ != LLM_OK) { \
    fprintf(stderr, "%s: %s\n", llm_status_string(s_), llm_last_error()); return 1; } } while (0)

/* What the CPU backend runs on (OpenBLAS's kernels, threads). */
static int describe(llm_backend *cpu) {
    char desc[256];
    CHECK(llm_backend_describe(cpu, desc, sizeof desc, NULL));
    printf("libllm %s on %s\n", llm_version_string(), desc);
    return 0;
}

/* Host data into a tensor, a reshape, and back out. */
static int round_trip(llm_backend *cpu) {
    const float a[6] = {1, 2, 3, 4, 5, 6};
    llm_tensor *t;
    CHECK(llm_tensor_from_host(&t, cpu, LLM_DTYPE_F32, 2, (int64_t[]){2, 3}, a, sizeof a));
    float back[6];
    int64_t shape[LLM_MAX_DIMS];
    llm_status s = llm_tensor_reshape(t, 2, (int64_t[]){3, 2});
    if (s == LLM_OK) s = llm_tensor_to_host(t, back, sizeof back);
    if (s == LLM_OK) s = llm_tensor_shape(t, shape);
    llm_tensor_free(t);
    CHECK(s);
    printf("tensor %lldx%lld: %g %g / %g %g / %g %g\n", (long long)shape[0], (long long)shape[1],
           back[0], back[1], back[2], back[3], back[4], back[5]);
    return 0;
}

/* Bad input comes back as a status and a message, never a crash. */
static void bad_shape(llm_backend *cpu) {
    llm_tensor *bad;
    llm_status s = llm_tensor_create(&bad, cpu, LLM_DTYPE_F32, 2, (int64_t[]){3, -1});
    printf("a bad shape is an error, not a crash: %s: %s\n", llm_status_string(s), llm_last_error());
}

int main(void) {
    llm_backend *cpu;
    CHECK(llm_backend_create(&cpu, LLM_BACKEND_CPU, NULL));
    int rc = describe(cpu);
    if (!rc) rc = round_trip(cpu);
    if (!rc) bad_shape(cpu);
    llm_backend_free(cpu);
    return rc;
}
