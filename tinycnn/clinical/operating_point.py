"""The decision threshold of a binary model: chosen on the validation part, stored, and used.

0.5 is a convention, not an operating point: with a rare finding or class weights the model's
probabilities sit elsewhere, and a screening test wants high sensitivity first. So training
chooses the threshold on the validation part (never the test part) and stores it in the model
file (``decision_threshold``, with ``threshold_rule`` saying how it was chosen):

- by default the one maximising Youden's J = sensitivity + specificity - 1
  (:func:`tinycnn.metrics.threshold_youden`);
- with ``target_sensitivity`` (screening), the highest threshold reaching that sensitivity
  (:func:`tinycnn.metrics.threshold_for_sensitivity`).

``predict``, ``evaluate`` and ``report`` use the stored threshold unless one is given; a model
file without one uses 0.5 and says so.
"""

import numbers

import numpy as np

from .. import distributed, metrics
from ..errors import ConfigError

DEFAULT = 0.5


def check_target_sensitivity(value):
    """``value`` as a float in (0, 1], or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ConfigError(f"target_sensitivity must be a sensitivity in (0, 1], got {value!r}")
    return float(value)


def choose_threshold(y, score, target_sensitivity=None, part="validation", positive="positive"):
    """The operating point on labelled scores and how it was chosen, in words.

    Parameters
    ----------
    y : array (N,) of 0/1 (1 = positive)
    score : array (N,)
        P(positive).
    target_sensitivity : float in (0, 1], optional
        Screening: the highest threshold reaching this sensitivity; default Youden's J.
    part, positive : str
        For the words: the part the threshold was chosen on, the positive class.

    Returns
    -------
    (float, str)
        The threshold (0.5 when ``y`` lacks a class: nothing to choose on) and its rule.
    """
    target = check_target_sensitivity(target_sensitivity)
    y = np.asarray(y).reshape(-1)
    n, npos = int(y.size), int(np.sum(y == 1))
    if n == 0 or npos in (0, n):
        return DEFAULT, f"{DEFAULT:g} by default: the {part} part holds no case of one class to choose a threshold on"
    cases = f"on the {part} part ({n} cases, {npos} {positive})"
    if target is None:
        return (metrics.threshold_youden(y, score),
                f"maximises Youden's J (sensitivity + specificity - 1) {cases}")
    return (metrics.threshold_for_sensitivity(y, score, target),
            f"the highest threshold reaching sensitivity {target:g} {cases}")


def operating_point(model, val, target_sensitivity=None, positive="positive"):
    """``{'decision_threshold', 'threshold_rule'}`` for a binary ``model`` from its validation part.

    ``val`` is ``(x, y)`` with y encoded 0/1 (1 = positive), or None (then 0.5, and the rule
    says there was no validation part).
    """
    if val is None:
        if target_sensitivity is not None:
            raise ConfigError("target_sensitivity needs a validation part to choose the threshold on")
        return {"decision_threshold": DEFAULT,
                "threshold_rule": f"{DEFAULT:g} by default: no validation part to choose a threshold on"}
    x, y = val
    score = distributed.predict(model, x, batch_size=64)[:, 0]  # i14: split over MPI ranks when distributed
    t, rule = choose_threshold(y, score, target_sensitivity, positive=positive)
    return {"decision_threshold": float(t), "threshold_rule": rule}


def stored_threshold(meta):
    """The model's stored decision threshold, or None (files written before one was stored)."""
    t = (meta or {}).get("decision_threshold")
    return float(t) if isinstance(t, numbers.Real) and not isinstance(t, bool) and np.isfinite(t) else None


def threshold_in_use(meta, threshold=None):
    """``(threshold, source, why)``: the given threshold, else the stored one, else 0.5.

    ``source`` is 'given', 'stored' or 'default'; ``why`` says it in words.
    """
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
            raise ConfigError(f"threshold must be a probability in [0, 1], got {threshold!r}")
        return float(threshold), "given", "given for this run (--threshold)"
    stored = stored_threshold(meta)
    if stored is not None:
        rule = (meta or {}).get("threshold_rule")
        return stored, "stored", "stored in the model" + (f": {rule}" if rule else "")
    return DEFAULT, "default", ("the default: the model file stores no decision threshold (written before tinycnn "
                                "stored one); pass --threshold to choose another")
