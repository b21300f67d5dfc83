"""Output sizes and padding, shared by every backend (plain Python, no arrays)."""


def pair(v, name="value"):
    """Return ``v`` as a pair of positive ints; accepts an int or a length-2 sequence."""
    if isinstance(v, (int,)) and not isinstance(v, bool):
        out = (v, v)
    else:
        try:
            out = tuple(int(t) for t in v)
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None
        if len(out) != 2 or any(int(t) != t for t in v):
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if out[0] < 1 or out[1] < 1:
        raise ValueError(f"{name} must be positive, got {v!r}")
    return out


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
