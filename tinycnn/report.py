"""A one-file HTML report of a diagnosis model on a test set.

>>> write_report("report.html", model, x_test, y_test, history=model.metadata.get("history"))

The file is self-contained: every picture is an embedded PNG, the style sheet is inline,
there is no script, font or link to fetch. It holds only aggregate numbers and the test
images themselves, never a file name, metadata or identifier of the data: pass it on as
you would pass on the images.

Sections: training curves, ROC curve with AUC and its bootstrap 95% CI, confusion matrix,
sensitivity / specificity / PPV / NPV / F1 at the decision threshold in use (the model's
stored operating point unless one is given; accuracy also at 0.5, MedMNIST's convention), the
threshold reaching 95% sensitivity, and Grad-CAM overlays of true positives, false positives and
false negatives, all naming the positive class. Multi-class models get one-vs-rest ROC curves,
the macro AUC with its CI, the confusion matrix, per-class rates (ordered grades: weighted kappa
and the mean grade error) and Grad-CAM of correct and misclassified cases.
"""

import base64
import datetime
import html
import io

import numpy as np

from . import explain, metrics
from .errors import ConfigError, InvalidValueError, ShapeError, TinyCNNError


class PlotDependencyError(TinyCNNError, ImportError):
    """matplotlib (the ``plot`` extra) is needed and not installed."""


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d2330;
       margin: 0; background: #f4f5f7; line-height: 1.45; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d8dbe2; }
h3 { font-size: 1em; margin: 18px 0 6px; }
p.note { color: #5a6172; font-size: 0.9em; margin: 4px 0 10px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dbe2; padding: 4px 12px; text-align: right; }
th { background: #eef0f4; font-weight: 600; }
td.label, th.label { text-align: left; }
td.hit { background: #e3f1e6; }
td.miss { background: #fbe9e7; }
img.plot { max-width: 100%; height: auto; display: block; }
.cases { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 240px; }
figure img { width: 240px; height: auto; image-rendering: pixelated; display: block; border: 1px solid #d8dbe2; }
figcaption { font-size: 0.85em; color: #5a6172; margin-top: 2px; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dl.summary dt { color: #5a6172; }
dl.summary dd { margin: 0; }
"""


# ------------------------------------------------------------------ pictures
def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotDependencyError("the report draws its plots with matplotlib: pip install tinycnn[plot]") from e
    return Figure, FigureCanvasAgg


def _figure(width, height):
    # A bare Figure on an Agg canvas: no pyplot, so the caller's matplotlib backend and open
    # figures are left alone.
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _fig_uri(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no tool URL in the PNG
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _array_uri(rgb):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri, alt, cls="plot"):
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt)}">'


def _curves(history):
    """Loss and metrics per epoch, train and validation: one panel per quantity."""
    names = [k for k in history if not k.startswith("val_") and k != "lr" and len(history[k])]
    if not names:
        return None
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig = _figure(3.4 * cols, 2.6 * rows)
    from matplotlib.ticker import MaxNLocator

    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], "o-", ms=3, label="train")
        if history.get("val_" + name):
            ax.plot(np.arange(1, len(history["val_" + name]) + 1), history["val_" + name], "s--", ms=3,
                    label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _fig_uri(fig)


def _roc_plot(curves, points=()):
    """ROC curves [(fpr, tpr, label)] and marked operating points [(fpr, tpr, label)]."""
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance")
    for fpr, tpr, label in curves:
        ax.step(fpr, tpr, where="post", lw=1.8, label=label)
    for (fpr, tpr, label), marker in zip(points, "oD^", strict=False):
        ax.plot([fpr], [tpr], marker, ms=7, mfc="none", mew=1.8, label=label)
    ax.set_xlabel("1 - specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _fig_uri(fig)


# ------------------------------------------------------------------ numbers
#: the report's names for the rates of :func:`tinycnn.metrics.classification_report`
_SHOWN = {"sensitivity": "sensitivity", "specificity": "specificity", "PPV": "precision", "NPV": "npv", "F1": "f1"}


def _rates(y, score, threshold):
    """Binary rates at ``threshold`` under the report's names (plus accuracy), all computed by
    :mod:`tinycnn.metrics`; NaN where undefined."""
    rep = metrics.classification_report(y, score, threshold=threshold)
    return {**{name: rep[key] for name, key in _SHOWN.items()}, "accuracy": rep["accuracy"]}


def _fmt(v, digits=3):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _table(header, rows):
    """An HTML table; the first cell of each row is a label."""
    out = ["<table><tr>" + "".join(f'<th class="{"label" if i == 0 else ""}">{html.escape(h)}</th>'
                                   for i, h in enumerate(header)) + "</tr>"]
    for row in rows:
        cells = [f'<td class="label">{html.escape(str(row[0]))}</td>']
        cells += [f"<td>{html.escape(_fmt(v) if not isinstance(v, str) else v)}</td>" for v in row[1:]]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def _confusion_table(cm, names):
    head = '<tr><th class="label">true \\ predicted</th>' + "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = [head + "</tr>"]
    for i, n in enumerate(names):
        cells = "".join(f'<td class="{"hit" if i == j else "miss"}">{int(v)}</td>' for j, v in enumerate(cm[i]))
        rows.append(f'<tr><th class="label">{html.escape(n)}</th>{cells}</tr>')
    return "<table>" + "\n".join(rows) + "</table>"


# ------------------------------------------------------------------ Grad-CAM examples
def _examples(model, x, groups, caption, shown):
    """HTML of Grad-CAM figures: for each (title, order, indices, class_index) a row of cases.

    Each picture is the image beside its overlay; cases are numbered by their position in
    the test set, nothing else names them. ``shown[title]`` receives the indices shown.
    """
    out = []
    for title, order, idx, cls in groups:
        shown[title] = [int(i) for i in idx]
        out.append(f"<h3>{html.escape(title)}: {len(idx)} shown, {order}</h3>")
        if len(idx) == 0:
            out.append('<p class="note">none in this test set</p>')
            continue
        images = np.asarray(x[np.sort(idx)], dtype=np.float32)[np.argsort(np.argsort(idx))]
        cams = explain.grad_cam(model, images, class_index=cls)
        figs = []
        for i, im, cam in zip(idx, images, cams, strict=True):
            plain = np.round(explain.display_rgb(im) * 255).astype(np.uint8)
            gap = np.full((plain.shape[0], max(1, plain.shape[1] // 32), 3), 255, np.uint8)
            pair = np.concatenate([plain, gap, explain.overlay(im, cam)], axis=1)
            figs.append(f"<figure>{_img(_array_uri(pair), f'test case {i + 1}: image and Grad-CAM', 'case')}"
                        f"<figcaption>case {i + 1}: {html.escape(caption(i))}</figcaption></figure>")
        out.append('<div class="cases">' + "".join(figs) + "</div>")
    return "\n".join(out)


def _top(mask, key, n):
    """Indices where ``mask`` holds, ordered by ``key`` (ascending), at most n."""
    idx = np.flatnonzero(mask)
    return idx[np.argsort(key[idx], kind="stable")][:n]


# ------------------------------------------------------------------ the report
def write_report(path, model, x_test, y_test, history=None, threshold=None, n_examples=4,
                 title="Diagnosis model report", class_names=None):
    """Write a self-contained HTML report of ``model`` on a test set.

    Parameters
    ----------
    path : str or Path
        The HTML file to write.
    model : Sequential
        A binary (one sigmoid output) or multi-class (K softmax outputs) model.
    x_test : array (N, H, W, C)
    y_test : array (N,) or (N, 1)
        Class indices of ``class_names`` (matched to the model's classes by name; a binary
        model's positive class is its ``positive_class``).
    history : dict or History, optional
        Per-epoch values such as ``{'loss': [...], 'val_loss': [...], 'auc': [...]}``.
    threshold : float in [0, 1], optional
        Binary: a case is called positive when its probability is ``>= threshold``; default the
        model's stored decision threshold, else 0.5.
    n_examples : int
        Grad-CAM cases shown per group (true positives, false positives, false negatives).
    title : str
    class_names : list of str, optional
        The classes ``y_test`` indexes; default ``model.metadata['class_names']``, else the
        class indices.

    Returns
    -------
    dict
        The numbers shown: ``n``, ``auc``, ``auc_95ci`` (None for fewer than 10 cases of a class),
        ``confusion_matrix``, ``examples`` ({group title: test-set indices of the Grad-CAM cases
        shown}) and, for binary models, ``positive_class``, ``threshold`` (in use),
        ``threshold_source`` ('given', 'stored' or 'default'), ``rates`` (at each operating
        point shown) and ``threshold_for_95_sensitivity``; for ordered grades
        ``quadratic_kappa`` and ``mean_absolute_error``. Every number comes from
        :mod:`tinycnn.metrics`; an undefined rate (0/0) is NaN, shown as "n/a".
    """
    from . import clinical

    _matplotlib()  # fail before any work when matplotlib is missing
    y = _check_report_arguments(threshold, n_examples, y_test)
    probs = model.predict(x_test, batch_size=64)
    if len(probs) != len(y):
        raise ShapeError(f"x_test has {len(probs)} cases but y_test has {len(y)} labels")
    binary = probs.shape[1] == 1
    K = 2 if binary else probs.shape[1]
    if y.min() < 0 or y.max() >= K:
        raise InvalidValueError(f"y_test holds classes outside 0..{K - 1}")
    names = [str(c) for c in class_names] if class_names else None
    y, names, _ = clinical.targets(model, y, names if names and len(names) == K else None)
    if len(names) != K:
        names = [str(k) for k in range(K)]
    if history is not None and hasattr(history, "history"):
        history = history.history
    score = probs[:, 0] if binary else probs
    result = {"n": int(len(y))}
    # binary: the threshold in use; multi-class calls the most probable class and uses none
    threshold = _operating_points(model.metadata or {}, threshold, result) if binary else 0.5
    body = [_summary(model, y, names, binary, result),
            "<h2>Training curves</h2>", _curves_section(history),
            "<h2>ROC curve</h2>", _roc_section(y, score, names, binary, threshold, result),
            "<h2>Confusion matrix</h2>", _confusion_section(y, score, names, binary, threshold, result),
            "<h2>Diagnostic performance</h2>", _performance_section(y, score, names, binary, threshold, result,
                                                                    bool((model.metadata or {}).get("ordinal"))),
            "<h2>Grad-CAM examples</h2>", _GRAD_CAM_NOTE,
            _examples_section(model, x_test, y, probs, binary, threshold, n_examples, names,
                              result.setdefault("examples", {}))]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_page(title, body))
    return result


def _operating_points(meta, threshold, result):
    """The threshold in use (given, else stored, else 0.5); ``result`` gets it and why."""
    from .clinical import stored_threshold, threshold_in_use

    t, source, why = threshold_in_use(meta, threshold)
    result.update(threshold=t, threshold_source=source, threshold_why=why, stored_threshold=stored_threshold(meta))
    return t


def _check_report_arguments(threshold, n_examples, y_test):
    """The test labels as (N,) int64, after checking the options."""
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating))
                                  or not 0 <= threshold <= 1):
        raise ConfigError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    if isinstance(n_examples, bool) or not isinstance(n_examples, (int, np.integer)) or n_examples < 0:
        raise ConfigError(f"n_examples must be an int >= 0, got {n_examples!r}")
    y = np.asarray(y_test)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ConfigError(f"y_test must hold one class index per case (N,); got shape {np.shape(y_test)} "
                          "(multi-label reports are not supported)")
    return y.astype(np.int64)


def _page(title, body):
    today = datetime.date.today().isoformat()
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=\"note\">generated by tinycnn on {today}</p>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def _summary(model, y, names, binary, result):
    present = np.bincount(y, minlength=len(names))
    rows = [("test cases", str(len(y))),
            ("cases per class", ", ".join(f"{n}: {c}" for n, c in zip(names, present, strict=True))),
            ("model", f"{type(model).__name__}, {model.count_params():,} trained parameters, "
                      f"input {' x '.join(map(str, model.input_shape))}")]
    if binary:
        rule = (model.metadata or {}).get("positive_rule")
        result["positive_class"] = names[1]
        rows += [("positive class", f"{names[1]}: the model's probability is p({names[1]})"
                                    + (f" ({rule})" if rule else "")),
                 ("decision rule", f"{names[1]} when p({names[1]}) ≥ {result['threshold']:.4g}; threshold "
                                   f"{result['threshold_why']}")]
    else:
        rows.append(("decision rule", "the class of highest probability"))
    return '<dl class="summary">' + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                                            for k, v in rows) + "</dl>"


def _curves_section(history):
    uri = _curves(history) if history else None
    return _img(uri, "training curves") if uri else '<p class="note">no training history was stored with this model</p>'


def _confusion_section(y, score, names, binary, threshold, result):
    cm = metrics.confusion_matrix(y, score, threshold=threshold)
    result["confusion_matrix"] = cm.tolist()
    return (f'<p class="note">rows: true class; columns: predicted class'
            f'{f" (threshold {threshold:.4g})" if binary else ""}</p>' + _confusion_table(cm, names))


def _performance_section(y, score, names, binary, threshold, result, ordinal=False):
    keys = [*_SHOWN, "accuracy"]
    if not binary:
        rep = metrics.classification_report(y, score)
        rows = [[names[k]] + [rep["per_class"][k][_SHOWN[key]] for key in _SHOWN] + [rep["per_class"][k]["support"]]
                for k in range(len(names))]
        note = f"accuracy (most probable class) {_fmt(rep['accuracy'])}"
        if ordinal:
            kappa, mae = metrics.quadratic_weighted_kappa(y, score), metrics.mean_absolute_error(y, score)
            result.update(quadratic_kappa=kappa, mean_absolute_error=mae)
            note += (f"; the classes are ordered grades: quadratic-weighted kappa {_fmt(kappa)}, mean absolute "
                     f"grade error {_fmt(mae)}")
        return _table(["class (one vs rest)", *_SHOWN, "cases"], rows) + f'<p class="note">{note}</p>'
    why = {"given": "given", "stored": "stored in the model", "default": "default: none stored"}
    points = [(threshold, why[result["threshold_source"]])]
    for t, label in ((result.get("stored_threshold"), "stored in the model"), (0.5, "MedMNIST's convention")):
        if t is not None and all(t != u for u, _ in points):
            points.append((t, label))
    result["rates"] = _rates(y, score, threshold)
    result["rates_at"] = {}
    rows = []
    for t, label in points:
        rates = result["rates_at"][t] = _rates(y, score, t)
        rows.append([f"at threshold {t:.4g} ({label})"] + [rates[k] for k in keys])
    pos = html.escape(names[1])
    head = (f'<p class="note">Rates for {pos}, the positive class (sensitivity: the share of {pos} cases called '
            f"{pos}; PPV: the share of cases called {pos} that are). Accuracy at 0.5 is MedMNIST's convention, "
            "comparable with its published results.</p>")
    if not y.any():
        return head + _table(["operating point", *keys], rows) + (
            '<p class="note">No positive case: the threshold for 95% sensitivity is undefined.</p>')
    t95 = metrics.threshold_for_sensitivity(y, score, 0.95)
    result["threshold_for_95_sensitivity"] = t95
    rates95 = _rates(y, score, t95)
    rows.append([f"at threshold {t95:.3f} (95% sensitivity)"] + [rates95[k] for k in keys])
    return head + _table(["operating point", *keys], rows) + (
        f'<p class="note">Threshold reaching 95% sensitivity: <b>{t95:.3f}</b> (the highest probability cut-off '
        f"that still calls at least 95% of the {pos} cases {pos}).</p>")


_GRAD_CAM_NOTE = ('<p class="note">Left: the test image as the model sees it; right: Grad-CAM of the last '
                  "convolutional layer (bright: regions that raised the score of the class shown). A map shows "
                  "where the model looked, not whether it was right.</p>")


def _roc_section(y, score, names, binary, threshold, result):
    if binary:
        if not 0 < y.sum() < len(y):
            return '<p class="note">The test set holds a single class: the ROC curve and AUC are undefined.</p>'
        summary = metrics.auc_with_ci(y, score, n_bootstraps=1000, seed=0, class_names=names)
        auc, ci = summary["auc"], summary["auc_95ci"]
        result.update(auc=auc, auc_95ci=ci)
        fpr, tpr, _ = metrics.roc_curve(y, score)
        r = _rates(y, score, threshold)
        t95 = metrics.threshold_for_sensitivity(y, score, 0.95)
        r95 = _rates(y, score, t95)
        ci_text = f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else ""
        uri = _roc_plot([(fpr, tpr, f"p({names[1]}): AUC {auc:.3f}{ci_text}")],
                        [(1 - r["specificity"], r["sensitivity"], f"threshold {threshold:.4g}"),
                         (1 - r95["specificity"], r95["sensitivity"], f"threshold {t95:.3f} (95% sens.)")])
        note = (f"95% CI {ci[0]:.3f}–{ci[1]:.3f} (percentile bootstrap, 1000 resamples of the test cases)" if ci
                else html.escape(summary["auc_note"]))
        pos, neg = html.escape(names[1]), html.escape(names[0])
        return _img(uri, "ROC curve") + (f'<p class="note">AUC of p({pos}), {pos} against {neg}: <b>{auc:.3f}</b>, '
                                         f"{note}.</p>")
    curves, rows = [], []
    for k, name in enumerate(names):
        pos = y == k
        if not 0 < pos.sum() < len(y):
            rows.append([name, "undefined (no cases or only this class)"])
            continue
        fpr, tpr, _ = metrics.roc_curve(pos.astype(np.int64), score[:, k])
        auc_k = metrics.roc_auc(pos.astype(np.int64), score[:, k])
        curves.append((fpr, tpr, f"{name}: AUC {auc_k:.3f}"))
        rows.append([name, auc_k])
    # MedMNIST's multi-class AUC: the mean over classes of each class's one-vs-rest AUC
    summary = metrics.auc_with_ci(y, score, n_bootstraps=1000, seed=0, class_names=names)
    result.update(auc=summary["auc"], auc_95ci=summary["auc_95ci"])
    ci = summary["auc_95ci"]
    detail = (f"95% CI {ci[0]:.3f}–{ci[1]:.3f} (percentile bootstrap, 1000 resamples)" if ci
              else html.escape(summary["auc_note"]))
    note = f'<p class="note">Macro-average one-vs-rest AUC <b>{_fmt(summary["auc"])}</b>, {detail}.</p>'
    plot = _img(_roc_plot(curves), "one-vs-rest ROC curves") if curves else ""
    return plot + note + _table(["class (one vs rest)", "AUC"], rows)


def _examples_section(model, x, y, probs, binary, threshold, n, names, shown):
    if n == 0:
        return '<p class="note">no examples requested</p>'
    try:
        if binary:
            p = probs[:, 0]
            called = p >= threshold
            groups = [("True positives", "most confident first", _top(called & (y == 1), -p, n), 1),
                      ("False positives", "most confident first", _top(called & (y == 0), -p, n), 1),
                      ("False negatives", "most missed first", _top(~called & (y == 1), p, n), 1)]
            return _examples(model, x, groups, lambda i: f"p({names[1]}) = {p[i]:.3f}", shown)
        pred = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        right = _top(pred == y, -conf, n)
        wrong = _top(pred != y, -conf, n)
        groups = [("Correct", "most confident first", right, pred[right]),
                  ("Misclassified", "most confident first", wrong, pred[wrong])]
        return _examples(model, x, groups,
                         lambda i: f"true {names[y[i]]}, predicted {names[pred[i]]} ({conf[i]:.3f})", shown)
    except ConfigError as e:  # e.g. a model without a convolutional layer
        return f'<p class="note">No Grad-CAM: {html.escape(str(e))}</p>'

