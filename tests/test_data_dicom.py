"""DICOM reading: rescale to modality units, MONOCHROME1, multi-frame, folders, bad files."""

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid  # noqa: E402

from tinycnn.data import load_dataset, load_dicom_folder, read_dicom  # noqa: E402
from tinycnn.errors import DataError  # noqa: E402


def make_dicom(path, pixels, photometric="MONOCHROME2", bits_stored=16, slope=None, intercept=None,
               per_frame_rescale=None, modality_lut=None):
    """Write an uncompressed CT DICOM of ``pixels`` (H, W) or (F, H, W), uint16 or int16."""
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if per_frame_rescale is not None:
        groups = []
        for s, b in per_frame_rescale:
            item, group = Dataset(), Dataset()
            item.RescaleSlope, item.RescaleIntercept, item.RescaleType = s, b, "HU"
            group.PixelValueTransformationSequence = [item]
            groups.append(group)
        ds.PerFrameFunctionalGroupsSequence = groups
    if modality_lut is not None:
        item = Dataset()
        item.add_new(0x00283002, "US", [len(modality_lut), 0, 16])  # LUT Descriptor
        item.add_new(0x00283006, "US", list(modality_lut))  # LUT Data
        item.ModalityLUTType = "HU"
        ds.ModalityLUTSequence = [item]
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _bundled(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not bundled here")
    return path


def test_bundled_ct_is_in_hounsfield_units():
    path = _bundled("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = read_dicom(path)
    assert hu.shape == (ds.Rows, ds.Columns) and hu.dtype == np.float32
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, expected.astype(np.float32))
    assert float(ds.RescaleIntercept) == -1024.0  # so the shift really is tested


def test_bundled_mr_without_rescale_is_unchanged():
    path = _bundled("MR_small.dcm")
    np.testing.assert_array_equal(read_dicom(path), pydicom.dcmread(path).pixel_array.astype(np.float32))


def test_rescale_slope_intercept(tmp_path):
    raw = np.array([[0, 1, 2], [1000, 2000, 4095]], np.uint16)
    out = read_dicom(make_dicom(tmp_path / "r.dcm", raw, bits_stored=12, slope=2, intercept=-1024))
    np.testing.assert_array_equal(out, [[-1024, -1022, -1020], [976, 2976, 7166]])


def test_monochrome1_is_inverted_within_bits_stored(tmp_path):
    raw = np.array([[0, 100], [4000, 4095]], np.uint16)
    out = read_dicom(make_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1", bits_stored=12))
    np.testing.assert_array_equal(out, [[4095, 3995], [95, 0]])


def test_multiframe_with_per_frame_rescale(tmp_path):
    raw = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) - 20
    rescale = [(1, 0), (2, -10), (0.5, 100)]
    out = read_dicom(make_dicom(tmp_path / "mf.dcm", raw, per_frame_rescale=rescale))
    assert out.shape == (3, 4, 5)
    for k, (s, b) in enumerate(rescale):
        np.testing.assert_allclose(out[k], raw[k] * s + b)


def test_modality_lut_sequence(tmp_path):
    raw = np.array([[0, 1], [2, 3]], np.uint16)
    out = read_dicom(make_dicom(tmp_path / "lut.dcm", raw, bits_stored=2, modality_lut=[10, 20, 30, 40]))
    np.testing.assert_array_equal(out, [[10, 20], [30, 40]])


def test_bundled_colour_multiframe():
    path = _bundled("SC_rgb_rle_2frame.dcm")
    out = read_dicom(path)
    assert out.shape == (2, 100, 100, 3)
    np.testing.assert_array_equal(out, pydicom.dcmread(path).pixel_array.astype(np.float32))


def test_non_dicom_and_no_pixels(tmp_path):
    fake = tmp_path / "scan.dcm"
    fake.write_text("hello")
    with pytest.raises(DataError, match="scan.dcm"):
        read_dicom(fake)
    with pytest.raises(DataError, match="no pixel data"):
        read_dicom(_bundled("rtplan.dcm"))
    with pytest.raises(DataError, match="MR_truncated"):
        read_dicom(_bundled("MR_truncated.dcm"))
    with pytest.raises(DataError, match="no such file"):
        read_dicom(tmp_path / "absent.dcm")


@pytest.fixture
def dicom_folder(tmp_path):
    root = tmp_path / "ct"
    make_dicom(root / "normal" / "1.dcm", np.full((4, 4), 1024, np.uint16), slope=1, intercept=-1024)  # 0 HU
    make_dicom(root / "normal" / "2.dcm", np.full((4, 4), 124, np.uint16), slope=1, intercept=-1024)  # -900 HU
    frames = np.stack([np.full((4, 4), v, np.uint16) for v in (1074, 1424)])  # 50 and 400 HU
    make_dicom(root / "tumour" / "p1" / "series", frames, slope=1, intercept=-1024)  # no extension
    (root / "tumour" / "DICOMDIR").write_bytes(b"ignored by name")
    return root


def test_folder_frames_labels_and_window(dicom_folder):
    data = load_dicom_folder(dicom_folder)
    assert data.class_names == ["normal", "tumour"]
    np.testing.assert_array_equal(data.y, [0, 0, 1, 1])
    np.testing.assert_array_equal(data.x[:, 0, 0, 0], [0, -900, 50, 400])
    assert data.files[2].endswith("series#0") and data.files[3].endswith("series#1")
    # Mediastinum window: center 50, width 350 -> [-125, 225] maps to [0, 1].
    windowed = load_dicom_folder(dicom_folder, window="mediastinum", image_size=2, color="rgb")
    assert windowed.x.shape == (4, 2, 2, 3)
    np.testing.assert_allclose(windowed.x[:, 0, 0, 0], [125 / 350, 0.0, 175 / 350, 1.0], rtol=1e-6)


def test_folder_bad_file_and_mixed_sizes(dicom_folder):
    (dicom_folder / "normal" / "3.dcm").write_text("not dicom")
    with pytest.raises(DataError, match="3.dcm"):
        load_dicom_folder(dicom_folder)
    data = load_dicom_folder(dicom_folder, skip_bad=True)
    assert len(data.x) == 4 and data.skipped[0][0].endswith("3.dcm")
    (dicom_folder / "normal" / "3.dcm").unlink()
    make_dicom(dicom_folder / "tumour" / "big.dcm", np.zeros((6, 6), np.uint16))
    with pytest.raises(DataError, match=r"1\.dcm is 4x4 but .*big\.dcm is 6x6"):
        load_dicom_folder(dicom_folder)


def test_load_dataset_detects_dicom_and_scales(dicom_folder):
    data = load_dataset(dicom_folder, val_fraction=0.25, test_fraction=0.25, seed=1)
    parts = [p for p in (data.train, data.val, data.test) if p is not None]
    assert sum(len(p[1]) for p in parts) == 4
    # Without a window each image is min-max scaled: all values inside [0, 1].
    for x, _ in parts:
        assert x.min() >= 0.0 and x.max() <= 1.0
    windowed = load_dataset(dicom_folder, window=(50, 350), val_fraction=0.25, test_fraction=0.25, seed=1)
    all_x = np.concatenate([p[0] for p in (windowed.train, windowed.val, windowed.test) if p is not None])
    assert np.isclose(all_x[:, 0, 0, 0], 1.0).sum() == 1  # only the 400 HU frame saturates


def make_palette_dicom(path, indices, lut):
    """Write an 8-bit PALETTE COLOR DICOM (as ultrasound machines do): ``indices`` (H, W) uint8
    index the colour tables ``lut`` (256, 3) uint16."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = indices.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for k, colour in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        ds.add_new(0x00281201 + k, "OW", lut[:, k].astype("<u2").tobytes())  # the colour's LUT data
    ds.PixelData = indices.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _palette():
    ramp = np.arange(256, dtype=np.uint16) * 257  # 16-bit tables
    return np.stack([ramp, ramp[::-1], np.full(256, 1000, np.uint16)], axis=1)


def test_palette_colour_dicom_is_mapped_through_its_colour_tables(tmp_path):
    indices = np.array([[0, 10, 255], [128, 3, 77]], np.uint8)
    lut = _palette()
    out = read_dicom(make_palette_dicom(tmp_path / "us.dcm", indices, lut))
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, lut[indices].astype(np.float32))


def test_a_folder_of_palette_colour_dicoms_loads(tmp_path):
    rng = np.random.default_rng(3)
    for cls in ("benign", "malignant"):
        for i in range(4):
            make_palette_dicom(tmp_path / "us" / cls / f"{i}.dcm", rng.integers(0, 256, (6, 6), dtype=np.uint8),
                               _palette())
    data = load_dataset(tmp_path / "us", color="rgb", val_fraction=0.25, test_fraction=0.25)
    assert data.class_names == ["benign", "malignant"] and data.train[0].shape[1:] == (6, 6, 3)
    assert not data.skipped


@pytest.mark.parametrize("kw", [{}, {"window": "mediastinum", "image_size": 2, "color": "rgb"}])
def test_lazy_dicom_folder_equals_the_loaded_one(dicom_folder, kw):
    from tinycnn.data.dicom_lazy import DicomFolderDataset

    eager = load_dataset(dicom_folder, val_fraction=0.25, test_fraction=0.25, seed=1, **kw)
    lazy = load_dataset(dicom_folder, val_fraction=0.25, test_fraction=0.25, seed=1, lazy=True, **kw)
    for e, z in zip((eager.train, eager.val, eager.test), (lazy.train, lazy.val, lazy.test), strict=True):
        if e is None:
            assert z is None
            continue
        assert isinstance(z[0], DicomFolderDataset)
        np.testing.assert_array_equal(z[1], e[1])
        np.testing.assert_array_equal(z[0][:], e[0])
        np.testing.assert_array_equal(z[0][::-1], e[0][::-1])  # frames of one file, any order


def test_lazy_dicom_folder_bad_header_and_sizes(dicom_folder):
    from tinycnn.data.dicom_lazy import DicomFolderDataset

    (dicom_folder / "normal" / "3.dcm").write_text("not dicom")
    with pytest.raises(DataError, match="3.dcm"):
        DicomFolderDataset(dicom_folder)
    ds = DicomFolderDataset(dicom_folder, skip_bad=True)
    assert ds.shape == (4, 4, 4, 1) and ds.skipped[0][0].endswith("3.dcm")
    assert ds.files[2].endswith("series#0") and ds.files[3].endswith("series#1")
    make_dicom(dicom_folder / "tumour" / "big.dcm", np.zeros((6, 6), np.uint16))
    with pytest.raises(DataError, match=r"is 4x4 but .*big\.dcm is 6x6"):
        DicomFolderDataset(dicom_folder, skip_bad=True)
