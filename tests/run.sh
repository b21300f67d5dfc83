#!/usr/bin/env bash
# The whole test suite: the main pytest run, then the CUDA kernels in the numba CUDA simulator,
# which must be switched on before numba is imported and so needs a process of its own.
# (The PTX compilation tests run in the main process: they need the simulator off.)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest "$@"
NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda/test_cuda_sim.py "$@"
