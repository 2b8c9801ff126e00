/* The seed model, whole: the Keras program
 *
 *     model = Sequential([Embedding(20000, 64), LSTM(128), Dense(1, activation='sigmoid')])
 *     model.compile(optimizer=Adam(1e-3), loss='binary_crossentropy', metrics=['accuracy'])
 *     model.fit(x_train, y_train, epochs=10, batch_size=32, validation_split=0.1)
 *
 * in C, on a folder of raw e-mails with one sub-folder per class (ham/ is
 * label 0, spam/ label 1):
 *
 *     build/bin/seed_lstm [DATA_DIR [EPOCHS]]     (data/spam-sample, 10 epochs)
 *
 * As in Keras, the texts become ids before fit holds out the validation
 * tenth, so the vocabulary has seen it; spam_train splits first. */
#include <stdio.h>
#include <stdlib.h>
#include <llm/llm.h>

#define CHECK(call) do { llm_status s_ = (call); if (s_ != LLM_OK) { \
    fprintf(stderr, "%s: %s\n", llm_status_string(s_), llm_last_error()); return 1; } } while (0)

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "data/spam-sample";
    int epochs = argc > 2 ? atoi(argv[2]) : 10;

    /* e-mails -> texts -> the 20000 most frequent tokens -> rows of 200 ids */
    llm_text_corpus *corpus;  CHECK(llm_text_corpus_from_directory(&corpus, dir, NULL));
    llm_vocab *vocab;         CHECK(llm_vocab_build_from_corpus(&vocab, corpus, NULL, NULL));
    llm_dataset *train;       CHECK(llm_dataset_from_corpus(&train, corpus, vocab, NULL));

    llm_backend *cpu;  CHECK(llm_backend_create(&cpu, LLM_BACKEND_CPU, NULL));
    llm_model *m;      CHECK(llm_model_sequential(&m, cpu));
    CHECK(llm_model_add(m, llm_layer_embedding(20000, 64)));
    CHECK(llm_model_add(m, llm_layer_lstm(128, LLM_RETURN_LAST)));
    CHECK(llm_model_add(m, llm_layer_dense(1, LLM_ACT_SIGMOID)));
    llm_optimizer *adam;  CHECK(llm_optimizer_adam(&adam, 1e-3f));
    CHECK(llm_model_compile(m, LLM_LOSS_BINARY_CROSSENTROPY, adam, LLM_METRIC_ACCURACY));

    llm_fit_options fo;   llm_fit_options_init(&fo);
    fo.epochs = epochs;  fo.batch_size = 32;  fo.validation_split = 0.1f;
    llm_history *h;       CHECK(llm_model_fit(m, train, &fo, &h));

    int done;  CHECK(llm_history_epochs(h, &done));
    for (int e = 0; e < done; e++) {
        double loss, acc, val_loss, val_acc;
        CHECK(llm_history_get(h, "loss", e, &loss));
        CHECK(llm_history_get(h, "accuracy", e, &acc));
        CHECK(llm_history_get(h, "val_loss", e, &val_loss));
        CHECK(llm_history_get(h, "val_accuracy", e, &val_acc));
        printf("epoch %d/%d: loss %.4f - accuracy %.4f - val_loss %.4f - val_accuracy %.4f\n", e + 1, epochs,
               loss, acc, val_loss, val_acc);
    }

    llm_history_free(h);
    llm_optimizer_free(adam);
    llm_model_free(m);
    llm_backend_free(cpu);
    llm_dataset_free(train);
    llm_vocab_free(vocab);
    llm_text_corpus_free(corpus);
    return 0;
}
