/* The test runner: every suite in one binary so `make test` ends with one
 * Check summary. CK_RUN_SUITE / CK_RUN_CASE select parts (Check's own
 * variables); CK_FORK=no runs in-process for debuggers and sanitizers. */
#include <stdlib.h>
#include "testutil.h"

int main(void) {
    Suite *(*suites[])(void) = {
        suite_status, suite_tensor, suite_backend_ops, suite_model, suite_model_io, suite_graph, suite_compat_v12, suite_kinds, suite_ensemble, suite_gradcheck, suite_torch_parity, suite_transformer,
        suite_text, suite_bpe, suite_metrics, suite_safetensors, suite_examples, suite_server, suite_gpu, suite_concurrency, suite_hardening, suite_dist,
        suite_lifetime, suite_onnx,
        suite_seed, suite_layout, suite_gpt2, suite_lstm_bits, suite_gpt_bits, suite_crossval, suite_text_features,
    };
    SRunner *sr = srunner_create(NULL);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose lists every test */
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
