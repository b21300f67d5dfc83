"""Each reference kernel against a direct, loop-based evaluation of its documented formula."""

import numpy as np
import pytest
from tinycnn.kernels import reference as R
from tinycnn.kernels.shapes import conv_geometry


def conv_by_definition(x, w, b, stride, padding):
    """y[n,i,j,o] = b[o] + sum_{p,q,c} x[n, i*s+p-pad, j*s+q-pad, c] * w[p,q,c,o]."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    OH, OW, (pt, pb, pl, pr) = conv_geometry(H, W, KH, KW, stride, padding)
    y = np.zeros((N, OH, OW, F))
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                for o in range(F):
                    s = b[o]
                    for p in range(KH):
                        for q in range(KW):
                            r, c_ = i * stride[0] + p - pt, j * stride[1] + q - pl
                            if 0 <= r < H and 0 <= c_ < W:
                                s += np.dot(x[n, r, c_, :], w[p, q, :, o])
                    y[n, i, j, o] = s
    return y


CASES = [((2, 5, 6, 3), (3, 3), (1, 1), "valid"), ((1, 7, 5, 2), (2, 3), (2, 1), "same"),
         ((2, 4, 4, 1), (4, 2), (1, 2), "same"), ((1, 6, 6, 2), (1, 1), (3, 3), "valid"),
         ((1, 5, 5, 1), (2, 2), (2, 2), "same")]


@pytest.mark.parametrize("xs, ks, stride, padding", CASES)
def test_conv_forward_matches_definition(rng, xs, ks, stride, padding):
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ks + (xs[-1], 3))
    b = rng.standard_normal(3)
    y, _ = R.conv2d_forward(x, w, b, stride, padding, "linear")
    np.testing.assert_allclose(y, conv_by_definition(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, ks, stride, padding", CASES)
def test_conv_backward_matches_definition(rng, xs, ks, stride, padding):
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ks + (xs[-1], 2))
    b = rng.standard_normal(2)
    y, ctx = R.conv2d_forward(x, w, b, stride, padding, "linear")
    dy = rng.standard_normal(y.shape)
    dx, dw, db = R.conv2d_backward(dy, ctx)
    N, H, W, C = xs
    KH, KW = ks
    _, OH, OW, F = y.shape
    _, _, (pt, _, pl, _) = conv_geometry(H, W, KH, KW, stride, padding)
    dx_def, dw_def = np.zeros_like(x), np.zeros_like(w)
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                for p in range(KH):
                    for q in range(KW):
                        r, c_ = i * stride[0] + p - pt, j * stride[1] + q - pl
                        if 0 <= r < H and 0 <= c_ < W:
                            dw_def[p, q] += np.outer(x[n, r, c_], dy[n, i, j])
                            dx_def[n, r, c_] += w[p, q] @ dy[n, i, j]
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(dw, dw_def, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_def, rtol=1e-10, atol=1e-12)


def test_conv_fused_activations(rng):
    x = rng.standard_normal((2, 5, 5, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3)
    z = conv_by_definition(x, w, b, (1, 1), "valid")
    for kind, f in [("relu", lambda z: np.maximum(z, 0)), ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
                    ("tanh", np.tanh)]:
        y, _ = R.conv2d_forward(x, w, b, (1, 1), "valid", kind)
        np.testing.assert_allclose(y, f(z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool, stride, padding", [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same"),
                                                   ((2, 3), (1, 2), "valid"), ((3, 2), (3, 3), "same")])
def test_maxpool_matches_definition(rng, pool, stride, padding):
    x = rng.standard_normal((2, 7, 6, 3))
    y, ctx = R.maxpool2d_forward(x, pool, stride, padding)
    OH, OW, (pt, _, pl, _) = conv_geometry(7, 6, *pool, stride, padding)
    dy = rng.standard_normal(y.shape)
    dx = R.maxpool2d_backward(dy, ctx)
    dx_def = np.zeros_like(x)
    for n in range(2):
        for i in range(OH):
            for j in range(OW):
                for c in range(3):
                    best, arg = -np.inf, None
                    for p in range(pool[0]):
                        for q in range(pool[1]):
                            r, s = i * stride[0] + p - pt, j * stride[1] + q - pl
                            if 0 <= r < 7 and 0 <= s < 6 and x[n, r, s, c] > best:
                                best, arg = x[n, r, s, c], (r, s)
                    assert y[n, i, j, c] == best
                    dx_def[n, arg[0], arg[1], c] += dy[n, i, j, c]
    np.testing.assert_allclose(dx, dx_def, rtol=1e-12)


def test_maxpool_ties_send_gradient_to_exactly_one_element():
    x = np.ones((1, 4, 4, 2))
    y, ctx = R.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    dx = R.maxpool2d_backward(np.ones_like(y), ctx)
    windows = dx.reshape(1, 2, 2, 2, 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 4)
    assert (windows.sum(axis=1) == 1).all() and ((windows == 0) | (windows == 1)).all()
    assert (windows[:, 0] == 1).all()  # the first maximum in row-major window order


def test_dense_and_global_pool_definitions(rng):
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 2))
    b = rng.standard_normal(2)
    y, ctx = R.dense_forward(x, w, b, "linear")
    expect = np.array([[sum(x[n, d] * w[d, u] for d in range(4)) + b[u] for u in range(2)] for n in range(3)])
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    img = rng.standard_normal((2, 3, 5, 4))
    g, _ = R.global_avgpool_forward(img)
    np.testing.assert_allclose(g[1, 2], img[1, :, :, 2].sum() / 15, rtol=1e-12)


def test_batchnorm_definition_and_running_stats(rng):
    x = rng.standard_normal((4, 3, 3, 2)) * 3 + 1
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = np.zeros(2), np.ones(2)
    y, _ = R.batchnorm_forward(x, gamma, beta, rm, rv, 0.9, 1e-3, True)
    for c in range(2):
        v = x[..., c]
        np.testing.assert_allclose(y[..., c], gamma[c] * (v - v.mean()) / np.sqrt(v.var() + 1e-3) + beta[c],
                                   rtol=1e-10)
        np.testing.assert_allclose(rm[c], 0.1 * v.mean(), rtol=1e-12)
        np.testing.assert_allclose(rv[c], 0.9 + 0.1 * v.var(), rtol=1e-12)


def test_losses_are_stable_for_large_logits():
    z = np.array([[800.0], [-800.0], [30.0]])
    t = np.array([[0.0], [1.0], [1.0]])
    loss, ctx = R.loss_forward("binary_crossentropy", z, t, None, True)
    assert np.isfinite(loss) and abs(loss - (800 + 800 + np.log1p(np.exp(-30))) / 3) < 1e-9
    assert np.isfinite(R.loss_backward(ctx)).all()
    z = np.array([[1000.0, 0.0, -1000.0]])
    loss, ctx = R.loss_forward("categorical_crossentropy", z, np.array([[0, 0, 1.0]]), None, True)
    assert loss == pytest.approx(2000.0) and np.isfinite(R.loss_backward(ctx)).all()
    loss, _ = R.loss_forward("binary_crossentropy", np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]]), None, False)
    assert loss == pytest.approx(-np.log(1e-7), rel=1e-6)  # clipped, not infinite


def test_loss_values_by_definition(rng):
    p = rng.uniform(0.05, 0.95, (5, 1))
    t = rng.integers(0, 2, (5, 1)).astype(float)
    w = rng.uniform(0.5, 2, 5)
    loss, _ = R.loss_forward("binary_crossentropy", p, t, w, False)
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))[:, 0]
    assert loss == pytest.approx((w * per).sum() / 5, rel=1e-12)
    p = rng.dirichlet(np.ones(3), 4)
    lab = np.array([0, 2, 1, 2])
    loss, _ = R.loss_forward("sparse_categorical_crossentropy", p, lab, None, False)
    assert loss == pytest.approx(-np.log(p[np.arange(4), lab]).mean(), rel=1e-12)
    loss, _ = R.loss_forward("mse", p, np.eye(3)[lab], None, False)
    assert loss == pytest.approx(((p - np.eye(3)[lab]) ** 2).mean(), rel=1e-12)
    pb = rng.uniform(0.05, 0.95, (6, 1))
    tb = rng.integers(0, 2, (6, 1)).astype(float)
    loss, _ = R.loss_forward("binary_focal_crossentropy", pb, tb, None, False, gamma=2.0, alpha=0.25)
    pt = np.where(tb == 1, pb, 1 - pb)
    at = np.where(tb == 1, 0.25, 0.75)
    assert loss == pytest.approx((at * (1 - pt) ** 2 * -np.log(pt)).mean(), rel=1e-12)


def test_optimizer_updates_by_definition(rng):
    p = rng.standard_normal(5)
    g = rng.standard_normal(5)
    m, v = np.zeros(5), np.zeros(5)
    p0 = p.copy()
    R.adam_update(p, g, m, v, 0.01, 0.9, 0.999, 1e-7, 1)
    # after one step m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps_hat)
    alpha = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(p, p0 - alpha * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-7), rtol=1e-12)
    p, vel = p0.copy(), np.zeros(5)
    R.sgd_update(p, g, vel, 0.1, 0.9, False)
    R.sgd_update(p, g, vel, 0.1, 0.9, False)
    np.testing.assert_allclose(p, p0 - 0.1 * g - (0.9 * 0.1 + 0.1) * g, rtol=1e-12)
