"""Layer constructors. Each returns a Layer that the caller owns until it is
passed to Model.add or bidirectional (which take it, also on failure). A bad
argument raises at construction, with the library's message."""
from ctypes import byref

from . import _ffi
from .core import Handle
from .errors import error_for

ACTIVATIONS = {None: 0, "none": 0, "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3,
               "gelu": 4, "softmax": 5}
POOLS = {"average": 0, "avg": 0, "mean": 0, "max": 1}


def _activation(name):
    try:
        return ACTIVATIONS[name if name is None else str(name).lower()]
    except KeyError:
        raise ValueError("unknown activation %r (%s)" % (
            name, ", ".join(k for k in ACTIVATIONS if k))) from None


class Layer(Handle):
    _free = staticmethod(_ffi.layer_free)

    def __init__(self, ptr):
        self._ptr = ptr
        status = _ffi.layer_status(ptr)
        if status != 0:
            msg = _ffi.layer_error(ptr).decode("utf-8", "replace")
            self.close()
            raise error_for(status, msg)

    @property
    def kind(self):
        return _ffi.layer_kind(self._handle()).decode()

    def _take(self):
        """Hands the pointer over (to a model or wrapper that frees it)."""
        ptr = self._handle()
        self._ptr = None
        return ptr

    def __repr__(self):
        return "<llm.Layer %s>" % (self.kind if self._ptr else "(given away)")


def embedding(vocab, dim, mask_zero=True, init_scale=None):
    o = _ffi.init(_ffi.EmbeddingOptions, _ffi.embedding_options_init)
    o.vocab, o.dim, o.mask_zero = vocab, dim, int(bool(mask_zero))
    if init_scale is not None:
        o.init_scale = init_scale
    return Layer(_ffi.layer_embedding_ex(byref(o)))


def _recurrent(fn, units, return_sequences, unit_forget_bias, go_backwards):
    o = _ffi.init(_ffi.RecurrentOptions, _ffi.recurrent_options_init)
    o.units = units
    o.return_mode = 1 if return_sequences else 0
    o.unit_forget_bias = int(bool(unit_forget_bias))
    o.go_backwards = int(bool(go_backwards))
    return Layer(fn(byref(o)))


def lstm(units, return_sequences=False, unit_forget_bias=True, go_backwards=False):
    return _recurrent(_ffi.layer_lstm_ex, units, return_sequences, unit_forget_bias, go_backwards)


def gru(units, return_sequences=False, go_backwards=False):
    return _recurrent(_ffi.layer_gru_ex, units, return_sequences, True, go_backwards)


def bidirectional(inner):
    """Wraps an LSTM or GRU layer (taken over, also on failure)."""
    return Layer(_ffi.layer_bidirectional(inner._take()))


def dense(units, activation=None, use_bias=True):
    o = _ffi.init(_ffi.DenseOptions, _ffi.dense_options_init)
    o.units, o.activation, o.use_bias = units, _activation(activation), int(bool(use_bias))
    return Layer(_ffi.layer_dense_ex(byref(o)))


def activation(name):
    return Layer(_ffi.layer_activation(_activation(name)))


def dropout(rate):
    return Layer(_ffi.layer_dropout(rate))


def layernorm(eps=1e-5):
    return Layer(_ffi.layer_layernorm(eps))


def global_pool(mode="average"):
    if mode not in POOLS:
        raise ValueError("unknown pool mode %r (average or max)" % (mode,))
    return Layer(_ffi.layer_global_pool(POOLS[mode]))
