"""Output sizes and padding, shared by every backend (plain Python, no arrays)."""


def conv_output_size(size, k, s, padding):
    """Output length along one axis, and the (before, after) padding.

    'valid': ``O = floor((size - k) / s) + 1``, no padding.
    'same' (TensorFlow/Keras rule): ``O = ceil(size / s)``; total padding
    ``max((O - 1) * s + k - size, 0)`` split with the smaller half before.
    """
    if padding == "valid":
        if size < k:
            return 0, (0, 0)
        return (size - k) // s + 1, (0, 0)
    if padding == "same":
        o = -(-size // s)
        total = max((o - 1) * s + k - size, 0)
        return o, (total // 2, total - total // 2)
    raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


def conv_geometry(H, W, KH, KW, stride, padding):
    """Return ``(OH, OW, (pt, pb, pl, pr))`` for a window of KH x KW moved with ``stride``."""
    sh, sw = stride
    OH, (pt, pb) = conv_output_size(H, KH, sh, padding)
    OW, (pl, pr) = conv_output_size(W, KW, sw, padding)
    return OH, OW, (pt, pb, pl, pr)
