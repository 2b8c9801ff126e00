/* libllm private: the model object, shared by model.c (building, one step)
 * and fit.c (epochs, evaluation, prediction). */
#ifndef LLM_PRIVATE_MODEL_INTERNAL_H
#define LLM_PRIVATE_MODEL_INTERNAL_H

#include <pthread.h>
#include "llm/model.h"
#include "layer_internal.h"
#include "optimizer_internal.h"
#include "dataset_internal.h"
#include "model_graph.h"

/* What one inference call needs of its own; models keep a free list of
 * them so that concurrent predictions never share a workspace. */
typedef struct llm__infer_ctx {
    llm__graph graph;
    void *hx;
    float *hout;
    int32_t *ids;              /* text ids for predict_text */
    int64_t cap;               /* examples hx/hout hold */
    llm__val **slots;          /* one value per graph node (model_graph.h) */
    struct llm__infer_ctx *next;
} llm__infer_ctx;

typedef struct llm__named_param {
    llm__param *p;
    char name[80];
} llm__named_param;

struct llm_model {
    llm_backend *be;
    llm_layer **layers;            /* each layer once, in the order it joined */
    int n_layers, cap_layers;
    llm__model_graph topo;         /* the nodes that apply them (model_graph.h) */
    llm__val **slots;              /* the training pass's value per node */
    uint64_t seed;

    int built;
    llm__shape in_shape, out_shape;
    int64_t in_elems, out_elems;   /* per sample */
    int64_t vocab_limit;           /* first layer's vocabulary when it is an embedding, else 0 */
    llm__named_param *params;
    int n_params;
    int64_t n_scalars;
    size_t param_bytes_limit;      /* set by the loader: refuse to build larger than the file */
    float *w, *gw, *m1, *m2;       /* backend memory: weights, gradients, optimizer moments */

    int compiled;
    llm_loss loss;
    llm_optimizer_options opt;
    unsigned metrics;
    int64_t step;                  /* optimizer updates since compile */
    int epochs_done;               /* epochs fit has completed since compile */
    /* fit's early-stopping state, kept in the model so checkpoints carry it */
    double es_best_value;          /* NAN: none yet */
    int es_best_epoch, es_wait;
    float *es_best_w;              /* backend memory [n_scalars] or NULL */
    uint64_t dropout_stream;       /* distributed fit: the rank (its own dropout masks); 0 otherwise */

    llm__graph graph;
    float *scalars;                /* backend memory: [0] loss, [1] gradient sum of squares */
    void *hx, *hy;                 /* host staging for one batch */
    float *hout;
    int64_t staged_batch;          /* capacity of the staging buffers in examples */

    /* text pipeline (optional), saved with the model */
    llm_vocab *vocab;              /* word vocabulary, or NULL when the pipeline uses bpe */
    llm_bpe *bpe;                  /* BPE tokenizer (language models, transformer classifiers) */
    int has_pipeline;              /* llm_model_set_text_pipeline was called */
    llm_vectorize_options vectorize;
    int has_email;
    llm_email_options email;       /* keep_headers points into email_headers */
    char *email_headers;

    pthread_mutex_t infer_lock;    /* guards infer_free and lazy building */
    llm__infer_ctx *infer_free;

    /* string metadata */
    char **meta_keys, **meta_values;
    int n_meta, cap_meta;

    /* an ensemble (src/nn/ensemble.c) has no layers of its own: it scores
     * text with its members and averages their outputs */
    int ensemble;
    struct llm_model **members;
    int n_members;
    struct llm_model *owner;       /* the ensemble this model belongs to, or NULL */
};

/* src/nn/ensemble.c */
/* LLM_ERR_STATE naming fn when m is an ensemble (which has no layers,
 * weights or training of its own), LLM_OK otherwise. */
llm_status llm__refuse_ensemble(const llm_model *m, const char *fn);
/* llm_model_predict_text for an ensemble: the mean of its members' outputs. */
llm_status llm__ensemble_predict_text(llm_model *m, const char *text, size_t len, float *out, size_t count);
/* llm_model_param_count for an ensemble: the members' total. */
llm_status llm__ensemble_param_count(const llm_model *m, int64_t *count);
/* Frees the members (from llm_model_free). */
void llm__ensemble_release(llm_model *m);

/* Makes a new, usable layer the model's (named, seeded); frees it on failure. */
llm_status llm__model_take_layer(llm_model *m, llm_layer *l, const char *fn);
/* Before layer pos of m->layers is built: a tied lm_head gets the token
 * table of the nearest transformer_embedding before it. */
void llm__model_bind_tied(llm_model *m, llm_layer *l, int pos);
/* Builds from declared inputs if needed and checks n inputs' dtypes and
 * [N, ...] shapes against them (src/nn/model_graph.c). */
llm_status llm__model_ensure_built_inputs(llm_model *m, int n, const llm_dtype *dtypes, const int *ndims,
                                          const int64_t (*shapes)[LLM_MAX_DIMS], const char *fn);
/* Predicts N packed host rows of inputs into a new [N, ...] tensor (fit.c). */
llm_status llm__model_predict_rows(llm_model *m, const void *hx, int64_t N, llm_tensor **out, const char *fn);

/* src/nn/pipeline.c */
void llm__model_release_pipeline(llm_model *m);

/* Builds from the first input if needed and checks a batch's shape. */
llm_status llm__model_ensure_built(llm_model *m, llm_dtype dt, int ndim, const int64_t *shape, const char *fn);
/* The same, serialised with concurrent predictions while the model is unbuilt. */
llm_status llm__model_ensure_built_locked(llm_model *m, llm_dtype dt, int ndim, const int64_t *shape, const char *fn);
/* Makes the host staging buffers hold `batch` examples. */
llm_status llm__model_stage(llm_model *m, int64_t batch);
/* Checks a batch's tensors against the compiled model and stages them in
 * m->hx / m->hy (targets converted for the loss); *B gets the batch size. */
llm_status llm__model_stage_tensors(llm_model *m, const llm_tensor *x, const llm_tensor *y, const char *fn,
                                   int64_t *B);
/* Validates host inputs (token range, finiteness). */
llm_status llm__model_check_inputs(const llm_model *m, const void *x, int64_t B, const char *fn);
/* Validates host targets for the compiled loss and converts them in place
 * into what the loss kernel reads (float targets or int32 labels). */
llm_status llm__model_prepare_targets(const llm_model *m, llm_dtype y_dtype, int64_t y_elems, const void *y,
                                      int64_t B, void *out, const char *fn);
/* One training step on staged host data: forward, loss, backward and, if
 * update, the optimizer. *loss gets the batch mean; *correct (may be NULL)
 * the number of correct predictions when accuracy is tracked. */
llm_status llm__model_step(llm_model *m, const void *x, const void *y, int64_t B, int update,
                           double *loss, double *correct);
/* The optimizer step on the gradients in m->gw: non-finite check, clipping
 * by the global norm, update, m->step++ (the second half of a step with
 * update set; distributed fit calls it after summing gradients across ranks). */
llm_status llm__model_update(llm_model *m);
/* Inference forward on staged host inputs into m->hout ([B, out_elems]);
 * if y is not NULL also the batch's mean loss. */
llm_status llm__model_infer(llm_model *m, const void *x, const void *y, int64_t B, double *loss);
/* Takes an inference context with room for batch examples (reused,
 * created when none is free) and gives it back. Thread-safe. */
llm_status llm__infer_acquire(llm_model *m, int64_t batch, llm__infer_ctx **out);
void llm__infer_release(llm_model *m, llm__infer_ctx *c);
/* Inference forward on c->hx ([B, in_elems]) into c->hout. Reads the model only. */
llm_status llm__infer_run(llm_model *m, llm__infer_ctx *c, int64_t B);
/* src/nn/loss.c */
/* Correct predictions among B outputs (host) for the compiled loss. */
double llm__model_count_correct(const llm_model *m, const float *out, const void *y, int64_t B);
/* Copies B examples' converted targets (llm__model_prepare_targets) into
 * graph memory; *dev gets them. */
llm_status llm__model_upload_targets(llm_model *m, const void *y, int64_t B, void **dev);
/* The compiled loss of the output y against device targets t into
 * m->scalars[0]; with grad, its gradient into the graph (into the logits
 * when y is a sigmoid or softmax of them and the loss works on those). */
llm_status llm__model_loss(llm_model *m, llm__val *y, const void *t, int grad);

/* The text summaries' pieces (model.c; the graph's summary in model_graph.c
 * uses them too): snprintf-style appending that counts what would not fit,
 * a count with thousands separators, a layer's parameters with its wrapped
 * layers'. */
void llm__summary_append(char *buf, size_t len, size_t *off, const char *fmt, ...) LLM__PRINTF(4, 5);
void llm__summary_thousands(int64_t v, char *out, size_t len);
int64_t llm__layer_param_count(const llm_layer *l);

#endif
