"""Is this process one rank of an MPI launch? Read from the environment, without importing MPI.

``mpiexec`` / ``srun`` tell each process its rank and the number of processes through
environment variables before Python starts, so tinycnn can decide whether to load mpi4py
(and with it the MPI library) without loading it: a plain ``python`` or ``tinycnn`` process
never imports mpi4py.
"""

import os

from .errors import DistributedError

INSTALL_HINT = 'pip install "tinycnn[mpi]"'

#: (launcher, rank variable, size variable): the first pair set in the environment wins
LAUNCHERS = (
    ("MPICH/Intel MPI (hydra)", "PMI_RANK", "PMI_SIZE"),
    ("Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("MVAPICH", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"),
    # srun --mpi=pmix exports the rank only; the size then comes from MPI itself
    ("PMIx", "PMIX_RANK", None),
    # SLURM_STEP_NUM_TASKS is set for the tasks of an srun step, not in a batch script, whose
    # SLURM_NTASKS describes the allocation while one process runs
    ("Slurm srun", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS"),
)


def detect(environ=None):
    """The MPI launch this process belongs to, from its environment.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    (launcher, rank, size) or None
        ``size`` is None when the launcher does not export it (PMIx); None when no launcher
        variable is set.
    """
    env = os.environ if environ is None else environ
    for name, rank_var, size_var in LAUNCHERS:
        if rank_var not in env or (size_var is not None and size_var not in env):
            continue
        try:
            rank = int(env[rank_var])
            size = int(env[size_var]) if size_var is not None else None
        except ValueError:
            continue
        return name, rank, size
    return None


def launched_in_parallel(environ=None):
    """True when the environment says this is one of several MPI processes (or may be: PMIx)."""
    found = detect(environ)
    return found is not None and (found[2] is None or found[2] > 1)


def import_mpi(why):
    """``mpi4py.MPI``, or a :class:`DistributedError` that says how to install it.

    Parameters
    ----------
    why : str
        What asked for MPI, for the message (e.g. "launched by mpiexec (PMI_SIZE=2)").
    """
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            f"{why}, but mpi4py cannot be imported ({e}); install the MPI extra: {INSTALL_HINT} "
            "(on a cluster, build mpi4py against the system MPI: see README, 'More than one machine')"
        ) from None
    except RuntimeError as e:  # mpi4py is there but its MPI library is not
        raise DistributedError(f"{why}, but mpi4py cannot load its MPI library ({e}); {INSTALL_HINT}") from None
    return MPI


def describe(environ=None):
    """A short phrase naming the launch, for messages: 'launched by Open MPI (rank 1 of 4)'."""
    found = detect(environ)
    if found is None:
        return "not launched by mpiexec or srun"
    name, rank, size = found
    return f"launched by {name} (rank {rank} of {size if size is not None else '?'})"
