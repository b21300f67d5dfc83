"""What the commands print: numbers, data summaries, warnings, skipped files, training progress.

Results go to stdout, warnings to stderr (so ``--quiet`` and redirection keep them); an
undefined number (NaN) is printed as ``n/a``, never as ``nan`` or a misleading 0.
"""

import math
import sys
import time

import numpy as np

from ..callbacks import Callback

FEW_CASES = 20  # below this many cases of a class in a part, its metrics are very uncertain


def fmt(value, digits=3):
    """A number for people: ``n/a`` for None, NaN or inf."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}"


class Printer:
    """Prints at three verbosity levels: 0 (--quiet) results only, 1 (default) progress, 2 (--verbose)."""

    def __init__(self, command, verbosity=1):
        self.command, self.verbosity = command, verbosity

    def result(self, text=""):
        print(text, flush=True)

    def info(self, text=""):
        if self.verbosity >= 1:
            print(text, flush=True)

    def detail(self, text=""):
        if self.verbosity >= 2:
            print(text, flush=True)

    def warn(self, text):
        print(f"tinycnn {self.command}: warning: {text}", file=sys.stderr, flush=True)

    def skipped(self, skipped):
        """List files left out by --skip-bad (always: the user must know what was not used)."""
        if skipped:
            print(f"skipped {len(skipped)} file(s) that cannot be read:", flush=True)
            for f, why in skipped:
                print(f"  {f}: {why}", flush=True)

    @property
    def bars(self):
        """Progress bars only with --verbose and when both output streams are terminals."""
        return self.verbosity >= 2 and sys.stdout.isatty() and sys.stderr.isatty()


# ------------------------------------------------------------------ data
_PART_NAMES = (("train", "training"), ("val", "validation"), ("test", "test"))
PART_LABEL = dict(_PART_NAMES)


def class_counts(y, num_classes, task):
    """Cases per class (positives per label for multi-label) of one part."""
    y = np.asarray(y)
    if task == "multilabel":
        return [int(v) for v in y.sum(axis=0)]
    return [int(v) for v in np.bincount(y.astype(np.int64).reshape(-1), minlength=num_classes)]


#: the column of distinct groups per part, by what a group is (DataSplits.grouping)
_GROUP_COLUMN = {"patient": "patients", "group": "groups", "file": "files"}


def data_summary(splits, split_rule=None):
    """A table of cases per class and part (and of patients, groups or files per part where the
    split kept them whole), the image size and how the parts were made."""
    names = [str(c) for c in splits.class_names]
    h, w, c = splits.input_shape
    kind = "positive cases per label" if splits.task == "multilabel" else "cases per class"
    width = max(8, *(len(n) + 2 for n in names))
    groups = _GROUP_COLUMN.get(splits.grouping)
    gwidth = len(groups or "") + 2
    task = {"binary": "binary", "multiclass": "multi-class", "multilabel": "multi-label"}.get(splits.task, splits.task)
    task += ", ordered grades" if splits.ordinal else ""
    task += f" (MedMNIST v2 {splits.dataset}: its official class names)" if splits.dataset else ""
    lines = [f"data: {splits.source}",
             f"task: {task}",
             f"images: {h} x {w} pixels, {'grayscale' if c == 1 else 'colour (RGB)'}",
             f"split: {split_rule or splits.split_rule}",
             f"{kind}:",
             f"{'':<12}" + "".join(f"{n:>{width}}" for n in names) + f"{'total':>{width}}"
             + (f"{groups:>{gwidth}}" if groups else "")]
    for attr, label in _PART_NAMES:
        part = getattr(splits, attr)
        if part is None:
            lines.append(f"{label:<12}" + f"{'(none)':>{width}}")
            continue
        counts = class_counts(part[1], splits.num_classes, splits.task)
        row = f"{label:<12}" + "".join(f"{v:>{width}}" for v in counts) + f"{len(part[1]):>{width}}"
        if groups:
            row += f"{len(np.unique(splits.groups[attr])):>{gwidth}}"
        lines.append(row)
    return "\n".join(lines)


def few_case_warnings(splits, parts=("train", "val", "test"), class_names=None):
    """One sentence per part holding fewer than FEW_CASES cases of some class."""
    names = [str(c) for c in (class_names or splits.class_names)]
    out = []
    for attr, label in _PART_NAMES:
        part = getattr(splits, attr)
        if attr not in parts or part is None:
            continue
        counts = class_counts(part[1], splits.num_classes, splits.task)
        if min(counts) < FEW_CASES:
            each = ", ".join(f"{n}: {v}" for n, v in zip(names, counts, strict=True))
            out.append(f"the {label} part has fewer than {FEW_CASES} cases of a class ({each}): its metrics "
                       "are very uncertain")
    return out


# ------------------------------------------------------------------ training progress
class EpochPrinter(Callback):
    """One line per epoch (``Epoch 3/12 - loss: 0.4120 - ... - val_auc: n/a - 4.1 s``) and, on a
    terminal with --verbose, a progress bar over the epoch's batches."""

    def __init__(self, epochs, n_batches, printer):
        self.epochs, self.n_batches, self.printer = epochs, n_batches, printer
        self._bar, self._t0 = None, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        if self.printer.bars:
            from tqdm import tqdm

            self._bar = tqdm(total=self.n_batches, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="batch",
                             leave=False, dynamic_ncols=True)

    def on_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=fmt((logs or {}).get("loss"), 4), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        values = " - ".join(f"{k}: {fmt(v, 4)}" for k, v in (logs or {}).items())
        self.printer.info(f"Epoch {epoch + 1}/{self.epochs} - {values} - {time.perf_counter() - self._t0:.1f} s")

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
