"""Layer constructors. Each returns a Layer that the caller owns until it is
passed to Model.add or bidirectional (which take it, also on failure). A bad
argument raises at construction, with the library's message.

Recurrent and dense: embedding, lstm, gru, bidirectional, dense,
activation, dropout, layernorm, global_pool. Transformers (include/llm/
layer.h): transformer_embedding, attention, transformer_block, lm_head; gpt()
gives the layers of a GPT-style language model, and a Transformer
classifier is transformer_embedding -> transformer_block(causal=False) x N
-> layernorm -> global_pool -> dense."""
from ctypes import byref

from . import _ffi, _check
from .core import Handle
from .errors import error_for

ACTIVATIONS = {None: 0, "none": 0, "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3,
               "gelu": 4, "softmax": 5}
POOLS = {"average": 0, "avg": 0, "mean": 0, "max": 1}
POSITIONAL = {"learned": 0, "sinusoidal": 1, "none": 2, None: 2}


def _activation(name):
    key = name.lower() if isinstance(name, str) else name
    return _check.choice(key, ACTIVATIONS, "activation")


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

    def _apply_ptr(self, model):
        """The pointer for a functional model's apply/merge: the first use
        hands it over; later uses by the same model share the layer."""
        if self._ptr is not None:
            self._owner = model
            self._given = self._ptr
            return self._take()
        if getattr(self, "_owner", None) is model:
            return self._given
        from .errors import InvalidArgument
        raise InvalidArgument("this layer was given to another model or wrapper")

    def __repr__(self):
        return "<llm.Layer %s>" % (self.kind if self._ptr else "(given away)")


def _options(struct, init_fn, where, **fields):
    o = _ffi.init(struct, init_fn)
    return _check.set_fields(o, where, **{k: v for k, v in fields.items() if v is not None})


def embedding(vocab, dim, mask_zero=True, init_scale=None):
    o = _options(_ffi.EmbeddingOptions, _ffi.embedding_options_init, "embedding: ",
                 vocab=vocab, dim=dim, mask_zero=int(bool(mask_zero)), init_scale=init_scale)
    return Layer(_ffi.layer_embedding_ex(byref(o)))


def _recurrent(fn, what, units, return_sequences, unit_forget_bias, go_backwards):
    o = _options(_ffi.RecurrentOptions, _ffi.recurrent_options_init, what + ": ", units=units,
                 return_mode=1 if return_sequences else 0,
                 unit_forget_bias=int(bool(unit_forget_bias)), go_backwards=int(bool(go_backwards)))
    return Layer(fn(byref(o)))


def lstm(units, return_sequences=False, unit_forget_bias=True, go_backwards=False):
    return _recurrent(_ffi.layer_lstm_ex, "lstm", units, return_sequences, unit_forget_bias, go_backwards)


def gru(units, return_sequences=False, go_backwards=False):
    return _recurrent(_ffi.layer_gru_ex, "gru", units, return_sequences, True, go_backwards)


def _layer_arg(layer, what):
    if not isinstance(layer, Layer):
        from .errors import ArgumentTypeError
        raise ArgumentTypeError("%s takes a Layer (llm.layers.*), not %s" % (what, type(layer).__name__))
    return layer._take()


def bidirectional(inner):
    """Wraps an LSTM or GRU layer (taken over, also on failure)."""
    return Layer(_ffi.layer_bidirectional(_layer_arg(inner, "bidirectional")))


def dense(units, activation=None, use_bias=True):
    o = _options(_ffi.DenseOptions, _ffi.dense_options_init, "dense: ", units=units,
                 activation=_activation(activation), use_bias=int(bool(use_bias)))
    return Layer(_ffi.layer_dense_ex(byref(o)))


def activation(name):
    return Layer(_ffi.layer_activation(_activation(name)))


def dropout(rate):
    return Layer(_ffi.layer_dropout(_check.float32(rate, "dropout rate")))


def layernorm(eps=1e-5):
    return Layer(_ffi.layer_layernorm(_check.float32(eps, "layernorm eps")))


def concatenate():
    """Merge layer (Model.merge): joins its inputs along the last dimension."""
    return Layer(_ffi.layer_concatenate())


def add():
    """Merge layer (Model.merge): element-wise sum."""
    return Layer(_ffi.layer_add())


def multiply():
    """Merge layer (Model.merge): element-wise product."""
    return Layer(_ffi.layer_multiply())


def global_pool(mode="average"):
    return Layer(_ffi.layer_global_pool(_check.choice(mode, POOLS, "pool mode")))


# ---- Transformers ----
def transformer_embedding(vocab, context=128, dim=128, positional="learned", mask_zero=True,
                          init_std=None):
    """Token plus positional embedding: ids [T] (T <= context) -> [T, dim].
    positional: "learned", "sinusoidal" or "none"; mask_zero: id 0 is
    padding, hidden from attention and pooling."""
    o = _options(_ffi.TransformerEmbeddingOptions, _ffi.transformer_embedding_options_init,
                 "transformer_embedding: ", vocab=vocab, context=context, dim=dim,
                 positional=_check.choice(positional, POSITIONAL, "positional encoding"),
                 mask_zero=int(bool(mask_zero)), init_std=init_std)
    return Layer(_ffi.layer_transformer_embedding_ex(byref(o)))


def attention(heads=4, causal=True, init_std=None):
    """Multi-head self-attention [T, D] -> [T, D] (heads must divide D)."""
    o = _options(_ffi.AttentionOptions, _ffi.attention_options_init, "attention: ", heads=heads,
                 causal=int(bool(causal)), init_std=init_std)
    return Layer(_ffi.layer_attention_ex(byref(o)))


def transformer_block(heads=4, causal=True, mlp_hidden=0, dropout=0.0, eps=1e-5, init_std=None):
    """A pre-LayerNorm Transformer block [T, D] -> [T, D]: attention and a
    GELU MLP of mlp_hidden units (0: 4 D), each with a residual. causal True
    for a language model, False for an encoder (a classifier)."""
    o = _options(_ffi.TransformerBlockOptions, _ffi.transformer_block_options_init,
                 "transformer_block: ", heads=heads, causal=int(bool(causal)), mlp_hidden=mlp_hidden,
                 dropout=dropout, eps=eps, init_std=init_std)
    return Layer(_ffi.layer_transformer_block_ex(byref(o)))


def lm_head(vocab, tie=True, init_std=None):
    """Language-model head [T, D] -> [T, vocab] logits; tie uses the token
    table of the transformer_embedding before it."""
    o = _options(_ffi.LMHeadOptions, _ffi.lm_head_options_init, "lm_head: ", vocab=vocab,
                 tie=int(bool(tie)), init_std=init_std)
    return Layer(_ffi.layer_lm_head_ex(byref(o)))


def gpt(vocab, context=128, dim=128, layers=4, heads=4, mlp_hidden=0, dropout=0.0,
        positional="learned", tie=True):
    """The layers of a GPT-style language model (what lm_train builds):
    transformer_embedding -> transformer_block (causal) x layers ->
    layernorm -> lm_head. Train it with the loss
    "sparse_categorical_crossentropy_logits" on next-token windows
    (llm.next_token_windows) and generate with Model.generate."""
    _check.integer(layers, "layers", lo=1)
    out = [transformer_embedding(vocab, context, dim, positional=positional, mask_zero=False)]
    out += [transformer_block(heads, causal=True, mlp_hidden=mlp_hidden, dropout=dropout)
            for _ in range(layers)]
    out += [layernorm(), lm_head(vocab, tie=tie)]
    return out
