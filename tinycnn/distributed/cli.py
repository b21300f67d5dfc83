"""One ``tinycnn`` command under MPI: only rank 0 prints, an error on any rank ends all."""

import contextlib
import os
import sys

from . import launch
from .errors import DistributedError
from .runtime import init

#: CLI commands that run on every MPI rank together
COMMANDS = ("demo", "train", "evaluate", "predict")


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
        if not w.is_root:
            raise SystemExit(2)  # every rank refuses alike; rank 0 says why
        raise DistributedError(f"tinycnn {name} runs in one process; run it without mpiexec "
                               f"(the commands that run on several: {', '.join(COMMANDS)})")
    saved = sys.stdout, sys.stderr
    if not w.is_root:  # rank 0 speaks for all; World.abort still reaches the real stderr
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - closed below
    elif w.size > 1:
        print(f"tinycnn {name}: {w.size} MPI ranks ({w.launcher}), {w.threads} thread(s) each",
              file=sys.stderr, flush=True)
    try:
        yield w
    except BaseException as e:
        if w.size > 1 and not getattr(e, "tinycnn_collective", False):
            w.abort(e, name)  # this rank alone: the others may be waiting for it in a collective
        if not w.is_root:
            raise SystemExit(2) from None  # every rank raised it; rank 0 reports it
        raise
    finally:
        if sys.stdout is not saved[0]:
            sys.stdout.close()
            sys.stdout, sys.stderr = saved

