"""The error of distributed runs."""

from ..errors import TinyCNNError


class DistributedError(TinyCNNError, RuntimeError):
    """MPI cannot be used as asked: mpi4py missing, ranks that disagree about their data or
    arguments, a rank that never joined, weights that drifted apart."""
