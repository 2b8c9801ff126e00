/* libllm: models.
 *
 * An llm_model is a graph of layers on one backend: a Sequential stack
 * (below), or any graph built with the functional API of graph.h
 * (llm_model_functional: several inputs, branches, merges, shared layers).
 * Everything below applies to both unless it says otherwise. A Sequential
 * model:
 *
 *     llm_model *m;   CHECK(llm_model_sequential(&m, backend));
 *     CHECK(llm_model_add(m, llm_layer_embedding(20000, 64)));
 *     CHECK(llm_model_add(m, llm_layer_lstm(128, LLM_RETURN_LAST)));
 *     CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
 *     CHECK(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
 *     CHECK(llm_model_fit(m, train, &fit_options, NULL));
 *
 * The model owns its layers, parameters, gradients and optimizer state, each
 * kind in one contiguous buffer, and a workspace that is sized on the first
 * batch and reused, so a training step allocates nothing.
 *
 * Threads. These calls may run at the same time on one model from any
 * number of threads, with each other and with themselves:
 *     llm_model_predict, llm_model_predict_text (ensembles too);
 *     and once the model is built (or loaded): llm_model_generate,
 *     llm_decoder_create (one decoder per thread) and the calls that only
 *     read: llm_model_summary, llm_model_param_count, llm_model_num_params,
 *     llm_model_param_info, llm_model_get_param, llm_model_get_metadata,
 *     llm_model_vocab, llm_model_tokenizer, llm_model_epochs_done,
 *     llm_model_ensemble_size, llm_model_ensemble_member, llm_model_save,
 *     llm_model_save_checkpoint.
 * Each prediction runs in an inference workspace of its own (the model keeps
 * a pool of them), so concurrent answers are bit-equal to the same calls
 * made one at a time; the first predictions of a model not yet built build
 * it, under a lock. Every other call changes the model or uses its one
 * training workspace, and needs the model to itself: no other call on it may
 * run meanwhile. Those are add, set_seed, build, compile, fit, evaluate,
 * train_on_batch, compute_gradients, set_param, copy_weights (into it),
 * set_text_pipeline, set_tokenizer, set_metadata, the ensemble's add and
 * remove, and free. (A server loads a model once and answers from many
 * threads with predict_text, as examples/spam_server.c does.) Different
 * models may be used by different threads freely, also on one backend. */
#ifndef LLM_MODEL_H
#define LLM_MODEL_H

#include "common.h"
#include "status.h"
#include "backend.h"
#include "tensor.h"
#include "layer.h"
#include "optimizer.h"
#include "dataset.h"
#include "metrics.h"
#include "text.h"
#include "dist.h"

LLM_EXTERN_C_BEGIN

#ifndef LLM_MODEL_TYPEDEF /* dist.h, included above, may have declared it */
#define LLM_MODEL_TYPEDEF
typedef struct llm_model llm_model;
#endif
typedef struct llm_history llm_history;

typedef enum llm_loss {
    /* targets in [0, 1]; on a sigmoid output it works on the logits, so it is
       numerically stable (as BCE-with-logits) */
    LLM_LOSS_BINARY_CROSSENTROPY = 0,
    LLM_LOSS_BINARY_CROSSENTROPY_LOGITS = 1,       /* the output is a logit */
    /* int32 labels; on a softmax output it works on the logits */
    LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY = 2,
    LLM_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY_LOGITS = 3,
    LLM_LOSS_MSE = 4
} llm_loss;

/* Metrics to track during fit, as bit flags. */
#define LLM_METRIC_NONE 0u
#define LLM_METRIC_ACCURACY 1u

typedef enum llm_monitor {
    LLM_MONITOR_NONE = 0,
    LLM_MONITOR_LOSS = 1,
    LLM_MONITOR_ACCURACY = 2,
    LLM_MONITOR_VAL_LOSS = 3,
    LLM_MONITOR_VAL_ACCURACY = 4
} llm_monitor;

/* Progress report handed to the fit callbacks. NAN marks values not
 * (yet) known, e.g. val_loss before the epoch's validation. */
typedef struct llm_progress {
    size_t size;          /* sizeof(llm_progress) of the library */
    int epoch;            /* 0-based */
    int epochs;
    int64_t batch;        /* batches done in this epoch */
    int64_t batches;      /* batches per epoch */
    int64_t step;         /* optimizer steps since compile */
    double loss;          /* running mean over this epoch */
    double accuracy;      /* running mean over this epoch (NAN if not tracked) */
    double val_loss;
    double val_accuracy;
    double learning_rate;
    double elapsed_s;     /* since the epoch started */
} llm_progress;

/* Return 0 to go on, non-zero to stop training (fit then returns LLM_OK
 * and the history says it stopped early). */
typedef int (*llm_progress_fn)(const llm_progress *progress, void *user);

typedef struct llm_fit_options {
    size_t size;               /* sizeof(llm_fit_options), set by _init */
    int epochs;                /* default 1 */
    int batch_size;            /* default 32 */
    int shuffle;               /* default 1: reshuffle every epoch */
    uint64_t seed;             /* shuffle / validation-split seed; default 1 */
    llm_dataset *validation;   /* evaluated after every epoch; borrowed; may be NULL */
    float validation_split;    /* if no validation set: hold out this fraction, default 0 */
    llm_progress_fn on_batch;  /* after every batch; may be NULL */
    llm_progress_fn on_epoch;  /* after every epoch (with validation figures) */
    void *user;                /* passed to the callbacks */
    llm_monitor early_stopping;/* metric to watch; default NONE */
    int patience;              /* epochs without improvement before stopping; 0 (default)
                                  = never stop, only track the best epoch */
    double min_delta;          /* smallest change that counts as improvement */
    int restore_best;          /* with a monitor set: end with the weights of the best
                                  epoch; default 1 */
    int initial_epoch;         /* first epoch to run (Keras' initial_epoch): training
                                  runs epochs initial_epoch .. epochs-1; default 0. To
                                  resume, pass llm_model_epochs_done of a loaded checkpoint */
    const char *checkpoint_path; /* if set, a checkpoint (llm_model_save_checkpoint) is
                                  written there atomically after every epoch */
    llm_dist *dist;            /* data-parallel training over MPI (dist.h); NULL (default)
                                  = this process alone. Every rank calls fit with the same
                                  model, data, options and seed; each computes the gradient
                                  of its slice of every batch of batch_size rows, and the
                                  results (weights, history, callbacks' figures) are those
                                  of one process training with batch_size. Only rank 0
                                  writes checkpoint_path. */
} llm_fit_options;
LLM_API void llm_fit_options_init(llm_fit_options *opts);

/* ---- building ---- */

/* Creates an empty Sequential model on a backend. The model holds a
 * reference to the backend until llm_model_free (backend.h, Lifetime); so do
 * models from llm_model_load and llm_model_ensemble. */
LLM_API llm_status llm_model_sequential(llm_model **out, llm_backend *backend);

/* Appends a layer. Takes ownership of `layer` in every case; a layer that
 * carries an error (see layer.h) is freed and its status returned. Adding
 * after the model is built, or to a functional model (graph.h: use
 * llm_model_apply), gives LLM_ERR_STATE. */
LLM_API llm_status llm_model_add(llm_model *model, llm_layer *layer);

/* Seed for weight initialisation and dropout (default 1). Set before build. */
LLM_API llm_status llm_model_set_seed(llm_model *model, uint64_t seed);

/* Infers every layer's shapes from the per-sample input shape (no batch
 * dimension), e.g. {200} int32 for token ids, allocates and initialises the
 * parameters. Called by fit/predict from their first input if not done yet.
 * LLM_ERR_SHAPE / LLM_ERR_DTYPE name the layer that does not fit. A
 * functional model (graph.h) has its input shapes already: pass ndim 0 and
 * shape NULL, or its one input's shape. */
LLM_API llm_status llm_model_build(llm_model *model, llm_dtype input_dtype, int ndim,
                                   const int64_t *sample_shape);

/* A Keras-like summary table (layer, output shape, parameters, totals),
 * snprintf-style: *needed gets the full length. Needs a built model. */
LLM_API llm_status llm_model_summary(const llm_model *model, char *buf, size_t len,
                                     size_t *needed);

/* Number of trainable scalars (needs a built model). */
LLM_API llm_status llm_model_param_count(const llm_model *model, int64_t *count);

/* ---- parameters by name ----
 * "<layer>.<parameter>": layers are named after their kind and numbered from
 * 0 per kind in the order they were added (embedding_0, lstm_0, lstm_1,
 * dense_0), e.g. "lstm_0.weight_hh" or "bidirectional_0.backward.bias_ih";
 * docs/FORMAT.md lists each kind's parameters and layouts. */
LLM_API llm_status llm_model_num_params(const llm_model *model, int *count);
/* Name (valid while the model lives), ndim and shape (room for LLM_MAX_DIMS) of parameter i. */
LLM_API llm_status llm_model_param_info(const llm_model *model, int index, const char **name,
                                        int *ndim, int64_t *shape);
LLM_API llm_status llm_model_get_param(const llm_model *model, const char *name, float *dst,
                                       size_t bytes);
LLM_API llm_status llm_model_set_param(llm_model *model, const char *name, const float *src,
                                       size_t bytes);
/* The gradient of a parameter from the last train_on_batch / compute_gradients. */
LLM_API llm_status llm_model_get_grad(const llm_model *model, const char *name, float *dst,
                                      size_t bytes);

/* Transfer learning: copies into dst every parameter of src that has the
 * same name and shape (e.g. the embedding and blocks of a pretrained
 * language model into a classifier built with the same layers first).
 * Both models must be built; *copied (may be NULL) gets how many were
 * copied. The models may live on different backends. */
LLM_API llm_status llm_model_copy_weights(llm_model *dst, const llm_model *src, int *copied);

/* ---- training ---- */

/* Sets the loss, the optimizer (copied; see optimizer.h) and the metrics
 * (LLM_METRIC_* flags). May be called again to change them; optimizer
 * state is then reset. */
LLM_API llm_status llm_model_compile(llm_model *model, llm_loss loss, const llm_optimizer *opt,
                                     unsigned metrics);

/* Forward and backward on one batch without updating the weights; *loss
 * gets the mean loss. Gradients can then be read with llm_model_get_grad.
 * x: [B, ...] int32 or float; y: targets as in dataset.h. */
LLM_API llm_status llm_model_compute_gradients(llm_model *model, const llm_tensor *x,
                                               const llm_tensor *y, float *loss);

/* One optimizer step on one batch. loss and accuracy may be NULL. */
LLM_API llm_status llm_model_train_on_batch(llm_model *model, const llm_tensor *x,
                                            const llm_tensor *y, float *loss, float *accuracy);

/* Trains for opts->epochs epochs of mini-batches (the last batch of an
 * epoch may be smaller). *history (may be NULL) receives per-epoch figures;
 * free it with llm_history_free. NaN or infinity in the loss or gradients
 * stops with LLM_ERR_NUMERIC before the weights are touched. */
LLM_API llm_status llm_model_fit(llm_model *model, llm_dataset *train,
                                 const llm_fit_options *opts, llm_history **history);

/* Loss and metrics over a dataset in inference mode (no dropout).
 * batch_size 0 means 32. Binary models (one sigmoid output with binary
 * cross-entropy) also get precision, recall, F1, AUC and the confusion
 * matrix at threshold 0.5. */
LLM_API llm_status llm_model_evaluate(llm_model *model, llm_dataset *data, int batch_size,
                                      llm_metrics *metrics);

/* Runs the model on x [N, ...] in inference mode and creates *out [N, ...]
 * on the model's backend (the caller frees it). */
LLM_API llm_status llm_model_predict(llm_model *model, const llm_tensor *x, llm_tensor **out);

/* ---- text pipeline, metadata, files ---- */

/* Attaches the text pipeline that turns raw text into the model's input:
 * the vocabulary (with its tokenizer settings), the vectorizer settings and,
 * for e-mail, the reader settings (email NULL: inputs are plain text). All
 * are copied. The pipeline is saved with the model, so a loaded model can
 * score raw text with llm_model_predict_text. The model's input must be
 * int32 [seq_len] ids (LLM_ERR_SHAPE otherwise, checked at build). */
LLM_API llm_status llm_model_set_text_pipeline(llm_model *model, const llm_vocab *vocab,
                                               const llm_vectorize_options *vectorize,
                                               const llm_email_options *email);

/* Attaches a (copy of a) BPE tokenizer, saved with the model: language
 * models carry theirs so generation needs only the model file. With one
 * attached, llm_model_set_text_pipeline accepts vocab NULL and then encodes
 * text with the tokenizer (llm_bpe_vectorize). */
LLM_API llm_status llm_model_set_tokenizer(llm_model *model, const llm_bpe *bpe);
/* The attached tokenizer (owned by the model) or LLM_ERR_STATE if none. */
LLM_API llm_status llm_model_tokenizer(const llm_model *model, const llm_bpe **bpe);

/* The attached vocabulary (owned by the model) or LLM_ERR_STATE if none. */
LLM_API llm_status llm_model_vocab(const llm_model *model, const llm_vocab **vocab);

/* Runs the text pipeline and the model on one raw text (e-mail bytes when
 * the pipeline reads e-mail) and writes the model's outputs for it into
 * out[0 .. count), count being the per-example output size (1 for a binary
 * classifier: the probability of class 1). Safe to call from several
 * threads at once on one model (see Threads above). */
LLM_API llm_status llm_model_predict_text(llm_model *model, const char *text, size_t len,
                                          float *out, size_t count);

/* String metadata saved with the model (e.g. "class_names" = "ham,spam").
 * Keys are non-empty printable ASCII without '"' or '\\' (at most 64 bytes),
 * other than "format" and "libllm.*", which the file format uses;
 * setting an existing key replaces it; value NULL removes it. */
LLM_API llm_status llm_model_set_metadata(llm_model *model, const char *key, const char *value);
/* *value is owned by the model (valid until the key changes); LLM_ERR_INVALID_ARGUMENT
 * when the key is absent. */
LLM_API llm_status llm_model_get_metadata(const llm_model *model, const char *key,
                                          const char **value);

/* Saves a built model as one .safetensors file: weights under documented
 * names with PyTorch layouts, and the architecture, text pipeline, metadata
 * and format version in __metadata__ (see docs/FORMAT.md). The write is
 * atomic: a temporary file in the same folder, fsync, rename. */
LLM_API llm_status llm_model_save(const llm_model *model, const char *path);

/* Rebuilds a model (architecture, weights, text pipeline, metadata) from a
 * file written by llm_model_save, on the given backend. The file is treated
 * as untrusted: LLM_ERR_FORMAT (or LLM_ERR_IO) with a message for anything
 * malformed, never a crash. The loaded model is not compiled. */
LLM_API llm_status llm_model_load(llm_model **out, llm_backend *backend, const char *path);

/* A checkpoint is a model file plus what training needs to go on exactly
 * where it stopped: the loss, metrics and optimizer settings, the optimizer
 * state (moments, step), the number of epochs done, and fit's early-stopping
 * state (best value, best epoch's weights, patience counter). Resuming with
 * the same data, seed and threads on the CPU gives bit-for-bit the result of
 * an uninterrupted run. llm_model_load also opens a checkpoint (as a plain,
 * uncompiled model). */
LLM_API llm_status llm_model_save_checkpoint(const llm_model *model, const char *path);
/* Loads a checkpoint as a compiled model ready for llm_model_fit with
 * initial_epoch = llm_model_epochs_done. LLM_ERR_FORMAT for a plain model file. */
LLM_API llm_status llm_model_load_checkpoint(llm_model **out, llm_backend *backend,
                                             const char *path);
/* Epochs completed by llm_model_fit since compile (restored by checkpoints). */
LLM_API llm_status llm_model_epochs_done(const llm_model *model, int *epochs);

/* Frees a model, its layers and buffers (an ensemble: its members too), and
 * drops its reference to its backend. NULL is a no-op. */
LLM_API void llm_model_free(llm_model *model);

/* ---- ensembles ---- */

/* An ensemble scores raw text with several trained models and gives the
 * mean of their outputs (for binary classifiers: the mean probability).
 * Each member reads the text through its own text pipeline, so members may
 * differ in architecture, vocabulary and sequence length: e.g. an LSTM over
 * the last 400 tokens next to averaged embeddings over 2000. Models that err
 * on different inputs make a better classifier together than either alone.
 *
 * An ensemble supports llm_model_predict_text, llm_model_summary,
 * llm_model_param_count, metadata, llm_model_save, llm_model_load (which
 * recognises an ensemble file) and llm_model_free. It has no layers, weights
 * or training of its own: the other calls give LLM_ERR_STATE. Train the
 * members, then add them. */
#define LLM_ENSEMBLE_MAX_MEMBERS 64

/* Creates an empty ensemble on backend. */
LLM_API llm_status llm_model_ensemble(llm_model **out, llm_backend *backend);
/* Adds member: a built model with a text pipeline, on the ensemble's
 * backend, not an ensemble, not in another ensemble, with as many outputs
 * per text as the members before it. On success the ensemble owns member
 * (llm_model_free of the ensemble frees it; do not free it yourself); on
 * failure the caller still does. */
LLM_API llm_status llm_model_ensemble_add(llm_model *ensemble, llm_model *member);
/* Takes the i-th member out of the ensemble and gives it back to the caller,
 * who owns it again (llm_model_free); the members after it move down one
 * place. E.g. to undo the adds made so far when a later one fails, so that
 * building an ensemble from several models is all or nothing. */
LLM_API llm_status llm_model_ensemble_remove(llm_model *ensemble, int i, llm_model **member);
/* *members gets the number of members, 0 for a model that is not an ensemble. */
LLM_API llm_status llm_model_ensemble_size(const llm_model *model, int *members);
/* *member gets the i-th member (owned by the ensemble), e.g. to read its
 * metadata or score text with it alone. */
LLM_API llm_status llm_model_ensemble_member(const llm_model *ensemble, int i, llm_model **member);

/* ---- history ---- */

/* Number of epochs recorded. */
LLM_API llm_status llm_history_epochs(const llm_history *h, int *epochs);
/* A per-epoch value: key is "loss", "accuracy", "val_loss", "val_accuracy"
 * or "learning_rate". NAN when not recorded. */
LLM_API llm_status llm_history_get(const llm_history *h, const char *key, int epoch,
                                   double *value);
/* 1 if training stopped before the last epoch (callback or early stopping). */
LLM_API llm_status llm_history_stopped_early(const llm_history *h, int *stopped);
/* The epoch whose weights the model holds at the end (best epoch when
 * restore_best applied, else the last). */
LLM_API llm_status llm_history_best_epoch(const llm_history *h, int *epoch);
LLM_API void llm_history_free(llm_history *h);

LLM_EXTERN_C_END

#endif /* LLM_MODEL_H */
