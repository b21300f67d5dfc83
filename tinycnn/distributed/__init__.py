"""Synchronous data-parallel training and prediction over MPI (mpi4py), equal to one big batch.

Launch with ``mpiexec -n N tinycnn train|evaluate|predict ...`` or run a script that calls
``model.fit(...)`` under ``mpiexec -n N python script.py``. Then:

- ``batch_size`` is the **global** batch: each rank computes its contiguous share of every
  batch (shares differ by at most one sample); the ranks' gradients, weighted by their share,
  are summed with Allreduce (in buckets, overlapped with the backward pass), so every rank
  applies the big batch's update. Rank 0's initial weights, optimizer and random state are
  broadcast at the start, and every rank draws each epoch's permutation from that one state.
- Batch normalisation uses the global batch's statistics (the synchronized batch-norm
  protocol of :class:`tinycnn.layers.BatchNormalization`, for every batch-norm layer).
- :class:`tinycnn.data.Augmenter` draws for the whole global batch and each rank applies its
  rows, so augmented training equals one process's too.
- The epoch's metrics and the validation pass cover every rank's samples; only rank 0 prints
  and writes checkpoints.
- An exception on one rank ends the job on every rank with its message (``MPI_Abort``).

A process that was not launched by ``mpiexec``/``srun`` (and every launch of one process)
never imports mpi4py and trains exactly as before. See README, "More than one machine".
"""

from . import launch
from .cli import COMMANDS, command
from .errors import DistributedError
from .fitting import collective_fit
from .predict import predict, predict_files
from .runtime import active, fit_session, init, is_root, world

__all__ = ["COMMANDS", "DistributedError", "active", "collective_fit", "command", "fit_session", "init", "is_root",
           "launch", "predict", "predict_files", "world"]
