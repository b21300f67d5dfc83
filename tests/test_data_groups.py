"""Patient-level splits: no patient, file or frame in two parts, stratified by class as far as the
groups allow, deterministic from the seed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tinycnn.data import load_dataset, stratified_group_split, stratified_split
from tinycnn.data.groups import assign_groups
from tinycnn.errors import ConfigError, DataError

PARTS = ("train", "val", "test")


def _groups_of_parts(parts, groups):
    return [set(np.asarray(groups)[p].tolist()) for p in parts]


@given(st.integers(0, 2**16), st.integers(2, 40), st.integers(1, 6),
       st.sampled_from([(0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.8, 0.2, 0.0), (0.5, 0.5)]))
def test_no_group_in_two_parts_and_every_sample_in_one(seed, n_groups, max_size, fractions):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_size + 1, n_groups)
    groups = np.repeat(rng.permutation(n_groups) * 7 + 3, sizes)  # arbitrary labels, not 0..G-1
    y = rng.integers(0, 3, len(groups))  # a patient may have images of several classes
    parts = stratified_group_split(y, groups, fractions, seed=seed)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    seen = _groups_of_parts(parts, groups)
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert not seen[i] & seen[j]
    if n_groups >= len(fractions):
        assert all(len(p) > 0 for p, f in zip(parts, fractions, strict=True) if f > 0)
    again = stratified_group_split(y, groups, fractions, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_one_sample_per_group_is_the_stratified_split():
    y = np.random.default_rng(0).integers(0, 3, 50)
    for a, b in zip(stratified_group_split(y, np.arange(50), seed=4), stratified_split(y, seed=4), strict=True):
        np.testing.assert_array_equal(a, b)


def test_classes_are_spread_in_proportion_as_far_as_groups_allow():
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 5, 300)
    y = np.repeat(rng.random(300) < 0.25, sizes).astype(int)  # 25% of patients have the finding
    groups = np.repeat(np.arange(300), sizes)
    parts = stratified_group_split(y, groups, (0.7, 0.15, 0.15), seed=0)
    for p, share in zip(parts, (0.7, 0.15, 0.15), strict=True):
        for c in (0, 1):
            # within 3 cases of the class's share: patients have at most 4 images
            assert abs(np.sum(y[p] == c) - share * np.sum(y == c)) <= 3


def test_seed_changes_the_split_and_bad_groups_are_refused():
    y = np.tile([0, 1], 40)
    groups = np.repeat(np.arange(20), 4)
    val0, val1 = stratified_group_split(y, groups, seed=0)[1], stratified_group_split(y, groups, seed=1)[1]
    assert not np.array_equal(val0, val1)
    with pytest.raises(ValueError, match="one label per sample"):
        stratified_group_split(y, groups[:-1])
    with pytest.raises(ConfigError, match="fractions"):
        stratified_group_split(y, groups, (0.5, 0.6))


# ------------------------------------------------------------------ which images form a group
@pytest.fixture
def png_root(tmp_path):
    """6 patients x 3 images in each of two classes; patient k's files are p<k>_<i>.png."""
    root = tmp_path / "imgs"
    for cls, base in (("lesion", 100), ("normal", 0)):
        (root / cls).mkdir(parents=True)
        for k in range(6):
            for i in range(3):
                Image.fromarray(np.full((8, 8), base + 10 * k + i, np.uint8)).save(root / cls / f"p{k}{cls[0]}_{i}.png")
    return root


def _patient_of_value(v):
    """The patient of an image from its pixel value (class base + 10 k + i)."""
    return int(v) // 10


def _assert_no_patient_across(splits):
    seen = [{_patient_of_value(v) for v in np.round(getattr(splits, p)[0][:, 0, 0, 0] * 255)}
            for p in PARTS if getattr(splits, p) is not None]
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert not seen[i] & seen[j]
    for p in PARTS:  # the recorded group ids agree: none in two parts
        if getattr(splits, p) is not None:
            assert len(splits.groups[p]) == len(getattr(splits, p)[1])
    ids = [set(splits.groups[p].tolist()) for p in PARTS if p in splits.groups]
    assert all(not a & b for i, a in enumerate(ids) for b in ids[i + 1:])


def test_group_pattern_keeps_each_patient_in_one_part(png_root):
    splits = load_dataset(png_root, group_pattern=r"^(p\d+\w)_", seed=0)
    assert splits.grouping == "group" and "by the file-name pattern" in splits.split_rule
    assert "(12 groups)" in splits.split_rule
    _assert_no_patient_across(splits)
    assert all(getattr(splits, p) is not None for p in PARTS)


def test_a_group_csv_keeps_each_patient_in_one_part(png_root, tmp_path):
    rows = ["file,group"]
    for f in sorted(png_root.rglob("*.png")):
        rel = f.relative_to(png_root)
        # one absolute path, the rest relative to the data folder
        rows.append(f"{f if f.name == 'p0l_0.png' else rel.as_posix()},patient-{f.name[:3]}")
    (tmp_path / "groups.csv").write_text("\n".join(rows) + "\n")
    splits = load_dataset(png_root, groups=tmp_path / "groups.csv", seed=2)
    assert "by the groups in groups.csv (12 groups)" in splits.split_rule
    _assert_no_patient_across(splits)
    # a dict does the same
    table = {f: f"patient-{f.name[:3]}" for f in png_root.rglob("*.png")}
    again = load_dataset(png_root, groups=table, seed=2)
    np.testing.assert_array_equal(again.test[1], splits.test[1])


def test_files_without_a_group_are_an_error_naming_them(png_root, tmp_path):
    (tmp_path / "g.csv").write_text("lesion/p0l_0.png,a\n")
    with pytest.raises(DataError, match=r"35 file\(s\) have no group in the groups in g.csv: .*p0l_1.png"):
        load_dataset(png_root, groups=tmp_path / "g.csv")
    with pytest.raises(DataError, match=r"18 file\(s\) do not match group_pattern '\^\(p\\\\d\+l\)_'"):
        load_dataset(png_root, group_pattern=r"^(p\d+l)_")
    with pytest.raises(ConfigError, match="not a regular expression"):
        load_dataset(png_root, group_pattern="(")
    (tmp_path / "bad.csv").write_text("file,group\nlesion/p0l_0.png\n")
    with pytest.raises(DataError, match="bad.csv, line 2: expected two cells"):
        load_dataset(png_root, groups=tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match="not both"):
        assign_groups(["a"], ".", groups={"a": 1}, group_pattern="a")


def test_the_pattern_reads_the_path_inside_the_class_folder(tmp_path):
    files = [tmp_path / "normal" / "pat07" / "a.png", tmp_path / "lesion" / "pat07" / "b.png",
             tmp_path / "lesion" / "pat09" / "c.png"]
    ids, grouping, how = assign_groups([str(f) for f in files], tmp_path, group_pattern=r"^(pat\d+)/")
    assert ids[0] == ids[1] != ids[2] and grouping == "group" and "(2 groups)" in how


def test_without_patient_information_each_image_is_alone_and_the_rule_says_so(png_root):
    splits = load_dataset(png_root, seed=0)
    assert splits.grouping == "image"
    assert splits.split_rule.startswith("stratified by class: 70% training / 15% validation / 15% test (seed 0)")
    assert "per image: no patient information" in splits.split_rule


# ------------------------------------------------------------------ DICOM: PatientID and multi-frame files
def _make_dicom():
    pytest.importorskip("pydicom", reason="pydicom is not installed (pip install 'tinycnn[dicom]')")
    from test_data_dicom import make_dicom

    return make_dicom


def _tagged(path, pixels, patient):
    import pydicom

    _make_dicom()(path, pixels)
    ds = pydicom.dcmread(path)
    ds.PatientID = patient
    ds.save_as(path, enforce_file_format=True)


def test_dicom_patient_ids_keep_a_patient_in_one_part(tmp_path):
    _make_dicom()
    rng = np.random.default_rng(0)
    patient = {}
    for cls in ("lesion", "normal"):
        for k in range(8):
            for i in range(3):  # 3 images per patient; patients 0-1 have images in both classes
                pid = f"PID-{k if k < 2 else f'{cls}{k}'}"
                px = rng.integers(0, 1000, (8, 8)).astype(np.uint16)
                f = tmp_path / cls / f"{k}_{i}.dcm"
                _tagged(f, px, pid)
                patient[str(f)] = pid
    splits = load_dataset(tmp_path, seed=0)
    assert splits.grouping == "patient" and "by patient (DICOM PatientID: 14 patients)" in splits.split_rule
    seen = [{patient[f] for f in splits.files[p]} for p in PARTS]
    assert all(not a & b for i, a in enumerate(seen) for b in seen[i + 1:])
    assert all(seen)
    assert "PID-" not in repr(splits) + splits.split_rule  # identifiers are used, never shown


def test_the_frames_of_a_multi_frame_file_stay_together(tmp_path):
    make_dicom = _make_dicom()
    rng = np.random.default_rng(1)
    for cls in ("lesion", "normal"):
        for k in range(6):  # 6 cine loops of 4 frames per class, no PatientID
            make_dicom(tmp_path / cls / f"loop{k}.dcm", rng.integers(0, 1000, (4, 8, 8)).astype(np.uint16))
    splits = load_dataset(tmp_path, seed=0)
    assert splits.grouping == "file"
    assert "the frames of a multi-frame file stay together (12 files)" in splits.split_rule
    sources = [{f.rpartition("#")[0] for f in splits.files[p]} for p in PARTS]
    assert all(not a & b for i, a in enumerate(sources) for b in sources[i + 1:])
    assert sum(len(splits.files[p]) for p in PARTS) == 48
