"""The Keras listing from tinycnn's design card, with only its imports changed.

Run: ``python examples/keras_seed_listing.py [IMAGE_SIZE]`` (default 32; the listing's own
224 works too, slowly on a laptop). The data is made here: images where a bright square
marks the positive class, so the model has something to learn and no download is needed.
"""

import sys

import numpy as np

from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tinycnn.models import Sequential


def make_data(n, size, channels=3, seed=0):
    """Noise images; positives (label 1) carry a bright square somewhere."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 0.1, (n, size, size, channels)).astype(np.float32)
    y = rng.integers(0, 2, n)
    s = max(size // 6, 2)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, size - s, 2)
        x[i, r:r + s, c:c + s, :] += 0.6
    return x, y


def main(size=32, n_train=512, n_test=128, epochs=10):
    x_train, y_train = make_data(n_train, size, seed=0)
    x_test, y_test = make_data(n_test, size, seed=1)

    # --- the listing, unchanged but for input_shape and the imports above ---
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(size, size, 3)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(64, (3, 3), activation='relu'))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(128, (3, 3), activation='relu'))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(512, activation='relu'))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32)
    result = model.evaluate(x_test, y_test)
    # -------------------------------------------------------------------------
    model.summary()
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32)
