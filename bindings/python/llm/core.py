"""Backends, tensors, datasets and the host-buffer helpers they share."""
import array
import ctypes
import threading
import weakref
from ctypes import byref, c_double, c_int, c_int64, c_void_p

from . import _ffi
from .errors import check, InvalidArgument

try:
    import numpy as _np
except ImportError:  # numpy is optional; lists work without it
    _np = None

F32, I32 = 0, 1
_DTYPES = {"float32": F32, "f32": F32, "float": F32, "int32": I32, "i32": I32, "int": I32}
_DTYPE_NAMES = {F32: "float32", I32: "int32"}


def dtype_code(dtype):
    if dtype in (F32, I32):
        return dtype
    if _np is not None and not isinstance(dtype, str):
        dtype = _np.dtype(dtype).name
    code = _DTYPES.get(str(dtype))
    if code is None:
        raise ValueError("unsupported dtype %r (float32 or int32)" % (dtype,))
    return code


class Handle:
    """A C handle owned by a Python object: close() frees it once; `with`
    closes on exit; __del__ is the fallback."""
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
            raise ValueError("%s is closed" % type(self).__name__)
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
    Tensors and models made on it borrow it; close() (or leaving `with`)
    first closes those still open, then frees the backend."""
    _free = staticmethod(_ffi.backend_free)
    KINDS = {"cpu": 0, "cuda": 1}

    def __init__(self, kind="cpu", threads=0, device=0):
        if kind not in self.KINDS:
            raise ValueError("unknown backend kind %r (cpu or cuda)" % (kind,))
        opts = _ffi.init(_ffi.BackendOptions, _ffi.backend_options_init)
        opts.threads = threads
        opts.device = device
        out = c_void_p()
        check(_ffi.backend_create(byref(out), self.KINDS[kind], byref(opts)))
        self._ptr = out.value
        self.kind = kind
        self._children = weakref.WeakSet()

    @staticmethod
    def is_available(kind):
        avail = c_int()
        check(_ffi.backend_is_available(Backend.KINDS[kind], byref(avail)))
        return bool(avail.value)

    @property
    def threads(self):
        n = c_int()
        check(_ffi.backend_threads(self._handle(), byref(n)))
        return n.value

    def describe(self):
        return _snprintf(lambda buf, n, need: _ffi.backend_describe(self._handle(), buf, n, need))

    def _adopt(self, child):
        self._children.add(child)

    def close(self):
        for child in list(getattr(self, "_children", ())):
            child.close()
        Handle.close(self)

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
        out.append(data)
        return out
    if not isinstance(data, (list, tuple)) or len(data) != shape[depth]:
        raise ValueError("ragged nested list: expected %d items at depth %d" % (shape[depth], depth))
    for item in data:
        _flatten(item, shape, depth + 1, out)
    return out


class HostBuffer:
    """A contiguous host copy of array-like data: .ptr, .nbytes, .shape, .dtype
    (a code). Keeps the memory alive while it lives."""

    def __init__(self, data, dtype=None):
        if isinstance(data, HostBuffer):
            data = data.obj
        if _np is not None and isinstance(data, _np.ndarray):
            if dtype is None:
                dtype = I32 if data.dtype.kind in "iub" else F32
            code = dtype_code(dtype)
            arr = _np.ascontiguousarray(data, dtype=_np.float32 if code == F32 else _np.int32)
            self.obj, self.shape, self.dtype = arr, list(arr.shape), code
            self.ptr, self.nbytes = arr.ctypes.data, arr.nbytes
            return
        if isinstance(data, Tensor):
            raise TypeError("pass a Tensor's to_list()/to_numpy(), not the Tensor")
        shape = _nested_shape(data)
        flat = _flatten(data, shape)
        if dtype is None:
            dtype = I32 if all(isinstance(v, int) for v in flat) else F32
        code = dtype_code(dtype)
        if code == I32:
            bad = [v for v in flat if int(v) != v]
            if bad:
                raise ValueError("int32 data holds a non-integer %r" % (bad[0],))
            arr = array.array("i", [int(v) for v in flat])
        else:
            arr = array.array("f", [float(v) for v in flat])
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
        self.backend = backend or default_backend()
        if _ptr is not None:
            self._ptr = _ptr
        else:
            buf = HostBuffer(data, dtype)
            if not buf.shape:
                raise ValueError("a tensor needs at least one dimension")
            out = c_void_p()
            check(_ffi.tensor_from_host(byref(out), self.backend._handle(), buf.dtype,
                                        len(buf.shape), buf.shape_array(), buf.ptr, buf.nbytes))
            self._ptr = out.value
        self.backend._adopt(self)

    @classmethod
    def zeros(cls, shape, dtype="float32", backend=None):
        backend = backend or default_backend()
        out = c_void_p()
        shape = list(shape)
        check(_ffi.tensor_create(byref(out), backend._handle(), dtype_code(dtype), len(shape),
                                 _ffi.shape_array(shape)))
        return cls(backend=backend, _ptr=out.value)

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
        check(_ffi.tensor_fill(self._handle(), c_double(value)))
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
            raise ImportError("to_numpy needs numpy (Debian: python3-numpy); use to_list()")
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
            raise InvalidArgument(-1, "Dataset needs x and y")
        bx = HostBuffer(x, x_dtype)
        by = HostBuffer(y, y_dtype)
        out = c_void_p()
        check(_ffi.dataset_from_host(byref(out), bx.dtype, len(bx.shape), bx.shape_array(), bx.ptr,
                                     by.dtype, len(by.shape), by.shape_array(), by.ptr))
        self._ptr = out.value

    @classmethod
    def from_corpus(cls, corpus, vocab, seq_len=200, padding="pre", truncation="post"):
        from .text import vectorize_options
        opts = vectorize_options(seq_len, padding, truncation)
        out = c_void_p()
        check(_ffi.dataset_from_corpus(byref(out), corpus._handle(), vocab._handle(), byref(opts)))
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
