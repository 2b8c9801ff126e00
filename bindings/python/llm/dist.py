"""Data-parallel training over MPI (include/llm/dist.h, docs/DISTRIBUTED.md).
Start the script with `mpirun -np N python3 script.py`; every rank builds
the same model and calls Model.fit(..., dist=llm.Dist()) alike, and the
result is that of one process training with the same batch_size. The MPI
code is the run-time module libllm-mpi.so; without it Dist() raises
Unavailable with the reason."""
from ctypes import byref, c_int, c_void_p

from . import _ffi, _check
from .core import Handle
from .errors import check


def launched():
    """The number of processes an MPI launcher says this job has, 0 when
    the process was not started by one (needs no MPI)."""
    n = c_int()
    check(_ffi.dist_launched(byref(n)))
    return n.value


class Dist(Handle):
    """Joins the MPI job (MPI_Init unless the program did it); a process not
    started by a launcher is a job of one rank. close() ends it (and
    MPI_Finalize when this call initialised MPI: once per process)."""
    _free = staticmethod(_ffi.dist_free)

    def __init__(self, timeout=None):
        out = c_void_p()
        check(_ffi.dist_init(byref(out), None, None))
        self._ptr = out.value
        if timeout is not None:
            self.set_timeout(timeout)

    @property
    def rank(self):
        r = c_int()
        check(_ffi.dist_rank(self._handle(), byref(r)))
        return r.value

    @property
    def size(self):
        n = c_int()
        check(_ffi.dist_size(self._handle(), byref(n)))
        return n.value

    def set_timeout(self, seconds):
        """How long a collective operation may wait for the other ranks (0:
        forever); a rank that dies then fails the others with
        DistributedError instead of a hang."""
        check(_ffi.dist_set_timeout(self._handle(), _check.real(seconds, "timeout")))

    def barrier(self):
        check(_ffi.dist_barrier(self._handle()))

    def sync_model(self, model):
        """Copies rank 0's weights and optimizer state to every rank."""
        check(_ffi.dist_sync_model(self._handle(), model._handle()))

    def __repr__(self):
        return "<llm.Dist %s>" % ("closed" if not self._ptr else "rank %d of %d" % (self.rank, self.size))
