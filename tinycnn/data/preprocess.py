"""Preprocessing: crops, resizing, intensity normalisation, CT windowing, colour conversion.

Every function takes one image (H, W) or (H, W, C), or a batch (N, H, W, C), and returns a new
float32 array of the same layout (a 3-D array is always read as one (H, W, C) image). Values are
taken as they are: Hounsfield units, raw MR intensities or [0, 1] pixels all pass through
unscaled until :func:`normalize` or :func:`window` maps them to a range.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ConfigError, InvalidValueError, ShapeError
from ._common import as_float_images, as_size

#: CT windows as (center, width) in Hounsfield units.
WINDOW_PRESETS = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "brain": (40.0, 80.0),
    "bone": (400.0, 1800.0),
}

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# ITU-R BT.601 luma, the weights Pillow's convert('L') uses.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _spatial_axes(x):
    """Index of the H axis: 0 for (H, W) and (H, W, C), 1 for (N, H, W, C)."""
    return 1 if x.ndim == 4 else 0


def crop(x, box):
    """Cut a rectangle out of each image.

    Parameters
    ----------
    x : array_like, shape (H, W), (H, W, C) or (N, H, W, C)
    box : tuple of int
        ``(top, left, height, width)`` in pixels; the rectangle must lie inside the image.

    Returns
    -------
    numpy.ndarray, float32, shape (height, width), (height, width, C) or (N, height, width, C)
    """
    x = as_float_images(x)
    try:
        top, left, height, width = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"box must be (top, left, height, width) ints, got {box!r}") from None
    if top < 0 or left < 0 or height < 1 or width < 1:
        raise ConfigError(f"box needs top, left >= 0 and height, width >= 1, got {box!r}")
    a = _spatial_axes(x)
    h, w = x.shape[a], x.shape[a + 1]
    if top + height > h or left + width > w:
        raise ShapeError(f"box {box!r} does not fit in images of size {h}x{w}")
    index = [slice(None)] * x.ndim
    index[a] = slice(top, top + height)
    index[a + 1] = slice(left, left + width)
    return x[tuple(index)].copy()


def center_crop(x, size):
    """Cut the central ``size`` rectangle out of each image.

    Parameters
    ----------
    x : array_like, shape (H, W), (H, W, C) or (N, H, W, C)
    size : int or (int, int)
        Output (height, width), at most the input's; an odd margin leaves its extra pixel at
        the bottom / right.

    Returns
    -------
    numpy.ndarray, float32, with H, W replaced by ``size``
    """
    x = as_float_images(x)
    height, width = as_size(size, "size")
    a = _spatial_axes(x)
    h, w = x.shape[a], x.shape[a + 1]
    if height > h or width > w:
        raise ShapeError(f"center_crop size {height}x{width} is larger than the images ({h}x{w})")
    return crop(x, ((h - height) // 2, (w - width) // 2, height, width))


def resize(x, size, method="bilinear"):
    """Resample each image to ``size`` with Pillow.

    Every channel goes through Pillow as a 32-bit float ('F' mode) image, so 16-bit values,
    Hounsfield units and negative numbers keep their scale (an 8-bit round trip would not).
    Pillow's filters widen with the scale factor, so shrinking is antialiased.

    Parameters
    ----------
    x : array_like, shape (H, W), (H, W, C) or (N, H, W, C)
    size : int or (int, int)
        Output (height, width).
    method : {'bilinear', 'nearest', 'bicubic', 'lanczos', 'box', 'hamming'}

    Returns
    -------
    numpy.ndarray, float32, with H, W replaced by ``size``
    """
    x = as_float_images(x)
    height, width = as_size(size, "size")
    if method not in _RESAMPLE:
        raise ConfigError(f"method must be one of {sorted(_RESAMPLE)}, got {method!r}")
    squeeze_batch, squeeze_channel = x.ndim < 4, x.ndim == 2
    batch = x[None, :, :, None] if x.ndim == 2 else x[None] if x.ndim == 3 else x
    if batch.shape[1:3] == (height, width):
        out = batch.copy()
    else:
        out = np.empty((batch.shape[0], height, width, batch.shape[3]), np.float32)
        for n in range(batch.shape[0]):
            for c in range(batch.shape[3]):
                img = Image.fromarray(np.ascontiguousarray(batch[n, :, :, c]))
                out[n, :, :, c] = np.asarray(img.resize((width, height), _RESAMPLE[method]))
    if squeeze_batch:
        out = out[0]
    if squeeze_channel:
        out = out[..., 0]
    return out


@dataclass
class NormalizationStats:
    """Per-channel statistics of a data set, from :func:`fit_normalization`.

    Attributes
    ----------
    mean, std, min, max : numpy.ndarray, shape (C,), float32
    """

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray


def fit_normalization(x, chunk=256):
    """Per-channel mean, standard deviation, minimum and maximum over a whole data set.

    Works through ``x`` ``chunk`` images at a time (merging the partial moments, Chan et al.),
    so a lazy array such as :class:`ImageFolderDataset` is never read whole.

    Parameters
    ----------
    x : array_like or lazy array, shape (N, H, W, C)
    chunk : int
        Images read at a time.

    Returns
    -------
    NormalizationStats
        Each field has shape (C,).
    """
    if getattr(x, "ndim", None) != 4:
        x = as_float_images(x, ndims=(4,))
    if len(x) == 0:
        raise InvalidValueError("fit_normalization needs at least one image")
    count, mean, m2 = 0, 0.0, 0.0
    lo, hi = np.inf, -np.inf
    for start in range(0, len(x), chunk):
        part = np.asarray(x[start : start + chunk], np.float64).reshape(-1, x.shape[-1])
        n_b, mean_b = part.shape[0], part.mean(axis=0)
        m2_b = ((part - mean_b) ** 2).sum(axis=0)
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total
        lo, hi = np.minimum(lo, part.min(axis=0)), np.maximum(hi, part.max(axis=0))
    f32 = lambda a: np.asarray(a, np.float32)
    return NormalizationStats(f32(mean), f32(np.sqrt(m2 / count)), f32(lo), f32(hi))


def _own_stats(x):
    """Statistics of ``x`` itself, whatever its layout."""
    if x.ndim == 2:
        x = x[..., None]
    return fit_normalization(x[None] if x.ndim == 3 else x)


def normalize(x, method="minmax", per_image=True, mean=None, std=None, stats=None):
    """Rescale intensities.

    'minmax' maps [min, max] to [0, 1]; 'zscore' maps to zero mean and unit standard deviation.
    With ``per_image=True`` each image uses its own statistics (over H, W and C); a constant
    image becomes all zeros. With ``per_image=False`` one set of per-channel statistics is used
    for all images: ``mean`` / ``std`` (z-score only), else ``stats`` from
    :func:`fit_normalization` (fit it on the training split and reuse it for val / test), else
    the statistics of ``x`` itself.

    Parameters
    ----------
    x : array_like, shape (H, W), (H, W, C) or (N, H, W, C)
    method : {'minmax', 'zscore'}
    per_image : bool
    mean, std : float or array_like of shape (C,), optional
    stats : NormalizationStats, optional

    Returns
    -------
    numpy.ndarray, float32, same shape as ``x``
    """
    x = as_float_images(x)
    if method not in ("minmax", "zscore"):
        raise ConfigError(f"method must be 'minmax' or 'zscore', got {method!r}")
    if per_image:
        if mean is not None or std is not None or stats is not None:
            raise ConfigError("mean, std and stats are dataset statistics: pass them with per_image=False")
        axes = tuple(range(1, x.ndim)) if x.ndim == 4 else None
        if method == "minmax":
            lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
            return ((x - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
        m, s = x.mean(axis=axes, keepdims=True), x.std(axis=axes, keepdims=True)
        return ((x - m) / np.where(s > 0, s, 1.0)).astype(np.float32)
    if method == "minmax":
        if mean is not None or std is not None:
            raise ConfigError("mean and std apply to method='zscore'; for 'minmax' pass stats")
        stats = stats if stats is not None else _own_stats(x)
        lo, hi = np.asarray(stats.min, np.float32), np.asarray(stats.max, np.float32)
        return ((x - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
    if (mean is None) != (std is None):
        raise ConfigError("pass both mean and std, or neither")
    if mean is None:
        stats = stats if stats is not None else _own_stats(x)
        mean, std = stats.mean, stats.std
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise InvalidValueError(f"std must be finite and non-negative, got {s}")
    return ((x - m) / np.where(s > 0, s, 1.0)).astype(np.float32)


def window(x, center=None, width=None, preset=None):
    """Apply a CT display window: [center - width/2, center + width/2] -> [0, 1], clipped.

    This is the plain linear window (DICOM's VOI formula differs by half a grey level).

    Parameters
    ----------
    x : array_like, any shape (elementwise), e.g. (H, W), (F, H, W) or (N, H, W, C)
        Values in Hounsfield units (or any modality units).
    center, width : float, optional
        Window center and width; give both, or a ``preset``.
    preset : {'lung', 'mediastinum', 'brain', 'bone'}, optional
        (center, width) = lung (-600, 1500), mediastinum (50, 350), brain (40, 80),
        bone (400, 1800).

    Returns
    -------
    numpy.ndarray, float32 in [0, 1], same shape as ``x``
    """
    x = as_float_images(x, ndims=None)
    if preset is not None:
        if center is not None or width is not None:
            raise ConfigError("give either a preset or center and width, not both")
        if preset not in WINDOW_PRESETS:
            raise ConfigError(f"preset must be one of {sorted(WINDOW_PRESETS)}, got {preset!r}")
        center, width = WINDOW_PRESETS[preset]
    elif center is None or width is None:
        raise ConfigError("window needs a preset or both center and width")
    center, width = float(center), float(width)
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise ConfigError(f"window width must be positive and finite, got center={center}, width={width}")
    low = center - width / 2.0
    return np.clip((x - np.float32(low)) / np.float32(width), 0.0, 1.0).astype(np.float32)


def to_grayscale(x):
    """RGB to one luminance channel (0.299 R + 0.587 G + 0.114 B, as Pillow's 'L').

    Parameters
    ----------
    x : array_like, shape (H, W), (..., 1), (..., 3) or (..., 4)
        A 4th (alpha) channel is dropped; (H, W) is already grey and is returned as is.

    Returns
    -------
    numpy.ndarray, float32, shape (H, W) for (H, W) input, else (..., 1)
    """
    x = as_float_images(x)
    if x.ndim == 2 or x.shape[-1] == 1:
        return x.copy()
    if x.shape[-1] not in (3, 4):
        raise ShapeError(f"to_grayscale needs 1, 3 or 4 channels, got shape {x.shape}")
    return (x[..., :3] @ _LUMA)[..., None].astype(np.float32)


def to_rgb(x):
    """Grey to three equal channels (for models that take RGB input).

    Parameters
    ----------
    x : array_like, shape (H, W), (..., 1) or (..., 3)

    Returns
    -------
    numpy.ndarray, float32, shape (..., 3)
    """
    x = as_float_images(x)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 3:
        return x.copy()
    if x.shape[-1] != 1:
        raise ShapeError(f"to_rgb needs 1 or 3 channels, got shape {x.shape}")
    return np.repeat(x, 3, axis=-1)
