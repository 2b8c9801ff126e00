/* llm_model_export_onnx: checks the call, gathers the model's view
 * (model_view.c) and hands it to the ONNX module, libllm-onnx.so.
 *
 * The module is dlopen()ed on each call, from the first of
 *   1. $LLM_ONNX_MODULE, if set (then only there);
 *   2. the folder of the file that holds libllm, then ../lib beside it;
 *   3. the dynamic linker's search path;
 * the same order as the CUDA and MPI modules (src/core/backend.c), and
 * closed again after it: it keeps no state, and exporting is rare enough
 * that a missing module found later (installed meanwhile) should just work. */
#include <dlfcn.h>
#include <stdio.h>
#include "llm/onnx.h"
#include "core/internal.h"
#include "core/module.h"
#include "io/atomic_file.h"
#include "model_view.h"

#define DEFAULT_OPSET 17
#define MAX_OPSET 21

void llm_onnx_options_init(llm_onnx_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->opset = DEFAULT_OPSET;
    opts->text_pipeline = 1;
}

static const llm__onnx_host onnx_host = {
    sizeof(llm__onnx_host), sizeof(llm__onnx_module), sizeof(llm__onnx_view), sizeof(llm__onnx_settings),
    LLM_VERSION_NUMBER, llm__error, llm__write_atomic, llm__write_all,
};

/* Opens the module into *handle and fills *mod; LLM_ERR_UNAVAILABLE with
 * the reason when it cannot. */
static llm_status load_module(void **handle, llm__onnx_module *mod, const char *fn) {
    char why[1024];
    *handle = llm__module_open("LLM_ONNX_MODULE", LLM__ONNX_MODULE_FILE, "ONNX",
                               "libllm was built without it (build it with Debian's libprotobuf-c-dev and "
                               "protobuf-c-compiler present) or it was not installed", why, sizeof why);
    if (!*handle) return llm__error(LLM_ERR_UNAVAILABLE, "%s: %s", fn, why);
    llm__onnx_module_init_fn init;
    *(void **)&init = dlsym(*handle, LLM__ONNX_MODULE_ENTRY);
    if (!init)
        return llm__error(LLM_ERR_UNAVAILABLE, "%s: ONNX module is incompatible with this libllm: it has no %s", fn,
                          LLM__ONNX_MODULE_ENTRY);
    memset(mod, 0, sizeof *mod);
    llm_status s = init(&onnx_host, mod);
    if (s != LLM_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", llm_last_error());
        return llm__error(LLM_ERR_UNAVAILABLE, "%s: ONNX module refused to load: %s", fn, msg);
    }
    if (mod->host_size != sizeof(llm__onnx_host) || mod->module_size != sizeof(llm__onnx_module) ||
        mod->view_size != sizeof(llm__onnx_view) || mod->settings_size != sizeof(llm__onnx_settings) ||
        mod->version != LLM_VERSION_NUMBER || !mod->export_model)
        return llm__error(LLM_ERR_UNAVAILABLE, "%s: ONNX module is from another build of libllm (version %d, this is %d)",
                          fn, mod->version, LLM_VERSION_NUMBER);
    return LLM_OK;
}

llm_status llm_model_export_onnx(const llm_model *model, const char *path, const llm_onnx_options *opts) {
    static const char fn[] = "llm_model_export_onnx";
    if (!model || !path) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!path[0]) return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: empty path", fn);
    llm_onnx_options o;
    llm_onnx_options_init(&o);
    if (opts) LLM__CHECK(LLM__OPTIONS_MERGE(&o, opts, fn));
    if (o.opset == 0) o.opset = DEFAULT_OPSET;
    if (o.opset < DEFAULT_OPSET || o.opset > MAX_OPSET)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: opset = %d must be 0 (the default, %d) or in [%d, %d]", fn,
                          o.opset, DEFAULT_OPSET, DEFAULT_OPSET, MAX_OPSET);
    if (o.batch < 0 || o.batch > INT32_MAX)
        return llm__error(LLM_ERR_INVALID_ARGUMENT, "%s: batch = %lld must be 0 (dynamic) or in [1, 2^31)", fn,
                          (long long)o.batch);
    int members = 0;
    LLM__CHECK(llm_model_ensemble_size(model, &members));
    if (members > 0)
        return llm__error(LLM_ERR_NOT_SUPPORTED, "%s: an ensemble cannot be exported (its members read text through "
                          "pipelines of their own); export each member (llm_model_ensemble_member)", fn);

    llm__onnx_settings settings = { fn, o.opset, o.batch, o.text_pipeline != 0 };
    llm__onnx_model_view view;
    llm_status s = llm__onnx_view_make(model, &view, fn);
    void *handle = NULL;
    llm__onnx_module mod;
    if (s == LLM_OK) s = load_module(&handle, &mod, fn);
    if (s == LLM_OK) s = mod.export_model(&onnx_host, &view.view, &settings, path);
    if (handle) dlclose(handle);
    llm__onnx_view_free(&view);
    return s;
}
