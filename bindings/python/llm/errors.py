"""Exceptions. Every failure of the package raises an LLMError subclass: a
failing llm_status raises the class of that status, carrying
llm_last_error(); the binding's own checks (a bad argument type, a value out
of range for C, a closed handle) raise the class of the status the library
would give. Each class also derives from the built-in exception it
corresponds to (InvalidArgument is a ValueError, ArgumentTypeError a
TypeError, ClosedError a ValueError, IOError_ an OSError, ...), so
`except ValueError` still catches what it caught before.

This module imports nothing of the package at load time: _ffi raises
LibraryNotFound while it loads the library."""


class LLMError(Exception):
    """Base of every libllm error. .status is the llm_status value (negative),
    .message the library's llm_last_error() text for the failing call (or
    the binding's own message)."""
    status = None

    def __init__(self, status_or_message=None, message=None):
        if message is None and not isinstance(status_or_message, int):
            status_or_message, message = type(self).status, status_or_message
        self.status = status_or_message
        self.message = "" if message is None else str(message)
        Exception.__init__(self, self.message)

    def __str__(self):
        return self.message


def _cls(name, status, *bases, doc=""):
    return type(name, (LLMError,) + bases, {"status": status, "__doc__": doc})


InvalidArgument = _cls("InvalidArgument", -1, ValueError, doc="LLM_ERR_INVALID_ARGUMENT")
OutOfMemory = _cls("OutOfMemory", -2, MemoryError, doc="LLM_ERR_OUT_OF_MEMORY")
ShapeError = _cls("ShapeError", -3, ValueError, doc="LLM_ERR_SHAPE")
DTypeError = _cls("DTypeError", -4, TypeError, doc="LLM_ERR_DTYPE")
Unavailable = _cls("Unavailable", -5, doc="LLM_ERR_UNAVAILABLE")
IOError_ = _cls("IOError_", -6, OSError, doc="LLM_ERR_IO")
FormatError = _cls("FormatError", -7, ValueError, doc="LLM_ERR_FORMAT")
StateError = _cls("StateError", -8, RuntimeError, doc="LLM_ERR_STATE")
NumericError = _cls("NumericError", -9, ArithmeticError, doc="LLM_ERR_NUMERIC")
BackendError = _cls("BackendError", -10, RuntimeError, doc="LLM_ERR_BACKEND")
OverflowError_ = _cls("OverflowError_", -11, OverflowError, doc="LLM_ERR_OVERFLOW")
NotSupported = _cls("NotSupported", -12, NotImplementedError, doc="LLM_ERR_NOT_SUPPORTED")
InternalError = _cls("InternalError", -13, RuntimeError, doc="LLM_ERR_INTERNAL")
Cancelled = _cls("Cancelled", -14, doc="LLM_ERR_CANCELLED")
DistributedError = _cls("DistributedError", -15, RuntimeError, doc="LLM_ERR_DISTRIBUTED")

BY_STATUS = {c.status: c for c in (InvalidArgument, OutOfMemory, ShapeError, DTypeError,
                                   Unavailable, IOError_, FormatError, StateError, NumericError,
                                   BackendError, OverflowError_, NotSupported, InternalError,
                                   Cancelled, DistributedError)}


class ArgumentTypeError(InvalidArgument, TypeError):
    """An argument of the wrong Python type (e.g. predict_text(42), a layer
    name where a Layer is wanted, None for a path): InvalidArgument and
    TypeError."""


class ClosedError(StateError, ValueError):
    """A call on a handle after close() (or after a model or wrapper took it
    over): StateError, and ValueError as before."""


class LibraryNotFound(Unavailable, OSError):
    """libllm.so.1 could not be loaded when the package was imported."""


class NumpyMissing(Unavailable, ImportError):
    """A call that returns numpy arrays without numpy installed."""


__all__ = (["LLMError"] + [c.__name__ for c in BY_STATUS.values()] +
           ["ArgumentTypeError", "ClosedError", "LibraryNotFound", "NumpyMissing"])


def error_for(status, message=None):
    """The exception for a status; message defaults to llm_last_error()."""
    from . import _ffi
    if message is None:
        message = (_ffi.last_error() or b"").decode("utf-8", "replace")
    if not message:
        message = (_ffi.status_string(status) or b"").decode("utf-8", "replace")
    cls = BY_STATUS.get(status, LLMError)
    return cls(status, message)


def check(status):
    """Raises the exception for a non-zero status."""
    if status != 0:
        raise error_for(status)
    return status
