"""A model judged on labelled data, per task, and the text a clinician reads.

- binary: the positive class named on every line; the decision threshold in use and why; ROC-AUC
  of P(positive) with its bootstrap CI; accuracy at 0.5 (MedMNIST's convention, comparable with
  the paper) and at the stored threshold; sensitivity, specificity, PPV, NPV, F1 at the
  threshold in use; the threshold reaching 95% sensitivity; the confusion matrix.
- multi-class: macro one-vs-rest ROC-AUC (MedMNIST's definition) with its bootstrap CI, accuracy
  of the most probable class, each class's sensitivity, specificity and AUC against the rest;
  for ordered grades also quadratic-weighted kappa and the mean absolute grade error.
- multi-label: each label's ROC-AUC and their mean.

Every number comes from :mod:`tinycnn.metrics`; an undefined one is NaN and reads ``n/a``.
"""

import numpy as np

from .. import distributed, metrics
from .labels import targets
from .operating_point import DEFAULT, stored_threshold, threshold_in_use


def evaluate(model, x, y, task=None, threshold=None, class_names=None, n_bootstraps=500):
    """Clinical metrics of ``model`` on ``(x, y)``.

    Parameters
    ----------
    model : Sequential
    x : array (N, H, W, C)
    y : array (N,) class indices of ``class_names``, or (N, L) 0/1 for multi-label models
    task : str, optional
        Default: the model's.
    threshold : float, optional
        Binary: the decision threshold; default the one stored in the model, else 0.5.
    class_names : list of str, optional
        The classes ``y`` indexes; default the model's. Matched to the model's by name.
    n_bootstraps : int
        Resamples of the AUC's CI.

    Returns
    -------
    dict
        ``task``, ``n``, ``class_names`` (binary: ``[negative, positive]``), ``note`` (how data
        and model classes were matched, or None) and the metrics of the task (module docstring);
        :func:`format_report` prints it.
    """
    meta = model.metadata or {}
    p = distributed.predict(model, x, batch_size=64)  # i14: split over MPI ranks when distributed
    y, names, note = targets(model, y, class_names)
    task = task or meta.get("task") or ("binary" if p.shape[1] == 1 else "multiclass")
    rep = {"task": task, "n": int(len(y)), "class_names": names, "note": note}
    if task == "multilabel":
        rep.update(multilabel_summary(y, p))
    elif task == "binary":
        rep.update(binary_summary(y, p[:, 0], names, meta, threshold, n_bootstraps))
    else:
        rep.update(multiclass_summary(y, p, names, bool(meta.get("ordinal")), n_bootstraps))
    return rep


def binary_summary(y, score, names, meta=None, threshold=None, n_bootstraps=500):
    """Binary metrics of P(positive) ``score`` for 0/1 labels ``y``; ``names = [negative, positive]``."""
    meta = meta or {}
    t, source, why = threshold_in_use(meta, threshold)
    rep = metrics.classification_report(y, score, threshold=t)
    rep.update(class_counts=np.bincount(y, minlength=2).tolist(), positive_class=names[1],
               positive_rule=meta.get("positive_rule"), threshold_source=source, threshold_why=why)
    points = [(DEFAULT, "MedMNIST's convention")]
    stored = stored_threshold(meta)
    if stored is not None:
        points.append((stored, "stored"))
    if source == "given":
        points.append((t, "given"))
    rep["accuracy_at"] = [{"threshold": v, "label": label, "accuracy": metrics.accuracy(y, score, v)}
                          for i, (v, label) in enumerate(points) if v not in [u for u, _ in points[:i]]]
    rep.update(metrics.auc_with_ci(y, score, n_bootstraps=n_bootstraps, class_names=names))
    if y.sum() > 0:
        rep["threshold_for_95_sensitivity"] = float(metrics.threshold_for_sensitivity(y, score, 0.95))
    return rep


def multiclass_summary(y, probs, names, ordinal=False, n_bootstraps=500):
    """Multi-class metrics of (N, K) ``probs``; ordered grades add kappa and the grade error."""
    rep = metrics.classification_report(y, probs)
    rep["class_counts"] = np.bincount(y, minlength=probs.shape[1]).tolist()
    rep.update(metrics.auc_with_ci(y, probs, n_bootstraps=n_bootstraps, class_names=names))
    if ordinal:
        rep["ordinal"] = True
        rep["quadratic_kappa"] = metrics.quadratic_weighted_kappa(y, probs)
        rep["mean_absolute_error"] = metrics.mean_absolute_error(y, probs)
    return rep


def multilabel_summary(y, probs, threshold=DEFAULT):
    """Each label's ROC-AUC (NaN where undefined), their mean, and the accuracy of every label at 0.5."""
    aucs = metrics.per_label_auc(y, probs)
    defined = aucs[~np.isnan(aucs)]
    return {"per_label_auc": aucs.tolist(), "auc": float(defined.mean()) if defined.size else float("nan"),
            "labels_with_auc": int(defined.size), "label_counts": np.asarray(y).sum(axis=0).astype(int).tolist(),
            "accuracy": float(((probs >= threshold) == (np.asarray(y) > 0.5)).mean())}


# ------------------------------------------------------------------ text
def _num(v):
    """A number for the report text: ``n/a`` where it is undefined (NaN or missing)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _t(t):
    return f"{t:.4g}"


def _lines(pairs):
    """``label value`` lines, the values aligned after the longest label."""
    w = max(28, *(len(label) + 2 for label, _ in pairs))
    return [f"{label:<{w}}{value}" for label, value in pairs]


def _auc_value(rep):
    text = _num(rep.get("auc"))
    if rep.get("auc_95ci"):
        text += f"   (95% CI {rep['auc_95ci'][0]:.3f}-{rep['auc_95ci'][1]:.3f})"
    if rep.get("auc_note"):
        text += f"   ({rep['auc_note']})"
    return text


def _confusion(cm, names, title):
    cm = np.asarray(cm)
    w = max(8, *(len(n) + 2 for n in names))
    out = [title, " " * w + "".join(f"{n:>{w}}" for n in names)]
    out += [f"{n:>{w}}" + "".join(f"{v:>{w}}" for v in row) for n, row in zip(names, cm, strict=True)]
    return out


def format_report(rep, class_names=None):
    """A short, clinician-readable text of :func:`evaluate`'s dict; undefined numbers read ``n/a``.

    ``class_names`` is used only for a dict that carries none of its own.
    """
    if rep is None:
        return "no evaluation data"
    cm = rep.get("confusion_matrix")
    k = len(cm) if cm is not None else len(rep.get("per_label_auc") or ()) or 2
    names = [str(c) for c in (rep.get("class_names") or class_names or range(k))]
    counts = rep.get("class_counts")
    head = f"cases: {rep['n']}"
    if counts is not None and len(counts) == len(names):
        head += " (" + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True)) + ")"
    lines = [head] + ([f"note: {rep['note']}"] if rep.get("note") else [])
    task = rep.get("task")
    if task == "binary":
        lines += _binary_text(rep, names)
    elif task == "multilabel":
        lines += _multilabel_text(rep, names)
    else:
        lines += _multiclass_text(rep, names)
    return "\n".join(lines)


def _binary_text(rep, names):
    pos = names[1]
    t = rep.get("threshold", DEFAULT)
    rule = f" ({rep['positive_rule']})" if rep.get("positive_rule") else ""
    lines = [f"positive class: {pos}{rule}; the model's probability is p({pos})",
             f"decision threshold: {_t(t)}" + (f", {rep['threshold_why']}" if rep.get("threshold_why") else "")]
    pairs = [(f"ROC-AUC of p({pos})", _auc_value(rep))]
    short = {"MedMNIST's convention": "MedMNIST"}
    for a in rep.get("accuracy_at") or [{"threshold": t, "label": "", "accuracy": rep.get("accuracy")}]:
        label = short.get(a["label"], a["label"])
        pairs.append((f"accuracy at {_t(a['threshold'])}" + (f" ({label})" if label else ""), _num(a["accuracy"])))
    for key, label in [("sensitivity", "sensitivity"), ("specificity", "specificity"), ("precision", "PPV"),
                       ("npv", "NPV"), ("f1", "F1")]:
        if key in rep:
            pairs.append((f"{label} for {pos} at {_t(t)}", _num(rep[key])))
    if "threshold_for_95_sensitivity" in rep:
        pairs.append((f"threshold for 95% sensitivity for {pos}", f"{rep['threshold_for_95_sensitivity']:.3f}"))
    lines += _lines(pairs)
    if rep.get("confusion_matrix") is not None:
        lines += _confusion(rep["confusion_matrix"], names,
                            f"confusion matrix at {_t(t)} (rows: true, columns: predicted)")
    return lines


def _multiclass_text(rep, names):
    pairs = [("macro ROC-AUC (one vs rest)", _auc_value(rep)),
             ("accuracy (most probable class)", _num(rep.get("accuracy")))]
    if rep.get("ordinal"):
        pairs += [("quadratic-weighted kappa", _num(rep.get("quadratic_kappa"))),
                  ("mean absolute grade error", _num(rep.get("mean_absolute_error")))]
    lines = _lines(pairs)
    per = rep.get("per_class")
    if per:
        w = max(8, *(len(n) + 2 for n in names))
        lines.append("each class against the rest:")
        lines.append(f"{'class':>{w}}{'cases':>8}{'sensitivity':>13}{'specificity':>13}{'AUC':>8}")
        for k, n in enumerate(names):
            c = per[k]
            lines.append(f"{n:>{w}}{c['support']:>8}{_num(c['sensitivity']):>13}{_num(c['specificity']):>13}"
                         f"{_num(c['auc']):>8}")
    if rep.get("confusion_matrix") is not None:
        lines += _confusion(rep["confusion_matrix"], names,
                            "confusion matrix, most probable class (rows: true, columns: predicted)")
    return lines


def _multilabel_text(rep, names):
    aucs = rep.get("per_label_auc") or []
    missing = len(aucs) - rep.get("labels_with_auc", len(aucs))
    extra = f"   (over {rep.get('labels_with_auc')} labels; {missing} without both classes: n/a)" if missing else ""
    lines = _lines([("mean ROC-AUC over labels", _num(rep.get("auc")) + extra),
                    ("accuracy (each label at 0.5)", _num(rep.get("accuracy")))])
    w = max(8, *(len(n) + 2 for n in names))
    lines.append("each label:")
    lines.append(f"{'label':>{w}}{'positives':>11}{'AUC':>8}")
    for n, c, a in zip(names, rep.get("label_counts") or [None] * len(aucs), aucs, strict=False):
        lines.append(f"{n:>{w}}{'' if c is None else c:>11}{_num(a):>8}")
    return lines
