/* The registry of layer kinds: one line per kind. The model file's loader
 * (src/nn/model_io.c) finds a kind here by its name and lets the kind read
 * its own settings; the table-driven test (tests/test_kinds.c) walks it.
 *
 * Adding a layer kind touches exactly:
 *   1. its own file, src/nn/layers/<kind>.c: a state struct (the typed
 *      settings, the public options struct where there is one, and a named
 *      parameter view filled in build), the llm__layer_vt descriptor
 *      llm__<kind>_kind (build, forward with its backward, to_json and
 *      from_json; decode_step etc. when it has them), and the constructor;
 *   2. the constructor's declaration and documentation in include/llm/layer.h
 *      (and src/libllm.map picks it up by its llm_ prefix);
 *   3. one line below;
 *   4. docs/FORMAT.md: its architecture entry and its tensors;
 *   5. its row in tests/test_kinds.c (save, load, compare, gradient check),
 *      plus its own tests.
 * src/nn/layers/kinds.h only when another module must read its state. */
#include <cjson/cJSON.h>
#include "kinds.h"
#include "../model_graph.h" /* llm__merge_from_kind */

#define LLM__LAYER_KINDS(X)   \
    X(embedding)              \
    X(lstm)                   \
    X(gru)                    \
    X(bidirectional)          \
    X(dense)                  \
    X(activation)             \
    X(dropout)                \
    X(layernorm)              \
    X(global_pool)            \
    X(transformer_embedding)  \
    X(attention)              \
    X(transformer_block)      \
    X(lm_head)

#define DECLARE(k) extern const llm__layer_vt llm__##k##_kind;
LLM__LAYER_KINDS(DECLARE)
#define ENTRY(k) &llm__##k##_kind,
static const llm__layer_vt *const kinds[] = { LLM__LAYER_KINDS(ENTRY) };
#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))

int llm__kind_count(void) { return N_KINDS; }

const llm__layer_vt *llm__kind_at(int i) { return i >= 0 && i < N_KINDS ? kinds[i] : NULL; }

const llm__layer_vt *llm__kind_find(const char *name) {
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(kinds[i]->kind, name) == 0) return kinds[i];
    return NULL;
}

cJSON *llm__layer_to_json(const llm_layer *l) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "kind", l->vt->kind) || (l->vt->to_json && l->vt->to_json(l, o) != LLM_OK)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

llm_layer *llm__layer_from_json(const cJSON *o, int depth) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsObject(o) || !cJSON_IsString(kind)) {
        llm__error(LLM_ERR_FORMAT, "llm_model_load: a layer entry has no kind");
        return NULL;
    }
    llm_layer *merge = llm__merge_from_kind(kind->valuestring); /* graph merge layers: no settings */
    if (merge) return merge;
    const llm__layer_vt *vt = llm__kind_find(kind->valuestring);
    if (!vt || !vt->from_json) {
        llm__error(LLM_ERR_FORMAT, "llm_model_load: unknown layer kind '%.40s'", kind->valuestring);
        return NULL;
    }
    return vt->from_json(o, depth);
}
