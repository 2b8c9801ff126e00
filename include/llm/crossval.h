/* libllm: k-fold cross-validation of text classifiers.
 *
 * One split of a few hundred messages is too small to choose models with (one
 * message moves F1 by a few thousandths). Cross-validation scores every
 * message exactly once with a model that never saw it:
 *
 *   1. llm_text_corpus_folds deals the texts into K folds, stratified (each
 *      fold gets its share of every class) and seeded;
 *   2. for each fold, the caller's model factory trains a new model on the
 *      other K - 1 folds (a corpus holding only those texts, so anything the
 *      factory learns from its argument, the vocabulary included, is learned
 *      without the scored fold);
 *   3. the library scores the fold's texts with llm_model_predict_text and
 *      frees the model.
 * The result holds per-fold metrics, their mean and standard deviation, and
 * the out-of-fold probability of every text, the honest input for choosing a
 * threshold or ensemble weights afterwards.
 *
 * The texts are what llm_model_predict_text reads: for e-mail, keep the raw
 * messages (a corpus loaded with LLM_CORPUS_RAW) and let the factory run the
 * e-mail reader on its part (llm_text_corpus_read_email), so the scoring goes
 * through the whole pipeline a deployed model runs. The library never prints;
 * progress goes through on_fold. */
#ifndef LLM_CROSSVAL_H
#define LLM_CROSSVAL_H

#include "common.h"
#include "status.h"
#include "metrics.h"
#include "text.h"
#include "model.h"

LLM_EXTERN_C_BEGIN

/* Deals the corpus's count texts into `folds` stratified folds: fold_of[i]
 * gets the fold (0 .. folds - 1) of text i. Within each class the texts are
 * shuffled by seed and dealt round-robin, the deal going on from one class to
 * the next, so fold sizes differ by at most one and each class's share of a
 * fold by at most one. The same corpus order and seed give the same folds.
 * LLM_ERR_INVALID_ARGUMENT when folds < 2, count is not the corpus's size,
 * or a class has fewer texts than folds (every fold needs each class). */
LLM_API llm_status llm_text_corpus_folds(const llm_text_corpus *corpus, int32_t folds, uint64_t seed,
                                         int32_t *fold_of, int64_t count);

/* Two new corpora from a fold assignment (fold_of has one entry per text):
 * *train the texts whose fold is not `fold`, *test those whose fold is, each
 * in corpus order, with labels and sources. The caller frees both. */
LLM_API llm_status llm_text_corpus_fold_split(const llm_text_corpus *corpus, const int32_t *fold_of,
                                              int32_t fold, llm_text_corpus **train,
                                              llm_text_corpus **test);

/* A new corpus of the same classes whose texts are the e-mail reader's
 * output (llm_email_parse with opts, NULL for defaults) for each text of raw
 * (raw messages, e.g. a corpus loaded with LLM_CORPUS_RAW); labels and
 * sources are kept. Free *out with llm_text_corpus_free. */
LLM_API llm_status llm_text_corpus_read_email(llm_text_corpus **out, const llm_text_corpus *raw,
                                              const llm_email_options *opts);

/* Mean and sample standard deviation (n - 1 in the denominator; 0 for n = 1)
 * of accuracy, precision, recall, F1, AUC, loss and threshold over n >= 1
 * metrics. A field that is NAN in any input is NAN in both results. In *mean,
 * count, tp, fp, tn and fn are the sums over the inputs; in *sd they are 0.
 * Both must have their size set (llm_metrics_init). */
LLM_API llm_status llm_metrics_mean_sd(const llm_metrics *per, int64_t n, llm_metrics *mean,
                                       llm_metrics *sd);

/* Which fold a call of the model factory or of on_fold is about. */
typedef struct llm_cv_fold {
    size_t size;           /* sizeof(llm_cv_fold) */
    int32_t repeat;        /* 0 .. repeats - 1 */
    int32_t fold;          /* 0 .. folds - 1 */
    int32_t repeats, folds;
    int64_t train_count;   /* texts the model is trained on */
    int64_t test_count;    /* texts it is scored on */
} llm_cv_fold;

/* The model factory: train a new model on `train` (the fold's training part;
 * the scored fold's texts are not in it) and hand it over in *model, which
 * the library scores with llm_model_predict_text (one output: the
 * probability of class 1) and then frees. Any model that scores raw text
 * will do: one with a text pipeline, or an ensemble. A status other than
 * LLM_OK stops the cross-validation with that status (leave *model NULL). */
typedef llm_status (*llm_cv_train_fn)(llm_model **model, const llm_text_corpus *train,
                                      const llm_cv_fold *fold, void *user);

/* Called after each fold is scored, with its metrics (valid during the call).
 * Return 0 to go on, anything else to stop (LLM_ERR_CANCELLED). */
typedef int (*llm_cv_fold_fn)(const llm_cv_fold *fold, const llm_metrics *metrics, void *user);

typedef struct llm_cv_options {
    size_t size;             /* sizeof(llm_cv_options); set by llm_cv_options_init */
    int32_t folds;           /* K (default 5; >= 2, at most the smallest class's size) */
    int32_t repeats;         /* K-fold runs with different fold assignments (default 1; >= 1);
                                run 0 uses seed, run r > 0 a seed derived from seed and r */
    uint64_t seed;           /* fold assignment (default 1) */
    double threshold;        /* decision threshold of the per-fold metrics; default -1: the
                                model's "threshold" metadata when it has a number in [0, 1]
                                there, else 0.5 */
    llm_cv_train_fn train;   /* the model factory (required) */
    llm_cv_fold_fn on_fold;  /* progress, may be NULL */
    void *user;              /* passed to train and on_fold */
} llm_cv_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_cv_options_init(llm_cv_options *opts);

typedef struct llm_cv_result llm_cv_result;

/* Runs repeats x folds trainings of a binary classifier (the corpus must have
 * exactly two classes, class 1 positive) as described at the top of this
 * file. LLM_ERR_INVALID_ARGUMENT for bad options (no factory, folds < 2,
 * folds larger than the smallest class); a factory's or the scoring's status
 * as it came; LLM_ERR_CANCELLED when on_fold stops it. Free *out with
 * llm_cv_result_free. */
LLM_API llm_status llm_cross_validate(const llm_text_corpus *corpus, const llm_cv_options *opts,
                                      llm_cv_result **out);

/* Number of folds scored: repeats x folds. */
LLM_API llm_status llm_cv_result_count(const llm_cv_result *r, int32_t *count);

/* Fold i in [0, count), in the order they ran (repeat by repeat): which it
 * was (fold may be NULL; else its size must be set) and its metrics. */
LLM_API llm_status llm_cv_result_fold(const llm_cv_result *r, int32_t i, llm_cv_fold *fold,
                                      llm_metrics *metrics);

/* llm_metrics_mean_sd over every fold. */
LLM_API llm_status llm_cv_result_summary(const llm_cv_result *r, llm_metrics *mean, llm_metrics *sd);

/* For one repeat: the out-of-fold probability of class 1 of every text, and
 * the fold it was scored in, both in corpus order (*count texts); arrays owned
 * by the result. Any pointer but r may be NULL. */
LLM_API llm_status llm_cv_result_scores(const llm_cv_result *r, int32_t repeat, const float **scores,
                                        const int32_t **fold_of, int64_t *count);

/* Frees a result. NULL is a no-op. */
LLM_API void llm_cv_result_free(llm_cv_result *r);

LLM_EXTERN_C_END

#endif /* LLM_CROSSVAL_H */
