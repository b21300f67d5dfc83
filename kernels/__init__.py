"""tinycnn's compute kernels: one contract, three backends.

This folder installs as ``tinycnn.kernels`` (setuptools ``package-dir``); it is never a
top-level ``kernels`` package (that name belongs to an unrelated PyPI project), so importing
it under any other name is refused below.

Backends
--------
``reference`` (NumPy, the documented formulas, the oracle), ``cpu`` (Numba, parallel),
``cuda`` (numba-cuda). Each module exposes every name in :data:`CONTRACT` with the same
signature. ``ctx`` values are opaque to callers: a backend keeps in them whatever its backward
needs (device arrays for ``cuda``).

Layout and dtypes: images are NHWC; kernels take float32 (normal work) or float64 (gradient
checks) and return arrays of the input's dtype (bool, integer and float16 inputs are computed
in float32; other operands are converted to the input's dtype). Kernel weights are
(KH, KW, C, F); dense weights are (D_in, D_out).

Arguments are checked once, by :mod:`.checks`, at the top of every contract function of every
backend: the same bad call raises the same tinycnn error, with the same message, everywhere
(``tests/test_backend_parity.py`` holds each backend to it). Below that line kernels trust
their arguments.

The contract (shapes use N, H, W, C, KH, KW, OH, OW, F):

- ``asarray(x, dtype=None)`` -> a backend array (host -> backend); ``to_numpy(a)`` -> numpy.
- ``conv2d_forward(x, w, b, stride, padding, activation) -> (y, ctx)``;
  x (N,H,W,C), w (KH,KW,C,F), b (F,) or None, stride (sh, sw), padding 'valid' | 'same',
  activation one of :data:`ELEMENTWISE` (applied after the bias, fused). y (N,OH,OW,F).
- ``conv2d_backward(dy, ctx, need_dx=True) -> (dx, dw, db)``; db is None when b was None;
  dx is None when ``need_dx`` is False (the first layer needs no input gradient).
- ``maxpool2d_forward(x, pool, stride, padding) -> (y, ctx)``; ``maxpool2d_backward(dy, ctx) -> dx``.
- ``global_avgpool_forward(x) -> (y, ctx)`` y (N,C); ``global_avgpool_backward(dy, ctx) -> dx``.
- ``dense_forward(x, w, b, activation) -> (y, ctx)`` x (N,D), w (D,U), b (U,) or None;
  ``dense_backward(dy, ctx, need_dx=True) -> (dx, dw, db)`` (dx None unless need_dx).
- ``activation_forward(x, kind, alpha=0.0) -> (y, ctx)``; kind in :data:`ACTIVATIONS`
  (softmax over the last axis); ``activation_backward(dy, ctx) -> dx``.
- ``batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum, epsilon, training,
  allreduce=None) -> (y, ctx)``: normalises over every axis but the last; in training, uses
  batch statistics and updates ``running_mean``/``running_var`` in place (Keras momentum
  convention: ``running = momentum * running + (1 - momentum) * batch``, batch variance
  biased). ``batchnorm_backward(dy, ctx) -> (dx, dgamma, dbeta)``.
  Synchronized batch normalisation (data parallelism): with ``allreduce``, training uses the
  statistics of the global batch, over every process. ``allreduce(arrays) -> arrays`` sums a
  list of float64 NumPy arrays over the processes (e.g. MPI Allreduce). It is called with
  ``[sum x, count]`` (per channel, shapes (C,) and (1,)) and then ``[sum (x - mean)**2]``
  (around the global mean) in the forward pass, and with ``[sum dy, sum dy * xhat, count]``
  in the backward pass, whose ``dx`` then uses the global sums; ``dgamma`` and ``dbeta``
  stay local (they are reduced with every other gradient).
- ``dropout_forward(x, rate, seed) -> (y, ctx)`` (inverted dropout, mask from
  ``numpy.random.default_rng(seed)``, ``keep = u >= rate`` with ``u`` float32 uniform of x's
  shape); ``dropout_backward(dy, ctx) -> dx``.
- ``loss_forward(kind, y_pred, y_true, sample_weight, from_logits, gamma=2.0, alpha=None)
  -> (loss, ctx)``: loss is a float, ``sum_i w_i * l_i / N`` (Keras "sum over batch size");
  ``loss_backward(ctx) -> d y_pred``. kind in :data:`LOSSES`; ``sample_weight`` (N,) or None.
  With from_logits the stable log-sum-exp forms are used.
- ``add(a, b) -> y``: ``y = a + b`` elementwise for two arrays of one shape (a residual
  connection; its backward passes ``dy`` to both inputs, and the gradients of a branch point
  are summed with ``add`` again).
- ``sgd_update(p, g, velocity, lr, momentum, nesterov)`` and
  ``adam_update(p, g, m, v, lr, beta_1, beta_2, epsilon, t)``: update in place, return None.
"""

if __name__ != "tinycnn.kernels":  # pragma: no cover - guard against a second copy
    raise ImportError(
        "the kernels folder must be imported as 'tinycnn.kernels' (install tinycnn with "
        "`pip install -e .`); importing it as a top-level 'kernels' would load a second copy "
        "and shadow the unrelated PyPI package of that name"
    )

#: activations a convolution or dense kernel applies itself (fused after the bias)
ELEMENTWISE = ("linear", "relu", "sigmoid", "tanh")
#: activations of ``activation_forward``
ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
#: how compiled kernels (Numba, CUDA) receive an activation: one small int, so that one
#: compiled specialisation serves every activation
ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4, "softmax": 5}
LOSSES = (
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "mse",
    "binary_focal_crossentropy",
)
#: how compiled kernels receive a loss kind
LOSS_CODES = {kind: code for code, kind in enumerate(LOSSES)}
#: Keras' backend epsilon: probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` in the losses
EPSILON = 1e-7

CONTRACT = (
    "asarray",
    "to_numpy",
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "global_avgpool_forward",
    "global_avgpool_backward",
    "dense_forward",
    "dense_backward",
    "activation_forward",
    "activation_backward",
    "batchnorm_forward",
    "batchnorm_backward",
    "dropout_forward",
    "dropout_backward",
    "add",
    "loss_forward",
    "loss_backward",
    "sgd_update",
    "adam_update",
)
