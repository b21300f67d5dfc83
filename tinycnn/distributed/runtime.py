"""The MPI world this process has joined, and the distributed fit running in it (if any)."""

from . import launch
from .errors import DistributedError

_state = {"world": None, "session": None}


def init(threads=None):
    """Join the MPI launch this process is part of (idempotent); returns the world.

    Parameters
    ----------
    threads : int, optional
        Threads for this rank's kernels and BLAS; default NUMBA_NUM_THREADS or
        OMP_NUM_THREADS if set, else the rank's cores divided by the ranks sharing them.

    Raises
    ------
    DistributedError
        mpi4py is not installed (the message says ``pip install "tinycnn[mpi]"``), or the
        launcher and mpi4py belong to different MPI installations.
    """
    if _state["world"] is not None:
        return _state["world"]
    found = launch.detect()
    why = launch.describe() if found else "distributed mode was asked for"
    MPI = launch.import_mpi(why)
    from . import threads as threads_mod
    from .comm import World

    comm = MPI.COMM_WORLD
    if found is not None and found[2] is not None and found[2] != comm.Get_size():
        raise DistributedError(
            f"{why}, but mpi4py's MPI sees {comm.Get_size()} process(es): the launcher and mpi4py "
            "come from different MPI installations; launch with the mpiexec of the MPI that mpi4py "
            "was built with (python -c 'import mpi4py; print(mpi4py.get_config())')")
    w = World(MPI, comm.Dup(), found[0] if found else "singleton")
    w.threads = threads or threads_mod.user_choice() or threads_mod.fair_share(w)
    threads_mod.apply(w.threads)
    _state["world"] = w
    return w


def world():
    """The world joined by :func:`init`, or None."""
    return _state["world"]


def fit_session():
    """The :class:`~tinycnn.distributed.session.FitSession` of the running distributed fit, or None."""
    return _state["session"]


def active():
    """True once :func:`init` has joined a launch (the CLI does it under mpiexec)."""
    return _state["world"] is not None


def is_root():
    """True on rank 0, and in a process that is not distributed."""
    w = _state["world"]
    return w is None or w.is_root
