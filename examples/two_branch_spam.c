/* A functional model (llm/graph.h): the spam classifier as a graph, in the
 * shape of the Keras functional program
 *
 *     ids  = Input(shape=(200,), dtype='int32')
 *     emb  = Embedding(20000, 64, mask_zero=True)(ids)
 *     both = Concatenate()([LSTM(64)(emb), GlobalAveragePooling1D()(emb)])
 *     out  = Dense(1, activation='sigmoid')(both)
 *     model = Model(ids, out)
 *
 * One embedding feeds two branches: the LSTM reads the words in order, the
 * pooled branch sees which words occur wherever they are; the output layer
 * reads both. The model is trained, saved with its text pipeline, loaded
 * back and asked about one message:
 *
 *     build/bin/two_branch_spam [DATA_DIR [EPOCHS [OUT.safetensors]]]
 *         (data/spam-sample, 5 epochs, two_branch.safetensors)
 *
 * spam_train --arch two-branch trains the same graph with every option of
 * the command-line tools. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llm/llm.h>

#define CHECK(call) do { llm_status s_ = (call); if (s_ != LLM_OK) { \
    fprintf(stderr, "%s: %s\n", llm_status_string(s_), llm_last_error()); return 1; } } while (0)

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "data/spam-sample";
    int epochs = argc > 2 ? atoi(argv[2]) : 5;
    const char *out = argc > 3 ? argv[3] : "two_branch.safetensors";
    int64_t seq_len = 200;

    /* e-mails -> texts -> vocabulary -> rows of seq_len ids */
    llm_text_corpus *corpus;  CHECK(llm_text_corpus_from_directory(&corpus, dir, NULL));
    llm_vocab *vocab;         CHECK(llm_vocab_build_from_corpus(&vocab, corpus, NULL, NULL));
    int32_t vocab_size;       CHECK(llm_vocab_size(vocab, &vocab_size));
    llm_vectorize_options vo; llm_vectorize_options_init(&vo);
    vo.seq_len = (int)seq_len;
    llm_dataset *train;       CHECK(llm_dataset_from_corpus(&train, corpus, vocab, &vo));

    /* the graph: every llm_model_apply names the node it reads */
    llm_backend *cpu;  CHECK(llm_backend_create(&cpu, LLM_BACKEND_CPU, NULL));
    llm_model *m;      CHECK(llm_model_functional(&m, cpu));
    llm_node *ids, *emb, *last, *avg, *both, *p;
    CHECK(llm_model_input(m, LLM_DTYPE_I32, 1, &seq_len, &ids));
    CHECK(llm_model_apply(m, llm_layer_embedding(vocab_size, 64), ids, &emb));
    CHECK(llm_model_apply(m, llm_layer_lstm(64, LLM_RETURN_LAST), emb, &last));
    CHECK(llm_model_apply(m, llm_layer_global_pool(LLM_POOL_AVERAGE), emb, &avg));
    llm_node *branches[2] = { last, avg };
    CHECK(llm_model_merge(m, llm_layer_concatenate(), 2, branches, &both));
    CHECK(llm_model_apply(m, llm_layer_dense(1, LLM_ACT_SIGMOID), both, &p));
    CHECK(llm_model_set_outputs(m, 1, &p));

    llm_optimizer *adam;  CHECK(llm_optimizer_adam(&adam, 1e-3f));
    CHECK(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));
    llm_email_options eo; llm_email_options_init(&eo);   /* the corpus read e-mail with these */
    CHECK(llm_model_set_text_pipeline(m, vocab, &vo, &eo));

    llm_fit_options fo;   llm_fit_options_init(&fo);
    fo.epochs = epochs;  fo.batch_size = 32;  fo.validation_split = 0.1f;
    llm_history *h;       CHECK(llm_model_fit(m, train, &fo, &h));
    int done;             CHECK(llm_history_epochs(h, &done));
    for (int e = 0; e < done; e++) {
        double loss, val_loss, val_acc;
        CHECK(llm_history_get(h, "loss", e, &loss));
        CHECK(llm_history_get(h, "val_loss", e, &val_loss));
        CHECK(llm_history_get(h, "val_accuracy", e, &val_acc));
        printf("epoch %d/%d: loss %.4f - val_loss %.4f - val_accuracy %.4f\n", e + 1, epochs, loss, val_loss, val_acc);
    }

    /* the file records the graph; the loaded model reads raw text */
    CHECK(llm_model_save(m, out));
    llm_model *back;      CHECK(llm_model_load(&back, cpu, out));
    const char *mail = "Subject: you have won\n\nClaim your free prize now, click here!\n";
    float spam;           CHECK(llm_model_predict_text(back, mail, strlen(mail), &spam, 1));
    printf("saved %s; P(spam) of a prize mail: %.4f\n", out, spam);

    llm_model_free(back);
    llm_history_free(h);
    llm_optimizer_free(adam);
    llm_model_free(m);
    llm_backend_free(cpu);
    llm_dataset_free(train);
    llm_vocab_free(vocab);
    llm_text_corpus_free(corpus);
    return 0;
}
