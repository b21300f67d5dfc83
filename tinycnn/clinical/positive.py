"""Which of two classes is the positive one: the finding a binary model detects.

Sensitivity, PPV, the ROC curve and a model's probability all speak of one class, the
positive one. Class folders come in alphabetical order, so "the second class" is an accident
of spelling (``lesion/`` and ``normal/`` would make *normal* positive). The rule here: the
user's choice if given; else, of two classes, the one named like a negative finding (normal,
healthy, negative, benign, no finding, control, absent; case-insensitive, as a word of a
compound name such as 'normal, benign' or 'no_finding') is negative and the other positive;
else the second class, and the caller says so and how to change it.
"""

import re
from dataclasses import dataclass

from ..errors import ConfigError

#: words (and two-word phrases) that name a negative finding
NEGATIVE_WORDS = ("normal", "normals", "healthy", "negative", "negatives", "benign", "no finding", "control",
                  "controls", "absent")
_NEGATIONS = ("not", "non", "no")  # 'not normal', 'non-benign' negate the word after them


def _words(name):
    return re.findall(r"[a-z0-9]+", str(name).lower())


def is_negative_name(name):
    """True if ``name`` reads as a negative finding: 'Normal', 'normal, benign', 'no_finding',
    'healthy controls'; not 'abnormal', 'not normal' or 'non-benign'."""
    words = _words(name)
    for i, w in enumerate(words):
        if i + 1 < len(words) and f"{w} {words[i + 1]}" in NEGATIVE_WORDS:  # 'no finding'
            return True
        if w in NEGATIVE_WORDS and (i == 0 or words[i - 1] not in _NEGATIONS):
            return True
    return False


class PositiveClassWarning(UserWarning):
    """No class name decided which class is positive: the second was taken by default."""


@dataclass(frozen=True)
class Positive:
    """The positive class of a binary task and how it was chosen.

    Attributes
    ----------
    index : int
        Its position among the class names (the label that means positive).
    name, negative : str
        Its name and the other class's.
    rule : str
        How it was chosen, in words (stored in the model file as ``positive_rule``).
    by_name : bool
        False when no name decided it and the second class was taken by default: the caller
        must say so and how to choose.
    """

    index: int
    name: str
    negative: str
    rule: str
    by_name: bool


def find_class(class_names, name, what="positive_class"):
    """The index of ``name`` among ``class_names``: exact, else the one case-insensitive match."""
    names = [str(c) for c in class_names]
    if str(name) in names:
        return names.index(str(name))
    folded = [i for i, c in enumerate(names) if c.casefold() == str(name).casefold()]
    if len(folded) == 1:
        return folded[0]
    raise ConfigError(f"{what} {name!r} is not one of the classes ({', '.join(names)})")


def choose_positive(class_names, positive_class=None):
    """The positive class of a binary task (see the module docstring for the rule).

    Parameters
    ----------
    class_names : sequence of 2 str
    positive_class : str, optional
        The user's choice, by name.

    Returns
    -------
    Positive
    """
    names = [str(c) for c in class_names]
    if len(names) != 2:
        raise ConfigError(f"a positive class applies to binary tasks (2 classes), not to {len(names)} classes; "
                          "multi-class tasks report each class against the rest")
    if positive_class is not None:
        k = find_class(names, positive_class)
        return Positive(k, names[k], names[1 - k], "chosen by the user", True)
    negative = [is_negative_name(n) for n in names]
    if negative.count(True) == 1:
        k = negative.index(False)
        return Positive(k, names[k], names[1 - k],
                        f"the other class, {names[1 - k]!r}, is named like a negative finding", True)
    why = ("both class names read as negative findings" if all(negative) else "neither class name reads as a "
           "negative finding (normal, healthy, negative, benign, no finding, control, absent)")
    return Positive(1, names[1], names[0], f"the second class by default: {why}", False)
