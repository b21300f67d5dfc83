"""Loss kernels of the ``cuda`` backend: value and gradient in one pass, one thread per sample.

Each kernel reads a row of predictions y (N, K) and writes the gradient row
``d L / d y[n, :]`` and ``contrib[0, n] = w_n * l_n`` (the sample's weighted loss);
``contrib[1, n]`` is 1 for a sparse label outside [0, K) and 0 otherwise. The host then reduces
``contrib`` on the device (:func:`_cuda_reduce.sum_rows`) and copies back two numbers: the
loss ``sum_n w_n l_n / N`` and the count of bad labels. Formulas: see
:func:`tinycnn.kernels.reference.loss_forward`, mirrored here term by term in the same order.
"""

import math

from numba import cuda, types

from . import EPSILON as EPS
from . import LOSS_CODES
from ._cuda_common import I64, arr, register

BINARY_CROSSENTROPY, MSE, BINARY_FOCAL = (
    LOSS_CODES[k] for k in ("binary_crossentropy", "mse", "binary_focal_crossentropy"))


def _elementwise_signatures(T):
    m, v = arr(T, 2), arr(T, 1)
    # kind, from_logits, y, t, w, has_w, gamma, alpha, has_alpha, grad, contrib
    return [(I64, I64, m, m, v, I64, T, T, I64, m, m)]


@register("loss_elementwise", _elementwise_signatures)
def _elementwise_factory(T):
    def _loss_elementwise_kernel(kind, from_logits, y, t, w, has_w, gamma, alpha, has_alpha,
                                 grad, contrib):  # fmt: skip
        """Losses that are a mean over the K columns of a per-element term
        (binary cross-entropy, MSE, binary focal cross-entropy)."""
        N, K = y.shape
        lo, hi = T(EPS), T(1.0 - EPS)
        for n in range(cuda.grid(1), N, cuda.gridsize(1)):
            wn = w[n] if has_w else T(1)
            scale = wn / T(N)
            acc = T(0)
            for k in range(K):
                z = y[n, k]
                tk = t[n, k]
                l = T(0)
                g = T(0)
                bce = T(0)
                dbce = T(0)
                dp = T(1)
                inside = z > lo and z < hi
                p = min(max(z, lo), hi)
                if kind == MSE:
                    d = z - tk
                    l = d * d
                    g = T(2) * d
                elif from_logits:
                    ez = math.exp(-abs(z))
                    bce = max(z, T(0)) - z * tk + math.log1p(ez)
                    sg = T(1) / (T(1) + ez) if z >= 0 else ez / (T(1) + ez)
                    if kind == BINARY_CROSSENTROPY:
                        l = bce
                        g = sg - tk
                    else:
                        p = sg
                        dbce = p - tk
                        dp = p * (T(1) - p)
                        inside = True
                else:
                    bce = -(tk * math.log(p) + (T(1) - tk) * math.log(T(1) - p))
                    dbce = (p - tk) / (p * (T(1) - p))
                    dp = T(1)
                    if kind == BINARY_CROSSENTROPY:
                        l = bce
                        g = dbce if inside else T(0)
                if kind == BINARY_FOCAL:
                    base = T(1) - (tk * p + (T(1) - tk) * (T(1) - p))
                    focal = base**gamma
                    dfocal = T(0)
                    if base > 0:
                        dfocal = -gamma * base ** (gamma - T(1)) * (T(2) * tk - T(1)) * dp
                    a_t = T(1)
                    if has_alpha:
                        a_t = tk * alpha + (T(1) - tk) * (T(1) - alpha)
                    l = a_t * focal * bce
                    g = a_t * (dfocal * bce + focal * dbce) if inside else T(0)
                acc += l
                grad[n, k] = g * scale / T(K)
            contrib[0, n] = wn * (acc / T(K))
            contrib[1, n] = T(0)

    return _loss_elementwise_kernel


def _categorical_signatures(T):
    m, v = arr(T, 2), arr(T, 1)
    # sparse, from_logits, y, t, labels, w, has_w, grad, contrib
    return [(I64, I64, m, m, arr(types.int32, 1), v, I64, m, m)]


@register("loss_categorical", _categorical_signatures)
def _categorical_factory(T):
    def _loss_categorical_kernel(sparse, from_logits, y, t, labels, w, has_w, grad, contrib):
        """Categorical cross-entropy of each row; with ``sparse`` the target row is
        ``onehot(labels[n])``. From logits: ``l = sum_k t_k (logsumexp(y) - y_k)``,
        ``grad = softmax(y) * sum_k t_k - t``; else ``l = -sum_k t_k log p_k`` (p clipped)."""
        N, K = y.shape
        lo, hi = T(EPS), T(1.0 - EPS)
        for n in range(cuda.grid(1), N, cuda.gridsize(1)):
            wn = w[n] if has_w else T(1)
            scale = wn / T(N)
            lab = -1
            bad = T(0)
            if sparse:
                lab = labels[n]
                if lab < 0 or lab >= K:
                    bad = T(1)
            acc = T(0)
            if from_logits:
                m = y[n, 0]
                for k in range(1, K):
                    m = max(m, y[n, k])
                s = T(0)
                tsum = T(0)
                for k in range(K):
                    s += math.exp(y[n, k] - m)
                    tk = (T(1) if k == lab else T(0)) if sparse else t[n, k]
                    tsum += tk
                lse = m + math.log(s)
                for k in range(K):
                    tk = (T(1) if k == lab else T(0)) if sparse else t[n, k]
                    acc += tk * (lse - y[n, k])
                    grad[n, k] = (math.exp(y[n, k] - m) / s * tsum - tk) * scale
            else:
                for k in range(K):
                    tk = (T(1) if k == lab else T(0)) if sparse else t[n, k]
                    z = y[n, k]
                    p = min(max(z, lo), hi)
                    acc += -(tk * math.log(p))
                    g = -tk / p if (z > lo and z < hi) else T(0)
                    grad[n, k] = g * scale
            contrib[0, n] = wn * acc
            contrib[1, n] = bad

    return _loss_categorical_kernel
