"""load_dataset: dispatch on the path, stratified folder splits, lazy parts."""

import numpy as np
import pytest
from PIL import Image

from tinycnn.data import ImageFolderDataset, NpzImages, detect_format, load_dataset, save_synthetic_npz
from tinycnn.errors import ConfigError, DataError


@pytest.fixture
def image_root(tmp_path):
    """20 'normal' and 10 'nodule' 8x8 PNGs whose pixel value encodes (class, index)."""
    root = tmp_path / "imgs"
    for name, count, base in (("normal", 20, 0), ("nodule", 10, 100)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8), base + i, np.uint8)).save(root / name / f"{i:02d}.png")
    return root


def test_image_folder_is_split_stratified(image_root):
    data = load_dataset(image_root, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert data.class_names == ["nodule", "normal"] and data.task == "binary" and data.num_classes == 2
    sizes = {name: np.bincount(getattr(data, name)[1], minlength=2) for name in ("train", "val", "test")}
    np.testing.assert_array_equal(sizes["train"], [6, 12])
    np.testing.assert_array_equal(sizes["val"], [2, 4])
    np.testing.assert_array_equal(sizes["test"], [2, 4])
    # Every image lands in exactly one part, with its own label: pixel >= 100 <=> class 'nodule' (0).
    values = np.concatenate([np.round(getattr(data, n)[0][:, 0, 0, 0] * 255) for n in ("train", "val", "test")])
    labels = np.concatenate([getattr(data, n)[1] for n in ("train", "val", "test")])
    assert sorted(values.tolist()) == list(range(20)) + list(range(100, 110))
    np.testing.assert_array_equal(values >= 100, labels == 0)


def test_zero_val_fraction_gives_none_and_rgb(image_root):
    data = load_dataset(image_root, color="rgb", image_size=4, val_fraction=0.0, test_fraction=0.3)
    assert data.val is None and data.train[0].shape[1:] == (4, 4, 3)
    assert data.input_shape == (4, 4, 3)


def test_lazy_image_folder_parts(image_root):
    eager = load_dataset(image_root, seed=3)
    lazy = load_dataset(image_root, seed=3, lazy=True)
    x = lazy.train[0]
    assert isinstance(x, ImageFolderDataset) and x.shape == eager.train[0].shape
    np.testing.assert_array_equal(lazy.train[1], eager.train[1])
    np.testing.assert_allclose(x[np.array([2, 0])], eager.train[0][[2, 0]])


def test_npz_dispatch_and_lazy(tmp_path):
    path = save_synthetic_npz(tmp_path / "s.npz", 10, 4, 4, image_size=32, seed=0)
    data = load_dataset(path)
    assert len(data.train[1]) == 10 and len(data.val[1]) == 4  # the archive's own split is kept
    lazy = load_dataset(path, lazy=True)
    assert isinstance(lazy.test[0], NpzImages)
    np.testing.assert_array_equal(lazy.test[0][:], data.test[0])
    assert detect_format(path) == "npz"


def test_bad_paths(tmp_path, image_root):
    with pytest.raises(DataError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(DataError, match="table.csv"):
        load_dataset(other)
    single = tmp_path / "one"
    (single / "only").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(single / "only" / "a.png")
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(single)
    with pytest.raises(ConfigError):
        load_dataset(image_root, val_fraction=0.6, test_fraction=0.4)
    assert detect_format(image_root) == "images"
