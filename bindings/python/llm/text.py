"""Text: corpora of labelled texts, vocabularies, the BPE tokenizer and the
option helpers the text pipeline shares. Texts are str (encoded as UTF-8),
bytes, bytearray or memoryview."""
import ctypes
from ctypes import byref, c_char_p, c_int32, c_int64, c_size_t, c_void_p

from . import _ffi, _check
from .core import Handle
from .errors import check, ArgumentTypeError

SIDES = {"pre": 0, "post": 1}
TRUNCATIONS = {"pre": 0, "post": 1, "middle": 2}
FORMATS = {"email": 0, "raw": 1}


def _bytes(s, name="text"):
    return _check.text(s, name)


def vectorize_options(seq_len=200, padding="pre", truncation="post", bigram_buckets=0, skip_unknown=False,
                      unique=False, reverse=False, char_ngram_buckets=0, char_ngram_min=3, char_ngram_max=5):
    """An llm_vectorize_options (text.h): truncation "middle", bigram_buckets,
    skip_unknown, unique, reverse and char_ngram_buckets are for word vocabularies."""
    o = _ffi.init(_ffi.VectorizeOptions, _ffi.vectorize_options_init)
    return _check.set_fields(o, seq_len=seq_len, padding=_check.choice(padding, SIDES, "padding"),
                             truncation=_check.choice(truncation, TRUNCATIONS, "truncation"),
                             bigram_buckets=bigram_buckets, skip_unknown=int(bool(skip_unknown)),
                             unique=int(bool(unique)), reverse=int(bool(reverse)),
                             char_ngram_buckets=char_ngram_buckets, char_ngram_min=char_ngram_min,
                             char_ngram_max=char_ngram_max)


def email_options(max_bytes=None, keep_subject=True, keep_headers=None, decode_mime=True,
                  text_attachments=True):
    """An llm_email_options; keep_headers a comma-separated str or a list."""
    o = _ffi.init(_ffi.EmailOptions, _ffi.email_options_init)
    if max_bytes is not None:
        _check.field(o, "max_bytes", max_bytes)
    o.keep_subject = int(bool(keep_subject))
    if keep_headers:
        if not isinstance(keep_headers, (str, bytes)):
            if not isinstance(keep_headers, (list, tuple)) or not all(isinstance(h, str) for h in keep_headers):
                raise ArgumentTypeError("keep_headers must be a comma-separated str or a list of str")
            keep_headers = ",".join(keep_headers)
        _check.field(o, "keep_headers", keep_headers)  # the struct keeps the bytes alive
    o.decode_mime = int(bool(decode_mime))
    o.text_attachments = int(bool(text_attachments))
    return o


def tokenizer_options(lowercase=True, keep_high_bytes=True, fold_numbers=False, fold_urls=False,
                      fold_emails=False, max_token_length=64):
    o = _ffi.init(_ffi.TokenizerOptions, _ffi.tokenizer_options_init)
    o.lowercase, o.keep_high_bytes = int(bool(lowercase)), int(bool(keep_high_bytes))
    o.fold_numbers, o.fold_urls = int(bool(fold_numbers)), int(bool(fold_urls))
    o.fold_emails = int(bool(fold_emails))
    _check.field(o, "max_token_length", max_token_length)
    return o


def tokenize(text, **tokenizer):
    """The tokens of text (str or bytes) as a list of str."""
    data = _bytes(text)
    opts = _check.call_with(tokenizer_options, tokenizer, "tokenize")
    need = c_size_t()
    check(_ffi.tokenize_join(data, len(data), byref(opts), None, 0, byref(need)))
    buf = ctypes.create_string_buffer(need.value + 1)
    check(_ffi.tokenize_join(data, len(data), byref(opts), buf, len(buf), byref(need)))
    joined = buf.value.decode("utf-8", "replace")
    return joined.split(" ") if joined else []


class TextCorpus(Handle):
    """Labelled texts. TextCorpus.from_directory(dir) reads one sub-folder per
    class (names sorted give labels: ham 0, spam 1); TextCorpus(class_names)
    makes an empty one to fill with add()."""
    _free = staticmethod(_ffi.text_corpus_free)

    def __init__(self, class_names=None, _ptr=None):
        if _ptr is None:
            if not isinstance(class_names, (list, tuple)):
                raise ArgumentTypeError("class_names must be a list of names, not %s" % type(class_names).__name__)
            names = [_check.cstring(n, "class name") for n in class_names]
            arr = (c_char_p * len(names))(*names)
            out = c_void_p()
            check(_ffi.text_corpus_create(byref(out), arr, len(names)))
            _ptr = out.value
        self._ptr = _ptr

    @classmethod
    def from_directory(cls, path, format="email", max_file_bytes=None, skip_unreadable=False,
                       email=None):
        """email: an email_options() result or a dict of its arguments."""
        o = _ffi.init(_ffi.CorpusOptions, _ffi.corpus_options_init)
        o.format = _check.choice(format, FORMATS, "corpus format")
        if max_file_bytes is not None:
            _check.field(o, "max_file_bytes", max_file_bytes)
        o.skip_unreadable = int(bool(skip_unreadable))
        em = None
        if email is not None:
            if isinstance(email, _ffi.EmailOptions):
                em = email
            elif isinstance(email, dict):
                em = _check.call_with(email_options, email, "email options")
            else:
                raise ArgumentTypeError("email must be an EmailOptions or a dict of email_options() arguments")
            o.email = ctypes.pointer(em)
        out = c_void_p()
        check(_ffi.text_corpus_from_directory(byref(out), _check.path(path), byref(o)))
        return cls(_ptr=out.value)

    def add(self, text, label):
        data = _bytes(text)
        check(_ffi.text_corpus_add(self._handle(), data, len(data), label))

    def __len__(self):
        n = c_int64()
        check(_ffi.text_corpus_count(self._handle(), byref(n)))
        return n.value

    @property
    def num_classes(self):
        n = c_int32()
        check(_ffi.text_corpus_num_classes(self._handle(), byref(n)))
        return n.value

    @property
    def class_names(self):
        out = []
        for i in range(self.num_classes):
            s = c_char_p()
            check(_ffi.text_corpus_class_name(self._ptr, i, byref(s)))
            out.append(s.value.decode("utf-8", "replace"))
        return out

    def class_count(self, label):
        n = c_int64()
        check(_ffi.text_corpus_class_count(self._handle(), label, byref(n)))
        return n.value

    @property
    def skipped(self):
        n = c_int64()
        check(_ffi.text_corpus_skipped(self._handle(), byref(n)))
        return n.value

    def text(self, i):
        """Text i as bytes (texts may be in any charset)."""
        ptr, n = c_void_p(), c_size_t()
        check(_ffi.text_corpus_text(self._handle(), i, byref(ptr), byref(n)))
        return ctypes.string_at(ptr.value, n.value) if n.value else b""

    def label(self, i):
        v = c_int32()
        check(_ffi.text_corpus_label(self._handle(), i, byref(v)))
        return v.value

    def labels(self):
        return [self.label(i) for i in range(len(self))]

    def shuffle(self, seed=1):
        check(_ffi.text_corpus_shuffle(self._handle(), seed))

    def split(self, val_fraction, seed=1):
        """Stratified split: returns (train, val), two new corpora."""
        a, b = c_void_p(), c_void_p()
        check(_ffi.text_corpus_split(self._handle(), val_fraction, seed, byref(a), byref(b)))
        return TextCorpus(_ptr=a.value), TextCorpus(_ptr=b.value)

    def to_dataset(self, tokens, seq_len=200, padding="pre", truncation="post"):
        """Dataset.from_corpus(self, tokens, ...): tokens a Vocab or a BPE."""
        from .core import Dataset
        return Dataset.from_corpus(self, tokens, seq_len, padding, truncation)

    def __repr__(self):
        return "<llm.TextCorpus %s>" % ("closed" if not self._ptr else "n=%d" % len(self))


class Vocab(Handle):
    """A token vocabulary (ids 0 = padding, 1 = unknown). Vocab.from_corpus."""
    _free = staticmethod(_ffi.vocab_free)
    PAD, OOV = 0, 1

    def __init__(self, _ptr):
        self._ptr = _ptr

    @classmethod
    def from_corpus(cls, corpus, max_tokens=20000, min_count=1, **tokenizer):
        """tokenizer: tokenizer_options() arguments (lowercase, fold_numbers...)."""
        if not isinstance(corpus, TextCorpus):
            raise ArgumentTypeError("corpus must be a TextCorpus, not %s" % type(corpus).__name__)
        vo = _ffi.init(_ffi.VocabOptions, _ffi.vocab_options_init)
        _check.set_fields(vo, max_tokens=max_tokens, min_count=min_count)
        to = _check.call_with(tokenizer_options, tokenizer, "Vocab.from_corpus")
        out = c_void_p()
        check(_ffi.vocab_build_from_corpus(byref(out), corpus._handle(), byref(to), byref(vo)))
        return cls(out.value)

    def __len__(self):
        n = c_int32()
        check(_ffi.vocab_size(self._handle(), byref(n)))
        return n.value

    def lookup(self, token):
        data = _bytes(token)
        v = c_int32()
        check(_ffi.vocab_lookup(self._handle(), data, len(data), byref(v)))
        return v.value

    def token(self, i):
        ptr, n = c_void_p(), c_size_t()
        check(_ffi.vocab_token(self._handle(), i, byref(ptr), byref(n)))
        return ctypes.string_at(ptr.value, n.value).decode("utf-8", "replace") if n.value else ""

    def vectorize(self, text, seq_len=200, padding="pre", truncation="post", **features):
        """text -> a list of seq_len int ids; features: vectorize_options'
        bigram_buckets, skip_unknown, unique, reverse, char_ngram_buckets,
        char_ngram_min, char_ngram_max."""
        data = _bytes(text)
        opts = _check.call_with(vectorize_options, dict(features, seq_len=seq_len, padding=padding,
                                                        truncation=truncation), "vectorize options")
        ids = (c_int32 * max(opts.seq_len, 0))()
        check(_ffi.vectorize(self._handle(), data, len(data), byref(opts), ids, opts.seq_len, None))
        return list(ids)

    def __repr__(self):
        return "<llm.Vocab %s>" % ("closed" if not self._ptr else "size=%d" % len(self))


class BPE(Handle):
    """A byte-pair-encoding tokenizer (include/llm/text.h): BPE.train(text,
    vocab_size=2048) learns merges from a text, BPE.byte_level() is the plain
    byte-level one (258 ids), BPE.deserialize(data) reads serialize()'s
    text. Ids: 0 padding (PAD), 1 end of text (EOT), 2 + b the byte b, then
    one per merge; len(bpe) is the vocabulary size. A tokenizer never changes
    once made, so threads may share one."""
    _free = staticmethod(_ffi.bpe_free)
    PAD, EOT, BYTE_BASE = 0, 1, 2

    def __init__(self, _ptr):
        self._ptr = _ptr

    @classmethod
    def byte_level(cls):
        out = c_void_p()
        check(_ffi.bpe_create_bytes(byref(out)))
        return cls(out.value)

    @classmethod
    def train(cls, text, vocab_size=2048, min_frequency=2):
        """Learns merges from text until vocab_size ids or no pair is seen
        min_frequency times; the same text and options give the same merges."""
        data = _bytes(text)
        o = _ffi.init(_ffi.BPETrainOptions, _ffi.bpe_train_options_init)
        _check.set_fields(o, vocab_size=vocab_size, min_frequency=min_frequency)
        out = c_void_p()
        check(_ffi.bpe_train(byref(out), data, len(data), byref(o)))
        return cls(out.value)

    @classmethod
    def deserialize(cls, data):
        data = _bytes(data, "data")
        out = c_void_p()
        check(_ffi.bpe_deserialize(byref(out), data, len(data)))
        return cls(out.value)

    def serialize(self):
        """The tokenizer as bytes (format version 1, ASCII)."""
        need = c_size_t()
        check(_ffi.bpe_serialize(self._handle(), None, 0, byref(need)))
        buf = ctypes.create_string_buffer(need.value + 1)
        check(_ffi.bpe_serialize(self._ptr, buf, len(buf), byref(need)))
        return buf.raw[:need.value]

    def __len__(self):
        n = c_int32()
        check(_ffi.bpe_vocab_size(self._handle(), byref(n)))
        return n.value

    vocab_size = property(__len__)

    def encode(self, text):
        """text -> a list of ids."""
        data = _bytes(text)
        n = c_size_t()
        check(_ffi.bpe_encode(self._handle(), data, len(data), None, 0, byref(n)))
        ids = (c_int32 * n.value)()
        check(_ffi.bpe_encode(self._ptr, data, len(data), ids, n.value, byref(n)))
        return list(ids[:n.value])

    def decode(self, ids):
        """ids -> the bytes they stand for (PAD and EOT give none)."""
        arr = _id_array(ids)
        n = c_size_t()
        check(_ffi.bpe_decode(self._handle(), arr, len(arr), None, 0, byref(n)))
        buf = ctypes.create_string_buffer(max(n.value, 1))
        check(_ffi.bpe_decode(self._ptr, arr, len(arr), buf, n.value, byref(n)))
        return buf.raw[:n.value]

    def token(self, i):
        """The bytes of token i."""
        ptr, n = c_void_p(), c_size_t()
        check(_ffi.bpe_token_bytes(self._handle(), i, byref(ptr), byref(n)))
        return ctypes.string_at(ptr.value, n.value) if n.value else b""

    def vectorize(self, text, seq_len=200, padding="pre", truncation="post"):
        """text -> exactly seq_len ids, padded with PAD and truncated."""
        data = _bytes(text)
        opts = vectorize_options(seq_len, padding, truncation)
        ids = (c_int32 * max(opts.seq_len, 0))()
        check(_ffi.bpe_vectorize(self._handle(), data, len(data), byref(opts), ids, opts.seq_len, None))
        return list(ids)

    def __repr__(self):
        return "<llm.BPE %s>" % ("closed" if not self._ptr else "vocab_size=%d" % len(self))


def _id_array(ids):
    """A c_int32 array of token ids (each checked: an id that does not fit
    int32 is an error, not another id)."""
    if isinstance(ids, (str, bytes, bytearray)) or not hasattr(ids, "__iter__"):
        raise ArgumentTypeError("ids must be a sequence of integers, not %s" % type(ids).__name__)
    vals = [_check.integer(v, "token id", c_int32) for v in ids]
    return (c_int32 * len(vals))(*vals)
