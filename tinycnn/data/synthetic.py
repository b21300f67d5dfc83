"""Synthetic chest radiographs with lung nodules: a data set to test training end to end.

Each image is drawn from a simple model of a PA chest film: a bright body against dark air,
two dark lung fields, a heart shadow between them, a spine band, curved rib bands, fine
vascular texture in the lungs, then a per-image gain and offset, a smooth uneven exposure and
pixel noise. Positive images carry 1 to ``max_nodules`` nodules: round blobs with soft edges,
of radius ``image_size/20`` to ``image_size/12``, a little brighter than the lung around them,
placed wholly inside a lung field.

The task is learnable (a nodule is a local round bump no healthy image has) but not trivial:
nodules add under 1% to the image mean while the per-image exposure varies by far more, so
no global statistic such as mean brightness separates the classes; a model has to find the
blob.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage, special

from ..errors import ConfigError
from ._common import check_fraction

_CHUNK = 256  # images generated at a time: bounds memory, keeps arrays cache-sized


@dataclass(repr=False)
class SyntheticChest:
    """Synthetic chest radiographs and their ground truth.

    Attributes
    ----------
    x : numpy.ndarray, shape (N, H, W, 1), float32 in [0, 1]
    y : numpy.ndarray, shape (N,), int64
        1 for images with nodules, 0 without.
    nodules : list of list of (float, float, float)
        Per image, each nodule's (row, col, radius) in pixels; empty for negatives.
    masks : numpy.ndarray, shape (N, H, W), bool
        Pixels within a nodule's radius of its centre.
    lungs : numpy.ndarray, shape (N, H, W), bool
        Pixels inside the two lung fields (the nodules lie wholly inside these).
    """

    x: np.ndarray
    y: np.ndarray
    nodules: list
    masks: np.ndarray
    lungs: np.ndarray

    def __repr__(self):
        return f"SyntheticChest(x={self.x.shape}, positives={int(self.y.sum())}/{len(self.y)})"


def _int_arg(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _soft_inside(q, softness):
    """1 inside (q < 1), 0 outside, with a logistic edge of relative width ``softness``."""
    return special.expit((1.0 - q) / softness)


def _ellipse_q(rows, cols, cy, cx, ay, ax, tilt):
    """Squared normalised radius of pixel (row, col) in a tilted ellipse; < 1 inside.

    Shapes: rows (1, S, 1) and cols (1, 1, S) pixel coordinates, parameters (n, 1, 1) in
    pixels / radians; returns (n, S, S).
    """
    dy, dx = rows - cy, cols - cx
    cos, sin = np.cos(tilt), np.sin(tilt)
    u = (cos * dy + sin * dx) / ay
    v = (-sin * dy + cos * dx) / ax
    return u * u + v * v


def _draw_params(n, s, rng):
    """Per-image anatomy and exposure parameters, each of shape (n,)."""
    u = lambda lo, hi: rng.uniform(lo, hi, n)
    p = {
        "body_cx": u(0.47, 0.53) * s,
        "body_ax": u(0.42, 0.48) * s,
        "tissue": u(0.55, 0.7),
        "lung_sep": u(0.17, 0.21) * s,
        "lung_cy": u(0.42, 0.48) * s,
        "lung_ay": u(0.25, 0.3) * s,
        "lung_ax": u(0.12, 0.15) * s,
        "lung_tilt": u(0.05, 0.2),
        "lung_depth": u(0.3, 0.4),
        "heart_dx": u(0.03, 0.08) * s,
        "heart": u(0.15, 0.22),
        "clavicle": u(0.06, 0.12),
        "spine": u(0.1, 0.18),
        "rib_amp": u(0.05, 0.1),
        "rib_curve": u(0.9, 1.5) / s,
        "rib_gap": u(0.075, 0.095) * s,
        "rib_phase": u(0.0, 2 * np.pi),
        "vessels": u(0.02, 0.04),
        "gain": u(0.7, 1.3),
        "offset": rng.normal(0.0, 0.07, n),
        "ramp": u(0.0, 0.12),
        "ramp_dir": u(0.0, 2 * np.pi),
        "noise": u(0.01, 0.03),
    }
    return {k: v.astype(np.float32) for k, v in p.items()}


def _place_nodules(y, p, s, max_nodules, rng):
    """(row, col, radius) per nodule, each wholly inside one lung ellipse.

    A centre at scaled radius rho <= 1 - (r + 1) / min(ay, ax) of an ellipse leaves a disk of
    radius r + 1 around it inside the ellipse (the ellipse contains rho E + (1 - rho) E, and
    (1 - rho) E holds a disk of radius (1 - rho) min(ay, ax)); the extra pixel covers the pixel
    grid. So every nodule pixel is a lung pixel, with no rejection loop.
    """
    nodules = []
    for i in range(len(y)):
        found = []
        for _ in range(rng.integers(1, max_nodules + 1) if y[i] else 0):
            side = rng.choice((-1.0, 1.0))
            r = rng.uniform(s / 20.0, s / 12.0)
            ay, ax = p["lung_ay"][i], p["lung_ax"][i]
            rho = np.sqrt(rng.random()) * max(0.0, 1.0 - (r + 1.0) / min(ay, ax))
            theta = rng.uniform(0.0, 2 * np.pi)
            a, b = ay * rho * np.cos(theta), ax * rho * np.sin(theta)
            tilt = side * -p["lung_tilt"][i]
            # (a, b) in the ellipse's own axes -> image offsets (inverse of _ellipse_q's rotation)
            dy = np.cos(tilt) * a - np.sin(tilt) * b
            dx = np.sin(tilt) * a + np.cos(tilt) * b
            cy, cx = p["lung_cy"][i], p["body_cx"][i] + side * p["lung_sep"][i]
            found.append((float(cy + dy), float(cx + dx), float(r)))
        nodules.append(found)
    return nodules


def _render(p, nodules, s, rng):
    """Images (n, S, S) float32 and nodule / lung masks for one chunk of parameters."""
    n = len(p["gain"])
    q = {k: v[:, None, None] for k, v in p.items()}
    rows = np.arange(s, dtype=np.float32)[None, :, None]
    cols = np.arange(s, dtype=np.float32)[None, None, :]
    zero = np.zeros((n, 1, 1), np.float32)

    body = _soft_inside(_ellipse_q(rows, cols, 0.62 * s, q["body_cx"], 0.62 * s, q["body_ax"], zero), 0.04)
    img = 0.03 + q["tissue"] * body
    lungs_q = [
        _ellipse_q(rows, cols, q["lung_cy"], q["body_cx"] + side * q["lung_sep"], q["lung_ay"], q["lung_ax"],
                   side * -q["lung_tilt"])
        for side in (-1.0, 1.0)
    ]
    lung_soft = np.maximum(_soft_inside(lungs_q[0], 0.08), _soft_inside(lungs_q[1], 0.08))
    img -= q["lung_depth"] * lung_soft
    heart_q = _ellipse_q(rows, cols, 0.68 * s, q["body_cx"] + q["heart_dx"], 0.17 * s, 0.16 * s, zero)
    img += q["heart"] * _soft_inside(heart_q, 0.12)
    # Clavicles: bands rising from the top of the sternum to the shoulders.
    for side in (-1.0, 1.0):
        along = side * (cols - q["body_cx"]) / s  # 0 at the midline, growing outwards
        centre_row = (0.16 - 0.12 * along) * s
        on_bone = _soft_inside(((along - 0.2) / 0.16) ** 2, 0.1)
        img += q["clavicle"] * _soft_inside(((rows - centre_row) / (0.022 * s)) ** 2, 0.3) * on_bone
    # Spine: a soft vertical band with a faint vertebral rhythm.
    spine_x = np.abs(cols - q["body_cx"]) / (0.045 * s)
    vertebrae = 0.85 + 0.15 * np.cos(2 * np.pi * rows / (0.07 * s))
    img += q["spine"] * _soft_inside(spine_x * spine_x, 0.2) * vertebrae * body
    # Ribs: thin bands along arcs that fall away from the spine, over the thorax only.
    arc = rows - q["rib_curve"] * (cols - q["body_cx"]) ** 2
    bands = (0.5 + 0.5 * np.cos(2 * np.pi * arc / q["rib_gap"] + q["rib_phase"])) ** 6
    thorax = _soft_inside(((rows - 0.42 * s) / (0.36 * s)) ** 2, 0.1) * body
    # Ribs show best against the air of the lungs, faintly through soft tissue.
    img += q["rib_amp"] * bands * thorax * (0.4 + 0.6 * lung_soft)
    # Vessels: fine smoothed texture, so a nodule must be told apart from small bright specks.
    sigma = s / 80.0
    texture = ndimage.gaussian_filter(rng.standard_normal((n, s, s)).astype(np.float32), (0, sigma, sigma))
    # Smoothing white noise divides its std by 2 sigma sqrt(pi): undo that, so the texture
    # looks alike at every image size.
    img += q["vessels"] * (2.0 * sigma * np.sqrt(np.pi)) * texture * lung_soft

    masks = np.zeros((n, s, s), bool)
    for i, found in enumerate(nodules):
        for r0, c0, rad in found:
            # Only a box of twice the radius around the centre is touched (the soft edge has
            # fallen below 0.1% of the amplitude there).
            top, left = max(0, int(r0 - 2 * rad)), max(0, int(c0 - 2 * rad))
            bottom, right = min(s, int(r0 + 2 * rad) + 2), min(s, int(c0 + 2 * rad) + 2)
            d = np.sqrt((rows[0, top:bottom] - r0) ** 2 + (cols[0, :, left:right] - c0) ** 2)
            amp = rng.uniform(0.3, 0.45)
            img[i, top:bottom, left:right] += amp * _soft_inside(d / (0.85 * rad), 0.2)
            masks[i, top:bottom, left:right] |= d <= rad

    # Exposure: gain and offset, a linear ramp and a smooth random field.
    ramp = (np.cos(q["ramp_dir"]) * (rows - s / 2) + np.sin(q["ramp_dir"]) * (cols - s / 2)) / s
    # Smooth field: a 5 x 5 random grid, bilinearly upsampled as up @ grid @ up.T.
    up = np.stack([np.interp(np.linspace(0, 4, s), np.arange(5), e) for e in np.eye(5)], axis=1)
    field = up.astype(np.float32) @ rng.standard_normal((n, 5, 5)).astype(np.float32) @ up.T.astype(np.float32)
    img = q["gain"] * img + q["offset"] + q["ramp"] * ramp + 0.03 * field
    img += q["noise"] * rng.standard_normal((n, s, s)).astype(np.float32)
    lungs = (lungs_q[0] <= 1.0) | (lungs_q[1] <= 1.0)
    return np.clip(img, 0.0, 1.0).astype(np.float32), masks, lungs


def synthetic_chest_xrays(n=1000, image_size=64, positive_fraction=0.5, max_nodules=2, seed=0):
    """Generate synthetic chest radiographs, half of them (by default) with lung nodules.

    Parameters
    ----------
    n : int
        Number of images.
    image_size : int
        Height and width in pixels (at least 32).
    positive_fraction : float
        Share of images with nodules (rounded to a whole number of images).
    max_nodules : int
        Each positive image has 1 to ``max_nodules`` nodules.
    seed : int

    Returns
    -------
    SyntheticChest
        ``x`` (N, S, S, 1) float32 in [0, 1], ``y`` (N,) 0/1, ``nodules``, ``masks``,
        ``lungs``.
    """
    n = _int_arg(n, "n", 0)
    s = _int_arg(image_size, "image_size", 32)
    max_nodules = _int_arg(max_nodules, "max_nodules", 1)
    positive_fraction = check_fraction(positive_fraction, "positive_fraction", upper_open=False)
    seed = _int_arg(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    y = np.zeros(n, np.int64)
    y[: int(round(n * positive_fraction))] = 1
    y = rng.permutation(y)
    params = _draw_params(n, s, rng)
    nodules = _place_nodules(y, params, s, max_nodules, rng)
    x = np.empty((n, s, s, 1), np.float32)
    masks = np.empty((n, s, s), bool)
    lungs = np.empty((n, s, s), bool)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        chunk = {k: v[start:stop] for k, v in params.items()}
        x[start:stop, :, :, 0], masks[start:stop], lungs[start:stop] = _render(chunk, nodules[start:stop], s, rng)
    return SyntheticChest(x, y, nodules, masks, lungs)


def save_synthetic_npz(path, n_train=800, n_val=100, n_test=100, image_size=64, seed=0, **kwargs):
    """Write a synthetic chest set as a MedMNIST-style ``.npz`` (readable by :func:`load_npz`).

    Parameters
    ----------
    path : str or Path
        Output file (``.npz`` is added by numpy if missing).
    n_train, n_val, n_test : int
        Images per split.
    image_size : int
    seed : int
    **kwargs
        ``positive_fraction``, ``max_nodules`` for :func:`synthetic_chest_xrays`.

    Returns
    -------
    Path
        The file written. Keys ``{train,val,test}_images`` uint8 (N, S, S) and
        ``{train,val,test}_labels`` uint8 (N, 1).
    """
    counts = [_int_arg(v, k, 0) for k, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    data = synthetic_chest_xrays(sum(counts), image_size, seed=seed, **kwargs)
    images = np.round(data.x[..., 0] * 255).astype(np.uint8)
    labels = data.y.astype(np.uint8)[:, None]
    arrays, start = {}, 0
    for name, count in zip(("train", "val", "test"), counts, strict=True):
        arrays[f"{name}_images"] = images[start : start + count]
        arrays[f"{name}_labels"] = labels[start : start + count]
        start += count
    path = Path(os.fspath(path))
    np.savez_compressed(path, **arrays)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
