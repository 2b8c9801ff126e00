"""libllm from Python: a ctypes binding of libllm.so.1 (no compiler needed).

    import llm
    with llm.Backend("cpu", threads=2) as cpu:
        m = llm.Model([llm.layers.dense(8, "tanh"), llm.layers.dense(1, "sigmoid")], backend=cpu)
        m.compile("binary_crossentropy", "adam", learning_rate=0.05)
        m.fit([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0], epochs=300, batch_size=4)

What it covers: tensors, datasets, every layer (recurrent, dense,
Transformer: llm.layers), models (fit, evaluate, predict, predict_text,
save/load, checkpoints, ensembles), the text pipeline (TextCorpus, Vocab,
the BPE tokenizer), language models (layers.gpt, next_token_windows,
Model.generate, Decoder, sample_token) and data-parallel training (Dist).

Every failure raises an llm.LLMError subclass (InvalidArgument,
ArgumentTypeError, ShapeError, StateError, ClosedError, FormatError,
IOError_, ...) with .status and the library's message; each also derives
from the matching built-in exception (ValueError, TypeError, OSError, ...).
Integers and floats are range-checked before they reach C. Handles
(Backend, Tensor, Dataset, Model, Vocab, BPE, TextCorpus, Optimizer,
Decoder, Dist) free their C object on close() or at the end of a `with`
block, garbage collection being the fallback; they may be closed in any
order (a model keeps its backend alive).

Module values (plain attributes): llm.version is the loaded library's
version string, e.g. "1.5.1" (also llm.__version__), llm.version_number
its number (major*10000 + minor*100 + patch), llm.library_path the file
it was loaded from. For code written against 1.2, llm.version() and
llm.version_number() still work (the values are callable).
"""
from . import _ffi
from .errors import *  # noqa: F401,F403
from .errors import LLMError
from .core import Backend, Tensor, Dataset, default_backend
from .model import Model, Optimizer
from .text import TextCorpus, Vocab, BPE, tokenize, email_options, tokenizer_options
from .lm import Decoder, next_token_windows, sample_token
from .dist import Dist, launched as dist_launched
from . import layers


class _Version(str):
    """A str that is also callable, returning itself (llm.version() of 1.2)."""

    def __call__(self):
        return str(self)


class _VersionNumber(int):
    """An int that is also callable, returning itself (llm.version_number())."""

    def __call__(self):
        return int(self)


library_path = _ffi.path
version = _Version(_ffi.version_string().decode())
version_number = _VersionNumber(_ffi.version())
__version__ = str(version)
