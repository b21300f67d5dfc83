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

import contextlib
import functools
import inspect
import os
import sys

from . import launch
from .errors import DistributedError

__all__ = ["DistributedError", "init", "world", "fit_session", "active", "is_root", "predict", "predict_files",
           "collective_fit", "command"]

_state = {"world": None, "session": None}
#: CLI commands that run on every MPI rank together
COMMANDS = ("demo", "train", "evaluate", "predict")


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


# ---------------------------------------------------------------------- fit
def _world_for_fit(distributed):
    if distributed is False:
        return None
    if distributed is True or _state["world"] is not None:
        return init()
    if distributed is not None:
        from ..errors import ConfigError

        raise ConfigError(f"distributed must be None, True or False, got {distributed!r}")
    if not launch.launched_in_parallel():
        return None
    w = init()
    return w if w.size > 1 else None


def collective_fit(fit):
    """Make ``Sequential.fit`` collective under MPI (its ``distributed`` argument).

    ``distributed=None`` (default): distributed when launched by mpiexec/srun with more than
    one process or after :func:`init`; True: always (a world of one without a launcher);
    False: never (each process trains its own model).
    """
    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def wrapper(model, *args, distributed=None, **kwargs):
        w = _world_for_fit(distributed)
        if w is None:
            return fit(model, *args, **kwargs)
        from .session import FitSession

        call = signature.bind(model, *args, **kwargs)
        session = None
        try:
            w.join("fit()")
            _check_same_fit(w, model, call.arguments)
            if not w.is_root:
                call.arguments["verbose"] = 0
            session = FitSession(w, model, overlap=os.environ.get("TINYCNN_MPI_OVERLAP", "1") != "0",
                                 bucket_bytes=int(float(os.environ.get("TINYCNN_MPI_BUCKET_MB", 25)) * 2**20))
            model.distributed_fit = _state["session"] = session
            return fit(*call.args, **call.kwargs)
        except BaseException as e:
            if session is not None and session.is_collective(e) or getattr(e, "tinycnn_collective", False):
                e.tinycnn_collective = True  # raised on every rank alike: no rank waits for another
                raise
            w.abort(e, "fit")
        finally:
            if session is not None:
                session.finish()
            model.distributed_fit = _state["session"] = None

    wrapper.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(),
        inspect.Parameter("distributed", inspect.Parameter.KEYWORD_ONLY, default=None)])
    return wrapper


_SAME = ("batch_size", "epochs", "validation_split", "shuffle", "class_weight", "initial_epoch", "oversample")


def _check_same_fit(w, model, args):
    """Refuse to start unless every rank has the same data, model and fit arguments."""
    from .sharding import array_fingerprint, config_fingerprint, data_fingerprint

    val = args.get("validation_data")
    aug = args.get("augment")
    parts = {
        "training images (x)": data_fingerprint(args.get("x")),
        "labels (y)": array_fingerprint(args.get("y")),
        "sample_weight": array_fingerprint(args.get("sample_weight")),
        "validation images": data_fingerprint(val[0] if val is not None else None),
        "validation labels": array_fingerprint(val[1] if val is not None else None),
        "model": config_fingerprint({"layers": model.get_config()["layers"], "dtype": str(model.dtype),
                                     "loss": model.loss.get_config() if model.loss else None,
                                     "optimizer": model.optimizer.get_config() if model.optimizer else None}),
        "fit arguments": config_fingerprint({k: args.get(k) for k in _SAME}
                                            | {"augment": repr(aug) if aug is not None else None,
                                               "resume": bool(args.get("resume")),
                                               "backend": _backend_name()}),
    }
    everyone = w.allgather({k: v[0] for k, v in parts.items()})
    for key, (_, desc) in parts.items():
        digests = [d[key] for d in everyone]
        if len(set(digests)) > 1:
            others = [r for r, d in enumerate(digests) if d != digests[0]]
            err = DistributedError(
                f"the ranks disagree about the {key}: rank(s) {others} differ from rank 0 "
                f"(this rank {w.rank}: {desc}); every rank must get the same data (the same file "
                "list, in the same order) and the same arguments")
            err.tinycnn_collective = True  # every rank sees the same digests and raises
            raise err


def _backend_name():
    from .. import backend

    return backend.get_backend()


# ---------------------------------------------------------------------- prediction and the CLI
def predict(model, x, batch_size=32):
    """``model.predict(x)``, the rows split over the ranks when :func:`active` (collective:
    call it on every rank with the same x); every rank gets all the outputs."""
    w = _state["world"]
    if w is None or w.size == 1:
        return model.predict(x, batch_size=batch_size)
    from .predict import predict_rows

    return predict_rows(w, model, x, batch_size)


def predict_files(model, files, read, batch_size=64):
    """Read and predict ``files``, split over the ranks when :func:`active`.

    Parameters
    ----------
    model : Sequential
    files : list of str
    read : callable ``read(model, files) -> (x, kept, skipped)``
        E.g. :func:`tinycnn.pipeline.images_for_model`.

    Returns
    -------
    (kept, p, skipped)
        In input order on every rank: each file read by one rank only.
    """
    w = _state["world"]
    if w is None or w.size == 1:
        x, kept, skipped = read(model, files)
        return kept, model.predict(x, batch_size=batch_size), skipped
    from .predict import predict_file_shards

    return predict_file_shards(w, model, files, read, batch_size)


@contextlib.contextmanager
def command(requested, name):
    """Run one CLI command: join MPI if launched by mpiexec or ``--distributed`` asked for it;
    only rank 0 prints; an error on any rank ends every rank with its message."""
    if not requested and not launch.launched_in_parallel():
        yield None
        return
    w = init()
    if w.size == 1 and not requested:
        yield None
        return
    if name not in COMMANDS and w.size > 1:
        err = DistributedError(f"tinycnn {name} runs in one process; run it without mpiexec "
                               f"(the commands that run on several: {', '.join(COMMANDS)})")
        err.tinycnn_collective = True  # every rank refuses alike
        raise err
    saved = sys.stdout, sys.stderr
    if not w.is_root:  # rank 0 speaks for all; World.abort still reaches the real stderr
        sys.stdout = sys.stderr = open(_devnull(), "w")  # noqa: SIM115 - closed below
    elif w.size > 1:
        print(f"tinycnn {name}: {w.size} MPI ranks ({w.launcher}), {w.threads} thread(s) each",
              file=sys.stderr, flush=True)
    try:
        yield w
    except BaseException as e:
        if w.size == 1 or getattr(e, "tinycnn_collective", False):
            raise
        w.abort(e, name)
    finally:
        if sys.stdout is not saved[0]:
            sys.stdout.close()
            sys.stdout, sys.stderr = saved


def _devnull():
    return os.devnull
