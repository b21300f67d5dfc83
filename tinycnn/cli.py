"""The ``tinycnn`` command: demo, train, evaluate, predict, explain, report, deidentify, gradcheck.

Every subcommand turns tinycnn's own errors (bad paths, corrupt files, shapes that do not fit)
into a one-line message and exit status 2; a traceback means a bug in tinycnn.
"""

import argparse
import sys

from .errors import TinyCNNError
from .export import add_cli as _add_export


def _cmd_gradcheck(args):
    from .gradcheck import run_suite

    return 0 if run_suite(tol=args.tol) else 1


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check every layer's gradients against finite differences (float64)")
    p.add_argument("--tol", type=float, default=1e-6, help="largest accepted relative error (default 1e-6)")
    p.set_defaults(func=_cmd_gradcheck)


def _add_pipeline_commands(sub):
    from . import pipeline

    pipeline.add_cli(sub)


def _add_privacy(sub):
    try:
        from .privacy import add_cli
    except ImportError:  # pragma: no cover - privacy is part of the package
        return
    add_cli(sub)


def _add_explain(sub):
    try:
        from .explain import add_cli
    except ImportError:  # pragma: no cover
        return
    add_cli(sub)


def _add_report(sub):
    try:
        from .report import add_cli
    except ImportError:  # pragma: no cover
        return
    add_cli(sub)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinycnn",
        description="Train, evaluate and explain small medical-image diagnosis CNNs.",
    )
    parser.add_argument("--backend", choices=["numpy", "cpu", "cuda"], default=None,
                        help="compute backend (default: $TINYCNN_BACKEND or cpu)")
    parser.add_argument("--distributed", action="store_true",  # i14
                        help="train/evaluate/predict on every MPI rank together (automatic under mpiexec "
                             "with several ranks; needs tinycnn[mpi])")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_pipeline_commands(sub)
    _add_explain(sub)
    _add_report(sub)
    _add_export(sub)
    _add_privacy(sub)
    _add_gradcheck(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.backend:
            from .backend import set_backend

            set_backend(args.backend)
        from .distributed import command

        with command(args.distributed, args.command):  # i14: MPI: rank 0 prints; an error on one rank ends all
            return int(args.func(args) or 0)
    except TinyCNNError as e:
        print(f"tinycnn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinycnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
