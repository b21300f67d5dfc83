"""``fit`` as a collective call: who joins, the checks before the first step, and the rule that
an exception on one rank ends every rank."""

import functools
import inspect
import os

from . import launch
from .errors import DistributedError
from .runtime import _state, init


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
