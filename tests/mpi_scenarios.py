"""Training runs that tests/test_distributed.py launches with ``mpiexec -n 2`` and alone.

Not a test module: ``python tests/mpi_scenarios.py OUT [options]`` trains a small model with
batch norm on data it makes itself (the same on every rank unless --skew-data) and, on rank 0,
writes the weights to OUT (.npz) and the history to OUT.json.
"""

import argparse
import json
import os
import signal

import numpy as np

from tinycnn import data, distributed
from tinycnn.callbacks import Callback
from tinycnn.distributed import launch
from tinycnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, ReLU
from tinycnn.models import Sequential
from tinycnn.random import set_random_seed


class Fault(Callback):
    """On rank ``rank``, at ``batch`` of ``epoch``: SIGKILL itself, or raise."""

    def __init__(self, kind, rank, epoch, batch):
        self.kind, self.rank, self.at = kind, rank, (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        w = distributed.world()
        if w is None or w.rank != self.rank or (self.epoch, batch) != self.at:
            return
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up: a node that dies
        raise RuntimeError(f"injected failure at epoch {self.epoch}, batch {batch}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--checkpoint")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--fault", choices=["kill", "raise"])
    ap.add_argument("--fault-at", type=int, nargs=2, default=(1, 2), metavar=("EPOCH", "BATCH"))
    ap.add_argument("--skew-data", action="store_true", help="rank 1 gets other images")
    ap.add_argument("--dropout", action="store_true", help="a seeded Dropout layer before the last")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    # 33 samples in batches of 8: the last batch holds one sample, so rank 1 has none of it
    x = rng.normal(0, 1, (33, 8, 8, 1)).astype(np.float32)
    y = (x[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(int)
    vx = rng.normal(0, 1, (11, 8, 8, 1)).astype(np.float32)
    vy = (vx[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(int)
    launched = launch.detect()
    if args.skew_data and launched is not None and launched[1] == 1:
        x = x[::-1].copy()
    set_random_seed(7)
    # no bias before batch norm: its true gradient is 0, and Adam would amplify rounding noise
    model = Sequential([Conv2D(4, 3, padding="same", use_bias=False, input_shape=(8, 8, 1)),
                        BatchNormalization(momentum=0.9), ReLU(), MaxPooling2D(), Flatten(),
                        *([Dropout(0.3, seed=5)] if args.dropout else []), Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", "auc"])
    aug = data.Augmenter(rotation=10, shift=0.1, brightness=0.1, contrast=0.1) if args.augment else None
    callbacks = [Fault(args.fault, 1, *args.fault_at)] if args.fault else []
    hist = model.fit(x, y, batch_size=8, epochs=args.epochs, verbose=0, validation_data=(vx, vy),
                     augment=aug, class_weight="balanced", callbacks=callbacks,
                     checkpoint=args.checkpoint, resume=args.checkpoint if args.resume else None)
    if distributed.is_root():
        np.savez(args.out, *model.get_weights())
        with open(args.out + ".json", "w") as f:
            json.dump(hist.history, f)


if __name__ == "__main__":
    main()
