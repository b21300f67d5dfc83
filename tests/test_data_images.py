"""Image folders through Pillow: bit depths, formats, bad files, mixed sizes, lazy reading."""

import numpy as np
import pytest
from PIL import Image

from tinycnn.data import ImageFolderDataset, load_image_folder, read_image
from tinycnn.errors import DataError


def _gray8(value, size=(6, 5)):
    return Image.fromarray(np.full(size, value, np.uint8))


def _save(img, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


@pytest.fixture
def folder(tmp_path):
    """Two classes, four formats; pixel values chosen so that each file is recognisable."""
    root = tmp_path / "xray"
    _save(_gray8(51), root / "normal" / "a.png")
    _save(Image.fromarray(np.full((6, 5), 13107, np.uint16)), root / "normal" / "b16.png")  # 0.2 * 65535
    _save(_gray8(204), root / "pneumonia" / "c.tif")
    _save(_gray8(102), root / "pneumonia" / "d.bmp")
    _save(Image.fromarray(np.full((6, 5, 3), (255, 0, 0), np.uint8)), root / "pneumonia" / "e.jpg", quality=100)
    (root / "README.txt").write_text("loose files at the root are not data")
    (root / "normal" / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_load_folder_values_labels_and_scaling(folder):
    data = load_image_folder(folder)
    assert data.class_names == ["normal", "pneumonia"]
    assert [f.rsplit("/", 1)[-1] for f in data.files] == ["a.png", "b16.png", "c.tif", "d.bmp", "e.jpg"]
    np.testing.assert_array_equal(data.y, [0, 0, 1, 1, 1])
    assert data.x.shape == (5, 6, 5, 1) and data.x.dtype == np.float32
    # 8-bit / 255, 16-bit / 65535, RGB red -> luminance 0.299 (JPEG is lossy: loose tolerance).
    np.testing.assert_allclose(data.x[:4, 0, 0, 0], [0.2, 0.2, 0.8, 0.4], atol=1e-6)
    assert abs(data.x[4].mean() - 0.299) < 0.02
    assert data.task == "binary" and data.skipped == []


def test_rgb_output_and_resize(folder):
    data = load_image_folder(folder, image_size=(4, 3), color="rgb")
    assert data.x.shape == (5, 4, 3, 3)
    # Grey files become three equal channels; constant images stay constant through bilinear resizing.
    np.testing.assert_allclose(data.x[0], 0.2, atol=1e-6)
    red = data.x[4].reshape(-1, 3).mean(axis=0)
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1


def test_read_image_16bit_full_range(tmp_path):
    a = np.array([[0, 1000, 65535]], np.uint16)
    path = _save(Image.fromarray(a), tmp_path / "ct.png")
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_allclose(read_image(path)[..., 0], a / 65535.0, rtol=1e-6)


def test_text_file_in_class_folder(folder):
    (folder / "normal" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="notes.txt"):
        load_image_folder(folder)
    data = load_image_folder(folder, skip_bad=True)
    assert len(data.x) == 5
    assert len(data.skipped) == 1 and data.skipped[0][0].endswith("notes.txt") and data.skipped[0][1]


def test_truncated_png(folder):
    good = (folder / "pneumonia" / "big.png")
    _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 5), np.uint8)), good)
    raw = good.read_bytes()
    good.write_bytes(raw[: len(raw) - 30])
    with pytest.raises(DataError, match="big.png"):
        load_image_folder(folder)
    assert [s[0].rsplit("/", 1)[-1] for s in load_image_folder(folder, skip_bad=True).skipped] == ["big.png"]


def test_mixed_sizes_name_both_files(folder):
    _save(_gray8(10, size=(9, 7)), folder / "pneumonia" / "z_large.png")
    with pytest.raises(DataError, match=r"a\.png is 6x5 but .*z_large\.png is 9x7"):
        load_image_folder(folder)
    assert load_image_folder(folder, image_size=8).x.shape == (6, 8, 8, 1)
    with pytest.raises(DataError, match="z_large.png"):
        ImageFolderDataset(folder)


def test_bad_layouts(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    _save(_gray8(1), tmp_path / "flat" / "x.png")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class"):
        load_image_folder(tmp_path / "flat")


def test_nested_files_are_found(tmp_path):
    _save(_gray8(1), tmp_path / "r" / "a" / "patient1" / "1.png")
    _save(_gray8(2), tmp_path / "r" / "b" / "2.png")
    assert load_image_folder(tmp_path / "r").files[0].endswith("patient1/1.png")


def test_dataset_reads_like_an_array(folder):
    eager = load_image_folder(folder, image_size=4)
    ds = ImageFolderDataset(folder, image_size=4)
    assert len(ds) == 5 and ds.shape == (5, 4, 4, 1) and ds.dtype == np.float32 and ds.ndim == 4
    np.testing.assert_array_equal(ds.labels, eager.y)
    assert ds.class_names == eager.class_names
    idx = np.array([4, 0, 4])
    np.testing.assert_allclose(ds[idx], eager.x[idx], atol=1e-6)
    np.testing.assert_allclose(ds[1], eager.x[1], atol=1e-6)
    np.testing.assert_allclose(ds[1:3], eager.x[1:3], atol=1e-6)
    np.testing.assert_allclose(ds[ds.labels == 1], eager.x[eager.y == 1], atol=1e-6)
    np.testing.assert_allclose(ds[[0, 2], ..., 0], eager.x[[0, 2], ..., 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(ds), eager.x, atol=1e-6)
    with pytest.raises(IndexError):
        ds[5]
    sub = ds.subset([3, 1])
    assert sub.shape == (2, 4, 4, 1)
    np.testing.assert_array_equal(sub.labels, eager.y[[3, 1]])
    np.testing.assert_allclose(sub[:], eager.x[[3, 1]], atol=1e-6)


def test_dataset_reads_only_indexed_files(folder):
    ds = ImageFolderDataset(folder)
    # Corrupt a file after construction: reading other images still works, reading it names it.
    victim = ds.files[3]
    raw = open(victim, "rb").read()
    open(victim, "wb").write(raw[:20])
    assert ds[[0, 1, 2]].shape == (3, 6, 5, 1)
    with pytest.raises(DataError, match="d.bmp"):
        ds[[2, 3]]


def test_dataset_skip_bad_headers(folder):
    (folder / "normal" / "junk.png").write_bytes(b"definitely not a png")
    with pytest.raises(DataError, match="junk.png"):
        ImageFolderDataset(folder)
    ds = ImageFolderDataset(folder, skip_bad=True)
    assert len(ds) == 5 and ds.skipped[0][0].endswith("junk.png")
