"""Packaging of the kernels folder, the backend switch, and the kernel contract."""

import os
import subprocess
import sys

import pytest
from conftest import backends_here
from tinycnn.kernels import CONTRACT

import tinycnn
from tinycnn import backend


def test_kernels_import_as_tinycnn_kernels_from_any_directory(tmp_path):
    code = ("import tinycnn.kernels as k, tinycnn.kernels.reference as r; "
            "assert k.__name__ == 'tinycnn.kernels'; print(r.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tinycnn.kernels.reference"


def test_kernels_folder_refuses_to_load_as_top_level_package(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", "import kernels"], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": root})
    assert out.returncode != 0 and "tinycnn.kernels" in out.stderr


@pytest.mark.parametrize("name", [n for n in backends_here()])
def test_every_backend_implements_the_whole_contract(name):
    module = backend.load(name)
    missing = [f for f in CONTRACT if not callable(getattr(module, f, None))]
    assert not missing, f"{name} lacks {missing}"


def test_set_backend_context_manager_and_env(monkeypatch):
    backend.set_backend("numpy")
    assert backend.get_backend() == "numpy"
    with backend.use_backend("reference"):
        assert backend.get_backend() == "numpy"
    assert backend.get_backend() == "numpy"
    with pytest.raises(tinycnn.ConfigError, match="unknown backend"):
        backend.set_backend("tpu")
    backend._state.update(name=None, module=None)
    monkeypatch.setenv("TINYCNN_BACKEND", "numpy")
    assert backend.get_backend() == "numpy"
    backend._state.update(name=None, module=None)
    monkeypatch.delenv("TINYCNN_BACKEND")
    assert backend.get_backend() == backend.DEFAULT == "cpu"


def test_cuda_without_gpu_is_a_clear_error_not_a_fallback():
    code = ("import tinycnn; from tinycnn import backend\n"
            "try:\n    backend.set_backend('cuda')\nexcept tinycnn.BackendError as e:\n    print('ERR', e)\n"
            "else:\n    print('OK', backend.get_backend())")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    from numba import cuda

    if cuda.is_available():  # a real GPU: the backend must be usable
        assert out.stdout.startswith("OK cuda")
    else:
        assert out.stdout.startswith("ERR") and "NUMBA_ENABLE_CUDASIM" in out.stdout


def test_every_package_folder_is_listed_for_installation():
    # pyproject lists packages explicitly; an editable install finds a forgotten sub-package
    # anyway, a wheel would not ship it.
    import pathlib

    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    root = pathlib.Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "tinycnn").rglob("__init__.py")}
    assert found | {"tinycnn.kernels"} == listed
