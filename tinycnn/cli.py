"""The ``tinycnn`` command: demo, train, evaluate, predict, explain, report, export, deidentify, gradcheck.

Bad values of a flag are refused by argparse before anything runs (exit status 2). tinycnn's
own errors (bad paths, corrupt files, shapes that do not fit) become a one-line message naming
the flag where there is one, also with exit status 2; a traceback means a bug in tinycnn.
"""

import argparse
import os
import sys

from . import backend
from .commands import add_all
from .commands._args import in_flag_terms, positive_float
from .errors import TinyCNNError


def _cmd_gradcheck(args):
    from .gradcheck import run_suite

    return 0 if run_suite(tol=args.tol) else 1


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check every layer's gradients against finite differences (float64)")
    p.add_argument("--tol", type=positive_float, default=1e-6,
                   help="largest accepted relative error (default %(default)s)")
    p.set_defaults(func=_cmd_gradcheck)


def _add_export(sub):
    from .export import add_cli

    add_cli(sub)


def _add_privacy(sub):
    from .privacy import add_cli

    add_cli(sub)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinycnn",
        description="Train, evaluate and explain small medical-image diagnosis CNNs.",
    )
    parser.add_argument("--backend", choices=backend.available(), default=None,
                        help="compute backend (default: $TINYCNN_BACKEND, else cpu)")
    parser.add_argument("--distributed", action="store_true",  # i14
                        help="train/evaluate/predict on every MPI rank together (automatic under mpiexec "
                             "with several ranks; needs tinycnn[mpi])")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_all(sub)
    _add_export(sub)
    _add_privacy(sub)
    _add_gradcheck(sub)
    parser.commands = sub.choices  # name -> sub-parser, for help and tests
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.backend:
            backend.set_backend(args.backend)
        from .distributed import command

        with command(args.distributed, args.command):  # i14: MPI: rank 0 prints; an error on one rank ends all
            return int(args.func(args) or 0)
    except TinyCNNError as e:
        print(f"tinycnn {args.command}: error: {in_flag_terms(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinycnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tinycnn predict ... | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
