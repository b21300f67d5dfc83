"""The reference backend: plain NumPy, one documented formula per operation.

This module is the oracle. It favours readability over speed; the ``cpu`` (Numba) and
``cuda`` backends are tested for agreement with it, and gradient checks run against it in
float64. Every function follows the contract in :mod:`tinycnn.kernels`.

Notation: images are NHWC, ``x[n, i, j, c]``; kernels are ``w[p, q, c, o]`` (KH, KW, C, F);
``s`` is the stride, ``pad`` the padding before the first row/column. Gradients of a scalar
loss L are written ``dy = dL/dy``, ``dx = dL/dx`` and so on.
"""

import numpy as np

from . import EPSILON, checks


def _arrays(dtype, *arrays):
    """Each array as a NumPy array of ``dtype`` (None stays None)."""
    return [None if a is None else np.asarray(a, dtype=dtype) for a in arrays]


# --------------------------------------------------------------------------- arrays
def asarray(x, dtype=None):
    """Return ``x`` as a C-contiguous NumPy array (host memory is this backend's memory)."""
    return np.ascontiguousarray(x, dtype=dtype)


def to_numpy(a):
    """Return ``a`` as a NumPy array."""
    return np.asarray(a)


# --------------------------------------------------------------------------- im2col
def im2col(x, KH, KW, stride, pads):
    """Unfold every KH x KW window of ``x`` into one row.

    Parameters
    ----------
    x : (N, H, W, C) array
    KH, KW : int, window size
    stride : (sh, sw)
    pads : (pt, pb, pl, pr), zero padding on each side

    Returns
    -------
    cols : (N * OH * OW, KH * KW * C) array
        ``cols[(n*OH + i)*OW + j, (p*KW + q)*C + c] = xpad[n, i*sh + p, j*sw + q, c]``,
        so that ``cols @ w.reshape(KH*KW*C, F)`` is the convolution (channels last keeps each
        window's C values contiguous).
    OH, OW : int
    """
    N, H, W, C = x.shape
    sh, sw = stride
    pt, pb, pl, pr = pads
    OH = (H + pt + pb - KH) // sh + 1
    OW = (W + pl + pr - KW) // sw + 1
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = np.empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for p in range(KH):
        for q in range(KW):
            cols[:, :, :, p, q, :] = xp[:, p : p + sh * OH : sh, q : q + sw * OW : sw, :]
    return cols.reshape(N * OH * OW, KH * KW * C), OH, OW


def col2im(cols, x_shape, KH, KW, stride, pads):
    """Fold rows back into an image, summing where windows overlap (the adjoint of im2col).

    ``dx[n, i*sh + p - pt, j*sw + q - pl, c] += cols[(n*OH + i)*OW + j, (p*KW + q)*C + c]``
    for every window position (i, j) and offset (p, q) that lands inside the image.
    """
    N, H, W, C = x_shape
    sh, sw = stride
    pt, pb, pl, pr = pads
    OH = (H + pt + pb - KH) // sh + 1
    OW = (W + pl + pr - KW) // sw + 1
    cols = cols.reshape(N, OH, OW, KH, KW, C)
    dxp = np.zeros((N, H + pt + pb, W + pl + pr, C), dtype=cols.dtype)
    for p in range(KH):
        for q in range(KW):
            dxp[:, p : p + sh * OH : sh, q : q + sw * OW : sw, :] += cols[:, :, :, p, q, :]
    return dxp[:, pt : pt + H, pl : pl + W, :]


# --------------------------------------------------------------------------- activations
def _act(z, kind, alpha=0.0):
    if kind == "linear":
        return z
    if kind == "relu":
        return np.maximum(z, 0)
    if kind == "leaky_relu":
        return np.where(z > 0, z, alpha * z).astype(z.dtype, copy=False)
    if kind == "sigmoid":
        # exp of a non-positive number only, so no overflow for large |z|
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)
    if kind == "tanh":
        return np.tanh(z)
    if kind == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {kind!r}")


def _act_grad(dy, z, y, kind, alpha=0.0):
    """dL/dz from dL/dy for ``y = act(z)``.

    relu: ``dy * [z > 0]``; leaky_relu: ``dy * (1 if z > 0 else alpha)``;
    sigmoid: ``dy * y * (1 - y)``; tanh: ``dy * (1 - y**2)``;
    softmax (last axis): ``y * (dy - sum_k dy_k y_k)``.
    """
    if kind == "linear":
        return dy
    if kind == "relu":
        return dy * (z > 0)
    if kind == "leaky_relu":
        return dy * np.where(z > 0, 1, alpha).astype(dy.dtype)
    if kind == "sigmoid":
        return dy * y * (1 - y)
    if kind == "tanh":
        return dy * (1 - y * y)
    if kind == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {kind!r}")


def activation_forward(x, kind, alpha=0.0):
    """``y = act(x)`` elementwise (softmax: over the last axis)."""
    dt, kind = checks.activation_args(x, kind)
    (x,) = _arrays(dt, x)
    y = _act(x, kind, dt.type(alpha))
    return y, (x, y, kind, dt.type(alpha))


def activation_backward(dy, ctx):
    """``dx = dy * act'(x)`` (see :func:`_act_grad` for each kind)."""
    x, y, kind, alpha = ctx
    checks.grad(dy, y.shape)
    return _act_grad(np.asarray(dy, y.dtype), x, y, kind, alpha)


# --------------------------------------------------------------------------- convolution
def conv2d_forward(x, w, b, stride, padding, activation="linear"):
    """2-D convolution (cross-correlation), NHWC, with bias and activation.

    ``z[n,i,j,o] = b[o] + sum_{p,q,c} x[n, i*sh + p - pt, j*sw + q - pl, c] * w[p,q,c,o]``
    (x is zero outside the image), ``y = act(z)``. Computed as ``im2col(x) @ W`` with
    ``W = w.reshape(KH*KW*C, F)``: one GEMM.

    Output size: 'valid' ``OH = (H - KH) // sh + 1``; 'same' ``OH = ceil(H / sh)`` with the
    padding split as in TensorFlow (smaller half before). Likewise for W.
    """
    dt, (stride, pads, _, _), activation = checks.conv2d(x, w, b, stride, padding, activation)
    x, w, b = _arrays(dt, x, w, b)
    N, H, W_, C = x.shape
    KH, KW, _, F = w.shape
    cols, OH, OW = im2col(x, KH, KW, stride, pads)
    z = cols @ w.reshape(KH * KW * C, F)
    if b is not None:
        z += b
    y = _act(z, activation).reshape(N, OH, OW, F)
    ctx = (x.shape, cols, w, b is not None, z, y, stride, pads, activation)
    return y, ctx


def conv2d_backward(dy, ctx, need_dx=True):
    """Gradients of :func:`conv2d_forward`.

    With ``dz = dy * act'(z)``:
    ``db[o] = sum_{n,i,j} dz[n,i,j,o]``;
    ``dw[p,q,c,o] = sum_{n,i,j} x[n, i*sh+p-pt, j*sw+q-pl, c] * dz[n,i,j,o]``  (``cols.T @ dz``);
    ``dx[n,h,v,c] = sum over (i,j,p,q) with i*sh+p-pt = h, j*sw+q-pl = v of
    w[p,q,c,o] * dz[n,i,j,o]``  (``col2im(dz @ W.T)``).
    """
    x_shape, cols, w, has_bias, z, y, stride, pads, activation = ctx
    checks.grad(dy, y.shape)
    KH, KW, C, F = w.shape
    dz = _act_grad(np.asarray(dy, y.dtype).reshape(-1, F), z, y.reshape(-1, F), activation)
    dw = (cols.T @ dz).reshape(w.shape)
    db = dz.sum(axis=0) if has_bias else None
    if not need_dx:
        return None, dw, db
    dcols = dz @ w.reshape(KH * KW * C, F).T
    dx = col2im(dcols, x_shape, KH, KW, stride, pads)
    return np.ascontiguousarray(dx), dw, db


# --------------------------------------------------------------------------- pooling
def maxpool2d_forward(x, pool, stride, padding):
    """Max pooling, NHWC.

    ``y[n,i,j,c] = max_{p<PH, q<PW} x[n, i*sh + p - pt, j*sw + q - pl, c]`` (padding never
    wins: it counts as -inf). The argmax (first maximum in row-major window order) is kept
    for the backward pass.
    """
    dt, pool, (stride, pads, OH, OW) = checks.maxpool2d(x, pool, stride, padding)
    (x,) = _arrays(dt, x)
    N, H, W, C = x.shape
    PH, PW = pool
    pt, pb, pl, pr = pads
    sh, sw = stride
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf)
    win = np.empty((N, OH, OW, C, PH * PW), dtype=x.dtype)
    for p in range(PH):
        for q in range(PW):
            win[..., p * PW + q] = xp[:, p : p + sh * OH : sh, q : q + sw * OW : sw, :]
    arg = win.argmax(axis=-1)  # np.argmax returns the first maximum: ties go to one element
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return y, (x.shape, arg, pool, stride, pads)


def maxpool2d_backward(dy, ctx):
    """``dx[n, i*sh + p* - pt, j*sw + q* - pl, c] += dy[n,i,j,c]`` where (p*, q*) is the
    remembered argmax of window (i, j); every other element gets zero."""
    x_shape, arg, (PH, PW), (sh, sw), (pt, pb, pl, pr) = ctx
    checks.grad(dy, arg.shape)
    dy = np.asarray(dy, checks.work_dtype(dy, "dy"))
    N, H, W, C = x_shape
    dxp = np.zeros((N, H + pt + pb, W + pl + pr, C), dtype=dy.dtype)
    n, i, j, c = np.indices(dy.shape, sparse=True)
    rows = i * sh + arg // PW
    cols = j * sw + arg % PW
    np.add.at(dxp, (n, rows, cols, c), dy)  # add.at: windows may overlap when stride < pool
    return np.ascontiguousarray(dxp[:, pt : pt + H, pl : pl + W, :])


def global_avgpool_forward(x):
    """``y[n,c] = mean_{i,j} x[n,i,j,c]``."""
    (x,) = _arrays(checks.global_avgpool(x), x)
    return x.mean(axis=(1, 2)), x.shape


def global_avgpool_backward(dy, ctx):
    """``dx[n,i,j,c] = dy[n,c] / (H * W)``."""
    N, H, W, C = ctx
    checks.grad(dy, (N, C))
    dy = np.asarray(dy, checks.work_dtype(dy, "dy"))
    dx = np.empty(ctx, dtype=dy.dtype)
    dx[...] = (dy / (H * W))[:, None, None, :]
    return dx


# --------------------------------------------------------------------------- sums
def add(a, b):
    """``y[...] = a[...] + b[...]`` for two arrays of one shape (a residual connection).

    Backward: ``da = db = dy``, so the sum needs no backward kernel of its own.
    """
    dt = checks.add(a, b)
    return np.asarray(a, dt) + np.asarray(b, dt)


# --------------------------------------------------------------------------- dense
def dense_forward(x, w, b, activation="linear"):
    """``z = x @ w + b``, ``y = act(z)``; x (N, D), w (D, U), b (U,)."""
    dt, activation = checks.dense(x, w, b, activation)
    x, w, b = _arrays(dt, x, w, b)
    z = x @ w
    if b is not None:
        z += b
    y = _act(z, activation)
    return y, (x, w, b is not None, z, y, activation)


def dense_backward(dy, ctx, need_dx=True):
    """``dz = dy * act'(z)``; ``dx = dz @ w.T``; ``dw = x.T @ dz``; ``db = sum_n dz``."""
    x, w, has_bias, z, y, activation = ctx
    checks.grad(dy, y.shape)
    dz = _act_grad(np.asarray(dy, y.dtype), z, y, activation)
    dx = dz @ w.T if need_dx else None
    return dx, x.T @ dz, (dz.sum(axis=0) if has_bias else None)


# --------------------------------------------------------------------------- batch norm
def batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum, epsilon, training, allreduce=None):
    """Batch normalisation over every axis but the last (channels).

    Training: ``mu = mean(x)``, ``var = mean((x - mu)**2)`` (biased), ``xhat = (x - mu) /
    sqrt(var + eps)``, ``y = gamma * xhat + beta``; the running statistics are updated in
    place: ``running = momentum * running + (1 - momentum) * batch``.
    Inference: the same with the running statistics.
    With ``allreduce`` (training), ``mu`` and ``var`` are those of the global batch
    (:func:`_global_moments`; the protocol is in :mod:`tinycnn.kernels`).
    """
    dt = checks.batchnorm(x, gamma, beta, running_mean, running_var, allreduce)
    x, gamma, beta = _arrays(dt, x, gamma, beta)
    axes = tuple(range(x.ndim - 1))
    sync = allreduce if training else None
    if training and sync is None:
        mu = x.mean(axis=axes)
        var = ((x - mu) ** 2).mean(axis=axes)
    elif training:
        mu, var = _global_moments(x, axes, sync)
    else:
        mu, var = running_mean, running_var
    if training:
        running_mean *= momentum
        running_mean += (1 - momentum) * mu
        running_var *= momentum
        running_var += (1 - momentum) * var
    inv_std = 1 / np.sqrt(var + epsilon)
    xhat = (x - mu) * inv_std
    y = gamma * xhat + beta
    return y.astype(x.dtype, copy=False), (xhat, gamma, inv_std, training, sync)


def _global_moments(x, axes, allreduce):
    """Mean and biased variance per channel over the batches of every process: the sums of x
    and the count are reduced first, then the squared deviations around the global mean (two
    passes, as for one batch: no cancellation)."""
    s, n = allreduce([x.sum(axis=axes, dtype=np.float64), np.array([x.size // x.shape[-1]], np.float64)])
    mu = s / n[0]
    (q,) = allreduce([((x - mu) ** 2).sum(axis=axes)])
    return mu.astype(x.dtype), (q / n[0]).astype(x.dtype)


def batchnorm_backward(dy, ctx):
    """Gradients of :func:`batchnorm_forward` (M = number of values per channel).

    ``dbeta = sum dy``; ``dgamma = sum dy * xhat``; in training
    ``dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma)`` (the batch statistics
    depend on x; synchronized: M and both sums over every process); in inference
    ``dx = gamma * inv_std * dy``.
    """
    xhat, gamma, inv_std, training, allreduce = ctx
    checks.grad(dy, xhat.shape)
    dy = np.asarray(dy, xhat.dtype)
    axes = tuple(range(dy.ndim - 1))
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    if training:
        M, sum_dy, sum_dy_xhat = dy.size // dy.shape[-1], dbeta, dgamma
        if allreduce is not None:
            sum_dy, sum_dy_xhat, n = allreduce([dbeta.astype(np.float64), dgamma.astype(np.float64),
                                                np.array([M], np.float64)])
            M = n[0]
        dx = (gamma * inv_std / M) * (M * dy - sum_dy - xhat * sum_dy_xhat)
    else:
        dx = gamma * inv_std * dy
    return dx.astype(dy.dtype, copy=False), dgamma, dbeta


# --------------------------------------------------------------------------- dropout
def dropout_forward(x, rate, seed):
    """Inverted dropout: ``y = x * keep / (1 - rate)`` with ``keep = u >= rate``,
    ``u = default_rng(seed).random(x.shape, float32)``, so expectations match inference."""
    dt, rate = checks.dropout(x, rate)
    (x,) = _arrays(dt, x)
    u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    scale = (u >= rate).astype(dt) / dt.type(1 - rate)
    return x * scale, scale


def dropout_backward(dy, ctx):
    """``dx = dy * keep / (1 - rate)``."""
    checks.grad(dy, ctx.shape)
    return np.asarray(dy, ctx.dtype) * ctx


# --------------------------------------------------------------------------- losses

def loss_forward(kind, y_pred, y_true, sample_weight, from_logits, gamma=2.0, alpha=None):
    """Per-sample loss ``l_n`` and the batch loss ``L = sum_n w_n l_n / N``.

    With K columns (the last axis) and ``p`` the predicted probabilities (``z`` logits):

    - binary_crossentropy: ``l = mean_k -(t log p + (1 - t) log(1 - p))``; from logits
      ``l = mean_k max(z, 0) - z t + log(1 + exp(-|z|))``.
    - categorical_crossentropy: ``l = -sum_k t_k log p_k``; from logits
      ``l = sum_k t_k (logsumexp(z) - z_k)``.
    - sparse_categorical_crossentropy: as categorical with ``t = onehot(y_true)``.
    - mse: ``l = mean_k (p - t)**2``.
    - binary_focal_crossentropy (Lin et al., as in Keras): with ``p_t = t p + (1 - t)(1 - p)``,
      ``l = mean_k a_t (1 - p_t)**gamma * bce``, ``a_t = t alpha + (1 - t)(1 - alpha)``
      when alpha is given, else 1.

    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` (the gradient is zero where clipping
    binds, as for Keras); logits need no clipping.
    """
    dt = checks.loss(kind, y_pred, y_true, sample_weight)
    y = np.asarray(y_pred, dt)
    N = y.shape[0]
    if kind == "sparse_categorical_crossentropy":
        t = np.zeros_like(y)
        t[np.arange(N), checks.class_labels(y_true, N, y.shape[1])] = 1
        kind = "categorical_crossentropy"
    else:
        t = np.asarray(y_true, dtype=dt).reshape(y.shape)
    w = np.ones(N, dtype=dt) if sample_weight is None else np.asarray(sample_weight, dtype=dt)
    K = y.shape[-1] if y.ndim > 1 else 1
    scale = (w / N).reshape((N,) + (1,) * (y.ndim - 1))  # dL/dl_n, broadcast over columns

    if kind == "binary_crossentropy":
        if from_logits:
            l = np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))
            g = _act(y, "sigmoid") - t
        else:
            p = np.clip(y, EPSILON, 1 - EPSILON)
            l = -(t * np.log(p) + (1 - t) * np.log(1 - p))
            g = (p - t) / (p * (1 - p)) * ((y > EPSILON) & (y < 1 - EPSILON))
        per = l.reshape(N, -1).mean(axis=1)
        grad = g * scale / K
    elif kind == "categorical_crossentropy":
        if from_logits:
            m = y.max(axis=-1, keepdims=True)
            lse = m + np.log(np.exp(y - m).sum(axis=-1, keepdims=True))
            per = (t * (lse - y)).sum(axis=-1)
            grad = (_act(y, "softmax") * t.sum(axis=-1, keepdims=True) - t) * scale
        else:
            p = np.clip(y, EPSILON, 1 - EPSILON)
            per = -(t * np.log(p)).sum(axis=-1)
            grad = -t / p * ((y > EPSILON) & (y < 1 - EPSILON)) * scale
    elif kind == "mse":
        d = y - t
        per = (d * d).reshape(N, -1).mean(axis=1)
        grad = 2 * d * scale / K
    elif kind == "binary_focal_crossentropy":
        if from_logits:
            p = _act(y, "sigmoid")
            bce = np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))
            dbce = p - t  # d bce / dz
            dp = p * (1 - p)  # d p / dz
            inside = np.ones_like(y, dtype=bool)
        else:
            p = np.clip(y, EPSILON, 1 - EPSILON)
            bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
            dbce = (p - t) / (p * (1 - p))
            dp = np.ones_like(p)
            inside = (y > EPSILON) & (y < 1 - EPSILON)
        p_t = t * p + (1 - t) * (1 - p)
        base = 1 - p_t
        focal = base**gamma
        # d focal / dp = -gamma (1 - p_t)^(gamma - 1) (2t - 1); defined as 0 where 1 - p_t = 0
        safe = np.where(base > 0, base, 1)
        dfocal = np.where(base > 0, -gamma * safe ** (gamma - 1) * (2 * t - 1), 0) * dp
        a_t = 1 if alpha is None else t * alpha + (1 - t) * (1 - alpha)
        l = a_t * focal * bce
        g = a_t * (dfocal * bce + focal * dbce) * inside
        per = l.reshape(N, -1).mean(axis=1)
        grad = g * scale / K
    per = per.astype(dt, copy=False)
    loss = float((w * per).sum() / N)
    return loss, (np.ascontiguousarray(grad, dtype=dt), per)


def loss_backward(ctx):
    """``dL / d y_pred`` (see :func:`loss_forward` for each formula's derivative)."""
    return ctx[0]


# --------------------------------------------------------------------------- optimizers
def sgd_update(p, g, velocity, lr, momentum, nesterov):
    """SGD with momentum (Keras): ``v = momentum * v - lr * g``; ``p += v``, or with Nesterov
    ``p += momentum * v - lr * g``. Without momentum ``p -= lr * g``. In place."""
    checks.update(p, g, velocity=velocity if momentum else None)
    g = np.asarray(g, p.dtype)
    if momentum == 0:
        p -= lr * g
        return
    velocity *= momentum
    velocity -= lr * g
    if nesterov:
        p += momentum * velocity - lr * g
    else:
        p += velocity


def adam_update(p, g, m, v, lr, beta_1, beta_2, epsilon, t):
    """Adam (Kingma & Ba, in Keras' form), step ``t`` counted from 1. In place:
    ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``; ``m += (g - m)(1 - beta_1)``;
    ``v += (g**2 - v)(1 - beta_2)``; ``p -= alpha * m / (sqrt(v) + epsilon)``."""
    checks.update(p, g, m=m, v=v)
    g = np.asarray(g, p.dtype)
    alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1)
    v += (g * g - v) * (1 - beta_2)
    p -= (alpha * m / (np.sqrt(v) + epsilon)).astype(p.dtype, copy=False)
