"""Text: corpora of labelled texts, vocabularies and the option helpers the
text pipeline shares."""
import ctypes
from ctypes import byref, c_char_p, c_int32, c_int64, c_size_t, c_void_p

from . import _ffi
from .core import Handle
from .errors import check

SIDES = {"pre": 0, "post": 1}
FORMATS = {"email": 0, "raw": 1}


def _bytes(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def vectorize_options(seq_len=200, padding="pre", truncation="post"):
    o = _ffi.init(_ffi.VectorizeOptions, _ffi.vectorize_options_init)
    o.seq_len = seq_len
    o.padding = SIDES[padding]
    o.truncation = SIDES[truncation]
    return o


def email_options(max_bytes=None, keep_subject=True, keep_headers=None, decode_mime=True,
                  text_attachments=True):
    """An llm_email_options; keep_headers a comma-separated str or a list."""
    o = _ffi.init(_ffi.EmailOptions, _ffi.email_options_init)
    if max_bytes is not None:
        o.max_bytes = max_bytes
    o.keep_subject = int(bool(keep_subject))
    if keep_headers:
        if not isinstance(keep_headers, (str, bytes)):
            keep_headers = ",".join(keep_headers)
        o.keep_headers = _bytes(keep_headers)  # the struct keeps the bytes alive
    o.decode_mime = int(bool(decode_mime))
    o.text_attachments = int(bool(text_attachments))
    return o


def tokenizer_options(lowercase=True, keep_high_bytes=True, fold_numbers=False, fold_urls=False,
                      fold_emails=False, max_token_length=64):
    o = _ffi.init(_ffi.TokenizerOptions, _ffi.tokenizer_options_init)
    o.lowercase, o.keep_high_bytes = int(bool(lowercase)), int(bool(keep_high_bytes))
    o.fold_numbers, o.fold_urls = int(bool(fold_numbers)), int(bool(fold_urls))
    o.fold_emails, o.max_token_length = int(bool(fold_emails)), max_token_length
    return o


def tokenize(text, **tokenizer):
    """The tokens of text (str or bytes) as a list of str."""
    data = _bytes(text)
    opts = tokenizer_options(**tokenizer)
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
            names = [_bytes(n) for n in class_names]
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
        o.format = FORMATS[format]
        if max_file_bytes is not None:
            o.max_file_bytes = max_file_bytes
        o.skip_unreadable = int(bool(skip_unreadable))
        em = None
        if email is not None:
            em = email if isinstance(email, _ffi.EmailOptions) else email_options(**email)
            o.email = ctypes.pointer(em)
        out = c_void_p()
        check(_ffi.text_corpus_from_directory(byref(out), _bytes(str(path)), byref(o)))
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

    def to_dataset(self, vocab, seq_len=200, padding="pre", truncation="post"):
        from .core import Dataset
        return Dataset.from_corpus(self, vocab, seq_len, padding, truncation)

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
        vo = _ffi.init(_ffi.VocabOptions, _ffi.vocab_options_init)
        vo.max_tokens, vo.min_count = max_tokens, min_count
        to = tokenizer_options(**tokenizer)
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

    def vectorize(self, text, seq_len=200, padding="pre", truncation="post"):
        """text -> a list of seq_len int ids."""
        data = _bytes(text)
        opts = vectorize_options(seq_len, padding, truncation)
        ids = (c_int32 * seq_len)()
        check(_ffi.vectorize(self._handle(), data, len(data), byref(opts), ids, seq_len, None))
        return list(ids)

    def __repr__(self):
        return "<llm.Vocab %s>" % ("closed" if not self._ptr else "size=%d" % len(self))
