/* The seed model's training or inference speed, with the same options and
 * last line as ../shared/peers/torch_lstm_bench.py (samples_per_s=...).
 * --save PATH also writes the model (after the timed steps), e.g. for
 * bench/onnx_compare.sh to export and run in ONNX Runtime. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <llm/llm.h>
#include "bench.h"


int main(int argc, char **argv) {
    ex_fast_blas(argv); /* before anything else: it may start the program again */
    int vocab = arg_int(argc, argv, "--vocab", 20000), embed = arg_int(argc, argv, "--embed", 64);
    int hidden = arg_int(argc, argv, "--hidden", 128), seq = arg_int(argc, argv, "--seq", 200);
    int batch = arg_int(argc, argv, "--batch", 32), steps = arg_int(argc, argv, "--steps", 30);
    int warmup = arg_int(argc, argv, "--warmup", 3), threads = arg_int(argc, argv, "--threads", 2);
    const char *mode = arg_str(argc, argv, "--mode", "train"), *backend = arg_str(argc, argv, "--backend", "cpu");
    const char *save = arg_str(argc, argv, "--save", NULL);
    CHECK_RANGE("--steps", steps, 1);
    CHECK_RANGE("--warmup", warmup, 0);
    CHECK_RANGE("--batch", batch, 1);
    int train = strcmp(mode, "train") == 0;

    llm_backend_options bo;
    llm_backend_options_init(&bo);
    bo.threads = threads;
    llm_backend *be;
    CHECK(llm_backend_create(&be, strcmp(backend, "cuda") == 0 ? LLM_BACKEND_CUDA : LLM_BACKEND_CPU, &bo));
    char desc[256];
    CHECK(llm_backend_describe(be, desc, sizeof desc, NULL));
    printf("libllm %s %s; mode=%s vocab=%d embed=%d hidden=%d seq=%d batch=%d\n", llm_version_string(), desc, mode,
           vocab, embed, hidden, seq, batch);

    llm_model *m;
    CHECK(bench_seed_model(be, vocab, embed, hidden, &m));

    int32_t *ids = malloc((size_t)batch * seq * 4);
    float *y = malloc((size_t)batch * 4);
    uint64_t s = 1234;
    for (int i = 0; i < batch * seq; i++) { s = s * 6364136223846793005ULL + 1442695040888963407ULL; ids[i] = 2 + (int32_t)((s >> 33) % (uint64_t)(vocab - 2)); }
    for (int i = 0; i < batch; i++) y[i] = (float)(i % 2);
    llm_tensor *x, *t, *out = NULL;
    CHECK(llm_tensor_from_host(&x, be, LLM_DTYPE_I32, 2, (int64_t[]){batch, seq}, ids, (size_t)batch * seq * 4));
    CHECK(llm_tensor_from_host(&t, be, LLM_DTYPE_F32, 1, (int64_t[]){batch}, y, (size_t)batch * 4));

    double t0 = 0;
    float loss = 0;
    for (int i = 0; i < warmup + steps; i++) {
        if (i == warmup) t0 = ex_now();
        if (train) {
            CHECK(llm_model_train_on_batch(m, x, t, &loss, NULL));
        } else {
            llm_tensor_free(out);
            CHECK(llm_model_predict(m, x, &out));
        }
    }
    double dt = ex_now() - t0;
    double sps = (double)steps * batch / dt;
    double fwd = (double)seq * 2 * 4 * hidden * (embed + hidden) + 2.0 * hidden;
    printf("steps=%d time=%.3fs loss=%.4f gflops=%.1f\n", steps, dt, (double)loss, sps * (train ? 3 * fwd : fwd) / 1e9);
    printf("samples_per_s=%.2f\n", sps);
    if (save) CHECK(llm_model_save(m, save));
    llm_tensor_free(out);
    llm_tensor_free(x);
    llm_tensor_free(t);
    free(ids);
    free(y);
    llm_model_free(m);
    llm_backend_free(be);
    return 0;
}
