/* Built against an installed libllm with pkg-config (shared and static) by
 * .ci/run: proves the headers, the library and llm.pc work for a user. */
#include <stdio.h>
#include <string.h>
#include <llm/llm.h>

#define CHECK(call) do { llm_status s_ = (call); if (s_ != LLM_OK) { \
    fprintf(stderr, "%s: %s\n", llm_status_string(s_), llm_last_error()); return 1; } } while (0)

int main(void) {
    if (llm_version() != LLM_VERSION_NUMBER) {
        fprintf(stderr, "header %d != library %u\n", LLM_VERSION_NUMBER, llm_version());
        return 1;
    }
    llm_backend *cpu;
    CHECK(llm_backend_create(&cpu, LLM_BACKEND_CPU, NULL));
    /* XOR-ish: learn y = (x0 > 0) != (x1 > 0) with a tiny MLP */
    float x[64 * 2], y[64];
    for (int i = 0; i < 64; i++) {
        x[2 * i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
        x[2 * i + 1] = (float)((i * 11) % 13) / 6.0f - 1.0f;
        y[i] = (float)((x[2 * i] > 0) != (x[2 * i + 1] > 0));
    }
    llm_dataset *ds;
    CHECK(llm_dataset_from_host(&ds, LLM_DTYPE_F32, 2, (int64_t[]){64, 2}, x, LLM_DTYPE_F32, 1, (int64_t[]){64}, y));
    llm_model *m;
    CHECK(llm_model_sequential(&m, cpu));
    CHECK(llm_model_add(m, llm_layer_dense(16, LLM_ACT_TANH)));
    CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_optimizer *adam;
    CHECK(llm_optimizer_adam(&adam, 0.05f));
    CHECK(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
    llm_fit_options fo;
    llm_fit_options_init(&fo);
    fo.epochs = 200;
    fo.batch_size = 16;
    CHECK(llm_model_fit(m, ds, &fo, NULL));
    llm_metrics r;
    llm_metrics_init(&r);
    CHECK(llm_model_evaluate(m, ds, 0, &r));
    printf("libllm %s consumer: accuracy %.3f\n", llm_version_string(), r.accuracy);
    llm_model_free(m);
    llm_optimizer_free(adam);
    llm_dataset_free(ds);
    llm_backend_free(cpu);
    return r.accuracy >= 0.9 ? 0 : 1;
}
