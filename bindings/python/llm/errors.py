"""Exceptions: every failing llm_status raises one, carrying llm_last_error()."""
from . import _ffi


class LLMError(Exception):
    """Base of every libllm error. .status is the llm_status value (negative),
    .message the library's llm_last_error() text for the failing call."""
    status = None

    def __init__(self, status, message):
        self.status = status
        self.message = message
        Exception.__init__(self, message)

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

__all__ = ["LLMError"] + [c.__name__ for c in BY_STATUS.values()]


def error_for(status, message=None):
    """The exception for a status; message defaults to llm_last_error()."""
    if message is None:
        message = (_ffi.last_error() or b"").decode("utf-8", "replace")
    if not message:
        message = (_ffi.status_string(status) or b"").decode("utf-8", "replace")
    cls = BY_STATUS.get(status)
    if cls is None:
        err = LLMError(status, message)
    else:
        err = cls(status, message)
    return err


def check(status):
    """Raises the exception for a non-zero status."""
    if status != 0:
        raise error_for(status)
    return status
