"""The ``cuda`` backend's contract functions for convolution, pooling and dense layers.

Convolution is ``im2col`` then one tiled GEMM with bias and activation fused into its
epilogue (1x1 convolutions with stride 1 and no padding skip im2col). Backward:
``dz = dy * act'`` (from the saved output), ``db`` by a column reduction,
``dw = cols.T @ dz`` (split-K when M x N is small), ``dx = col2im(dz @ W.T)`` as a gather (no
atomics); ``cols`` is recomputed from ``x`` instead of keeping the KH*KW-times-larger matrix
alive. Dense layers use the same GEMM (transposes by index order). Pooling: one thread per
output; the max-pool argmax is kept as int32.
"""

from . import ACTIVATION_CODES, checks
from . import _cuda_conv as conv
from . import _cuda_gemm as gm
from . import _cuda_reduce as red
from ._cuda_arrays import asarray, operands
from ._cuda_pointwise_ops import act_grad


def _bias_grad(dz2):
    M, F = dz2.shape
    return red.colsum(dz2.reshape(1, M, F)).reshape(F)


def _pointwise(KH, KW, stride, pads):
    return KH == 1 and KW == 1 and stride == (1, 1) and not any(pads)


def _cols(x, KH, KW, stride, pads, OH, OW):
    N, H, W, C = x.shape
    if _pointwise(KH, KW, stride, pads):
        return x.reshape(N * H * W, C)
    return conv.im2col(x, KH, KW, stride, pads, OH, OW)


def conv2d_forward(x, w, b, stride, padding, activation="linear"):
    """``y = act(conv(x, w) + b)``: x (N,H,W,C), w (KH,KW,C,F), b (F,) or None -> (N,OH,OW,F)."""
    dt, (stride, pads, OH, OW), activation = checks.conv2d(x, w, b, stride, padding, activation)
    x, w, b = operands(dt, x, w, b)
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    act = ACTIVATION_CODES[activation]
    cols = _cols(x, KH, KW, stride, pads, OH, OW)
    y = gm.gemm(cols, w.reshape(KH * KW * C, F), bias=b, act=act)
    ctx = (x, w, b is not None, y, stride, pads, act, OH, OW)
    return y.reshape(N, OH, OW, F), ctx


def conv2d_backward(dy, ctx, need_dx=True):
    """``(dx, dw, db)`` of :func:`conv2d_forward` (dx None unless need_dx, db None without b)."""
    x, w, has_bias, y, stride, pads, act, OH, OW = ctx
    KH, KW, C, F = w.shape
    checks.grad(dy, (x.shape[0], OH, OW, F))
    dz = act_grad(asarray(dy, x.dtype).reshape(y.shape[0], F), y, act)
    db = _bias_grad(dz) if has_bias else None
    cols = _cols(x, KH, KW, stride, pads, OH, OW)
    dw = gm.gemm(cols, dz, trans_a=True).reshape(KH, KW, C, F)
    if not need_dx:
        return None, dw, db
    dcols = gm.gemm(dz, w.reshape(KH * KW * C, F), trans_b=True)
    if _pointwise(KH, KW, stride, pads):
        return dcols.reshape(x.shape), dw, db
    return conv.col2im(dcols, x.shape, KH, KW, stride, pads, OH, OW), dw, db


def maxpool2d_forward(x, pool, stride, padding):
    """Max over each window: x (N,H,W,C) -> y (N,OH,OW,C); the argmax is kept in ctx."""
    dt, pool, (stride, pads, OH, OW) = checks.maxpool2d(x, pool, stride, padding)
    x = asarray(x, dt)
    y, arg = conv.maxpool_forward(x, pool, stride, pads, OH, OW)
    return y, (x.shape, arg, pool, stride, pads)


def maxpool2d_backward(dy, ctx):
    """The gradient goes to the remembered argmax of each window."""
    x_shape, arg, pool, stride, pads = ctx
    checks.grad(dy, arg.shape)
    dy = asarray(dy, checks.work_dtype(dy, "dy"))
    return conv.maxpool_backward(dy, arg, x_shape, pool, stride, pads)


def global_avgpool_forward(x):
    """``y[n, c] = mean_{i,j} x[n, i, j, c]``."""
    x = asarray(x, checks.global_avgpool(x))
    N, H, W, C = x.shape
    return red.colsum(x.reshape(N, H * W, C), denom=H * W), x.shape


def global_avgpool_backward(dy, ctx):
    """``dx[n, i, j, c] = dy[n, c] / (H*W)``."""
    checks.grad(dy, (ctx[0], ctx[3]))
    return conv.avgpool_backward(asarray(dy, checks.work_dtype(dy, "dy")), ctx)


def dense_forward(x, w, b, activation="linear"):
    """``y = act(x @ w + b)``: x (N, D), w (D, U), b (U,) or None."""
    dt, activation = checks.dense(x, w, b, activation)
    x, w, b = operands(dt, x, w, b)
    act = ACTIVATION_CODES[activation]
    y = gm.gemm(x, w, bias=b, act=act)
    return y, (x, w, b is not None, y, act)


def dense_backward(dy, ctx, need_dx=True):
    """``dz = dy * act'``; ``dx = dz @ w.T``; ``dw = x.T @ dz``; ``db = sum_n dz``."""
    x, w, has_bias, y, act = ctx
    checks.grad(dy, y.shape)
    dz = act_grad(asarray(dy, x.dtype), y, act)
    dx = gm.gemm(dz, w, trans_b=True) if need_dx else None
    dw = gm.gemm(x, dz, trans_a=True)
    return dx, dw, (_bias_grad(dz) if has_bias else None)
