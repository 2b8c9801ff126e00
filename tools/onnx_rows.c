/* onnx_rows: rows of real token ids for comparing an exported ONNX model with
 * libllm (tools/onnx_check.sh), in predict_ids' input format.
 *
 *   onnx_rows MODEL.safetensors DATA_DIR SEQ ROWS > rows
 *
 * Reads the messages of DATA_DIR (one folder per class, as spam_train does)
 * and encodes them with the model's own vocabulary or BPE tokenizer. Row r
 * takes the first L real ids of a message, L cycling through 1 .. SEQ (every
 * length, a single token included, as far as the message has them), and
 * places them as libllm's vectorizer would with pre padding (even rows) or
 * post padding (odd rows). Every 16th row has padding among its tokens as
 * well, and the last row is all padding. Padding is id 0, or the BPE
 * tokenizer's pad id (GPT-2's end-of-text, which a GPT-2 classifier's
 * embedding masks). Ham and spam alternate. A summary goes to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include "llm/llm.h"

static int fail(const char *what, llm_status s) {
    fprintf(stderr, "onnx_rows: %s: %s: %s\n", what, llm_status_string(s), llm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL.safetensors DATA_DIR SEQ ROWS\n", argv[0]);
        return 2;
    }
    long T = strtol(argv[3], NULL, 10), N = strtol(argv[4], NULL, 10);
    if (T < 1 || T > 100000 || N < 2 || N > 1000000) {
        fprintf(stderr, "onnx_rows: SEQ must be in [1, 100000] and ROWS in [2, 10^6]\n");
        return 2;
    }
    llm_backend *be = NULL;
    llm_model *m = NULL;
    llm_text_corpus *corpus = NULL;
    int32_t *tokens = malloc((size_t)T * sizeof *tokens), *row = malloc((size_t)T * sizeof *row);
    int rc = 1;
    llm_status s;
    const llm_vocab *vocab = NULL;
    const llm_bpe *bpe = NULL;
    llm_vectorize_options vo;
    llm_vectorize_options_init(&vo);
    vo.seq_len = (int32_t)T;
    vo.padding = LLM_SEQ_POST;
    vo.truncation = LLM_SEQ_POST; /* the first T tokens, then padding */
    int64_t count = 0, lengths_seen = 0, pre = 0, post = 0, inside = 0;
    char *seen = calloc((size_t)T + 1, 1);
    if (!tokens || !row || !seen) { fprintf(stderr, "onnx_rows: out of memory\n"); goto done; }
    if ((s = llm_backend_create(&be, LLM_BACKEND_CPU, NULL)) != LLM_OK) { fail("backend", s); goto done; }
    if ((s = llm_model_load(&m, be, argv[1])) != LLM_OK) { fail(argv[1], s); goto done; }
    if (llm_model_vocab(m, &vocab) != LLM_OK && llm_model_tokenizer(m, &bpe) != LLM_OK) {
        fprintf(stderr, "onnx_rows: %s has neither a vocabulary nor a tokenizer\n", argv[1]);
        goto done;
    }
    int32_t pad = 0, eot = 0;
    if (bpe && (s = llm_bpe_special_ids(bpe, &pad, &eot)) != LLM_OK) { fail("tokenizer", s); goto done; }
    if (pad < 0) pad = 0;
    if ((s = llm_text_corpus_from_directory(&corpus, argv[2], NULL)) != LLM_OK) { fail(argv[2], s); goto done; }
    if ((s = llm_text_corpus_count(corpus, &count)) != LLM_OK) { fail("corpus", s); goto done; }
    /* ham and spam by turns: a cursor per class over the corpus */
    int64_t next[2] = { 0, 0 };
    for (long r = 0; r < N; r++) {
        for (long i = 0; i < T; i++) row[i] = pad;
        int64_t have = 0;
        for (int64_t tries = 0; r < N - 1 && have == 0 && tries < 2 * count; tries++) {
            int c = (int)((r + tries) % 2);
            int32_t label = -1;
            for (int64_t scanned = 0; label != c && scanned < count; scanned++) {
                if (next[c] >= count) next[c] = 0;
                if ((s = llm_text_corpus_label(corpus, next[c]++, &label)) != LLM_OK) { fail("corpus", s); goto done; }
            }
            if (label != c) continue;
            const char *text;
            size_t len;
            if ((s = llm_text_corpus_text(corpus, next[c] - 1, &text, &len)) != LLM_OK) { fail("corpus", s); goto done; }
            s = vocab ? llm_vectorize(vocab, text, len, &vo, tokens, T, &have)
                      : llm_bpe_vectorize(bpe, text, len, &vo, tokens, T, &have);
            if (s != LLM_OK) { fail("encoding a message", s); goto done; }
        }
        if (have > T) have = T;
        int64_t L = 1 + r % T;
        if (L > have) L = have;
        int64_t at = r % 2 == 0 ? T - L : 0; /* pre: at the end; post: at the start */
        for (int64_t i = 0; i < L; i++) row[at + i] = tokens[i];
        /* padding among the tokens too: every third of them becomes padding */
        if (r % 16 == 15 && L >= 3) {
            for (int64_t i = 1; i < L - 1; i += 3) row[at + i] = pad;
            inside++;
        }
        if (L > 0) {
            lengths_seen += !seen[L];
            seen[L] = 1;
            if (at > 0) pre++; else if (L < T) post++;
        }
        for (int64_t i = 0; i < T; i++) printf("%d%c", row[i], i + 1 < T ? ' ' : '\n');
    }
    fprintf(stderr, "onnx_rows: %ld rows of %ld ids from %lld messages: %lld lengths in 1..%ld, %lld pre-padded, "
            "%lld post-padded, %lld with padding inside, 1 of padding alone (pad id %d)\n", N, T, (long long)count,
            (long long)lengths_seen, T, (long long)pre, (long long)post, (long long)inside, pad);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(seen);
    free(tokens);
    free(row);
    llm_text_corpus_free(corpus);
    llm_model_free(m);
    llm_backend_free(be);
    return rc;
}
