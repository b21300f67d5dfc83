"""MedMNIST files carry no class names: tinycnn names them from MedMNIST v2's own table, chosen by
the file name or by ``dataset=``, with MedMNIST's task (binary, multi-class, ordinal, multi-label)."""

from pathlib import Path

import numpy as np
import pytest

from tinycnn.data import load_dataset, load_npz, medmnist
from tinycnn.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _npz(path, labels_per_part, shape=(8, 8)):
    """A MedMNIST-layout file with the given label arrays (one per part)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for part, y in labels_per_part.items():
        y = np.asarray(y)
        arrays[f"{part}_images"] = rng.integers(0, 255, (len(y), *shape), dtype=np.uint8)
        arrays[f"{part}_labels"] = y.reshape(len(y), -1)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("name", ["breastmnist.npz", "breastmnist_64.npz", "BreastMNIST_128.npz",
                                  "breastmnist_224.npz"])
def test_names_come_from_the_file_name(tmp_path, name):
    path = _npz(tmp_path / name, {"train": [0, 1, 1, 0], "val": [0, 1], "test": [1, 0]})
    splits = load_dataset(path)
    assert splits.class_names == ["malignant", "normal, benign"] and splits.dataset == "breastmnist"
    assert splits.task == "binary" and not splits.ordinal
    assert splits.split_rule.startswith("the official MedMNIST v2 splits of breastmnist, as stored in the .npz file")


def test_names_come_from_dataset_for_any_file_name_and_other_files_keep_numbers(tmp_path):
    path = _npz(tmp_path / "mine.npz", {"train": [0, 1, 1, 0]})
    assert load_npz(path).class_names == ["0", "1"] and load_npz(path).dataset == ""
    assert load_dataset(path, dataset="PneumoniaMNIST").class_names == ["normal", "pneumonia"]
    assert load_npz(_npz(tmp_path / "breastmnist_32.npz", {"train": [0, 1]})).class_names == ["0", "1"]  # no edition
    with pytest.raises(ConfigError, match="not a MedMNIST v2 2D data set; known: bloodmnist, breastmnist"):
        load_dataset(path, dataset="brainmnist")


def test_ordinal_and_multi_class_tasks_keep_all_classes_of_the_table(tmp_path):
    # a part without grade 4 still has the table's 5 classes
    splits = load_npz(_npz(tmp_path / "retinamnist.npz", {"train": [0, 1, 2, 3], "test": [0, 3]}, (8, 8, 3)))
    assert splits.ordinal and splits.task == "multiclass" and splits.num_classes == 5
    assert splits.class_names == ["0", "1", "2", "3", "4"]
    splits = load_npz(_npz(tmp_path / "octmnist.npz", {"train": [0, 1, 2, 3]}))
    assert splits.class_names[-1] == "normal" and not splits.ordinal


def test_multi_label_chestmnist(tmp_path):
    y = np.random.default_rng(1).integers(0, 2, (10, 14))
    splits = load_npz(_npz(tmp_path / "chestmnist.npz", {"train": y}))
    assert splits.task == "multilabel" and splits.num_classes == 14
    assert splits.class_names[:3] == ["atelectasis", "cardiomegaly", "effusion"] and splits.class_names[-1] == "hernia"


def test_a_file_that_does_not_fit_its_table_row_is_refused(tmp_path):
    with pytest.raises(DataError, match="breastmnist has 2 classes .* the file holds labels 0 to 2"):
        load_npz(_npz(tmp_path / "breastmnist.npz", {"train": [0, 1, 2]}))
    with pytest.raises(DataError, match="chestmnist has 14 labels"):
        load_npz(_npz(tmp_path / "x.npz", {"train": [0, 1]}), dataset="chestmnist")
    with pytest.raises(ConfigError, match="dataset names the classes of a MedMNIST .npz"):
        load_dataset(tmp_path, dataset="breastmnist")


def test_every_2d_data_set_of_medmnist_v2_is_in_the_table():
    names = {"pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
             "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"}
    assert set(medmnist.TABLE) == names
    sizes = {"pathmnist": 9, "chestmnist": 14, "dermamnist": 7, "octmnist": 4, "pneumoniamnist": 2, "retinamnist": 5,
             "breastmnist": 2, "bloodmnist": 8, "tissuemnist": 8, "organamnist": 11, "organcmnist": 11,
             "organsmnist": 11}  # the class counts of the MedMNIST v2 paper's Table 1
    assert {n: len(medmnist.lookup(n).class_names) for n in names} == sizes
    assert [n for n in names if medmnist.lookup(n).ordinal] == ["retinamnist"]
    assert [n for n in names if medmnist.lookup(n).task == "multilabel"] == ["chestmnist"]


def test_the_real_files_get_their_official_names():
    if not (SHARED / "breastmnist.npz").exists():
        pytest.skip(f"the MedMNIST files are absent ({SHARED})")
    breast = load_npz(SHARED / "breastmnist.npz", mmap=True)
    assert breast.class_names == ["malignant", "normal, benign"]  # malignant is label 0
    assert np.bincount(breast.test[1]).tolist() == [42, 114]
    retina = load_npz(SHARED / "retinamnist.npz", mmap=True)
    assert retina.ordinal and retina.class_names == ["0", "1", "2", "3", "4"]
