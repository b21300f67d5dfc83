"""Random training-time augmentation of image batches."""

import numpy as np
from scipy import ndimage

from ..errors import ConfigError
from ._common import as_float_images, as_rng

_FILL_MODES = ("nearest", "reflect", "constant", "mirror", "wrap")


def _non_negative(value, name, upper=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (upper is not None and value >= upper):
        bound = f"[0, {upper})" if upper is not None else ">= 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    return value


class Augmenter:
    """Random flips, rotation, shift, brightness and contrast, drawn per image.

    Flips, brightness and contrast run over the whole batch at once; rotation and shift are
    one combined affine resampling per image (``scipy.ndimage.affine_transform``, bilinear),
    so a rotated and shifted image is interpolated once, not twice. The same generator state
    gives the same output.

    Parameters
    ----------
    horizontal_flip : bool
        Mirror left-right with probability 1/2. Beware for chest films, where the heart's side
        is anatomy; turn it off when laterality matters.
    vertical_flip : bool
        Mirror top-bottom with probability 1/2.
    rotation : float
        Maximum rotation in degrees; the angle is uniform in [-rotation, rotation].
    shift : float
        Maximum shift as a fraction of the height / width, uniform in [-shift, shift] per axis.
    brightness : float
        Maximum added offset, uniform in [-brightness, brightness] (in image units: a fraction
        of the range for [0, 1] images).
    contrast : float
        Maximum contrast change: each image's channels are scaled about their mean by a factor
        uniform in [1 - contrast, 1 + contrast].
    fill_mode : {'nearest', 'reflect', 'constant', 'mirror', 'wrap'}
        How pixels brought in from outside the image by rotation / shift are filled
        (``scipy.ndimage`` modes; 'constant' fills with ``cval``).
    cval : float
        Fill value for ``fill_mode='constant'``.
    value_range : (float, float), optional
        Clip the output to this range (e.g. (0, 1)); by default values are not clipped, which
        suits normalised (z-scored) inputs.
    """

    def __init__(
        self,
        horizontal_flip=True,
        vertical_flip=False,
        rotation=10,
        shift=0.05,
        brightness=0.1,
        contrast=0.1,
        fill_mode="nearest",
        cval=0.0,
        value_range=None,
    ):
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.rotation = _non_negative(rotation, "rotation", upper=180.0)
        self.shift = _non_negative(shift, "shift", upper=1.0)
        self.brightness = _non_negative(brightness, "brightness")
        self.contrast = _non_negative(contrast, "contrast", upper=1.0)
        if fill_mode not in _FILL_MODES:
            raise ConfigError(f"fill_mode must be one of {_FILL_MODES}, got {fill_mode!r}")
        self.fill_mode, self.cval = fill_mode, float(cval)
        if value_range is not None:
            try:
                lo, hi = (float(v) for v in value_range)
            except (TypeError, ValueError):
                raise ConfigError(f"value_range must be (low, high), got {value_range!r}") from None
            if not lo < hi:
                raise ConfigError(f"value_range needs low < high, got {value_range!r}")
            value_range = (lo, hi)
        self.value_range = value_range

    def get_config(self):
        """The constructor arguments, a JSON-serialisable dict."""
        keys = ("horizontal_flip", "vertical_flip", "rotation", "shift", "brightness", "contrast")
        config = {k: getattr(self, k) for k in keys}
        config.update(fill_mode=self.fill_mode, cval=self.cval, value_range=self.value_range)
        return config

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Augmenter({args})"

    #: accepts ``rows=``: a distributed fit gives each rank its rows of the global batch's draws
    supports_rows = True

    def __call__(self, x_batch, rng=None, rows=None):
        """Augment a batch.

        Parameters
        ----------
        x_batch : array_like, shape (N, H, W, C)
            Not modified.
        rng : numpy.random.Generator or int, optional
            Source of randomness; default tinycnn's generator (:mod:`tinycnn.random`).
        rows : (lo, hi, n), optional
            ``x_batch`` is rows ``lo:hi`` of a batch of ``n`` images: the draws are made for
            all ``n`` (advancing ``rng`` as for the whole batch) and rows ``lo:hi`` of them
            applied, so the ranks of a distributed fit together augment exactly as one process.

        Returns
        -------
        numpy.ndarray, shape (N, H, W, C), float32
            A new array.
        """
        x = as_float_images(x_batch, "x_batch", ndims=(4,))
        rng = as_rng(rng)
        n, h, w, _ = x.shape
        lo, hi, n_draw = (0, n, n) if rows is None else (int(r) for r in rows)
        if hi - lo != n or not 0 <= lo <= hi <= n_draw:
            raise ConfigError(f"rows={rows!r} do not describe the {n} images of x_batch")
        sel = slice(lo, hi)
        out = x.copy()
        if n == 0:
            return out
        # Every draw is made for the whole batch up front, in a fixed order, so the output
        # depends only on the generator state and the settings.
        if self.horizontal_flip:
            flip = (rng.random(n_draw) < 0.5)[sel]
            out[flip] = out[flip, :, ::-1]
        if self.vertical_flip:
            flip = (rng.random(n_draw) < 0.5)[sel]
            out[flip] = out[flip, ::-1]
        if self.rotation > 0 or self.shift > 0:
            angles = np.deg2rad(rng.uniform(-self.rotation, self.rotation, n_draw))[sel]
            shifts = (rng.uniform(-self.shift, self.shift, (n_draw, 2)) * np.array([h, w]))[sel]
            for i in range(n):
                out[i] = self._affine(out[i], angles[i], shifts[i])
        if self.contrast > 0:
            factor = rng.uniform(1 - self.contrast, 1 + self.contrast, (n_draw, 1, 1, 1)).astype(np.float32)[sel]
            mean = out.mean(axis=(1, 2), keepdims=True)
            out = (out - mean) * factor + mean
        if self.brightness > 0:
            out += rng.uniform(-self.brightness, self.brightness, (n_draw, 1, 1, 1)).astype(np.float32)[sel]
        if self.value_range is not None:
            np.clip(out, *self.value_range, out=out)
        return out

    def _affine(self, img, angle, shift):
        """Rotate ``img`` (H, W, C) by ``angle`` radians about its centre and shift it by (dy, dx)."""
        h, w, c = img.shape
        if angle == 0 and not shift.any():
            return img
        cos, sin = np.cos(angle), np.sin(angle)
        # affine_transform maps each output coordinate o to the input coordinate M @ o + offset;
        # for a rotation R about the centre ctr followed by a shift s: in = R^T (o - ctr - s) + ctr.
        rot = np.array([[cos, sin], [-sin, cos]])
        ctr = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
        offset = ctr - rot.T @ (ctr + shift)
        out = np.empty_like(img)
        for k in range(c):
            ndimage.affine_transform(
                img[:, :, k], rot.T, offset=offset, order=1, mode=self.fill_mode, cval=self.cval, output=out[:, :, k]
            )
        return out
