/* The graph record of a functional model's file ("libllm.graph",
 * docs/FORMAT.md): which layer each node applies to which earlier nodes.
 * The layers themselves (kinds, settings, weights) are stored as for a
 * Sequential model, in the order of their first application. Loading
 * treats the record as hostile: every index is checked, and the graph is
 * rebuilt through the public functional API, which checks the rest. */
#include <math.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "model_internal.h"

#define BAD(...) llm__error(LLM_ERR_FORMAT, __VA_ARGS__)
#define MAX_RECORD_NODES 4096

const char *llm__topo_format_version(const llm_model *m) {
    if (m->topo.functional) return "2";
    for (int i = 0; i < m->n_members; i++)
        if (m->members[i]->topo.functional) return "2";
    return "1";
}

char *llm__topo_record_json(const llm_model *m) {
    const llm__model_graph *gd = &m->topo;
    cJSON *root = cJSON_CreateObject();
    cJSON *nodes = root ? cJSON_AddArrayToObject(root, "nodes") : NULL;
    cJSON *outs = root ? cJSON_AddArrayToObject(root, "outputs") : NULL;
    int ok = nodes && outs;
    for (int i = 0; ok && i < gd->n_nodes; i++) {
        const llm_node *nd = gd->nodes[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(nodes, o);
        if (!ok) { cJSON_Delete(o); break; }
        if (!nd->layer) {
            cJSON *in = cJSON_AddObjectToObject(o, "input");
            ok = in && cJSON_AddStringToObject(in, "dtype", nd->shape.dtype == LLM_DTYPE_I32 ? "int32" : "float32");
            cJSON *shape = ok ? cJSON_AddArrayToObject(in, "shape") : NULL;
            ok = shape != NULL;
            for (int d = 0; ok && d < nd->shape.ndim; d++)
                ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)nd->shape.d[d]));
            continue;
        }
        int pos = -1;
        for (int k = 0; k < m->n_layers && pos < 0; k++) if (m->layers[k] == nd->layer) pos = k;
        ok = cJSON_AddNumberToObject(o, "layer", pos) != NULL;
        cJSON *from = ok ? cJSON_AddArrayToObject(o, "from") : NULL;
        ok = from != NULL;
        for (int k = 0; ok && k < nd->n_in; k++) ok = cJSON_AddItemToArray(from, cJSON_CreateNumber(nd->in[k]->index));
    }
    for (int k = 0; ok && k < gd->n_outputs; k++) ok = cJSON_AddItemToArray(outs, cJSON_CreateNumber(gd->outputs[k]->index));
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* A whole number in [lo, hi], or -1. */
static int64_t index_of(const cJSON *v, int64_t lo, int64_t hi) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return -1;
    return (int64_t)v->valuedouble;
}

static llm_status input_node(llm_model *m, const cJSON *in, int i, llm_node **out) {
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(in, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape)) return BAD("llm_model_load: graph node %d: an input needs dtype and shape", i);
    llm_dtype dt;
    if (strcmp(dtype->valuestring, "int32") == 0) dt = LLM_DTYPE_I32;
    else if (strcmp(dtype->valuestring, "float32") == 0) dt = LLM_DTYPE_F32;
    else return BAD("llm_model_load: graph node %d: unknown input dtype", i);
    int64_t dims[LLM_MAX_DIMS];
    int nd = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (nd == LLM_MAX_DIMS - 1 || (dims[nd] = index_of(d, 1, INT32_MAX)) < 0)
            return BAD("llm_model_load: graph node %d: invalid input shape", i);
        nd++;
    }
    llm_status s = llm_model_input(m, dt, nd, dims, out);
    if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY) s = BAD("llm_model_load: graph node %d: %s", i, llm_last_error());
    return s;
}

/* Applies layers[pos] (joining the model if it has not yet) to the nodes of "from". */
static llm_status layer_node(llm_model *m, const cJSON *o, int i, llm_layer **layers, int n, unsigned char *taken,
                             int *next_fresh, llm_node **nodes, llm_node **out) {
    int64_t pos = index_of(cJSON_GetObjectItemCaseSensitive(o, "layer"), 0, n - 1);
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(o, "from");
    if (pos < 0 || !cJSON_IsArray(from)) return BAD("llm_model_load: graph node %d: invalid layer index or inputs", i);
    /* layers join in the order of the architecture, which names them */
    if (!taken[pos] && pos != *next_fresh)
        return BAD("llm_model_load: graph node %d: layer %lld is first applied before layer %d", i, (long long)pos, *next_fresh);
    llm_node *in[LLM__MERGE_MAX_INPUTS];
    int k = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, from) {
        int64_t j = index_of(f, 0, i - 1); /* only earlier nodes: no cycles */
        if (k == LLM__MERGE_MAX_INPUTS || j < 0)
            return BAD("llm_model_load: graph node %d: its inputs must be at most %d earlier nodes (0 to %d)", i,
                       LLM__MERGE_MAX_INPUTS, i - 1);
        in[k++] = nodes[j];
    }
    llm_layer *l = layers[pos];
    if (!taken[pos]) { taken[pos] = 1; (*next_fresh)++; } /* the calls below own it from here, also on failure */
    llm_status s;
    if (llm__layer_is_merge(l)) {
        s = llm_model_merge(m, l, k, in, out);
    } else if (k == 1) {
        s = llm_model_apply(m, l, in[0], out);
    } else {
        if (!l->owner) llm_layer_free(l);
        return BAD("llm_model_load: graph node %d: %s reads one node, the record gives %d", i, l->vt->kind, k);
    }
    if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY && s != LLM_ERR_FORMAT)
        s = BAD("llm_model_load: graph node %d: %s", i, llm_last_error());
    return s;
}

static llm_status load_record(llm_model *m, const cJSON *root, llm_layer **layers, int n, unsigned char *taken) {
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (!cJSON_IsArray(nodes) || !cJSON_IsArray(outs)) return BAD("llm_model_load: the graph record lacks nodes or outputs");
    int count = cJSON_GetArraySize(nodes);
    if (count < 2 || count > MAX_RECORD_NODES) return BAD("llm_model_load: the graph record has %d nodes", count);
    llm_node **made = llm__calloc((size_t)count, sizeof *made);
    if (!made) return llm__oom("llm_model_load");
    llm_status s = LLM_OK;
    int i = 0, next_fresh = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, nodes) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input");
        s = in ? input_node(m, in, i, &made[i]) : layer_node(m, o, i, layers, n, taken, &next_fresh, made, &made[i]);
        if (s != LLM_OK) break;
        i++;
    }
    if (s == LLM_OK && next_fresh != n) s = BAD("llm_model_load: layer %d of the architecture is never applied", next_fresh);
    llm_node *out[MAX_RECORD_NODES > LLM__GRAPH_MAX_OUTPUTS ? LLM__GRAPH_MAX_OUTPUTS : MAX_RECORD_NODES];
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, outs) {
        if (s != LLM_OK) break;
        int64_t j = index_of(v, 0, count - 1);
        if (k == LLM__GRAPH_MAX_OUTPUTS || j < 0) { s = BAD("llm_model_load: invalid graph outputs"); break; }
        out[k++] = made[j];
    }
    if (s == LLM_OK) {
        s = llm_model_set_outputs(m, k, out);
        if (s != LLM_OK && s != LLM_ERR_OUT_OF_MEMORY) s = BAD("llm_model_load: graph outputs: %s", llm_last_error());
    }
    llm__free(made);
    return s;
}

llm_status llm__topo_record_load(llm_model *m, const char *json, llm_layer **layers, int n) {
    unsigned char *taken = llm__calloc((size_t)n + 1, 1);
    llm_status s = taken ? LLM_OK : llm__oom("llm_model_load");
    /* the record needs depth 4; refuse anything deeper before cJSON recurses */
    size_t len = strlen(json);
    int depth = 0, in_str = 0;
    for (size_t i = 0; s == LLM_OK && i < len; i++) {
        char c = json[i];
        if (in_str) { if (c == '\\') i++; else if (c == '"') in_str = 0; continue; }
        if (c == '"') in_str = 1;
        else if ((c == '{' || c == '[') && ++depth > 6) s = BAD("llm_model_load: the graph record is nested too deeply");
        else if (c == '}' || c == ']') depth--;
    }
    cJSON *root = s == LLM_OK ? cJSON_ParseWithLength(json, len) : NULL;
    if (s == LLM_OK && !root) s = BAD("llm_model_load: the graph record is not valid JSON");
    if (s == LLM_OK && m->n_layers) s = llm__error(LLM_ERR_INTERNAL, "llm_model_load: graph record for a model with layers");
    if (s == LLM_OK) {
        m->topo.functional = 1;
        s = load_record(m, root, layers, n, taken);
    }
    cJSON_Delete(root);
    for (int i = 0; i < n; i++)
        if (!taken || !taken[i]) llm_layer_free(layers[i]); /* never reached the model */
    llm__free(taken);
    return s;
}
