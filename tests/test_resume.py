"""Training survives a crash: SIGKILL mid-epoch, resume from the last checkpoint, same result."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinycnn
from tinycnn.models import load_model

TRAIN = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from tinycnn.callbacks import Callback
    from tinycnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D, BatchNormalization
    from tinycnn.models import Sequential
    from tinycnn.random import set_random_seed

    ckpt, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    resume = len(sys.argv) > 4

    class KillMidEpoch(Callback):
        def __init__(self):
            self.epoch = 0
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_batch_end(self, batch, logs=None):
            if self.epoch == kill_at and batch == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no flush: a real crash

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (160, 12, 12, 1)).astype(np.float32)
    y = (x[:, 4:8, 4:8, 0].mean(axis=(1, 2)) > 0).astype(int)
    set_random_seed(123)
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)), BatchNormalization(),
                        MaxPooling2D(), Flatten(), Dropout(0.3), Dense(8, activation="relu"),
                        Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    aug = lambda xb, r: xb + r.normal(0, 0.05, xb.shape).astype(xb.dtype)
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, validation_split=0.2, augment=aug,
              callbacks=[KillMidEpoch()], checkpoint=ckpt, resume=ckpt if resume else None)
    model.save(out)
""")


def _run(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    straight = _run(tmp_path, tmp_path / "a.ckpt", tmp_path / "straight.tcnn", -1)
    assert straight.returncode == 0, straight.stderr

    killed = _run(tmp_path, tmp_path / "b.ckpt", tmp_path / "never.tcnn", 2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "never.tcnn").exists()
    assert (tmp_path / "b.ckpt").exists()  # epochs 0 and 1 completed and were checkpointed
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert not leftovers, leftovers

    resumed = _run(tmp_path, tmp_path / "b.ckpt", tmp_path / "resumed.tcnn", -1, "resume")
    assert resumed.returncode == 0, resumed.stderr

    a, b = load_model(tmp_path / "straight.tcnn"), load_model(tmp_path / "resumed.tcnn")
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.optimizer.iterations == b.optimizer.iterations


def test_checkpoint_file_is_replaced_atomically(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temporary file."""
    from tinycnn import io as tio
    from tinycnn.layers import Dense
    from tinycnn.models import Sequential

    m = Sequential([Dense(2, input_shape=(3,))])
    m.compile("sgd", "mse")
    path = tmp_path / "ck.tcnn"
    tio.save_checkpoint(m, path, 1, {"loss": [1.0]})
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        tio.save_checkpoint(m, path, 2, {"loss": [1.0, 0.5]})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.tcnn"]


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    from tinycnn.layers import Dense
    from tinycnn.models import Sequential

    m = Sequential([Dense(2, input_shape=(3,))])
    m.compile("sgd", "mse")
    m.fit(np.zeros((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0, checkpoint=tmp_path / "c.tcnn")
    other = Sequential([Dense(3, input_shape=(3,))])
    other.compile("sgd", "mse")
    with pytest.raises(tinycnn.ModelFileError, match="architecture"):
        other.fit(np.zeros((4, 3)), np.zeros((4, 3)), epochs=2, verbose=0, resume=tmp_path / "c.tcnn")
