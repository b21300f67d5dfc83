"""Batch normalisation over the global batch: the statistics of every rank's samples together.

:class:`SyncedBatchNorm` has the kernel contract's ``batchnorm_forward`` /
``batchnorm_backward`` signatures, so a :class:`~tinycnn.layers.BatchNormalization` layer in a
distributed ``fit`` calls it in place of the backend's. With M_r values per channel on rank r
(M = sum M_r):

- forward: each rank's (M_r, mean_r, M2_r) (M2 = sum of squared deviations, float64) are
  gathered in one collective and combined in rank order by Chan, Golub and LeVeque's pairwise
  rule (``delta = mean_b - mean_a``; ``mean = mean_a + delta M_b / M``;
  ``M2 = M2_a + M2_b + delta^2 M_a M_b / M``), which loses no precision to cancellation as
  sum-and-sum-of-squares can. ``mean``, ``var = M2 / M`` then normalise each rank's values
  (the backend's kernel in inference mode does the arithmetic) and update the moving
  statistics identically on every rank.
- backward: ``dbeta = sum dy`` and ``dgamma = sum dy * xhat`` over the global batch (one
  Allreduce of 2C values), then ``dx = gamma inv_std / M (M dy - dbeta - xhat dgamma)``, the
  one-process formula with global sums. The layer's parameter gradients are this rank's sums;
  the gradient reducer adds them up with every other gradient.

A rank that holds no sample of the batch (it runs one stand-in sample, see
:class:`~tinycnn.distributed.session.FitSession`) contributes M_r = 0 and zero sums and gets
``dx = 0``.
"""

import numpy as np

from .. import backend


def combine_moments(rows):
    """Combine per-rank ``[count, mean (C), M2 (C)]`` rows (rank order) into one triple.

    Parameters
    ----------
    rows : (R, 2C + 1) float64

    Returns
    -------
    (float, (C,) float64, (C,) float64)
        ``(count, mean, M2)`` of the union.
    """
    C = (rows.shape[1] - 1) // 2
    n, mean, m2 = 0.0, np.zeros(C), np.zeros(C)
    for row in rows:
        nb, mean_b, m2_b = row[0], row[1:C + 1], row[C + 1:]
        if nb == 0:
            continue
        tot = n + nb
        delta = mean_b - mean
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2_b + delta * delta * (n * nb / tot)
        n = tot
    return n, mean, m2


class SyncedBatchNorm:
    """The batch-norm kernels of a distributed fit (see the module docstring).

    Parameters
    ----------
    world : tinycnn.distributed.comm.World
    session : tinycnn.distributed.session.FitSession
        Tells whether this rank holds real samples of the current batch (``session.idle``).
    """

    def __init__(self, world, session):
        self.world, self.session = world, session

    def batchnorm_forward(self, x, gamma, beta, running_mean, running_var, momentum, epsilon, training):
        B = backend.get()
        xn = np.asarray(B.to_numpy(x))
        C = xn.shape[-1]
        x2 = xn.reshape(-1, C)
        local = np.zeros(2 * C + 1)
        if not self.session.idle:
            mean_r = x2.mean(axis=0, dtype=np.float64)
            local[0] = x2.shape[0]
            local[1:C + 1] = mean_r
            local[C + 1:] = np.square(x2 - mean_r).sum(axis=0)
        M, mean, m2 = combine_moments(self.world.allgather_rows(local))
        var = m2 / M
        # the same float32 arithmetic as the kernels' update, so N ranks and one process agree
        running_mean *= momentum
        running_mean += (1 - momentum) * mean.astype(running_mean.dtype)
        running_var *= momentum
        running_var += (1 - momentum) * var.astype(running_var.dtype)
        y, kctx = B.batchnorm_forward(x, gamma, beta, mean, var, momentum, epsilon, False)
        inv_std = 1.0 / np.sqrt(var + epsilon)
        gamma_n = np.asarray(B.to_numpy(gamma), np.float64)
        return y, (kctx, xn, mean, inv_std, gamma_n, M, self.session.idle)

    def batchnorm_backward(self, dy, ctx):
        kctx, xn, mean, inv_std, gamma, M, idle = ctx
        B = backend.get()
        # inference-mode backward: dx = gamma inv_std dy, and this rank's dgamma, dbeta sums
        dx, dgamma, dbeta = B.batchnorm_backward(dy, kctx)
        C = dgamma.shape[0]
        sums = np.zeros(2 * C)
        if not idle:
            sums[:C] = B.to_numpy(dbeta)
            sums[C:] = B.to_numpy(dgamma)
        self.world.allreduce_(sums)
        dx = np.asarray(B.to_numpy(dx))
        if idle:
            return B.asarray(np.zeros_like(dx)), dgamma, dbeta
        k = gamma * inv_std / M
        a = (k * sums[:C]).astype(dx.dtype)
        b = (k * sums[C:] * inv_std).astype(dx.dtype)
        out = dx - (a + b * (xn - mean.astype(dx.dtype)))
        return B.asarray(out.astype(dx.dtype, copy=False)), dgamma, dbeta
