"""Argument types and options shared by the commands.

Each type checks a value when argparse reads it, before any data is loaded, so a bad value
is refused in a second with a message that names the flag the user typed
(``tinycnn train: error: argument --batch-size: must be an integer >= 1, got '0'``) and
exit status 2, like every other usage error.
"""

import argparse
import math
import re


def _number(text, kind):
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_at_least(low):
    """An argparse type: an integer >= ``low``."""

    def check(text):
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    check.__name__ = f"integer >= {low}"
    return check


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text):
    """An argparse type: a finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def probability(text):
    """An argparse type: a number in [0, 1] (a threshold, an opacity)."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}")
    return value


def sensitivity(text):
    """An argparse type: a sensitivity to reach, in (0, 1]."""
    value = _number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a sensitivity in (0, 1], got {text!r}")
    return value


def regex(text):
    """An argparse type: a regular expression (checked, kept as text)."""
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"not a regular expression ({e}): {text!r}") from None
    return text


def fraction(text):
    """An argparse type: a share of the data in [0, 1)."""
    value = _number(text, float)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text!r}")
    return value


# ------------------------------------------------------------------ options several commands share
def add_threshold(p):
    p.add_argument("--threshold", type=probability, default=None, metavar="P",
                   help="a case is called positive when its probability of the positive class is at least P, in "
                        "[0, 1] (binary models; default: the decision threshold stored in the model, chosen on "
                        "validation data when it was trained; 0.5 for a model file that stores none)")


def add_verbosity(p):
    """``--verbose`` / ``--quiet``: the same three levels on every command."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=2, default=1,
                   help="also print the model's layers and, on a terminal, a progress bar per epoch "
                        "(default: off)")
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=0,
                   help="print only results, warnings and errors, no summary or progress lines (default: off)")


def add_model(p, what="the model file to use, written by `tinycnn train --out` or `tinycnn demo` (required)"):
    p.add_argument("--model", required=True, metavar="FILE", help=what)


# ------------------------------------------------------------------ library names -> flags
# Library errors name Python arguments (``image_size``); on the command line the user typed a
# flag. Only names with an underscore are translated: plain words ("threshold", "epochs") also
# occur in ordinary sentences, and the commands check those values themselves.
_FLAGS = ("image_size", "batch_size", "learning_rate", "val_fraction", "test_fraction", "class_weight",
          "skip_bad", "group_pattern", "target_sensitivity")
_NAME = re.compile(r"(?<![\w/.\\-])(" + "|".join(_FLAGS) + r")(?![\w/.\\-])")


def in_flag_terms(message):
    """``message`` with the Python argument names the CLI exposes as flags written as those flags."""
    return _NAME.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)
