"""Threads per rank: the cores a rank may use, shared fairly with the ranks on the same node.

Each rank runs Numba's and OpenBLAS's thread pools. Left alone, each pool takes one thread per
core of the node, and N ranks on one node then run N times as many threads as cores, which
costs far more than it gains. So each rank takes ``cores / (ranks sharing those cores)``
threads: the ranks of one node are found with ``MPI_Comm_split_type(SHARED)``, and a rank's
cores are its CPU affinity (ranks pinned to disjoint cores by ``srun --cpu-bind`` or
``mpiexec -bind-to core`` share nothing and keep all of theirs).
"""

import os


def cores():
    """The CPUs this process may run on."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def fair_share(world):
    """Threads for this rank: its cores divided by the node's ranks that share them."""
    MPI = world.MPI
    node = world.comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        mine = cores()
        sets = node.allgather(sorted(mine))
    finally:
        node.Free()
    sharing = sum(1 for s in sets if mine & set(s))
    return max(1, len(mine) // max(sharing, 1))


def user_choice():
    """Threads the user set in the environment (NUMBA_NUM_THREADS, else OMP_NUM_THREADS), or None."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def apply(n):
    """Use ``n`` threads in Numba's parallel kernels and in BLAS, from now on."""
    import numba

    from .. import backend

    backend.get()  # the cpu backend sets its thread policies before Numba's pool starts
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    # change nothing that is already right: re-sizing OpenBLAS's pool restarts its threads,
    # which measured slower here than leaving a pool of the right size alone
    if n != numba.get_num_threads():
        numba.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # part of tinycnn[mpi]; without it BLAS keeps its own count
        return
    if any(p.get("num_threads", 0) > n for p in threadpool_info() if p.get("user_api") == "blas"):
        threadpool_limits(limits=n, user_api="blas")
