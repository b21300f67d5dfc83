"""Run an exported file with ONNX Runtime and compare it with tinycnn's ``predict``."""

import numpy as np

from .build import INPUT
from .errors import import_onnxruntime


def onnxruntime_predict(path, x, threads=None):
    """ONNX Runtime's output for the images ``x`` (N, H, W, C) from the file at ``path``."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = int(threads)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT: np.ascontiguousarray(x, np.float32)})[0]


def check_export(model, path, x=None, n=8, seed=0):
    """Largest absolute difference between ONNX Runtime and ``model.predict`` on ``x``.

    Parameters
    ----------
    model : Sequential
    path : str or Path
        The exported file.
    x : array (N, H, W, C), optional
        Default: ``n`` random inputs, uniform in the model's stored value range (else [0, 1]).

    Returns
    -------
    (float, int)
        The difference and the number of inputs compared.
    """
    if x is None:
        lo, hi = (model.metadata or {}).get("value_range", (0.0, 1.0))
        rng = np.random.default_rng(seed)
        x = rng.uniform(lo, hi, (n, *model.input_shape)).astype(np.float32)
    x = np.asarray(x, np.float32)
    diff = np.abs(onnxruntime_predict(path, x) - model.predict(x)).max()
    return float(diff), len(x)
