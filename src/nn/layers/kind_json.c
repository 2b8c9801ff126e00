/* The JSON readers and writers the kinds' to_json / from_json share: type
 * checks only, so that each value range is checked once, by the kind's
 * public constructor. */
#include <float.h>
#include <math.h>
#include <cjson/cJSON.h>
#include "kinds.h"

const char *const llm__activation_names[6] = { "none", "relu", "sigmoid", "tanh", "gelu", "softmax" };

int llm__json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

int llm__json_bool(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsBool(v)) return 0;
    *out = cJSON_IsTrue(v);
    return 1;
}

int llm__json_float(const cJSON *o, const char *key, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= (double)FLT_MAX)) return 0;
    *out = (float)v->valuedouble;
    return 1;
}

int llm__json_enum(const cJSON *o, const char *key, const char *const *names, int n, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(v->valuestring, names[i]) == 0) { *out = i; return 1; }
    return 0;
}

llm_layer *llm__json_bad(const char *kind) {
    llm__error(LLM_ERR_FORMAT, "llm_model_load: layer '%.40s' has missing or invalid settings", kind);
    return NULL;
}

static llm_status added(const cJSON *item) {
    return item ? LLM_OK : llm__oom("llm_model_save");
}

llm_status llm__json_add_int(cJSON *o, const char *key, int64_t v) {
    return added(cJSON_AddNumberToObject(o, key, (double)v));
}

llm_status llm__json_add_bool(cJSON *o, const char *key, int v) {
    return added(cJSON_AddBoolToObject(o, key, v != 0));
}

llm_status llm__json_add_float(cJSON *o, const char *key, float v) {
    return added(cJSON_AddNumberToObject(o, key, (double)v));
}

llm_status llm__json_add_string(cJSON *o, const char *key, const char *v) {
    return added(cJSON_AddStringToObject(o, key, v));
}
