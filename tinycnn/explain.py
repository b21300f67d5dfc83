"""Explaining a diagnosis: Grad-CAM, saliency maps, overlays and the pointing game.

Every map is computed with the engine's own backpropagation (the layers' ``forward`` /
``backward``), so it works on every backend and for every architecture :class:`Sequential`
can hold. Maps are (N, H, W) float32 in [0, 1] at the input resolution.

>>> cams = grad_cam(model, x_test[:8])                   # last Conv2D, positive class
>>> save_grid("cams.png", x_test[:8], cams, titles=[f"p={p:.2f}" for p in probs[:8]])
>>> pointing_game(cams, nodule_masks, margin=8)           # share of peaks on the lesion

Class scores are taken before the output activation (the logit), as Selvaraju et al. do:
the gradient of a saturated sigmoid or softmax says little about where the evidence lies.
For a single sigmoid output the two classes are 1 (score ``z``) and 0 (score ``-z``); for
K outputs class ``k`` is output ``k``.
"""

import functools
import os

import numpy as np

from . import backend
from .errors import ConfigError, InvalidValueError, ShapeError
from .layers import Conv2D, ResidualBlock

BATCH = 32

# matplotlib's 'inferno' sampled at 11 evenly spaced points (uint8 RGB): linear interpolation
# between them stays within 9/255 of the full colormap. Used when matplotlib is not installed.
_INFERNO_ANCHORS = np.array(
    [[0, 0, 4], [22, 11, 57], [66, 10, 104], [106, 23, 110], [147, 38, 103], [188, 55, 84],
     [221, 81, 58], [243, 120, 25], [252, 165, 10], [246, 215, 70], [252, 255, 164]], np.float64)


# ------------------------------------------------------------------ model plumbing
def _layer_index(model, layer):
    """Index of ``layer`` (name, index, layer object or None: the last Conv2D or ResidualBlock)
    in ``model``."""
    layers = model.layers
    if layer is None:
        convs = [i for i, lay in enumerate(layers) if isinstance(lay, (Conv2D, ResidualBlock))]
        if not convs:
            raise ConfigError("the model has no Conv2D layer; pass layer= a layer with (H, W, C) outputs")
        return convs[-1]
    if isinstance(layer, str):
        for i, lay in enumerate(layers):
            if lay.name == layer:
                return i
        raise ConfigError(f"no layer named {layer!r}; the model has {[lay.name for lay in layers]}")
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise ConfigError(f"layer index {layer} is out of range for a model of {len(layers)} layers")
        return int(layer) % len(layers)
    for i, lay in enumerate(layers):
        if lay is layer:
            return i
    raise ConfigError(f"layer must be a name, an index or a layer of this model, got {layer!r}")


def _ensemble_members(model):
    """The member models of a ``Sequential([Ensemble(...)])``, else None."""
    from .layers import Ensemble

    if len(model.layers) == 1 and isinstance(model.layers[0], Ensemble):
        return model.layers[0].members
    return None


def _check_images(model, images):
    if len(model.layers) == 0:
        raise ConfigError("the model has no layers")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ShapeError(f"images must be a batch (N, H, W, C), got shape {images.shape}"
                         + (" (add a batch axis: images[None])" if images.ndim == 3 else ""))
    # validates the shape against the model, builds it if needed and moves its weights to the
    # active backend (the same path predict() takes)
    model.prepare(images)
    return images


def _forward(model, xb, keep):
    """Inference forward pass; returns (class scores (n, K): the logits, taken before the output
    activation, and the output of layer ``keep``, or None)."""
    B = backend.get()
    kept, start = None, 0
    if keep is not None:
        xb = model.forward(xb, stop=keep + 1)
        kept = np.array(B.to_numpy(xb))  # a copy: later layers may work in place
        start = keep + 1
    out = np.array(B.to_numpy(model.forward(xb, logits=True, start=start)))
    return out.reshape(out.shape[0], -1), kept


def _backward(model, dy, stop):
    """Backpropagate ``dy`` from the output to the output of layer ``stop`` (-1: the input)."""
    B = backend.get()
    d = model.backward(B.asarray(dy.astype(model.dtype, copy=False)), start=stop + 1)
    return np.array(B.to_numpy(d))


def _class_seed(logits, class_index, start):
    """The ``dy`` that selects each image's class score: (n, K), one-hot (sign -1 for class 0
    of a single sigmoid output, whose score is ``-z``)."""
    n, K = logits.shape
    if class_index is None:
        cls = np.ones(n, np.int64) if K == 1 else logits.argmax(axis=1)
    else:
        ci = np.asarray(class_index)
        if ci.dtype.kind not in "iu" or ci.ndim > 1:
            raise ConfigError(f"class_index must be an int or (N,) ints, got {class_index!r}")
        cls = np.broadcast_to(ci, (n,)) if ci.ndim == 0 else ci[start:start + n]
        hi = 2 if K == 1 else K
        if ((cls < 0) | (cls >= hi)).any():
            raise ConfigError(f"class_index must lie in [0, {hi}) for a model with {K} output(s), got {class_index!r}")
    dy = np.zeros((n, K), np.float64)
    if K == 1:
        dy[:, 0] = np.where(cls == 1, 1.0, -1.0)
    else:
        dy[np.arange(n), cls] = 1.0
    return dy


def _check_class_index(class_index, n):
    if class_index is not None and np.ndim(class_index) == 1 and len(class_index) != n:
        raise ShapeError(f"class_index has {len(class_index)} entries for {n} images")


def _normalise(maps):
    """Divide each (H, W) map by its maximum; an all-zero map stays zero."""
    peak = maps.reshape(len(maps), -1).max(axis=1)
    scale = np.where(peak > 0, peak, 1.0)
    return (maps / scale[:, None, None]).astype(np.float32)


def _interp_matrix(n_out, n_in):
    """(n_out, n_in) bilinear weights aligned to pixel centres.

    Output pixel ``i`` samples the input at ``(i + 0.5) * n_in / n_out - 0.5``, so a CAM cell's
    centre lands on the centre of the block of input pixels it summarises; beyond the first and
    last centres the edge value is held (as ``scipy.ndimage.zoom(order=1, grid_mode=True,
    mode='nearest')`` does).
    """
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    return np.stack([np.interp(src, np.arange(n_in), e) for e in np.eye(n_in)], axis=1)


def upsample(maps, size):
    """Bilinear upsampling of maps (N, h, w) to (N, H, W), aligned to pixel centres."""
    maps = np.asarray(maps, np.float64)
    H, W = size
    return _interp_matrix(H, maps.shape[1]) @ maps @ _interp_matrix(W, maps.shape[2]).T


# ------------------------------------------------------------------ maps
def grad_cam(model, images, layer=None, class_index=None):
    """Grad-CAM (Selvaraju et al., 2017) of a convolutional layer.

    ``w[n, k] = mean_{i,j} dS/dA[n, i, j, k]`` and ``cam[n] = ReLU(sum_k w[n, k] A[n, :, :, k])``,
    where ``A`` is the layer's output (after its activation) and ``S`` the class score before
    the output activation. The CAM is upsampled bilinearly to the input size (pixel centres
    aligned) and divided by its maximum. With global average pooling followed by a Dense
    head, ``w`` is the Dense weight divided by h*w, so Grad-CAM equals the class activation
    map (Zhou et al., 2016) up to a positive factor. For an ensemble
    (``Sequential([Ensemble(...)])``) the map is the mean of its members' maps, each for the
    class the ensemble predicts, divided by its maximum.

    Runs in inference mode (batch norm uses its moving statistics, dropout is off) in batches
    of 32; weights, optimizer state, batch-norm statistics and ``layer.grads`` are unchanged
    afterwards.

    Parameters
    ----------
    model : Sequential
    images : array (N, H, W, C)
        As the model takes them.
    layer : str, int, Layer or None
        The layer whose output is explained; any layer with (h, w, K) outputs. Default: the
        last Conv2D or ResidualBlock.
    class_index : int, (N,) ints or None
        The class explained. Default: for a single sigmoid output the positive class (1), else
        the predicted class of each image.

    Returns
    -------
    (N, H, W) float32 in [0, 1]
        0 where no location raises the class score (an all-zero map stays zero).
    """
    images = _check_images(model, images)
    members = _ensemble_members(model)
    if members:
        # the mean of the members' maps, each for the class the ensemble predicts
        if class_index is None and model.output_shape[-1] > 1:
            class_index = model.predict(images, batch_size=BATCH).argmax(axis=1)
        return _normalise(np.mean([grad_cam(m, images, layer, class_index) for m in members], axis=0))
    k = _layer_index(model, layer)
    if len(model.layers[k].output_shape) != 3:
        raise ConfigError(f"layer {model.layers[k].name!r} has outputs of shape {model.layers[k].output_shape}; "
                          "Grad-CAM needs a layer with (H, W, C) outputs, such as a Conv2D")
    if k == len(model.layers) - 1:
        raise ConfigError("Grad-CAM needs a layer before the output layer")
    _check_class_index(class_index, len(images))
    B = backend.get()
    H, W = images.shape[1:3]
    out = np.empty((len(images), H, W), np.float32)
    with model.preserved():
        for s in range(0, len(images), BATCH):
            xb = _finite(images[s:s + BATCH], model.dtype, s)
            logits, A = _forward(model, B.asarray(xb), keep=k)
            G = _backward(model, _class_seed(logits, class_index, s), stop=k)
            weights = G.mean(axis=(1, 2))  # (n, K): the gradient averaged over the map
            cam = np.maximum(np.einsum("nhwk,nk->nhw", A.astype(np.float64), weights), 0.0)
            out[s:s + len(xb)] = _normalise(upsample(cam, (H, W)))
    return out


def _finite(x, dtype, start):
    x = np.asarray(x, dtype=dtype)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0]) + start
        raise InvalidValueError(f"images contain NaN or inf (first at image {bad})")
    return x


def saliency(model, images, class_index=None, smooth=0, noise=0.1, seed=0):
    """Gradient saliency ``|dS/dx|`` (Simonyan et al., 2014), or SmoothGrad with ``smooth > 0``.

    ``map[n, i, j] = max_c |dS/dx[n, i, j, c]|``, S the class score before the output
    activation, divided by its maximum per image. SmoothGrad (Smilkov et al., 2017) averages
    that map over ``smooth`` copies of each image with Gaussian noise of standard deviation
    ``noise * (max - min)`` of the image added.

    Parameters
    ----------
    model : Sequential
    images : array (N, H, W, C)
    class_index : int, (N,) ints or None
        As in :func:`grad_cam`.
    smooth : int
        Number of noisy copies (0: plain gradient).
    noise : float
        Noise level relative to each image's value range.
    seed : int
        Seeds the noise (tinycnn's global generator is not used).

    Returns
    -------
    (N, H, W) float32 in [0, 1]
    """
    if isinstance(smooth, bool) or not isinstance(smooth, (int, np.integer)) or smooth < 0:
        raise ConfigError(f"smooth must be an int >= 0, got {smooth!r}")
    if not isinstance(noise, (int, float, np.floating)) or not np.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a number >= 0, got {noise!r}")
    images = _check_images(model, images)
    _check_class_index(class_index, len(images))
    rng = np.random.default_rng(seed)
    B = backend.get()
    out = np.empty(images.shape[:3], np.float32)
    with model.preserved():
        for s in range(0, len(images), BATCH):
            xb = _finite(images[s:s + BATCH], model.dtype, s)
            copies = [xb]
            if smooth:
                flat = xb.reshape(len(xb), -1)
                std = noise * (flat.max(axis=1) - flat.min(axis=1))
                copies = [xb + (rng.standard_normal(xb.shape) * std[:, None, None, None]).astype(xb.dtype)
                          for _ in range(smooth)]
            acc = np.zeros(xb.shape[:3])
            for xc in copies:
                logits, _ = _forward(model, B.asarray(xc), keep=None)
                # the class is chosen on each copy; for the default on a sigmoid output it is fixed
                G = _backward(model, _class_seed(logits, class_index, s), stop=-1)
                acc += np.abs(G).max(axis=-1)
            out[s:s + len(xb)] = _normalise(acc / len(copies))
    return out


# ------------------------------------------------------------------ pictures
@functools.lru_cache(maxsize=8)
def colormap_lut(cmap="inferno"):
    """A colormap as a (256, 3) uint8 table.

    Taken from matplotlib when it is installed (any of its colormap names); without
    matplotlib only 'inferno' is available, from a built-in table of 11 anchor colours
    interpolated linearly (within 9/255 of matplotlib's).
    """
    try:
        import matplotlib
    except ImportError:
        if cmap != "inferno":
            raise ConfigError(f"colormap {cmap!r} needs matplotlib: pip install tinycnn[plot] "
                              "(without it only 'inferno' is built in)") from None
        return _builtin_inferno()
    try:
        cm = matplotlib.colormaps[cmap]
    except KeyError:
        raise ConfigError(f"unknown colormap {cmap!r}") from None
    lut = np.round(cm(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    lut.setflags(write=False)  # cached and shared between callers
    return lut


def _builtin_inferno():
    """(256, 3) uint8: the 'inferno' anchors interpolated linearly."""
    t = np.linspace(0, 1, len(_INFERNO_ANCHORS))
    x = np.linspace(0, 1, 256)
    lut = np.round(np.stack([np.interp(x, t, _INFERNO_ANCHORS[:, c]) for c in range(3)], axis=1)).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def display_rgb(image):
    """An image (H, W), (H, W, 1) or (H, W, 3) as float RGB in [0, 1] for display.

    uint8 images are divided by 255; float images already in [0, 1] are kept as they are (so
    exposure differences between cases stay visible); others are min-max scaled.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ShapeError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {np.shape(image)}")
    if img.dtype == np.uint8:
        img = img / 255.0
    else:
        img = np.asarray(img, np.float64)
        lo, hi = float(img.min()), float(img.max())
        if lo < 0 or hi > 1:
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def overlay(image, heatmap, alpha=0.4, cmap="inferno"):
    """Blend a heatmap over an image: ``(1 - alpha) * image + alpha * cmap(heatmap)``.

    Parameters
    ----------
    image : array (H, W), (H, W, 1) or (H, W, 3)
        Float (in [0, 1], else min-max scaled) or uint8.
    heatmap : array (H, W)
        Values in [0, 1] (clipped).
    alpha : float in [0, 1]
    cmap : str
        A perceptually uniform colormap by default; see :func:`colormap_lut`.

    Returns
    -------
    (H, W, 3) uint8 RGB
    """
    if not isinstance(alpha, (int, float, np.floating)) or not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
    rgb = display_rgb(image)
    heat = np.asarray(heatmap, np.float64)
    if heat.shape != rgb.shape[:2]:
        raise ShapeError(f"heatmap has shape {heat.shape}, the image {rgb.shape[:2]}")
    if not np.isfinite(heat).all():
        raise InvalidValueError("heatmap contains NaN or inf")
    idx = np.round(np.clip(heat, 0, 1) * 255).astype(np.int64)
    colour = colormap_lut(cmap)[idx] / 255.0
    return np.round(255 * ((1 - alpha) * rgb + alpha * colour)).astype(np.uint8)


def save_overlay(path, image, heatmap, alpha=0.4):
    """Write :func:`overlay` of ``image`` and ``heatmap`` as a PNG file."""
    from PIL import Image

    Image.fromarray(overlay(image, heatmap, alpha)).save(os.fspath(path), format="PNG")


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def save_grid(path, images, heatmaps, titles=None, columns=4, alpha=0.4, tile=160):
    """Write one PNG with the overlays of several cases, a title above each.

    Parameters
    ----------
    path : str or Path
    images : array (N, H, W[, C])
    heatmaps : array (N, H, W)
    titles : list of N str, optional
    columns : int
    alpha : float
        As in :func:`overlay`.
    tile : int
        Small images are enlarged (by a whole factor, nearest neighbour, so no detail is
        invented) to at least this many pixels across.
    """
    from PIL import Image, ImageDraw

    n = len(images)
    if n == 0 or len(heatmaps) != n:
        raise ShapeError(f"save_grid needs as many heatmaps as images (at least one), got {n} and {len(heatmaps)}")
    if titles is not None and len(titles) != n:
        raise ShapeError(f"{len(titles)} titles for {n} images")
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ConfigError(f"columns must be a positive int, got {columns!r}")
    tiles = [overlay(im, hm, alpha) for im, hm in zip(images, heatmaps, strict=True)]
    h, w = tiles[0].shape[:2]
    f = max(1, -(-tile // max(h, w)))
    font = _font(12)
    pad, strip = 4, (18 if titles is not None else 0)
    cols = min(columns, n)
    rows = -(-n // cols)
    cw, ch = w * f + 2 * pad, h * f + 2 * pad + strip
    sheet = Image.new("RGB", (cols * cw, rows * ch), "white")
    draw = ImageDraw.Draw(sheet)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        x0, y0 = c * cw + pad, r * ch + pad
        sheet.paste(Image.fromarray(t).resize((w * f, h * f), Image.NEAREST), (x0, y0 + strip))
        if titles is not None:
            draw.text((x0, y0 + 1), str(titles[i]), fill="black", font=font)
    sheet.save(os.fspath(path), format="PNG")


# ------------------------------------------------------------------ evaluation
def pointing_game(heatmaps, masks, margin=0):
    """Share of cases whose heatmap peak falls on the target (Zhang et al., 2016).

    A hit is a peak (the first maximum in row-major order) inside the mask dilated by
    ``margin`` pixels (a disk: every pixel within Euclidean distance ``margin`` of the mask).
    A constant map points nowhere and counts as a miss.

    Parameters
    ----------
    heatmaps : array (N, H, W)
    masks : bool array (N, H, W)
        Each with at least one pixel set.
    margin : int >= 0

    Returns
    -------
    float in [0, 1]
    """
    from scipy import ndimage

    heat = np.asarray(heatmaps, np.float64)
    masks = np.asarray(masks).astype(bool)
    if heat.ndim != 3 or heat.shape != masks.shape:
        raise ShapeError(f"heatmaps and masks must both be (N, H, W); got {heat.shape} and {masks.shape}")
    if len(heat) == 0:
        raise InvalidValueError("pointing_game needs at least one case")
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ConfigError(f"margin must be an int >= 0, got {margin!r}")
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
    if empty.size:
        raise InvalidValueError(f"mask {int(empty[0])} is empty: the pointing game needs a target in every case")
    r = np.arange(-margin, margin + 1)
    disk = (r[:, None] ** 2 + r[None, :] ** 2) <= margin**2
    hits = 0
    for hm, m in zip(heat, masks, strict=True):
        if hm.max() == hm.min():
            continue
        i, j = np.unravel_index(np.argmax(hm), hm.shape)
        target = ndimage.binary_dilation(m, structure=disk) if margin else m
        hits += bool(target[i, j])
    return hits / len(heat)


# ------------------------------------------------------------------ by method name
METHODS = ("gradcam", "saliency", "smoothgrad")


def explain_images(model, x, method="gradcam", layer=None):
    """Maps (N, H, W) of ``method`` ('gradcam', 'saliency' or 'smoothgrad', 25 noisy copies)."""
    if method == "gradcam":
        return grad_cam(model, x, layer=layer)
    if layer is not None:
        raise ConfigError(f"layer applies to method 'gradcam' only, not {method!r}")
    if method == "saliency":
        return saliency(model, x)
    if method == "smoothgrad":
        return saliency(model, x, smooth=25)
    raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
