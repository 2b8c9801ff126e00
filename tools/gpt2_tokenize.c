/* gpt2_tokenize: GPT-2's tokenizer (llm_bpe_load_gpt2) over a file of byte
 * strings, for tools/check_gpt2_tokenizer.py's comparison with the reference
 * encoder.
 *
 *   gpt2_tokenize VOCAB.json MERGES.txt RECORDS OUT
 *   gpt2_tokenize --classes           (the Unicode class table, as runs)
 *
 * RECORDS is a sequence of byte strings, each a little-endian uint32 length
 * and that many bytes. Each is encoded; its ids go to OUT as one line,
 * space-separated; and it is decoded again, which must give the same bytes
 * (a difference is reported and the exit status is 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llm/llm.h"
#include "text/unicode_classes.h"

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--classes") == 0) {
        printf("unicode %s\n", llm__unicode_version);
        for (int i = 0; i < llm__unicode_runs; i++) printf("%u %d\n", llm__unicode_first[i], llm__unicode_cls[i]);
        return 0;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: gpt2_tokenize VOCAB.json MERGES.txt RECORDS OUT | --classes\n");
        return 2;
    }
    llm_bpe *bpe = NULL;
    if (llm_bpe_load_gpt2(&bpe, argv[1], argv[2]) != LLM_OK) {
        fprintf(stderr, "gpt2_tokenize: %s\n", llm_last_error());
        return 1;
    }
    FILE *in = fopen(argv[3], "rb"), *out = fopen(argv[4], "w");
    if (!in || !out) {
        fprintf(stderr, "gpt2_tokenize: cannot open %s or %s\n", argv[3], argv[4]);
        return 1;
    }
    int rc = 0;
    long records = 0, bad = 0;
    unsigned char len4[4];
    while (fread(len4, 1, 4, in) == 4) {
        size_t len = (size_t)len4[0] | (size_t)len4[1] << 8 | (size_t)len4[2] << 16 | (size_t)len4[3] << 24;
        char *text = malloc(len ? len : 1), *back = NULL;
        size_t n = 0, blen = 0;
        int32_t *ids = NULL;
        if (!text || fread(text, 1, len, in) != len) { rc = 1; fprintf(stderr, "gpt2_tokenize: bad records\n"); }
        if (!rc && llm_bpe_encode(bpe, text, len, NULL, 0, &n) != LLM_OK) rc = 1;
        if (!rc && !(ids = malloc((n ? n : 1) * sizeof *ids))) rc = 1;
        if (!rc && llm_bpe_encode(bpe, text, len, ids, n, &n) != LLM_OK) rc = 1;
        if (!rc && llm_bpe_decode(bpe, ids, n, NULL, 0, &blen) != LLM_OK) rc = 1;
        if (!rc && (!(back = malloc(blen ? blen : 1)) || llm_bpe_decode(bpe, ids, n, back, blen, &blen) != LLM_OK)) rc = 1;
        if (!rc) {
            for (size_t i = 0; i < n; i++) fprintf(out, i ? " %d" : "%d", (int)ids[i]);
            fputc('\n', out);
            if (blen != len || memcmp(back, text, len) != 0) {
                if (bad++ < 5) fprintf(stderr, "gpt2_tokenize: record %ld: decode(encode(x)) != x\n", records);
            }
        } else {
            fprintf(stderr, "gpt2_tokenize: record %ld: %s\n", records, llm_last_error());
        }
        free(text);
        free(back);
        free(ids);
        if (rc) break;
        records++;
    }
    fclose(in);
    if (fclose(out) != 0) rc = 1;
    llm_bpe_free(bpe);
    fprintf(stderr, "gpt2_tokenize: %ld records, %ld failed to decode back\n", records, bad);
    return rc || bad ? 1 : 0;
}
