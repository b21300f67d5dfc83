"""Fuzzing the loaders and metrics: random bytes and arrays either load or raise tinycnn's errors."""

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import tinycnn
from tinycnn import data, metrics


def _expect_ok_or_tinycnn(fn, *a, **k):
    try:
        return fn(*a, **k), None
    except tinycnn.TinyCNNError as e:
        assert str(e)
        return None, e


def _valid_png():
    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _valid_png()


@given(raw=st.binary(max_size=600), suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".dcm", ".txt"]))
def test_random_bytes_as_an_image_file(tmp_path_factory, raw, suffix):
    f = tmp_path_factory.mktemp("img") / f"case{suffix}"
    f.write_bytes(raw)
    _, err = _expect_ok_or_tinycnn(data.read_images, [f], image_size=8, skip_bad=False)
    if err is not None:
        assert isinstance(err, tinycnn.DataError) and "case" in str(err)  # names the file


@given(cut=st.integers(0, len(PNG) - 1), flip=st.integers(0, 255))
def test_truncated_or_damaged_png(tmp_path_factory, cut, flip):
    f = tmp_path_factory.mktemp("png") / "x.png"
    raw = bytearray(PNG[:cut] if cut % 2 else PNG)
    if not cut % 2 and raw:
        raw[cut % len(raw)] ^= flip
    f.write_bytes(bytes(raw))
    out, err = _expect_ok_or_tinycnn(data.read_images, [f], image_size=8, skip_bad=False)
    if out is not None:
        x = out[0]
        assert x.shape == (1, 8, 8, 1) and np.isfinite(x).all()


@given(raw=st.binary(max_size=800))
def test_random_bytes_as_npz(tmp_path_factory, raw):
    f = tmp_path_factory.mktemp("npz") / "d.npz"
    f.write_bytes(raw)
    _, err = _expect_ok_or_tinycnn(data.load_npz, f)
    assert isinstance(err, tinycnn.DataError)


def test_truncated_npz_at_every_tenth_byte(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, train_images=np.zeros((4, 6, 6), np.uint8), train_labels=np.zeros((4, 1), int))
    raw = good.read_bytes()
    for cut in range(0, len(raw) - 1, max(1, len(raw) // 40)):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(tinycnn.DataError):
            data.load_npz(bad)


labels = hnp.arrays(np.float64, st.integers(0, 12), elements=st.sampled_from([0.0, 1.0, 2.0, 0.5, np.nan, -1.0]))
scores = hnp.arrays(np.float64, st.integers(0, 12), elements=st.floats(-2, 2) | st.just(np.nan))


@given(y=labels, s=scores, fn=st.sampled_from([metrics.roc_auc, metrics.accuracy, metrics.precision, metrics.recall,
                                               metrics.specificity, metrics.f1_score, metrics.confusion_matrix,
                                               metrics.threshold_for_sensitivity, metrics.roc_curve]))
def test_metrics_on_random_inputs(y, s, fn):
    out, err = _expect_ok_or_tinycnn(fn, y, s)
    if err is None:
        assert out is not None
