"""What :meth:`Sequential.fit <tinycnn.models.Sequential.fit>` is made of: input checks and
batching, sample and class weights, the validation split, callbacks, resuming and checkpoints,
and the epoch loop. The model itself is used only through its documented internals
(:meth:`~tinycnn.models.Sequential.train_step`, ``prepare``, ``predict_outputs``, ...).
"""

import time

import numpy as np

from . import backend
from . import callbacks as cbks
from .errors import ConfigError, DTypeError, InvalidValueError, ShapeError
from .random import generator


# ------------------------------------------------------------------ inputs and batches
def check_inputs(x, input_shape, what="x"):
    """Validate an image batch source (array, memmap or lazy dataset) against the model."""
    if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
        x = np.asarray(x)
    shape = tuple(x.shape)
    dtype = np.dtype(getattr(x, "dtype", np.float32))
    if dtype.kind not in "biuf":
        raise DTypeError(f"{what} must hold real numbers, got dtype {dtype}")
    if len(shape) == 0 or shape[0] == 0:
        raise InvalidValueError(f"{what} is empty (shape {shape})")
    if input_shape is not None and shape[1:] != tuple(input_shape):
        raise ShapeError(
            f"{what} has shape {shape}, but the model expects (N, {', '.join(map(str, input_shape))})"
            + (" (images are NHWC: add a channel axis, e.g. x[..., None])"
               if len(shape) == len(input_shape) else "")
        )
    return x


def batch(x, idx, dtype, what="x"):
    """Samples ``idx`` of ``x`` as a finite host array of ``dtype``."""
    xb = np.asarray(x[idx], dtype=dtype)
    if not np.isfinite(xb).all():
        bad = int(idx[np.flatnonzero(~np.isfinite(xb.reshape(len(idx), -1)).all(axis=1))[0]])
        raise InvalidValueError(f"{what} contains NaN or inf (first at sample {bad})")
    return xb


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_fit_arguments(batch_size, epochs, validation_split, y):
    positive_int(batch_size, "batch_size")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ConfigError(f"epochs must be a non-negative int, got {epochs!r}")
    if (isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.floating))
            or not 0 <= validation_split < 1):
        raise ConfigError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    if y is None:
        raise ConfigError("fit() needs labels y")


# ------------------------------------------------------------------ weights
def class_index(loss_kind, y):
    """The class of each label row (sparse labels, one 0/1 column, or one-hot rows)."""
    if loss_kind == "sparse_categorical_crossentropy":
        return y.astype(np.int64)
    if y.shape[1] == 1:
        return (y[:, 0] > 0.5).astype(np.int64)
    return y.argmax(axis=1)


def _class_weights(cls, class_weight):
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ConfigError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        counts = np.bincount(cls)
        present = counts > 0
        cw = np.zeros(len(counts))
        cw[present] = len(cls) / (present.sum() * counts[present])
        return cw
    if isinstance(class_weight, dict):
        K = max(int(cls.max()) + 1, max((int(k) for k in class_weight), default=0) + 1)
        cw = np.ones(K)
        for k, v in class_weight.items():
            if not (isinstance(v, (int, float, np.number)) and v >= 0):
                raise ConfigError(f"class_weight[{k!r}] must be a number >= 0, got {v!r}")
            cw[int(k)] = float(v)
        return cw
    raise ConfigError(f"class_weight must be a dict or 'balanced', got {type(class_weight).__name__}")


def sample_weights(loss_kind, y, class_weight, sample_weight, n):
    """Per-sample weights (N,) from ``sample_weight`` times the class weights, or None."""
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
            raise InvalidValueError(f"sample_weight must be {n} finite values >= 0")
    if class_weight is None:
        return w
    cls = class_index(loss_kind, y)
    cw_s = _class_weights(cls, class_weight)[cls]
    return cw_s if w is None else w * cw_s


# ------------------------------------------------------------------ one fit call
class Fit:
    """One call of ``fit``: the training and validation data, callbacks and options, and the
    epoch loop over them. Random draws (shuffling, oversampling, augmentation, dropout) come
    from tinycnn's generator in a fixed order, so a resumed run repeats an uninterrupted one."""

    def __init__(self, model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                 shuffle, class_weight, sample_weight, augment, oversample, checkpoint):
        self.model = model
        x, y = model.prepare(x, y)
        self.x, self.y = x, y
        self.sw = sample_weights(model.loss.kind, y, class_weight, sample_weight, x.shape[0])
        self.train_idx, self.validation = self._split(validation_split, validation_data)
        self.batch_size, self.epochs, self.verbose = batch_size, epochs, verbose
        self.shuffle, self.augment, self.checkpoint = shuffle, augment, checkpoint
        self.labels_for_sampling = class_index(model.loss.kind, y[self.train_idx]) if oversample else None
        self.history = cbks.History()
        self.callbacks = [self.history] + list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, cbks.Callback):
                raise ConfigError(f"callbacks must be tinycnn Callback instances, got {type(cb).__name__}")
            cb.set_model(model)

    def _split(self, validation_split, validation_data):
        """(training indices, (x_val, y_val, sample_weight) or None)."""
        n = self.x.shape[0]
        train_idx = np.arange(n)
        if validation_data is None and validation_split > 0:
            n_val = int(n * validation_split)  # the last samples, before shuffling (Keras)
            if n_val == 0 or n_val == n:
                raise ConfigError(f"validation_split={validation_split} leaves no train or validation samples of {n}")
            validation_data = (self.x[n - n_val:], self.y[n - n_val:])
            train_idx = train_idx[: n - n_val]
        if validation_data is None:
            return train_idx, None
        if len(validation_data) not in (2, 3):
            raise ConfigError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
        vx, vy = self.model.prepare(validation_data[0], validation_data[1], "validation x")
        return train_idx, (vx, vy, validation_data[2] if len(validation_data) == 3 else None)

    def resume(self, path):
        """Continue from the checkpoint at ``path``; return the epoch to start at."""
        from .io import load_checkpoint

        if path is None:
            raise ConfigError("resume=True needs checkpoint=PATH")
        dist = self.model.distributed_fit
        if dist is not None and not dist.is_root:  # i14: rank 0 reads the checkpoint, start() broadcasts it
            return 0
        initial_epoch, saved_history = load_checkpoint(self.model, path)
        self.history.history = saved_history
        self.history.epoch = list(range(initial_epoch))
        return initial_epoch

    def run(self, initial_epoch):
        """The epochs from ``initial_epoch``, callbacks around them; returns the History."""
        self.model.history = self.history
        self.model.stop_training = False
        self._notify("on_train_begin")
        try:
            for epoch in range(initial_epoch, self.epochs):
                self.epoch(epoch)
                if self.model.stop_training:
                    break
        finally:
            self._notify("on_train_end")
        return self.history

    def _notify(self, event, *args):
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    def epoch(self, epoch):
        """One epoch: train on every batch, validate, tell the callbacks, print, checkpoint."""
        self._notify("on_epoch_begin", epoch)
        rng = generator()
        logs = self.train_epoch(self.order(rng), rng, epoch)
        if self.validation is not None:
            vlogs = self.model.evaluate_outputs(*self.validation, self.batch_size)
            logs.update({"val_" + k: v for k, v in vlogs.items()})
        self._notify("on_epoch_end", epoch, logs)
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()),
                  flush=True)
        dist = self.model.distributed_fit
        if self.checkpoint is not None and (dist is None or dist.is_root):  # i14: rank 0 writes for all
            from .io import save_checkpoint

            save_checkpoint(self.model, self.checkpoint, epoch + 1, self.history.history)

    def order(self, rng):
        """The training indices of this epoch, in the order they are visited."""
        if self.labels_for_sampling is not None:
            from .data import oversample_indices

            return self.train_idx[oversample_indices(self.labels_for_sampling, seed=int(rng.integers(2**31)))]
        return rng.permutation(self.train_idx) if self.shuffle else self.train_idx

    def batches(self, order, rng):
        """``(idx, x, y, sample_weight)`` of each training batch, augmented when asked."""
        model, size = self.model, self.batch_size
        dist = model.distributed_fit
        for b in range(-(-len(order) // size)):
            idx = np.sort(order[b * size:(b + 1) * size])  # sorted: fast memmap reads
            rows = None
            if dist is not None:  # i14: this MPI rank's share of the global batch
                idx, rows = dist.shard(idx)
            xb = batch(self.x, idx, model.dtype)
            if self.augment is not None:
                xb = np.ascontiguousarray(self.augment(xb, rng) if rows is None else  # i14: rows of the batch's draws
                                          dist.augment(self.augment, xb, rng, rows), dtype=model.dtype)
            swb = None if self.sw is None else self.sw[idx]
            if dist is not None:  # i14: weights times this rank's share: the ranks' gradients add up
                swb = dist.sample_weights(swb, len(idx))
            yield idx, xb, self.y[idx], swb

    def train_epoch(self, order, rng, epoch):
        """Train on every batch of ``order``; return the epoch's loss and metrics."""
        from tqdm.auto import tqdm

        model = self.model
        dist = model.distributed_fit
        n_batches = -(-len(order) // self.batch_size)
        total, seen, ys, ps = 0.0, 0, [], []
        bar = tqdm(total=n_batches, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="batch",
                   disable=self.verbose != 1, leave=False, dynamic_ncols=True)
        last_post = 0.0
        for b, (idx, xb, yb, swb) in enumerate(self.batches(order, rng)):
            loss, out = model.train_step(xb, yb, swb)
            n, real = (len(idx), slice(None)) if dist is None else dist.counts()  # i14: global batch, real rows
            total += loss * n
            seen += n
            ys.append(yb[real])
            ps.append(model.probabilities(backend.get().to_numpy(out))[real])
            self._notify("on_batch_end", b, {"loss": loss})
            bar.update(1)
            now = time.monotonic()
            if not bar.disable and (now - last_post > 0.5 or b == n_batches - 1):
                last_post = now
                metrics = model.metric_logs(np.concatenate(ys), np.concatenate(ps))
                post = {"loss": f"{total / seen:.4f}", **{k: f"{v:.4f}" for k, v in metrics.items()}}
                bar.set_postfix(post, refresh=False)
        bar.close()
        if dist is not None:  # i14: every MPI rank's samples, in one process's order
            ys, ps = dist.gather_epoch(ys, ps)
        logs = {"loss": total / seen}
        logs.update(model.metric_logs(np.concatenate(ys), np.concatenate(ps)))
        return logs
