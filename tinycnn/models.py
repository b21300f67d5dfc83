"""Sequential: a stack of layers with the Keras training API.

``compile`` picks the optimizer, loss and metrics; ``fit`` runs mini-batch training with
callbacks, validation, class weights, augmentation and checkpoints (its parts are in
:mod:`tinycnn.training`); ``evaluate`` and ``predict`` run inference. All array maths happens
in the layers' backend kernels.

Model internals
---------------
Training, explanations (:mod:`tinycnn.explain`), gradient checks (:mod:`tinycnn.gradcheck`)
and model files (:mod:`tinycnn.io`) reach into a model only through these documented methods
(arrays are backend arrays unless said otherwise):

- ``prepare(x, y=None, what="x") -> (x, y)``: check a batch source (and labels) against the
  model, build it for the inputs if needed, move its weights to the active backend.
- ``sync_backend()``: move parameters, layer state and optimizer state to the active backend.
- ``forward(x, training=False, logits=False, start=0, stop=None, whole_pass=False)``: run
  ``layers[start:stop]``. With ``logits``, the model's last layer (when in the range and
  ``has_activation``) returns its output before the activation: the class scores, which the
  fused loss reads. ``whole_pass`` (training steps and ``predict``): the whole model, run as
  :func:`tinycnn.layers.fused.plan` says (e.g. Conv2D + MaxPooling2D as one op on the ``cpu``
  backend, same numbers); in inference nothing for backward is kept.
- ``backward(dy, start=0, stop=None, need_dx=True, whole_pass=False)``: the reverse of
  ``forward`` over the same range (or the steps of the last whole pass); each layer stores its
  parameter gradients in ``layer.grads``; returns the gradient with respect to the input of
  ``layers[start]``.
- ``fused_loss``: True when training feeds the last layer's logits to the loss (sigmoid +
  binary cross-entropy, softmax + categorical cross-entropy: stable, no log(0)).
- ``compute_loss(out, y, sample_weight=None) -> (loss, d_out)``: the loss of a training output
  (float) and its gradient.
- ``train_step(x, y, sample_weight=None) -> (loss, out)``: one optimizer step, in this order:
  ``forward`` (training) -> ``compute_loss`` -> finite check -> ``backward`` -> every hook in
  ``gradient_hooks`` (all gradients are ready in ``layer.grads``: the place to average them
  across processes) -> ``optimizer.apply``.
- ``gradient_hooks``: a list of callables ``hook(model)``, called by every ``train_step``.
  With ``BatchNormalization(synchronized=True)`` layers whose ``allreduce`` is set, the batch
  statistics are those of every process's batch (see :mod:`tinycnn.layers.normalization`):
  together, the two hooks make N replicas on N slices take the step of one model on the
  whole batch (``tests/test_model_internals.py`` shows it with threads).
- ``probabilities(out)``, ``metric_logs(y, probs)``, ``predict_outputs(x, batch_size,
  training_output)``, ``evaluate_outputs(x, y, sample_weight, batch_size)``: host-side helpers
  of fit, evaluate and predict.
- ``preserved()``: a context in which passes leave every layer's ``grads`` and backward
  context as they were.
- ``distributed_fit``: during a ``fit`` over MPI ranks, its
  :class:`~tinycnn.distributed.session.FitSession` (else None); ``fit``, ``backward``,
  ``train_step``, ``evaluate_outputs`` and :class:`tinycnn.training.Fit` call it at the lines
  marked ``# i14``.
"""

import contextlib
import math

import numpy as np

from . import backend
from . import distributed as dist_mod
from . import layers as layers_mod
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import training as tr
from .errors import ConfigError, DTypeError, InvalidValueError, ShapeError, TrainingError
from .kernels import reference
from .layers import fused

_FUSABLE = {
    "sigmoid": ("binary_crossentropy", "binary_focal_crossentropy"),
    "softmax": ("categorical_crossentropy", "sparse_categorical_crossentropy"),
}


class Sequential:
    """A linear stack of layers (Keras API).

    >>> model = Sequential()
    >>> model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(64, 64, 1)))
    >>> model.add(Flatten()); model.add(Dense(1, activation='sigmoid'))
    >>> model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    """

    #: i14: the MPI side of a running distributed fit (tinycnn.distributed.session.FitSession), or None
    distributed_fit = None

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
        self.gradient_hooks = []
        self._backend = None
        self._dtype = np.dtype("float32")
        self._pass_steps = []  # the steps of the last whole-model forward pass (see forward)
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
        self.sync_backend()
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
    def sync_backend(self):
        """Move parameters, layer state and optimizer state to the active backend, if it has
        changed since the model last ran."""
        now = backend.get_backend()
        if self._backend is None or self._backend == now:
            self._backend = now
            return
        old = backend.load(self._backend)
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
        self.sync_backend()
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
        self.sync_backend()
        return [w for l in self.layers for w in l.get_weights()]

    def set_weights(self, weights):
        self.sync_backend()
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

    # ------------------------------------------------------------------ model internals
    def prepare(self, x, y=None, what="x"):
        """Check a batch source ``x`` (array, memmap or lazy dataset, NHWC) and labels ``y``
        against the model; build the model for x's example shape if needed and move its
        weights to the active backend. Returns ``(x, y)``, y as checked by the loss (None when
        not given; labels need a compiled model)."""
        if not self.layers:
            raise ConfigError("the model has no layers")
        x = tr.check_inputs(x, self.input_shape, what)
        if not self.built:
            self.build(tuple(x.shape[1:]))
        self.sync_backend()
        if y is None:
            return x, None
        y = self.loss.check_targets(y, (None,) + tuple(self.output_shape))
        if len(y) != x.shape[0]:
            raise ShapeError(f"{what} has {x.shape[0]} samples but the labels have {len(y)}")
        return x, y

    @property
    def fused_loss(self):
        """True when the last activation and the loss are computed together from logits
        (sigmoid + binary cross-entropy, softmax + categorical cross-entropy): stable, no log(0)."""
        last = self.layers[-1]
        act = getattr(last, "activation", None) if last.has_activation else None
        return (not self.loss.from_logits) and self.loss.kind in _FUSABLE.get(act, ())

    def forward(self, x, training=False, logits=False, start=0, stop=None, whole_pass=False):
        """Run ``layers[start:stop]`` (Python slice rules) on the backend array ``x``.

        ``logits``: the model's last layer, when in the range and it has an activation
        (``has_activation``), returns its output before that activation.
        ``whole_pass`` (a training step or ``predict``; the whole model): run the steps of
        :func:`tinycnn.layers.fused.plan` (same numbers, fewer passes over memory), remembered
        for :meth:`backward` with ``whole_pass=True``; in inference, each step drops what only
        backward needs as soon as it is done. Code that drives layers one by one (explanations,
        gradient checks) leaves it False and sees every layer.
        """
        if whole_pass and (start, stop) != (0, None):
            raise ConfigError("whole_pass runs the whole model: start=0, stop=None")
        steps = fused.plan(self.layers, self._dtype) if whole_pass else self.layers[start:stop]
        self._pass_steps = steps
        last = self.layers[-1]
        for step in steps:
            if logits and step is last and last.has_activation:
                x = step.forward(x, training=training, logits=True)
            else:
                x = step.forward(x, training=training)
            if whole_pass and not training:
                step.release_context()
        return x

    def backward(self, dy, start=0, stop=None, need_dx=True, whole_pass=False):
        """Backpropagate ``dy``, the gradient with respect to the output of ``layers[stop - 1]``,
        through ``layers[start:stop]`` in reverse. Each layer stores its parameter gradients in
        ``layer.grads``. Returns the gradient with respect to the input of ``layers[start]``,
        or None with ``need_dx=False`` (that first layer then skips computing it).
        ``whole_pass``: through the steps of the last ``forward(..., whole_pass=True)``."""
        steps = self._pass_steps if whole_pass else self.layers[start:stop]
        for i in reversed(range(len(steps))):
            dy = steps[i].backward(dy, need_dx=need_dx or i != 0)
            if self.distributed_fit is not None:  # i14: start summing the now final gradients over MPI ranks
                self.distributed_fit.step_done(steps[i])
        return dy

    def compute_loss(self, out, y, sample_weight=None):
        """``(loss, d_out)``: the loss (a float, Keras' "sum over batch size") of the training
        output ``out`` (logits when ``fused_loss``) against labels ``y``, and its gradient."""
        B = backend.get()
        y = B.asarray(y, dtype=self._dtype)
        sw = None if sample_weight is None else B.asarray(sample_weight, dtype=self._dtype)
        from_logits = self.fused_loss or self.loss.from_logits
        loss, ctx = B.loss_forward(self.loss.kind, out, y, sw, from_logits, **self.loss.kernel_args())
        return loss, B.loss_backward(ctx)

    def train_step(self, x, y, sample_weight=None):
        """One optimizer step on a batch: forward (training), loss, backward, the gradient hooks,
        the optimizer update. Returns ``(loss, out)``, out the training output (backend array).

        Raises
        ------
        TrainingError
            When the loss is not finite; no update is applied, the weights stay those of the
            last good step.
        """
        out = self.forward(backend.get().asarray(x), training=True, logits=self.fused_loss, whole_pass=True)
        loss, d_out = self.compute_loss(out, y, sample_weight)
        if self.distributed_fit is not None:  # i14: the global batch's loss, so every MPI rank stops together
            loss = self.distributed_fit.global_loss(loss)
        if not math.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss} at optimizer step {self.optimizer.iterations + 1}; "
                "training stopped and the weights of the last good step are kept "
                "(try a lower learning rate, or check the data for extreme values)"
            )
        self.backward(d_out, need_dx=False, whole_pass=True)
        for hook in self.gradient_hooks:
            hook(self)
        self.optimizer.apply(self.layers)
        return loss, out

    @contextlib.contextmanager
    def preserved(self):
        """Run passes inside without leaving a trace in any layer (see :meth:`Layer.preserved`)."""
        with contextlib.ExitStack() as stack:
            for layer in self.layers:
                stack.enter_context(layer.preserved())
            yield self

    def _output_activation(self):
        """Activation that turns the training output into probabilities (for metrics)."""
        if self.fused_loss:
            return self.layers[-1].activation
        if self.loss.from_logits:
            return "softmax" if self.loss.kind in _FUSABLE["softmax"] else "sigmoid"
        return None

    def probabilities(self, out):
        """Probabilities (host array) from training outputs ``out`` (host array)."""
        act = self._output_activation()
        return reference.activation_forward(out, act)[0] if act else out

    def metric_logs(self, y, probs, prefix=""):
        """``{prefix + name: value}`` of the compiled metrics (NaN where one is undefined)."""
        logs = {}
        for m in self.metrics:
            try:
                logs[prefix + m.name] = float(m(y, probs))
            except InvalidValueError:
                logs[prefix + m.name] = float("nan")  # e.g. AUC of a batch with one class
        return logs

    def predict_outputs(self, x, batch_size, training_output=False):
        """Outputs (host array) for every sample of a prepared ``x``, in inference mode; the
        training output (logits when ``fused_loss``) with ``training_output``."""
        B = backend.get()
        outs = []
        logits = training_output and self.fused_loss
        for s in range(0, x.shape[0], batch_size):
            xb = tr.batch(x, np.arange(s, min(s + batch_size, x.shape[0])), self._dtype)
            outs.append(np.array(B.to_numpy(self.forward(B.asarray(xb), logits=logits, whole_pass=True))))
        return np.concatenate(outs)

    def evaluate_outputs(self, x, y, sample_weight, batch_size):
        """Loss and metrics (a dict) on prepared ``x``, ``y``."""
        dist = self.distributed_fit
        predict = self.predict_outputs if dist is None else dist.predict_outputs  # i14: rows split over MPI ranks
        out = predict(x, batch_size, training_output=True)
        w = tr.sample_weights(self.loss.kind, y, None, sample_weight, len(y))
        loss, _ = self.compute_loss(backend.get().asarray(out), y, w)
        return {"loss": loss, **self.metric_logs(y, self.probabilities(out))}

    # ------------------------------------------------------------------ fit
    @dist_mod.collective_fit  # i14: under mpiexec, fit is collective (adds distributed=None|True|False)
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
        distributed : bool, optional
            Under ``mpiexec``/``srun`` with several processes (default None) or with True,
            train on every process together, ``batch_size`` being the global batch
            (:mod:`tinycnn.distributed`); False trains one model per process.
        """
        self._require_compiled("fit")
        tr.check_fit_arguments(batch_size, epochs, validation_split, y)
        run = tr.Fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                           shuffle, class_weight, sample_weight, augment, oversample, checkpoint)
        if resume is not None and resume is not False:
            initial_epoch = run.resume(checkpoint if resume is True else resume)
        if self.distributed_fit is not None:  # i14: rank 0's weights, optimizer, random state, history to all
            initial_epoch = self.distributed_fit.start(run.history, initial_epoch)
        return run.run(initial_epoch)

    # ------------------------------------------------------------------ inference
    def predict(self, x, batch_size=32, verbose=0):
        """Model outputs (probabilities for sigmoid/softmax heads), as a NumPy array."""
        tr.positive_int(batch_size, "batch_size")
        x, _ = self.prepare(x, None)
        return self.predict_outputs(x, batch_size)

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, sample_weight=None, return_dict=False):
        """Loss and metrics on (x, y): a scalar loss without metrics, else ``[loss, *metrics]``
        (Keras convention); a dict with ``return_dict=True``."""
        self._require_compiled("evaluate")
        if y is None:
            raise ConfigError("evaluate() needs labels y")
        x, y = self.prepare(x, y)
        logs = self.evaluate_outputs(x, y, sample_weight, batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
        if return_dict:
            return logs
        vals = list(logs.values())
        return vals[0] if len(vals) == 1 else vals

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer step on one batch; returns the batch loss."""
        self._require_compiled("train_on_batch")
        x, y = self.prepare(x, y)
        sw = tr.sample_weights(self.loss.kind, y, class_weight, sample_weight, len(y))
        loss, _ = self.train_step(tr.batch(x, np.arange(x.shape[0]), self._dtype), y, sw)
        return loss

    def predict_on_batch(self, x):
        x, _ = self.prepare(x, None)
        return self.predict_outputs(x, x.shape[0])

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

    def export(self, filepath, format="onnx"):
        """Write the model for inference stacks without tinycnn (Keras 3's spelling).

        ``format='onnx'``: an ONNX file that ONNX Runtime runs as :meth:`predict` does, input
        float32 (N, H, W, C); needs ``pip install "tinycnn[onnx]"``. See :mod:`tinycnn.export`.
        """
        from .export import export_model

        export_model(self, filepath, format=format)

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers>"


def load_model(filepath, compile=True):
    """Load a model written by :meth:`Sequential.save` (never unpickles)."""
    from .io import load_model as _load

    return _load(filepath, compile=compile)
