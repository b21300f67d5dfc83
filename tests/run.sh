#!/usr/bin/env bash
# The whole test suite, in three pytest processes:
#  1. the main suite (everything but tests/cuda);
#  2. the CUDA kernels in numba's CUDA simulator, which must be switched on before numba is
#     imported and so needs a process of its own (on a machine with a GPU, run
#     `python -m pytest tests/cuda/test_cuda_sim.py` without it to test the real device);
#  3. the CUDA kernels compiled to PTX for compute capabilities 8.0 and 9.0 (simulator off).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest --ignore=tests/cuda "$@"
NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda/test_cuda_sim.py "$@"
python -m pytest tests/cuda/test_cuda_ptx.py "$@"
