"""libllm from Python: a ctypes binding of libllm.so.1 (no compiler needed).

    import llm
    with llm.Backend("cpu", threads=2) as cpu:
        m = llm.Model([llm.layers.dense(8, "tanh"), llm.layers.dense(1, "sigmoid")], backend=cpu)
        m.compile("binary_crossentropy", "adam", learning_rate=0.05)
        m.fit([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0], epochs=300, batch_size=4)

Every failing call raises an llm.LLMError subclass (InvalidArgument,
ShapeError, StateError, FormatError, IOError_, ...) with .status and the
library's message. Handles (Backend, Tensor, Dataset, Model, Vocab,
TextCorpus, Optimizer) free their C object on close() or at the end of a
`with` block; garbage collection is the fallback.
"""
from . import _ffi
from .errors import *  # noqa: F401,F403
from .errors import LLMError
from .core import Backend, Tensor, Dataset, default_backend
from .model import Model, Optimizer
from .text import TextCorpus, Vocab, tokenize, email_options, tokenizer_options
from . import layers

library_path = _ffi.path


def version():
    """The loaded library's version string, e.g. "1.0.0"."""
    return _ffi.version_string().decode()


def version_number():
    """The loaded library's version as major*10000 + minor*100 + patch."""
    return _ffi.version()


__version__ = version()
