"""Backends, tensors, datasets and the host-buffer helpers they share."""
import array
import ctypes
import math
import threading
from ctypes import byref, c_int, c_int64, c_void_p

from . import _ffi, _check
from .errors import check, ArgumentTypeError, ClosedError, InvalidArgument, NumpyMissing, ShapeError

try:
    import numpy as _np
except ImportError:  # numpy is optional; lists work without it
    _np = None

F32, I32 = 0, 1
_DTYPES = {"float32": F32, "f32": F32, "float": F32, "int32": I32, "i32": I32, "int": I32}
_DTYPE_NAMES = {F32: "float32", I32: "int32"}
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1


def dtype_code(dtype):
    if dtype in (F32, I32) and not isinstance(dtype, bool):
        return dtype
    if _np is not None and not isinstance(dtype, str):
        try:
            dtype = _np.dtype(dtype).name
        except TypeError:
            pass
    code = _DTYPES.get(dtype) if isinstance(dtype, str) else None
    if code is None:
        raise InvalidArgument("unsupported dtype %r (float32 or int32)" % (dtype,))
    return code


class Handle:
    """A C handle owned by a Python object: close() frees it once; `with`
    closes on exit; __del__ is the fallback. The C objects keep what they
    depend on alive themselves (a tensor or model holds a reference to its
    backend), so handles may be closed or collected in any order."""
    _free = None
    _ptr = None

    def close(self):
        ptr, self._ptr = self._ptr, None
        if ptr and self._free is not None and _ffi is not None:
            type(self)._free(ptr)

    @property
    def closed(self):
        return not self._ptr

    def _handle(self):
        if not self._ptr:
            raise ClosedError("%s is closed" % type(self).__name__)
        return self._ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------- backend
class Backend(Handle):
    """A compute backend: Backend("cpu", threads=0) or Backend("cuda", device=0).
    Tensors and models made on it hold a reference to it (in C, and to this
    object), so close() only gives up this handle's reference: they stay
    usable, and the backend goes when the last of them is closed."""
    _free = staticmethod(_ffi.backend_free)
    KINDS = {"cpu": 0, "cuda": 1}

    def __init__(self, kind="cpu", threads=0, device=0):
        code = _check.choice(kind, self.KINDS, "backend kind")
        opts = _ffi.init(_ffi.BackendOptions, _ffi.backend_options_init)
        _check.set_fields(opts, threads=threads, device=device)
        out = c_void_p()
        check(_ffi.backend_create(byref(out), code, byref(opts)))
        self._ptr = out.value
        self.kind = kind

    @staticmethod
    def is_available(kind):
        avail = c_int()
        check(_ffi.backend_is_available(_check.choice(kind, Backend.KINDS, "backend kind"), byref(avail)))
        return bool(avail.value)

    @property
    def threads(self):
        n = c_int()
        check(_ffi.backend_threads(self._handle(), byref(n)))
        return n.value

    def describe(self):
        return _snprintf(lambda buf, n, need: _ffi.backend_describe(self._handle(), buf, n, need))

    def _backend_ptr(self):
        return self._handle()

    def __repr__(self):
        return "<llm.Backend %s>" % (self.describe() if self._ptr else "closed")


_default = None
_default_lock = threading.Lock()


def default_backend():
    """A process-wide CPU backend (all cores), created on first use."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Backend("cpu")
        return _default


def _snprintf(call):
    """Runs an snprintf-style call (buf, len, needed) and returns the str."""
    need = ctypes.c_size_t()
    buf = ctypes.create_string_buffer(256)
    check(call(buf, len(buf), byref(need)))
    if need.value >= len(buf):
        buf = ctypes.create_string_buffer(need.value + 1)
        check(call(buf, len(buf), byref(need)))
    return buf.value.decode("utf-8", "replace")


# ----------------------------------------------------------- host buffers
def _nested_shape(data):
    shape = []
    while isinstance(data, (list, tuple)):
        shape.append(len(data))
        if not data:
            break
        data = data[0]
    return shape


def _flatten(data, shape, depth=0, out=None):
    if out is None:
        out = []
    if depth == len(shape):
        if isinstance(data, (list, tuple)):
            raise ShapeError("ragged nested list: more levels below depth %d than at its start" % depth)
        out.append(data)
        return out
    if not isinstance(data, (list, tuple)) or len(data) != shape[depth]:
        raise ShapeError("ragged nested list: expected %d items at depth %d" % (shape[depth], depth))
    for item in data:
        _flatten(item, shape, depth + 1, out)
    return out


def _int32_of(v):
    """One list element as an int32: an integer, or a float that is one."""
    if isinstance(v, (str, bytes)) or v is None:
        raise ArgumentTypeError("int32 data holds a %s: %r" % (type(v).__name__, v))
    try:
        i = int(v.__index__())
    except (AttributeError, TypeError):
        f = _check.real(v, "int32 data")
        if not math.isfinite(f) or f != math.floor(f):
            raise InvalidArgument("int32 data holds %r, which is not an integer" % (v,)) from None
        i = int(f)
    if not INT32_MIN <= i <= INT32_MAX:
        raise InvalidArgument("int32 data holds %d, outside [%d, %d]" % (i, INT32_MIN, INT32_MAX))
    return i


def _numpy_checked(data, code):
    """A C-contiguous float32/int32 copy of a numpy array, refusing what the
    cast would change silently: int32 from values outside its range, or from
    floats that are not integers (NaN, inf, 1.5); float32 from finite values
    beyond its range (they would become inf). NaN and inf stay NaN and inf in
    float32 (the library reports them where they matter)."""
    kind = data.dtype.kind
    if kind not in "biuf":
        raise ArgumentTypeError("cannot pass a numpy array of dtype %s (numbers only)" % data.dtype)
    if data.size and kind in "iu" and code == I32:
        lo, hi = data.min(), data.max()
        if lo < INT32_MIN or hi > INT32_MAX:
            bad = lo if lo < INT32_MIN else hi
            raise InvalidArgument("int32 data holds %d, outside [%d, %d]" % (bad, INT32_MIN, INT32_MAX))
    elif data.size and kind == "f" and code == I32:
        wide = data.astype(_np.float64)
        ok = _np.isfinite(wide) & (wide == _np.floor(wide)) & (wide >= INT32_MIN) & (wide <= INT32_MAX)
        if not ok.all():
            bad = wide.reshape(-1)[_np.argmin(ok.reshape(-1))]
            raise InvalidArgument("int32 data holds %r, which is not an int32 integer" % (float(bad),))
    elif data.size and kind == "f" and code == F32 and data.dtype.itemsize > 4:
        finite = data[_np.isfinite(data)]
        if finite.size and _np.abs(finite).max() > _check.FLT_MAX:
            raise InvalidArgument("float32 data holds %r, out of float32 range" % (float(_np.abs(finite).max()),))
    return _np.ascontiguousarray(data, dtype=_np.float32 if code == F32 else _np.int32)


class HostBuffer:
    """A contiguous host copy of array-like data: .ptr, .nbytes, .shape, .dtype
    (a code). Keeps the memory alive while it lives. Values that the C type
    cannot hold raise InvalidArgument instead of wrapping (numpy's int64
    2**32 + 3 is not id 3)."""

    def __init__(self, data, dtype=None):
        if isinstance(data, HostBuffer):
            data = data.obj
        if _np is not None and isinstance(data, _np.ndarray):
            if dtype is None:
                dtype = I32 if data.dtype.kind in "iub" else F32
            code = dtype_code(dtype)
            arr = _numpy_checked(data, code)
            self.obj, self.shape, self.dtype = arr, list(arr.shape), code
            self.ptr, self.nbytes = arr.ctypes.data, arr.nbytes
            return
        if isinstance(data, Tensor):
            raise ArgumentTypeError("pass a Tensor's to_list()/to_numpy(), not the Tensor")
        if not isinstance(data, (list, tuple)):
            raise ArgumentTypeError("data must be a numpy array or (nested) list, not %s" % type(data).__name__)
        shape = _nested_shape(data)
        flat = _flatten(data, shape)
        if dtype is None:
            dtype = I32 if all(isinstance(v, int) for v in flat) else F32
        code = dtype_code(dtype)
        if code == I32:
            arr = array.array("i", [_int32_of(v) for v in flat])
        else:
            arr = array.array("f", [_check.float32(v, "float32 data") for v in flat])
        self.obj, self.shape, self.dtype = arr, shape, code
        addr, n = arr.buffer_info()
        self.ptr, self.nbytes = addr, n * arr.itemsize

    def shape_array(self):
        return _ffi.shape_array(self.shape)


def _unflatten(flat, shape):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [_unflatten(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


# ----------------------------------------------------------------- tensor
class Tensor(Handle):
    """A dense row-major tensor on a backend. Tensor(data, dtype=None,
    backend=None): data a numpy array or nested lists (ints give int32,
    anything else float32 unless dtype says). Tensor.zeros(shape, dtype)."""
    _free = staticmethod(_ffi.tensor_free)

    def __init__(self, data=None, dtype=None, backend=None, _ptr=None):
        # backend: a Backend, or (inside the package) a Model or Tensor
        # whose backend to use: its C object keeps that backend alive, so
        # this works after the Backend itself is closed
        where = _backend_source(backend)
        self.backend = getattr(where, "backend", where)
        if _ptr is not None:
            self._ptr = _ptr
        else:
            buf = HostBuffer(data, dtype)
            if not buf.shape:
                raise ShapeError("a tensor needs at least one dimension")
            out = c_void_p()
            check(_ffi.tensor_from_host(byref(out), where._backend_ptr(), buf.dtype,
                                        len(buf.shape), buf.shape_array(), buf.ptr, buf.nbytes))
            self._ptr = out.value

    @classmethod
    def zeros(cls, shape, dtype="float32", backend=None):
        where = _backend_source(backend)
        out = c_void_p()
        shape = [shape] if not isinstance(shape, (list, tuple)) else list(shape)
        check(_ffi.tensor_create(byref(out), where._backend_ptr(), dtype_code(dtype), len(shape),
                                 _ffi.shape_array(shape)))
        return cls(backend=where, _ptr=out.value)

    def _backend_ptr(self):
        """The C backend of this tensor (borrowed: valid while it lives)."""
        be = c_void_p()
        check(_ffi.tensor_backend(self._handle(), byref(be)))
        return be.value

    @property
    def shape(self):
        n = c_int()
        check(_ffi.tensor_ndim(self._handle(), byref(n)))
        dims = (c_int64 * 4)()
        check(_ffi.tensor_shape(self._ptr, dims))
        return tuple(dims[i] for i in range(n.value))

    @property
    def dtype(self):
        d = c_int()
        check(_ffi.tensor_dtype(self._handle(), byref(d)))
        return _DTYPE_NAMES[d.value]

    @property
    def numel(self):
        n = c_int64()
        check(_ffi.tensor_numel(self._handle(), byref(n)))
        return n.value

    def __len__(self):
        return self.shape[0]

    def fill(self, value):
        check(_ffi.tensor_fill(self._handle(), _check.real(value, "value")))
        return self

    def reshape(self, *shape):
        """Changes the shape in place (same element count); returns self."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = shape[0]
        check(_ffi.tensor_reshape(self._handle(), len(shape), _ffi.shape_array(shape)))
        return self

    def copy_from(self, data):
        buf = HostBuffer(data, self.dtype)
        check(_ffi.tensor_copy_from_host(self._handle(), buf.ptr, buf.nbytes))
        return self

    def _flat(self):
        code = dtype_code(self.dtype)
        arr = array.array("f" if code == F32 else "i", bytes(4 * self.numel))
        addr, n = arr.buffer_info()
        check(_ffi.tensor_to_host(self._handle(), addr, n * arr.itemsize))
        return arr

    def to_list(self):
        return _unflatten(self._flat().tolist(), list(self.shape))

    def to_numpy(self):
        if _np is None:
            raise NumpyMissing("to_numpy needs numpy (Debian: python3-numpy); use to_list()")
        arr = _np.empty(self.shape, dtype=_np.float32 if self.dtype == "float32" else _np.int32)
        check(_ffi.tensor_to_host(self._handle(), arr.ctypes.data, arr.nbytes))
        return arr

    def __array__(self, dtype=None, copy=None):
        a = self.to_numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        if not self._ptr:
            return "<llm.Tensor closed>"
        return "<llm.Tensor shape=%s dtype=%s>" % (self.shape, self.dtype)


def _backend_source(backend):
    if backend is None:
        return default_backend()
    if not hasattr(backend, "_backend_ptr"):
        raise ArgumentTypeError("backend must be an llm.Backend, not %s" % type(backend).__name__)
    return backend


def as_tensor(data, dtype=None, backend=None):
    """data as a Tensor (a Tensor is returned as is)."""
    if isinstance(data, Tensor):
        return data
    return Tensor(data, dtype=dtype, backend=backend)


# ---------------------------------------------------------------- dataset
class Dataset(Handle):
    """In-memory (input, target) examples: Dataset(x, y, x_dtype=None,
    y_dtype=None) copies host arrays/lists; Dataset.from_corpus builds one
    from text. len(ds) is the number of examples."""
    _free = staticmethod(_ffi.dataset_free)

    def __init__(self, x=None, y=None, x_dtype=None, y_dtype=None, _ptr=None):
        if _ptr is not None:
            self._ptr = _ptr
            return
        if x is None or y is None:
            raise InvalidArgument("Dataset needs x and y")
        bx = HostBuffer(x, x_dtype)
        by = HostBuffer(y, y_dtype)
        out = c_void_p()
        check(_ffi.dataset_from_host(byref(out), bx.dtype, len(bx.shape), bx.shape_array(), bx.ptr,
                                     by.dtype, len(by.shape), by.shape_array(), by.ptr))
        self._ptr = out.value

    @classmethod
    def from_corpus(cls, corpus, tokens, seq_len=200, padding="pre", truncation="post", **features):
        """The corpus's texts as rows of seq_len ids with its labels; tokens
        is a Vocab (word ids) or a BPE tokenizer; features: vectorize_options'
        bigram_buckets, skip_unknown, unique, reverse and char_ngram_* (word ids)."""
        from .text import vectorize_options, Vocab, BPE, TextCorpus
        if not isinstance(corpus, TextCorpus):
            raise ArgumentTypeError("corpus must be a TextCorpus, not %s" % type(corpus).__name__)
        opts = _check.call_with(vectorize_options, dict(features, seq_len=seq_len, padding=padding,
                                                        truncation=truncation), "vectorize options")
        out = c_void_p()
        if isinstance(tokens, Vocab):
            check(_ffi.dataset_from_corpus(byref(out), corpus._handle(), tokens._handle(), byref(opts)))
        elif isinstance(tokens, BPE):
            check(_ffi.dataset_from_corpus_bpe(byref(out), corpus._handle(), tokens._handle(), byref(opts)))
        else:
            raise ArgumentTypeError("tokens must be a Vocab or a BPE, not %s" % type(tokens).__name__)
        return cls(_ptr=out.value)

    def __len__(self):
        n = c_int64()
        check(_ffi.dataset_size(self._handle(), byref(n)))
        return n.value

    def split(self, fraction, seed=1):
        """Shuffles and splits off the last `fraction` (stratified for
        labels): returns (first, second), two new datasets."""
        a, b = c_void_p(), c_void_p()
        check(_ffi.dataset_split(self._handle(), fraction, seed, byref(a), byref(b)))
        return Dataset(_ptr=a.value), Dataset(_ptr=b.value)

    def __repr__(self):
        return "<llm.Dataset %s>" % ("closed" if not self._ptr else "n=%d" % len(self))
