"""The ``tinycnn`` commands: argument parsing and what is printed, one module per command.

The work itself is done by the library (:mod:`tinycnn.pipeline`, :mod:`tinycnn.explain`,
:mod:`tinycnn.report`); these modules turn flags into calls and results into text a person
reads. Shared pieces: ``_args`` (argument types checked before any data loads, and the
options several commands share), ``_data`` (labelled data, --skip-bad), ``_output``
(numbers, summaries, warnings, progress).
"""

from . import demo, evaluate, explain, predict, report, train

COMMANDS = (demo, train, evaluate, predict, explain, report)


def add_all(sub):
    """Register every command of this package on an ``add_subparsers()`` object."""
    for module in COMMANDS:
        module.add(sub)
