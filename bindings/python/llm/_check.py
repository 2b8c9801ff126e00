"""What crosses into C is checked here first. ctypes converts a Python int
to a C integer by wrapping it silently (2**32 + 8 becomes 8 in a C int) and
a large float to inf; these helpers raise InvalidArgument instead, naming
the argument and the range, and ArgumentTypeError for a value of the wrong
type. _ffi applies them to every integer and float argument of every C
function (by its argtypes) and to every option-struct field set through
set_fields; the package's classes call them too, to give the argument's
Python name in the message."""
import ctypes
import inspect
import math
import operator
import os

from .errors import ArgumentTypeError, InvalidArgument

FLT_MAX = 3.4028234663852886e38


def int_range(ctype):
    """(lo, hi) of a ctypes integer type."""
    bits = 8 * ctypes.sizeof(ctype)
    if ctype(-1).value == -1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


_C_NAMES = {}
for _t, _n in ((ctypes.c_int, "int"), (ctypes.c_uint, "unsigned"), (ctypes.c_int64, "int64_t"),
               (ctypes.c_uint64, "uint64_t"), (ctypes.c_size_t, "size_t"), (ctypes.c_int32, "int32_t")):
    _C_NAMES.setdefault(_t, _n)


def integer(value, name, ctype=ctypes.c_int64, lo=None, hi=None):
    """value as a Python int that fits ctype (and [lo, hi] when given).
    Accepts int, bool and numpy integers; not floats, even integral ones
    (as range() and list indices do not)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise ArgumentTypeError("%s must be an integer, not %s" % (name, type(value).__name__)) from None
    clo, chi = int_range(ctype)
    if not clo <= v <= chi:
        raise InvalidArgument("%s = %d does not fit in a C %s (%d to %d)"
                              % (name, v, _C_NAMES.get(ctype, ctype.__name__), clo, chi))
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InvalidArgument("%s = %d must be in [%s, %s]" % (name, v, "-inf" if lo is None else lo,
                                                              "inf" if hi is None else hi))
    return v


def real(value, name):
    """value as a Python float (int, float, numpy scalar)."""
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise ArgumentTypeError("%s must be a number, not %s" % (name, type(value).__name__))
    try:
        return float(value)
    except OverflowError:
        raise InvalidArgument("%s = %r is too large for a C double" % (name, value)) from None
    except (TypeError, ValueError):
        raise ArgumentTypeError("%s must be a number, not %s" % (name, type(value).__name__)) from None


def float32(value, name):
    """value as a float that a C float holds: a finite value beyond float32's
    range would silently become inf. NaN and inf pass (the library checks
    what it accepts)."""
    v = real(value, name)
    if math.isfinite(v) and abs(v) > FLT_MAX:
        raise InvalidArgument("%s = %r is out of float32 range (|x| <= %g)" % (name, v, FLT_MAX))
    return v


def text(value, name="text"):
    """bytes of a text argument: str (UTF-8), bytes, bytearray or
    memoryview; anything else is refused (42 is not 42 zero bytes)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ArgumentTypeError("%s must be str, bytes, bytearray or memoryview, not %s"
                            % (name, type(value).__name__))


def cstring(value, name):
    """bytes for a NUL-terminated C string: a str or bytes without NUL."""
    if isinstance(value, str):
        b = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        b = bytes(value)
    else:
        raise ArgumentTypeError("%s must be str or bytes, not %s" % (name, type(value).__name__))
    if b"\0" in b:
        raise InvalidArgument("%s holds a NUL byte, which would end it early in C" % name)
    return b


def path(value, name="path"):
    """A file system path for C: str, bytes or os.PathLike (os.fspath),
    encoded as the OS does (os.fsencode); None and embedded NUL refused."""
    try:
        p = os.fspath(value)
    except TypeError:
        raise ArgumentTypeError("%s must be str, bytes or os.PathLike, not %s"
                                % (name, type(value).__name__)) from None
    b = os.fsencode(p)
    if b"\0" in b:
        raise InvalidArgument("%s holds a NUL byte: %r" % (name, p))
    return b


def choice(value, table, name):
    """table[value] for a named option, InvalidArgument listing the names."""
    try:
        return table[value]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in table if k is not None)
        raise InvalidArgument("unknown %s %r (%s)" % (name, value, names)) from None


def field(struct, name, value, where=""):
    """Sets struct.name = value after the check its C type calls for."""
    ctype = dict(struct._fields_)[name]
    label = where + name if where else name
    if ctype in (ctypes.c_float,):
        value = float32(value, label)
    elif ctype in (ctypes.c_double,):
        value = real(value, label)
    elif ctype is ctypes.c_char_p:
        value = None if value is None else cstring(value, label)
    elif isinstance(ctype, type) and issubclass(ctype, ctypes._SimpleCData) and ctype._type_ in "bBhHiIlLqQ":
        value = integer(value, label, ctype)
    setattr(struct, name, value)


def set_fields(struct, where="", **values):
    """field() for each keyword; where prefixes the names in messages."""
    for k, v in values.items():
        field(struct, k, v, where)
    return struct


def call_with(fn, kwargs, what):
    """fn(**kwargs), an unknown or missing keyword being ArgumentTypeError
    (kwargs forwarded from an outer call: tokenizer options, email options)."""
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as e:
        raise ArgumentTypeError("%s: %s" % (what, e)) from None
    return fn(**kwargs)
