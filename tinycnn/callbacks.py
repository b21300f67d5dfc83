"""Training callbacks (Keras names): History, EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, CSVLogger, and the learning-rate schedule CosineDecay. A callback sees the
model and each epoch's ``logs`` dict."""

import csv
import math
import os

import numpy as np

from .errors import ConfigError


class Callback:
    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...


class History(Callback):
    """Records every epoch's logs: ``history.history['loss']`` and so on."""

    def on_train_begin(self, logs=None):
        self.epoch = getattr(self, "epoch", [])
        self.history = getattr(self, "history", {})

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall",
                                                        "sensitivity", "specificity", "f1")) else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def _current(self, logs):
        v = (logs or {}).get(self.monitor)
        if v is None:
            raise ConfigError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not in the logs "
                f"(available: {sorted(logs or {})}); pass validation data for 'val_' entries"
            )
        return float(v)

    def _improved(self, v):
        if self.mode == "min":
            return v < self.best - self.min_delta
        return v > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the
    weights of the best epoch."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.restore_best_weights = int(patience), bool(restore_best_weights)

    def on_train_begin(self, logs=None):
        self.wait, self.best_weights, self.stopped_epoch, self.best_epoch = 0, None, None, None
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        v = self._current(logs)
        if self._improved(v):
            self.best, self.wait, self.best_epoch = v, 0, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model after each epoch (or only when ``monitor`` improves), atomically.

    ``filepath`` may hold ``{epoch}`` and log keys, e.g. ``'ckpt-{epoch:02d}.tcnn'``.
    ``save_weights_only=True`` leaves the optimizer state out of the file (a third of the size
    with Adam); the file still holds the architecture, so :func:`tinycnn.models.load_model`
    reads it, but training resumed from it restarts the optimizer's moments.
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto",
                 save_weights_only=False):
        super().__init__(monitor, mode)
        self.filepath, self.save_best_only = os.fspath(filepath), bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            v = self._current(logs)
            if not self._improved(v):
                return
            self.best = v
        self.model.save(path, include_optimizer=not self.save_weights_only)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, verbose=0):
        super().__init__(monitor, mode, min_delta)
        if not 0 < factor < 1:
            raise ConfigError(f"factor must be in (0, 1), got {factor!r}")
        self.factor, self.patience, self.cooldown = float(factor), int(patience), int(cooldown)
        self.min_lr, self.verbose = float(min_lr), verbose

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        v = self._current(logs)
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(v):
            self.best, self.wait = v, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                opt = self.model.optimizer
                new = max(opt.learning_rate * self.factor, self.min_lr)
                if new < opt.learning_rate:
                    opt.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:.3g}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Append each epoch's logs as a CSV row (header written once)."""

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        keys = sorted(logs)
        new_file = not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        with open(self.filename, "a", newline="") as f:
            w = csv.writer(f, delimiter=self.separator)
            if new_file:
                w.writerow(["epoch"] + keys)
            w.writerow([epoch] + [np.format_float_positional(float(logs[k]), precision=8)
                                  for k in keys])
            f.flush()


class CosineDecay(Callback):
    """Learning rate per optimizer step: linear warm-up, then a half cosine down to
    ``alpha * learning_rate`` (SGDR without restarts; with a warm-up, the one-cycle shape).

    For the optimizer step ``s = 1, 2, ...`` (``s = optimizer.iterations + 1``)::

        lr(s) = learning_rate * s / warmup_steps                          s <= warmup_steps
        lr(s) = learning_rate * (alpha + (1 - alpha) (1 + cos(pi f)) / 2)  after,
                f = min(1, (s - warmup_steps) / (total_steps - warmup_steps))

    The step count comes from the optimizer, so a run resumed from a checkpoint continues
    the same schedule. It overrides the optimizer's learning rate; do not combine it with
    :class:`ReduceLROnPlateau`.

    Parameters
    ----------
    learning_rate : float
        The peak rate (reached at the end of the warm-up).
    total_steps : int
        Optimizer steps of the whole run (epochs x batches per epoch).
    warmup_steps : int
    alpha : float
        The final rate as a fraction of ``learning_rate``.
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0, alpha=0.0):
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ConfigError(f"learning_rate must be a positive number, got {learning_rate!r}")
        for v, n in ((total_steps, "total_steps"), (warmup_steps, "warmup_steps")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"{n} must be a non-negative int, got {v!r}")
        if total_steps < 1 or warmup_steps >= total_steps:
            raise ConfigError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
        if not 0 <= alpha < 1:
            raise ConfigError(f"alpha must be in [0, 1), got {alpha!r}")
        self.learning_rate, self.alpha = float(learning_rate), float(alpha)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)

    def rate(self, step):
        """The learning rate of optimizer step ``step`` (1-based)."""
        if step <= self.warmup_steps:
            return self.learning_rate * step / self.warmup_steps
        f = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.learning_rate * (self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * f)))

    def _set(self):
        # the last step of a cosine without alpha would get lr 0 exactly (Adam accepts no 0)
        self.model.optimizer.learning_rate = max(self.rate(self.model.optimizer.iterations + 1), 1e-12)

    def on_train_begin(self, logs=None):
        self._set()

    def on_batch_end(self, batch, logs=None):
        self._set()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
