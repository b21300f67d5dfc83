"""Medical image data: loaders, preprocessing, augmentation, splits, synthetic sets.

Images are NHWC float32 arrays (N, H, W, C) with C = 1 (grey) or 3 (RGB); labels are (N,) int
class indices for binary and multi-class tasks, (N, L) 0/1 for multi-label ones.

- Loading: :func:`load_dataset` (any format), :func:`load_npz` (MedMNIST ``.npz``),
  :func:`load_image_folder` / :class:`ImageFolderDataset` (PNG, JPEG, TIFF, BMP in class
  folders), :func:`read_dicom` / :func:`load_dicom_folder` (DICOM; needs pydicom).
- Preprocessing: :func:`crop`, :func:`center_crop`, :func:`resize`, :func:`normalize`,
  :func:`fit_normalization`, :func:`window`, :func:`to_grayscale`, :func:`to_rgb`.
- Training helpers: :class:`Augmenter`, :func:`stratified_split`, :func:`stratified_group_split`
  (no patient in two parts; :mod:`.groups` says which images form a group), :func:`batches`,
  :func:`class_weights_balanced`, :func:`oversample_indices`.
- Class names of MedMNIST files: :mod:`.medmnist`.
- Synthetic data: :func:`synthetic_chest_xrays`, :func:`save_synthetic_npz`.
"""

from .augment import Augmenter
from .balance import class_weights_balanced, oversample_indices
from .containers import DataSplits, FolderData, LazyImages
from .dicom import load_dicom_folder, read_dicom
from .files import read_images
from .images import ImageFolderDataset, load_image_folder, read_image
from .loaders import detect_format, load_dataset
from .npz import NpzImages, load_npz
from .preprocess import (
    WINDOW_PRESETS,
    NormalizationStats,
    center_crop,
    crop,
    fit_normalization,
    normalize,
    resize,
    to_grayscale,
    to_rgb,
    window,
)
from .split import batches, stratified_group_split, stratified_split
from .synthetic import SyntheticChest, save_synthetic_npz, synthetic_chest_xrays

__all__ = [
    "Augmenter",
    "DataSplits",
    "FolderData",
    "ImageFolderDataset",
    "LazyImages",
    "NormalizationStats",
    "NpzImages",
    "SyntheticChest",
    "WINDOW_PRESETS",
    "batches",
    "center_crop",
    "class_weights_balanced",
    "crop",
    "detect_format",
    "fit_normalization",
    "load_dataset",
    "load_dicom_folder",
    "load_image_folder",
    "load_npz",
    "normalize",
    "oversample_indices",
    "read_dicom",
    "read_images",
    "read_image",
    "resize",
    "save_synthetic_npz",
    "stratified_group_split",
    "stratified_split",
    "synthetic_chest_xrays",
    "to_grayscale",
    "to_rgb",
    "window",
]
