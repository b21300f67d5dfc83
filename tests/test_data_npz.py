"""MedMNIST-style .npz loading: values, tasks, memory-mapping and damaged archives."""

import zipfile

import numpy as np
import pytest

from tinycnn.data import NpzImages, load_npz, save_synthetic_npz
from tinycnn.errors import ConfigError, DataError


def _medmnist(path, rgb=False, labels=None, compressed=True, n=(6, 3, 3), size=8, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        shape = (count, size, size, 3) if rgb else (count, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (
            labels(count, rng) if labels else rng.integers(0, 2, (count, 1)).astype(np.uint8)
        )
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


def test_grayscale_binary_values_and_shapes(tmp_path):
    path = tmp_path / "pneumonia.npz"
    arrays = _medmnist(path)
    data = load_npz(path)
    x, y = data.train
    assert x.shape == (6, 8, 8, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], arrays["train_images"] / 255.0, rtol=1e-6)
    assert y.shape == (6,) and y.dtype.kind == "i"
    np.testing.assert_array_equal(y, arrays["train_labels"][:, 0])
    assert data.task == "binary" and data.num_classes == 2 and data.class_names == ["0", "1"]
    assert data.val[0].shape == (3, 8, 8, 1) and data.test[1].shape == (3,)
    assert data.input_shape == (8, 8, 1)


def test_rgb_multiclass(tmp_path):
    path = tmp_path / "derma.npz"
    _medmnist(path, rgb=True, labels=lambda n, rng: rng.integers(0, 7, (n, 1)))
    data = load_npz(path)
    assert data.train[0].shape == (6, 8, 8, 3)
    assert data.task == "multiclass"
    # The class count comes from the largest label in any split.
    assert data.num_classes == max(int(p[1].max()) for p in (data.train, data.val, data.test)) + 1


def test_multilabel_keeps_label_matrix(tmp_path):
    path = tmp_path / "chest.npz"
    arrays = _medmnist(path, labels=lambda n, rng: rng.integers(0, 2, (n, 14)))
    data = load_npz(path, class_names=[f"finding{k}" for k in range(14)])
    assert data.task == "multilabel" and data.num_classes == 14
    np.testing.assert_array_equal(data.train[1], arrays["train_labels"])
    assert data.class_names[3] == "finding3"


def test_single_split_and_color_conversion(tmp_path):
    path = tmp_path / "a.npz"
    arrays = _medmnist(path, rgb=True)
    data = load_npz(path, split="test", color="grayscale", image_size=4)
    assert data.train is None and data.val is None
    x = data.test[0]
    assert x.shape == (3, 4, 4, 1)
    # A uniform image stays uniform through luminance and resizing: check one by hand.
    rgb = arrays["test_images"].astype(np.float64) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert abs(x[0].mean() - luma[0].mean()) < 0.05


@pytest.mark.parametrize("compressed", [False, True])
def test_mmap_matches_eager_load(tmp_path, compressed):
    path = tmp_path / "m.npz"
    _medmnist(path, compressed=compressed, n=(20, 4, 4))
    eager = load_npz(path)
    lazy = load_npz(path, mmap=True, cache_dir=tmp_path / "cache" if compressed else None)
    x = lazy.train[0]
    assert isinstance(x, NpzImages) and x.shape == (20, 8, 8, 1) and x.dtype == np.float32
    idx = np.array([5, 0, 5, 19])
    np.testing.assert_array_equal(x[idx], eager.train[0][idx])
    np.testing.assert_array_equal(x[3], eager.train[0][3])
    np.testing.assert_array_equal(x[2:7], eager.train[0][2:7])
    np.testing.assert_array_equal(np.asarray(x), eager.train[0])
    if compressed:
        assert (tmp_path / "cache" / "m-train_images.npy").exists()
    else:
        # Uncompressed members are mapped inside the archive itself, no copy.
        assert isinstance(x.raw, np.memmap) and str(x.raw.filename) == str(path.resolve())


def test_truncated_archive_names_file(tmp_path):
    path = tmp_path / "cut.npz"
    _medmnist(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        load_npz(path)


def test_corrupt_member_names_key(tmp_path):
    path = tmp_path / "bad.npz"
    _medmnist(path, compressed=False)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("val_images.npy")
    raw = bytearray(path.read_bytes())
    # Flip bytes well inside the member's data: the zip CRC check must catch it.
    start = info.header_offset + 30 + len(info.filename) + 140
    raw[start : start + 16] = bytes(255 - b for b in raw[start : start + 16])
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"bad.npz.*val_images"):
        load_npz(path)


def test_missing_key_names_it(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, train_images=np.zeros((2, 4, 4), np.uint8), val_images=np.zeros((1, 4, 4), np.uint8),
             train_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(DataError, match=r"partial.npz.*val_labels"):
        load_npz(path)
    # Only the train part asked for: the missing val labels do not matter.
    assert load_npz(path, split="train").train[0].shape == (2, 4, 4, 1)
    with pytest.raises(DataError, match="test_images"):
        load_npz(path, split="test")
    with pytest.raises(ConfigError):
        load_npz(path, split="validation")


def test_inconsistent_labels_and_missing_file(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, train_images=np.zeros((3, 4, 4), np.uint8), train_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(DataError, match="train_labels"):
        load_npz(path)
    np.savez(path, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.array([[0.5], [1.0]]))
    with pytest.raises(DataError, match="integers"):
        load_npz(path)
    with pytest.raises(DataError, match="nothere.npz"):
        load_npz(tmp_path / "nothere.npz")


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, train_images=np.array([None, 1], dtype=object), train_labels=np.zeros((2, 1)))
    with pytest.raises(DataError, match="train_images"):
        load_npz(path)


def test_save_synthetic_npz_round_trip(tmp_path):
    path = save_synthetic_npz(tmp_path / "synth", n_train=12, n_val=4, n_test=4, image_size=32, seed=3)
    assert path.name == "synth.npz" and path.exists()
    with np.load(path) as f:
        assert f["train_images"].dtype == np.uint8 and f["train_images"].shape == (12, 32, 32)
        assert f["val_labels"].shape == (4, 1)
    data = load_npz(path)
    assert data.task == "binary" and len(data.train[1]) == 12
    assert 0.0 <= data.train[0].min() and data.train[0].max() <= 1.0
