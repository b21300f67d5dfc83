"""The MPI world tinycnn runs in: a communicator of its own and the few collectives it uses.

Every collective here is called by every rank in the same order; that order is the whole
protocol. A rank that cannot follow it (an exception on one rank only) must not leave the
others waiting in a collective it skipped: :meth:`World.abort` ends the job on every rank
with the message (``MPI_Abort``), which ``mpiexec`` / ``srun`` carry out.
"""

import os
import sys
import time
import traceback

import numpy as np

from .errors import DistributedError

#: seconds a rank waits at the start of fit() for the others to arrive (TINYCNN_MPI_JOIN_TIMEOUT)
JOIN_TIMEOUT = 600.0


class World:
    """tinycnn's view of the MPI processes of one launch.

    Parameters
    ----------
    MPI : module
        ``mpi4py.MPI``.
    comm : mpi4py.MPI.Comm
        A duplicate of ``COMM_WORLD``, so tinycnn's messages never match a user's.
    launcher : str
        How the processes were started, for messages.
    """

    def __init__(self, MPI, comm, launcher):
        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.launcher = launcher
        self.threads = None

    @property
    def is_root(self):
        return self.rank == 0

    def __repr__(self):
        return f"<World rank {self.rank} of {self.size}, {self.launcher}>"

    # ------------------------------------------------------------------ collectives
    def allreduce_(self, a):
        """Sum ``a`` (a C-contiguous numpy array) over the ranks, in place; returns it."""
        self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
        return a

    def iallreduce_(self, a):
        """Start summing ``a`` in place; returns the request to wait on."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)

    def allgather_rows(self, a):
        """``a`` (1-D float64) of every rank stacked in rank order: (size, len(a))."""
        a = np.ascontiguousarray(a, np.float64)
        out = np.empty((self.size, a.size), np.float64)
        self.comm.Allgather(a, out)
        return out

    def allgather(self, obj):
        """Every rank's (picklable) ``obj``, in rank order."""
        return self.comm.allgather(obj)

    def bcast(self, obj):
        """Rank 0's (picklable) ``obj`` on every rank."""
        return self.comm.bcast(obj, root=0)

    def bcast_(self, a):
        """Overwrite ``a`` (a C-contiguous numpy array) with rank 0's, in place."""
        self.comm.Bcast(a, root=0)
        return a

    def join(self, what, timeout=None):
        """Wait until every rank has reached ``what``, at most ``timeout`` seconds.

        A non-blocking barrier, polled: a rank that never arrives (``fit`` called on rank 0
        only, say) becomes an error here instead of a job that waits for ever.

        Raises
        ------
        DistributedError
            The others did not arrive in time.
        """
        if timeout is None:
            timeout = float(os.environ.get("TINYCNN_MPI_JOIN_TIMEOUT", JOIN_TIMEOUT))
        req = self.comm.Ibarrier()
        t0 = time.monotonic()
        pause = 1e-4
        while not req.Test():
            if time.monotonic() - t0 > timeout:
                raise DistributedError(
                    f"rank {self.rank} waited {timeout:.0f} s in {what} for the other {self.size - 1} "
                    f"rank(s): under mpiexec, {what} runs on every rank together; call it on every rank "
                    "(or pass distributed=False to run one model per process)")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # ------------------------------------------------------------------ ending the job
    def abort(self, exc, what):
        """Report ``exc`` (raised on this rank during ``what``) and end the job on every rank."""
        from ..errors import TinyCNNError

        if isinstance(exc, KeyboardInterrupt):
            code, text = 130, "interrupted"
        elif isinstance(exc, TinyCNNError):
            code, text = 2, f"{type(exc).__name__}: {exc}"
        else:
            code = 1
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        sys.stdout.flush()
        print(f"tinycnn {what}: error on rank {self.rank} of {self.size}: {text}\n"
              f"tinycnn {what}: ending all {self.size} ranks (MPI_Abort, exit status {code})",
              file=sys.__stderr__, flush=True)  # the real stderr: a CLI rank other than 0 has its own silenced
        self.comm.Abort(code)
