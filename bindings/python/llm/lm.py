"""Language models: training windows over a token sequence, the decoder
(key/value cache) and sampling (include/llm/generate.h). Model.generate
samples whole continuations; a Decoder gives the logits token by token."""
from ctypes import byref, c_float, c_int32, c_int64, c_uint64, c_void_p

from . import _ffi, _check
from .core import Handle, _np
from .errors import check, ArgumentTypeError, ClosedError, InvalidArgument


def generate_options(max_tokens=100, temperature=1.0, top_k=0, top_p=1.0, seed=1, stop_token=-1):
    o = _ffi.init(_ffi.GenerateOptions, _ffi.generate_options_init)
    return _check.set_fields(o, "generate: ", max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed, stop_token=stop_token)


def next_token_windows(ids, context, stride=None):
    """Training pairs for a language model from one token sequence (e.g.
    BPE.encode of a text): x[i] = ids[s:s + context] and y[i] =
    ids[s + 1:s + context + 1], the next token at every position, for s = 0,
    stride, 2 stride, ... (stride defaults to context: windows side by side).
    Returns (x, y) as int32 numpy arrays [N, context] when numpy is there,
    else lists; fit them with the loss "sparse_categorical_crossentropy_logits"."""
    context = _check.integer(context, "context", lo=1)
    stride = context if stride is None else _check.integer(stride, "stride", lo=1)
    if isinstance(ids, (str, bytes, bytearray)) or not hasattr(ids, "__len__"):
        raise ArgumentTypeError("ids must be a sequence of token ids (BPE.encode of a text), not %s"
                                % type(ids).__name__)
    n = len(ids)
    if n < context + 1:
        raise InvalidArgument("%d ids make no window of context %d (it needs context + 1 ids)" % (n, context))
    starts = range(0, n - context, stride)
    if _np is not None:
        from .core import _numpy_checked, I32
        a = _numpy_checked(_np.asarray(ids), I32)
        rows = _np.asarray(starts)[:, None] + _np.arange(context)[None, :]
        return a[rows], a[rows + 1]
    ids = list(ids)
    return [ids[s:s + context] for s in starts], [ids[s + 1:s + context + 1] for s in starts]


def sample_token(logits, temperature=1.0, top_k=0, top_p=1.0, seed=1, counter=0):
    """Picks a token id from logits (a list of floats) as generate does;
    returns (token, counter + 1): pass the counter back for the next token,
    so that the same seed gives the same sequence."""
    if isinstance(logits, (str, bytes, bytearray)) or not hasattr(logits, "__iter__"):
        raise ArgumentTypeError("logits must be a sequence of numbers, not %s" % type(logits).__name__)
    vals = [_check.float32(v, "logit") for v in logits]
    arr = (c_float * len(vals))(*vals)
    o = generate_options(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    ctr = c_uint64(_check.integer(counter, "counter", c_uint64))
    tok = c_int32()
    check(_ffi.sample_token(arr, len(vals), byref(o), byref(ctr), byref(tok)))
    return tok.value, ctr.value


class Decoder(Handle):
    """Incremental decoding of a causal language model with a key/value
    cache: feed(ids) appends tokens and returns the logits for the next one
    (a list of vocab_size floats, or a numpy array). One decoder is used by
    one thread at a time; several may share a model. It keeps the model
    object alive while it lives."""
    _free = staticmethod(_ffi.decoder_free)

    def __init__(self, model):
        from .model import Model
        if not isinstance(model, Model):
            raise ArgumentTypeError("Decoder takes an llm.Model, not %s" % type(model).__name__)
        out = c_void_p()
        check(_ffi.decoder_create(byref(out), model._handle()))
        self._ptr = out.value
        self.model = model  # the C decoder borrows the model

    @property
    def vocab_size(self):
        v = c_int64()
        check(_ffi.decoder_vocab_size(self._handle(), byref(v)))
        return v.value

    def __len__(self):
        n = c_int64()
        check(_ffi.decoder_length(self._handle(), byref(n)))
        return n.value

    def reset(self):
        check(_ffi.decoder_reset(self._handle()))
        return self

    def feed(self, ids):
        from .text import _id_array
        handle = self._handle()
        if isinstance(ids, int):
            ids = [ids]
        arr = _id_array(ids)
        logits = (c_float * self.vocab_size)()
        check(_ffi.decoder_feed(handle, arr, len(arr), logits))
        if _np is not None:
            return _np.frombuffer(logits, dtype=_np.float32).copy()
        return list(logits)

    def _handle(self):
        ptr = Handle._handle(self)
        if self.model.closed:  # the C decoder reads the model's layers
            raise ClosedError("the Decoder's Model is closed")
        return ptr

    def close(self):
        Handle.close(self)

    def __repr__(self):
        return "<llm.Decoder %s>" % ("closed" if not self._ptr else "length=%d" % len(self))
