"""Sequential: a stack of layers with the Keras training API.

``compile`` picks the optimizer, loss and metrics; ``fit`` runs mini-batch training with
callbacks, validation, class weights, augmentation and checkpoints; ``evaluate`` and
``predict`` run inference. All array maths happens in the layers' backend kernels.
"""

import math
import time

import numpy as np

from . import backend
from . import callbacks as cbks
from . import layers as layers_mod
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .errors import ConfigError, DTypeError, InvalidValueError, ShapeError, TrainingError
from .kernels.reference import _act
from .layers import fused
from .random import generator

_FUSABLE = {
    "sigmoid": ("binary_crossentropy", "binary_focal_crossentropy"),
    "softmax": ("categorical_crossentropy", "sparse_categorical_crossentropy"),
}


def _check_x(x, input_shape, what="x"):
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


def _batch(x, idx, dtype, what="x"):
    xb = np.asarray(x[idx], dtype=dtype)
    if not np.isfinite(xb).all():
        bad = int(idx[np.flatnonzero(~np.isfinite(xb.reshape(len(idx), -1)).all(axis=1))[0]])
        raise InvalidValueError(f"{what} contains NaN or inf (first at sample {bad})")
    return xb


class Sequential:
    """A linear stack of layers (Keras API).

    >>> model = Sequential()
    >>> model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(64, 64, 1)))
    >>> model.add(Flatten()); model.add(Dense(1, activation='sigmoid'))
    >>> model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    """

    def __init__(self, layers=None, name="sequential"):
        self.name = name
        self.layers = []
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.metadata = {}
        self._backend = None
        self._dtype = np.dtype("float32")
        self._steps = []
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer):
        """Append a layer; shapes are inferred as soon as the input shape is known."""
        if not isinstance(layer, layers_mod.Layer):
            raise ConfigError(f"Sequential.add expects a tinycnn layer, got {type(layer).__name__}")
        if self.layers and layer.input_shape is not None and not layer.built:
            layer.input_shape = None  # only the first layer's input_shape counts (as in Keras)
        self.layers.append(layer)
        if self.layers[0].input_shape is not None:
            self.build()

    def pop(self):
        """Remove the last layer."""
        if not self.layers:
            raise ConfigError("pop() on an empty model")
        return self.layers.pop()

    @property
    def input_shape(self):
        return self.layers[0].input_shape if self.layers else None

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.layers and self.layers[-1].built else None

    @property
    def built(self):
        return bool(self.layers) and all(l.built for l in self.layers)

    def build(self, input_shape=None):
        """Create every layer's weights for examples of ``input_shape`` (no batch axis)."""
        if not self.layers:
            raise ConfigError("the model has no layers; add some before building it")
        if input_shape is None:
            input_shape = self.layers[0].input_shape
        if input_shape is None:
            raise ConfigError("the input shape is unknown: give input_shape= to the first layer")
        self._sync_backend()
        shape = tuple(int(d) for d in input_shape)
        for layer in self.layers:
            if not layer.built:
                layer.dtype = self._dtype
                layer.build(shape)
            elif tuple(layer.input_shape) != shape:
                raise ShapeError(
                    f"layer {layer.name!r} was built for inputs {layer.input_shape}, now gets {shape}"
                )
            shape = layer.output_shape
        self._backend = backend.get_backend()

    # ------------------------------------------------------------------ backends and dtypes
    def _sync_backend(self):
        """Move parameters and optimizer state when the active backend has changed."""
        now = backend.get_backend()
        if self._backend is None or self._backend == now:
            self._backend = now
            return
        old = backend._load(self._backend)[1]
        new = backend.get()

        def move(d):
            for k in d:
                d[k] = new.asarray(np.asarray(old.to_numpy(d[k])))

        for layer in self.layers:
            move(layer.params)
            move(getattr(layer, "state", {}))
            layer.grads = {k: None for k in layer.params}
        if self.optimizer is not None:
            for slots in self.optimizer.slots.values():
                move(slots)
        self._backend = now

    def set_dtype(self, dtype):
        """Work in ``dtype`` ('float32' normally, 'float64' for gradient checks)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise DTypeError(f"dtype must be float32 or float64, got {dtype}")
        self._dtype = dtype
        self._sync_backend()
        for layer in self.layers:
            layer.dtype = dtype
            if layer.built:
                layer.set_weights([w.astype(dtype) for w in layer.get_weights()])
        if self.optimizer is not None:
            self.optimizer.slots = {}
        return self

    @property
    def dtype(self):
        return self._dtype

    # ------------------------------------------------------------------ weights
    def count_params(self):
        return sum(l.count_params() for l in self.layers)

    def get_weights(self):
        """Every layer's weights as NumPy arrays, in layer order (Keras convention)."""
        self._sync_backend()
        return [w for l in self.layers for w in l.get_weights()]

    def set_weights(self, weights):
        self._sync_backend()
        weights = list(weights)
        n_needed = sum(len(l.get_weights()) for l in self.layers)
        if len(weights) != n_needed:
            raise ShapeError(f"the model has {n_needed} weight arrays, got {len(weights)}")
        i = 0
        for l in self.layers:
            n = len(l.get_weights())
            l.set_weights(weights[i : i + n])
            i += n

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn=print):
        """Print a Keras-like table: layer, output shape, parameter count, totals."""
        if not self.built:
            raise ConfigError("the model is not built yet: give input_shape= to the first layer")
        line = "_" * 72
        rows = [f'Model: "{self.name}"', line,
                f" {'Layer (type)':<32}{'Output Shape':<24}{'Param #':>12}", "=" * 72]
        for l in self.layers:
            shape = "(None, " + ", ".join(map(str, l.output_shape)) + ")"
            rows.append(f" {l.name + ' (' + type(l).__name__ + ')':<32}{shape:<24}{l.count_params():>12,}")
        total = self.count_params()
        non_trainable = sum(int(np.prod(s.shape)) for l in self.layers
                            for s in getattr(l, "state", {}).values())
        rows += ["=" * 72, f"Total params: {total + non_trainable:,}",
                 f"Trainable params: {total:,}", f"Non-trainable params: {non_trainable:,}", line]
        print_fn("\n".join(rows))

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer ('sgd', 'adam' or an instance), the loss and the metrics."""
        if optimizer == "rmsprop":
            raise ConfigError("optimizer 'rmsprop' is not implemented; use 'adam' or 'sgd'")
        if loss is None:
            raise ConfigError("compile() needs a loss, e.g. loss='binary_crossentropy'")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, dict)) or callable(metrics):
            metrics = [metrics]
        if metrics:
            from . import metrics as metrics_mod

            self.metrics = [metrics_mod.get(m, loss=self.loss.kind) for m in metrics]
        else:
            self.metrics = []
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ConfigError(f"metric names must be unique, got {names}")
        self.compiled = True

    def _require_compiled(self, what):
        if not self.compiled:
            raise ConfigError(f"call compile(optimizer=..., loss=...) before {what}()")

    @property
    def _fused(self):
        """True when the last activation and the loss are computed together from logits
        (sigmoid + binary cross-entropy, softmax + categorical cross-entropy): stable, no log(0)."""
        last = self.layers[-1]
        act = getattr(last, "activation", None) if last.has_activation else None
        return (not self.loss.from_logits) and self.loss.kind in _FUSABLE.get(act, ())

    def _output_activation(self):
        """Activation that turns the training output into probabilities (for metrics)."""
        if self._fused:
            return self.layers[-1].activation
        if self.loss.from_logits:
            return "softmax" if self.loss.kind in _FUSABLE["softmax"] else "sigmoid"
        return None

    # ------------------------------------------------------------------ steps
    def _forward(self, x, training, logits=False, whole_pass=False):
        """Run the layers. ``whole_pass`` (a training step, or inference): follow
        :func:`~tinycnn.layers.fused.plan` (fused steps, kept in ``self._steps`` for the
        backward loop), and in inference drop each step's backward context as soon as it is
        done, so that ``predict`` keeps nothing that only backward needs."""
        steps = fused.plan(self.layers, self._dtype) if whole_pass else self.layers
        self._steps = steps
        last = len(steps) - 1
        for i, step in enumerate(steps):
            if logits and i == last:
                x = step.forward(x, training=training, logits=True)
            else:
                x = step.forward(x, training=training)
            if whole_pass and not training:
                step._ctx = None
        return x

    def _loss(self, out, y, sw):
        B = backend.get()
        y = B.asarray(y, dtype=self._dtype)
        sw = None if sw is None else B.asarray(sw, dtype=self._dtype)
        from_logits = self._fused or self.loss.from_logits
        return B.loss_forward(self.loss.kind, out, y, sw, from_logits, **self.loss.kernel_args())

    def _train_step(self, xb, yb, swb):
        B = backend.get()
        out = self._forward(B.asarray(xb), training=True, logits=self._fused, whole_pass=True)
        loss, lctx = self._loss(out, yb, swb)
        if not math.isfinite(loss):
            # the update is not applied: the weights stay those of the last good step
            raise TrainingError(
                f"the loss became {loss} at optimizer step {self.optimizer.iterations + 1}; "
                "training stopped and the weights of the last good step are kept "
                "(try a lower learning rate, or check the data for extreme values)"
            )
        d = B.loss_backward(lctx)
        for i in range(len(self._steps) - 1, -1, -1):
            d = self._steps[i].backward(d, need_dx=i > 0)
        self.optimizer.apply(self.layers)
        return loss, B.to_numpy(out)

    def _prepare(self, x, y, what="x"):
        if not self.layers:
            raise ConfigError("the model has no layers")
        x = _check_x(x, self.input_shape, what)
        if not self.built:
            self.build(tuple(x.shape[1:]))
        self._sync_backend()
        if y is None:
            return x, None
        y = self.loss.check_targets(y, (None,) + tuple(self.output_shape))
        if len(y) != x.shape[0]:
            raise ShapeError(f"{what} has {x.shape[0]} samples but the labels have {len(y)}")
        return x, y

    def _sample_weights(self, y, class_weight, sample_weight, n):
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
                raise InvalidValueError(f"sample_weight must be {n} finite values >= 0")
        if class_weight is None:
            return w
        cls = self._class_index(y)
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ConfigError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
            counts = np.bincount(cls)
            present = counts > 0
            cw = np.zeros(len(counts))
            cw[present] = len(cls) / (present.sum() * counts[present])
        elif isinstance(class_weight, dict):
            K = max(int(cls.max()) + 1, max((int(k) for k in class_weight), default=0) + 1)
            cw = np.ones(K)
            for k, v in class_weight.items():
                if not (isinstance(v, (int, float, np.number)) and v >= 0):
                    raise ConfigError(f"class_weight[{k!r}] must be a number >= 0, got {v!r}")
                cw[int(k)] = float(v)
        else:
            raise ConfigError(f"class_weight must be a dict or 'balanced', got {type(class_weight).__name__}")
        cw_s = cw[cls]
        return cw_s if w is None else w * cw_s

    def _class_index(self, y):
        if self.loss.kind == "sparse_categorical_crossentropy":
            return y.astype(np.int64)
        if y.shape[1] == 1:
            return (y[:, 0] > 0.5).astype(np.int64)
        return y.argmax(axis=1)

    # ------------------------------------------------------------------ metrics
    def _metric_logs(self, y, probs, prefix=""):
        logs = {}
        for m in self.metrics:
            try:
                logs[prefix + m.name] = float(m(y, probs))
            except InvalidValueError:
                logs[prefix + m.name] = float("nan")  # e.g. AUC of a batch with one class
        return logs

    def _probs(self, out):
        act = self._output_activation()
        return _act(out, act) if act else out

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, augment=None, oversample=False,
            checkpoint=None, resume=None):
        """Train for ``epochs`` epochs; return a :class:`~tinycnn.callbacks.History`.

        Parameters beyond Keras'
        ------------------------
        augment : callable ``f(x_batch, rng) -> x_batch``, optional
            Applied to each training batch (e.g. :class:`tinycnn.data.Augmenter`).
        oversample : bool
            Repeat minority-class samples each epoch so classes are balanced.
        checkpoint : path, optional
            Written atomically at the end of every epoch with the optimizer and random state.
        resume : path or True, optional
            Continue from a checkpoint (True: the ``checkpoint`` path) at its next epoch; the
            result equals an uninterrupted run with the same seed.
        """
        self._require_compiled("fit")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ConfigError(f"epochs must be a non-negative int, got {epochs!r}")
        if (isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.floating))
                or not 0 <= validation_split < 1):
            raise ConfigError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        if y is None:
            raise ConfigError("fit() needs labels y")
        x, y = self._prepare(x, y)
        n = x.shape[0]
        sw = self._sample_weights(y, class_weight, sample_weight, n)
        train_idx = np.arange(n)
        if validation_data is None and validation_split > 0:
            n_val = int(n * validation_split)  # the last samples, before shuffling (Keras)
            if n_val == 0 or n_val == n:
                raise ConfigError(f"validation_split={validation_split} leaves no train or validation samples of {n}")
            validation_data = (x[n - n_val:], y[n - n_val:])
            train_idx = train_idx[: n - n_val]
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise ConfigError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
            vx, vy = self._prepare(validation_data[0], validation_data[1], "validation x")
            vsw = validation_data[2] if len(validation_data) == 3 else None

        history = cbks.History()
        cb_list = [history] + list(callbacks or [])
        for cb in cb_list:
            if not isinstance(cb, cbks.Callback):
                raise ConfigError(f"callbacks must be tinycnn Callback instances, got {type(cb).__name__}")
            cb.set_model(self)
        if resume is not None and resume is not False:
            from .io import load_checkpoint

            path = checkpoint if resume is True else resume
            if path is None:
                raise ConfigError("resume=True needs checkpoint=PATH")
            initial_epoch, saved_history = load_checkpoint(self, path)
            history.history = saved_history
            history.epoch = list(range(initial_epoch))
        self.history = history
        self.stop_training = False
        for cb in cb_list:
            cb.on_train_begin()
        labels_for_sampling = self._class_index(y[train_idx]) if oversample else None
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in cb_list:
                    cb.on_epoch_begin(epoch)
                rng = generator()
                if oversample:
                    from .data import oversample_indices

                    order = train_idx[oversample_indices(labels_for_sampling, seed=int(rng.integers(2**31)))]
                else:
                    order = rng.permutation(train_idx) if shuffle else train_idx
                logs = self._run_epoch(x, y, sw, order, batch_size, augment, rng, epoch, epochs, verbose, cb_list)
                if validation_data is not None:
                    vlogs = self._evaluate_logs(vx, vy, vsw, batch_size)
                    logs.update({"val_" + k: v for k, v in vlogs.items()})
                for cb in cb_list:
                    cb.on_epoch_end(epoch, logs)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()),
                          flush=True)
                if checkpoint is not None:
                    from .io import save_checkpoint

                    save_checkpoint(self, checkpoint, epoch + 1, history.history)
                if self.stop_training:
                    break
        finally:
            for cb in cb_list:
                cb.on_train_end()
        return history

    def _run_epoch(self, x, y, sw, order, batch_size, augment, rng, epoch, epochs, verbose, cb_list):
        from tqdm.auto import tqdm

        n = len(order)
        n_batches = -(-n // batch_size)
        total, seen = 0.0, 0
        ys, ps = [], []
        bar = tqdm(total=n_batches, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                   disable=verbose != 1, leave=False, dynamic_ncols=True)
        last_post = 0.0
        for b in range(n_batches):
            idx = np.sort(order[b * batch_size:(b + 1) * batch_size])  # sorted: fast memmap reads
            xb = _batch(x, idx, self._dtype)
            if augment is not None:
                xb = np.ascontiguousarray(augment(xb, rng), dtype=self._dtype)
            swb = None if sw is None else sw[idx]
            loss, out = self._train_step(xb, y[idx], swb)
            k = len(idx)
            total += loss * k
            seen += k
            ys.append(y[idx])
            ps.append(self._probs(out))
            for cb in cb_list:
                cb.on_batch_end(b, {"loss": loss})
            bar.update(1)
            now = time.monotonic()
            if not bar.disable and (now - last_post > 0.5 or b == n_batches - 1):
                last_post = now
                post = {"loss": f"{total / seen:.4f}"}
                post.update({k2: f"{v:.4f}" for k2, v in
                             self._metric_logs(np.concatenate(ys), np.concatenate(ps)).items()})
                bar.set_postfix(post, refresh=False)
        bar.close()
        logs = {"loss": total / seen}
        logs.update(self._metric_logs(np.concatenate(ys), np.concatenate(ps)))
        return logs

    # ------------------------------------------------------------------ inference
    def _predict_raw(self, x, batch_size, training_output):
        """Outputs for every sample: logits when ``training_output`` and the loss is fused."""
        B = backend.get()
        outs = []
        fused = training_output and self._fused
        for s in range(0, x.shape[0], batch_size):
            idx = np.arange(s, min(s + batch_size, x.shape[0]))
            xb = _batch(x, idx, self._dtype)
            out = self._forward(B.asarray(xb), training=False, logits=fused, whole_pass=True)
            outs.append(np.array(B.to_numpy(out)))
        return np.concatenate(outs)

    def predict(self, x, batch_size=32, verbose=0):
        """Model outputs (probabilities for sigmoid/softmax heads), as a NumPy array."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        x, _ = self._prepare(x, None)
        return self._predict_raw(x, batch_size, training_output=False)

    def _evaluate_logs(self, x, y, sample_weight, batch_size):
        out = self._predict_raw(x, batch_size, training_output=True)
        w = self._sample_weights(y, None, sample_weight, len(y))
        B = backend.get()
        loss, _ = self._loss(B.asarray(out), y, w)
        logs = {"loss": loss}
        logs.update(self._metric_logs(y, self._probs(out)))
        return logs

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, sample_weight=None, return_dict=False):
        """Loss and metrics on (x, y): a scalar loss without metrics, else ``[loss, *metrics]``
        (Keras convention); a dict with ``return_dict=True``."""
        self._require_compiled("evaluate")
        if y is None:
            raise ConfigError("evaluate() needs labels y")
        x, y = self._prepare(x, y)
        logs = self._evaluate_logs(x, y, sample_weight, batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
        if return_dict:
            return logs
        vals = list(logs.values())
        return vals[0] if len(vals) == 1 else vals

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer step on one batch; returns the batch loss."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y)
        idx = np.arange(x.shape[0])
        sw = self._sample_weights(y, class_weight, sample_weight, len(y))
        loss, _ = self._train_step(_batch(x, idx, self._dtype), y, sw)
        return loss

    def predict_on_batch(self, x):
        x, _ = self._prepare(x, None)
        return self._predict_raw(x, x.shape[0], training_output=False)

    # ------------------------------------------------------------------ config and files
    def get_config(self):
        return {"name": self.name,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers]}

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name", "sequential"))
        for spec in config["layers"]:
            model.add(layers_mod.get(spec["class_name"]).from_config(dict(spec["config"])))
        return model

    def save(self, filepath, include_optimizer=True):
        """Write architecture, weights, compile settings and optimizer state to one file
        (a NumPy ``.npz`` container, read back with ``allow_pickle=False``), atomically."""
        from .io import save_model

        save_model(self, filepath, include_optimizer=include_optimizer)

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers>"


def load_model(filepath, compile=True):
    """Load a model written by :meth:`Sequential.save` (never unpickles)."""
    from .io import load_model as _load

    return _load(filepath, compile=compile)
