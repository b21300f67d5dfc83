"""Data-parallel training over MPI (tinycnn.distributed): launch detection, the pieces in one
process, and ``mpiexec -n 2`` runs against one process (skipped without mpi4py and mpiexec,
which the dev extra installs)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinycnn
from tinycnn import data
from tinycnn.distributed import DistributedError, launch
from tinycnn.distributed.sharding import bounds

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "mpi_scenarios.py"
BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")
# Stated tolerance of "N ranks equal one process": float32 sums in another order, through 15 Adam
# steps; measured differences are ~3e-8 on weights of size ~1.
RTOL, ATOL = 1e-5, 1e-6


def _have_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return MPIEXEC is not None


needs_mpi = pytest.mark.skipif(not _have_mpi(), reason='needs mpi4py and mpiexec (pip install "tinycnn[mpi]")')


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_", "SLURM_"))}
    env.pop("NUMBA_NUM_THREADS", None)  # each rank then takes its fair share of the cores
    env.update(PYTHONUNBUFFERED="1")
    return env


def _run(args, ranks=None, timeout=120, **env):
    cmd = ([MPIEXEC, "-n", str(ranks)] if ranks else []) + list(map(str, args))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env() | env)
    proc.seconds = time.monotonic() - t0
    return proc


def _train(out, *flags, ranks=None, **env):
    return _run([sys.executable, SCENARIOS, out, *flags], ranks, **env)


def _load(out):
    with np.load(out) as z:
        weights = [z[k] for k in z.files]
    with open(str(out) + ".json") as f:
        return weights, json.load(f)


def _assert_same_run(a, b, rtol=RTOL, atol=ATOL):
    (wa, ha), (wb, hb) = _load(a), _load(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_allclose(y, x, rtol=rtol, atol=atol)
    assert ha.keys() == hb.keys()
    for k in ha:
        np.testing.assert_allclose(hb[k], ha[k], rtol=1e-6, atol=1e-7, err_msg=k)


# ---------------------------------------------------------------------------------- one process
@pytest.mark.parametrize("env, expected", [
    ({"PMI_RANK": "1", "PMI_SIZE": "4"}, ("MPICH/Intel MPI (hydra)", 1, 4)),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}, ("Open MPI", 0, 2)),
    ({"PMIX_RANK": "3"}, ("PMIx", 3, None)),
    ({"SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8"}, ("Slurm srun", 2, 8)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}, None),  # an sbatch script: one process
    ({"PMI_RANK": "x", "PMI_SIZE": "2"}, None),
    ({}, None),
])
def test_launch_is_read_from_the_launchers_environment(env, expected):
    assert launch.detect(env) == expected


def test_one_process_of_mpiexec_is_not_distributed():
    assert not launch.launched_in_parallel({"PMI_RANK": "0", "PMI_SIZE": "1"})
    assert launch.launched_in_parallel({"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert launch.launched_in_parallel({"PMIX_RANK": "0"})  # size unknown: MPI is asked


def test_bounds_cover_every_row_once_in_order():
    for n in range(0, 40):
        for size in (1, 2, 3, 7):
            parts = [bounds(n, size, r) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1


def test_augmenter_rows_reassemble_the_whole_batch():
    x = np.random.default_rng(0).random((7, 12, 12, 1), dtype=np.float32)
    aug = data.Augmenter(horizontal_flip=True, vertical_flip=True, rotation=20, shift=0.1,
                         brightness=0.1, contrast=0.2)
    whole = aug(x, np.random.default_rng(5))
    parts = [aug(x[lo:hi], np.random.default_rng(5), rows=(lo, hi, 7)) for lo, hi in ((0, 4), (4, 7))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    aug(x, r1)
    aug(x[4:], r2, rows=(4, 7, 7))
    assert r1.random() == r2.random()  # both advanced as for the whole batch
    with pytest.raises(tinycnn.ConfigError, match="rows"):
        aug(x[:3], np.random.default_rng(0), rows=(0, 4, 7))


def _block_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)


def test_under_mpiexec_without_mpi4py_fit_says_how_to_install(monkeypatch):
    _block_mpi4py(monkeypatch)
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    model = tinycnn.Sequential([tinycnn.layers.Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse")
    with pytest.raises(DistributedError, match=r'pip install "tinycnn\[mpi\]"') as e:
        model.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0)
    assert "PMI_SIZE" not in str(e.value) and "rank 0 of 2" in str(e.value)
    # distributed=False trains one model per process, MPI or not
    model.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0, distributed=False)


def test_distributed_flag_without_mpi4py_says_how_to_install(monkeypatch, capsys):
    from tinycnn.cli import main

    _block_mpi4py(monkeypatch)
    assert main(["--distributed", "predict", "--model", "absent.tcnn", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "distributed mode was asked for" in err and 'pip install "tinycnn[mpi]"' in err


def test_a_plain_process_never_imports_mpi4py(tmp_path):
    code = ("import sys, numpy as np, tinycnn\n"
            "m = tinycnn.Sequential([tinycnn.layers.Dense(1, input_shape=(3,))]); m.compile('sgd', 'mse')\n"
            "m.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0)\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n")
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------- mpiexec -n 2
@needs_mpi
def test_two_ranks_train_the_same_weights_as_one_process(tmp_path):
    """Batch norm, augmentation, class weights, validation, a last batch that leaves rank 1 idle."""
    one = _train(tmp_path / "one.npz", "--augment")
    assert one.returncode == 0, one.stderr
    two = _train(tmp_path / "two.npz", "--augment", ranks=2)
    assert two.returncode == 0, two.stderr
    _assert_same_run(tmp_path / "one.npz", tmp_path / "two.npz")
    # gradients summed after backward, in buckets of ~100 bytes: tensors alone and grouped
    small = _train(tmp_path / "small.npz", "--augment", ranks=2, TINYCNN_MPI_OVERLAP="0",
                   TINYCNN_MPI_BUCKET_MB="0.0001")
    assert small.returncode == 0, small.stderr
    _assert_same_run(tmp_path / "one.npz", tmp_path / "small.npz")


@needs_mpi
def test_a_killed_rank_ends_the_job_and_resume_gives_the_uninterrupted_weights(tmp_path):
    straight = _train(tmp_path / "straight.npz", "--augment", "--checkpoint", tmp_path / "s.ckpt", ranks=2)
    assert straight.returncode == 0, straight.stderr
    ckpt = tmp_path / "k.ckpt"
    killed = _train(tmp_path / "never.npz", "--augment", "--checkpoint", ckpt, "--fault", "kill", ranks=2)
    # hydra ends every rank when one dies; the timeout of _run would fail a hang
    assert killed.returncode != 0 and killed.seconds < 60
    assert "BAD TERMINATION" in killed.stdout + killed.stderr
    assert not (tmp_path / "never.npz").exists()
    from tinycnn.io import read_model_file

    meta, _ = read_model_file(ckpt)  # intact: checksum verified
    assert meta["checkpoint"]["epoch"] == 1  # killed in epoch 2 (index 1), after epoch 1's checkpoint
    resumed = _train(tmp_path / "resumed.npz", "--augment", "--checkpoint", ckpt, "--resume", ranks=2)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(tmp_path / "straight.npz", tmp_path / "resumed.npz", rtol=0, atol=0)
    # the checkpoint holds no trace of N: one process resumes it to the same weights
    alone = _train(tmp_path / "alone.npz", "--augment", "--checkpoint", ckpt, "--resume")
    assert alone.returncode == 0, alone.stderr
    _assert_same_run(tmp_path / "straight.npz", tmp_path / "alone.npz")


@needs_mpi
def test_dropout_on_two_ranks_resumes_to_the_uninterrupted_run(tmp_path):
    """A seeded Dropout keeps its own generator: rank 0's state in the checkpoint reaches every
    rank on resume (each rank then derives masks of its own from the shared draws)."""
    straight = _train(tmp_path / "straight.npz", "--dropout", "--checkpoint", tmp_path / "s.ckpt", ranks=2)
    assert straight.returncode == 0, straight.stderr
    first = _train(tmp_path / "first.npz", "--dropout", "--epochs", "2", "--checkpoint", tmp_path / "r.ckpt",
                   ranks=2)
    assert first.returncode == 0, first.stderr
    resumed = _train(tmp_path / "resumed.npz", "--dropout", "--checkpoint", tmp_path / "r.ckpt", "--resume",
                     ranks=2)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(tmp_path / "straight.npz", tmp_path / "resumed.npz", rtol=0, atol=0)


@needs_mpi
def test_an_exception_on_one_rank_ends_every_rank_with_its_message(tmp_path):
    proc = _train(tmp_path / "never.npz", "--fault", "raise", ranks=2)
    assert proc.returncode == 1 and proc.seconds < 60
    assert "tinycnn fit: error on rank 1 of 2" in proc.stderr
    assert "injected failure at epoch 1, batch 2" in proc.stderr
    assert "ending all 2 ranks" in proc.stderr


@needs_mpi
def test_ranks_with_different_data_refuse_to_start(tmp_path):
    proc = _train(tmp_path / "never.npz", "--skew-data", ranks=2)
    assert proc.returncode != 0 and proc.seconds < 60
    assert "the ranks disagree about the training images (x): rank(s) [1] differ from rank 0" in proc.stderr
    assert not (tmp_path / "never.npz").exists()


def _png_folders(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("normal", "nodule"):
        d = root / "train" / c
        d.mkdir(parents=True)
        for i in range(14):
            a = rng.integers(0, 120, (16, 16), dtype=np.uint8)
            if c == "nodule":
                a[5:11, 5:11] += 120
            Image.fromarray(a).save(d / f"{i:02d}.png")
    new = root / "new"
    new.mkdir()
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(new / f"{i}.png")
    (new / "3b.png").write_bytes(b"not a png")
    return root / "train", new


@needs_mpi
def test_cli_train_predict_evaluate_under_mpiexec(tmp_path):
    folder, new = _png_folders(tmp_path)
    tc = BIN / "tinycnn"
    model = tmp_path / "m.tcnn"
    # one model of the recipe's residual network: its batch norms inside ResidualBlocks are synchronized too
    train = _run([tc, "train", "--data", folder, "--epochs", "2", "--batch-size", "8", "--ensemble", "1",
                  "--out", model], ranks=2)
    assert train.returncode == 0, train.stderr
    assert train.stdout.count("Epoch 2/2 - loss") == 1  # rank 0 prints, rank 1 does not
    threads = max(1, len(os.sched_getaffinity(0)) // 2)  # 2 ranks share this machine's cores
    assert f"tinycnn train: 2 MPI ranks (MPICH/Intel MPI (hydra)), {threads} thread(s) each" in train.stderr
    assert model.exists()

    two = _run([tc, "predict", "--model", model, new, "--csv", tmp_path / "two.csv"], ranks=2)
    one = _run([tc, "predict", "--model", model, new, "--csv", tmp_path / "one.csv"])
    assert two.returncode == 0 and one.returncode == 0, two.stderr + one.stderr
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
    rows = (tmp_path / "two.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == [str(new / f"{i}.png") for i in range(7)]  # input order, once
    assert two.stdout.count("skipped") == 1 and "3b.png" in two.stdout
    assert two.stdout.replace("two.csv", "one.csv") == one.stdout

    refused = _run([tc, "gradcheck"], ranks=2)  # a one-process command: refused, not run twice
    assert refused.returncode == 2 and "tinycnn gradcheck runs in one process" in refused.stderr

    ev2 = _run([tc, "evaluate", "--model", model, "--data", folder], ranks=2)
    ev1 = _run([tc, "evaluate", "--model", model, "--data", folder])
    assert ev2.returncode == 0 and ev1.returncode == 0, ev2.stderr + ev1.stderr
    assert ev2.stdout == ev1.stdout and "ROC-AUC" in ev2.stdout
