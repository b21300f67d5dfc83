"""Medical image data: loaders, preprocessing, augmentation, splits, synthetic sets."""
