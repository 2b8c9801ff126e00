/* libllm: text preprocessing.
 *
 * The pipeline from raw mail to token ids, in the order it runs:
 *   e-mail reader   raw RFC 822 bytes -> one text (subject + decoded body)
 *   tokenizer       text -> tokens (ASCII lower-case, runs of letters/digits)
 *   vocabulary      tokens -> ids, built from training texts (llm_vocab)
 *   vectorizer      text -> a fixed-length row of int32 ids
 *   corpus          a directory of class sub-folders -> texts + labels
 *                   (llm_text_corpus), with shuffle and a stratified split
 * and, for language models, a byte-level BPE tokenizer (llm_bpe): any bytes
 * <-> token ids, with merges learned from a text.
 *
 * Everything works on bytes: any charset is read as bytes and invalid UTF-8
 * never makes a call fail. Strings the library returns through char ** are
 * NUL-terminated (the length is also given, as texts may hold NUL bytes) and
 * freed with llm_text_free. Option structs carry their size first: fill them
 * with their _init function, then change fields; NULL options mean defaults. */
#ifndef LLM_TEXT_H
#define LLM_TEXT_H

#include "common.h"
#include "status.h"
#include "dataset.h"

LLM_EXTERN_C_BEGIN

/* Frees a string returned by llm_email_parse, llm_email_read_file or
 * llm_text_read_file. NULL is a no-op. */
LLM_API void llm_text_free(char *text);

/* Reads at most max_bytes bytes of a file (>= 1; a larger file is cut, never
 * read whole) into a new NUL-terminated buffer; *text_len (may be NULL) gets
 * the length. LLM_ERR_IO when the file cannot be opened or read,
 * LLM_ERR_INVALID_ARGUMENT for NULL pointers or max_bytes 0. */
LLM_API llm_status llm_text_read_file(const char *path, size_t max_bytes, char **text,
                                      size_t *text_len);

/* ---------------------------------------------------------------- e-mail */

#define LLM_EMAIL_DEFAULT_MAX_BYTES ((size_t)1 << 20) /* 1 MiB */

typedef struct llm_email_options {
    size_t size;        /* sizeof(llm_email_options); set by llm_email_options_init */
    size_t max_bytes;   /* only the first max_bytes bytes of a message are read and
                           parsed (default 1 MiB; must be >= 1) */
    int keep_subject;   /* 1 (default): the decoded Subject is the first line of the text */
    const char *keep_headers; /* NULL (default) or a comma-separated list of other header
                           names (case-insensitive, e.g. "From,To,Reply-To") whose
                           decoded values are kept as "Name: value" lines before the
                           subject, or "*" for every header but the subject; the
                           string is read during the call only */
    int decode_mime;    /* 1 (default): walk multipart parts, decode base64 and quoted-
                           printable, reduce HTML to text, skip non-text parts.
                           0: the body is taken verbatim (a baseline without MIME) */
    int text_attachments; /* 1 (default): text parts marked as attachments are kept;
                           0: every part with Content-Disposition: attachment is skipped */
    int tag_headers;    /* 0 (default); 1: the kept headers and the subject are written
                           as tagged words, "name\xc2\xb7word" (the header's lower-case
                           name, U+00B7 MIDDLE DOT, each run of ASCII letters, digits
                           and bytes >= 0x80 of its decoded value), so that with the
                           default tokenizer `subject·free` is another token than the
                           body's `free` (header-aware tokens) */
} llm_email_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_email_options_init(llm_email_options *opts);

/* Turns one raw message (data, len bytes; data may be NULL when len is 0) into
 * its text: kept headers, the subject (RFC 2047 encoded-words decoded to their
 * bytes), then each text part decoded, one piece per line, with line ends
 * (CR LF, stray CR) turned into LF.
 * A leading mbox "From " line is skipped; headers end at the first empty line
 * (LF or CRLF) and folded lines are joined. multipart/alternative gives its
 * text/plain alternative when that has text, else the first one that has;
 * text/html loses tags, script and style contents, and has its common entities
 * decoded (link targets are kept as text); a forwarded message/rfc822 part adds
 * its own subject and text. Only the first opts->max_bytes bytes
 * are looked at. A message with no text gives "". *text is freed with
 * llm_text_free; *text_len may be NULL. LLM_ERR_INVALID_ARGUMENT for NULL
 * pointers or bad options; never fails on malformed mail. */
LLM_API llm_status llm_email_parse(const char *data, size_t len, const llm_email_options *opts,
                                   char **text, size_t *text_len);

/* llm_email_parse on a file, of which at most opts->max_bytes bytes are read.
 * LLM_ERR_IO when the file cannot be opened or read. */
LLM_API llm_status llm_email_read_file(const char *path, const llm_email_options *opts,
                                       char **text, size_t *text_len);

/* ------------------------------------------------------------- tokenizer */

#define LLM_TOKEN_MAX_LENGTH 1024 /* the largest allowed max_token_length */

typedef struct llm_tokenizer_options {
    size_t size;          /* sizeof(llm_tokenizer_options); set by llm_tokenizer_options_init */
    int lowercase;        /* 1 (default): ASCII A-Z become a-z (other bytes unchanged) */
    int keep_high_bytes;  /* 1 (default): bytes >= 0x80 are token characters, so words in
                             any charset stay whole; 0: they separate tokens like
                             punctuation (tokens are then runs of [a-z0-9] only) */
    int fold_numbers;     /* 0 (default); 1: tokens of ASCII digits only become "<num>" */
    int fold_urls;        /* 0 (default); 1: text from http://, https://, ftp:// or www.
                             to the next space or quote/bracket becomes "<url>" */
    int fold_emails;      /* 0 (default); 1: addresses local@domain.tld become "<email>" */
    int max_token_length; /* longer tokens are cut to this many bytes; 1 ..
                             LLM_TOKEN_MAX_LENGTH, default 64 */
} llm_tokenizer_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_tokenizer_options_init(llm_tokenizer_options *opts);

/* Called once per token; token is not NUL-terminated and is valid during the
 * call only. Return 0 to go on, anything else to stop. */
typedef int (*llm_token_fn)(const char *token, size_t len, void *user);

/* Splits text (len bytes; NULL when len is 0) into tokens: maximal runs of
 * ASCII letters and digits (and bytes >= 0x80 when keep_high_bytes), after the
 * folds the options ask for, each cut to max_token_length. Allocates nothing.
 * LLM_ERR_CANCELLED when fn stops early, LLM_ERR_INVALID_ARGUMENT for NULL
 * pointers or bad options. */
LLM_API llm_status llm_tokenize(const char *text, size_t len, const llm_tokenizer_options *opts,
                                llm_token_fn fn, void *user);

/* The tokens of text joined by single spaces, written into buf snprintf-style
 * (always NUL-terminated when len > 0; buf may be NULL when len is 0).
 * *needed, if not NULL, gets the full length without the NUL. For tests,
 * debugging and showing users what the model sees. */
LLM_API llm_status llm_tokenize_join(const char *text, size_t text_len,
                                     const llm_tokenizer_options *opts, char *buf, size_t len,
                                     size_t *needed);

/* ------------------------------------------------------------ vocabulary */

#define LLM_VOCAB_PAD 0 /* id of padding; its token is "" */
#define LLM_VOCAB_OOV 1 /* id of every token not in the vocabulary; its token is "[UNK]" */

/* A built vocabulary never changes, so several threads may look up, vectorize
 * and serialise with one llm_vocab at once. A builder is for one thread. */
typedef struct llm_vocab llm_vocab;
typedef struct llm_vocab_builder llm_vocab_builder;
typedef struct llm_text_corpus llm_text_corpus;

typedef struct llm_vocab_options {
    size_t size;        /* sizeof(llm_vocab_options); set by llm_vocab_options_init */
    int32_t max_tokens; /* vocabulary size including the two reserved ids (default 20000;
                           >= 2); 0 = no limit */
    int64_t min_count;  /* tokens seen fewer times are left out (default 1; >= 1) */
} llm_vocab_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_vocab_options_init(llm_vocab_options *opts);

/* Creates a builder that counts the tokens of the texts added to it, split
 * with the tokenizer options tok (NULL for the defaults), which the vocabulary
 * keeps so that texts are later split the same way. Free with
 * llm_vocab_builder_free. */
LLM_API llm_status llm_vocab_builder_create(llm_vocab_builder **out,
                                            const llm_tokenizer_options *tok);

/* Counts the tokens of one text (len bytes; NULL when len is 0). */
LLM_API llm_status llm_vocab_builder_add(llm_vocab_builder *builder, const char *text,
                                         size_t len);

/* Makes a vocabulary from the counts so far (the builder stays usable): ids 0
 * and 1 reserved, then the tokens seen at least min_count times by count
 * descending, ties by byte order, cut to max_tokens ids in all. The caller
 * frees *out with llm_vocab_free. */
LLM_API llm_status llm_vocab_builder_build(const llm_vocab_builder *builder,
                                           const llm_vocab_options *opts, llm_vocab **out);

/* Frees a builder. NULL is a no-op. */
LLM_API void llm_vocab_builder_free(llm_vocab_builder *builder);

/* Builds a vocabulary from every text of a corpus (pass the training part of
 * a split, so validation texts do not leak in). tok and opts may be NULL. */
LLM_API llm_status llm_vocab_build_from_corpus(llm_vocab **out, const llm_text_corpus *corpus,
                                               const llm_tokenizer_options *tok,
                                               const llm_vocab_options *opts);

/* Number of ids, the two reserved ones included. */
LLM_API llm_status llm_vocab_size(const llm_vocab *vocab, int32_t *size);

/* The id of a token (len bytes, as the tokenizer produces it), or
 * LLM_VOCAB_OOV when it is not in the vocabulary. */
LLM_API llm_status llm_vocab_lookup(const llm_vocab *vocab, const char *token, size_t len,
                                    int32_t *id);

/* The token of an id in [0, size): a NUL-terminated string owned by the
 * vocabulary, valid until llm_vocab_free; *len may be NULL. */
LLM_API llm_status llm_vocab_token(const llm_vocab *vocab, int32_t id, const char **token,
                                   size_t *len);

/* Copies the tokenizer options the vocabulary was built with into *opts
 * (which must have its size set, e.g. by llm_tokenizer_options_init). */
LLM_API llm_status llm_vocab_tokenizer_options(const llm_vocab *vocab,
                                               llm_tokenizer_options *opts);

/* Serialises the vocabulary (format version, tokenizer options, then one
 * token per line in id order from id 2) into buf. The text is printable
 * ASCII plus newlines (bytes >= 0x80 are written as \xHH), so it can sit in a
 * JSON string. *needed gets the size; call with buf NULL and len 0 to ask.
 * LLM_ERR_INVALID_ARGUMENT when buf is not NULL and len < *needed. */
LLM_API llm_status llm_vocab_serialize(const llm_vocab *vocab, char *buf, size_t len,
                                       size_t *needed);

/* Rebuilds a vocabulary from llm_vocab_serialize's output (len bytes).
 * LLM_ERR_FORMAT for anything malformed or of an unknown format version. */
LLM_API llm_status llm_vocab_deserialize(llm_vocab **out, const char *data, size_t len);

/* Frees a vocabulary. NULL is a no-op. */
LLM_API void llm_vocab_free(llm_vocab *vocab);

/* ------------------------------------------------------------ vectorizer */

typedef enum llm_seq_side {
    LLM_SEQ_PRE = 0,   /* at the start of the row */
    LLM_SEQ_POST = 1,  /* at the end of the row */
    LLM_SEQ_MIDDLE = 2 /* truncation only: a long text loses tokens in its middle; the
                          row keeps its first seq_len / 2 ids (headers, subject) and
                          its last ones (footer, signature). Word vocabularies only. */
} llm_seq_side;

typedef struct llm_vectorize_options {
    size_t size;             /* sizeof(llm_vectorize_options); set by llm_vectorize_options_init */
    int32_t seq_len;         /* ids per row (default 200; >= 1) */
    llm_seq_side padding;    /* where short rows get LLM_VOCAB_PAD ids. Default PRE: an
                                LSTM that reads its last state then ends on real tokens
                                instead of running through padding. */
    llm_seq_side truncation; /* where long texts lose tokens. Default POST: the row keeps
                                the start of the text, which holds the subject. */
    int32_t bigram_buckets;  /* 0 (default): one id per token. > 0 (word vocabularies
                                only): after each token's id (from the second token
                                on) comes the id of the word pair it ends, hashed from
                                both tokens' bytes into [vocab size, vocab size +
                                bigram_buckets) (fastText's hashing trick), so a
                                bag-of-embeddings model sees word order locally. The
                                model's embedding needs vocab size + bigram_buckets
                                rows; a row holds up to seq_len ids of both kinds. */
    int skip_unknown;        /* 0 (default): a token not in the vocabulary becomes
                                LLM_VOCAB_OOV. 1: it is left out, so a long text's
                                row holds more of the words the model knows (word
                                vocabularies only; bigram ids are unaffected). */
    int unique;              /* 0 (default); 1: only the first occurrence of each id
                                is kept (a repeated word or bigram adds nothing), so
                                a row covers more distinct words of a long text;
                                truncation and padding then apply to what is kept
                                (word vocabularies only). */
    int reverse;             /* 0 (default); 1: the kept ids in reverse order (padding
                                stays where `padding` says), so a recurrent model
                                that reads its last state ends on the start of the
                                text: the headers and the subject of a message
                                (word vocabularies only). */
    int32_t char_ngram_buckets; /* 0 (default): no subword ids. > 0 (word vocabularies
                                only): after each token's id (and its bigram id) come
                                the ids of its character n-grams: the substrings of
                                "<token>" of char_ngram_min to char_ngram_max bytes,
                                each hashed into [vocab size + bigram_buckets, that
                                + char_ngram_buckets) (fastText's subwords), for every
                                token, known to the vocabulary or not; so misspelt,
                                obfuscated and unseen words share ids with the words
                                they resemble. The model's embedding needs vocab size
                                + bigram_buckets + char_ngram_buckets rows. */
    int32_t char_ngram_min;  /* shortest n-gram, in bytes (default 3; >= 1) */
    int32_t char_ngram_max;  /* longest n-gram (default 5; >= char_ngram_min, <= 16) */
} llm_vectorize_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_vectorize_options_init(llm_vectorize_options *opts);

/* Tokenizes text (with the vocabulary's tokenizer options) into exactly
 * ids_count = opts->seq_len ids, padded and truncated as opts says.
 * *ntokens (may be NULL) gets the number of ids kept before truncation (tokens,
 * bigram ids, less what skip_unknown and unique leave out).
 * LLM_ERR_INVALID_ARGUMENT for NULL pointers, bad options or a wrong ids_count. */
LLM_API llm_status llm_vectorize(const llm_vocab *vocab, const char *text, size_t len,
                                 const llm_vectorize_options *opts, int32_t *ids,
                                 int64_t ids_count, int64_t *ntokens);

/* Naive-Bayes log-count ratios (Wang & Manning's NBSVM features) of the ids
 * in a dataset of int32 rows [n, seq_len] (e.g. llm_dataset_from_corpus) with
 * int32 labels 0/1: for each id in [1, ids),
 *     r[id] = log((alpha + p[id]) / |p|) - log((alpha + q[id]) / |q|)
 * with p[id] (q[id]) the number of positive (negative) rows holding id, each
 * row counting an id once, and |p| = sum over ids of (alpha + p[id]); r[0]
 * (padding) = 0. r has ids entries. Positive r marks an id of class 1. An
 * Embedding(ids, 1) initialised with r, pooled, under Dense(1, sigmoid) and
 * trained is NBSVM's interpolation between Naive Bayes and a linear model.
 * LLM_ERR_INVALID_ARGUMENT for an id outside [0, ids), a label not 0/1,
 * alpha <= 0, or a seq_len that is not the dataset's. */
LLM_API llm_status llm_dataset_nb_ratios(const llm_dataset *ds, int32_t seq_len, int32_t ids, float alpha,
                                         float *r);

/* ---------------------------------------------------------------- corpus */

typedef enum llm_corpus_format {
    LLM_CORPUS_EMAIL = 0, /* each file is a raw message, read through the e-mail reader */
    LLM_CORPUS_RAW = 1    /* each file is the text itself */
} llm_corpus_format;

typedef struct llm_corpus_options {
    size_t size;              /* sizeof(llm_corpus_options); set by llm_corpus_options_init */
    llm_corpus_format format; /* default LLM_CORPUS_EMAIL */
    size_t max_file_bytes;    /* at most this many bytes of each file are read (default
                                 1 MiB; >= 1); with e-mail the reader's own cap applies too */
    int skip_unreadable;      /* 0 (default): a file that cannot be read fails the load
                                 with LLM_ERR_IO naming it; 1: it is skipped and counted
                                 (llm_text_corpus_skipped) */
    const llm_email_options *email; /* e-mail reader options; NULL for the defaults */
} llm_corpus_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_corpus_options_init(llm_corpus_options *opts);

/* Loads dir, whose sub-folders are the classes (like Keras
 * text_dataset_from_directory): class names sorted by byte order give the
 * labels 0, 1, ... (ham = 0, spam = 1), and every regular file in a class
 * folder (sorted by name; names starting with '.' and sub-sub-folders are
 * ignored, as are files directly in dir) becomes one text, binary or not.
 * LLM_ERR_IO when dir is missing or not a directory; LLM_ERR_INVALID_ARGUMENT
 * when it has fewer than two class folders or a class folder with no file.
 * Free *out with llm_text_corpus_free. */
LLM_API llm_status llm_text_corpus_from_directory(llm_text_corpus **out, const char *dir,
                                                  const llm_corpus_options *opts);

/* Creates an empty corpus with num_classes (>= 1) classes named by
 * class_names (copied), to fill with llm_text_corpus_add. */
LLM_API llm_status llm_text_corpus_create(llm_text_corpus **out, const char *const *class_names,
                                          int32_t num_classes);

/* Appends a copy of text (len bytes; NULL when len is 0) with a label in
 * [0, num_classes). */
LLM_API llm_status llm_text_corpus_add(llm_text_corpus *corpus, const char *text, size_t len,
                                       int32_t label);

/* Counts: texts, classes, texts of class `label`, files skipped as unreadable. */
LLM_API llm_status llm_text_corpus_count(const llm_text_corpus *corpus, int64_t *count);
LLM_API llm_status llm_text_corpus_num_classes(const llm_text_corpus *corpus, int32_t *num_classes);
LLM_API llm_status llm_text_corpus_class_count(const llm_text_corpus *corpus, int32_t label,
                                               int64_t *count);
LLM_API llm_status llm_text_corpus_skipped(const llm_text_corpus *corpus, int64_t *skipped);

/* The name of class `label` (e.g. "spam"), owned by the corpus. */
LLM_API llm_status llm_text_corpus_class_name(const llm_text_corpus *corpus, int32_t label,
                                              const char **name);

/* Text i in [0, count): NUL-terminated, owned by the corpus and valid until it
 * is freed or shuffled; *len may be NULL. */
LLM_API llm_status llm_text_corpus_text(const llm_text_corpus *corpus, int64_t i,
                                        const char **text, size_t *len);

/* Label of text i in [0, count). */
LLM_API llm_status llm_text_corpus_label(const llm_text_corpus *corpus, int64_t i,
                                         int32_t *label);

/* The file text i came from ("dir/class/name"), or "" for added texts. */
LLM_API llm_status llm_text_corpus_source(const llm_text_corpus *corpus, int64_t i,
                                          const char **path);

/* Puts the texts in a random order that depends only on seed and the
 * current order. */
LLM_API llm_status llm_text_corpus_shuffle(llm_text_corpus *corpus, uint64_t seed);

/* Splits a corpus into two new ones, stratified: from each class of n texts,
 * round(val_fraction * n) (at most n - 1) picked at random go to *val and the
 * rest to *train, each part then shuffled. The same seed gives the same split.
 * val_fraction in [0, 1); 0 gives an empty *val. The input is not changed;
 * the caller frees both results. */
LLM_API llm_status llm_text_corpus_split(const llm_text_corpus *corpus, double val_fraction,
                                         uint64_t seed, llm_text_corpus **train,
                                         llm_text_corpus **val);

/* Vectorizes every text of the corpus into caller memory: ids is a row-major
 * [rows, seq_len] int32 matrix (ids_count = rows * seq_len elements), labels
 * [rows] and lengths [rows] (non-padding ids per row) may each be NULL. rows
 * must equal the corpus count. */
LLM_API llm_status llm_text_corpus_vectorize(const llm_text_corpus *corpus, const llm_vocab *vocab,
                                             const llm_vectorize_options *opts, int32_t *ids,
                                             int64_t ids_count, int32_t *labels, int32_t *lengths,
                                             int64_t rows);

/* A training dataset from a corpus: inputs int32 ids [n, seq_len] through
 * the vocabulary and vectorizer options (NULL = defaults), targets the
 * int32 class labels [n]. */
LLM_API llm_status llm_dataset_from_corpus(llm_dataset **out, const llm_text_corpus *corpus,
                                           const llm_vocab *vocab,
                                           const llm_vectorize_options *vectorize);

/* Frees a corpus and its texts. NULL is a no-op. */
LLM_API void llm_text_corpus_free(llm_text_corpus *corpus);

/* ------------------------------------------------- byte-pair encoding */

/* A byte-level byte-pair-encoding tokenizer, for language models. Ids:
 *   0            LLM_BPE_PAD, padding; decodes to nothing
 *   1            LLM_BPE_EOT, end of text (document separator, generation
 *                stop); decodes to nothing
 *   2 .. 257     the 256 single bytes: id = byte + 2
 *   258 ..       merges, in the order they were learned: id 258 + k is the
 *                concatenation of the two tokens of merge k
 * Every byte string encodes (there is no unknown token) and decodes back to
 * exactly the same bytes. The special ids are never produced by encoding; a
 * caller puts them where it wants them.
 *
 * Text is first cut into chunks, and merges never cross a chunk boundary.
 * Bytes are letters (A-Z, a-z and every byte >= 0x80, so UTF-8 words stay
 * together), digits (0-9), white space (space, \t, \n, \v, \f, \r) or other
 * (punctuation, control bytes). A chunk is
 *   - an optional single space (0x20) followed by a maximal run of letters,
 *     or of digits, or of other bytes (" the", "42", " ...", ","), or
 *   - a maximal run of white space, less its last byte when that is a space
 *     followed by a non-space byte (which then leads the next chunk):
 *     "a  b" is "a", " ", " b"; "a\n b" is "a", "\n", " b".
 * A chunk longer than LLM_BPE_MAX_CHUNK bytes is cut after that many bytes,
 * and the rest is cut again by the same rules. This is format version 1.
 *
 * An llm_bpe never changes once made, so several threads may encode, decode
 * and serialise with one at once. */
typedef struct llm_bpe llm_bpe;

#define LLM_BPE_PAD 0             /* padding id */
#define LLM_BPE_EOT 1             /* end-of-text id */
#define LLM_BPE_BYTE_BASE 2       /* id of byte b is LLM_BPE_BYTE_BASE + b */
#define LLM_BPE_FIRST_MERGE 258   /* id of the first merge; the byte-level vocabulary size */
#define LLM_BPE_MAX_VOCAB 65536   /* the largest vocabulary (ids fit in 16 bits) */
#define LLM_BPE_MAX_CHUNK 256     /* the longest chunk, hence the longest token, in bytes */
#define LLM_BPE_MAX_TRAIN_BYTES ((size_t)1 << 30) /* the largest training text (1 GiB) */

/* Creates the pure byte-level tokenizer: no merges, vocabulary size 258,
 * one id per byte. Free with llm_bpe_free. */
LLM_API llm_status llm_bpe_create_bytes(llm_bpe **out);

typedef struct llm_bpe_train_options {
    size_t size;           /* sizeof(llm_bpe_train_options); set by llm_bpe_train_options_init */
    int32_t vocab_size;    /* ids in all, the 258 fixed ones included (default 2048; in
                              [258, LLM_BPE_MAX_VOCAB]); training may stop below it */
    int32_t min_frequency; /* a pair seen fewer times than this is never merged, which
                              ends training early (default 2; >= 1) */
} llm_bpe_train_options;

/* Fills *opts with the defaults above and sets opts->size. */
LLM_API void llm_bpe_train_options_init(llm_bpe_train_options *opts);

/* Learns merges from text (len bytes, at most LLM_BPE_MAX_TRAIN_BYTES; NULL
 * when len is 0): the text is cut into chunks as described above, and then
 * the most frequent pair of adjacent tokens inside a chunk is merged into a
 * new token, again and again, until the vocabulary has opts->vocab_size ids
 * or no pair is seen opts->min_frequency times. Ties go to the pair with the
 * lowest (left id, right id), so the same text and options always give the
 * same merges. Pair counts are updated where merges happen, not recounted:
 * 10 MB of English to 4096 ids takes a fraction of a second, and even text
 * without spaces (every chunk LLM_BPE_MAX_CHUNK bytes) only a few seconds,
 * using up to about 40 bytes of memory per byte of distinct chunks. opts may
 * be NULL for the defaults. Free *out with llm_bpe_free. */
LLM_API llm_status llm_bpe_train(llm_bpe **out, const char *text, size_t len,
                                 const llm_bpe_train_options *opts);

/* Encodes text (len bytes; NULL when len is 0) into ids, applying within each
 * chunk the merges in the order they were learned (exactly what training did
 * to its own text). *n_ids gets the number of ids the text needs; call with
 * ids NULL and cap 0 to ask for it. LLM_ERR_INVALID_ARGUMENT when ids is not
 * NULL and cap < *n_ids (the first cap ids are then written). The only memory
 * used is a cache of recent chunks, bounded, and encoding goes on without it
 * when memory is short. */
LLM_API llm_status llm_bpe_encode(const llm_bpe *bpe, const char *text, size_t len,
                                  int32_t *ids, size_t cap, size_t *n_ids);

/* Decodes n ids (ids may be NULL when n is 0) into the bytes they stand for,
 * written to buf (not NUL-terminated); LLM_BPE_PAD and LLM_BPE_EOT give no
 * bytes. *len gets the number of bytes; call with buf NULL and cap 0 to ask
 * for it. LLM_ERR_INVALID_ARGUMENT for an id outside [0, vocabulary size),
 * or when buf is not NULL and cap < *len (the first cap bytes are written). */
LLM_API llm_status llm_bpe_decode(const llm_bpe *bpe, const int32_t *ids, size_t n, char *buf,
                                  size_t cap, size_t *len);

/* The bytes of one token (for streaming output one token at a time): a
 * pointer owned by the tokenizer, valid until llm_bpe_free, NUL-terminated
 * after its *len bytes (which may themselves hold NUL bytes; len may be NULL).
 * LLM_BPE_PAD and LLM_BPE_EOT give "" with length 0. LLM_ERR_INVALID_ARGUMENT
 * for an id outside [0, vocabulary size). */
LLM_API llm_status llm_bpe_token_bytes(const llm_bpe *bpe, int32_t id, const char **bytes,
                                       size_t *len);

/* Number of ids: 258 plus the number of merges. */
LLM_API llm_status llm_bpe_vocab_size(const llm_bpe *bpe, int32_t *size);

/* Serialises the tokenizer as ASCII text, format version 1:
 *   llm-bpe 1 <number of merges>\n
 *   <left id> <right id>\n            one line per merge, in id order
 * with ids in decimal without leading zeros. The token of merge k (id
 * 258 + k) joins the tokens left and right, both < 258 + k and >= 2. *len
 * gets the size; call with buf NULL and cap 0 to ask for it.
 * LLM_ERR_INVALID_ARGUMENT when buf is not NULL and cap < *len. */
LLM_API llm_status llm_bpe_serialize(const llm_bpe *bpe, char *buf, size_t cap, size_t *len);

/* Rebuilds a tokenizer from llm_bpe_serialize's output (len bytes). Treats
 * the data as hostile: LLM_ERR_FORMAT, with the line at fault in the
 * message, for anything but a well-formed version 1 text with exactly the
 * merges it announces: an id that names no earlier token or a special one, a
 * merge given twice, a token longer than LLM_BPE_MAX_CHUNK bytes, more than
 * LLM_BPE_MAX_VOCAB ids, bytes after the last line. */
LLM_API llm_status llm_bpe_deserialize(llm_bpe **out, const char *data, size_t len);

/* ---- GPT-2's tokenizer ----
 * The same llm_bpe handle, made from GPT-2's vocab.json and merges.txt (the
 * encoder.json and vocab.bpe of OpenAI's release; every GPT-2 size shares
 * them): ids are vocab.json's (50257 for GPT-2, "<|endoftext|>" = 50256),
 * merges apply by their rank in merges.txt, and text is cut by GPT-2's rule
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with Unicode 17.0's letters and numbers and JavaScript's white space, as
 * the reference encoder (gpt-3-encoder on Node.js) applies it. A byte that is
 * not part of valid UTF-8 counts as one character that is neither letter,
 * number nor space (as the lone surrogate Python's surrogateescape would make
 * of it). Chunks have no length limit up to 1 MiB (a longer one is cut).
 * Encoding gives the reference's ids on every text, and decoding gives back
 * exactly the encoded bytes; no id is special while encoding: the text
 * "<|endoftext|>" encodes as ordinary tokens and the id 50256 decodes to it.
 * Serialised (llm_bpe_serialize) as format version 2: the line
 * "llm-bpe 2 gpt2 <bytes of vocab.json> <bytes of merges.txt>" and the two
 * files. Encoding needs scratch memory in proportion to the longest chunk. */

/* Reads GPT-2's tokenizer from vocab.json and merges.txt (each at most 64
 * MiB). LLM_ERR_IO when a file cannot be read, LLM_ERR_FORMAT naming the file
 * and line or token for a malformed one (a token not written in GPT-2's byte
 * alphabet, an id given twice or outside [0, count), a byte without its own
 * token, a merge whose sides or result vocab.json lacks, a merge given twice). */
LLM_API llm_status llm_bpe_load_gpt2(llm_bpe **out, const char *vocab_path, const char *merges_path);
/* The same from the files' bytes in memory. */
LLM_API llm_status llm_bpe_from_gpt2(llm_bpe **out, const char *vocab_json, size_t vocab_len,
                                     const char *merges, size_t merges_len);

/* The ids with a special role: *pad pads llm_bpe_vectorize's rows and *eot
 * ends a text (a generation stop). libllm's own BPE: LLM_BPE_PAD and
 * LLM_BPE_EOT. GPT-2's: both "<|endoftext|>" (as transformers pads GPT-2),
 * or, without that token, pad 0 and eot -1. */
LLM_API llm_status llm_bpe_special_ids(const llm_bpe *bpe, int32_t *pad, int32_t *eot);

/* Frees a tokenizer. NULL is a no-op. */
LLM_API void llm_bpe_free(llm_bpe *bpe);

/* Encodes text with a BPE tokenizer into exactly ids_count = opts->seq_len
 * ids, padded (with the tokenizer's pad id, llm_bpe_special_ids) and truncated as opts says, like
 * llm_vectorize. *ntokens (may be NULL) gets the number of ids before
 * truncation. */
LLM_API llm_status llm_bpe_vectorize(const llm_bpe *bpe, const char *text, size_t len,
                                     const llm_vectorize_options *opts, int32_t *ids, int64_t ids_count,
                                     int64_t *ntokens);

/* A dataset of the corpus's texts encoded with a BPE tokenizer into rows of
 * vectorize->seq_len ids, with the corpus's labels (llm_dataset_from_corpus
 * for BPE). */
LLM_API llm_status llm_dataset_from_corpus_bpe(llm_dataset **out, const llm_text_corpus *corpus,
                                               const llm_bpe *bpe, const llm_vectorize_options *vectorize);

LLM_EXTERN_C_END

#endif /* LLM_TEXT_H */
